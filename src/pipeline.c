/*
 * pipeline.c - the DAG of one run, and nothing else:
 *
 *   lock warehouse -> plan every pair (src/plan: the warehouse's holes,
 *   then the range after the raw watermark) -> for each (symbol, interval):
 *     raw stage:       each planned range, holes first, up to the
 *                      exchange's "now",
 *                      page -> validate -> lake object part -> raw upsert
 *     transform stage: hole fills waiting for it, then from the transformed
 *                      watermark, raw table -> cast -> validate -> lake
 *                      object part -> transformed upsert
 *   -> run record -> artifacts (config.json, metadata.json, run.log)
 *
 * Ordering that makes reruns converge (see README "Failure modes"):
 *   - a segment's lake object is committed before the warehouse
 *     transaction that loads the same rows, so the lake always holds what
 *     the warehouse holds (the lake may hold more: a segment whose load
 *     died is fetched again and lands in a new object of the next run);
 *   - each stage continues from its own table's watermark, so a run that
 *     died between the stages is completed by the next one;
 *   - rows that fail validation go to the quarantine table in the same
 *     transaction as the batch they came with.
 * Memory is one page of raw rows, one of transformed rows and one CSV
 * chunk, whatever the range.
 */
#include "pipeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/source.h"
#include "load/csv.h"
#include "load/lake.h"
#include "load/wh.h"
#include "metadata/run.h"
#include "plan/plan.h"
#include "transform/transform.h"
#include "transform/tz.h"
#include "util/failpoint.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "validate/validate.h"
#include "version.h"

#define LOG_CAPTURE_MAX (8u << 20)

/* Stage timing: T0 starts a lap, LAP(stage) adds the time since to stage. */
#define T0() int64_t t_lap_ = run_clock_ns()
#define LAP(p, stage)                                                     \
    do {                                                                  \
        int64_t t_now_ = run_clock_ns();                                  \
        (p)->run.stage_ns[stage] += t_now_ - t_lap_;                      \
        t_lap_ = t_now_;                                                  \
    } while (0)
#define SCAN_ROWS 1000
#define SOURCE_STATS_MAX (512u << 10)

struct pipe {
    const struct config *cfg;
    struct source *src;
    struct lake *lake;
    struct wh *wh;
    struct run run;
    struct kline_batch page;
    struct tkline_batch tpage;
    struct buf csv;
    struct buf json;
    int64_t server_time;
    char updated_at[24];
    char updated_compact[20];
    struct plan_pair *plans;    /* one per pair, in run order (src/plan) */
    char *source_stats;         /* the source's figures, for metadata.json */
};

/* A segment: one lake object part and the transaction that loads it. */
struct segment {
    struct lake_writer *writer;
    int txn;
    long long rows;
    int part;
    char key[1100];
};

static void seg_abort(struct pipe *p, struct segment *s)
{
    lake_abort(s->writer);
    s->writer = NULL;
    if (s->txn) {
        p->wh->ops->rollback(p->wh);
        s->txn = 0;
    }
    s->rows = 0;
}

static int seg_txn(struct pipe *p, struct segment *s, struct err *e)
{
    if (!s->txn) {
        if (p->wh->ops->begin(p->wh, e) != 0) {
            return e->code;
        }
        s->txn = 1;
    }
    return 0;
}

static int seg_start(struct pipe *p, struct segment *s, enum wh_table t, const char *symbol,
                     const struct interval *iv, struct err *e)
{
    const struct config *c = p->cfg;
    const char *dataset = c->text[t == WH_RAW ? S_RAW_DATASET : S_TRANSFORMED_DATASET];
    const char *table = c->text[t == WH_RAW ? S_RAW_TABLE : S_TRANSFORMED_TABLE];
    snprintf(s->key, sizeof(s->key), "%s/%s/symbol=%s/interval=%s/%s-%s-%05d.csv", dataset,
             table, symbol, iv->path_name, p->updated_compact, p->run.run_id, s->part);
    if (lake_writer_open(p->lake, s->key, &s->writer, e) != 0) {
        return e->code;
    }
    buf_reset(&p->csv);
    int rc = t == WH_RAW ? csv_raw_header(&p->csv)
                         : csv_transformed_header(&p->csv, c->text[S_LOCAL_TIME_COLUMN]);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (lake_write(s->writer, p->csv.data, p->csv.len, e) != 0) {
        return e->code;
    }
    return seg_txn(p, s, e);
}

