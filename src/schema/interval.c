/*
 * interval.c - see interval.h.
 */
#include "schema/interval.h"

#include <string.h>

#include "util/timeutil.h"

const struct interval intervals[INTERVAL_COUNT] = {
    {"1s", "1s", 1000LL, 0},
    {"1m", "1m", MS_PER_MIN, 0},
    {"3m", "3m", 3 * MS_PER_MIN, 0},
    {"5m", "5m", 5 * MS_PER_MIN, 0},
    {"15m", "15m", 15 * MS_PER_MIN, 0},
    {"30m", "30m", 30 * MS_PER_MIN, 0},
    {"1h", "1h", MS_PER_HOUR, 0},
    {"2h", "2h", 2 * MS_PER_HOUR, 0},
    {"4h", "4h", 4 * MS_PER_HOUR, 0},
    {"6h", "6h", 6 * MS_PER_HOUR, 0},
    {"8h", "8h", 8 * MS_PER_HOUR, 0},
    {"12h", "12h", 12 * MS_PER_HOUR, 0},
    {"1d", "1d", MS_PER_DAY, 0},
    {"3d", "3d", 3 * MS_PER_DAY, MS_PER_DAY},
    {"1w", "1w", 7 * MS_PER_DAY, 4 * MS_PER_DAY},
    {"1M", "1mo", 0, 0},
};

const struct interval *interval_find(const char *name)
{
    for (int i = 0; i < INTERVAL_COUNT; i++) {
        if (strcmp(intervals[i].name, name) == 0) {
            return &intervals[i];
        }
    }
    return NULL;
}

static int64_t month_start(int64_t y, unsigned m)
{
    return days_from_civil(y, m, 1) * MS_PER_DAY;
}

int64_t interval_align_down(const struct interval *iv, int64_t t)
{
    if (iv->ms) {
        return iv->offset + floor_div(t - iv->offset, iv->ms) * iv->ms;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(floor_div(t, MS_PER_DAY), &y, &m, &d);
    return month_start(y, m);
}

int interval_is_aligned(const struct interval *iv, int64_t t)
{
    return interval_align_down(iv, t) == t;
}

int64_t interval_next(const struct interval *iv, int64_t open)
{
    if (iv->ms) {
        return open + iv->ms;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(floor_div(open, MS_PER_DAY), &y, &m, &d);
    return m == 12 ? month_start(y + 1, 1) : month_start(y, m + 1);
}

int64_t interval_align_up(const struct interval *iv, int64_t t)
{
    int64_t down = interval_align_down(iv, t);
    return down == t ? t : interval_next(iv, down);
}

int64_t interval_length(const struct interval *iv, int64_t open)
{
    return interval_next(iv, open) - open;
}

int64_t interval_count(const struct interval *iv, int64_t from, int64_t to)
{
    if (to <= from) {
        return 0;
    }
    int64_t a = interval_align_up(iv, from);
    if (a >= to) {
        return 0;
    }
    if (iv->ms) {
        return (to - 1 - a) / iv->ms + 1;
    }
    int64_t n = 0;
    for (int64_t t = a; t < to; t = interval_next(iv, t)) {
        n++;
    }
    return n;
}
