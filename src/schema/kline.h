/*
 * kline.h - the kline record as it travels through the pipeline, and the
 * table schemas of the original (RawSchema, TransformedSchema), once.
 *
 * A raw kline keeps the exchange's decimal strings byte for byte in fixed
 * inline arrays, so a page is parsed into a reused batch without a single
 * allocation per field.  The typed (transformed) kline holds doubles and
 * precomputed datetime text.
 */
#ifndef DATAOPS_KLINE_H
#define DATAOPS_KLINE_H

#include <stddef.h>
#include <stdint.h>

/* The longest decimal string we accept; Binance sends at most ~30 chars. */
#define KLINE_STR_MAX 48

/* The string-valued fields of a kline, in the API's order. */
enum kline_str {
    KS_OPEN = 0,
    KS_HIGH,
    KS_LOW,
    KS_CLOSE,
    KS_VOLUME,
    KS_QUOTE_VOLUME,
    KS_TAKER_BASE,
    KS_TAKER_QUOTE,
    KS_IGNORE,
    KS_COUNT
};

struct kline {
    int64_t open_time;
    int64_t close_time;
    int64_t trades;
    uint8_t len[KS_COUNT];
    char s[KS_COUNT][KLINE_STR_MAX];   /* NUL-terminated */
    char updated_at[24];               /* set when read back from the raw table */
};

struct kline_batch {
    struct kline *rows;
    size_t n;
    size_t cap;
};

int kline_batch_init(struct kline_batch *b, size_t cap);
void kline_batch_free(struct kline_batch *b);
/* Pointer to a fresh row at the end, or NULL if the batch is full. */
struct kline *kline_batch_push(struct kline_batch *b);

/* A transformed row: the eight numeric columns as doubles. */
enum tkline_num {
    TN_OPEN = 0,
    TN_HIGH,
    TN_LOW,
    TN_CLOSE,
    TN_VOLUME,
    TN_QUOTE_VOLUME,
    TN_TAKER_BASE,
    TN_TAKER_QUOTE,
    TN_COUNT
};

struct tkline {
    int64_t open_time;
    int64_t close_time;
    int64_t trades;
    double v[TN_COUNT];
    char utc_datetime[24];   /* open_time as "YYYY-MM-DD HH:MM:SS.mmm" (UTC) */
    char open_dt[24];        /* open_time column as datetime */
    char close_dt[24];       /* close_time column as datetime */
    char local_dt[32];       /* utc_datetime in the configured zone, with offset */
    char ignore[KLINE_STR_MAX];
    char updated_at[24];     /* when the raw row was extracted */
    /* The raw row this came from (borrowed, valid while its batch lives),
     * or NULL.  Its decimal strings read back to exactly v[]. */
    const struct kline *src;
};

struct tkline_batch {
    struct tkline *rows;
    size_t n;
    size_t cap;
};

int tkline_batch_init(struct tkline_batch *b, size_t cap);
void tkline_batch_free(struct tkline_batch *b);

/* Column names shared by every backend, in the original's order.
 * The raw table is: RAW_COLUMNS + symbol, interval.  The transformed table
 * is the same names + the local-time column (configurable name) + symbol,
 * interval. */
#define KLINE_NCOLS 14
extern const char *const kline_columns[KLINE_NCOLS];

/* Write the row as a JSON array (the API's shape) for quarantine records. */
struct buf;
int kline_to_json(const struct kline *k, struct buf *out);

#endif
