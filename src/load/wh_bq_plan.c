/*
 * wh_bq_plan.c - the backfill planner's bookkeeping in BigQuery
 * (docs/backfill.md): the holes of the raw table, and the ranges table
 * <raw dataset>.dataops_ranges (known gaps, transform markers, rejected
 * candles), with the same meaning as in SQLite and PostgreSQL.
 *
 * holes() is one query job with a LAG/LEAD window over the pair's rows, so
 * only the rows next to a gap come back (for the calendar month every row
 * comes, a dozen a year, and the grid is walked here).  Its cost is the
 * pair's open_time column: the raw table is clustered on (symbol,
 * interval), so BigQuery reads little more than the pair's own blocks.
 *
 * range_put/range_delete inside an open batch do not run at once: their
 * statement joins the batch's commit script (wh_bq_commit), so a range
 * commits in the transaction of the rows it describes.  Outside a batch
 * each runs as its own query job.  Their values go into the script as
 * literals (a script has one set of parameters, and a batch may hold
 * several ranges); every string is one dataops made (a symbol, an interval
 * name, a run id) and is refused unless it is plain [A-Za-z0-9_-].
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "load/wh.h"
#include "load/wh_bq.h"

/* Rows per page of a planner query's result. */
#define PLAN_PAGE_ROWS 10000

static int plain(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') {
            return 0;
        }
    }
    return 1;
}

static int refuse(const char *what, const char *value, struct err *e)
{
    return err_set(e, ERR_INVALID, "BigQuery ranges: the %s '%s' is not plain text"
                   " ([A-Za-z0-9_-]) and cannot go into a script", what, value);
}

static int check_key(enum wh_range_kind kind, const char *symbol, const char *interval,
                     const char *run_id, struct err *e)
{
    (void)kind;   /* one of three fixed names */
    if (!plain(symbol)) {
        return refuse("symbol", symbol, e);
    }
    if (!plain(interval)) {
        return refuse("interval", interval, e);
    }
    if (run_id && run_id[0] && !plain(run_id)) {
        return refuse("run id", run_id, e);
    }
    return 0;
}

