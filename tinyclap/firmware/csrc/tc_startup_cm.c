/*
 * tc_startup_cm.c - minimal Cortex-M startup for the tinyclap firmware image (C99 + GCC attributes).
 *
 * Vector table (initial stack pointer + reset handler + faults), .data copied
 * from flash, .bss zeroed, the FPU enabled, the stack painted (so that
 * tc_stack_used() can report its high-water mark), then main(). The symbols
 * come from tc_link.ld. A vendor project (STM32CubeIDE) has its own startup
 * file and linker script: leave this file out there.
 */
#include <stddef.h>
#include <stdint.h>

#include "tc_startup_cm.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#define TC_STACK_PAINT 0xC5C5C5C5u

void tc_fault_hook(void) __attribute__((weak));
void tc_fault_hook(void) {}

void Fault_Handler(void) {
    tc_fault_hook();
    for (;;) {
    }
}

__attribute__((section(".isr_vector"), used)) static void (*const g_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack, /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};

__attribute__((noinline)) static void paint_stack(void) {
    /* Paint from the bottom of the stack up to a little below this frame. */
    volatile uint32_t *p = &_sstack;
    uint32_t *limit = (uint32_t *)__builtin_frame_address(0) - 64;
    while ((uint32_t *)p < limit) *p++ = TC_STACK_PAINT;
}

size_t tc_stack_used(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == TC_STACK_PAINT) ++p;
    return (size_t)((const uint8_t *)&_estack - (const uint8_t *)p);
}

size_t tc_stack_size(void) {
    return (size_t)((const uint8_t *)&_estack - (const uint8_t *)&_sstack);
}

__attribute__((noreturn)) void Reset_Handler(void) {
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0u;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    paint_stack();
    (void)main();
    for (;;) {
    }
}
