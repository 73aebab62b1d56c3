/*
 * fetcher_pages.h - klines pages fetched concurrently and handed over in
 * order (the pager), and the progress display of a backfill.
 *
 * The pager turns the pipeline's "next page from this cursor" into
 * independent requests.  For an interval of fixed length the windows of a
 * range [from, to) are known in advance: window i is
 *     [from + i * 1000 * interval, from + (i + 1) * 1000 * interval)
 * clipped to `to`, and holds at most 1000 candles, one page.  So they are
 * fetched several at a time and delivered strictly in window order: a page
 * is handed over only when every earlier window has been, and the
 * pipeline's watermark can never skip a window that has not arrived yet.
 *
 * The first request of a range is a probe with the exchange's own paging
 * semantics (startTime = from, endTime = to - 1): it finds where the data
 * starts (a symbol listed after `from`, a long outage) in one request
 * instead of walking empty windows, and the windows start after its last
 * row.  This costs one round trip per range, and keeps a late listing
 * from costing a request per empty window.
 *
 * A window with an outage just returns fewer rows; an empty window is
 * skipped (never handed over as an empty page, which would end the range).
 * The 1M interval (calendar months) is paged sequentially.
 */
#ifndef DATAOPS_FETCHER_PAGES_H
#define DATAOPS_FETCHER_PAGES_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "extract/fetcher.h"
#include "extract/source.h"
#include "schema/interval.h"
#include "schema/kline.h"
#include "util/err.h"

/* ---- progress ----------------------------------------------------------- */

struct progress {
    int mode;                      /* 0 off, 1 bar on a terminal, 2 log lines */
    int64_t started_ms;
    int64_t last_ms;
    size_t pairs_total;
    size_t pairs_started;
    char pair[40];
    long long planned;             /* candles the run plans to cover; 0 = unknown */
    long long covered;             /* candles covered so far (rows or known empty) */
    long long rows;
    long long pages;
    long long files;               /* archive files used */
    const struct fetcher_stats *rest;   /* borrowed: weight and requests */
    const struct ratelimit *rl;
    int drawn;
};

/* mode from the settings: a bar when stderr is a terminal and the log is
 * text, periodic log lines otherwise. */
void progress_init(struct progress *p, const struct config *c);
void progress_plan(struct progress *p, const struct source_range *r, size_t n);
/* Note the pair of a fetch(); counts a pair when it changes. */
void progress_pair(struct progress *p, const char *symbol, const struct interval *iv);
void progress_add(struct progress *p, long long rows, long long pages, long long covered);
/* Draw when due (a fetcher tick callback: ctx is the progress). */
void progress_tick(void *ctx);
/* The last figures, and the bar's line ended. */
void progress_finish(struct progress *p);

/* ---- pager ------------------------------------------------------------- */

struct pager;

/* ahead: pages outstanding at most (in flight or waiting for their turn),
 * which bounds memory to ahead page bodies. */
int pager_create(struct fetcher *f, const char *base_url, long ahead, struct pager **out,
                 struct err *e);
void pager_destroy(struct pager *p);
/* Abandon every outstanding page. */
void pager_reset(struct pager *p);
/* fetch() of source.h for fixed-length intervals.  *covered gets the
 * number of grid candles the delivered windows span. */
int pager_next(struct pager *p, const char *symbol, const struct interval *iv, int64_t from,
               int64_t to, struct kline_batch *out, int *done, long long *covered,
               struct err *e);

/* ---- the REST source, for composition by the archive source ------------ */

/* Open the REST source with a progress display owned by the caller
 * (borrowed until close). */
int source_binance_open_shared(const struct config *c, struct progress *pg,
                               struct source **out, struct err *e);

#endif
