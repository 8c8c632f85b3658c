/* tc_nn: see tc_nn.h. Every kernel follows TFLM's reference kernel of the same op (int8 / float32). */
#include "tc_nn.h"

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

static inline int32_t clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    /* std::max then std::min, as the reference kernels clamp */
    x = x < lo ? lo : x;
    return hi < x ? hi : x;
}

#if TC_NN_SINGLE_ROUNDING
static inline int32_t requant(int32_t x, int32_t multiplier, int32_t shift)
{
    /* TFLITE_SINGLE_ROUNDING: one rounding of the 64-bit product. */
    const int32_t total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    const int64_t result = ((int64_t)x * (int64_t)multiplier + round) >> total_shift;
    return (int32_t)result;
}
#else
/* gemmlowp's SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT (TFLM's
   MultiplyByQuantizedMultiplier without TFLITE_SINGLE_ROUNDING), in fewer instructions, exactly:

   - SRDHM(a, b) = trunc((ab + nudge) / 2^31), nudge = 2^30 if ab >= 0 else 1 - 2^30. For ab >= 0 that
     is floor((ab + 2^30) / 2^31). For ab < 0 the sum is negative, so truncation is the ceiling:
     ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31) = floor((ab + 2^30) / 2^31).
     One expression for both signs: (ab + 2^30) >> 31 (one SMULL, an add with carry, a funnel shift).
     Its only saturating case, a == b == INT32_MIN, cannot happen: multipliers are in [0, 2^31).
   - RDBPOT(x, e) = (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)), mask = 2^e - 1, as gemmlowp
     writes it (no addition that could overflow).
   tests/test_firmware_net.py compares the outputs with the tflite-micro interpreter's bit for bit. */
static inline int32_t srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((1u << exponent) - 1u); /* exponent <= 31 */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) - (x >> 31); /* + 1 where x < 0 */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t requant(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = left - shift; /* -shift where shift <= 0, else 0 */
    /* x * (1 << left) with the wrap-around of the C++ original, without signed overflow */
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return rdbpot(srdhm(shifted, multiplier), right);
}
#endif

/* requant through a per-channel table q[6] = {multiplier, left, right', neg, k_lo, k_hi} that netgen
   writes only where it has proven |x| * 2^(left + 1) <= 2^30 for every x the channel can produce.
   With t = x' * multiplier + k - (x' < 0 ? neg : 0) (x' = x << left, k = k_hi * 2^32 + k_lo):
   - shift < 0 (right = -shift >= 1): k = 2^30 + 2^(30 + right), neg = 2^31, right' = right - 1. Then
     floor(t / 2^(31 + right)) is gemmlowp's RoundingDivideByPOT(SRDHM(x', m), right): SRDHM is
     floor((x' m + 2^30) / 2^31) (see srdhm), RDBPOT(h, e) = floor((h + 2^(e-1) - (h < 0)) / 2^e), and
     nested floors by powers of two are one floor; h < 0 exactly where x' < 0, except where
     -2^30 <= x' m < 0, whose result is 0 either way. floor(t / 2^(31 + right)) = hi(t) >> right'.
   - shift >= 0 (right = 0): the table's left is left + 1 (x' still fits: the bound), k = 2^31, neg = 0,
     right' = 0: hi(t) = floor((2 x m + 2^31) / 2^32) = SRDHM(x << left, m).
   The bound keeps t and hi(t) in range. tests/test_firmware_net.py checks the outputs against TFLM. */
static inline int32_t requant_q(int32_t x, const int32_t *q)
{
    const int32_t xs = (int32_t)((uint32_t)x << q[1]);
    const int64_t k = (int64_t)(((uint64_t)(uint32_t)q[5] << 32) | (uint64_t)(uint32_t)q[4]);
    const uint32_t neg = (uint32_t)(xs >> 31) & (uint32_t)q[3];
    const int64_t t = (int64_t)xs * (int64_t)q[0] + k - (int64_t)neg;
    return (int32_t)(t >> 32) >> q[2];
}

/* netgen's tables (rq, the depthwise and ADD lookup tables) hold the default double rounding: a
   -DTC_NN_SINGLE_ROUNDING=1 build ignores them and computes every requantisation itself. */
#if TC_NN_SINGLE_ROUNDING
#define TC_NN_TABLES 0
#define TC_RQ(acc, c) ((void)rq, requant((acc), mult[c], shift[c]))
#else
#define TC_NN_TABLES 1
#define TC_RQ(acc, c) (rq != 0 ? requant_q((acc), rq + 6 * (c)) : requant((acc), mult[c], shift[c]))
#endif

