/*
 * tc_nn: the int8 (and float32 tail) kernels of tinyclap's exported students, in plain C99.
 *
 * Each kernel computes exactly what TensorFlow Lite Micro's reference kernel of the same
 * builtin operator computes for the tensor types our students export to, bit for bit:
 * the same int32 accumulations, the same requantisation (gemmlowp's
 * SaturatingRoundingDoublingHighMul + RoundingDivideByPOT, or TFLITE_SINGLE_ROUNDING's
 * 64-bit single rounding when built with -DTC_NN_SINGLE_ROUNDING=1), the same activation
 * clamps, the same float32 operations in the same order. Multipliers, shifts, clamps and
 * padding are computed once, at generation time, by tinyclap/firmware/netgen.py (as TFLM's
 * Prepare() computes them from the double scales) and passed here in const structs.
 *
 * The default (double rounding) is what the tflite-micro build we test against computes; the
 * single-rounding variant gives different outputs (tests/test_firmware_net.py checks both).
 * On cores with the DSP extension (Cortex-M4/M7: __ARM_FEATURE_DSP) the int8 dot products use
 * SMLAD; -DTC_NN_NO_DSP turns that off. Both give the same bits: every int32 sum is exact.
 *
 * Layout: NHWC, row-major, as in the .tflite. No allocation, no global state: every buffer
 * is the caller's. Signed right shifts are arithmetic (gcc, clang, armcc, IAR all do so).
 */
#ifndef TC_NN_H
#define TC_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TC_ALIGN16 __attribute__((aligned(16)))
#else
#define TC_ALIGN16
#endif

#define TC_NN_MAX_DIMS 6

/* Requantisation: TFLite's MultiplyByQuantizedMultiplier(int32 x, multiplier, shift). */
int32_t tc_nn_requant(int32_t x, int32_t multiplier, int32_t shift);

/* CONV_2D, int8 in/out, int8 per-channel weights [out_c][k_h][k_w][filter_in_c], int32 bias. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, filter_in_c; /* groups = in_c / filter_in_c */
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t in_offset, out_offset, act_min, act_max;
    int32_t folded; /* 1: no padding, and bias[] already holds bias + in_offset * sum(filter) */
    int32_t interleaved; /* 1 (1x1, folded): rows in blocks of 4 interleaved by 4-byte words, see dot4i_s8 */
    const int8_t *filter;
    const int32_t *bias; /* may be NULL */
    const int32_t *mult;
    const int32_t *shift;
    const int32_t *rq; /* optional per-channel requantisation table (tc_nn.c requant_q); NULL: mult/shift */
} tc_conv_s8_t;
void tc_conv_s8(const tc_conv_s8_t *p, const int8_t *in, int8_t *out);

/* DEPTHWISE_CONV_2D, int8, weights [k_h][k_w][out_c], out_c = in_c * depth_mult. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, depth_mult;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t in_offset, out_offset, act_min, act_max;
    int32_t folded;
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    /* Optional (NULL: not used), for output pixels whose taps all fall inside the input:
       bias_inner[c] = bias[c] + in_offset * sum of channel c's weights (exact: checked to fit int32),
       filter_cm = the weights channel-major, [out_c][k_h][k_w]. */
    const int32_t *bias_inner;
    const int8_t *filter_cm;
    /* Optional (NULL: not used), 1x1 without padding only: lut[c * 256 + x + 128] is output channel c's
       int8 value for input value x, computed by netgen with this kernel's arithmetic. */
    const int8_t *lut;
    const int32_t *rq; /* optional per-channel requantisation table (tc_nn.c requant_q); NULL: mult/shift */
} tc_dwconv_s8_t;
void tc_dwconv_s8(const tc_dwconv_s8_t *p, const int8_t *in, int8_t *out);

/* FULLY_CONNECTED, int8, weights [out_n][in_k] (symmetric), per-channel or broadcast per-tensor. */
typedef struct {
    int32_t batches, in_k, out_n;
    int32_t in_offset, out_offset, act_min, act_max;
    int32_t folded;
    int32_t interleaved; /* 1 (folded, out_n >= 4): weights laid out as tc_conv_s8_t.interleaved describes */
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    const int32_t *rq; /* optional per-channel requantisation table (tc_nn.c requant_q); NULL: mult/shift */
} tc_fc_s8_t;
void tc_fc_s8(const tc_fc_s8_t *p, const int8_t *in, int8_t *out);

