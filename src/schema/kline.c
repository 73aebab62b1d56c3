/*
 * kline.c - batches and shared column names.
 */
#include "schema/kline.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

const char *const kline_columns[KLINE_NCOLS] = {
    "utc_datetime",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_asset_volume",
    "number_of_trades",
    "taker_buy_base_asset_volume",
    "taker_buy_quote_asset_volume",
    "ignore",
    "updated_at",
};

int kline_batch_init(struct kline_batch *b, size_t cap)
{
    b->rows = calloc(cap, sizeof(*b->rows));
    b->n = 0;
    b->cap = b->rows ? cap : 0;
    return b->rows ? 0 : -1;
}

void kline_batch_free(struct kline_batch *b)
{
    free(b->rows);
    b->rows = NULL;
    b->n = b->cap = 0;
}

struct kline *kline_batch_push(struct kline_batch *b)
{
    if (b->n == b->cap) {
        return NULL;
    }
    return &b->rows[b->n++];
}

int tkline_batch_init(struct tkline_batch *b, size_t cap)
{
    b->rows = calloc(cap, sizeof(*b->rows));
    b->n = 0;
    b->cap = b->rows ? cap : 0;
    return b->rows ? 0 : -1;
}

void tkline_batch_free(struct tkline_batch *b)
{
    free(b->rows);
    b->rows = NULL;
    b->n = b->cap = 0;
}

int kline_to_json(const struct kline *k, struct buf *out)
{
    int rc = buf_printf(out, "[%lld", (long long)k->open_time);
    for (int i = 0; i < KS_COUNT && rc == 0; i++) {
        if (i == KS_QUOTE_VOLUME) {
            rc = buf_printf(out, ",%lld", (long long)k->close_time);
        }
        if (i == KS_TAKER_BASE && rc == 0) {
            rc = buf_printf(out, ",%lld", (long long)k->trades);
        }
        if (rc == 0) {
            rc = buf_puts(out, ",\"");
        }
        if (rc == 0) {
            rc = buf_json_escape(out, k->s[i], k->len[i]);
        }
        if (rc == 0) {
            rc = buf_putc(out, '"');
        }
    }
    return rc == 0 ? buf_putc(out, ']') : rc;
}
