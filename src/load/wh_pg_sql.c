/*
 * wh_pg_sql.c - the PostgreSQL warehouse's tables and the statements that
 * read and write them (the connection, lock and COPY stream are wh_pg.c's).
 *
 * Types, chosen so that the rows hold the same values as the SQLite
 * default's (docs/postgres.md has the DDL):
 *   raw          prices and volumes as text, byte for byte what the exchange
 *                sent; open_time/close_time/number_of_trades bigint;
 *                utc_datetime and updated_at timestamp(3) holding UTC, like
 *                the original's DATETIME columns;
 *   transformed  utc_datetime, open_time, close_time, updated_at as
 *                timestamptz(3); the eight numeric columns double precision;
 *                the local-time column as timestamp(3): the wall-clock time
 *                in the configured zone (its offset is local - utc_datetime).
 * Both are keyed on (symbol, "interval", open_time), so a watermark is one
 * probe of the primary key's index.
 *
 * Every identifier is quoted by libpq (PQescapeIdentifier) and every value
 * travels as a parameter or as COPY data; no value is pasted into SQL.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/wh_pg.h"
#include "util/log.h"
#include "util/timeutil.h"

#define RAW_COLS                                                                   \
    "utc_datetime, open_time, \"open\", high, low, \"close\", volume, close_time,"  \
    " quote_asset_volume, number_of_trades, taker_buy_base_asset_volume,"          \
    " taker_buy_quote_asset_volume, \"ignore\", updated_at"

/* DO UPDATE only when a value differs (the same columns as SQLite's), so
 * an identical reload leaves the row, its updated_at and its xmin alone. */
#define UPDATE_SET                                                                  \
    " ON CONFLICT (symbol, \"interval\", open_time) DO UPDATE SET"                  \
    " utc_datetime = excluded.utc_datetime, \"open\" = excluded.\"open\","          \
    " high = excluded.high, low = excluded.low, \"close\" = excluded.\"close\","    \
    " volume = excluded.volume, close_time = excluded.close_time,"                  \
    " quote_asset_volume = excluded.quote_asset_volume,"                            \
    " number_of_trades = excluded.number_of_trades,"                                \
    " taker_buy_base_asset_volume = excluded.taker_buy_base_asset_volume,"          \
    " taker_buy_quote_asset_volume = excluded.taker_buy_quote_asset_volume,"        \
    " \"ignore\" = excluded.\"ignore\", updated_at = excluded.updated_at"

#define DIFFERS                                                                     \
    " WHERE (t.\"open\", t.high, t.low, t.\"close\", t.volume, t.close_time,"        \
    " t.quote_asset_volume, t.number_of_trades, t.taker_buy_base_asset_volume,"     \
    " t.taker_buy_quote_asset_volume, t.\"ignore\") IS DISTINCT FROM"               \
    " (excluded.\"open\", excluded.high, excluded.low, excluded.\"close\","         \
    " excluded.volume, excluded.close_time, excluded.quote_asset_volume,"           \
    " excluded.number_of_trades, excluded.taker_buy_base_asset_volume,"             \
    " excluded.taker_buy_quote_asset_volume, excluded.\"ignore\")"

/* --- session --- */

int pg_session_sql(struct wh_pg *w, struct err *e)
{
    /* The staging tables live as long as the session; COPY fills them in
     * this column order, commit() empties them. */
    if (pg_exec(w, "SET TimeZone = 'UTC';"
                " SELECT set_config('statement_timeout', '5min', false)"
                "  WHERE current_setting('statement_timeout') = '0';"
                " SELECT set_config('lock_timeout', '1min', false)"
                "  WHERE current_setting('lock_timeout') = '0';"
                " CREATE TEMP TABLE IF NOT EXISTS dataops_stage_raw ("
                "  utc_datetime timestamp(3), open_time bigint, \"open\" text, high text,"
                "  low text, \"close\" text, volume text, close_time bigint,"
                "  quote_asset_volume text, number_of_trades bigint,"
                "  taker_buy_base_asset_volume text, taker_buy_quote_asset_volume text,"
                "  \"ignore\" text, updated_at timestamp(3), symbol text, \"interval\" text);"
                " CREATE TEMP TABLE IF NOT EXISTS dataops_stage_t ("
                "  utc_datetime timestamptz(3), open_time timestamptz(3),"
                "  \"open\" double precision, high double precision, low double precision,"
                "  \"close\" double precision, volume double precision,"
                "  close_time timestamptz(3), quote_asset_volume double precision,"
                "  number_of_trades bigint, taker_buy_base_asset_volume double precision,"
                "  taker_buy_quote_asset_volume double precision, \"ignore\" text,"
                "  updated_at timestamptz(3), local_time timestamp(3), symbol text,"
                "  \"interval\" text)",
                "setting up the session", e) != 0) {
        return e->code;
    }
    /* The COPY turns the statement timeout off for its transaction; the
     * upsert after it turns the session's value back on. */
    PGresult *res = NULL;
    if (pg_params(w, "SELECT current_setting('statement_timeout')", 0, NULL,
                  "setting up the session", &res, e) != 0) {
        return e->code;
    }
    const char *v = PQgetvalue(res, 0, 0);
    char *lit = PQescapeLiteral(w->conn, v, strlen(v));
    PQclear(res);
    if (!lit) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    snprintf(w->restore_timeout, sizeof(w->restore_timeout), "SET LOCAL statement_timeout = %s",
             lit);
    PQfreemem(lit);
    return 0;
}

