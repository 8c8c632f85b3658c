/*
 * tc_classify.h - zero-shot classification against an int8 prompt bank (C99).
 *
 * The bank is C prompt embeddings of dimension k, quantised by tinyclap with
 * ONE symmetric scale for the whole bank (q = round(b / s_bank), |q| <= 127,
 * zero point 0). Because every class shares that scale (and the embedding's
 * scale), the class with the largest integer dot product
 *     score[c] = sum_i (e_q[i] - e_zero_point) * bank_q[c][i]     (int32)
 * is the class with the largest cosine: no float is needed to classify.
 * cosine[c] ~= score[c] * s_emb * s_bank (tc_score_to_cosine).
 *
 * Ties go to the LOWEST class index; tinyclap.export.mcu.classify_int8 (the
 * Python reference) uses the same integer arithmetic and the same rule.
 *
 * int32 accumulation cannot overflow for k < 66,000: each term is at most
 * 255 * 127 in magnitude.
 */
#ifndef TC_CLASSIFY_H
#define TC_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Quantise like TFLite's QUANTIZE op: clamp(round(x / scale) + zero_point,
 * -128, 127), round half away from zero. NaN maps to zero_point. */
int8_t tc_quantize(float x, float scale, int32_t zero_point);

/* tc_quantize over n values (e.g. log-mel features into the model input). */
void tc_quantize_array(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out);

/* Value of an int8 tensor element: (q - zero_point) * scale. */
float tc_dequantize(int8_t q, float scale, int32_t zero_point);

/*
 * Symmetric per-vector quantisation of a float embedding (for a model whose
 * output is float32): out[i] = round(e[i] * 127 / max|e|), zero point 0.
 * Returns the scale max|e| / 127 (0 for an all-zero vector).
 */
float tc_quantize_embedding(const float *e, size_t dim, int8_t *out);

/* Integer scores of one int8 embedding against every bank row (C x dim, row-major). */
void tc_scores(const int8_t *emb, int32_t emb_zero_point, const int8_t *bank, size_t n_classes,
               size_t dim, int32_t *scores);

/*
 * Index of the best class (lowest index on ties). If `scores` is not NULL it
 * receives all n_classes integer scores. Returns -1 if n_classes is 0.
 */
int tc_classify(const int8_t *emb, int32_t emb_zero_point, const int8_t *bank, size_t n_classes,
                size_t dim, int32_t *scores);

/*
 * The k best classes, best first (ties: lower index first), into idx[0..k).
 * Returns the number written, min(k, n). O(n * k), no allocation.
 */
size_t tc_topk(const int32_t *scores, size_t n, size_t k, int *idx);

/* Approximate cosine similarity of an integer score. */
float tc_score_to_cosine(int32_t score, float emb_scale, float bank_scale);

#ifdef __cplusplus
}
#endif

#endif /* TC_CLASSIFY_H */
