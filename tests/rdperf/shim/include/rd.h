/* The few librdkafka-internal helpers that Debian's copy of the rdkafka_performance example
 * expects from librdkafka's source tree, which the package does not ship. Ours, minimal. */
#ifndef RUNNEL_RDPERF_SHIM_RD_H
#define RUNNEL_RDPERF_SHIM_RD_H
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>
#define rd_snprintf snprintf
#define RD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RD_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