/* --- schema --- */

static int exists(struct wh_pg *w, const char *sql, const char *arg, int *yes, struct err *e)
{
    const char *v[1] = {arg};
    PGresult *res = NULL;
    if (pg_params(w, sql, 1, v, "reading the catalog", &res, e) != 0) {
        return e->code;
    }
    *yes = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

static int create_missing(struct wh_pg *w, const char *qname, const char *ddl, struct err *e)
{
    int there = 0;
    if (exists(w, "SELECT to_regclass($1) IS NOT NULL", qname, &there, e) != 0) {
        return e->code;
    }
    if (there) {
        return 0;
    }
    char what[300];
    snprintf(what, sizeof(what), "creating table %s", qname);
    if (pg_exec(w, ddl, what, e) != 0) {
        return e->code;
    }
    log_info("warehouse", "created table %s", qname);
    return 0;
}

static int schema_steps(struct wh_pg *w, struct err *e)
{
    struct buf *q = &w->sql;
    char key[300];
    snprintf(key, sizeof(key), "dataops:ddl:%s", w->schema);
    const char *v[1] = {key};
    /* Runs on other raw tables may share the schema and its run tables:
     * their DDL takes turns. */
    if (pg_params(w, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, v,
                  "locking the schema for DDL", NULL, e) != 0) {
        return e->code;
    }
    int there = 0;
    if (exists(w, "SELECT count(*) = 1 FROM pg_namespace WHERE nspname = $1", w->schema, &there,
               e) != 0) {
        return e->code;
    }
    if (!there) {
        buf_reset(q);
        if (buf_printf(q, "CREATE SCHEMA %s", w->schema_q) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        if (pg_exec(w, q->data, "creating the schema", e) != 0) {
            return e->code;
        }
        log_info("warehouse", "created schema %s", w->schema_q);
    }
    int rc = 0;
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " utc_datetime timestamp(3) without time zone NOT NULL, open_time bigint NOT NULL,"
        " \"open\" text NOT NULL, high text NOT NULL, low text NOT NULL,"
        " \"close\" text NOT NULL, volume text NOT NULL, close_time bigint NOT NULL,"
        " quote_asset_volume text NOT NULL, number_of_trades bigint NOT NULL,"
        " taker_buy_base_asset_volume text NOT NULL,"
        " taker_buy_quote_asset_volume text NOT NULL, \"ignore\" text NOT NULL,"
        " updated_at timestamp(3) without time zone NOT NULL,"
        " symbol text NOT NULL, \"interval\" text NOT NULL,"
        " PRIMARY KEY (symbol, \"interval\", open_time));"
        " COMMENT ON TABLE %s IS 'Binance klines as the exchange sent them"
        " (decimal text kept byte for byte; times in UTC), loaded by dataops'",
        w->raw_q, w->raw_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (create_missing(w, w->raw_q, q->data, e) != 0) {
        return e->code;
    }
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " utc_datetime timestamptz(3) NOT NULL, open_time timestamptz(3) NOT NULL,"
        " \"open\" double precision NOT NULL, high double precision NOT NULL,"
        " low double precision NOT NULL, \"close\" double precision NOT NULL,"
        " volume double precision NOT NULL, close_time timestamptz(3) NOT NULL,"
        " quote_asset_volume double precision NOT NULL, number_of_trades bigint NOT NULL,"
        " taker_buy_base_asset_volume double precision NOT NULL,"
        " taker_buy_quote_asset_volume double precision NOT NULL, \"ignore\" text NOT NULL,"
        " updated_at timestamptz(3) NOT NULL, %s timestamp(3) without time zone NOT NULL,"
        " symbol text NOT NULL, \"interval\" text NOT NULL,"
        " PRIMARY KEY (symbol, \"interval\", open_time));"
        " COMMENT ON TABLE %s IS 'Binance klines cast by dataops: times as timestamptz,"
        " prices and volumes as double precision, and the local wall-clock time'",
        w->tr_q, w->local_q, w->tr_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (create_missing(w, w->tr_q, q->data, e) != 0) {
        return e->code;
    }
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " run_id text NOT NULL, stage text NOT NULL, symbol text NOT NULL,"
        " \"interval\" text NOT NULL, open_time bigint, reason text NOT NULL,"
        " row_json json, created_at timestamptz(3) NOT NULL DEFAULT now());"
        " CREATE INDEX ON %s (symbol, \"interval\", open_time)", w->quar_q, w->quar_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (create_missing(w, w->quar_q, q->data, e) != 0) {
        return e->code;
    }
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " run_id text PRIMARY KEY, git_commit text NOT NULL, version text NOT NULL,"
        " hostname text, started_at timestamptz(3) NOT NULL, ended_at timestamptz(3),"
        " status text NOT NULL, exit_code integer, error text, raw_table text)", w->runs_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (create_missing(w, w->runs_q, q->data, e) != 0) {
        return e->code;
    }
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " run_id text NOT NULL, symbol text NOT NULL, \"interval\" text NOT NULL,"
        " range_start bigint, range_end bigint, first_open bigint, last_open bigint,"
        " pages bigint, rows_extracted bigint, open_skipped bigint, rows_raw_loaded bigint,"
        " rows_rejected bigint, rows_transformed bigint, rows_transformed_rejected bigint,"
        " short_candles bigint, zero_trade bigint, gaps bigint, missing_candles bigint,"
        " status text NOT NULL, error text, PRIMARY KEY (run_id, symbol, \"interval\"))",
        w->pairs_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (create_missing(w, w->pairs_q, q->data, e) != 0) {
        return e->code;
    }
    /* The backfill planner's ranges (wh_pg_plan.c, docs/backfill.md). */
    buf_reset(q);
    rc |= buf_printf(q,
        "CREATE TABLE %s ("
        " kind text NOT NULL, symbol text NOT NULL, \"interval\" text NOT NULL,"
        " range_from bigint NOT NULL, range_to bigint NOT NULL, run_id text NOT NULL,"
        " recorded_at timestamptz(3) NOT NULL DEFAULT now(),"
        " PRIMARY KEY (kind, symbol, \"interval\", range_from))", w->ranges_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    return create_missing(w, w->ranges_q, q->data, e);
}

/* dataops_runs names the raw table of each run (its run lock's scope)
 * since runs that die are marked abandoned; tables made before get the
 * column.  A role that may not ALTER the table (not its owner) runs on
 * without it, and such runs then stay 'running'. */
static int runs_raw_table_column(struct wh_pg *w, struct err *e)
{
    int there = 0;
    if (exists(w, "SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
               " AND attname = 'raw_table' AND NOT attisdropped", w->runs_q, &there, e) != 0) {
        return e->code;
    }
    if (!there) {
        buf_reset(&w->sql);
        if (buf_printf(&w->sql, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS raw_table text",
                       w->runs_q) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        struct err e2;
        if (pg_exec(w, w->sql.data, "adding column raw_table", &e2) != 0) {
            if (PQstatus(w->conn) != CONNECTION_OK) {
                *e = e2;
                return e->code;
            }
            log_warn("warehouse", "%s; runs that die stay 'running' in %s until its owner runs:"
                     " %s", e2.msg, w->runs_q, w->sql.data);
        }
        else {
            log_info("warehouse", "added column raw_table to %s", w->runs_q);
            there = 1;
        }
    }
    w->runs_raw_table = there;
    return 0;
}

int pg_ensure_schema(struct wh *base, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (pg_revive(w, 1, e) != 0) {
        return e->code;
    }
    if (pg_exec(w, "BEGIN", "BEGIN", e) != 0) {
        return e->code;
    }
    if (schema_steps(w, e) != 0 || pg_exec(w, "COMMIT", "COMMIT", e) != 0) {
        if (PQstatus(w->conn) == CONNECTION_OK) {
            PQclear(PQexec(w->conn, "ROLLBACK"));
        }
        return e->code;
    }
    /* A transformed table made with another local-time column name cannot
     * take our rows: say so now rather than fail on the first load. */
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "SELECT %s FROM %s LIMIT 0", w->local_q, w->tr_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct err e2;
    if (pg_exec(w, w->sql.data, "checking the local-time column", &e2) != 0) {
        if (PQstatus(w->conn) != CONNECTION_OK) {
            *e = e2;
            return e->code;
        }
        return err_set(e, ERR_WAREHOUSE, "transformed table %s has no column %s (was it "
                       "created with another DATAOPS_LOCAL_TIME_COLUMN?)", w->tr_q, w->local_q);
    }
    return runs_raw_table_column(w, e);
}

/* What ensure_schema and a run will need, checked without changing
 * anything: the schema (or the right to create it), each table (or the
 * right to create it) with SELECT, INSERT and UPDATE, and TEMP. */
int pg_check(struct wh *base, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    const char *v[2] = {w->schema, NULL};
    PGresult *res = NULL;
    if (pg_params(w, "SELECT n IS NOT NULL, has_schema_privilege(n, 'USAGE'),"
                  " has_schema_privilege(n, 'CREATE'),"
                  " has_database_privilege(current_database(), 'CREATE'),"
                  " has_database_privilege(current_database(), 'TEMP'),"
                  " current_user, current_database()"
                  " FROM (SELECT (SELECT oid FROM pg_namespace WHERE nspname = $1) AS n) s",
                  1, v, "checking privileges", &res, e) != 0) {
        return e->code;
    }
    char user[80], db[80];
    snprintf(user, sizeof(user), "%s", PQgetvalue(res, 0, 5));
    snprintf(db, sizeof(db), "%s", PQgetvalue(res, 0, 6));
    int schema = PQgetvalue(res, 0, 0)[0] == 't';
    int usage = PQgetvalue(res, 0, 1)[0] == 't';
    int create = schema ? PQgetvalue(res, 0, 2)[0] == 't' : PQgetvalue(res, 0, 3)[0] == 't';
    int temp = PQgetvalue(res, 0, 4)[0] == 't';
    PQclear(res);
    if (!schema && !create) {
        return err_set(e, ERR_WAREHOUSE, "schema %s does not exist and role %s may not create "
                       "it (no CREATE on database %s)", w->schema_q, user, db);
    }
    if (schema && !usage) {
        return err_set(e, ERR_WAREHOUSE, "role %s lacks USAGE on schema %s", user,
                       w->schema_q);
    }
    if (!temp) {
        return err_set(e, ERR_WAREHOUSE, "role %s lacks TEMPORARY on database %s (needed for "
                       "the staging tables)", user, db);
    }
    /* The planner's ranges are also deleted (a transform marker, once done). */
    const char *tables[6] = {w->raw_q, w->tr_q, w->quar_q, w->runs_q, w->pairs_q, w->ranges_q};
    for (int i = 0; i < 6; i++) {
        v[0] = tables[i];
        if (pg_params(w, "SELECT c IS NOT NULL, has_table_privilege(c, 'SELECT'),"
                      " has_table_privilege(c, 'INSERT'), has_table_privilege(c, 'UPDATE'),"
                      " has_table_privilege(c, 'DELETE')"
                      " FROM (SELECT to_regclass($1)::oid AS c) s", 1, v,
                      "checking privileges", &res, e) != 0) {
            return e->code;
        }
        int there = PQgetvalue(res, 0, 0)[0] == 't';
        int ok = PQgetvalue(res, 0, 1)[0] == 't' && PQgetvalue(res, 0, 2)[0] == 't' &&
                 PQgetvalue(res, 0, 3)[0] == 't' &&
                 (tables[i] != w->ranges_q || PQgetvalue(res, 0, 4)[0] == 't');
        PQclear(res);
        if (!there && !create) {
            return err_set(e, ERR_WAREHOUSE, "table %s does not exist and role %s may not "
                           "create it (no CREATE on schema %s)", tables[i], user, w->schema_q);
        }
        if (there && !ok) {
            return err_set(e, ERR_WAREHOUSE, "role %s needs SELECT, INSERT%s on %s",
                           user, tables[i] == w->ranges_q ? ", UPDATE and DELETE" : " and UPDATE",
                           tables[i]);
        }
    }
    return 0;
}

/* --- reads --- */

/* The newest open_time of the pair in a table, on the connection as it is
 * (inside a transaction a lost connection must fail the batch, not be
 * revived). */
static int newest(struct wh_pg *w, enum wh_table t, const char *symbol, const char *interval,
                  int64_t *open_time, int *found, struct err *e)
{
    buf_reset(&w->sql);
    int rc = t == WH_RAW
        ? buf_printf(&w->sql, "SELECT max(open_time) FROM %s"
                     " WHERE symbol = $1 AND \"interval\" = $2", w->raw_q)
        : buf_printf(&w->sql, "SELECT (extract(epoch FROM max(open_time)) * 1000)::bigint"
                     " FROM %s WHERE symbol = $1 AND \"interval\" = $2", w->tr_q);
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    const char *v[2] = {symbol, interval};
    PGresult *res = NULL;
    if (pg_params(w, w->sql.data, 2, v, "reading the watermark", &res, e) != 0) {
        return e->code;
    }
    *found = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    if (*found) {
        *open_time = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return 0;
}

int pg_watermark(struct wh *base, enum wh_table t, const char *symbol, const char *interval,
                 int64_t *open_time, int *found, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (pg_revive(w, 1, e) != 0) {
        return e->code;
    }
    return newest(w, t, symbol, interval, open_time, found, e);
}

static int copy_str(struct kline *k, int slot, const PGresult *res, int row, int col)
{
    int n = PQgetlength(res, row, col);
    if (n >= KLINE_STR_MAX) {
        return -1;
    }
    memcpy(k->s[slot], PQgetvalue(res, row, col), (size_t)n);
    k->s[slot][n] = '\0';
    k->len[slot] = (uint8_t)n;
    return 0;
}

int pg_scan_raw(struct wh *base, const char *symbol, const char *interval, int64_t after,
                struct kline_batch *out, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "SELECT open_time, \"open\", high, low, \"close\", volume,"
                   " close_time, quote_asset_volume, number_of_trades,"
                   " taker_buy_base_asset_volume, taker_buy_quote_asset_volume, \"ignore\","
                   " to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.MS') FROM %s"
                   " WHERE symbol = $1 AND \"interval\" = $2 AND open_time > $3"
                   " ORDER BY open_time LIMIT $4", w->raw_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    char a[24], lim[24];
    snprintf(a, sizeof(a), "%" PRId64, after);
    snprintf(lim, sizeof(lim), "%zu", out->cap - out->n);
    const char *v[4] = {symbol, interval, a, lim};
    PGresult *res = NULL;
    if (pg_params(w, w->sql.data, 4, v, "reading the raw table", &res, e) != 0) {
        return e->code;
    }
    static const int slot[] = {-1, KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, -1,
                               KS_QUOTE_VOLUME, -1, KS_TAKER_BASE, KS_TAKER_QUOTE, KS_IGNORE};
    int rows = PQntuples(res);
    int rc = 0;
    for (int i = 0; i < rows && rc == 0; i++) {
        struct kline *k = kline_batch_push(out);
        if (!k) {
            break;
        }
        k->open_time = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        k->close_time = strtoll(PQgetvalue(res, i, 6), NULL, 10);
        k->trades = strtoll(PQgetvalue(res, i, 8), NULL, 10);
        for (int c = 1; c <= 11 && rc == 0; c++) {
            if (slot[c] >= 0 && copy_str(k, slot[c], res, i, c) != 0) {
                rc = err_set(e, ERR_WAREHOUSE, "raw table %s: %s %s row %" PRId64 " holds a "
                             "value longer than %d bytes in column %d", w->raw_q, symbol,
                             interval, k->open_time, KLINE_STR_MAX - 1, c + 1);
            }
        }
        snprintf(k->updated_at, sizeof(k->updated_at), "%s", PQgetvalue(res, i, 12));
    }
    PQclear(res);
    return rc;
}

/* --- loads --- */

int pg_copy_sql(struct wh_pg *w, enum pg_stage st, int straight, struct buf *out)
{
    if (!straight) {
        return buf_puts(out, st == PG_STAGE_RAW ? "COPY pg_temp.dataops_stage_raw FROM STDIN"
                                                : "COPY pg_temp.dataops_stage_t FROM STDIN");
    }
    /* The staging tables' column order, named. */
    return st == PG_STAGE_RAW
        ? buf_printf(out, "COPY %s (" RAW_COLS ", symbol, \"interval\") FROM STDIN", w->raw_q)
        : buf_printf(out, "COPY %s (" RAW_COLS ", %s, symbol, \"interval\") FROM STDIN",
                     w->tr_q, w->local_q);
}

/*
 * Where the rows [first .. last] of a put go (enum pg_route).  Straight in
 * only while every row sent straight in this transaction is of one pair
 * and ascending, and the first came after the table's newest row: then no
 * row can meet one already there.  The pipeline sends each pair's rows in
 * ascending order, one pair per batch; anything else is staged and merged.
 */
static int route_rows(struct wh_pg *w, enum pg_stage st, const char *symbol,
                      const char *interval, int64_t first, int64_t last, int *straight,
                      struct err *e)
{
    char pair[48];
    snprintf(pair, sizeof(pair), "%s/%s", symbol, interval);
    if (w->route[st] == PG_ROUTE_UNDECIDED) {
        int64_t top = 0;
        int found = 0;
        if (newest(w, st == PG_STAGE_RAW ? WH_RAW : WH_TRANSFORMED, symbol, interval, &top,
                   &found, e) != 0) {
            return e->code;
        }
        w->route[st] = !found || first > top ? PG_ROUTE_STRAIGHT : PG_ROUTE_STAGED;
        snprintf(w->straight_pair[st], sizeof(w->straight_pair[st]), "%s", pair);
        w->straight_hi[st] = INT64_MIN;
    }
    if (w->route[st] == PG_ROUTE_STRAIGHT &&
        (strcmp(pair, w->straight_pair[st]) != 0 || first <= w->straight_hi[st] ||
         last < first)) {
        w->route[st] = PG_ROUTE_STAGED;
    }
    *straight = w->route[st] == PG_ROUTE_STRAIGHT;
    if (*straight) {
        w->straight_hi[st] = last;
    }
    return 0;
}

static int put_i64(struct buf *b, int64_t v)
{
    return buf_printf(b, "\t%" PRId64, v);
}

/* A UTC datetime text as timestamptz input, whatever the session's zone. */
static int put_utc(struct buf *b, const char *t)
{
    int rc = pg_copy_field(b, t, strlen(t), 0);
    return rc ? rc : buf_puts(b, "+00");
}

static int put_f64(struct buf *b, double v)
{
    /* %.17g round-trips every double through float8in. */
    return buf_printf(b, "\t%.17g", v);
}

static int load_failed(int rc, const char *what, int64_t open_time, struct err *e)
{
    if (rc == -2) {
        return err_set(e, ERR_INVALID, "the %s row with open_time %" PRId64 " has a text "
                       "field that is not valid UTF-8, which PostgreSQL cannot store", what,
                       open_time);
    }
    return err_set(e, ERR_NOMEM, "out of memory formatting the %s COPY data", what);
}

int pg_put_raw(struct wh *base, const char *symbol, const char *interval,
               const struct kline_batch *b, const char *updated_at, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (!w->in_txn) {
        return err_set(e, ERR_WAREHOUSE, "raw rows put outside a transaction");
    }
    if (b->n == 0) {
        return 0;
    }
    int straight = 0;
    if (route_rows(w, PG_STAGE_RAW, symbol, interval, b->rows[0].open_time,
                   b->rows[b->n - 1].open_time, &straight, e) != 0 ||
        pg_copy_begin(w, PG_STAGE_RAW, straight, e) != 0) {
        return e->code;
    }
    struct buf *c = &w->copy;
    buf_reset(c);
    size_t ul = strlen(updated_at), sl = strlen(symbol), il = strlen(interval);
    for (size_t i = 0; i < b->n; i++) {
        const struct kline *k = &b->rows[i];
        char dt[24];
        time_format_sql(k->open_time, dt);
        int rc = pg_copy_field(c, dt, 23, 1);
        rc = rc ? rc : put_i64(c, k->open_time);
        for (int f = KS_OPEN; f <= KS_VOLUME && rc == 0; f++) {
            rc = pg_copy_field(c, k->s[f], k->len[f], 0);
        }
        rc = rc ? rc : put_i64(c, k->close_time);
        rc = rc ? rc : pg_copy_field(c, k->s[KS_QUOTE_VOLUME], k->len[KS_QUOTE_VOLUME], 0);
        rc = rc ? rc : put_i64(c, k->trades);
        for (int f = KS_TAKER_BASE; f <= KS_IGNORE && rc == 0; f++) {
            rc = pg_copy_field(c, k->s[f], k->len[f], 0);
        }
        rc = rc ? rc : pg_copy_field(c, updated_at, ul, 0);
        rc = rc ? rc : pg_copy_field(c, symbol, sl, 0);
        rc = rc ? rc : pg_copy_field(c, interval, il, 0);
        rc = rc ? rc : buf_putc(c, '\n');
        if (rc != 0) {
            return load_failed(rc, "raw", k->open_time, e);
        }
    }
    if (pg_copy_send(w, c->data, c->len, e) != 0) {
        return e->code;
    }
    if (straight) {
        w->straight_rows[PG_STAGE_RAW] += (long long)b->n;
    }
    else {
        w->staged[PG_STAGE_RAW] += (int)b->n;
    }
    return 0;
}

int pg_put_transformed(struct wh *base, const char *symbol, const char *interval,
                       const struct tkline_batch *b, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (!w->in_txn) {
        return err_set(e, ERR_WAREHOUSE, "transformed rows put outside a transaction");
    }
    if (b->n == 0) {
        return 0;
    }
    int straight = 0;
    if (route_rows(w, PG_STAGE_T, symbol, interval, b->rows[0].open_time,
                   b->rows[b->n - 1].open_time, &straight, e) != 0 ||
        pg_copy_begin(w, PG_STAGE_T, straight, e) != 0) {
        return e->code;
    }
    struct buf *c = &w->copy;
    buf_reset(c);
    size_t sl = strlen(symbol), il = strlen(interval);
    for (size_t i = 0; i < b->n; i++) {
        const struct tkline *t = &b->rows[i];
        int rc = pg_copy_field(c, t->utc_datetime, strlen(t->utc_datetime), 1);
        rc = rc ? rc : buf_puts(c, "+00");
        rc = rc ? rc : put_utc(c, t->open_dt);
        for (int f = TN_OPEN; f <= TN_VOLUME && rc == 0; f++) {
            rc = put_f64(c, t->v[f]);
        }
        rc = rc ? rc : put_utc(c, t->close_dt);
        rc = rc ? rc : put_f64(c, t->v[TN_QUOTE_VOLUME]);
        rc = rc ? rc : put_i64(c, t->trades);
        rc = rc ? rc : put_f64(c, t->v[TN_TAKER_BASE]);
        rc = rc ? rc : put_f64(c, t->v[TN_TAKER_QUOTE]);
        rc = rc ? rc : pg_copy_field(c, t->ignore, strlen(t->ignore), 0);
        rc = rc ? rc : put_utc(c, t->updated_at);
        /* The wall-clock part; a timestamp column would ignore the offset. */
        rc = rc ? rc : pg_copy_field(c, t->local_dt, strnlen(t->local_dt, 23), 0);
        rc = rc ? rc : pg_copy_field(c, symbol, sl, 0);
        rc = rc ? rc : pg_copy_field(c, interval, il, 0);
        rc = rc ? rc : buf_putc(c, '\n');
        if (rc != 0) {
            return load_failed(rc, "transformed", t->open_time, e);
        }
    }
    if (pg_copy_send(w, c->data, c->len, e) != 0) {
        return e->code;
    }
    if (straight) {
        w->straight_rows[PG_STAGE_T] += (long long)b->n;
    }
    else {
        w->staged[PG_STAGE_T] += (int)b->n;
    }
    return 0;
}

int pg_upsert_staged(struct wh_pg *w, enum pg_stage st, struct err *e)
{
    struct buf *q = &w->sql;
    buf_reset(q);
    int rc;
    if (st == PG_STAGE_RAW) {
        rc = buf_printf(q, "%s; INSERT INTO %s AS t (" RAW_COLS ", symbol, \"interval\")"
                        " SELECT " RAW_COLS ", symbol, \"interval\""
                        " FROM pg_temp.dataops_stage_raw" UPDATE_SET DIFFERS
                        "; TRUNCATE pg_temp.dataops_stage_raw", w->restore_timeout, w->raw_q);
    }
    else {
        rc = buf_printf(q, "%s; INSERT INTO %s AS t (" RAW_COLS ", %s, symbol, \"interval\")"
                        " SELECT " RAW_COLS ", local_time, symbol, \"interval\""
                        " FROM pg_temp.dataops_stage_t" UPDATE_SET ", %s = excluded.%s"
                        DIFFERS "; TRUNCATE pg_temp.dataops_stage_t", w->restore_timeout,
                        w->tr_q, w->local_q, w->local_q, w->local_q);
    }
    if (rc != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (pg_exec(w, q->data, st == PG_STAGE_RAW ? "the raw upsert" : "the transformed upsert",
                e) != 0) {
        return e->code;
    }
    log_debug("warehouse", "%d %s rows upserted", w->staged[st],
              st == PG_STAGE_RAW ? "raw" : "transformed");
    w->staged[st] = 0;
    return 0;
}

/* Text for a text or json parameter: as it is when it is valid UTF-8,
 * else a copy with the other bytes as '?' (*tmp is the caller's to free). */
static const char *utf8_text(const char *s, char **tmp)
{
    *tmp = NULL;
    if (!s || pg_utf8_valid(s, strlen(s))) {
        return s;
    }
    *tmp = strdup(s);
    if (!*tmp) {
        return "?";
    }
    for (unsigned char *p = (unsigned char *)*tmp; *p; p++) {
        if (*p >= 0x80) {
            *p = '?';
        }
    }
    return *tmp;
}

int pg_put_quarantine(struct wh *base, const char *run_id, const char *stage,
                      const char *symbol, const char *interval, int64_t open_time,
                      const char *reason, const char *row_json, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "INSERT INTO %s (run_id, stage, symbol, \"interval\", open_time,"
                   " reason, row_json) VALUES ($1, $2, $3, $4, $5, $6, $7)", w->quar_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    char ot[24];
    snprintf(ot, sizeof(ot), "%" PRId64, open_time);
    char *t1, *t2;
    const char *v[7] = {run_id, stage, symbol, interval, ot, utf8_text(reason, &t1),
                        utf8_text(row_json, &t2)};
    int rc = pg_params(w, w->sql.data, 7, v, "the quarantine insert", NULL, e);
    free(t1);
    free(t2);
    return rc;
}

/* --- the run record --- */

static const char *utc_or_null(int64_t ms, char out[32])
{
    if (ms <= 0) {
        return NULL;
    }
    time_format_sql(ms, out);
    memcpy(out + 23, "+00", 4);
    return out;
}

static int record_steps(struct wh_pg *w, const struct run *r, struct err *e)
{
    char started[32], ended[32], code[16];
    snprintf(code, sizeof(code), "%d", r->exit_code);
    char *t1 = NULL, *t2 = NULL;
    const char *error = r->error[0] ? utf8_text(r->error, &t1) : NULL;
    const char *v[10] = {r->run_id, r->git_commit, r->version, utf8_text(r->hostname, &t2),
                         utc_or_null(r->started_at, started), utc_or_null(r->ended_at, ended),
                         r->status, code, error, w->raw_table};
    int nv = w->runs_raw_table ? 10 : 9;
    buf_reset(&w->sql);
    int rc = buf_printf(&w->sql, "INSERT INTO %s (run_id, git_commit, version, hostname,"
                        " started_at, ended_at, status, exit_code, error%s)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9%s)"
                        " ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,"
                        " status = excluded.status, exit_code = excluded.exit_code,"
                        " error = excluded.error", w->runs_q, nv == 10 ? ", raw_table" : "",
                        nv == 10 ? ", $10" : "");
    rc = rc ? err_set(e, ERR_NOMEM, "out of memory")
            : pg_params(w, w->sql.data, nv, v, "recording the run", NULL, e);
    free(t1);
    free(t2);
    if (rc != 0) {
        return rc;
    }
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "INSERT INTO %s (run_id, symbol, \"interval\", range_start,"
                   " range_end, first_open, last_open, pages, rows_extracted, open_skipped,"
                   " rows_raw_loaded, rows_rejected, rows_transformed,"
                   " rows_transformed_rejected, short_candles, zero_trade, gaps,"
                   " missing_candles, status, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                   " $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                   " ON CONFLICT (run_id, symbol, \"interval\") DO UPDATE SET"
                   " range_start = excluded.range_start, range_end = excluded.range_end,"
                   " first_open = excluded.first_open, last_open = excluded.last_open,"
                   " pages = excluded.pages, rows_extracted = excluded.rows_extracted,"
                   " open_skipped = excluded.open_skipped,"
                   " rows_raw_loaded = excluded.rows_raw_loaded,"
                   " rows_rejected = excluded.rows_rejected,"
                   " rows_transformed = excluded.rows_transformed,"
                   " rows_transformed_rejected = excluded.rows_transformed_rejected,"
                   " short_candles = excluded.short_candles, zero_trade = excluded.zero_trade,"
                   " gaps = excluded.gaps, missing_candles = excluded.missing_candles,"
                   " status = excluded.status, error = excluded.error", w->pairs_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->npairs; i++) {
        const struct pair_stats *p = &r->pairs[i];
        const long long nums[15] = {
            (long long)p->range_start, (long long)p->range_end, (long long)p->first_open,
            (long long)p->last_open, p->pages, p->extracted, p->open_skipped, p->raw_loaded,
            p->rejected, p->transformed, p->transformed_rejected, p->short_candles,
            p->zero_trade, p->ngaps, p->missing_candles,
        };
        char num[15][24];
        const char *pv[20];
        pv[0] = r->run_id;
        pv[1] = p->symbol;
        pv[2] = p->iv->name;
        for (int k = 0; k < 15; k++) {
            snprintf(num[k], sizeof(num[k]), "%lld", nums[k]);
            pv[3 + k] = num[k];
        }
        pv[18] = p->status;
        char *t3 = NULL;
        pv[19] = p->error[0] ? utf8_text(p->error, &t3) : NULL;
        rc = pg_params(w, w->sql.data, 20, pv, "recording the run's pairs", NULL, e);
        free(t3);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int pg_record_run(struct wh *base, const struct run *r, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    /* The run's own record needs no lock: it is recorded even when the
     * lock was lost with the connection. */
    if (pg_revive(w, 0, e) != 0) {
        return e->code;
    }
    if (w->in_txn) {
        return err_set(e, ERR_WAREHOUSE, "the run is recorded outside a batch transaction");
    }
    if (pg_exec(w, "BEGIN", "BEGIN", e) != 0) {
        return e->code;
    }
    if (record_steps(w, r, e) != 0 || pg_exec(w, "COMMIT", "COMMIT", e) != 0) {
        if (PQstatus(w->conn) == CONNECTION_OK) {
            PQclear(PQexec(w->conn, "ROLLBACK"));
        }
        return e->code;
    }
    return 0;
}

/* The run lock is per (schema, raw table) while dataops_runs is per schema:
 * only the runs of this raw table are known to be dead.  Runs recorded
 * without a raw table (before the column) are left alone. */
int pg_abandon_dead_runs(struct wh *base, const char *run_id, int *n, char *ids, size_t idsz,
                         struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    *n = 0;
    ids[0] = '\0';
    if (!w->runs_raw_table) {
        return 0;
    }
    if (pg_revive(w, 1, e) != 0) {
        return e->code;
    }
    char error[200];
    wh_abandoned_error(error, sizeof(error), run_id);
    const char *v[3] = {run_id, w->raw_table, error};
    buf_reset(&w->sql);
    if (buf_printf(&w->sql, "WITH dead AS (UPDATE %s SET status = 'abandoned', exit_code = NULL,"
                   " error = $3 WHERE status = 'running' AND run_id <> $1 AND raw_table = $2"
                   " RETURNING run_id), pairs AS (UPDATE %s SET status = 'abandoned'"
                   " WHERE status = 'pending' AND run_id IN (SELECT run_id FROM dead))"
                   " SELECT run_id FROM dead ORDER BY run_id", w->runs_q, w->pairs_q) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    PGresult *res = NULL;
    if (pg_params(w, w->sql.data, 3, v, "marking abandoned runs", &res, e) != 0) {
        return e->code;
    }
    *n = PQntuples(res);
    for (int i = 0; i < *n; i++) {
        wh_note_id(ids, idsz, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return 0;
}