/* Commit the object, then the rows: see the ordering note at the top. */
static int seg_commit(struct pipe *p, struct segment *s, enum wh_table t, int *objects,
                      struct err *e)
{
    char uri[1400] = "";
    T0();
    if (s->writer) {
        lake_uri(p->lake, s->key, uri, sizeof(uri));
        int rc = lake_commit(s->writer, e);
        LAP(p, t == WH_RAW ? RS_LAKE_RAW : RS_LAKE_TRANSFORMED);
        s->writer = NULL;
        if (rc != 0) {
            return rc;
        }
        (*objects)++;
        s->part++;
        log_info("lake", "wrote %s (%lld rows)", uri, s->rows);
        if (FAILPOINT(t == WH_RAW ? "lake.raw.written" : "lake.transformed.written", e)) {
            return e->code;
        }
    }
    if (s->txn) {
        int rc = p->wh->ops->commit(p->wh, uri, e);
        LAP(p, t == WH_RAW ? RS_LOAD_RAW : RS_LOAD_TRANSFORMED);
        s->txn = 0;
        if (rc != 0) {
            return e->code;
        }
        if (FAILPOINT(t == WH_RAW ? "wh.raw.committed" : "wh.transformed.committed", e)) {
            return e->code;
        }
    }
    s->rows = 0;
    return 0;
}

static int quarantine(struct pipe *p, struct segment *s, const char *stage, const char *symbol,
                      const struct interval *iv, const struct kline *k, const char *why,
                      struct err *e)
{
    log_warn("validate", "%s %s %s row open_time=%" PRId64 " quarantined: %s", stage, symbol,
             iv->name, k->open_time, why);
    buf_reset(&p->json);
    if (kline_to_json(k, &p->json) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (seg_txn(p, s, e) != 0) {
        return e->code;
    }
    return p->wh->ops->put_quarantine(p->wh, p->run.run_id, stage, symbol, iv->name,
                                      k->open_time, why, p->json.data, e);
}

/*
 * Backfill bookkeeping (docs/backfill.md): a range the warehouse keeps for
 * the planner, written in the segment's transaction so that it commits
 * with the rows that prove it.  Known gaps are kept only from sources
 * whose empty stretches are the exchange's own (not from a replay file);
 * a backend without range_put keeps nothing, and its planner sees no holes.
 */
static int remember(struct pipe *p, struct segment *s, enum wh_range_kind kind,
                    const char *symbol, const struct interval *iv, int64_t from, int64_t to,
                    struct err *e)
{
    if (!p->wh->ops->range_put || from >= to ||
        (kind == WH_RANGE_KNOWN_GAP && !(p->src->ops->caps & SOURCE_CAP_GAPS_ARE_REAL))) {
        return 0;
    }
    if (seg_txn(p, s, e) != 0) {
        return e->code;
    }
    return p->wh->ops->range_put(p->wh, kind, symbol, iv->name, from, to, p->run.run_id, e);
}

/*
 * Validate the page's rows in place: keep the accepted ones in order,
 * quarantine the rest, note gaps, short and zero-trade candles.  Rows from
 * the still-forming candle on are dropped (*reached_now is set).
 */
static int screen_page(struct pipe *p, struct segment *s, struct pair_stats *ps,
                       const char *symbol, const struct interval *iv, int64_t req_from,
                       int64_t to, int64_t *prev_open, int *reached_now, struct err *e)
{
    struct kline_batch *b = &p->page;
    size_t w = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct kline *k = &b->rows[i];
        if (k->open_time >= to) {
            break;
        }
        if (k->close_time >= p->server_time) {
            /* Still forming by the exchange's own clock: never stored. */
            ps->open_skipped++;
            *reached_now = 1;
            break;
        }
        ps->extracted++;
        char why[300];
        unsigned notes = 0;
        int rule;
        if (k->open_time < req_from) {
            snprintf(why, sizeof(why), "open_time %" PRId64 " is before the requested "
                     "startTime %" PRId64, k->open_time, req_from);
            rule = VR_RANGE;
        }
        else {
            rule = validate_raw_row(iv, k, *prev_open, why, sizeof(why), &notes);
        }
        if (rule >= 0) {
            ps->rejected++;
            if (quarantine(p, s, "raw", symbol, iv, k, why, e) != 0) {
                return e->code;
            }
            /* Its slot is not a hole to fetch again on every run. */
            int64_t slot = interval_align_down(iv, k->open_time);
            if (rule != VR_RANGE && remember(p, s, WH_RANGE_REJECTED, symbol, iv, slot,
                                             interval_next(iv, slot), e) != 0) {
                return e->code;
            }
            continue;
        }
        if (*prev_open != INT64_MIN) {
            int64_t expect = interval_next(iv, *prev_open);
            if (k->open_time != expect) {
                long long missing = interval_count(iv, expect, k->open_time);
                pair_note_gap(ps, expect, k->open_time, missing);
                log_info("validate", "%s %s: the exchange has no candles from %" PRId64
                         " to %" PRId64 " (%lld missing)", symbol, iv->name, expect,
                         k->open_time, missing);
                if (remember(p, s, WH_RANGE_KNOWN_GAP, symbol, iv, expect, k->open_time,
                             e) != 0) {
                    return e->code;
                }
            }
        }
        if (notes & VNOTE_SHORT) {
            ps->short_candles++;
            log_info("validate", "%s %s: candle %" PRId64 " closed early at %" PRId64
                     " (exchange outage)", symbol, iv->name, k->open_time, k->close_time);
        }
        if (notes & VNOTE_ZERO_TRADE) {
            ps->zero_trade++;
        }
        *prev_open = k->open_time;
        if (w != i) {
            b->rows[w] = *k;
        }
        w++;
    }
    b->n = w;
    return 0;
}

