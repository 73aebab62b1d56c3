/*
 * wh_pg.h - private to the PostgreSQL warehouse (wh_pg.c: connection,
 * session, run lock, transactions and COPY; wh_pg_sql.c: the tables and
 * the statements that read and write them; wh_pg_plan.c: the planner's).  Nothing outside src/load/wh_pg*.c
 * includes it: the rest of the program sees only wh_pg_ops (load/wh.h).
 */
#ifndef DATAOPS_WH_PG_H
#define DATAOPS_WH_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "load/wh.h"
#include "util/buf.h"

/* Which table a COPY is filling: raw or transformed, through the staging
 * table (pg_temp.dataops_stage_raw/_t) or straight in (see pg_route). */
enum pg_stage { PG_STAGE_NONE = -1, PG_STAGE_RAW = 0, PG_STAGE_T = 1 };

/* How a batch's rows reach a table, decided at its first put: straight
 * into the table by COPY when they all come after the table's newest row of
 * the pair (a tail: there is nothing to merge with, and the upsert would
 * only cost time), else through the staging table and the upsert. */
enum pg_route { PG_ROUTE_UNDECIDED = 0, PG_ROUTE_STRAIGHT, PG_ROUTE_STAGED };

struct wh_pg {
    struct wh base;             /* first: a struct wh_pg is a struct wh */
    PGconn *conn;
    char shown[512];            /* the URL with its password masked */
    char secret[3][256];        /* passwords to scrub from messages */
    /* Identifiers, quoted by PQescapeIdentifier (malloc'd). */
    char *schema_q;             /* "public" */
    char *raw_q;                /* "public"."raw_..." */
    char *tr_q;
    char *local_q;              /* the local-time column */
    char *quar_q;
    char *runs_q;
    char *pairs_q;
    char *ranges_q;             /* the planner's dataops_ranges */
    char schema[136];           /* unquoted, for the lock keys */
    char raw_table[136];
    char restore_timeout[96];   /* "SET LOCAL statement_timeout = '...'" */
    int64_t lock_key;           /* hashtext('dataops:<schema>.<raw table>') */
    int have_key;
    int want_lock;              /* lock() succeeded once: keep holding it */
    int locked;                 /* held on the current connection */
    int in_txn;
    int runs_raw_table;         /* dataops_runs has its raw_table column */
    int copying;                /* enum pg_stage of the open COPY */
    int copy_straight;          /* ... and it goes into the table itself */
    int staged[2];              /* rows in the staging tables, not yet upserted */
    /* per stage, for the open transaction */
    int route[2];               /* enum pg_route */
    char straight_pair[2][48];  /* the pair whose rows went straight */
    int64_t straight_hi[2];     /* the newest open_time sent straight */
    long long straight_rows[2];
    struct buf copy;            /* one page of COPY text, reused */
    struct buf sql;             /* statement text, reused */
};

/* wh_pg.c: running statements.  Each ends an open COPY first, and on failure
 * fills e with an operator's message (password scrubbed; "connection ...
 * lost" when the connection is gone). */
int pg_exec(struct wh_pg *w, const char *sql, const char *what, struct err *e);
int pg_params(struct wh_pg *w, const char *sql, int n, const char *const *vals,
              const char *what, PGresult **out, struct err *e);
int pg_fail(struct wh_pg *w, const PGresult *res, const char *what, struct err *e);
/* Forget the open transaction's staged rows and routes. */
void pg_batch_reset(struct wh_pg *w);
/* Reconnect if the connection was lost (outside a transaction only), and
 * re-take the run lock when need_lock and the run held it. */
int pg_revive(struct wh_pg *w, int need_lock, struct err *e);
/* Open (or keep open) a COPY into the staging table, or straight into the
 * table; stream text rows into it; end it (staged rows wait for the
 * upsert of commit()). */
int pg_copy_begin(struct wh_pg *w, enum pg_stage st, int straight, struct err *e);
int pg_copy_send(struct wh_pg *w, const char *data, size_t len, struct err *e);
/* 1 if s[0..n) is valid UTF-8 without NUL bytes (what PostgreSQL text takes). */
int pg_utf8_valid(const char *s, size_t n);
/* COPY text-format escaping of one field, with the separator before it
 * unless first. -1 on out of memory, -2 if s is not valid UTF-8. */
int pg_copy_field(struct buf *b, const char *s, size_t n, int first);

/* wh_pg_sql.c */
int pg_session_sql(struct wh_pg *w, struct err *e);          /* per connection */
/* The COPY statement of a stage, into its staging table or straight in. */
int pg_copy_sql(struct wh_pg *w, enum pg_stage st, int straight, struct buf *out);
int pg_upsert_staged(struct wh_pg *w, enum pg_stage st, struct err *e);
int pg_ensure_schema(struct wh *base, struct err *e);
int pg_check(struct wh *base, struct err *e);
int pg_watermark(struct wh *base, enum wh_table t, const char *symbol, const char *interval,
                 int64_t *open_time, int *found, struct err *e);
int pg_put_raw(struct wh *base, const char *symbol, const char *interval,
               const struct kline_batch *b, const char *updated_at, struct err *e);
int pg_put_transformed(struct wh *base, const char *symbol, const char *interval,
                       const struct tkline_batch *b, struct err *e);
int pg_abandon_dead_runs(struct wh *base, const char *run_id, int *n, char *ids, size_t idsz,
                         struct err *e);
int pg_put_quarantine(struct wh *base, const char *run_id, const char *stage,
                      const char *symbol, const char *interval, int64_t open_time,
                      const char *reason, const char *row_json, struct err *e);
int pg_scan_raw(struct wh *base, const char *symbol, const char *interval, int64_t after,
                struct kline_batch *out, struct err *e);
int pg_record_run(struct wh *base, const struct run *r, struct err *e);

/* wh_pg_plan.c: the backfill planner's ops (load/wh.h) */
int pg_holes(struct wh *base, const char *symbol, const struct interval *iv, int64_t from,
             int64_t to, wh_range_cb cb, void *ctx, struct err *e);
int pg_ranges(struct wh *base, enum wh_range_kind kind, const char *symbol,
              const char *interval, wh_range_cb cb, void *ctx, struct err *e);
int pg_range_put(struct wh *base, enum wh_range_kind kind, const char *symbol,
                 const char *interval, int64_t from, int64_t to, const char *run_id,
                 struct err *e);
int pg_range_delete(struct wh *base, enum wh_range_kind kind, const char *symbol,
                    const char *interval, int64_t from, int64_t to, struct err *e);

#endif