/* Run stmt now (outside a batch) or keep it for the batch's commit. */
static int run_or_join(struct wh_bq *w, const struct buf *stmt, const char *what,
                       struct err *e)
{
    if (w->in_txn) {
        if (buf_puts(&w->ranges_sql, stmt->data) != 0 || buf_puts(&w->ranges_sql, ";\n") != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        return 0;
    }
    char job[300];
    snprintf(job, sizeof(job), "dataops_%s_%u_%s", wh_bq_job_prefix(w), ++w->seq, what);
    return bq_query_job(&w->c, job, stmt->data, NULL, 0, NULL, e);
}

struct holes_ctx {
    struct wh_holes_walk h;
    const struct wh_bq *w;
    const char *symbol;
    wh_range_cb cb;
    void *ctx;
};

static int hole_row(void *ctx, const cJSON *row, struct err *e)
{
    struct holes_ctx *x = ctx;
    const char *prev = bq_cell(row, 0);
    const char *cur = bq_cell(row, 1);
    if (!cur) {
        return err_set(e, ERR_WAREHOUSE, "%s: a raw row of %s %s has no open_time",
                       x->w->ref[WH_RAW], x->symbol, x->h.iv->name);
    }
    return wh_holes_row(&x->h, prev != NULL, prev ? strtoll(prev, NULL, 10) : 0,
                        strtoll(cur, NULL, 10), bq_cell(row, 2) == NULL, x->cb, x->ctx);
}

int wh_bq_holes(struct wh *base, const char *symbol, const struct interval *iv, int64_t from,
                int64_t to, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char a[24], b[24], step[24];
    snprintf(a, sizeof(a), "%" PRId64, from);
    snprintf(b, sizeof(b), "%" PRId64, to);
    snprintf(step, sizeof(step), "%" PRId64, iv->ms);   /* 0 for 1M: every row */
    struct bq_param p[] = {
        {"symbol", "STRING", symbol}, {"interval", "STRING", iv->name},
        {"from", "INT64", a}, {"to", "INT64", b}, {"step", "INT64", step},
    };
    struct buf sql;
    buf_init(&sql, 0);
    if (buf_printf(&sql, "SELECT `prev`, `open_time`, `nxt` FROM (SELECT `open_time`,"
                   " LAG(`open_time`) OVER win AS `prev`, LEAD(`open_time`) OVER win AS `nxt`"
                   " FROM %s WHERE `symbol` = @symbol AND `interval` = @interval AND"
                   " `open_time` >= @from AND `open_time` < @to WINDOW win AS (ORDER BY"
                   " `open_time`)) WHERE `prev` IS NULL OR `nxt` IS NULL OR"
                   " `open_time` - `prev` > @step ORDER BY `open_time`", w->ref[WH_RAW]) != 0) {
        buf_free(&sql);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct holes_ctx x = {.w = w, .symbol = symbol, .cb = cb, .ctx = ctx};
    wh_holes_begin(&x.h, iv, from, to);
    int rc = bq_each_row(&w->c, sql.data, p, 5, PLAN_PAGE_ROWS, hole_row, &x, e);
    buf_free(&sql);
    return rc ? rc : wh_holes_end(&x.h, cb, ctx);
}

struct ranges_ctx {
    const struct wh_bq *w;
    const char *kind, *symbol, *interval;
    wh_range_cb cb;
    void *ctx;
};

static int range_row(void *ctx, const cJSON *row, struct err *e)
{
    struct ranges_ctx *x = ctx;
    const char *lo = bq_cell(row, 0);
    const char *hi = bq_cell(row, 1);
    if (!lo || !hi) {
        return err_set(e, ERR_WAREHOUSE, "%s: a %s range of %s %s has no bounds",
                       x->w->meta_ref[MT_RANGES], x->kind, x->symbol, x->interval);
    }
    return x->cb(x->ctx, strtoll(lo, NULL, 10), strtoll(hi, NULL, 10));
}

int wh_bq_ranges(struct wh *base, enum wh_range_kind kind, const char *symbol,
                 const char *interval, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    struct bq_param p[] = {
        {"kind", "STRING", wh_range_kind_name(kind)}, {"symbol", "STRING", symbol},
        {"interval", "STRING", interval},
    };
    struct buf sql;
    buf_init(&sql, 0);
    if (buf_printf(&sql, "SELECT `range_from`, `range_to` FROM %s WHERE `kind` = @kind AND"
                   " `symbol` = @symbol AND `interval` = @interval ORDER BY `range_from`",
                   w->meta_ref[MT_RANGES]) != 0) {
        buf_free(&sql);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct ranges_ctx x = {w, wh_range_kind_name(kind), symbol, interval, cb, ctx};
    int rc = bq_each_row(&w->c, sql.data, p, 3, PLAN_PAGE_ROWS, range_row, &x, e);
    buf_free(&sql);
    return rc;
}

int wh_bq_range_put(struct wh *base, enum wh_range_kind kind, const char *symbol,
                    const char *interval, int64_t from, int64_t to, const char *run_id,
                    struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    if (check_key(kind, symbol, interval, run_id, e) != 0) {
        return e->code;
    }
    struct buf stmt;
    buf_init(&stmt, 0);
    int rc = buf_printf(&stmt, "MERGE %s R USING (SELECT '%s' AS `kind`, '%s' AS `symbol`,"
                        " '%s' AS `interval`, %" PRId64 " AS `range_from`, %" PRId64
                        " AS `range_to`, '%s' AS `run_id`) S ON R.`kind` = S.`kind` AND"
                        " R.`symbol` = S.`symbol` AND R.`interval` = S.`interval` AND"
                        " R.`range_from` = S.`range_from` WHEN MATCHED THEN UPDATE SET"
                        " `range_to` = CASE WHEN S.`range_to` > R.`range_to` THEN S.`range_to`"
                        " ELSE R.`range_to` END, `run_id` = S.`run_id`, `recorded_at` ="
                        " CURRENT_DATETIME() WHEN NOT MATCHED THEN INSERT (`kind`, `symbol`,"
                        " `interval`, `range_from`, `range_to`, `run_id`, `recorded_at`) VALUES"
                        " (S.`kind`, S.`symbol`, S.`interval`, S.`range_from`, S.`range_to`,"
                        " S.`run_id`, CURRENT_DATETIME())", w->meta_ref[MT_RANGES],
                        wh_range_kind_name(kind), symbol, interval, from, to,
                        run_id ? run_id : "");
    rc = rc ? err_set(e, ERR_NOMEM, "out of memory") : run_or_join(w, &stmt, "range", e);
    buf_free(&stmt);
    return rc;
}

int wh_bq_range_delete(struct wh *base, enum wh_range_kind kind, const char *symbol,
                       const char *interval, int64_t from, int64_t to, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    if (check_key(kind, symbol, interval, NULL, e) != 0) {
        return e->code;
    }
    struct buf stmt;
    buf_init(&stmt, 0);
    int rc = buf_printf(&stmt, "DELETE FROM %s WHERE `kind` = '%s' AND `symbol` = '%s' AND"
                        " `interval` = '%s' AND `range_from` = %" PRId64 " AND `range_to` = %"
                        PRId64, w->meta_ref[MT_RANGES], wh_range_kind_name(kind), symbol,
                        interval, from, to);
    rc = rc ? err_set(e, ERR_NOMEM, "out of memory") : run_or_join(w, &stmt, "range_delete", e);
    buf_free(&stmt);
    return rc;
}
