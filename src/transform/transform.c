/*
 * transform.c - see transform.h.
 */
#include "transform/transform.h"

#include <stdlib.h>
#include <string.h>

#include "schema/decimal.h"
#include "transform/tz.h"
#include "util/timeutil.h"

static const int num_slot[TN_COUNT] = {
    KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, KS_QUOTE_VOLUME, KS_TAKER_BASE,
    KS_TAKER_QUOTE,
};

void transform_row(const struct kline *k, struct tkline *t)
{
    t->open_time = k->open_time;
    t->close_time = k->close_time;
    t->trades = k->trades;
    for (int i = 0; i < TN_COUNT; i++) {
        t->v[i] = dec_to_double(k->s[num_slot[i]], k->len[num_slot[i]]);
    }
    time_format_sql(k->open_time, t->utc_datetime);
    memcpy(t->open_dt, t->utc_datetime, sizeof(t->open_dt));
    time_format_sql(k->close_time, t->close_dt);
    tz_format_local(k->open_time, t->local_dt);
    memcpy(t->ignore, k->s[KS_IGNORE], (size_t)k->len[KS_IGNORE] + 1);
    memcpy(t->updated_at, k->updated_at, sizeof(t->updated_at));
    t->src = k;
}