int32_t tc_nn_requant(int32_t x, int32_t multiplier, int32_t shift)
{
    return requant(x, multiplier, shift);
}

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

/* The kernels copy their parameters to locals first: the outputs are int8_t (a character type,
   which may alias anything), so the compiler would otherwise reload every field after each store. */

/* Taps k in [*lo, *hi) of a kernel of k_n taps at origin o (stride dil) that fall inside [0, n). */
static void tap_range(int32_t o, int32_t dil, int32_t k_n, int32_t n, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = k_n;
    while (a < b && o + dil * a < 0) {
        ++a;
    }
    while (b > a && o + dil * (b - 1) >= n) {
        --b;
    }
    *lo = a;
    *hi = b;
}

#define TC_ROR8(v) ((int32_t)(((uint32_t)(v) >> 8) | ((uint32_t)(v) << 24)))

/* Four dot products against one input vector, the four weight rows interleaved by netgen
   (tc_conv_s8_t.interleaved, tc_fc_s8_t.interleaved): for each 4-byte word q of the row, row 0's
   word q, row 1's, row 2's, row 3's; then the four rows' last n % 4 bytes one row after another. One pointer walks the
   weights, each input word is unpacked once for four rows. acc[j] += row_j . x, exactly. */
#if defined(__GNUC__) || defined(__clang__)
#define TC_FORCE_INLINE __attribute__((always_inline)) inline
#else
#define TC_FORCE_INLINE inline
#endif

