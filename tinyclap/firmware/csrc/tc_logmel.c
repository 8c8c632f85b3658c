/*
 * tc_logmel.c - log-mel front end. See tc_logmel.h.
 */
#include "tc_logmel.h"

#include <math.h>
#include <string.h>

/* The generated tables (static const, so only this file holds them). */
#include "tc_logmel_tables.h"

#if (TC_LOGMEL_N_FFT & (TC_LOGMEL_N_FFT - 1)) != 0 || TC_LOGMEL_N_FFT < 4
#error "TC_LOGMEL_N_FFT must be a power of two >= 4"
#endif

#define TC_HALF_FFT (TC_LOGMEL_N_FFT / 2)

#ifndef TC_LOGMEL_FLOAT64
/* 10 * log10(x) in float32 for the mel sums, without libm's log10f (about a third of its
 * instructions on a Cortex-M): x = 2^e * mm with mm in [sqrt(1/2), sqrt(2)),
 * ln(mm) = 2 atanh(s) = 2 (s + s^3/3 + ... + s^9/9), s = (mm - 1) / (mm + 1), |s| < 0.172, so the
 * next term (s^11 / 11 < 4e-10) is below float precision; the error is a few float ulps of the
 * result, far inside the front end's 0.01 dB budget (tests/test_mcu_frontend.py). Subnormal, zero,
 * infinite and NaN inputs cannot reach it from the 1e-10 clamp except infinity and NaN, which take
 * log10f. */
static float db_f32(float x)
{
    uint32_t bits;
    int32_t e;
    float mm, s, s2, ln;
    if (!(x <= 3.0e38f)) { /* +inf, NaN */
        return 10.0f * log10f(x);
    }
    memcpy(&bits, &x, sizeof bits);
    e = (int32_t)(bits >> 23) - 127;
    bits = (bits & 0x007FFFFFu) | 0x3F800000u;
    memcpy(&mm, &bits, sizeof mm);
    if (mm > 1.41421356f) {
        mm *= 0.5f;
        e += 1;
    }
    s = (mm - 1.0f) / (mm + 1.0f);
    s2 = s * s;
    ln = 2.0f * s * (1.0f + s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * 0.111111111f))));
    /* 10 / ln(10) and ln(2) * 10 / ln(10) */
    return (float)e * 3.01029996f + ln * 4.34294482f;
}
#endif

int tc_logmel_init(tc_logmel_t *st)
{
    size_t i;
    for (i = 0; i < TC_LOGMEL_N_FFT; ++i) {
        st->buf[i] = 0;
    }
    return 0;
}

/* log2(n_fft / 2): the index bits of the FFT's bit reversal */
static unsigned half_bits(void)
{
    unsigned b = 0;
    while (((size_t)1 << b) < TC_HALF_FFT) {
        ++b;
    }
    return b;
}

/* Power spectrum, mel sums and dB of the windowed frame already in st->buf, its sample pairs in
 * the FFT's bit-reversed order (the fillers below write them there: tc_rfft_from_bitrev). */
static void spectrum_to_logmel(tc_logmel_t *st, float out[TC_LOGMEL_N_MELS], tc_float_t scale)
{
    tc_float_t p[TC_HALF_FFT + 1]; /* the power spectrum, on the stack (2 KB in float32) */
    size_t m;

    tc_rfft_power_from_bitrev(st->buf, TC_LOGMEL_N_FFT, tc_logmel_cos, tc_logmel_sin, p);

    /* Sparse mel filters: each is one contiguous run of bins. The terms are
     * all non-negative, so a plain running sum loses at most ~len ulps. */
    for (m = 0; m < TC_LOGMEL_N_MELS; ++m) {
        const tc_float_t *w = tc_logmel_mel_weights + tc_logmel_mel_offset[m];
        const tc_float_t *pk = p + tc_logmel_mel_start[m];
        const size_t len = tc_logmel_mel_len[m];
        tc_float_t acc = 0;
        size_t j;
        for (j = 0; j < len; ++j) {
            acc += w[j] * pk[j];
        }
        acc *= scale; /* a power of two: exact */
#ifdef TC_LOGMEL_FLOAT64
        out[m] = (float)(10.0 * log10(acc < 1e-10 ? 1e-10 : acc));
#else
        out[m] = db_f32(acc < 1e-10f ? 1e-10f : acc);
#endif
    }
}

/* int16 PCM full scale: x / 32768 is exact (a power of two), so the int16
 * entry points give bit for bit what the float ones give on x / 32768.0f. */
#define TC_I16_SCALE ((tc_float_t)(1.0f / 32768.0f))

