/*
 * model_dump.c - write back what a generated tinyclap_model.c holds (host test).
 *
 *   model_dump OUTDIR
 *
 * Writes OUTDIR/<name>.tflite for each model, bank.i8, labels.txt (one label
 * per line, NUL-terminated), affine.f32 (scale then shift, if any) and
 * consts.txt ("NAME value" lines; floats in %a so they compare exactly).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "host_io.h"
#include "tinyclap_model.h"

static FILE *g_consts;

static void dump_model(const char *dir, const char *name, const unsigned char *data,
                       unsigned int len, unsigned int declared)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.tflite", dir, name);
    host_write_file(path, data, len);
    fprintf(g_consts, "%s_len %u\n", name, len);
    fprintf(g_consts, "%s_declared %u\n", name, declared);
    fprintf(g_consts, "%s_align16 %d\n", name, (int)((uintptr_t)data % 16u == 0u));
}

#define DUMP_QUANT(P, NAME)                                                             \
    do {                                                                                \
        fprintf(g_consts, "%s_input_int8 %d\n", NAME, P##_INPUT_INT8);                  \
        fprintf(g_consts, "%s_output_int8 %d\n", NAME, P##_OUTPUT_INT8);                \
    } while (0)

int main(int argc, char **argv)
{
    char path[4096];
    FILE *labels;
    int c;
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 1;
    }
    snprintf(path, sizeof path, "%s/consts.txt", argv[1]);
    g_consts = fopen(path, "w");
    if (g_consts == NULL) {
        return 2;
    }
#ifdef TC_HAS_EMBED_MODEL
    dump_model(argv[1], "embed", tc_embed_model, tc_embed_model_len, TC_EMBED_MODEL_BYTES);
    DUMP_QUANT(TC_EMBED, "embed");
#if TC_EMBED_INPUT_INT8
    fprintf(g_consts, "embed_input_scale %a\nembed_input_zero_point %d\n",
            (double)TC_EMBED_INPUT_SCALE, TC_EMBED_INPUT_ZERO_POINT);
#endif
#if TC_EMBED_OUTPUT_INT8
    fprintf(g_consts, "embed_output_scale %a\nembed_output_zero_point %d\n",
            (double)TC_EMBED_OUTPUT_SCALE, TC_EMBED_OUTPUT_ZERO_POINT);
#endif
#ifdef TC_EMBED_ARENA_BYTES
    fprintf(g_consts, "embed_arena %u\n", TC_EMBED_ARENA_BYTES);
#endif
#endif
#ifdef TC_HAS_FEATURES_MODEL
    dump_model(argv[1], "features", tc_features_model, tc_features_model_len,
               TC_FEATURES_MODEL_BYTES);
    DUMP_QUANT(TC_FEATURES, "features");
#endif
#ifdef TC_HAS_HEAD_MODEL
    dump_model(argv[1], "head", tc_head_model, tc_head_model_len, TC_HEAD_MODEL_BYTES);
    DUMP_QUANT(TC_HEAD, "head");
#endif
    snprintf(path, sizeof path, "%s/bank.i8", argv[1]);
    host_write_file(path, tc_bank, sizeof tc_bank);
    snprintf(path, sizeof path, "%s/labels.txt", argv[1]);
    labels = fopen(path, "wb");
    if (labels == NULL) {
        return 2;
    }
    for (c = 0; c < TC_N_CLASSES; ++c) {
        fwrite(tc_labels[c], 1, strlen(tc_labels[c]) + 1, labels);
    }
    fclose(labels);
#if TC_HAS_INPUT_AFFINE
    {
        float both[2 * TC_MODEL_N_MELS];
        memcpy(both, tc_input_affine_scale, sizeof tc_input_affine_scale);
        memcpy(both + TC_MODEL_N_MELS, tc_input_affine_shift, sizeof tc_input_affine_shift);
        snprintf(path, sizeof path, "%s/affine.f32", argv[1]);
        host_write_file(path, both, sizeof both);
    }
#endif
    fprintf(g_consts, "n_classes %d\nembed_dim %d\nbank_scale %a\n", TC_N_CLASSES, TC_EMBED_DIM,
            (double)TC_BANK_SCALE);
    fprintf(g_consts, "sample_rate %d\nn_fft %d\nwin_length %d\nhop %d\nn_mels %d\n",
            TC_MODEL_SAMPLE_RATE, TC_MODEL_N_FFT, TC_MODEL_WIN_LENGTH, TC_MODEL_HOP,
            TC_MODEL_N_MELS);
    fprintf(g_consts, "fmin %a\nfmax %a\nwindow_samples %d\nframes_per_window %d\n",
            (double)TC_MODEL_FMIN, (double)TC_MODEL_FMAX, TC_WINDOW_SAMPLES,
            TC_FRAMES_PER_WINDOW);
#ifdef TC_LOGIT_SCALE
    fprintf(g_consts, "logit_scale %a\n", (double)TC_LOGIT_SCALE);
#endif
    return fclose(g_consts) == 0 ? 0 : 2;
}
