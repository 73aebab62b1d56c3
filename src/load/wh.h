/*
 * wh.h - the warehouse seam: SQLite (the embedded default), and later
 * PostgreSQL and BigQuery, chosen by URL scheme.
 *
 * Contract every backend keeps:
 *   - both tables are keyed on (symbol, interval, open_time) and loads are
 *     upserts that leave an identical row untouched, so loading the same
 *     klines twice changes nothing;
 *   - rows put between begin() and commit() become visible together or not
 *     at all (a batch is all or nothing, also under SIGKILL);
 *   - the watermark of a table for a pair is the largest open_time in it,
 *     so it advances atomically with the data it describes;
 *   - lock() gives one run at a time per warehouse, released by the system
 *     if the process dies.
 * Table names reach SQL only after config validation and identifier quoting.
 */
#ifndef DATAOPS_WH_H
#define DATAOPS_WH_H

#include <stddef.h>
#include <stdint.h>

#include "metadata/run.h"
#include "schema/interval.h"
#include "schema/kline.h"
#include "util/err.h"

enum wh_table { WH_RAW = 0, WH_TRANSFORMED = 1 };

struct config;

struct wh_names {
    const char *raw_dataset;
    const char *raw_table;
    const char *transformed_dataset;
    const char *transformed_table;
    const char *local_time_column;
    const struct config *cfg;   /* every other setting; may be NULL (defaults) */
};

struct wh;

/* Open-time ranges the warehouse keeps per pair besides the rows (the
 * planner's bookkeeping, table dataops_ranges; docs/backfill.md). */
enum wh_range_kind {
    WH_RANGE_KNOWN_GAP = 0,    /* asked of the exchange, which had no candle there */
    WH_RANGE_TRANSFORM = 1,    /* raw rows loaded by a hole fill, not transformed yet */
    WH_RANGE_REJECTED = 2,     /* a candle that failed validation (quarantined) */
};

/* Gets each [from, to) in ascending order; a non-zero return stops the
 * walk and is returned by the op. */
typedef int (*wh_range_cb)(void *ctx, int64_t from, int64_t to);

/* What a backend allows besides the contract (wh_ops.caps). */
enum wh_caps {
    /* put_raw/put_transformed may run on a writer thread while the caller
     * prepares the next batch (src/load/wh_async.c); the backend must not
     * look at tkline.src there. */
    WH_CAP_ASYNC_PUTS = 1u << 0,
    /* scan_raw may run while a put is running on another thread: it reads
     * committed rows through a connection of its own. */
    WH_CAP_CONCURRENT_SCAN = 1u << 1,
};

