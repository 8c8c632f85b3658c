/*
 * tc_app.c - tinyclap's streaming classifier in plain C99 (tc_app.h), with the
 * network as generated C (tc_net.h, written by tinyclap.firmware.bundle from
 * the exported .tflite with tinyclap.firmware.netgen). No TensorFlow Lite
 * Micro, no dynamic allocation: every buffer below is static.
 *
 * Per window of TC_WINDOW_SAMPLES int16 samples:
 *   log-mel frame by frame (tc_logmel.c; no float copy of the window)
 *   -> folded bn0 affine map -> int8 (the network's input quantisation)
 *   -> "embed" network (log-mel -> embedding), or "features" (-> pooled vector)
 *   -> dequantised and summed over the windows.
 * On tc_app_finish:
 *   split: mean pooled vector -> int8 -> "head" network -> int8 embedding;
 *   one window of an "embed" model: its int8 output as it is (what the Python
 *   int8 reference, tinyclap.export.mcu.classify_int8, classifies);
 *   several: the mean embedding, re-quantised (tc_quantize_embedding);
 *   -> int8 scores against the int8 bank (tc_classify.c) -> label.
 *
 * Build with -DTC_APP_PROFILE to have tc_profile(stage, begin) called around
 * each stage (TC_STAGE_FRONTEND, TC_STAGE_NETWORK, TC_STAGE_CLASSIFIER); the
 * emulator harness main_qemu.c counts instructions with it.
 */
#include <string.h>

#include "tc_app.h"
#include "tc_classify.h"
#include "tc_logmel.h"
#include "tc_net.h"
#include "tinyclap_model.h"

#if TC_MODEL_SAMPLE_RATE != TC_LOGMEL_SAMPLE_RATE || TC_MODEL_N_FFT != TC_LOGMEL_N_FFT || \
    TC_MODEL_WIN_LENGTH != TC_LOGMEL_WIN_LENGTH || TC_MODEL_HOP != TC_LOGMEL_HOP ||      \
    TC_MODEL_N_MELS != TC_LOGMEL_N_MELS
#error "tinyclap_model.h and tc_logmel_config.h were generated for different front ends"
#endif

#if defined(TC_HAS_EMBED_MODEL)
#define TC_SPLIT 0
#define TC_FIRST_INPUT_SCALE TC_EMBED_INPUT_SCALE
#define TC_FIRST_INPUT_ZERO_POINT TC_EMBED_INPUT_ZERO_POINT
#if !TC_EMBED_INPUT_INT8 || !TC_EMBED_OUTPUT_INT8
#error "the plain C network takes and gives int8 tensors (export with tinyclap export --target)"
#endif
#elif defined(TC_HAS_FEATURES_MODEL) && defined(TC_HAS_HEAD_MODEL)
#define TC_SPLIT 1
#define TC_FIRST_INPUT_SCALE TC_FEATURES_INPUT_SCALE
#define TC_FIRST_INPUT_ZERO_POINT TC_FEATURES_INPUT_ZERO_POINT
#if !TC_FEATURES_INPUT_INT8 || !TC_FEATURES_OUTPUT_INT8 || !TC_HEAD_INPUT_INT8 || !TC_HEAD_OUTPUT_INT8
#error "the plain C network takes and gives int8 tensors (export with tinyclap export --target)"
#endif
#else
#error "tinyclap_model.h must hold an 'embed' model or a 'features' + 'head' pair"
#endif

#if TC_NET_INPUT_ELEMS != TC_FRAMES_PER_WINDOW * TC_LOGMEL_N_MELS
#error "the network's input is not TC_FRAMES_PER_WINDOW x TC_LOGMEL_N_MELS (tc_net.h is stale)"
#endif

#ifdef TC_APP_PROFILE
void tc_profile(int stage, int begin);
#define TC_PROF(stage, begin) tc_profile((stage), (begin))
#else
#define TC_PROF(stage, begin) ((void)0)
#endif

/* The network's working memory: one arena for the features and head networks
 * (they never run at the same time). Put it in a fast RAM with TC_ARENA_SECTION,
 * e.g. -DTC_ARENA_SECTION='__attribute__((section(".axisram")))' on an STM32H7. */
#ifndef TC_ARENA_SECTION
#define TC_ARENA_SECTION
#endif
#if defined(__GNUC__) || defined(__clang__)
#define TC_ALIGNED16 __attribute__((aligned(16)))
#else
#define TC_ALIGNED16
#endif

static TC_ARENA_SECTION uint8_t g_arena[TC_NET_ARENA_BYTES] TC_ALIGNED16;
static int8_t g_input[TC_NET_INPUT_ELEMS] TC_ALIGNED16;
#if TC_SPLIT
#define TC_ACC_ELEMS TC_NET_POOLED_ELEMS
static int8_t g_pooled_q[TC_NET_POOLED_ELEMS] TC_ALIGNED16;
#else
#define TC_ACC_ELEMS TC_EMBED_DIM
#endif
static int8_t g_out[TC_ACC_ELEMS] TC_ALIGNED16;
static float g_acc[TC_ACC_ELEMS]; /* sum over windows of the dequantised output */
static tc_logmel_t g_logmel;
static int g_windows;
static int g_ready;

