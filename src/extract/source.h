/*
 * source.h - the source seam: where klines come from.
 *
 * Backends: the Binance REST API ("rest") and a replay of recorded
 * /api/v3/klines response bodies ("file://PATH", one body per line; PATH
 * may contain {symbol} and {interval}).  The pipeline pages through a
 * pair's range by calling fetch() with a moving cursor.
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

struct source_ops {
    const char *name;
    int (*open)(const struct config *c, struct source **out, struct err *e);
    /* The exchange's clock: a candle is closed when close_time < *now. */
    int (*server_time)(struct source *s, int64_t *now, struct err *e);
    /* Refuse symbols the exchange does not list (ERR_CONFIG naming it). */
    int (*check_symbols)(struct source *s, char *const *symbols, size_t n, struct err *e);
    /* Append the next klines of the pair with open_time in [from, to) to
     * out (which holds at least 1000 free rows).  *done = 1 when the source
     * has nothing after what it returned. */
    int (*fetch)(struct source *s, const char *symbol, const struct interval *iv, int64_t from,
                 int64_t to, struct kline_batch *out, int *done, struct err *e);
    /* Figures for the run record, as a JSON object body ("k":v,...). */
    void (*stats)(struct source *s, char *out, size_t n);
    void (*close)(struct source *s);
};

struct source {
    const struct source_ops *ops;
};

#define SOURCE_PAGE_ROWS 1000

int source_open(const struct config *c, struct source **out, struct err *e);
void source_close(struct source *s);

extern const struct source_ops source_binance_ops;
extern const struct source_ops source_replay_ops;

#endif