static TC_FORCE_INLINE void dot4i_s8(const int8_t *w, const int8_t *x, int32_t n, int32_t *acc)
{
    const int32_t n4 = n - n % 4, r = n % 4;
    int32_t i, t, a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if TC_NN_DSP
    for (i = 0; i < n4; i += 4, w += 16) {
        int32_t xv, x02, x13, u;
        memcpy(&xv, x + i, 4);
        x02 = __sxtb16(xv);
        x13 = __sxtb16(TC_ROR8(xv));
        memcpy(&u, w, 4);
        a0 = __smlad(x02, __sxtb16(u), a0);
        a0 = __smlad(x13, __sxtb16(TC_ROR8(u)), a0);
        memcpy(&u, w + 4, 4);
        a1 = __smlad(x02, __sxtb16(u), a1);
        a1 = __smlad(x13, __sxtb16(TC_ROR8(u)), a1);
        memcpy(&u, w + 8, 4);
        a2 = __smlad(x02, __sxtb16(u), a2);
        a2 = __smlad(x13, __sxtb16(TC_ROR8(u)), a2);
        memcpy(&u, w + 12, 4);
        a3 = __smlad(x02, __sxtb16(u), a3);
        a3 = __smlad(x13, __sxtb16(TC_ROR8(u)), a3);
    }
#else
    for (i = 0; i < n4; i += 4, w += 16) {
        const int32_t x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
        a0 += (int32_t)w[0] * x0 + (int32_t)w[1] * x1 + (int32_t)w[2] * x2 + (int32_t)w[3] * x3;
        a1 += (int32_t)w[4] * x0 + (int32_t)w[5] * x1 + (int32_t)w[6] * x2 + (int32_t)w[7] * x3;
        a2 += (int32_t)w[8] * x0 + (int32_t)w[9] * x1 + (int32_t)w[10] * x2 + (int32_t)w[11] * x3;
        a3 += (int32_t)w[12] * x0 + (int32_t)w[13] * x1 + (int32_t)w[14] * x2 + (int32_t)w[15] * x3;
    }
#endif
    for (t = 0; t < r; ++t) {
        const int32_t xi = x[n4 + t];
        a0 += (int32_t)w[t] * xi;
        a1 += (int32_t)w[r + t] * xi;
        a2 += (int32_t)w[2 * r + t] * xi;
        a3 += (int32_t)w[3 * r + t] * xi;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* ----------------------------------------------------------------------------------- CONV_2D */

void tc_conv_s8(const tc_conv_s8_t *p, const int8_t *in, int8_t *out)
{
    const int32_t batches = p->batches, in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, f_c = p->filter_in_c;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, in_offset = p->in_offset, out_offset = p->out_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max, folded = p->folded, interleaved = p->interleaved;
    const int8_t *const filter = p->filter;
    const int32_t *const bias = p->bias;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t *const rq = p->rq;
    const int32_t per_group = out_c / (in_c / f_c); /* filters per group */
    const int32_t kstride = k_h * k_w * f_c;
    const int pointwise = folded && k_h == 1 && k_w == 1 && f_c == in_c;
    int32_t b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < batches; ++b) {
        const int8_t *in_b = in + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            int32_t ky_lo, ky_hi;
            tap_range(iy0, dil_h, k_h, in_h, &ky_lo, &ky_hi);
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                int32_t kx_lo, kx_hi;
                if (pointwise) {
                    /* 1x1, no padding: acc = (bias + in_offset * sum(w)) + sum(w * x) */
                    const int8_t *px = in_b + (iy0 * in_w + ix0) * in_c;
                    const int8_t *w = filter;
                    oc = 0;
#if TC_NN_DSP
                    if (interleaved && ox + 1 < out_w) {
                        /* two pixels at once: each weight word is loaded and unpacked once for both */
                        const int8_t *px1 = px + stride_w * in_c;
                        const int32_t n4 = in_c - in_c % 4, r = in_c % 4;
                        int8_t *out1 = out + out_c;
                        for (; oc + 4 <= out_c; oc += 4, w += 4 * in_c) {
                            int32_t a0 = bias[oc], a1 = bias[oc + 1], a2 = bias[oc + 2], a3 = bias[oc + 3];
                            int32_t c0 = a0, c1 = a1, c2 = a2, c3 = a3, i, t;
                            const int8_t *wp = w;
                            for (i = 0; i < n4; i += 4, wp += 16) {
                                int32_t xv, yv, u;
                                memcpy(&xv, px + i, 4);
                                memcpy(&yv, px1 + i, 4);
                                {
                                    const int32_t x02 = __sxtb16(xv), x13 = __sxtb16(TC_ROR8(xv));
                                    const int32_t y02 = __sxtb16(yv), y13 = __sxtb16(TC_ROR8(yv));
                                    int32_t u02, u13;
                                    memcpy(&u, wp, 4);
                                    u02 = __sxtb16(u);
                                    u13 = __sxtb16(TC_ROR8(u));
                                    a0 = __smlad(x13, u13, __smlad(x02, u02, a0));
                                    c0 = __smlad(y13, u13, __smlad(y02, u02, c0));
                                    memcpy(&u, wp + 4, 4);
                                    u02 = __sxtb16(u);
                                    u13 = __sxtb16(TC_ROR8(u));
                                    a1 = __smlad(x13, u13, __smlad(x02, u02, a1));
                                    c1 = __smlad(y13, u13, __smlad(y02, u02, c1));
                                    memcpy(&u, wp + 8, 4);
                                    u02 = __sxtb16(u);
                                    u13 = __sxtb16(TC_ROR8(u));
                                    a2 = __smlad(x13, u13, __smlad(x02, u02, a2));
                                    c2 = __smlad(y13, u13, __smlad(y02, u02, c2));
                                    memcpy(&u, wp + 12, 4);
                                    u02 = __sxtb16(u);
                                    u13 = __sxtb16(TC_ROR8(u));
                                    a3 = __smlad(x13, u13, __smlad(x02, u02, a3));
                                    c3 = __smlad(y13, u13, __smlad(y02, u02, c3));
                                }
                            }
                            for (t = 0; t < r; ++t) {
                                const int32_t xi = px[n4 + t], yi = px1[n4 + t];
                                const int32_t w0 = wp[t], w1 = wp[r + t], w2 = wp[2 * r + t], w3 = wp[3 * r + t];
                                a0 += w0 * xi;
                                a1 += w1 * xi;
                                a2 += w2 * xi;
                                a3 += w3 * xi;
                                c0 += w0 * yi;
                                c1 += w1 * yi;
                                c2 += w2 * yi;
                                c3 += w3 * yi;
                            }
                            out[0] = (int8_t)clamp_i32(TC_RQ(a0, oc) + out_offset, act_min, act_max);
                            out[1] = (int8_t)clamp_i32(TC_RQ(a1, oc + 1) + out_offset, act_min, act_max);
                            out[2] = (int8_t)clamp_i32(TC_RQ(a2, oc + 2) + out_offset, act_min, act_max);
                            out[3] = (int8_t)clamp_i32(TC_RQ(a3, oc + 3) + out_offset, act_min, act_max);
                            out1[0] = (int8_t)clamp_i32(TC_RQ(c0, oc) + out_offset, act_min, act_max);
                            out1[1] = (int8_t)clamp_i32(TC_RQ(c1, oc + 1) + out_offset, act_min, act_max);
                            out1[2] = (int8_t)clamp_i32(TC_RQ(c2, oc + 2) + out_offset, act_min, act_max);
                            out1[3] = (int8_t)clamp_i32(TC_RQ(c3, oc + 3) + out_offset, act_min, act_max);
                            out += 4;
                            out1 += 4;
                        }
                        for (; oc < out_c; ++oc, w += in_c) { /* the last out_c % 4 rows, both pixels */
                            int32_t acc = bias[oc], acc1 = acc, i;
                            for (i = 0; i + 4 <= in_c; i += 4) {
                                int32_t u, xv, yv, u02, u13;
                                memcpy(&u, w + i, 4);
                                memcpy(&xv, px + i, 4);
                                memcpy(&yv, px1 + i, 4);
                                u02 = __sxtb16(u);
                                u13 = __sxtb16(TC_ROR8(u));
                                acc = __smlad(__sxtb16(TC_ROR8(xv)), u13, __smlad(__sxtb16(xv), u02, acc));
                                acc1 = __smlad(__sxtb16(TC_ROR8(yv)), u13, __smlad(__sxtb16(yv), u02, acc1));
                            }
                            for (; i < in_c; ++i) {
                                acc += (int32_t)w[i] * px[i];
                                acc1 += (int32_t)w[i] * px1[i];
                            }
                            *out++ = (int8_t)clamp_i32(TC_RQ(acc, oc) + out_offset, act_min, act_max);
                            *out1++ = (int8_t)clamp_i32(TC_RQ(acc1, oc) + out_offset, act_min, act_max);
                        }
                        out = out1; /* past the second pixel */
                        ++ox;
                        continue;
                    }
#endif
                    if (interleaved) {
                        for (; oc + 4 <= out_c; oc += 4, w += 4 * in_c) {
                            int32_t acc[4];
                            acc[0] = bias[oc];
                            acc[1] = bias[oc + 1];
                            acc[2] = bias[oc + 2];
                            acc[3] = bias[oc + 3];
                            dot4i_s8(w, px, in_c, acc);
                            out[0] = (int8_t)clamp_i32(TC_RQ(acc[0], oc) + out_offset, act_min, act_max);
                            out[1] = (int8_t)clamp_i32(TC_RQ(acc[1], oc + 1) + out_offset, act_min, act_max);
                            out[2] = (int8_t)clamp_i32(TC_RQ(acc[2], oc + 2) + out_offset, act_min, act_max);
                            out[3] = (int8_t)clamp_i32(TC_RQ(acc[3], oc + 3) + out_offset, act_min, act_max);
                            out += 4;
                        }
                    }
                    for (; oc < out_c; ++oc, w += in_c) { /* plain rows: all of them, or the last out_c % 4 */
                        int32_t acc = dot_s8(w, px, in_c, bias[oc]);
                        acc = TC_RQ(acc, oc) + out_offset;
                        *out++ = (int8_t)clamp_i32(acc, act_min, act_max);
                    }
                    continue;
                }
                tap_range(ix0, dil_w, k_w, in_w, &kx_lo, &kx_hi);
                for (oc = 0; oc < out_c; ++oc) {
                    const int8_t *w = filter + oc * kstride;
                    const int8_t *in_g = in_b + (oc / per_group) * f_c;
                    int32_t acc = 0;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        const int8_t *row = in_g + (iy0 + dil_h * ky) * in_w * in_c;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            const int8_t *px = row + (ix0 + dil_w * kx) * in_c;
                            const int8_t *wk = w + (ky * k_w + kx) * f_c;
                            if (folded) {
                                acc = dot_s8(wk, px, f_c, acc);
                            } else {
                                for (ic = 0; ic < f_c; ++ic) {
                                    acc += (int32_t)wk[ic] * ((int32_t)px[ic] + in_offset);
                                }
                            }
                        }
                    }
                    if (bias != 0) {
                        acc += bias[oc];
                    }
                    acc = TC_RQ(acc, oc) + out_offset;
                    *out++ = (int8_t)clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------- DEPTHWISE_CONV_2D */

/* Interior pixels [0, npx) of one output row of a 3x3 depthwise convolution (depth multiplier 1),
   channel by channel: each channel's nine weights and requantisation table are loaded once for the
   row. x: the first pixel's top-left tap; step: input bytes between neighbouring output pixels; rs:
   input bytes between tap rows; s1, s2: between tap columns; o: the first pixel's output. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void dw3x3_row_q(const int8_t *x, const int32_t d[4], int32_t npx, const int8_t *w,
                        const int32_t *bias_inner, const int32_t *q, const int32_t oq[3], int32_t n, int8_t *o)
{
    const int32_t s1 = d[0], s2 = d[1], rs = d[2], step = d[3];
    const int32_t out_offset = oq[0], act_min = oq[1], act_max = oq[2];
    int32_t c;
    for (c = 0; c < n; ++c, w += 9, q += 6) {
        const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7];
        const int32_t w8 = w[8], bi = bias_inner[c];
        /* the table in locals: the int8 stores below may alias anything, so it would be reloaded */
        const int32_t qt[6] = {q[0], q[1], q[2], q[3], q[4], q[5]};
        const int8_t *x0 = x + c, *x1 = x + c + rs, *x2 = x + c + 2 * rs;
        int8_t *oc = o + c;
        int32_t i;
        for (i = 0; i < npx; ++i, x0 += step, x1 += step, x2 += step, oc += n) {
            int32_t a = bi;
            a += (int32_t)x0[0] * w0 + (int32_t)x0[s1] * w1 + (int32_t)x0[s2] * w2;
            a += (int32_t)x1[0] * w3 + (int32_t)x1[s1] * w4 + (int32_t)x1[s2] * w5;
            a += (int32_t)x2[0] * w6 + (int32_t)x2[s1] * w7 + (int32_t)x2[s2] * w8;
            a = requant_q(a, qt) + out_offset;
            *oc = (int8_t)clamp_i32(a, act_min, act_max);
        }
    }
}

