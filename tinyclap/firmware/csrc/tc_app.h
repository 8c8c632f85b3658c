/*
 * tc_app.h - tinyclap's streaming classifier, as firmware calls it (C API).
 *
 * Two implementations, one API:
 *   tc_app.c      plain C99: the network as generated C (tinyclap.firmware.netgen,
 *                 tc_nn.c), one static arena, no TensorFlow Lite Micro. This is
 *                 what `tinyclap export --target` bundles into OUT/firmware/.
 *   main_tflm.cc  (examples/mcu/) the same loop over TensorFlow Lite Micro, the
 *                 alternative runtime (C++17, a TFLM library to link).
 *
 * Typical use from a C main loop (STM32 HAL, Zephyr, ...):
 *
 *     static int16_t window[TC_WINDOW_SAMPLES];    (tinyclap_model.h)
 *     if (tc_app_init() != 0) error();
 *     for (;;) {
 *         fill `window` with TC_WINDOW_SAMPLES mono int16 PCM samples at
 *             TC_MODEL_SAMPLE_RATE (I2S/SAI/PDM DMA; full scale 32768);
 *         tc_app_push_window(window);
 *         if (enough windows) {
 *             int label = tc_app_finish(top, 3, cos);
 *             printf("%s\n", tc_labels[label]);     (tinyclap_model.h)
 *         }
 *     }
 *
 * The window stays int16 (2 bytes a sample, the RAM that `tinyclap export
 * --target` counts for it): the front end converts to float one n_fft frame
 * at a time, inside its own work buffer. With tc_app.c the caller need not hold
 * a window at all: tc_app_push_samples takes the DMA's chunks as they come.
 */
#ifndef TC_APP_H
#define TC_APP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stages that tc_app.c reports to tc_profile(stage, begin) when built with
 * -DTC_APP_PROFILE (main_qemu.c counts instructions per stage with it). */
#define TC_STAGE_FRONTEND 0
#define TC_STAGE_NETWORK 1
#define TC_STAGE_CLASSIFIER 2
#define TC_STAGES 3

/* Prepare the front end and the network(s) (TFLM: build the interpreters; on
 * failure a reason has been printed with MicroPrintf). 0 on success. Call once. */
int tc_app_init(void);

/* Push n samples (any n: a DMA half-buffer, one sample, several windows) of
 * mono int16 PCM at TC_MODEL_SAMPLE_RATE. Windows of TC_WINDOW_SAMPLES are cut
 * back to back; each completed window runs the network. Plain C build
 * (tc_app.c) only: it keeps a ring of 2 * n_fft samples instead of a window
 * buffer. 0 on success. */
int tc_app_push_samples(const int16_t *pcm, size_t n);

/* Forget the windows pushed so far (tc_app_finish also does this). */
void tc_app_reset(void);

/* Log-mel of one window (TC_WINDOW_SAMPLES int16 PCM samples at
 * TC_MODEL_SAMPLE_RATE, read as sample / 32768; centre reflect padding)
 * -> features (or embedding) model -> accumulate. 0 on success. The window
 * is only read, and not kept: it can be refilled as soon as this returns. */
int tc_app_push_window(const int16_t *window);

/* Finish the accumulated windows: mean pooled vector -> head model ->
 * embedding -> int8 scores against the bank. Returns the best label index
 * (tc_labels), or -1 if no window was pushed or inference failed. If
 * `top` is not NULL it receives the k best labels, best first, and `cosine`
 * (if not NULL) their approximate cosine similarities. */
int tc_app_finish(int *top, size_t k, float *cosine);

/* Bytes of each tensor arena used (after tc_app_init): TFLM's measured use, to
 * size TC_*_ARENA_BYTES; the plain C network's static plan (one arena shared by
 * the features and head networks, reported as `which` 0). */
size_t tc_app_arena_used(int which /* 0: embed or features, 1: head */);

#ifdef __cplusplus
}
#endif

#endif /* TC_APP_H */
