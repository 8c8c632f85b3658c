/*
 * tc_logmel.h - tinyclap's log-mel front end for microcontrollers (C99).
 *
 * Computes exactly what tinyclap.audio.LogMel computes in Python: periodic
 * Hann window, centre padding by reflection, power spectrum, Slaney mel
 * filters (librosa's), 10*log10(max(mel, 1e-10)), no top_db.
 *
 * No dynamic allocation: the only working memory is the caller's
 * tc_logmel_t (n_fft values, 4 KB for the default n_fft = 1024, float32),
 * which can be a static variable. Every entry point comes in a float flavour
 * (samples in [-1, 1]) and an int16 one (_i16: PCM as a microphone's I2S/PDM
 * path delivers it, full scale 32768). The int16 ones convert each sample
 * (x / 32768, exact) as they copy it into the n_fft work buffer, so no float
 * copy of the audio ever exists, and give bit for bit what the float ones
 * give on the same samples / 32768. All tables (window, FFT twiddles, sparse
 * mel weights) are const arrays generated from Python into
 * tc_logmel_tables.h, so they live in flash, cost no boot time and are
 * bit-identical to the Python front end's.
 *
 * The sizes (TC_LOGMEL_N_FFT, TC_LOGMEL_N_MELS, ...) come from the generated
 * tc_logmel_config.h; regenerate both headers for a model with another
 * AudioConfig (tinyclap.export.mcu.write_frontend_tables).
 */
#ifndef TC_LOGMEL_H
#define TC_LOGMEL_H

#include <stddef.h>
#include <stdint.h>

#include "tc_logmel_config.h"
#include "tc_rfft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Working memory of one front end. Declare it static (or on a task's stack). */
typedef struct tc_logmel {
    tc_float_t buf[TC_LOGMEL_N_FFT];
} tc_logmel_t;

/* Prepare a front end. Returns 0 (kept as a function so that a build that
 * computes its tables at boot could do it here without an API change). */
int tc_logmel_init(tc_logmel_t *st);

/*
 * Log-mel of one frame: `frame` holds TC_LOGMEL_N_FFT consecutive samples
 * (unwindowed; the Hann window is applied here), `out` receives
 * TC_LOGMEL_N_MELS values in dB. For streaming audio without centre padding,
 * call it every TC_LOGMEL_HOP samples on the last TC_LOGMEL_N_FFT samples.
 */
void tc_logmel_frame(tc_logmel_t *st, const float *frame, float out[TC_LOGMEL_N_MELS]);

/* tc_logmel_frame on int16 PCM (sample / 32768). */
void tc_logmel_frame_i16(tc_logmel_t *st, const int16_t *frame, float out[TC_LOGMEL_N_MELS]);

/* Frames tc_logmel_buffer makes from n samples: n / hop + 1 (as in Python). */
size_t tc_logmel_frames(size_t n_samples);

/*
 * Frame t (0 <= t < tc_logmel_frames(n)) of a whole buffer with centre
 * reflect padding, as Python's LogMel pads each clip or window. Frame t needs
 * samples up to t*hop + n_fft/2, so a caller filling `wave` from a microphone
 * can compute the frames as the samples arrive. Returns 0, or -1 if n is too
 * short to reflect (n <= n_fft/2) or t is out of range.
 */
int tc_logmel_buffer_frame(tc_logmel_t *st, const float *wave, size_t n, size_t t,
                           float out[TC_LOGMEL_N_MELS]);

/* tc_logmel_buffer_frame on int16 PCM (sample / 32768). */
int tc_logmel_buffer_frame_i16(tc_logmel_t *st, const int16_t *wave, size_t n, size_t t,
                               float out[TC_LOGMEL_N_MELS]);

/*
 * Log-mel of a whole buffer (a clip or one streaming window), row-major
 * (frames, TC_LOGMEL_N_MELS) into `out`, which holds max_frames rows.
 * Returns the number of frames written, or -1 if n <= n_fft/2 (too short to
 * reflect, as in Python) or out is too small.
 */
long tc_logmel_buffer(tc_logmel_t *st, const float *wave, size_t n, float *out,
                      size_t max_frames);

/* tc_logmel_buffer on int16 PCM (sample / 32768). */
long tc_logmel_buffer_i16(tc_logmel_t *st, const int16_t *wave, size_t n, float *out,
                          size_t max_frames);

#ifdef __cplusplus
}
#endif

#endif /* TC_LOGMEL_H */