/* One border pixel of a padded 3x3 depthwise convolution (depth multiplier 1): taps outside the
   input point at a row of the input's zero point, which adds w * zp to the sum; bias_inner holds
   bias + in_offset * (sum of all nine weights) = bias - zp * (sum of all nine), so the padded taps
   cancel exactly and the sum is TFLM's (bias + the inside taps' w * (x - zp)). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void dw3x3_taps_q(const int8_t *const t[9], const int8_t *w, const int32_t *bias_inner, const int32_t *q,
                         const int32_t oq[3], int32_t n, int8_t *out)
{
    const int32_t out_offset = oq[0], act_min = oq[1], act_max = oq[2];
    int32_t c;
    for (c = 0; c < n; ++c, w += 9, q += 6) {
        int32_t a = bias_inner[c];
        a += (int32_t)t[0][c] * w[0] + (int32_t)t[1][c] * w[1] + (int32_t)t[2][c] * w[2];
        a += (int32_t)t[3][c] * w[3] + (int32_t)t[4][c] * w[4] + (int32_t)t[5][c] * w[5];
        a += (int32_t)t[6][c] * w[6] + (int32_t)t[7][c] * w[7] + (int32_t)t[8][c] * w[8];
        a = requant_q(a, q) + out_offset;
        out[c] = (int8_t)clamp_i32(a, act_min, act_max);
    }
}

#define TC_DW_ZROW 256 /* the zero-point row of dw3x3_taps_q: layers up to this many channels */

