/*
 * tc_app.c - tinyclap's streaming classifier in plain C99 (tc_app.h), with the
 * network as generated C (tc_net.h, written by tinyclap.firmware.bundle from
 * the exported .tflite with tinyclap.firmware.netgen). No TensorFlow Lite
 * Micro, no dynamic allocation: every buffer below is static.
 *
 * Samples arrive in any chunks (tc_app_push_samples, e.g. each DMA half-buffer) or a
 * window at a time (tc_app_push_window). They go into a ring of 2 * n_fft samples,
 * not a window buffer: each log-mel frame is computed as soon as its last sample
 * is in, bit-identical to tc_logmel_buffer_frame_i16 on the whole window. Per
 * window of TC_WINDOW_SAMPLES int16 samples:
 *   log-mel frame by frame (tc_logmel.c; no float copy of the audio)
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
/* The audio: a ring of the last TC_RING samples of the current window (>= n_fft + hop, so every
 * frame's samples are still there when it is computed), not the whole window. */
#define TC_HALF_FFT (TC_LOGMEL_N_FFT / 2)
#define TC_RING (2 * TC_LOGMEL_N_FFT)
#if TC_RING < TC_LOGMEL_N_FFT + TC_LOGMEL_HOP
#error "the sample ring must hold n_fft + hop samples"
#endif
#if TC_WINDOW_SAMPLES <= TC_HALF_FFT
#error "a window must be longer than n_fft / 2 samples (centre reflect padding)"
#endif
static int16_t g_ring[TC_RING];
static int16_t g_frame[TC_LOGMEL_N_FFT];
static size_t g_pos;        /* samples of the current window received */
static size_t g_next_frame; /* next frame of the current window to compute */
static size_t g_next_ready; /* the window sample that completes it */
static float g_acc[TC_ACC_ELEMS]; /* sum over windows of the dequantised output */
static tc_logmel_t g_logmel;
static int g_windows;
static int g_ready;

static size_t frame_ready_at(size_t t);

int tc_app_init(void) {
    tc_logmel_init(&g_logmel);
    tc_app_reset();
    g_ready = 1;
    return 0;
}

void tc_app_reset(void) {
    memset(g_acc, 0, sizeof g_acc);
    g_windows = 0;
    g_pos = 0;
    g_next_frame = 0;
    g_next_ready = frame_ready_at(0);
}

/* Log-mel frame t of the current window -> folded bn0 -> int8 row t of the network input. Frame t
 * covers window samples t*hop - n_fft/2 .. t*hop + n_fft/2 - 1, reflected about the window's first
 * and last samples (centre padding, as tc_logmel_buffer_frame_i16 and Python's LogMel do it); they
 * are all still in the ring when the frame's last sample has arrived. */
static void make_frame(size_t t) {
    float mel[TC_LOGMEL_N_MELS];
    size_t j, m;
    const size_t last = TC_WINDOW_SAMPLES - 1;
    const size_t start = t * TC_LOGMEL_HOP; /* padded index of the frame's first sample */
    if (start >= TC_HALF_FFT && start + TC_HALF_FFT - 1 <= last) { /* no reflection: a plain copy */
        const size_t base = start - TC_HALF_FFT;
        for (j = 0; j < TC_LOGMEL_N_FFT; ++j) g_frame[j] = g_ring[(base + j) % TC_RING];
    } else {
        for (j = 0; j < TC_LOGMEL_N_FFT; ++j) {
            const size_t padded = t * TC_LOGMEL_HOP + j;
            size_t i;
            if (padded < TC_HALF_FFT) {
                i = TC_HALF_FFT - padded; /* reflect about sample 0 */
            } else if (padded - TC_HALF_FFT <= last) {
                i = padded - TC_HALF_FFT;
            } else {
                i = 2 * last - (padded - TC_HALF_FFT); /* reflect about the last sample */
            }
            g_frame[j] = g_ring[i % TC_RING];
        }
    }
    tc_logmel_frame_i16(&g_logmel, g_frame, mel);
    for (m = 0; m < TC_LOGMEL_N_MELS; ++m) {
        float x = mel[m];
#if TC_HAS_INPUT_AFFINE
        x = x * tc_input_affine_scale[m] + tc_input_affine_shift[m]; /* folded BatchNorm */
#endif
        g_input[t * TC_LOGMEL_N_MELS + m] = tc_quantize(x, TC_FIRST_INPUT_SCALE, TC_FIRST_INPUT_ZERO_POINT);
    }
}

/* Window sample that completes frame t: min(last sample, t*hop + n_fft/2 - 1). */
static size_t frame_ready_at(size_t t) {
    const size_t end = t * TC_LOGMEL_HOP + TC_HALF_FFT - 1;
    return end < TC_WINDOW_SAMPLES - 1 ? end : TC_WINDOW_SAMPLES - 1;
}

/* The window is complete and its frames are in g_input: run the network, accumulate. */
static int finish_window(void) {
    size_t i;
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

int tc_app_push_samples(const int16_t *pcm, size_t n) {
    size_t k;
    if (!g_ready || (pcm == NULL && n > 0)) return -1;
    TC_PROF(TC_STAGE_FRONTEND, 1); /* the profile brackets the whole call, less the network's part */
    for (k = 0; k < n; ++k) {
        g_ring[g_pos % TC_RING] = pcm[k];
        while (g_pos == g_next_ready) { /* several frames end on the window's last sample */
            make_frame(g_next_frame);
            ++g_next_frame;
            g_next_ready = g_next_frame < TC_FRAMES_PER_WINDOW ? frame_ready_at(g_next_frame) : (size_t)-1;
        }
        ++g_pos;
        if (g_pos == TC_WINDOW_SAMPLES) {
            g_pos = 0;
            g_next_frame = 0;
            g_next_ready = frame_ready_at(0);
            TC_PROF(TC_STAGE_FRONTEND, 0);
            if (finish_window() != 0) return -1;
            TC_PROF(TC_STAGE_FRONTEND, 1);
        }
    }
    TC_PROF(TC_STAGE_FRONTEND, 0);
    return 0;
}

int tc_app_push_window(const int16_t *window) {
    if (window == NULL || g_pos != 0) return -1;
    return tc_app_push_samples(window, TC_WINDOW_SAMPLES);
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
