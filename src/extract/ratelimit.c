/*
 * ratelimit.c - see ratelimit.h.
 */
#include "extract/ratelimit.h"

#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"

void ratelimit_init(struct ratelimit *rl, long budget)
{
    rl->budget = budget > 0 ? budget : 1;
    rl->used = 0;
    rl->window = floor_div(time_now_ms(), MS_PER_MIN);
    rl->paused_until = 0;
    rl->waits = 0;
    rl->max_used = 0;
}

static void roll_window(struct ratelimit *rl, int64_t now)
{
    int64_t w = floor_div(now, MS_PER_MIN);
    if (w != rl->window) {
        rl->window = w;
        rl->used = 0;
    }
}

int ratelimit_acquire(struct ratelimit *rl, long weight, struct err *e)
{
    if (weight > rl->budget) {
        return err_set(e, ERR_CONFIG, "a request of weight %ld can never fit the weight budget "
                       "of %ld per minute (DATAOPS_WEIGHT_BUDGET)", weight, rl->budget);
    }
    for (;;) {
        int64_t now = time_now_ms();
        if (rl->paused_until > now) {
            if (interrupt_sleep_ms((long)(rl->paused_until - now))) {
                return err_set(e, ERR_INTERRUPTED, "interrupted while waiting for Retry-After");
            }
            continue;
        }
        roll_window(rl, now);
        if (rl->used + weight <= rl->budget) {
            rl->used += weight;
            return 0;
        }
        /* Wait for the next window, plus a little for clock skew between us
         * and the exchange. */
        long wait = (long)((rl->window + 1) * MS_PER_MIN - now) + 250;
        rl->waits++;
        log_info("ratelimit", "weight budget %ld/min reached (used %ld); waiting %ld ms",
                 rl->budget, rl->used, wait);
        if (interrupt_sleep_ms(wait)) {
            return err_set(e, ERR_INTERRUPTED, "interrupted while waiting for the weight budget");
        }
    }
}

void ratelimit_observe(struct ratelimit *rl, long used)
{
    if (used < 0) {
        return;
    }
    roll_window(rl, time_now_ms());
    if (used > rl->used) {
        rl->used = used;
    }
    if (used > rl->max_used) {
        rl->max_used = used;
    }
}

void ratelimit_pause(struct ratelimit *rl, long seconds)
{
    int64_t until = time_now_ms() + (seconds > 0 ? seconds : 1) * 1000;
    if (until > rl->paused_until) {
        rl->paused_until = until;
    }
}

int ratelimit_try_acquire(struct ratelimit *rl, long weight, long in_flight, int64_t *wait_ms)
{
    int64_t now = time_now_ms();
    if (weight > rl->budget) {
        return -1;
    }
    if (rl->paused_until > now) {
        *wait_ms = rl->paused_until - now;
        return 1;
    }
    int64_t w = floor_div(now, MS_PER_MIN);
    if (w != rl->window) {
        rl->window = w;
        rl->used = in_flight;
    }
    if (rl->used + weight <= rl->budget) {
        rl->used += weight;
        return 0;
    }
    /* As in ratelimit_acquire: the next window, plus a little for clock
     * skew between us and the exchange. */
    *wait_ms = (rl->window + 1) * MS_PER_MIN - now + 250;
    return 1;
}