/* One interior pixel of a 3x3 depthwise convolution (depth multiplier 1), every channel, through the
   requantisation table: a function of its own so that its loop gets the registers. oq: output
   offset, activation min and max. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void dw3x3_pixel_q(const int8_t *const rows[3], int32_t s1, int32_t s2, const int8_t *w,
                          const int32_t *bias_inner, const int32_t *q, const int32_t oq[3], int32_t n, int8_t *out)
{
    const int8_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
    const int32_t out_offset = oq[0], act_min = oq[1], act_max = oq[2];
    int32_t c;
    for (c = 0; c < n; ++c, w += 9, q += 6) {
        int32_t a = bias_inner[c];
        a += (int32_t)r0[c] * w[0] + (int32_t)r0[c + s1] * w[1] + (int32_t)r0[c + s2] * w[2];
        a += (int32_t)r1[c] * w[3] + (int32_t)r1[c + s1] * w[4] + (int32_t)r1[c + s2] * w[5];
        a += (int32_t)r2[c] * w[6] + (int32_t)r2[c + s1] * w[7] + (int32_t)r2[c + s2] * w[8];
        a = requant_q(a, q) + out_offset;
        out[c] = (int8_t)clamp_i32(a, act_min, act_max);
    }
}

#define TC_DW_BLOCK 32 /* output channels accumulated together (int32 on the stack) */

