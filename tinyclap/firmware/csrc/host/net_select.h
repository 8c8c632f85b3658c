/* The generated network a test driver runs, chosen at build time:
 *   -DTC_NET_HEADER='"features_net.h"' -DTC_NET_NAME=features -DTC_NET_UPPER=FEATURES
 * gives NET_INVOKE, NET_ARENA, NET_IN_SIZE, NET_OUT_SIZE and the graph's
 * input and output element types net_in_t / net_out_t. Shared by the host
 * (net_host.c) and the Cortex-M (net_qemu.c) drivers. */
#ifndef TC_NET_SELECT_H
#define TC_NET_SELECT_H

#include <stdint.h>

#include TC_NET_HEADER

#define TC_CAT3_(a, b, c) a##b##c
#define TC_CAT3(a, b, c) TC_CAT3_(a, b, c)
#define NET_INVOKE TC_CAT3(tc_net_, TC_NET_NAME, _invoke)
#define NET_ARENA TC_CAT3(TC_NET_, TC_NET_UPPER, _ARENA_BYTES)
#define NET_IN_SIZE TC_CAT3(TC_NET_, TC_NET_UPPER, _INPUT_SIZE)
#define NET_OUT_SIZE TC_CAT3(TC_NET_, TC_NET_UPPER, _OUTPUT_SIZE)

#if TC_CAT3(TC_NET_, TC_NET_UPPER, _INPUT_IS_FLOAT)
typedef float net_in_t;
#else
typedef int8_t net_in_t;
#endif
#if TC_CAT3(TC_NET_, TC_NET_UPPER, _OUTPUT_IS_FLOAT)
typedef float net_out_t;
#else
typedef int8_t net_out_t;
#endif

#endif /* TC_NET_SELECT_H */
