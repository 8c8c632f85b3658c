/*
 * main_qemu.c - the tinyclap firmware image for QEMU's MPS2 boards (mps2-an500:
 * Cortex-M7; mps2-an386: Cortex-M4), driven by `tinyclap firmware run`.
 *
 * Input and output go through Arm semihosting (the host's files and stdout; the
 * calls are made here with BKPT 0xAB rather than through newlib's librdimon
 * open/read/write, whose reentrancy support links malloc: this image links no
 * allocator at all, which the tests check). The input file (first semihosting
 * argument, default tc_input.bin) is little-endian:
 *     "TCIN", uint32 clips, then per clip: uint32 samples, int16 samples[...]
 * (mono PCM at TC_MODEL_SAMPLE_RATE). Each clip is read TC_CHUNK samples at a
 * time into one small buffer, as a microphone DMA would fill it, and handed to
 * tc_app_push_samples (no window buffer anywhere); windows are cut as
 * main_tflm.cc and tinyclap.export.streaming.cut_windows cut it: windows back to
 * back, a shorter tail dropped, a clip shorter than a window repeated to fill it.
 *
 * Instructions are counted with QEMU's -icount shift=0 (virtual time advances
 * 1 ns per instruction) and the CMSDK APB timer 0 (a 32-bit down counter at the
 * board's 25 MHz system clock), read around each stage (tc_profile, called by
 * tc_app.c built with -DTC_APP_PROFILE). A calibration loop of a known number of
 * instructions is timed first, so the host can check instructions per tick.
 *
 * Output lines (stdout, parsed by tinyclap.firmware.qemu):
 *     TC calib <instructions> <ticks>
 *     TC clip <i> <windows> <samples> top <k> <label> <cosine_e6> ... ticks <frontend> <network> <classifier>
 *     TC stack <used> <size>
 *     TC arena <bytes>
 *     TC done <clips>
 *     TC error <message>
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tc_app.h"
#include "tc_startup_cm.h"
#include "tinyclap_model.h"

#ifndef TC_TOPK
#define TC_TOPK 5
#endif
#define TC_K (TC_TOPK < TC_N_CLASSES ? TC_TOPK : TC_N_CLASSES)

/* ------------------------------------------------------------ semihosting */

static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static __attribute__((noreturn)) void sh_exit(int code) {
    uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    (void)semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
    for (;;) {
    }
}

/* SYS_OPEN: a host file (mode 1: "rb", 4: "w"); ":tt" is the console. -1 on failure. */
static int sh_open(const char *name, uint32_t mode) {
    uint32_t block[3] = {(uint32_t)(uintptr_t)name, mode, (uint32_t)strlen(name)};
    return semihost(0x01, block);
}

/* SYS_READ: returns the bytes read (0 at the end of the file). */
static size_t sh_read(int fd, void *buf, size_t len) {
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    const int left = semihost(0x06, block);
    return left < 0 || (size_t)left > len ? 0u : len - (size_t)left;
}

static void sh_write(int fd, const void *buf, size_t len) {
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    (void)semihost(0x05, block);
}

static void sh_close(int fd) {
    uint32_t block[1] = {(uint32_t)fd};
    (void)semihost(0x02, block);
}

static int g_stdout = -1;

/* ------------------------------------------------------------ output (no printf: no malloc) */

static char g_line[96 + 24 * TC_TOPK];
static size_t g_len;

static void put_str(const char *s) {
    while (*s && g_len + 1 < sizeof g_line) g_line[g_len++] = *s++;
}

static void put_digits(uint64_t v, int negative) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    put_str(negative ? " -" : " ");
    while (n > 0 && g_len + 1 < sizeof g_line) g_line[g_len++] = tmp[--n];
}

static void put_u64(uint64_t v) {
    put_digits(v, 0);
}

static void put_i32(int32_t v) {
    put_digits(v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v, v < 0);
}

static void line_begin(const char *tag) {
    g_len = 0;
    put_str("TC ");
    put_str(tag);
}

static void line_end(void) {
    g_line[g_len++] = '\n';
    sh_write(g_stdout, g_line, g_len);
}

static __attribute__((noreturn)) void fail(const char *why) {
    line_begin("error ");
    put_str(why);
    line_end();
    sh_exit(1);
}

void tc_fault_hook(void) {
    fail("fault (HardFault/MemManage/BusFault/UsageFault)");
}

/* ------------------------------------------------------------ instruction counting */

#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

static void timer_start(void) {
    TIMER0_CTRL = 0u;
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1u; /* enable, no interrupt */
}

/* Ticks since timer_start (the counter counts down; 2^32 ticks is 171 s of virtual time). */
static uint32_t ticks(void) {
    return 0xFFFFFFFFu - TIMER0_VALUE;
}

static uint64_t g_stage_ticks[TC_STAGES];
static uint32_t g_stage_start[TC_STAGES];

void tc_profile(int stage, int begin);
void tc_profile(int stage, int begin) {
    if (stage < 0 || stage >= TC_STAGES) return;
    if (begin) {
        g_stage_start[stage] = ticks();
    } else {
        g_stage_ticks[stage] += (uint32_t)(ticks() - g_stage_start[stage]);
    }
}