void tc_logmel_frame(tc_logmel_t *st, const float *frame, float out[TC_LOGMEL_N_MELS])
{
    const unsigned bits = half_bits();
    size_t j;
    for (j = 0; j < TC_HALF_FFT; ++j) {
        const size_t r = 2 * tc_rfft_rev(j, bits);
        st->buf[r] = (tc_float_t)frame[2 * j] * tc_logmel_window[2 * j];
        st->buf[r + 1] = (tc_float_t)frame[2 * j + 1] * tc_logmel_window[2 * j + 1];
    }
    spectrum_to_logmel(st, out, (tc_float_t)1);
}

void tc_logmel_frame_i16(tc_logmel_t *st, const int16_t *frame, float out[TC_LOGMEL_N_MELS])
{
    const unsigned bits = half_bits();
    size_t j;
    for (j = 0; j < TC_HALF_FFT; ++j) {
        const size_t r = 2 * tc_rfft_rev(j, bits);
        /* unscaled: 1/32768 is applied to the mel sums instead, as 2^-30 (every value in between
           scales by an exact power of two, so the result is the scaled input's bit for bit) */
        st->buf[r] = (tc_float_t)frame[2 * j] * tc_logmel_window[2 * j];
        st->buf[r + 1] = (tc_float_t)frame[2 * j + 1] * tc_logmel_window[2 * j + 1];
    }
    spectrum_to_logmel(st, out, TC_I16_SCALE * TC_I16_SCALE);
}

size_t tc_logmel_frames(size_t n_samples)
{
    return n_samples / TC_LOGMEL_HOP + 1;
}

/* Index into the n-sample buffer of sample j of frame t of the padded signal.
 * Sample i of the padded signal is wave[i - n_fft/2], reflected at both ends
 * without repeating the edge sample (numpy / torch "reflect"). */
static size_t reflect_src(size_t n, size_t t, size_t j)
{
    const size_t pad = TC_HALF_FFT;
    const size_t padded = t * TC_LOGMEL_HOP + j;
    if (padded < pad) {
        return pad - padded; /* reflect about wave[0] */
    }
    if (padded - pad < n) {
        return padded - pad;
    }
    return 2 * (n - 1) - (padded - pad); /* reflect about wave[n-1] */
}

/* Whether frame t of an n-sample buffer can be built (see tc_logmel.h). */
static int frame_ok(size_t n, size_t t)
{
    return n > TC_HALF_FFT && t < tc_logmel_frames(n);
}

/* Frame t of an n-sample buffer held either as float (f32) or as int16 PCM
 * (i16, scaled by 1/32768 inside the n_fft work buffer); the other is NULL.
 * One body for both so the two input types cannot drift apart. */
static int buffer_frame(tc_logmel_t *st, const float *f32, const int16_t *i16, size_t n, size_t t,
                        float out[TC_LOGMEL_N_MELS])
{
    size_t j;
    unsigned bits;
    if (!frame_ok(n, t)) {
        return -1;
    }
    bits = half_bits();
    for (j = 0; j < TC_LOGMEL_N_FFT; ++j) {
        const size_t i = reflect_src(n, t, j);
        const tc_float_t x = f32 ? (tc_float_t)f32[i] : (tc_float_t)i16[i] * TC_I16_SCALE;
        st->buf[2 * tc_rfft_rev(j / 2, bits) + j % 2] = x * tc_logmel_window[j];
    }
    spectrum_to_logmel(st, out, (tc_float_t)1);
    return 0;
}

static long buffer_frames(tc_logmel_t *st, const float *f32, const int16_t *i16, size_t n, float *out,
                          size_t max_frames)
{
    const size_t frames = tc_logmel_frames(n);
    size_t t;
    if (n <= TC_HALF_FFT || frames > max_frames) {
        return -1;
    }
    for (t = 0; t < frames; ++t) {
        (void)buffer_frame(st, f32, i16, n, t, out + t * TC_LOGMEL_N_MELS);
    }
    return (long)frames;
}

int tc_logmel_buffer_frame(tc_logmel_t *st, const float *wave, size_t n, size_t t,
                           float out[TC_LOGMEL_N_MELS])
{
    return buffer_frame(st, wave, NULL, n, t, out);
}

int tc_logmel_buffer_frame_i16(tc_logmel_t *st, const int16_t *wave, size_t n, size_t t,
                               float out[TC_LOGMEL_N_MELS])
{
    return buffer_frame(st, NULL, wave, n, t, out);
}

long tc_logmel_buffer(tc_logmel_t *st, const float *wave, size_t n, float *out, size_t max_frames)
{
    return buffer_frames(st, wave, NULL, n, out, max_frames);
}

long tc_logmel_buffer_i16(tc_logmel_t *st, const int16_t *wave, size_t n, float *out, size_t max_frames)
{
    return buffer_frames(st, NULL, wave, n, out, max_frames);
}