int tc_app_init(void) {
    tc_logmel_init(&g_logmel);
    tc_app_reset();
    g_ready = 1;
    return 0;
}

void tc_app_reset(void) {
    memset(g_acc, 0, sizeof g_acc);
    g_windows = 0;
}

int tc_app_push_window(const int16_t *window) {
    float mel[TC_LOGMEL_N_MELS];
    size_t t, m, i;
    if (!g_ready || window == NULL) return -1;
    TC_PROF(TC_STAGE_FRONTEND, 1);
    for (t = 0; t < TC_FRAMES_PER_WINDOW; ++t) {
        if (tc_logmel_buffer_frame_i16(&g_logmel, window, TC_WINDOW_SAMPLES, t, mel) != 0) {
            TC_PROF(TC_STAGE_FRONTEND, 0);
            return -1;
        }
        for (m = 0; m < TC_LOGMEL_N_MELS; ++m) {
            float x = mel[m];
#if TC_HAS_INPUT_AFFINE
            x = x * tc_input_affine_scale[m] + tc_input_affine_shift[m]; /* folded BatchNorm */
#endif
            g_input[t * TC_LOGMEL_N_MELS + m] = tc_quantize(x, TC_FIRST_INPUT_SCALE, TC_FIRST_INPUT_ZERO_POINT);
        }
    }
    TC_PROF(TC_STAGE_FRONTEND, 0);
    TC_PROF(TC_STAGE_NETWORK, 1);
#if TC_SPLIT
    if (tc_net_features_invoke(g_arena, g_input, g_out) != 0) {
        TC_PROF(TC_STAGE_NETWORK, 0);
        return -1;
    }
    for (i = 0; i < TC_ACC_ELEMS; ++i) {
        g_acc[i] += tc_dequantize(g_out[i], TC_FEATURES_OUTPUT_SCALE, TC_FEATURES_OUTPUT_ZERO_POINT);
    }
#else
    if (tc_net_embed_invoke(g_arena, g_input, g_out) != 0) {
        TC_PROF(TC_STAGE_NETWORK, 0);
        return -1;
    }
    for (i = 0; i < TC_ACC_ELEMS; ++i) {
        g_acc[i] += tc_dequantize(g_out[i], TC_EMBED_OUTPUT_SCALE, TC_EMBED_OUTPUT_ZERO_POINT);
    }
#endif
    TC_PROF(TC_STAGE_NETWORK, 0);
    ++g_windows;
    return 0;
}

int tc_app_finish(int *top, size_t k, float *cosine) {
    int8_t emb[TC_EMBED_DIM];
    int32_t scores[TC_N_CLASSES];
    int32_t zero_point = 0;
    float emb_scale = 0.0f;
    int best;
    size_t i, j, n;
    if (!g_ready || g_windows == 0) return -1;
#if TC_SPLIT
    TC_PROF(TC_STAGE_NETWORK, 1);
    for (i = 0; i < TC_ACC_ELEMS; ++i) {
        const float mean = g_acc[i] / (float)g_windows;
        g_pooled_q[i] = tc_quantize(mean, TC_HEAD_INPUT_SCALE, TC_HEAD_INPUT_ZERO_POINT);
    }
    if (tc_net_head_invoke(g_arena, g_pooled_q, emb) != 0) {
        TC_PROF(TC_STAGE_NETWORK, 0);
        tc_app_reset();
        return -1;
    }
    TC_PROF(TC_STAGE_NETWORK, 0);
    TC_PROF(TC_STAGE_CLASSIFIER, 1);
    zero_point = TC_HEAD_OUTPUT_ZERO_POINT;
    emb_scale = TC_HEAD_OUTPUT_SCALE;
#else
    TC_PROF(TC_STAGE_CLASSIFIER, 1);
    if (g_windows == 1) { /* the network's own int8 output, as the Python reference classifies it */
        memcpy(emb, g_out, TC_EMBED_DIM);
        zero_point = TC_EMBED_OUTPUT_ZERO_POINT;
        emb_scale = TC_EMBED_OUTPUT_SCALE;
    } else {
        float mean[TC_EMBED_DIM];
        for (i = 0; i < TC_EMBED_DIM; ++i) mean[i] = g_acc[i] / (float)g_windows;
        emb_scale = tc_quantize_embedding(mean, TC_EMBED_DIM, emb);
    }
#endif
    best = tc_classify(emb, zero_point, tc_bank, TC_N_CLASSES, TC_EMBED_DIM, scores);
    if (top != NULL && k > 0) {
        n = tc_topk(scores, TC_N_CLASSES, k, top);
        for (j = 0; cosine != NULL && j < n; ++j) {
            cosine[j] = tc_score_to_cosine(scores[top[j]], emb_scale, TC_BANK_SCALE);
        }
    }
    TC_PROF(TC_STAGE_CLASSIFIER, 0);
    tc_app_reset();
    return best;
}

size_t tc_app_arena_used(int which) {
    return which == 0 ? (size_t)TC_NET_ARENA_BYTES : 0u;
}