void tc_dwconv_s8(const tc_dwconv_s8_t *p, const int8_t *in, int8_t *out)
{
    const int32_t batches = p->batches, in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c, depth_mult = p->depth_mult;
    const int32_t k_h = p->k_h, k_w = p->k_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, out_offset = p->out_offset;
    const int32_t in_offset = p->folded ? 0 : p->in_offset; /* folded: in the bias already */
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int8_t *const filter = p->filter;
    const int32_t *const bias = p->bias;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t *const rq = p->rq;
    const int32_t *const bias_inner = p->bias_inner;
    const int8_t *const filter_cm = p->filter_cm;
    const int32_t row_stride = in_w * in_c;
    const int fast3x3 = depth_mult == 1 && k_h == 3 && k_w == 3 && bias_inner != 0 && filter_cm != 0;
    const int pw_dm = k_h == 1 && k_w == 1 && p->folded && pad_h == 0 && pad_w == 0 && bias != 0;
    int32_t acc[TC_DW_BLOCK];
    int8_t zrow[TC_DW_ZROW];
    int zrow_ready = 0;
    int32_t b, oy, ox, ic, m0, ky, kx, j;
    if (TC_NN_TABLES && p->lut != 0 && pw_dm) { /* 1x1: a table lookup per output (see tc_dwconv_s8_t.lut) */
        const int32_t pixels = batches * out_h * out_w;
        const int8_t *const lut = p->lut;
        int32_t px;
        for (px = 0; px < pixels; ++px, in += in_c) {
            const int8_t *t = lut + 128;
            int32_t c = 0;
            for (ic = 0; ic < in_c; ++ic) {
                const int32_t x = in[ic];
                for (j = 0; j < depth_mult; ++j, ++c, t += 256) {
                    out[c] = t[x];
                }
            }
            out += out_c;
        }
        return;
    }
    /* Channel-inner order (contiguous loads); TFLM sums the same products, and int32 sums are exact. */
    for (b = 0; b < batches; ++b) {
        const int8_t *in_b = in + b * in_h * row_stride;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            int32_t ky_lo, ky_hi;
            tap_range(iy0, dil_h, k_h, in_h, &ky_lo, &ky_hi);
            int32_t row_lo = 0, row_hi = 0; /* interior pixels of this row done by dw3x3_row_q */
            if (TC_NN_TABLES && fast3x3 && rq != 0 && ky_lo == 0 && ky_hi == 3) {
                while (row_lo < out_w && row_lo * stride_w - pad_w < 0) {
                    ++row_lo;
                }
                row_hi = out_w;
                while (row_hi > row_lo && (row_hi - 1) * stride_w - pad_w + 2 * dil_w >= in_w) {
                    --row_hi;
                }
                if (row_hi - row_lo >= 2) {
                    const int32_t d[4] = {dil_w * in_c, 2 * dil_w * in_c, dil_h * row_stride, stride_w * in_c};
                    const int32_t oq[3] = {out_offset, act_min, act_max};
                    dw3x3_row_q(in_b + iy0 * row_stride + (row_lo * stride_w - pad_w) * in_c, d, row_hi - row_lo,
                                filter_cm, bias_inner, rq, oq, out_c, out + row_lo * out_c);
                } else {
                    row_lo = row_hi = 0;
                }
            }
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                int32_t kx_lo, kx_hi;
                if (ox >= row_lo && ox < row_hi) {
                    out += out_c;
                    continue;
                }
                if (pw_dm) {
                    /* 1x1, no padding (bias folded): out[ic * depth_mult + j] = w[..] * x[ic] + bias[..] */
                    const int8_t *px = in_b + (iy0 * in_w + ix0) * in_c;
                    int32_t c = 0;
                    for (ic = 0; ic < in_c; ++ic) {
                        const int32_t x = px[ic];
                        for (j = 0; j < depth_mult; ++j, ++c) {
                            const int32_t r = TC_RQ(bias[c] + (int32_t)filter[c] * x, c) + out_offset;
                            out[c] = (int8_t)clamp_i32(r, act_min, act_max);
                        }
                    }
                    out += out_c;
                    continue;
                }
                tap_range(ix0, dil_w, k_w, in_w, &kx_lo, &kx_hi);
                if (TC_NN_TABLES && fast3x3 && rq != 0 && in_c <= TC_DW_ZROW &&
                    !(ky_lo == 0 && ky_hi == 3 && kx_lo == 0 && kx_hi == 3)) {
                    const int8_t *t[9];
                    const int32_t oq[3] = {out_offset, act_min, act_max};
                    if (!zrow_ready) {
                        memset(zrow, (unsigned char)(int8_t)(-p->in_offset), (size_t)in_c);
                        zrow_ready = 1;
                    }
                    for (ky = 0; ky < 3; ++ky) {
                        for (kx = 0; kx < 3; ++kx) {
                            const int inside = ky >= ky_lo && ky < ky_hi && kx >= kx_lo && kx < kx_hi;
                            t[ky * 3 + kx] =
                                inside ? in_b + (iy0 + dil_h * ky) * row_stride + (ix0 + dil_w * kx) * in_c : zrow;
                        }
                    }
                    dw3x3_taps_q(t, filter_cm, bias_inner, rq, oq, out_c, out);
                    out += out_c;
                    continue;
                }
                if (fast3x3 && ky_lo == 0 && ky_hi == 3 && kx_lo == 0 && kx_hi == 3) {
                    /* every tap inside: in_offset * sum(w) is in bias_inner; 3x3 taps unrolled, weights
                       channel-major (9 bytes per channel), the same nine products per output as TFLM */
                    const int8_t *r0 = in_b + iy0 * row_stride + ix0 * in_c;
                    const int8_t *r1 = r0 + dil_h * row_stride;
                    const int8_t *r2 = r1 + dil_h * row_stride;
                    const int32_t s1 = dil_w * in_c, s2 = 2 * dil_w * in_c;
                    const int8_t *w = filter_cm;
                    int32_t c;
#define TC_DW3X3_SUM(a)                                                                                      \
    do {                                                                                                     \
        a += (int32_t)r0[c] * w[0] + (int32_t)r0[c + s1] * w[1] + (int32_t)r0[c + s2] * w[2];                 \
        a += (int32_t)r1[c] * w[3] + (int32_t)r1[c + s1] * w[4] + (int32_t)r1[c + s2] * w[5];                 \
        a += (int32_t)r2[c] * w[6] + (int32_t)r2[c + s1] * w[7] + (int32_t)r2[c + s2] * w[8];                 \
    } while (0)
                    if (TC_NN_TABLES && rq != 0) { /* the same loop without the branch per output */
                        const int8_t *const rows[3] = {r0, r1, r2};
                        const int32_t oq[3] = {out_offset, act_min, act_max};
                        dw3x3_pixel_q(rows, s1, s2, filter_cm, bias_inner, rq, oq, out_c, out);
                    } else {
                        for (c = 0; c < out_c; ++c, w += 9) {
                            int32_t a = bias_inner[c];
                            TC_DW3X3_SUM(a);
                            a = TC_RQ(a, c) + out_offset;
                            out[c] = (int8_t)clamp_i32(a, act_min, act_max);
                        }
                    }
#undef TC_DW3X3_SUM
                    out += out_c;
                    continue;
                }
                for (ic = 0; ic < (depth_mult == 1 ? 1 : in_c); ++ic) {
                    /* depth_mult 1: one pass over all channels; else: input channel ic feeds depth_mult outputs */
                    const int32_t c_begin = depth_mult == 1 ? 0 : ic * depth_mult;
                    const int32_t c_end = depth_mult == 1 ? out_c : c_begin + depth_mult;
                    for (m0 = c_begin; m0 < c_end; m0 += TC_DW_BLOCK) {
                        const int32_t nb = c_end - m0 < TC_DW_BLOCK ? c_end - m0 : TC_DW_BLOCK;
                        for (j = 0; j < nb; ++j) {
                            acc[j] = bias != 0 ? bias[m0 + j] : 0;
                        }
                        for (ky = ky_lo; ky < ky_hi; ++ky) {
                            const int8_t *row = in_b + (iy0 + dil_h * ky) * row_stride;
                            const int8_t *wrow = filter + ky * k_w * out_c + m0;
                            for (kx = kx_lo; kx < kx_hi; ++kx) {
                                const int8_t *px = row + (ix0 + dil_w * kx) * in_c;
                                const int8_t *wk = wrow + kx * out_c;
                                if (depth_mult == 1) {
                                    const int8_t *xk = px + m0;
                                    for (j = 0; j < nb; ++j) {
                                        acc[j] += (int32_t)wk[j] * ((int32_t)xk[j] + in_offset);
                                    }
                                } else {
                                    const int32_t x = (int32_t)px[ic] + in_offset;
                                    for (j = 0; j < nb; ++j) {
                                        acc[j] += (int32_t)wk[j] * x;
                                    }
                                }
                            }
                        }
                        for (j = 0; j < nb; ++j) {
                            const int32_t r = TC_RQ(acc[j], m0 + j) + out_offset;
                            out[m0 + j] = (int8_t)clamp_i32(r, act_min, act_max);
                        }
                    }
                }
                out += out_c;
            }
        }
    }
}

