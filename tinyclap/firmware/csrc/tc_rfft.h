/*
 * tc_rfft.h - in-place radix-2 real FFT (C99, no allocation, no libm).
 *
 * Part of tinyclap's microcontroller front end. A real FFT of n points is
 * computed as a complex FFT of n/2 points followed by the usual "split" step,
 * so it costs about half a complex FFT of size n.
 *
 * Twiddles are passed in rather than computed: tinyclap generates them in
 * float64 and rounds each once (tc_logmel_tables.h), which is more accurate
 * than any recurrence on the device and costs no boot time.
 */
#ifndef TC_RFFT_H
#define TC_RFFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Working precision of the front end. float32 by default: Cortex-M4F/M7 have
 * a single-precision FPU. Define TC_LOGMEL_FLOAT64 (for example on a
 * Cortex-M7 with the double-precision FPU, such as the STM32H7) to run the
 * window, FFT and mel sums in double: it only matters for bins far (> ~90 dB)
 * below the frame's loudest bin, where float32 rounding noise of the FFT
 * dominates the true energy. See docs/mcu.md for the measured figures.
 */
#ifdef TC_LOGMEL_FLOAT64
typedef double tc_float_t;
#else
typedef float tc_float_t;
#endif

/*
 * In-place forward real FFT of n real samples (n a power of two, n >= 4).
 *
 * Output, packed in the same n values (the layout CMSIS-DSP also uses):
 *   buf[0] = Re X[0], buf[1] = Re X[n/2]          (both bins are real)
 *   buf[2k] = Re X[k], buf[2k+1] = Im X[k]        for 1 <= k < n/2
 * with X[k] = sum_j x[j] exp(-2 pi i j k / n).
 *
 * cos_tab[j] = cos(2 pi j / n) and sin_tab[j] = sin(2 pi j / n) for
 * 0 <= j < n/2.
 */
void tc_rfft(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab);

/*
 * The same transform with the input already in the order tc_rfft's first
 * step (bit reversal) puts it in: the sample pair (x[2j], x[2j+1]) at
 * buf[2r], buf[2r+1] with r = tc_rfft_rev(j, log2(n/2)). A caller that builds
 * its input anyway (the front end's window loop) writes it there and saves
 * the reordering pass; the output is bit for bit tc_rfft's.
 */
void tc_rfft_from_bitrev(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab);

/*
 * tc_rfft_from_bitrev's transform, returning the power spectrum instead:
 * power[k] = Re X[k]^2 + Im X[k]^2 for 0 <= k <= n/2 (n/2 + 1 values, not in
 * buf), bit for bit what squaring tc_rfft's output gives. buf is scratch.
 */
void tc_rfft_power_from_bitrev(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab,
                               tc_float_t *power);

/* j with its low `bits` bits reversed (j < 2^bits, 1 <= bits <= 31). */
static inline size_t tc_rfft_rev(size_t j, unsigned bits)
{
#if defined(__arm__) && defined(__thumb2__) && defined(__GNUC__)
    unsigned r;
    __asm__("rbit %0, %1" : "=r"(r) : "r"((unsigned)j)); /* one instruction from Cortex-M3 on */
    return (size_t)(r >> (32u - bits));
#else
    size_t r = 0;
    unsigned b;
    for (b = 0; b < bits; ++b) {
        r = (r << 1) | ((j >> b) & 1u);
    }
    return r;
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* TC_RFFT_H */
