/*
 * classify_host.c - run tc_classify.c on files (host test driver).
 *
 *   classify_host int8  EMB.i8  B DIM ZP BANK.i8 C K OUT
 *   classify_host float EMB.f32 B DIM 0  BANK.i8 C K OUT
 *   classify_host affine X.f32 SCALE ZP OUT.i8
 *
 * int8: B embeddings already int8 with zero point ZP (a TFLite output).
 * float: B float embeddings, quantised per vector by tc_quantize_embedding.
 * Writes OUT.scores (int32 B x C), OUT.best (int32 B), OUT.topk (int32 B x K),
 * (K is capped at C), and for float also OUT.q (int8 B x DIM) and OUT.scale (float32 B).
 * affine: tc_quantize_array over X with SCALE and ZP (TFLite QUANTIZE).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_io.h"
#include "tc_classify.h"

static void write_named(const char *prefix, const char *ext, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    host_write_file(path, data, n);
}

static int run_classify(int is_float, char **a)
{
    size_t emb_bytes;
    size_t bank_bytes;
    const size_t batch = strtoul(a[1], NULL, 10);
    const size_t dim = strtoul(a[2], NULL, 10);
    const int32_t zp = (int32_t)strtol(a[3], NULL, 10);
    const size_t classes = strtoul(a[5], NULL, 10);
    const size_t k_asked = strtoul(a[6], NULL, 10);
    const size_t k = k_asked < classes ? k_asked : classes; /* tc_topk gives min(k, C) */
    const char *out = a[7];
    void *emb = host_read_file(a[0], &emb_bytes);
    int8_t *bank = (int8_t *)host_read_file(a[4], &bank_bytes);
    int32_t *scores = (int32_t *)malloc(batch * classes * sizeof(int32_t));
    int32_t *best = (int32_t *)malloc(batch * sizeof(int32_t));
    int *topk = (int *)malloc(batch * k * sizeof(int));
    int32_t *topk32 = (int32_t *)malloc(batch * k * sizeof(int32_t));
    int8_t *q = (int8_t *)malloc(batch * dim);
    float *scale = (float *)malloc(batch * sizeof(float));
    size_t b;
    size_t j;
    if (!scores || !best || !topk || !topk32 || !q || !scale) {
        return 2;
    }
    if (bank_bytes != classes * dim || emb_bytes != batch * dim * (is_float ? sizeof(float) : 1)) {
        fprintf(stderr, "file sizes do not match B=%lu DIM=%lu C=%lu\n", (unsigned long)batch,
                (unsigned long)dim, (unsigned long)classes);
        return 3;
    }
    for (b = 0; b < batch; ++b) {
        int8_t *e = q + b * dim;
        if (is_float) {
            scale[b] = tc_quantize_embedding((const float *)emb + b * dim, dim, e);
        } else {
            memcpy(e, (const int8_t *)emb + b * dim, dim);
        }
        best[b] = tc_classify(e, zp, bank, classes, dim, scores + b * classes);
        if (tc_topk(scores + b * classes, classes, k_asked, topk + b * k) != k) {
            return 4;
        }
        for (j = 0; j < k; ++j) {
            topk32[b * k + j] = (int32_t)topk[b * k + j];
        }
    }
    write_named(out, "scores", scores, batch * classes * sizeof(int32_t));
    write_named(out, "best", best, batch * sizeof(int32_t));
    write_named(out, "topk", topk32, batch * k * sizeof(int32_t));
    if (is_float) {
        write_named(out, "q", q, batch * dim);
        write_named(out, "scale", scale, batch * sizeof(float));
    }
    free(emb);
    free(bank);
    free(scores);
    free(best);
    free(topk);
    free(topk32);
    free(q);
    free(scale);
    return 0;
}

static int run_affine(char **a)
{
    size_t bytes;
    float *x = (float *)host_read_file(a[0], &bytes);
    const float scale = strtof(a[1], NULL);
    const int32_t zp = (int32_t)strtol(a[2], NULL, 10);
    const size_t n = bytes / sizeof(float);
    int8_t *q = (int8_t *)malloc(n + 1);
    if (q == NULL) {
        return 2;
    }
    tc_quantize_array(x, n, scale, zp, q);
    host_write_file(a[3], q, n);
    free(q);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 10 && strcmp(argv[1], "int8") == 0) {
        return run_classify(0, argv + 2);
    }
    if (argc == 10 && strcmp(argv[1], "float") == 0) {
        return run_classify(1, argv + 2);
    }
    if (argc == 6 && strcmp(argv[1], "affine") == 0) {
        return run_affine(argv + 2);
    }
    fprintf(stderr, "usage: %s int8|float EMB B DIM ZP BANK C K OUT | affine X SCALE ZP OUT\n",
            argv[0]);
    return 1;
}
