/*
 * backoff.h - retry waits with capped full jitter, shared by every HTTP
 * client (the exchange, Google APIs, S3).
 *
 * A client keeps one generator state (xorshift64*: jitter needs no
 * crypto), seeded once from the kernel.
 */
#ifndef DATAOPS_UTIL_BACKOFF_H
#define DATAOPS_UTIL_BACKOFF_H

#include <stdint.h>

/* A non-zero seed from getrandom(), or from the clock and pid without it. */
uint64_t backoff_seed(void);

/* Uniform in [0, min(cap_ms, base_ms * 2^doublings)], advancing *rng. */
long backoff_ms(uint64_t *rng, long base_ms, long cap_ms, int doublings);

#endif
