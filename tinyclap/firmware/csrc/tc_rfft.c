/*
 * tc_rfft.c - in-place real FFT: an n/2-point complex radix-2 FFT (stages fused in pairs) plus the
 * split step. See tc_rfft.h for the layout.
 */
#include "tc_rfft.h"

#include <stdint.h>

/* Reorder m complex values (interleaved re, im) into bit-reversed order. */
#if defined(__arm__) && defined(__thumb2__) && defined(__GNUC__)
/* Cortex-M3 and later: RBIT reverses a word in one instruction, so j = rbit(i) >> (32 - log2 m). */
static void bit_reverse(tc_float_t *z, size_t m)
{
    uint32_t bits = 0;
    uint32_t i;
    while (((size_t)1 << bits) < m) {
        ++bits;
    }
    if (bits == 0) {
        return;
    }
    for (i = 1; i + 1 < (uint32_t)m; ++i) {
        uint32_t j;
        __asm__("rbit %0, %1" : "=r"(j) : "r"(i));
        j >>= 32u - bits;
        if (i < j) {
            const tc_float_t re = z[2 * i];
            const tc_float_t im = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = re;
            z[2 * j + 1] = im;
        }
    }
}
#else
static void bit_reverse(tc_float_t *z, size_t m)
{
    size_t i;
    size_t j = 0;
    for (i = 0; i < m - 1; ++i) {
        size_t bit;
        if (i < j) {
            tc_float_t re = z[2 * i];
            tc_float_t im = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = re;
            z[2 * j + 1] = im;
        }
        /* j = bit-reversed (i + 1): add one from the top bit down. */
        bit = m >> 1;
        while (j & bit) {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
    }
}
#endif

/*
 * Complex radix-2 decimation-in-time FFT of m = n/2 points, in place.
 * The twiddle exp(-2 pi i q / len) equals exp(-2 pi i (q * n / len) / n), so
 * the n-point tables serve every stage with stride n / len.
 */
/* Complex FFT of m = n/2 points of z, already in bit-reversed order. */
static void cfft(tc_float_t *z, size_t m, size_t n, const tc_float_t *cos_tab,
                 const tc_float_t *sin_tab)
{
    size_t len;
    size_t start;
    if (m < 4) {
        /* First stage (len 2): the twiddle is 1, so the butterfly is a sum and a difference. */
        for (start = 0; start < m; start += 2) {
            tc_float_t *a = z + 2 * start;
            const tc_float_t ar = a[0];
            const tc_float_t ai = a[1];
            const tc_float_t tr = a[2];
            const tc_float_t ti = a[3];
            a[0] = ar + tr;
            a[1] = ai + ti;
            a[2] = ar - tr;
            a[3] = ai - ti;
        }
        return;
    }
    {
        size_t stages = 0;
        while (((size_t)1 << stages) < m) {
            ++stages;
        }
        if (stages >= 3 && (stages - 2) % 2 == 1) {
            /* An odd count of stages after the first two: the first three (len 2, 4, 8) in one
             * pass instead, so the rest pair up. Twiddles 1, -i (exact) and, for len 8,
             * W8 = c (1 - i) and W8^3 = -c (1 + i) with c = cos(pi/4) from the table. */
            const tc_float_t c = cos_tab[n / 8];
            for (start = 0; start < m; start += 8) {
                tc_float_t *a = z + 2 * start;
                tc_float_t v[16];
                size_t h;
                for (h = 0; h < 2; ++h) {
                    const tc_float_t *g = a + 8 * h;
                    tc_float_t *o = v + 8 * h;
                    const tc_float_t s0r = g[0] + g[2], s0i = g[1] + g[3];
                    const tc_float_t d0r = g[0] - g[2], d0i = g[1] - g[3];
                    const tc_float_t s1r = g[4] + g[6], s1i = g[5] + g[7];
                    const tc_float_t d1r = g[4] - g[6], d1i = g[5] - g[7];
                    o[0] = s0r + s1r;
                    o[1] = s0i + s1i;
                    o[4] = s0r - s1r;
                    o[5] = s0i - s1i;
                    o[2] = d0r + d1i;
                    o[3] = d0i - d1r;
                    o[6] = d0r - d1i;
                    o[7] = d0i + d1r;
                }
                {
                    /* len 8: (q, q + 4), q = 0..3, twiddles 1, W8, -i, W8^3 */
                    const tc_float_t t1r = c * (v[10] + v[11]), t1i = c * (v[11] - v[10]);
                    const tc_float_t t3r = c * (v[15] - v[14]), t3i = -(c * (v[14] + v[15]));
                    a[0] = v[0] + v[8];
                    a[1] = v[1] + v[9];
                    a[8] = v[0] - v[8];
                    a[9] = v[1] - v[9];
                    a[2] = v[2] + t1r;
                    a[3] = v[3] + t1i;
                    a[10] = v[2] - t1r;
                    a[11] = v[3] - t1i;
                    a[4] = v[4] + v[13];
                    a[5] = v[5] - v[12];
                    a[12] = v[4] - v[13];
                    a[13] = v[5] + v[12];
                    a[6] = v[6] + t3r;
                    a[7] = v[7] + t3i;
                    a[14] = v[6] - t3r;
                    a[15] = v[7] - t3i;
                }
            }
            len = 16;
        } else {
            /* First two stages (len 2 and 4) in one pass: their twiddles are 1 and -i, so each group of
             * four is sums and differences only (the -i is applied exactly, not through a rounded
             * cos(pi/2) from the table). */
            for (start = 0; start < m; start += 4) {
                tc_float_t *a = z + 2 * start;
                const tc_float_t s0r = a[0] + a[2];
                const tc_float_t s0i = a[1] + a[3];
                const tc_float_t d0r = a[0] - a[2];
                const tc_float_t d0i = a[1] - a[3];
                const tc_float_t s1r = a[4] + a[6];
                const tc_float_t s1i = a[5] + a[7];
                const tc_float_t d1r = a[4] - a[6];
                const tc_float_t d1i = a[5] - a[7];
                /* -i * (d1r + i d1i) = d1i - i d1r */
                a[0] = s0r + s1r;
                a[1] = s0i + s1i;
                a[4] = s0r - s1r;
                a[5] = s0i - s1i;
                a[2] = d0r + d1i;
                a[3] = d0i - d1r;
                a[6] = d0r - d1i;
                a[7] = d0i + d1r;
            }
            len = 8;
        }
    }
    /* Later stages, two at a time where two remain (len L and 2L fused: each group of four values
     * is loaded once, both butterflies applied in registers, stored once), then a last single
     * stage if the count is odd. Every butterfly computes what the radix-2 butterfly of its stage
     * computes, in the same order; the one twiddle of the second stage that is W_2L^q times -i is
     * applied as W_2L^q and an exact swap. Each twiddle pair is loaded once per q and applied to
     * every group (the groups of a stage are independent, so the order changes no value). */
    for (; 2 * len <= m; len <<= 2) {
        const size_t half = len >> 1;
        const size_t stride1 = n / len;
        const size_t stride2 = stride1 >> 1;
        size_t q;
        for (q = 0; q < half; ++q) {
            const tc_float_t w1r = cos_tab[q * stride1];
            const tc_float_t w1i = -sin_tab[q * stride1];
            const tc_float_t w2r = cos_tab[q * stride2];
            const tc_float_t w2i = -sin_tab[q * stride2];
            tc_float_t *a = z + 2 * q;
            for (start = 0; start < m; start += 2 * len, a += 4 * len) {
                tc_float_t *b = a + 2 * half;
                tc_float_t *c = a + 2 * len;
                tc_float_t *d = c + 2 * half;
                const tc_float_t ar = a[0], ai = a[1], br = b[0], bi = b[1];
                const tc_float_t cr = c[0], ci = c[1], dr = d[0], di = d[1];
                /* stage len: (a, b) and (c, d), twiddle w1 */
                const tc_float_t tr = w1r * br - w1i * bi;
                const tc_float_t ti = w1r * bi + w1i * br;
                const tc_float_t ur = w1r * dr - w1i * di;
                const tc_float_t ui = w1r * di + w1i * dr;
                const tc_float_t a1r = ar + tr, a1i = ai + ti, b1r = ar - tr, b1i = ai - ti;
                const tc_float_t c1r = cr + ur, c1i = ci + ui, d1r = cr - ur, d1i = ci - ui;
                /* stage 2 len: (a1, c1) with w2, (b1, d1) with w2 * (-i) */
                const tc_float_t vr = w2r * c1r - w2i * c1i;
                const tc_float_t vi = w2r * c1i + w2i * c1r;
                const tc_float_t xr = w2r * d1r - w2i * d1i;
                const tc_float_t xi = w2r * d1i + w2i * d1r;
                /* -i (xr + i xi) = xi - i xr */
                a[0] = a1r + vr;
                a[1] = a1i + vi;
                c[0] = a1r - vr;
                c[1] = a1i - vi;
                b[0] = b1r + xi;
                b[1] = b1i - xr;
                d[0] = b1r - xi;
                d[1] = b1i + xr;
            }
        }
    }
    for (; len <= m; len <<= 1) {
        const size_t half = len >> 1;
        const size_t stride = n / len;
        size_t q;
        for (q = 0; q < half; ++q) {
            const tc_float_t wr = cos_tab[q * stride];
            const tc_float_t wi = -sin_tab[q * stride];
            tc_float_t *a = z + 2 * q;
            for (start = 0; start < m; start += len, a += 2 * len) {
                /* Locals first: the compiler cannot know a and b do not alias. */
                tc_float_t *b = a + 2 * half;
                const tc_float_t ar = a[0];
                const tc_float_t ai = a[1];
                const tc_float_t br = b[0];
                const tc_float_t bi = b[1];
                const tc_float_t tr = wr * br - wi * bi;
                const tc_float_t ti = wr * bi + wi * br;
                a[0] = ar + tr;
                a[1] = ai + ti;
                b[0] = ar - tr;
                b[1] = ai - ti;
            }
        }
    }
}

void tc_rfft(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab)
{
    /* z[j] = x[2j] + i x[2j+1] is already how the reals sit in memory. */
    bit_reverse(buf, n / 2);
    tc_rfft_from_bitrev(buf, n, cos_tab, sin_tab);
}

void tc_rfft_from_bitrev(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab)
{
    const size_t m = n / 2;
    size_t k;
    tc_float_t r0;
    tc_float_t i0;

    cfft(buf, m, n, cos_tab, sin_tab);

    /* Split Z (FFT of z) into X: X[k] = E[k] + W^k O[k] with
     *   E[k] = (Z[k] + conj Z[m-k]) / 2,  O[k] = (Z[k] - conj Z[m-k]) / 2i,
     * and X[m-k] = conj(E[k] - W^k O[k]); pairs (k, m-k) are done together
     * so the transform stays in place. */
    r0 = buf[0];
    i0 = buf[1];
    buf[0] = r0 + i0; /* X[0] */
    buf[1] = r0 - i0; /* X[m], stored in the imaginary slot of bin 0 */
    for (k = 1; k <= m / 2; ++k) {
        const size_t mk = m - k;
        const tc_float_t a = buf[2 * k];
        const tc_float_t b = buf[2 * k + 1];
        const tc_float_t c = buf[2 * mk];
        const tc_float_t d = buf[2 * mk + 1];
        const tc_float_t half = (tc_float_t)0.5;
        const tc_float_t er = half * (a + c);
        const tc_float_t ei = half * (b - d);
        const tc_float_t orr = half * (b + d);
        const tc_float_t oi = -half * (a - c);
        const tc_float_t wr = cos_tab[k];
        const tc_float_t ws = sin_tab[k]; /* W^k = wr - i ws */
        const tc_float_t tr = wr * orr + ws * oi;
        const tc_float_t ti = wr * oi - ws * orr;
        buf[2 * k] = er + tr;
        buf[2 * k + 1] = ei + ti;
        buf[2 * mk] = er - tr;
        buf[2 * mk + 1] = -(ei - ti);
    }
}

void tc_rfft_power_from_bitrev(tc_float_t *buf, size_t n, const tc_float_t *cos_tab, const tc_float_t *sin_tab,
                               tc_float_t *power)
{
    const size_t m = n / 2;
    size_t k;
    tc_float_t r0;
    tc_float_t i0;

    cfft(buf, m, n, cos_tab, sin_tab);

    /* tc_rfft_from_bitrev's split, each bin squared where it is computed instead of stored */
    r0 = buf[0];
    i0 = buf[1];
    {
        const tc_float_t dc = r0 + i0;
        const tc_float_t ny = r0 - i0;
        power[0] = dc * dc;
        power[m] = ny * ny;
    }
    for (k = 1; k <= m / 2; ++k) {
        const size_t mk = m - k;
        const tc_float_t a = buf[2 * k];
        const tc_float_t b = buf[2 * k + 1];
        const tc_float_t c = buf[2 * mk];
        const tc_float_t d = buf[2 * mk + 1];
        const tc_float_t half = (tc_float_t)0.5;
        const tc_float_t er = half * (a + c);
        const tc_float_t ei = half * (b - d);
        const tc_float_t orr = half * (b + d);
        const tc_float_t oi = -half * (a - c);
        const tc_float_t wr = cos_tab[k];
        const tc_float_t ws = sin_tab[k]; /* W^k = wr - i ws */
        const tc_float_t tr = wr * orr + ws * oi;
        const tc_float_t ti = wr * oi - ws * orr;
        const tc_float_t xr = er + tr;
        const tc_float_t xi = ei + ti;
        const tc_float_t yr = er - tr;
        const tc_float_t yi = -(ei - ti);
        power[k] = xr * xr + xi * xi; /* k == m / 2: overwritten next, as tc_rfft's second store wins */
        power[mk] = yr * yr + yi * yi;
    }
}
