/*
 * csv.c - see csv.h.
 */
#include "load/csv.h"

#include <stdio.h>
#include <string.h>

#include "util/timeutil.h"

static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *p++ = '-';
    }
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static int header(struct buf *out, const char *extra)
{
    for (int i = 0; i < KLINE_NCOLS; i++) {
        if (buf_puts(out, kline_columns[i]) || buf_putc(out, ',')) {
            return -1;
        }
    }
    if (extra && (buf_puts(out, extra) || buf_putc(out, ','))) {
        return -1;
    }
    return buf_puts(out, "symbol,interval\n");
}

int csv_raw_header(struct buf *out)
{
    return header(out, NULL);
}

int csv_transformed_header(struct buf *out, const char *local_time_column)
{
    return header(out, local_time_column);
}

int csv_raw_rows(struct buf *out, const struct kline_batch *b, const char *symbol,
                 const char *interval, const char *updated_at)
{
    size_t sl = strlen(symbol);
    size_t il = strlen(interval);
    size_t ul = strlen(updated_at);
    for (size_t i = 0; i < b->n; i++) {
        const struct kline *k = &b->rows[i];
        /* An upper bound for one line, so the loop writes without checks. */
        if (buf_reserve(out, 24 + 3 * 21 + KS_COUNT * KLINE_STR_MAX + ul + sl + il + 32)) {
            return -1;
        }
        char *p = out->data + out->len;
        p += time_format_sql(k->open_time, p);
        *p++ = ',';
        p = put_i64(p, k->open_time);
        for (int f = KS_OPEN; f <= KS_VOLUME; f++) {
            *p++ = ',';
            p = put_str(p, k->s[f], k->len[f]);
        }
        *p++ = ',';
        p = put_i64(p, k->close_time);
        *p++ = ',';
        p = put_str(p, k->s[KS_QUOTE_VOLUME], k->len[KS_QUOTE_VOLUME]);
        *p++ = ',';
        p = put_i64(p, k->trades);
        for (int f = KS_TAKER_BASE; f <= KS_IGNORE; f++) {
            *p++ = ',';
            p = put_str(p, k->s[f], k->len[f]);
        }
        *p++ = ',';
        p = put_str(p, updated_at, ul);
        *p++ = ',';
        p = put_str(p, symbol, sl);
        *p++ = ',';
        p = put_str(p, interval, il);
        *p++ = '\n';
        out->len = (size_t)(p - out->data);
    }
    if (out->data) {
        out->data[out->len] = '\0';
    }
    return 0;
}

/* A transformed number is strtod() of the raw decimal string, so writing
 * that string reads back to exactly the same double: no float formatting
 * in the loop.  Without the raw row, %.17g round-trips every double. */
static const int num_slot[TN_COUNT] = {
    KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, KS_QUOTE_VOLUME, KS_TAKER_BASE,
    KS_TAKER_QUOTE,
};

static char *put_num(char *p, const struct tkline *t, int f)
{
    if (t->src) {
        int slot = num_slot[f];
        return put_str(p, t->src->s[slot], t->src->len[slot]);
    }
    return p + snprintf(p, 32, "%.17g", t->v[f]);
}

int csv_transformed_rows(struct buf *out, const struct tkline_batch *b, const char *symbol,
                         const char *interval)
{
    size_t sl = strlen(symbol);
    size_t il = strlen(interval);
    for (size_t i = 0; i < b->n; i++) {
        const struct tkline *t = &b->rows[i];
        if (buf_reserve(out, 8 * KLINE_STR_MAX + 5 * 32 + 24 + KLINE_STR_MAX + sl + il + 32)) {
            return -1;
        }
        char *p = out->data + out->len;
        p = put_str(p, t->utc_datetime, 23);
        *p++ = ',';
        p = put_str(p, t->open_dt, 23);
        for (int f = TN_OPEN; f <= TN_VOLUME; f++) {
            *p++ = ',';
            p = put_num(p, t, f);
        }
        *p++ = ',';
        p = put_str(p, t->close_dt, 23);
        *p++ = ',';
        p = put_num(p, t, TN_QUOTE_VOLUME);
        *p++ = ',';
        p = put_i64(p, t->trades);
        *p++ = ',';
        p = put_num(p, t, TN_TAKER_BASE);
        *p++ = ',';
        p = put_num(p, t, TN_TAKER_QUOTE);
        *p++ = ',';
        p = put_str(p, t->ignore, strlen(t->ignore));
        *p++ = ',';
        p = put_str(p, t->updated_at, strlen(t->updated_at));
        *p++ = ',';
        p = put_str(p, t->local_dt, strlen(t->local_dt));
        *p++ = ',';
        p = put_str(p, symbol, sl);
        *p++ = ',';
        p = put_str(p, interval, il);
        *p++ = '\n';
        out->len = (size_t)(p - out->data);
    }
    if (out->data) {
        out->data[out->len] = '\0';
    }
    return 0;
}