/* A loop of exactly 2 * n instructions (subs + bne per iteration), timed. */
static uint32_t calibrate(uint32_t n) {
    uint32_t t0, t1;
    register uint32_t count __asm__("r4") = n;
    t0 = ticks();
    __asm volatile(
        "1:\n\t"
        "subs %0, %0, #1\n\t"
        "bne 1b\n\t"
        : "+r"(count)
        :
        : "cc");
    t1 = ticks();
    return t1 - t0;
}

/* ------------------------------------------------------------ input */

static int g_fd = -1;
static uint32_t g_file_pos; /* bytes read from the input file so far */

static void read_exact(void *dst, size_t bytes) {
    uint8_t *p = (uint8_t *)dst;
    while (bytes > 0) {
        const size_t got = sh_read(g_fd, p, bytes);
        if (got == 0) fail("input file ends early");
        p += got;
        bytes -= got;
        g_file_pos += (uint32_t)got;
    }
}

static void seek_to(uint32_t pos) {
    uint32_t block[2] = {(uint32_t)g_fd, pos};
    if (semihost(0x0A /* SYS_SEEK */, block) != 0) fail("cannot seek in the input file");
    g_file_pos = pos;
}

static uint32_t read_u32(void) {
    uint8_t b[4];
    read_exact(b, 4);
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* The DMA buffer stand-in: samples reach the app in chunks of TC_CHUNK. */
#ifndef TC_CHUNK
#define TC_CHUNK 256
#endif
static int16_t g_chunk[TC_CHUNK];

static void stream(uint32_t samples) {
    while (samples > 0) {
        const uint32_t c = samples < TC_CHUNK ? samples : TC_CHUNK;
        read_exact(g_chunk, (size_t)c * sizeof(int16_t));
        if (tc_app_push_samples(g_chunk, c) != 0) fail("tc_app_push_samples failed");
        samples -= c;
    }
}

static char g_cmdline[256];

static const char *input_path(void) {
    uint32_t block[2] = {(uint32_t)(uintptr_t)g_cmdline, sizeof g_cmdline};
    char *p;
    if (semihost(0x15 /* SYS_GET_CMDLINE */, block) != 0) return "tc_input.bin";
    p = strchr(g_cmdline, ' '); /* argv[0] first */
    if (p == NULL || p[1] == '\0') return "tc_input.bin";
    return p + 1;
}

int main(void) {
    uint32_t clips, c;
    g_stdout = sh_open(":tt", 4);
    timer_start();
    {
        const uint32_t iters = 1u << 20;
        const uint32_t t = calibrate(iters);
        line_begin("calib");
        put_u64(2u * (uint64_t)iters);
        put_u64(t);
        line_end();
    }
    g_fd = sh_open(input_path(), 1);
    if (g_fd < 0) fail("cannot open the input file");
    {
        char magic[4];
        read_exact(magic, 4);
        if (memcmp(magic, "TCIN", 4) != 0) fail("input file is not TCIN");
    }
    clips = read_u32();
    if (tc_app_init() != 0) fail("tc_app_init failed");
    for (c = 0; c < clips; ++c) {
        const uint32_t n = read_u32();
        const uint32_t start = g_file_pos;
        uint32_t windows, i;
        int top[TC_K];
        float cosine[TC_K];
        int best;
        memset(g_stage_ticks, 0, sizeof g_stage_ticks);
        if (n == 0) fail("empty clip");
        if (n <= TC_WINDOW_SAMPLES) { /* shorter than a window: repeated to fill it */
            uint32_t pushed = 0;
            windows = 1;
            while (pushed < TC_WINDOW_SAMPLES) {
                const uint32_t take = n < TC_WINDOW_SAMPLES - pushed ? n : TC_WINDOW_SAMPLES - pushed;
                seek_to(start);
                stream(take);
                pushed += take;
            }
        } else {
            windows = n / TC_WINDOW_SAMPLES; /* a shorter tail is dropped */
            stream(windows * TC_WINDOW_SAMPLES);
        }
        seek_to(start + n * (uint32_t)sizeof(int16_t));
        best = tc_app_finish(top, TC_K, cosine);
        if (best < 0 || best != top[0]) fail("tc_app_finish failed");
        line_begin("clip");
        put_u64(c);
        put_u64(windows);
        put_u64(n);
        put_str(" top");
        put_u64(TC_K);
        for (i = 0; i < TC_K; ++i) {
            put_u64((uint64_t)top[i]);
            put_i32((int32_t)(cosine[i] * 1e6f));
        }
        put_str(" ticks");
        for (i = 0; i < TC_STAGES; ++i) put_u64(g_stage_ticks[i]);
        line_end();
    }
    sh_close(g_fd);
    line_begin("stack");
    put_u64(tc_stack_used());
    put_u64(tc_stack_size());
    line_end();
    line_begin("arena");
    put_u64(tc_app_arena_used(0));
    line_end();
    line_begin("done");
    put_u64(clips);
    line_end();
    sh_exit(0);
}
