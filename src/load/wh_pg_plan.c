/*
 * wh_pg_plan.c - the backfill planner's bookkeeping in PostgreSQL
 * (docs/backfill.md): the holes of the raw table, and the ranges table
 * <schema>.dataops_ranges (known gaps, transform markers, rejected
 * candles), with the same meaning as in SQLite.
 *
 * holes() asks the server for the rows next to a gap only: a LAG/LEAD
 * window over the primary key of the pair, so a year of 1m candles sends
 * a handful of rows, not 525,600.  For the calendar month every row comes
 * (a dozen a year) and the grid is walked here, as SQLite's does.
 *
 * range_put/range_delete run inside the open transaction, if any, so a
 * range commits with the rows it describes; outside one, each op first
 * revives a lost connection like every other op.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "load/wh_pg.h"

static int revive_outside_txn(struct wh_pg *w, struct err *e)
{
    return w->in_txn ? 0 : pg_revive(w, 1, e);
}

static int64_t value_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int pg_holes(struct wh *base, const char *symbol, const struct interval *iv, int64_t from,
             int64_t to, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (revive_outside_txn(w, e) != 0) {
        return e->code;
    }
    buf_reset(&w->sql);
    if (buf_printf(&w->sql,
                   "SELECT prev, open_time, nxt IS NULL FROM (SELECT open_time,"
                   " lag(open_time) OVER w AS prev, lead(open_time) OVER w AS nxt"
                   " FROM %s WHERE symbol = $1 AND \"interval\" = $2 AND open_time >= $3"
                   " AND open_time < $4 WINDOW w AS (ORDER BY open_time)) t"
                   " WHERE prev IS NULL OR nxt IS NULL OR open_time - prev > $5"
                   " ORDER BY open_time", w->raw_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    char a[24], b[24], step[24];
    snprintf(a, sizeof(a), "%" PRId64, from);
    snprintf(b, sizeof(b), "%" PRId64, to);
    snprintf(step, sizeof(step), "%" PRId64, iv->ms);   /* 0 for 1M: every row */
    const char *v[5] = {symbol, iv->name, a, b, step};
    PGresult *res = NULL;
    if (pg_params(w, w->sql.data, 5, v, "finding the holes", &res, e) != 0) {
        return e->code;
    }
    struct wh_holes_walk h;
    wh_holes_begin(&h, iv, from, to);
    int n = PQntuples(res);
    int stop = 0;
    for (int i = 0; i < n && !stop; i++) {
        int has_prev = !PQgetisnull(res, i, 0);
        stop = wh_holes_row(&h, has_prev, has_prev ? value_i64(res, i, 0) : 0,
                            value_i64(res, i, 1), PQgetvalue(res, i, 2)[0] == 't', cb, ctx);
    }
    if (!stop) {
        stop = wh_holes_end(&h, cb, ctx);
    }
    PQclear(res);
    return stop;
}

int pg_ranges(struct wh *base, enum wh_range_kind kind, const char *symbol,
              const char *interval, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (revive_outside_txn(w, e) != 0) {
        return e->code;
    }
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "SELECT range_from, range_to FROM %s WHERE kind = $1 AND"
                   " symbol = $2 AND \"interval\" = $3 ORDER BY range_from", w->ranges_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    const char *v[3] = {wh_range_kind_name(kind), symbol, interval};
    PGresult *res = NULL;
    if (pg_params(w, w->sql.data, 3, v, "reading the ranges", &res, e) != 0) {
        return e->code;
    }
    int stop = 0;
    for (int i = 0; i < PQntuples(res) && !stop; i++) {
        stop = cb(ctx, value_i64(res, i, 0), value_i64(res, i, 1));
    }
    PQclear(res);
    return stop;
}

int pg_range_put(struct wh *base, enum wh_range_kind kind, const char *symbol,
                 const char *interval, int64_t from, int64_t to, const char *run_id,
                 struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (revive_outside_txn(w, e) != 0) {
        return e->code;
    }
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "INSERT INTO %s AS r (kind, symbol, \"interval\", range_from,"
                   " range_to, run_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind,"
                   " symbol, \"interval\", range_from) DO UPDATE SET range_to ="
                   " greatest(r.range_to, excluded.range_to), run_id = excluded.run_id,"
                   " recorded_at = now()", w->ranges_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    char a[24], b[24];
    snprintf(a, sizeof(a), "%" PRId64, from);
    snprintf(b, sizeof(b), "%" PRId64, to);
    const char *v[6] = {wh_range_kind_name(kind), symbol, interval, a, b, run_id ? run_id : ""};
    return pg_params(w, w->sql.data, 6, v, "recording a range", NULL, e);
}

int pg_range_delete(struct wh *base, enum wh_range_kind kind, const char *symbol,
                    const char *interval, int64_t from, int64_t to, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (revive_outside_txn(w, e) != 0) {
        return e->code;
    }
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "DELETE FROM %s WHERE kind = $1 AND symbol = $2 AND"
                   " \"interval\" = $3 AND range_from = $4 AND range_to = $5",
                   w->ranges_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    char a[24], b[24];
    snprintf(a, sizeof(a), "%" PRId64, from);
    snprintf(b, sizeof(b), "%" PRId64, to);
    const char *v[5] = {wh_range_kind_name(kind), symbol, interval, a, b};
    return pg_params(w, w->sql.data, 5, v, "deleting a range", NULL, e);
}
