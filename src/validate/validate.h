/*
 * validate.h - the expectations every row must meet before it is written.
 *
 * Raw rows (the parser has already guaranteed 12 fields of the right JSON
 * types, no nulls and well-formed decimals):
 *   grid        open_time on the interval's grid (1w on Mondays, 1M on the
 *               1st, 3d by days since the epoch)
 *   close_time  open_time < close_time <= open_time + length - 1; a shorter
 *               candle is real (the exchange cuts candles at outages): it
 *               is noted, not rejected
 *   ohlc        low <= min(open, close) and max(open, close) <= high,
 *               compared exactly as decimals
 *   negative    no negative price, volume or trade count
 *   taker       taker-buy volumes not above the matching volume
 *   order       open_time strictly increasing (a duplicate or a row that
 *               goes back in time is rejected)
 * Transformed rows: every number finite and not negative, low <= high,
 * datetimes present.
 */
#ifndef DATAOPS_VALIDATE_H
#define DATAOPS_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "schema/interval.h"
#include "schema/kline.h"

enum vrule {
    VR_GRID = 0,
    VR_CLOSE_TIME,
    VR_OHLC,
    VR_NEGATIVE,
    VR_TAKER,
    VR_DUPLICATE,
    VR_ORDER,
    VR_RANGE,
    VR_TRANSFORMED,
    VR__COUNT
};

extern const char *const vrule_names[VR__COUNT];

#define VNOTE_SHORT 1u       /* candle closed before its interval ended */
#define VNOTE_ZERO_TRADE 2u  /* no trades in the candle */

/* Returns -1 if the row passes, else the rule it breaks, with a reason in
 * why.  prev_open is the open time of the previous accepted row (or
 * INT64_MIN); *notes receives VNOTE_* flags for rows that pass. */
int validate_raw_row(const struct interval *iv, const struct kline *k, int64_t prev_open,
                     char *why, size_t n, unsigned *notes);
int validate_transformed_row(const struct tkline *t, char *why, size_t n);

#endif