/* --------------------------------------------------------------------------- FULLY_CONNECTED */

void tc_fc_s8(const tc_fc_s8_t *p, const int8_t *in, int8_t *out)
{
    const int32_t batches = p->batches, in_k = p->in_k, out_n = p->out_n;
    const int32_t in_offset = p->in_offset, out_offset = p->out_offset, act_min = p->act_min;
    const int32_t act_max = p->act_max, folded = p->folded;
    const int8_t *const filter = p->filter;
    const int32_t *const bias = p->bias;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t *const rq = p->rq;
    int32_t b, n, k;
    for (b = 0; b < batches; ++b) {
        const int8_t *x = in + b * in_k;
        const int8_t *w = filter;
        n = 0;
        if (p->interleaved) { /* folded, rows in blocks of 4 interleaved as dot4i_s8 reads them */
            for (; n + 4 <= out_n; n += 4, w += 4 * in_k) {
                int32_t acc[4], j;
                for (j = 0; j < 4; ++j) {
                    acc[j] = bias[n + j];
                }
                dot4i_s8(w, x, in_k, acc);
                out[0] = (int8_t)clamp_i32(TC_RQ(acc[0], n) + out_offset, act_min, act_max);
                out[1] = (int8_t)clamp_i32(TC_RQ(acc[1], n + 1) + out_offset, act_min, act_max);
                out[2] = (int8_t)clamp_i32(TC_RQ(acc[2], n + 2) + out_offset, act_min, act_max);
                out[3] = (int8_t)clamp_i32(TC_RQ(acc[3], n + 3) + out_offset, act_min, act_max);
                out += 4;
            }
        }
        for (; n < out_n; ++n, w += in_k) { /* plain rows: all of them, or the last out_n % 4 */
            int32_t acc = 0;
            if (folded) {
                acc = dot_s8(w, x, in_k, acc);
            } else {
                for (k = 0; k < in_k; ++k) {
                    acc += (int32_t)w[k] * ((int32_t)x[k] + in_offset);
                }
            }
            if (bias != 0) {
                acc += bias[n];
            }
            acc = TC_RQ(acc, n) + out_offset;
            *out++ = (int8_t)clamp_i32(acc, act_min, act_max);
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
    const int32_t out_mult = p->out_mult, out_shift = p->out_shift, out_offset = p->out_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    if (TC_NN_TABLES && p->lut1 != 0 && p->lut2 != 0 && p->b.ndim == 1 && p->b.stride1[0] == 1 &&
        p->b.stride2[0] == 1) {
        /* same shapes, each input's rescaling read from netgen's tables (see tc_add_s8_t) */
        const int32_t *const t1 = p->lut1 + 128, *const t2 = p->lut2 + 128;
        for (i = 0; i < total; ++i) {
            const int32_t r = requant(t1[a[i]] + t2[b[i]], out_mult, out_shift) + out_offset;
            out[i] = (int8_t)clamp_i32(r, act_min, act_max);
        }
        return;
    }
    for (i = 0; i < total; ++i) {
        const int32_t x = (p->in1_offset + a[o1]) * (1 << p->left_shift);
        const int32_t y = (p->in2_offset + b[o2]) * (1 << p->left_shift);
        const int32_t sx = requant(x, p->in1_mult, p->in1_shift);
        const int32_t sy = requant(y, p->in2_mult, p->in2_shift);
        const int32_t r = requant(sx + sy, out_mult, out_shift) + out_offset;
        out[i] = (int8_t)clamp_i32(r, act_min, act_max);
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
        const int32_t r = p->out_offset + requant(x * y, p->out_mult, p->out_shift);
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
    int32_t rlen = 1, rstride = 0, d, one_dim = 1;
    for (d = 0; d < r->n_red; ++d) { /* the reduced dims: at most one longer than 1? */
        if (r->red_dims[d] > 1) {
            one_dim = one_dim && rlen == 1;
            rlen = r->red_dims[d];
            rstride = r->red_strides[d];
        }
    }
    for (o = 0; o < n_out; ++o) {
        int32_t ridx[TC_NN_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
        int32_t j, roff = 0, sum = 0, q;
        if (one_dim) { /* the same elements in the same order, one stride */
            for (j = 0; j < rlen; ++j) {
                sum += in[ooff + j * rstride];
            }
        } else {
            for (j = 0; j < n_red; ++j) {
                sum += in[ooff + roff];
                walk_next(r->n_red, r->red_dims, r->red_strides, ridx, &roff);
            }
        }
        /* (int32)(sum - zp * count), computed in 64 bits as TFLM does */
        q = (int32_t)((int64_t)sum - (int64_t)p->in_zp * (int64_t)r->count);
        q = requant(q, p->mult, p->shift) + p->out_zp;
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
    if (p->ndim >= 2 && p->src_strides[p->ndim - 1] == 1 && p->dst_strides[p->ndim - 1] == 1) {
        /* innermost dimension contiguous on both sides (PAD, most TRANSPOSEs do not qualify): copy runs */
        const int32_t run = p->dims[p->ndim - 1], outer = total / (run > 0 ? run : 1), nd = p->ndim - 1;
        for (i = 0; i < outer && run > 0; ++i) {
            int32_t d;
            memcpy(out + doff, in + soff, (size_t)run);
            for (d = nd - 1; d >= 0; --d) {
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
        return;
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
