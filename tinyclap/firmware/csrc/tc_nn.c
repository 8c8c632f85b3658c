/* tc_nn: see tc_nn.h. Every kernel follows TFLM's reference kernel of the same op (int8 / float32). */
#include "tc_nn.h"

#include <float.h>
#include <math.h>
#include <string.h>

#ifndef TC_NN_SINGLE_ROUNDING
#define TC_NN_SINGLE_ROUNDING 0
#endif

#if defined(__ARM_FEATURE_DSP) && !defined(TC_NN_NO_DSP)
#include <arm_acle.h>
#define TC_NN_DSP 1
#else
#define TC_NN_DSP 0
#endif

static int32_t clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    /* std::max then std::min, as the reference kernels clamp */
    x = x < lo ? lo : x;
    return hi < x ? hi : x;
}

#if TC_NN_SINGLE_ROUNDING
int32_t tc_nn_requant(int32_t x, int32_t multiplier, int32_t shift)
{
    /* TFLITE_SINGLE_ROUNDING: one rounding of the 64-bit product. */
    const int32_t total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    const int64_t result = ((int64_t)x * (int64_t)multiplier + round) >> total_shift;
    return (int32_t)result;
}
#else
/* gemmlowp::SaturatingRoundingDoublingHighMul */
static int32_t srdhm(int32_t a, int32_t b)
{
    const int overflow = (a == b) && (a == INT32_MIN);
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    const int32_t high = (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C99: truncates toward zero */
    return overflow ? INT32_MAX : high;
}

/* gemmlowp::RoundingDivideByPOT: round half away from zero */
static int32_t rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t tc_nn_requant(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    /* x * (1 << left) with the wrap-around of the C++ original, without signed overflow */
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return rdbpot(srdhm(shifted, multiplier), right);
}
#endif

/* acc + sum(a[i] * b[i]) over int8 vectors. The int32 sum is exact (no kernel here comes near
   2^31), so any order gives TFLM's value: the DSP path (Cortex-M4/M7 SMLAD, two 16x16 MACs per
   instruction) is bit-identical to the plain loop (tests/test_firmware_net.py runs both in QEMU). */
static int32_t dot_s8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if TC_NN_DSP
    for (; i + 4 <= n; i += 4) {
        int32_t x, w;
        memcpy(&x, a + i, 4); /* one LDR: unaligned loads are fine on v7E-M */
        memcpy(&w, b + i, 4);
        acc = __smlad(__sxtb16(x), __sxtb16(w), acc); /* bytes 0 and 2 */
        x = (int32_t)(((uint32_t)x >> 8) | ((uint32_t)x << 24));
        w = (int32_t)(((uint32_t)w >> 8) | ((uint32_t)w << 24));
        acc = __smlad(__sxtb16(x), __sxtb16(w), acc); /* bytes 1 and 3 */
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* ----------------------------------------------------------------------------------- CONV_2D */

void tc_conv_s8(const tc_conv_s8_t *p, const int8_t *in, int8_t *out)
{
    const int32_t groups_out = p->out_c / (p->in_c / p->filter_in_c); /* filters per group */
    const int32_t kstride = p->k_h * p->k_w * p->filter_in_c;
    int32_t b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int64_t)b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                if (p->folded && p->k_h == 1 && p->k_w == 1 && p->filter_in_c == p->in_c) {
                    /* pointwise, no padding: acc = (bias + in_offset * sum(w)) + sum(w * x) */
                    const int8_t *px = in_b + ((int64_t)iy0 * p->in_w + ix0) * p->in_c;
                    for (oc = 0; oc < p->out_c; ++oc) {
                        int32_t acc = dot_s8(p->filter + (int64_t)oc * kstride, px, p->in_c, p->bias[oc]);
                        acc = tc_nn_requant(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                        *out++ = (int8_t)clamp_i32(acc, p->act_min, p->act_max);
                    }
                    continue;
                }
                for (oc = 0; oc < p->out_c; ++oc) {
                    const int32_t group = oc / groups_out;
                    const int8_t *w = p->filter + (int64_t)oc * kstride;
                    int32_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = iy0 + p->dil_h * ky;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = ix0 + p->dil_w * kx;
                            const int8_t *px;
                            const int8_t *wk;
                            if (ix < 0 || ix >= p->in_w || iy < 0 || iy >= p->in_h) {
                                continue;
                            }
                            px = in_b + ((int64_t)iy * p->in_w + ix) * p->in_c + (int64_t)group * p->filter_in_c;
                            wk = w + ((int64_t)ky * p->k_w + kx) * p->filter_in_c;
                            if (p->folded) {
                                acc = dot_s8(wk, px, p->filter_in_c, acc);
                            } else {
                                for (ic = 0; ic < p->filter_in_c; ++ic) {
                                    acc += (int32_t)wk[ic] * ((int32_t)px[ic] + p->in_offset);
                                }
                            }
                        }
                    }
                    if (p->bias != 0) {
                        acc += p->bias[oc];
                    }
                    acc = tc_nn_requant(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                    *out++ = (int8_t)clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------- DEPTHWISE_CONV_2D */

void tc_dwconv_s8(const tc_dwconv_s8_t *p, const int8_t *in, int8_t *out)
{
    int32_t b, oy, ox, ic, m, ky, kx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int64_t)b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (ic = 0; ic < p->in_c; ++ic) {
                    for (m = 0; m < p->depth_mult; ++m) {
                        const int32_t oc = m + ic * p->depth_mult;
                        int32_t acc = 0;
                        for (ky = 0; ky < p->k_h; ++ky) {
                            const int32_t iy = iy0 + p->dil_h * ky;
                            if (iy < 0 || iy >= p->in_h) {
                                continue;
                            }
                            for (kx = 0; kx < p->k_w; ++kx) {
                                const int32_t ix = ix0 + p->dil_w * kx;
                                int32_t x;
                                if (ix < 0 || ix >= p->in_w) {
                                    continue;
                                }
                                x = in_b[((int64_t)iy * p->in_w + ix) * p->in_c + ic];
                                if (!p->folded) {
                                    x += p->in_offset;
                                }
                                acc += (int32_t)p->filter[((int64_t)ky * p->k_w + kx) * p->out_c + oc] * x;
                            }
                        }
                        if (p->bias != 0) {
                            acc += p->bias[oc];
                        }
                        acc = tc_nn_requant(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                        out[((((int64_t)b * p->out_h + oy) * p->out_w) + ox) * p->out_c + oc] =
                            (int8_t)clamp_i32(acc, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* --------------------------------------------------------------------------- FULLY_CONNECTED */

void tc_fc_s8(const tc_fc_s8_t *p, const int8_t *in, int8_t *out)
{
    int32_t b, n, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = in + (int64_t)b * p->in_k;
        for (n = 0; n < p->out_n; ++n) {
            const int8_t *w = p->filter + (int64_t)n * p->in_k;
            int32_t acc = 0;
            if (p->folded) {
                acc = dot_s8(w, x, p->in_k, acc);
            } else {
                for (k = 0; k < p->in_k; ++k) {
                    acc += (int32_t)w[k] * ((int32_t)x[k] + p->in_offset);
                }
            }
            if (p->bias != 0) {
                acc += p->bias[n];
            }
            acc = tc_nn_requant(acc, p->mult[n], p->shift[n]) + p->out_offset;
            out[(int64_t)b * p->out_n + n] = (int8_t)clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}

/* ------------------------------------------------------------------ broadcast walks (binary ops) */

static int32_t bcast_total(const tc_bcast_t *b)
{
    int32_t d, total = 1;
    for (d = 0; d < b->ndim; ++d) {
        total *= b->dims[d];
    }
    return total;
}

/* advance a row-major walk by one element; o1/o2 follow the inputs' strides */
static void bcast_next(const tc_bcast_t *b, int32_t *idx, int32_t *o1, int32_t *o2)
{
    int32_t d;
    for (d = b->ndim - 1; d >= 0; --d) {
        ++idx[d];
        *o1 += b->stride1[d];
        *o2 += b->stride2[d];
        if (idx[d] < b->dims[d]) {
            return;
        }
        *o1 -= b->stride1[d] * b->dims[d];
        *o2 -= b->stride2[d] * b->dims[d];
        idx[d] = 0;
    }
}

void tc_add_s8(const tc_add_s8_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int32_t idx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t i, o1 = 0, o2 = 0;
    const int32_t total = bcast_total(&p->b);
    for (i = 0; i < total; ++i) {
        const int32_t x = (p->in1_offset + a[o1]) * (1 << p->left_shift);
        const int32_t y = (p->in2_offset + b[o2]) * (1 << p->left_shift);
        const int32_t sx = tc_nn_requant(x, p->in1_mult, p->in1_shift);
        const int32_t sy = tc_nn_requant(y, p->in2_mult, p->in2_shift);
        const int32_t r = tc_nn_requant(sx + sy, p->out_mult, p->out_shift) + p->out_offset;
        out[i] = (int8_t)clamp_i32(r, p->act_min, p->act_max);
        bcast_next(&p->b, idx, &o1, &o2);
    }
}

void tc_mul_s8(const tc_mul_s8_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int32_t idx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t i, o1 = 0, o2 = 0;
    const int32_t total = bcast_total(&p->b);
    for (i = 0; i < total; ++i) {
        const int32_t x = p->in1_offset + a[o1];
        const int32_t y = p->in2_offset + b[o2];
        const int32_t r = p->out_offset + tc_nn_requant(x * y, p->out_mult, p->out_shift);
        out[i] = (int8_t)clamp_i32(r, p->act_min, p->act_max);
        bcast_next(&p->b, idx, &o1, &o2);
    }
}

void tc_binary_f32(const tc_binary_f32_t *p, const float *a, const float *b, float *out)
{
    int32_t idx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t i, o1 = 0, o2 = 0;
    const int32_t total = bcast_total(&p->b);
    for (i = 0; i < total; ++i) {
        const float x = a[o1];
        const float y = b[o2];
        float r;
        switch (p->op) {
        case TC_F32_ADD:
            r = x + y;
            break;
        case TC_F32_SUB:
            r = x - y;
            break;
        case TC_F32_MUL:
            r = x * y;
            break;
        default: {
            const float d = x - y;
            r = d * d;
            break;
        }
        }
        if (p->clamp) {
            /* ActivationFunctionWithMinMax: std::min(std::max(r, lo), hi) */
            r = r < p->act_min ? p->act_min : r;
            r = p->act_max < r ? p->act_max : r;
        }
        out[i] = r;
        bcast_next(&p->b, idx, &o1, &o2);
    }
}

/* --------------------------------------------------------------------------------- reductions */

static int32_t walk_next(int32_t n, const int32_t *dims, const int32_t *strides, int32_t *idx, int32_t *off)
{
    int32_t d;
    for (d = n - 1; d >= 0; --d) {
        ++idx[d];
        *off += strides[d];
        if (idx[d] < dims[d]) {
            return 1;
        }
        *off -= strides[d] * dims[d];
        idx[d] = 0;
    }
    return 0;
}

static int32_t walk_total(int32_t n, const int32_t *dims)
{
    int32_t d, total = 1;
    for (d = 0; d < n; ++d) {
        total *= dims[d];
    }
    return total;
}

void tc_mean_s8(const tc_mean_s8_t *p, const int8_t *in, int8_t *out)
{
    const tc_reduce_t *r = &p->r;
    int32_t oidx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t o, ooff = 0;
    const int32_t n_out = walk_total(r->n_out, r->out_dims);
    const int32_t n_red = walk_total(r->n_red, r->red_dims);
    for (o = 0; o < n_out; ++o) {
        int32_t ridx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
        int32_t j, roff = 0, sum = 0, q;
        for (j = 0; j < n_red; ++j) {
            sum += in[ooff + roff];
            walk_next(r->n_red, r->red_dims, r->red_strides, ridx, &roff);
        }
        /* (int32)(sum - zp * count), computed in 64 bits as TFLM does */
        q = (int32_t)((int64_t)sum - (int64_t)p->in_zp * (int64_t)r->count);
        q = tc_nn_requant(q, p->mult, p->shift) + p->out_zp;
        out[o] = (int8_t)clamp_i32(q, -128, 127);
        walk_next(r->n_out, r->out_dims, r->out_strides, oidx, &ooff);
    }
}

static void reduce_sum_f32(const tc_reduce_t *r, const float *in, float *out, int mean)
{
    int32_t oidx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t o, ooff = 0;
    const int32_t n_out = walk_total(r->n_out, r->out_dims);
    const int32_t n_red = walk_total(r->n_red, r->red_dims);
    for (o = 0; o < n_out; ++o) {
        int32_t ridx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
        int32_t j, roff = 0;
        float sum = 0.0f;
        for (j = 0; j < n_red; ++j) { /* in input order, as TFLM's Reduce walks the input */
            sum = sum + in[ooff + roff];
            walk_next(r->n_red, r->red_dims, r->red_strides, ridx, &roff);
        }
        out[o] = mean ? sum / (float)r->count : sum;
        walk_next(r->n_out, r->out_dims, r->out_strides, oidx, &ooff);
    }
}

void tc_mean_f32(const tc_reduce_t *r, const float *in, float *out)
{
    reduce_sum_f32(r, in, out, 1);
}

void tc_sum_f32(const tc_reduce_t *r, const float *in, float *out)
{
    reduce_sum_f32(r, in, out, 0);
}

/* ------------------------------------------------------------------------ TRANSPOSE and PAD */

void tc_copy_s8(const tc_copy_t *p, int8_t pad_value, const int8_t *in, int8_t *out)
{
    int32_t idx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t soff = 0, doff = p->dst_base;
    const int32_t total = walk_total(p->ndim, p->dims);
    int32_t i;
    if (p->fill_count > 0) {
        memset(out, (unsigned char)pad_value, (size_t)p->fill_count);
    }
    for (i = 0; i < total; ++i) {
        int32_t d;
        out[doff] = in[soff];
        for (d = p->ndim - 1; d >= 0; --d) {
            ++idx[d];
            soff += p->src_strides[d];
            doff += p->dst_strides[d];
            if (idx[d] < p->dims[d]) {
                break;
            }
            soff -= p->src_strides[d] * p->dims[d];
            doff -= p->dst_strides[d] * p->dims[d];
            idx[d] = 0;
        }
    }
}

void tc_copy_f32(const tc_copy_t *p, float pad_value, const float *in, float *out)
{
    int32_t idx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int32_t soff = 0, doff = p->dst_base;
    const int32_t total = walk_total(p->ndim, p->dims);
    int32_t i;
    for (i = 0; i < p->fill_count; ++i) {
        out[i] = pad_value;
    }
    for (i = 0; i < total; ++i) {
        int32_t d;
        out[doff] = in[soff];
        for (d = p->ndim - 1; d >= 0; --d) {
            ++idx[d];
            soff += p->src_strides[d];
            doff += p->dst_strides[d];
            if (idx[d] < p->dims[d]) {
                break;
            }
            soff -= p->src_strides[d] * p->dims[d];
            doff -= p->dst_strides[d] * p->dims[d];
            idx[d] = 0;
        }
    }
}

/* ------------------------------------------------------------------- QUANTIZE, DEQUANTIZE, RSQRT */

void tc_quantize_f32_s8(int32_t n, float scale, int32_t zero_point, const float *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        /* TFLM AffineQuantize: TfLiteRound(val / (float)scale) + zero_point, clamped */
        float r = roundf(in[i] / scale);
        int32_t q;
        if (!(r >= -1024.0f && r <= 1024.0f)) { /* beyond int8 anyway (NaN: lowest, as x86 TFLM gives) */
            r = r > 0.0f ? 1024.0f : -1024.0f;
        }
        q = (int32_t)r + zero_point;
        out[i] = (int8_t)clamp_i32(q, -128, 127);
    }
}

void tc_dequantize_s8_f32(int32_t n, float scale, int32_t zero_point, const int8_t *in, float *out)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        /* TFLM: (float)(double scale * (v - zp)); exact in float: |v - zp| < 2^8, scale has 24 bits */
        out[i] = scale * (float)((int32_t)in[i] - zero_point);
    }
}

void tc_rsqrt_f32(int32_t n, const float *in, float *out)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = 1.0f / sqrtf(in[i]);
    }
}
