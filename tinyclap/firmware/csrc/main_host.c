/*
 * main_host.c - the firmware's app loop (tc_app.c, the generated network) as a host program.
 *
 *     build/host/tinyclap_host INPUT.bin
 *
 * Same input file as main_qemu.c ("TCIN", uint32 clips, per clip uint32 samples
 * + int16 PCM), same cutting into windows, same output lines minus the
 * instruction counts (ticks are 0), so a host build and the emulated image can
 * be compared line for line. Host I/O only: the app itself allocates nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tc_app.h"
#include "tinyclap_model.h"

#ifndef TC_TOPK
#define TC_TOPK 5
#endif
#define TC_K (TC_TOPK < TC_N_CLASSES ? TC_TOPK : TC_N_CLASSES)

static int16_t g_window[TC_WINDOW_SAMPLES];

static int read_u32(FILE *f, uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return 0;
}

static int fail(const char *why) {
    printf("TC error %s\n", why);
    return 1;
}

int main(int argc, char **argv) {
    FILE *f;
    char magic[4];
    uint32_t clips, c, i;
    if (argc != 2) {
        fprintf(stderr, "usage: %s INPUT.bin\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (f == NULL) return fail("cannot open the input file");
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "TCIN", 4) != 0) return fail("input file is not TCIN");
    if (read_u32(f, &clips) != 0) return fail("input file ends early");
    if (tc_app_init() != 0) return fail("tc_app_init failed");
    for (c = 0; c < clips; ++c) {
        uint32_t n, windows, w;
        int top[TC_K];
        float cosine[TC_K];
        if (read_u32(f, &n) != 0 || n == 0) return fail("input file ends early");
        if (n <= TC_WINDOW_SAMPLES) {
            windows = 1;
            if (fread(g_window, sizeof(int16_t), n, f) != n) return fail("input file ends early");
            for (i = n; i < TC_WINDOW_SAMPLES; ++i) g_window[i] = g_window[i % n];
            if (tc_app_push_window(g_window) != 0) return fail("tc_app_push_window failed");
        } else {
            windows = n / TC_WINDOW_SAMPLES;
            for (w = 0; w < windows; ++w) {
                if (fread(g_window, sizeof(int16_t), TC_WINDOW_SAMPLES, f) != TC_WINDOW_SAMPLES) {
                    return fail("input file ends early");
                }
                if (tc_app_push_window(g_window) != 0) return fail("tc_app_push_window failed");
            }
            if (fseek(f, (long)((n - windows * TC_WINDOW_SAMPLES) * sizeof(int16_t)), SEEK_CUR) != 0) {
                return fail("input file ends early");
            }
        }
        if (tc_app_finish(top, TC_K, cosine) < 0) return fail("tc_app_finish failed");
        printf("TC clip %u %u %u top %d", (unsigned)c, (unsigned)windows, (unsigned)n, (int)TC_K);
        for (i = 0; i < (uint32_t)TC_K; ++i) printf(" %d %d", top[i], (int)(cosine[i] * 1e6f));
        printf(" ticks 0 0 0\n");
    }
    fclose(f);
    printf("TC arena %u\nTC done %u\n", (unsigned)tc_app_arena_used(0), (unsigned)clips);
    return 0;
}
