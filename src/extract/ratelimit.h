/*
 * ratelimit.h - staying under the exchange's request-weight budget.
 *
 * Binance counts request weight per IP in fixed one-minute windows and
 * reports the current total in X-MBX-USED-WEIGHT-1M on every response.
 * Before a request, acquire() waits until its weight fits in the budget of
 * the current window; after a response, observe() takes the header as the
 * truth (it includes other processes behind the same IP).  A 429's
 * Retry-After pauses every request until it has passed.
 */
#ifndef DATAOPS_RATELIMIT_H
#define DATAOPS_RATELIMIT_H

#include <stdint.h>

#include "util/err.h"

struct ratelimit {
    long budget;              /* weight per minute we allow ourselves */
    long used;                /* weight used in the current window */
    int64_t window;           /* current window: epoch minute number */
    int64_t paused_until;     /* epoch ms; 0 = not paused */
    long waits;               /* how often acquire() had to sleep */
    long max_used;            /* the highest used weight seen */
};

void ratelimit_init(struct ratelimit *rl, long budget);
/* Wait until weight fits; ERR_INTERRUPTED on SIGTERM. */
int ratelimit_acquire(struct ratelimit *rl, long weight, struct err *e);
/* Record the server's view after a response (used < 0: header absent). */
void ratelimit_observe(struct ratelimit *rl, long used);
void ratelimit_pause(struct ratelimit *rl, long seconds);
/* For the concurrent engine (fetcher.c), which must never sleep here:
 * 0 when weight fits in the current window (it is counted); 1 when the
 * caller must wait *wait_ms (a Retry-After pause or the next window);
 * -1 when weight is larger than the whole budget and can never fit.
 * in_flight is the weight of requests sent and not yet answered: a new
 * window starts with it counted, because the exchange may count those
 * requests in the new window, so the weight in flight plus the weight
 * answered in a window never exceeds the budget. */
int ratelimit_try_acquire(struct ratelimit *rl, long weight, long in_flight, int64_t *wait_ms);

#endif
