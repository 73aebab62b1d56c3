/*
 * source.h - the source seam: where klines come from.
 *
 * Backends: the Binance REST API ("rest"), the data.binance.vision
 * archive files ("archive"), both ("auto": whole months and days from the
 * archive, the rest from REST) and a replay of recorded /api/v3/klines
 * response bodies ("file://PATH", one body per line; PATH may contain
 * {symbol} and {interval}).  The pipeline pages through a pair's range by
 * calling fetch() with a moving cursor.
 */
#ifndef DATAOPS_SOURCE_H
#define DATAOPS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "schema/interval.h"
#include "schema/kline.h"
#include "util/err.h"

struct source;

/* One range of open times the pipeline will ask for, in the order it will
 * ask (the plan_range hint). */
struct source_range {
    const char *symbol;
    const struct interval *iv;
    int64_t from;
    int64_t to;
};

/* caps bits. */
#define SOURCE_CAP_GAPS_ARE_REAL 1u   /* the stretches this source reports empty
                                         are the exchange's own gaps (so the
                                         warehouse may remember them) */

/* *done values of fetch(); 0 = call again. */
#define SOURCE_DONE 1        /* nothing after what was returned, in [from, to) */
#define SOURCE_STOPPED 2     /* nothing more this run; what lies after is unknown
                                (an archive file not published yet) */

struct source_ops {
    const char *name;
    unsigned caps;
    int (*open)(const struct config *c, struct source **out, struct err *e);
    /* The exchange's clock: a candle is closed when close_time < *now. */
    int (*server_time)(struct source *s, int64_t *now, struct err *e);
    /* Refuse symbols the exchange does not list (ERR_CONFIG naming it). */
    int (*check_symbols)(struct source *s, char *const *symbols, size_t n, struct err *e);
    /* Append the next klines of the pair with open_time in [from, to) to
     * out (which holds at least 1000 free rows), in open-time order, none
     * before from.  *done = SOURCE_DONE when the source has nothing after
     * what it returned, SOURCE_STOPPED when it can say no more this run.
     * Returns no rows only together with a done value: an empty stretch
     * inside the range is skipped, not reported as an empty page. */
    int (*fetch)(struct source *s, const char *symbol, const struct interval *iv, int64_t from,
                 int64_t to, struct kline_batch *out, int *done, struct err *e);
    /* Figures for the run record, as a JSON object body ("k":v,...). */
    void (*stats)(struct source *s, char *out, size_t n);
    void (*close)(struct source *s);
    /* Optional (NULL = ignored): every range the run will fetch, before the
     * first fetch(), for the progress display and its ETA.  Borrowed for
     * the call. */
    void (*plan_range)(struct source *s, const struct source_range *r, size_t n);
};

struct source {
    const struct source_ops *ops;
};

#define SOURCE_PAGE_ROWS 1000

int source_open(const struct config *c, struct source **out, struct err *e);
void source_close(struct source *s);

extern const struct source_ops source_binance_ops;
extern const struct source_ops source_replay_ops;
extern const struct source_ops source_archive_ops;
extern const struct source_ops source_auto_ops;

#endif
