/*
 * logmel_host.c - run the C front end on raw float32 audio (host test driver).
 *
 *   logmel_host buffer IN.f32 OUT.f32   whole buffer, centre reflect padding
 *                                       (tc_logmel_buffer); OUT is (T, n_mels)
 *   logmel_host frames IN.f32 OUT.f32   IN holds T ready-made frames of n_fft
 *                                       samples (tc_logmel_frame on each)
 *   logmel_host buffer_i16 IN.s16 OUT.f32   the same two on raw int16 PCM
 *   logmel_host frames_i16 IN.s16 OUT.f32   (native byte order), through the
 *                                       _i16 entry points
 *   logmel_host tables OUT.bin          the compiled tables, as tc_float_t:
 *                                       window, cos, sin, mel weights
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_io.h"
#include "tc_logmel.h"
#include "tc_logmel_tables.h"

static tc_logmel_t g_logmel; /* static, as on a device */

/* Whole buffer: float32 samples, or int16 PCM when i16 is set. */
static int run_buffer(const char *in, const char *out, int i16)
{
    size_t bytes;
    void *wave = host_read_file(in, &bytes);
    const size_t n = bytes / (i16 ? sizeof(int16_t) : sizeof(float));
    const size_t frames = tc_logmel_frames(n);
    float *mel = (float *)malloc(frames * TC_LOGMEL_N_MELS * sizeof(float));
    long got;
    if (mel == NULL) {
        return 2;
    }
    got = i16 ? tc_logmel_buffer_i16(&g_logmel, (const int16_t *)wave, n, mel, frames)
              : tc_logmel_buffer(&g_logmel, (const float *)wave, n, mel, frames);
    if (got < 0) {
        fprintf(stderr, "%s: %lu samples is too short for n_fft=%d\n", in, (unsigned long)n,
                TC_LOGMEL_N_FFT);
        return 3;
    }
    host_write_file(out, mel, (size_t)got * TC_LOGMEL_N_MELS * sizeof(float));
    free(mel);
    free(wave);
    return 0;
}

/* Ready-made frames of n_fft samples: float32, or int16 PCM when i16 is set. */
static int run_frames(const char *in, const char *out, int i16)
{
    size_t bytes;
    void *frames = host_read_file(in, &bytes);
    const size_t t_count = bytes / (TC_LOGMEL_N_FFT * (i16 ? sizeof(int16_t) : sizeof(float)));
    float *mel = (float *)malloc((t_count + 1) * TC_LOGMEL_N_MELS * sizeof(float));
    size_t t;
    if (mel == NULL) {
        return 2;
    }
    for (t = 0; t < t_count; ++t) {
        if (i16) {
            tc_logmel_frame_i16(&g_logmel, (const int16_t *)frames + t * TC_LOGMEL_N_FFT,
                                mel + t * TC_LOGMEL_N_MELS);
        } else {
            tc_logmel_frame(&g_logmel, (const float *)frames + t * TC_LOGMEL_N_FFT,
                            mel + t * TC_LOGMEL_N_MELS);
        }
    }
    host_write_file(out, mel, t_count * TC_LOGMEL_N_MELS * sizeof(float));
    free(mel);
    free(frames);
    return 0;
}

static int run_tables(const char *out)
{
    FILE *f = fopen(out, "wb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot write\n", out);
        return 2;
    }
    fwrite(tc_logmel_window, sizeof(tc_float_t), TC_LOGMEL_N_FFT, f);
    fwrite(tc_logmel_cos, sizeof(tc_float_t), TC_LOGMEL_N_FFT / 2, f);
    fwrite(tc_logmel_sin, sizeof(tc_float_t), TC_LOGMEL_N_FFT / 2, f);
    fwrite(tc_logmel_mel_weights, sizeof(tc_float_t), TC_LOGMEL_MEL_NNZ, f);
    fwrite(tc_logmel_mel_start, sizeof(uint16_t), TC_LOGMEL_N_MELS, f);
    fwrite(tc_logmel_mel_len, sizeof(uint16_t), TC_LOGMEL_N_MELS, f);
    fwrite(tc_logmel_mel_offset, sizeof(uint16_t), TC_LOGMEL_N_MELS, f);
    return fclose(f) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    tc_logmel_init(&g_logmel);
    if (argc == 4 && strcmp(argv[1], "buffer") == 0) {
        return run_buffer(argv[2], argv[3], 0);
    }
    if (argc == 4 && strcmp(argv[1], "frames") == 0) {
        return run_frames(argv[2], argv[3], 0);
    }
    if (argc == 4 && strcmp(argv[1], "buffer_i16") == 0) {
        return run_buffer(argv[2], argv[3], 1);
    }
    if (argc == 4 && strcmp(argv[1], "frames_i16") == 0) {
        return run_frames(argv[2], argv[3], 1);
    }
    if (argc == 3 && strcmp(argv[1], "tables") == 0) {
        return run_tables(argv[2]);
    }
    fprintf(stderr, "usage: %s buffer|frames IN.f32 OUT.f32 | buffer_i16|frames_i16 IN.s16 OUT.f32 | tables OUT.bin\n",
            argv[0]);
    return 1;
}