struct wh_ops {
    const char *scheme;
    const char *alias;   /* a second scheme name for the same backend, or NULL */
    unsigned caps;       /* enum wh_caps */
    int (*open)(const char *url, const struct wh_names *names, struct wh **out,
                struct err *e);
    /* Take the run lock, waiting up to timeout_s; ERR_LOCKED when it stays
     * taken. */
    int (*lock)(struct wh *w, long timeout_s, struct err *e);
    /* Create missing tables (idempotent). */
    int (*ensure_schema)(struct wh *w, struct err *e);
    /* Largest open_time of the pair in the table; *found = 0 when none. */
    int (*watermark)(struct wh *w, enum wh_table t, const char *symbol, const char *interval,
                     int64_t *open_time, int *found, struct err *e);
    int (*begin)(struct wh *w, struct err *e);
    int (*put_raw)(struct wh *w, const char *symbol, const char *interval,
                   const struct kline_batch *b, const char *updated_at, struct err *e);
    int (*put_transformed)(struct wh *w, const char *symbol, const char *interval,
                           const struct tkline_batch *b, struct err *e);
    int (*put_quarantine)(struct wh *w, const char *run_id, const char *stage,
                          const char *symbol, const char *interval, int64_t open_time,
                          const char *reason, const char *row_json, struct err *e);
    /* lake_uri names the object that holds the batch (backends that load
     * from the lake use it; the others record it). */
    int (*commit)(struct wh *w, const char *lake_uri, struct err *e);
    void (*rollback)(struct wh *w);
    /* Committed raw rows of the pair with open_time > after, ascending, at
     * most out->cap - out->n of them, appended to out (updated_at filled).
     * The pipeline never scans rows of its own open transaction. */
    int (*scan_raw)(struct wh *w, const char *symbol, const char *interval, int64_t after,
                    struct kline_batch *out, struct err *e);
    /* Insert or update the run and its pairs (its own transaction). */
    int (*record_run)(struct wh *w, const struct run *r, struct err *e);
    /* Optional (NULL: such runs stay as they were left).  Called with the
     * run lock held: every other run that this lock covers and whose record
     * still says 'running' died without recording its end (SIGKILL, a
     * crash, its host lost).  Mark those runs, and their pairs still
     * 'pending', 'abandoned' (its own transaction).  *n gets how many; ids
     * their run ids, comma-separated (wh_note_id). */
    int (*abandon_dead_runs)(struct wh *w, const char *run_id, int *n, char *ids, size_t idsz,
                             struct err *e);
    void (*close)(struct wh *w);
    /* Optional (NULL = opening is the check): verify credentials, datasets
     * and permissions without changing anything; the message names what is
     * missing. */
    int (*check)(struct wh *w, struct err *e);
    /* Backfill planner (optional: NULL where a backend lacks them; the
     * planner then sees only the range after the watermark).
     * holes: every maximal run of missing candles [a, b) of the pair in the
     * raw table with from <= a < b <= to, ascending; the candles before the
     * first row and after the last row in [from, to) count, and a range
     * with no row at all is one hole.  Calendar intervals (1M) are walked
     * on the calendar. */
    int (*holes)(struct wh *w, const char *symbol, const struct interval *iv, int64_t from,
                 int64_t to, wh_range_cb cb, void *ctx, struct err *e);
    /* ranges lists the pair's ranges of a kind, ascending; range_put adds
     * one (or widens the one starting at from); range_delete removes
     * [from, to) exactly.  Both write inside the open transaction, if any,
     * so that a range commits with the rows it describes. */
    int (*ranges)(struct wh *w, enum wh_range_kind kind, const char *symbol,
                  const char *interval, wh_range_cb cb, void *ctx, struct err *e);
    int (*range_put)(struct wh *w, enum wh_range_kind kind, const char *symbol,
                     const char *interval, int64_t from, int64_t to, const char *run_id,
                     struct err *e);
    int (*range_delete)(struct wh *w, enum wh_range_kind kind, const char *symbol,
                        const char *interval, int64_t from, int64_t to, struct err *e);
};

struct wh {
    const struct wh_ops *ops;
};

/* "known_gap", "transform" or "rejected": a range's kind as stored. */
const char *wh_range_kind_name(enum wh_range_kind kind);

/* Append id to the comma-separated list out[n] ("..." once it is full). */
void wh_note_id(char *out, size_t n, const char *id);

/* The error recorded on an abandoned run, naming the run that found it. */
void wh_abandoned_error(char *out, size_t n, const char *run_id);

/* holes() for a backend whose server finds the rows next to a gap (a
 * LAG/LEAD window): feed each such row, ascending, to wh_holes_row; prev is
 * the row before it (has_prev = 0 for the first row of [from, to)) and last
 * says that no row follows.  wh_holes_end reports [from, to) as one hole
 * when no row came at all.  Each returns what cb returned (non-zero:
 * stop). */
struct wh_holes_walk {
    const struct interval *iv;
    int64_t start;     /* the first candle at or after from */
    int64_t to;
    int rows;          /* rows fed so far */
};
void wh_holes_begin(struct wh_holes_walk *h, const struct interval *iv, int64_t from,
                    int64_t to);
int wh_holes_row(struct wh_holes_walk *h, int has_prev, int64_t prev, int64_t cur, int last,
                 wh_range_cb cb, void *ctx);
int wh_holes_end(struct wh_holes_walk *h, wh_range_cb cb, void *ctx);

int wh_url_supported(const char *url, char *why, size_t n);
int wh_open(const char *url, const struct wh_names *names, struct wh **out, struct err *e);
void wh_close(struct wh *w);

extern const struct wh_ops wh_sqlite_ops;
#ifdef DATAOPS_HAVE_PG
extern const struct wh_ops wh_pg_ops;
#endif
#ifdef DATAOPS_HAVE_BQ
extern const struct wh_ops wh_bq_ops;
#endif

#endif
