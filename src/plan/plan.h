/*
 * plan.h - the backfill planner: what each (symbol, interval) is missing
 * in the warehouse, and how a run would fetch it.
 *
 * The missing ranges come from the warehouse itself: the holes of the raw
 * table between the configured start and the watermark (the wh `holes`
 * op: a window query on the primary key), then the range after the
 * watermark up to now, minus the ranges the warehouse already knows cannot
 * be filled (WH_RANGE_KNOWN_GAP: the exchange was asked and had no candle;
 * WH_RANGE_REJECTED: the candle failed validation and sits in quarantine).
 * `dataops run` fetches exactly these ranges, in this order; `dataops plan`
 * prints them with the source each part would come from, the requests,
 * weight, bytes and an ETA, without sending a single request.
 */
#ifndef DATAOPS_PLAN_H
#define DATAOPS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "load/wh.h"
#include "schema/interval.h"
#include "util/err.h"

struct plan_range {
    int64_t from;          /* open times [from, to) */
    int64_t to;
    int64_t prev_open;     /* the raw row just before from, or INT64_MIN */
    int tail;              /* the range after the watermark (its end is "now") */
};

/* What fetching the ranges would take (plan_estimate). */
struct plan_cost {
    long long candles;             /* grid slots to cover */
    long long candles_archive;
    long long candles_rest;
    long long candles_waiting;     /* archive only: no file published yet */
    long requests;                 /* API requests */
    long weight;
    long files_monthly;
    long files_daily;
    long long bytes;               /* estimated download */
    double seconds;                /* estimated time (see plan.c for the model) */
};

struct plan_pair {
    char symbol[24];
    const struct interval *iv;
    int64_t watermark;             /* raw watermark, if found */
    int found;
    struct plan_range *r;
    size_t n;
    size_t cap;
    long long known_candles;       /* left out: known gaps and rejected candles */
    int holes_supported;           /* the warehouse can list holes */
    struct plan_cost cost;
};

/* Missing ranges of one pair, open times below `now`. */
int plan_pair_compute(struct wh *w, const struct config *c, const char *symbol,
                      const struct interval *iv, int64_t now, struct plan_pair *out,
                      struct err *e);
void plan_pair_free(struct plan_pair *p);
/* The plans of every configured pair, in run order (symbol-major):
 * *out is an array of nsymbols x nintervals, the caller's to free with
 * plan_pairs_free (also after a failure). */
int plan_all_pairs(struct wh *w, const struct config *c, int64_t now, struct plan_pair **out,
                   struct err *e);
void plan_pairs_free(struct plan_pair *p, size_t n);
/* Give the source every range up front (its plan_range hint), if it takes it. */
struct source;
void plan_hint_source(struct source *s, const struct plan_pair *p, size_t n);
/* Fill p->cost for the configured source. */
void plan_estimate(const struct config *c, int64_t now, struct plan_pair *p);
/* `dataops plan`: prints the plan of every pair; returns the exit code. */
int plan_command(const struct config *c);

#endif
