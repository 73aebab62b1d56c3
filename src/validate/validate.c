/*
 * validate.c - see validate.h.
 */
#include "validate/validate.h"

#include <math.h>
#include <stdio.h>

#include "schema/decimal.h"

const char *const vrule_names[VR__COUNT] = {
    "grid", "close_time", "ohlc", "negative", "taker", "duplicate", "order", "range",
    "transformed",
};

#define S(k, f) (k)->s[f], (k)->len[f]

int validate_raw_row(const struct interval *iv, const struct kline *k, int64_t prev_open,
                     char *why, size_t n, unsigned *notes)
{
    *notes = 0;
    if (k->open_time == prev_open) {
        snprintf(why, n, "duplicate open_time %lld", (long long)k->open_time);
        return VR_DUPLICATE;
    }
    if (k->open_time < prev_open) {
        snprintf(why, n, "open_time %lld goes back in time (previous row %lld)",
                 (long long)k->open_time, (long long)prev_open);
        return VR_ORDER;
    }
    if (k->open_time < 0 || !interval_is_aligned(iv, k->open_time)) {
        snprintf(why, n, "open_time %lld is not on the %s grid", (long long)k->open_time,
                 iv->name);
        return VR_GRID;
    }
    int64_t last_ms = interval_next(iv, k->open_time) - 1;
    if (k->close_time <= k->open_time || k->close_time > last_ms) {
        snprintf(why, n, "close_time %lld outside (open_time %lld, %lld]",
                 (long long)k->close_time, (long long)k->open_time, (long long)last_ms);
        return VR_CLOSE_TIME;
    }
    static const int nonneg[] = {KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME,
                                 KS_QUOTE_VOLUME, KS_TAKER_BASE, KS_TAKER_QUOTE};
    static const char *const names[] = {"open", "high", "low", "close", "volume",
                                        "quote_asset_volume", "taker_buy_base_asset_volume",
                                        "taker_buy_quote_asset_volume"};
    for (int i = 0; i < 8; i++) {
        if (dec_negative(S(k, nonneg[i]))) {
            snprintf(why, n, "%s is negative (%s)", names[i], k->s[nonneg[i]]);
            return VR_NEGATIVE;
        }
    }
    if (k->trades < 0) {
        snprintf(why, n, "number_of_trades is negative (%lld)", (long long)k->trades);
        return VR_NEGATIVE;
    }
    if (dec_cmp(S(k, KS_LOW), S(k, KS_OPEN)) > 0 || dec_cmp(S(k, KS_LOW), S(k, KS_CLOSE)) > 0) {
        snprintf(why, n, "low %s is above open %s or close %s", k->s[KS_LOW], k->s[KS_OPEN],
                 k->s[KS_CLOSE]);
        return VR_OHLC;
    }
    if (dec_cmp(S(k, KS_HIGH), S(k, KS_OPEN)) < 0 ||
        dec_cmp(S(k, KS_HIGH), S(k, KS_CLOSE)) < 0) {
        snprintf(why, n, "high %s is below open %s or close %s", k->s[KS_HIGH], k->s[KS_OPEN],
                 k->s[KS_CLOSE]);
        return VR_OHLC;
    }
    if (dec_cmp(S(k, KS_TAKER_BASE), S(k, KS_VOLUME)) > 0) {
        snprintf(why, n, "taker_buy_base_asset_volume %s is above volume %s",
                 k->s[KS_TAKER_BASE], k->s[KS_VOLUME]);
        return VR_TAKER;
    }
    if (dec_cmp(S(k, KS_TAKER_QUOTE), S(k, KS_QUOTE_VOLUME)) > 0) {
        snprintf(why, n, "taker_buy_quote_asset_volume %s is above quote_asset_volume %s",
                 k->s[KS_TAKER_QUOTE], k->s[KS_QUOTE_VOLUME]);
        return VR_TAKER;
    }
    if (k->close_time < last_ms) {
        *notes |= VNOTE_SHORT;
    }
    if (k->trades == 0) {
        *notes |= VNOTE_ZERO_TRADE;
    }
    return -1;
}

int validate_transformed_row(const struct tkline *t, char *why, size_t n)
{
    static const char *const names[TN_COUNT] = {
        "open", "high", "low", "close", "volume", "quote_asset_volume",
        "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume",
    };
    for (int i = 0; i < TN_COUNT; i++) {
        if (!isfinite(t->v[i]) || t->v[i] < 0) {
            snprintf(why, n, "%s is not a finite non-negative number (%g)", names[i], t->v[i]);
            return VR_TRANSFORMED;
        }
    }
    if (t->v[TN_LOW] > t->v[TN_HIGH]) {
        snprintf(why, n, "low %g above high %g after the cast", t->v[TN_LOW], t->v[TN_HIGH]);
        return VR_TRANSFORMED;
    }
    if (!t->utc_datetime[0] || !t->open_dt[0] || !t->close_dt[0] || !t->local_dt[0] ||
        !t->updated_at[0]) {
        snprintf(why, n, "a datetime column is empty");
        return VR_TRANSFORMED;
    }
    return -1;
}
