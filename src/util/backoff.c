/*
 * backoff.c - see backoff.h.
 */
#include "util/backoff.h"

#include <sys/random.h>
#include <unistd.h>

#include "util/timeutil.h"

uint64_t backoff_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s) || s == 0) {
        s = (uint64_t)time_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    }
    return s ? s : 0x9E3779B97F4A7C15ULL;
}

long backoff_ms(uint64_t *rng, long base_ms, long cap_ms, int doublings)
{
    long ceil_ms = base_ms;
    for (int i = 0; i < doublings && ceil_ms < cap_ms; i++) {
        ceil_ms *= 2;
    }
    if (ceil_ms > cap_ms) {
        ceil_ms = cap_ms;
    }
    if (ceil_ms < 0) {
        ceil_ms = 0;
    }
    uint64_t x = *rng ? *rng : 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return (long)((x * 0x2545F4914F6CDD1DULL) % (uint64_t)(ceil_ms + 1));
}