/*
 * One planned range [r->from, r->to) into segment s.  Besides the rows,
 * the warehouse learns what the exchange showed to be empty (so that the
 * planner does not ask again) and, for a hole, that the transform must
 * revisit it (the marker commits with the first rows it covers).
 */
static int raw_range(struct pipe *p, struct segment *s, struct pair_stats *ps,
                     const char *symbol, const struct interval *iv, const struct plan_range *r,
                     struct err *e)
{
    const struct config *c = p->cfg;
    int64_t to = r->to;
    char a[32], z[32];
    time_format_iso(r->from, a);
    time_format_iso(to, z);
    log_info("extract", "%s %s: extracting [%s, %s)%s", symbol, iv->name, a, z,
             !r->tail ? " (a hole in the warehouse)"
             : r->prev_open != INT64_MIN ? " from the raw watermark" : " from the configured "
             "start");

    int64_t cursor = r->from;
    int64_t prev_open = r->prev_open;
    int64_t first = INT64_MIN;
    int marked = 0;
    int done = 0;
    int rc = 0;
    while (!done && cursor < to) {
        if (interrupt_requested()) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
        }
        p->page.n = 0;
        T0();
        rc = p->src->ops->fetch(p->src, symbol, iv, cursor, to, &p->page, &done, e);
        LAP(p, RS_EXTRACT);
        if (rc != 0) {
            return err_wrap(e, "%s %s page at %" PRId64, symbol, iv->name, cursor);
        }
        ps->pages++;
        if ((rc = FAILPOINT("extract.page", e)) != 0) {
            return rc;
        }
        if (p->page.n == 0) {
            break;
        }
        int64_t last_seen = p->page.rows[p->page.n - 1].open_time;
        if (last_seen < cursor) {
            return err_set(e, ERR_INVALID, "%s %s: the page for startTime %" PRId64 " ends at %"
                           PRId64 ", before it started (the source went back in time)", symbol,
                           iv->name, cursor, last_seen);
        }
        int reached_now = 0;
        rc = screen_page(p, s, ps, symbol, iv, cursor, to, &prev_open, &reached_now, e);
        LAP(p, RS_VALIDATE_RAW);
        if (rc != 0) {
            return rc;
        }
        if (p->page.n > 0) {
            if (!s->writer && (rc = seg_start(p, s, WH_RAW, symbol, iv, e)) != 0) {
                return rc;
            }
            if (!r->tail && !marked && p->wh->ops->range_put) {
                rc = p->wh->ops->range_put(p->wh, WH_RANGE_TRANSFORM, symbol, iv->name,
                                           r->from, r->to, p->run.run_id, e);
                if (rc != 0) {
                    return rc;
                }
                marked = 1;
            }
            buf_reset(&p->csv);
            if (csv_raw_rows(&p->csv, &p->page, symbol, iv->name, p->updated_at) != 0) {
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            if ((rc = lake_write(s->writer, p->csv.data, p->csv.len, e)) != 0) {
                return rc;
            }
            LAP(p, RS_LAKE_RAW);
            rc = p->wh->ops->put_raw(p->wh, symbol, iv->name, &p->page, p->updated_at, e);
            LAP(p, RS_LOAD_RAW);
            if (rc != 0) {
                return rc;
            }
            if (s->rows == 0 && (rc = FAILPOINT("wh.raw.inside", e)) != 0) {
                return rc;
            }
            s->rows += (long long)p->page.n;
            ps->raw_loaded += (long long)p->page.n;
            if (first == INT64_MIN) {
                first = p->page.rows[0].open_time;
            }
            if (!ps->first_open) {
                ps->first_open = p->page.rows[0].open_time;
            }
            ps->last_open = p->page.rows[p->page.n - 1].open_time;
        }
        if (reached_now) {
            break;
        }
        cursor = interval_next(iv, last_seen);
        if (s->rows >= c->batch_rows && (rc = seg_commit(p, s, WH_RAW, &ps->raw_objects, e))) {
            return rc;
        }
    }
    /* What the exchange showed to be empty: before the first row when no
     * row of ours precedes it, and, in a hole (whose end is a row we have),
     * after the last row once the source said there is nothing more. */
    if (first != INT64_MIN && r->prev_open == INT64_MIN && first > r->from &&
        (rc = remember(p, s, WH_RANGE_KNOWN_GAP, symbol, iv, r->from, first, e)) != 0) {
        return rc;
    }
    if (!r->tail && (done == SOURCE_DONE || cursor >= to)) {
        int64_t after = prev_open == INT64_MIN ? r->from : interval_next(iv, prev_open);
        if ((rc = remember(p, s, WH_RANGE_KNOWN_GAP, symbol, iv, after > r->from ? after
                           : r->from, to, e)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int raw_stage(struct pipe *p, struct pair_stats *ps, const struct plan_pair *plan,
                     struct err *e)
{
    const char *symbol = plan->symbol;
    const struct interval *iv = plan->iv;
    if (plan->n == 0) {
        ps->range_start = ps->range_end = p->server_time;
        log_info("extract", "%s %s: nothing new (raw watermark %" PRId64 ")", symbol, iv->name,
                 plan->watermark);
        return 0;
    }
    ps->range_start = plan->r[0].from;
    ps->range_end = plan->r[plan->n - 1].to;
    struct segment s = {0};
    int rc = 0;
    for (size_t i = 0; i < plan->n && rc == 0; i++) {
        rc = raw_range(p, &s, ps, symbol, iv, &plan->r[i], e);
    }
    if (rc == 0) {
        rc = seg_commit(p, &s, WH_RAW, &ps->raw_objects, e);
    }
    if (rc != 0) {
        /* Only the current segment is undone; earlier ones are whole. */
        if (s.rows && ps->raw_loaded >= s.rows) {
            ps->raw_loaded -= s.rows;
        }
        seg_abort(p, &s);
        return rc;
    }
    log_info("load", "%s %s: %lld raw rows loaded, %lld rejected, %lld pages", symbol, iv->name,
             ps->raw_loaded, ps->rejected, ps->pages);
    return 0;
}

/* Transform the raw rows with after < open_time < before into segment s. */
static int transform_range(struct pipe *p, struct segment *s, struct pair_stats *ps,
                           const char *symbol, const struct interval *iv, int64_t after,
                           int64_t before, struct err *e)
{
    const struct config *c = p->cfg;
    int rc = 0;
    for (int last = 0; !last;) {
        if (interrupt_requested()) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
        }
        p->page.n = 0;
        T0();
        rc = p->wh->ops->scan_raw(p->wh, symbol, iv->name, after, &p->page, e);
        LAP(p, RS_READ_RAW);
        if (rc != 0) {
            return rc;
        }
        while (p->page.n > 0 && p->page.rows[p->page.n - 1].open_time >= before) {
            p->page.n--;
            last = 1;
        }
        if (p->page.n == 0) {
            break;
        }
        p->tpage.n = 0;
        for (size_t i = 0; i < p->page.n; i++) {
            struct tkline *t = &p->tpage.rows[p->tpage.n];
            char why[300];
            transform_row(&p->page.rows[i], t);
            if (validate_transformed_row(t, why, sizeof(why)) >= 0) {
                ps->transformed_rejected++;
                if ((rc = quarantine(p, s, "transformed", symbol, iv, &p->page.rows[i], why,
                                     e)) != 0) {
                    return rc;
                }
                continue;
            }
            p->tpage.n++;
        }
        after = p->page.rows[p->page.n - 1].open_time;
        LAP(p, RS_TRANSFORM);
        if (p->tpage.n > 0) {
            if (!s->writer && (rc = seg_start(p, s, WH_TRANSFORMED, symbol, iv, e)) != 0) {
                return rc;
            }
            buf_reset(&p->csv);
            if (csv_transformed_rows(&p->csv, &p->tpage, symbol, iv->name) != 0) {
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            if ((rc = lake_write(s->writer, p->csv.data, p->csv.len, e)) != 0) {
                return rc;
            }
            LAP(p, RS_LAKE_TRANSFORMED);
            rc = p->wh->ops->put_transformed(p->wh, symbol, iv->name, &p->tpage, e);
            LAP(p, RS_LOAD_TRANSFORMED);
            if (rc != 0) {
                return rc;
            }
            if (s->rows == 0 && (rc = FAILPOINT("wh.transformed.inside", e)) != 0) {
                return rc;
            }
            s->rows += (long long)p->tpage.n;
            ps->transformed += (long long)p->tpage.n;
        }
        if (s->rows >= c->batch_rows &&
            (rc = seg_commit(p, s, WH_TRANSFORMED, &ps->transformed_objects, e)) != 0) {
            return rc;
        }
    }
    return 0;
}

struct pending {
    int64_t v[2 * 64];
    size_t n;
};

static int on_pending(void *ctx, int64_t from, int64_t to)
{
    struct pending *q = ctx;
    if (q->n == 64) {
        return -1;  /* the rest waits for the next run */
    }
    q->v[2 * q->n] = from;
    q->v[2 * q->n + 1] = to;
    q->n++;
    return 0;
}

static int transform_stage(struct pipe *p, struct pair_stats *ps, const char *symbol,
                           const struct interval *iv, struct err *e)
{
    int64_t wm = 0;
    int found = 0;
    if (p->wh->ops->watermark(p->wh, WH_TRANSFORMED, symbol, iv->name, &wm, &found, e) != 0) {
        return e->code;
    }
    struct segment s = {0};
    int rc = 0;
    /* Hole fills below the transformed watermark (docs/backfill.md): each
     * marker goes in the transaction of the last rows it covers. */
    struct pending q = {.n = 0};
    if (p->wh->ops->ranges && p->wh->ops->range_delete) {
        rc = p->wh->ops->ranges(p->wh, WH_RANGE_TRANSFORM, symbol, iv->name, on_pending, &q, e);
        if (rc != 0 && rc != -1) {
            return rc;
        }
        rc = 0;
    }
    for (size_t i = 0; i < q.n && rc == 0; i++) {
        int64_t a = q.v[2 * i];
        int64_t b = q.v[2 * i + 1];
        if (found && a <= wm) {
            rc = transform_range(p, &s, ps, symbol, iv, a - 1, b, e);
        }
        if (rc == 0 && (rc = seg_txn(p, &s, e)) == 0) {
            rc = p->wh->ops->range_delete(p->wh, WH_RANGE_TRANSFORM, symbol, iv->name, a, b, e);
        }
    }
    if (rc == 0) {
        rc = transform_range(p, &s, ps, symbol, iv, found ? wm : INT64_MIN, INT64_MAX, e);
    }
    if (rc == 0) {
        rc = seg_commit(p, &s, WH_TRANSFORMED, &ps->transformed_objects, e);
    }
    if (rc != 0) {
        if (s.rows && ps->transformed >= s.rows) {
            ps->transformed -= s.rows;
        }
        seg_abort(p, &s);
        return rc;
    }
    log_info("transform", "%s %s: %lld rows transformed%s", symbol, iv->name, ps->transformed,
             found ? " after the transformed watermark" : "");
    return 0;
}

static int write_artifacts(struct pipe *p, struct buf *log_buf, struct err *e)
{
    char prefix[512];
    char key[700];
    snprintf(prefix, sizeof(prefix), "%s/pipeline-dataops/%s", p->cfg->text[S_ARTIFACTS_PREFIX],
             p->run.run_id);
    struct buf b;
    buf_init(&b, 0);
    int rc = 0;
    if (config_to_json(p->cfg, &b) != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), "%s/config.json", prefix);
    if ((rc = lake_put(p->lake, key, b.data, b.len, e)) != 0) {
        goto out;
    }
    if ((rc = FAILPOINT("metadata.write", e)) != 0) {
        goto out;
    }
    buf_reset(&b);
    if (run_to_json(&p->run, &b) != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The run record also says which source loaded what (archive files,
     * API stretches, per pair): a "sources" member closes the object
     * run_to_json wrote ("...}\n"). */
    if (p->source_stats && b.len >= 2 && b.data[b.len - 2] == '}') {
        b.len -= 2;
        if (buf_printf(&b, ",\"sources\":{%s}}\n", p->source_stats) != 0) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    snprintf(key, sizeof(key), "%s/metadata.json", prefix);
    if ((rc = lake_put(p->lake, key, b.data, b.len, e)) != 0) {
        goto out;
    }
    log_info("metadata", "artifacts written under %s/", prefix);
    log_capture(NULL);
    snprintf(key, sizeof(key), "%s/run.log", prefix);
    rc = lake_put(p->lake, key, log_buf->data ? log_buf->data : "", log_buf->len, e);
out:
    buf_free(&b);
    return rc;
}

static void print_summary(const struct pipe *p)
{
    const struct run *r = &p->run;
    printf("run %s: %s (exit %d)\n", r->run_id, r->status, r->exit_code);
    printf("%-12s %-4s %10s %10s %8s %11s %6s %8s %7s  %s\n", "symbol", "iv", "extracted",
           "raw", "rejected", "transformed", "gaps", "missing", "short", "last candle (UTC)");
    for (size_t i = 0; i < r->npairs; i++) {
        const struct pair_stats *ps = &r->pairs[i];
        char last[32] = "-";
        if (ps->last_open) {
            time_format_iso(ps->last_open, last);
        }
        printf("%-12s %-4s %10lld %10lld %8lld %11lld %6lld %8lld %7lld  %s%s%s\n", ps->symbol,
               ps->iv->name, ps->extracted, ps->raw_loaded, ps->rejected + ps->transformed_rejected,
               ps->transformed, ps->ngaps, ps->missing_candles, ps->short_candles, last,
               ps->error[0] ? "  error: " : "", ps->error);
    }
    fflush(stdout);
}

/* Runs that died without recording their end (SIGKILL, OOM, a lost node)
 * still say 'running'; now that this run holds the lock, they are known to
 * be dead.  Bookkeeping only: a failure here is a warning, not the run's. */
static void abandon_dead_runs(struct pipe *p)
{
    if (!p->wh->ops->abandon_dead_runs) {
        return;
    }
    int n = 0;
    char ids[400];
    struct err e;
    err_clear(&e);
    if (p->wh->ops->abandon_dead_runs(p->wh, p->run.run_id, &n, ids, sizeof(ids), &e) != 0) {
        log_warn("pipeline", "cannot mark runs that died as abandoned: %s", e.msg);
    }
    else if (n > 0) {
        log_warn("pipeline", "%d earlier run(s) ended without recording it (killed, crashed or "
                 "lost with their host), marked 'abandoned': %s", n, ids);
    }
}

/* The plan of every pair (src/plan): the warehouse's holes and the range
 * after each watermark, known gaps left out; the source gets all of it up
 * front for its progress display. */
static int plan_all(struct pipe *p, struct err *e)
{
    int rc = plan_all_pairs(p->wh, p->cfg, p->server_time, &p->plans, e);
    if (rc == 0) {
        plan_hint_source(p->src, p->plans, p->cfg->nsymbols * p->cfg->nintervals);
    }
    return rc;
}

static int run_pairs(struct pipe *p, int *nfailed, int *any_rejected, struct err *first)
{
    const struct config *c = p->cfg;
    for (size_t si = 0; si < c->nsymbols; si++) {
        for (size_t ii = 0; ii < c->nintervals; ii++) {
            const char *symbol = c->symbols[si];
            const struct interval *iv = c->intervals[ii];
            struct pair_stats *ps = run_add_pair(&p->run, symbol, iv);
            struct err e;
            err_clear(&e);
            int rc = raw_stage(p, ps, &p->plans[si * c->nintervals + ii], &e);
            if (rc == 0) {
                rc = transform_stage(p, ps, symbol, iv, &e);
            }
            if (rc != 0) {
                log_error("pipeline", "%s %s failed: %s", symbol, iv->name, e.msg);
                snprintf(ps->error, sizeof(ps->error), "%s", e.msg);
                snprintf(ps->status, sizeof(ps->status), "%s",
                         rc == ERR_INTERRUPTED ? "interrupted" : "failed");
                if ((*nfailed)++ == 0) {
                    *first = e;
                    err_wrap(first, "%s %s", symbol, iv->name);
                }
                if (rc == ERR_INTERRUPTED || rc == ERR_BANNED || rc == ERR_CONFIG) {
                    *first = e;
                    return rc;
                }
                continue;
            }
            if (ps->rejected || ps->transformed_rejected) {
                snprintf(ps->status, sizeof(ps->status), "rejected");
                *any_rejected = 1;
            }
            else {
                snprintf(ps->status, sizeof(ps->status), "ok");
            }
        }
    }
    return 0;
}

int pipeline_run(const struct config *cfg)
{
    struct pipe p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    struct err e;
    err_clear(&e);
    struct buf log_buf;
    buf_init(&log_buf, LOG_CAPTURE_MAX);
    buf_init(&p.csv, 0);
    buf_init(&p.json, 0);
    int exit_code = 1;
    int recorded = 0;

    if (run_init(&p.run, cfg->nsymbols * cfg->nintervals) != 0 ||
        kline_batch_init(&p.page, SCAN_ROWS > SOURCE_PAGE_ROWS ? SCAN_ROWS : SOURCE_PAGE_ROWS) ||
        tkline_batch_init(&p.tpage, SCAN_ROWS) != 0) {
        fprintf(stderr, "dataops: out of memory\n");
        goto done;
    }
    log_set_run_id(p.run.run_id);
    log_capture(&log_buf);
    time_format_sql(p.run.started_at, p.updated_at);
    time_format_compact(p.run.started_at, p.updated_compact);
    log_info("pipeline", "run %s starting (dataops %s, commit %s): %zu symbol(s) x %zu "
             "interval(s)", p.run.run_id, DATAOPS_VERSION, DATAOPS_COMMIT, cfg->nsymbols,
             cfg->nintervals);

    struct wh_names names = {
        cfg->text[S_RAW_DATASET], cfg->text[S_RAW_TABLE], cfg->text[S_TRANSFORMED_DATASET],
        cfg->text[S_TRANSFORMED_TABLE], cfg->text[S_LOCAL_TIME_COLUMN], cfg,
    };
    int rc;
    if ((rc = tz_init(cfg->text[S_TIMEZONE])) != 0) {
        rc = err_set(&e, ERR_CONFIG, "time zone %s is not usable", cfg->text[S_TIMEZONE]);
        goto finish;
    }
    if ((rc = lake_open(cfg->text[S_LAKE], cfg, &p.lake, &e)) != 0 ||
        (rc = wh_open(cfg->text[S_WAREHOUSE], &names, &p.wh, &e)) != 0 ||
        (rc = p.wh->ops->lock(p.wh, cfg->lock_timeout_s, &e)) != 0 ||
        (rc = p.wh->ops->ensure_schema(p.wh, &e)) != 0) {
        goto finish;
    }
    abandon_dead_runs(&p);
    if ((rc = p.wh->ops->record_run(p.wh, &p.run, &e)) != 0) {
        goto finish;
    }
    recorded = 1;
    if ((rc = source_open(cfg, &p.src, &e)) != 0 ||
        (rc = p.src->ops->check_symbols(p.src, cfg->symbols, cfg->nsymbols, &e)) != 0 ||
        (rc = p.src->ops->server_time(p.src, &p.server_time, &e)) != 0) {
        goto finish;
    }
    char now[32];
    time_format_iso(p.server_time, now);
    log_info("extract", "exchange clock %s: only candles closed before it are stored", now);
    if ((rc = plan_all(&p, &e)) != 0) {
        goto finish;
    }

    int nfailed = 0;
    int any_rejected = 0;
    rc = run_pairs(&p, &nfailed, &any_rejected, &e);
    if (rc == 0 && nfailed == 1) {
        rc = e.code ? e.code : ERR_IO;
    }
    else if (rc == 0 && nfailed > 1) {
        char first[sizeof(e.msg)];
        snprintf(first, sizeof(first), "%s", e.msg);
        rc = err_set(&e, ERR_IO, "%d pairs failed; the first: %s", nfailed, first);
    }
    if (rc == 0 && any_rejected) {
        rc = err_set(&e, ERR_QUALITY, "rows failed validation and were quarantined "
                     "(table dataops_quarantine)");
    }

finish:
    if (rc == ERR_INTERRUPTED || interrupt_requested()) {
        snprintf(p.run.status, sizeof(p.run.status), "interrupted");
        if (rc == 0) {
            rc = err_set(&e, ERR_INTERRUPTED, "interrupted by a signal");
        }
    }
    else if (rc == 0) {
        snprintf(p.run.status, sizeof(p.run.status), "ok");
    }
    else if (rc == ERR_QUALITY) {
        snprintf(p.run.status, sizeof(p.run.status), "rejected");
    }
    else {
        snprintf(p.run.status, sizeof(p.run.status), "failed");
    }
    exit_code = err_exit_code(rc);
    p.run.exit_code = exit_code;
    p.run.ended_at = time_now_ms();
    if (rc != 0) {
        snprintf(p.run.error, sizeof(p.run.error), "%s", e.msg);
        if (rc == ERR_QUALITY) {
            log_warn("pipeline", "%s", e.msg);
        }
        else {
            log_error("pipeline", "run failed: %s", e.msg);
        }
    }
    int64_t t_meta = run_clock_ns();
    if (recorded) {
        struct err e2;
        err_clear(&e2);
        if (p.wh->ops->record_run(p.wh, &p.run, &e2) != 0) {
            log_error("metadata", "cannot record the run: %s", e2.msg);
            if (exit_code == 0) {
                exit_code = 1;
            }
        }
    }
    if (p.lake) {
        if (p.src && (p.source_stats = malloc(SOURCE_STATS_MAX)) != NULL) {
            p.src->ops->stats(p.src, p.source_stats, SOURCE_STATS_MAX);
            /* The per-file list goes to metadata.json, not into the log. */
            int shown = (int)strcspn(p.source_stats, "[");
            log_info("extract", "source figures: {%.*s%s}", shown > 1500 ? 1500 : shown,
                     p.source_stats, p.source_stats[shown] ? "...; see metadata.json" : "");
        }
        log_info("pipeline", "run %s finished: %s", p.run.run_id, p.run.status);
        struct err e2;
        err_clear(&e2);
        /* metadata.json carries the time spent so far on metadata too. */
        p.run.stage_ns[RS_METADATA] += run_clock_ns() - t_meta;
        if (write_artifacts(&p, &log_buf, &e2) != 0) {
            log_error("metadata", "cannot write the run's artifacts: %s", e2.msg);
            if (exit_code == 0) {
                exit_code = 1;
            }
        }
    }
    else {
        log_info("pipeline", "run %s finished: %s", p.run.run_id, p.run.status);
    }
    if (recorded || p.run.npairs) {
        print_summary(&p);
    }
done:
    log_capture(NULL);
    source_close(p.src);
    wh_close(p.wh);
    lake_close(p.lake);
    run_free(&p.run);
    plan_pairs_free(p.plans, cfg->nsymbols * cfg->nintervals);
    free(p.source_stats);
    kline_batch_free(&p.page);
    tkline_batch_free(&p.tpage);
    buf_free(&p.csv);
    buf_free(&p.json);
    buf_free(&log_buf);
    return exit_code;
}
