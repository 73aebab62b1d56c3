/*
 * interval.h - the 16 Binance kline intervals and their grids.
 *
 * Every interval but 1M has a fixed length and a grid of open times
 * offset + k * length (UTC):  1s..1d start at the epoch, 3d at day 1
 * (days since the epoch = 1 mod 3, as the exchange aligns them), 1w at
 * Monday 1970-01-05.  1M opens at 00:00 on the 1st of each month and its
 * length varies from 28 to 31 days, so it is computed on the calendar.
 */
#ifndef DATAOPS_INTERVAL_H
#define DATAOPS_INTERVAL_H

#include <stdint.h>

struct interval {
    const char *name;       /* as the API spells it: "1m", "1M", ... */
    const char *path_name;  /* for file names: "1mo" for the month, so that
                               case-insensitive file systems keep 1m and 1M apart */
    int64_t ms;             /* fixed length, or 0 for the calendar month */
    int64_t offset;         /* grid origin for fixed lengths */
};

#define INTERVAL_COUNT 16
extern const struct interval intervals[INTERVAL_COUNT];

/* Case-sensitive lookup; NULL if the name is not a Binance interval. */
const struct interval *interval_find(const char *name);
int interval_is_aligned(const struct interval *iv, int64_t t);
/* Largest grid point <= t, and smallest grid point >= t. */
int64_t interval_align_down(const struct interval *iv, int64_t t);
int64_t interval_align_up(const struct interval *iv, int64_t t);
/* Open time of the candle after the one that opens at open (on the grid). */
int64_t interval_next(const struct interval *iv, int64_t open);
/* Length in ms of the candle that opens at open. */
int64_t interval_length(const struct interval *iv, int64_t open);
/* Number of candles with open time in [from, to); to <= from gives 0. */
int64_t interval_count(const struct interval *iv, int64_t from, int64_t to);

#endif