/* Broadcast walk of a binary op: output dims (row-major) and each input's element strides (0: broadcast). */
typedef struct {
    int32_t ndim;
    int32_t dims[TC_NN_MAX_DIMS];
    int32_t stride1[TC_NN_MAX_DIMS];
    int32_t stride2[TC_NN_MAX_DIMS];
} tc_bcast_t;

/* ADD, int8: TFLite's left_shift = 20 scheme. */
typedef struct {
    tc_bcast_t b;
    int32_t in1_offset, in2_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t out_offset, act_min, act_max;
    /* Optional (NULL: computed): lut1[v + 128] = input 1's rescaled value for int8 v,
       requant((v + in1_offset) << left_shift, in1_mult, in1_shift), computed by netgen; lut2 likewise. */
    const int32_t *lut1;
    const int32_t *lut2;
} tc_add_s8_t;
void tc_add_s8(const tc_add_s8_t *p, const int8_t *a, const int8_t *b, int8_t *out);

/* MUL, int8. */
typedef struct {
    tc_bcast_t b;
    int32_t in1_offset, in2_offset, out_mult, out_shift, out_offset, act_min, act_max;
} tc_mul_s8_t;
void tc_mul_s8(const tc_mul_s8_t *p, const int8_t *a, const int8_t *b, int8_t *out);

/* ADD, SUB, MUL, SQUARED_DIFFERENCE in float32 (clamped to the fused activation's range as TFLM does). */
enum { TC_F32_ADD = 0, TC_F32_SUB = 1, TC_F32_MUL = 2, TC_F32_SQDIFF = 3 };
typedef struct {
    tc_bcast_t b;
    int32_t op, clamp;
    float act_min, act_max;
} tc_binary_f32_t;
void tc_binary_f32(const tc_binary_f32_t *p, const float *a, const float *b, float *out);

/* A reduction: outputs walk the kept dims, each sums the reduced dims in input order. */
typedef struct {
    int32_t n_out, out_dims[TC_NN_MAX_DIMS], out_strides[TC_NN_MAX_DIMS];
    int32_t n_red, red_dims[TC_NN_MAX_DIMS], red_strides[TC_NN_MAX_DIMS];
    int32_t count; /* elements summed per output */
} tc_reduce_t;

/* MEAN, int8 (TFLM's QuantizedMeanOrSum: multiplier pre-divided by count at generation time). */
typedef struct {
    tc_reduce_t r;
    int32_t in_zp, mult, shift, out_zp;
} tc_mean_s8_t;
void tc_mean_s8(const tc_mean_s8_t *p, const int8_t *in, int8_t *out);

/* MEAN and SUM, float32 (mean: the float sum divided by (float)count). */
void tc_mean_f32(const tc_reduce_t *r, const float *in, float *out);
void tc_sum_f32(const tc_reduce_t *r, const float *in, float *out);

/* A strided copy (TRANSPOSE, the data part of PAD): walk dims, read at src strides, write at dst strides. */
typedef struct {
    int32_t ndim, dims[TC_NN_MAX_DIMS], src_strides[TC_NN_MAX_DIMS], dst_strides[TC_NN_MAX_DIMS];
    int32_t dst_base; /* element offset of the first element in dst */
    int32_t fill_count; /* PAD: elements of dst filled with the pad value first; 0 for TRANSPOSE */
} tc_copy_t;
void tc_copy_s8(const tc_copy_t *p, int8_t pad_value, const int8_t *in, int8_t *out);
void tc_copy_f32(const tc_copy_t *p, float pad_value, const float *in, float *out);

/* QUANTIZE float32 -> int8, DEQUANTIZE int8 -> float32, RSQRT float32. */
void tc_quantize_f32_s8(int32_t n, float scale, int32_t zero_point, const float *in, int8_t *out);
void tc_dequantize_s8_f32(int32_t n, float scale, int32_t zero_point, const int8_t *in, float *out);
void tc_rsqrt_f32(int32_t n, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* TC_NN_H */
