/* tc_startup_cm.h - what the minimal Cortex-M startup (tc_startup_cm.c) offers the application. */
#ifndef TC_STARTUP_CM_H
#define TC_STARTUP_CM_H

#include <stddef.h>

/* Bytes of the stack ever used since reset (the part no longer holding the paint). */
size_t tc_stack_used(void);

/* Bytes reserved for the stack by the linker script (TC_STACK_BYTES). */
size_t tc_stack_size(void);

/* Called on any fault before the core spins (the QEMU harness reports and exits). */
void tc_fault_hook(void);

#endif /* TC_STARTUP_CM_H */
