/*
 * tc_classify.c - int8 zero-shot classification. See tc_classify.h.
 */
#include "tc_classify.h"

#include <math.h>

int8_t tc_quantize(float x, float scale, int32_t zero_point)
{
    float r = roundf(x / scale);
    int32_t v;
    if (r != r) {
        r = 0.0f; /* NaN */
    }
    /* Clamp before converting: a float outside int32 would be undefined
     * behaviour, and zero_point is in [-128, 127], so +-255 clamps the same. */
    if (r > 255.0f) {
        r = 255.0f;
    } else if (r < -255.0f) {
        r = -255.0f;
    }
    v = (int32_t)r + zero_point;
    if (v > 127) {
        v = 127;
    } else if (v < -128) {
        v = -128;
    }
    return (int8_t)v;
}

void tc_quantize_array(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = tc_quantize(x[i], scale, zero_point);
    }
}

float tc_dequantize(int8_t q, float scale, int32_t zero_point)
{
    return (float)((int32_t)q - zero_point) * scale;
}

float tc_quantize_embedding(const float *e, size_t dim, int8_t *out)
{
    float maxabs = 0.0f;
    float inv;
    size_t i;
    for (i = 0; i < dim; ++i) {
        const float a = fabsf(e[i]);
        if (a > maxabs) {
            maxabs = a;
        }
    }
    if (!(maxabs > 0.0f)) {
        for (i = 0; i < dim; ++i) {
            out[i] = 0;
        }
        return 0.0f;
    }
    inv = 127.0f / maxabs;
    for (i = 0; i < dim; ++i) {
        float r = roundf(e[i] * inv);
        if (r > 127.0f) {
            r = 127.0f;
        } else if (r < -127.0f) {
            r = -127.0f;
        }
        out[i] = (int8_t)r;
    }
    return maxabs / 127.0f;
}

static int32_t dot(const int8_t *emb, int32_t emb_zero_point, const int8_t *row, size_t dim)
{
    int32_t acc = 0;
    size_t i;
    for (i = 0; i < dim; ++i) {
        acc += ((int32_t)emb[i] - emb_zero_point) * (int32_t)row[i];
    }
    return acc;
}

void tc_scores(const int8_t *emb, int32_t emb_zero_point, const int8_t *bank, size_t n_classes,
               size_t dim, int32_t *scores)
{
    size_t c;
    for (c = 0; c < n_classes; ++c) {
        scores[c] = dot(emb, emb_zero_point, bank + c * dim, dim);
    }
}

int tc_classify(const int8_t *emb, int32_t emb_zero_point, const int8_t *bank, size_t n_classes,
                size_t dim, int32_t *scores)
{
    int best = -1;
    int32_t best_score = 0;
    size_t c;
    for (c = 0; c < n_classes; ++c) {
        const int32_t s = dot(emb, emb_zero_point, bank + c * dim, dim);
        if (scores != NULL) {
            scores[c] = s;
        }
        if (best < 0 || s > best_score) { /* strict: ties keep the lower index */
            best = (int)c;
            best_score = s;
        }
    }
    return best;
}

size_t tc_topk(const int32_t *scores, size_t n, size_t k, int *idx)
{
    size_t out = 0;
    if (k > n) {
        k = n;
    }
    /* Repeated selection: the j-th best is the best score strictly below the
     * (j-1)-th in (score desc, index asc) order. */
    while (out < k) {
        int best = -1;
        size_t c;
        for (c = 0; c < n; ++c) {
            if (out > 0) {
                const int prev = idx[out - 1];
                const int32_t ps = scores[prev];
                /* c must come after prev in (score desc, index asc) order */
                if (!(scores[c] < ps || (scores[c] == ps && (int)c > prev))) {
                    continue;
                }
            }
            if (best < 0 || scores[c] > scores[best]) {
                best = (int)c;
            }
        }
        idx[out++] = best;
    }
    return out;
}

float tc_score_to_cosine(int32_t score, float emb_scale, float bank_scale)
{
    return (float)score * emb_scale * bank_scale;
}
