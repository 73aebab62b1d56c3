/*
 * wh_bq.c - the warehouse in Google BigQuery (bigquery://PROJECT_ID).
 *
 * The tables are the original's (RawSchema, TransformedSchema) plus symbol
 * and interval, partitioned by day on utc_datetime and clustered on
 * (symbol, interval), so a watermark query reads the blocks of one pair and
 * a MERGE prunes to the days of its batch.  The transformed values are
 * computed in C by the pipeline (transform.c, tz.c) exactly as for SQLite;
 * this backend only loads rows, so the two warehouses agree by construction.
 *
 * Exactly once, where the original appended (WRITE_APPEND) and duplicated
 * rows on every rerun:
 *   1. put_* spool the batch as the lake's CSV (csv.c) into a temporary
 *      file, quarantined rows as JSON lines;
 *   2. commit(lake_uri) creates a staging table (expiring in a day) and
 *      loads it with one load job: from the lake object itself when it is a
 *      gs:// URI, else from the spool by a media upload (wh_bq_upload.c);
 *      the rows the job reports must be the rows we put;
 *   3. one script job, BEGIN TRANSACTION; MERGE the staging table into the
 *      target on (symbol, interval, open_time), updating a row only when a
 *      value differs; INSERT the quarantined rows; COMMIT TRANSACTION, so a
 *      batch and its quarantine become visible together or not at all;
 *   4. the staging tables are deleted (best effort; they expire anyway).
 * Job ids are dataops_<run id>_<batch number>_<what>: a request repeated
 * after a lost answer meets 409 and adopts the job it already created
 * (wh_bq_api.c), and a run killed anywhere is completed by the next run,
 * whose MERGE leaves the rows already merged untouched.
 *
 * The run lock: BigQuery has no advisory lock, so a row of dataops_locks
 * holds a lease.  lock() takes it with one UPDATE ... WHERE the lease is
 * free or ours (BigQuery serialises mutating DML on a table, and
 * numDmlAffectedRows says whether we won); the lease lasts 10 minutes, is
 * renewed at every commit once a third of it has passed, and is released
 * by close().  A killed run blocks the next one until its lease ends.
 */
#include "load/wh.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/config.h"
#include "load/csv.h"
#include "load/wh_bq.h"
#include "util/failpoint.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define LEASE_MS (10 * MS_PER_MIN)
#define LOCK_POLL_MS 5000

/* === schemas ============================================================= */

static const char *const raw_types[KLINE_NCOLS] = {
    "DATETIME", "INT64", "STRING", "STRING", "STRING", "STRING", "STRING", "INT64",
    "STRING", "INT64", "STRING", "STRING", "STRING", "DATETIME",
};
static const char *const tr_types[KLINE_NCOLS] = {
    "DATETIME", "DATETIME", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64",
    "DATETIME", "FLOAT64", "INT64", "FLOAT64", "FLOAT64", "STRING", "DATETIME",
};
const char *const wh_bq_meta_name[MT__COUNT] = {"dataops_quarantine", "dataops_runs",
                                               "dataops_run_pairs", "dataops_locks",
                                               "dataops_ranges"};

const struct wh_bq_col wh_bq_quarantine_cols[8] = {
    {"run_id", "STRING"}, {"stage", "STRING"}, {"symbol", "STRING"}, {"interval", "STRING"},
    {"open_time", "INT64"}, {"reason", "STRING"}, {"row_json", "STRING"},
    {"created_at", "DATETIME"},
};
static const struct wh_bq_col runs_cols[] = {
    {"run_id", "STRING"}, {"git_commit", "STRING"}, {"version", "STRING"},
    {"hostname", "STRING"}, {"started_at", "DATETIME"}, {"ended_at", "DATETIME"},
    {"status", "STRING"}, {"exit_code", "INT64"}, {"error", "STRING"},
    {"raw_table", "STRING"},    /* added later: tables made before lack it */
};
const struct wh_bq_col wh_bq_pairs_cols[20] = {
    {"run_id", "STRING"}, {"symbol", "STRING"}, {"interval", "STRING"},
    {"range_start", "INT64"}, {"range_end", "INT64"}, {"first_open", "INT64"},
    {"last_open", "INT64"}, {"pages", "INT64"}, {"rows_extracted", "INT64"},
    {"open_skipped", "INT64"}, {"rows_raw_loaded", "INT64"}, {"rows_rejected", "INT64"},
    {"rows_transformed", "INT64"}, {"rows_transformed_rejected", "INT64"},
    {"short_candles", "INT64"}, {"zero_trade", "INT64"}, {"gaps", "INT64"},
    {"missing_candles", "INT64"}, {"status", "STRING"}, {"error", "STRING"},
};
static const struct wh_bq_col ranges_cols[] = {
    {"kind", "STRING"}, {"symbol", "STRING"}, {"interval", "STRING"},
    {"range_from", "INT64"}, {"range_to", "INT64"}, {"run_id", "STRING"},
    {"recorded_at", "DATETIME"},
};
static const struct wh_bq_col locks_cols[] = {
    {"name", "STRING"}, {"holder", "STRING"}, {"host", "STRING"}, {"acquired_ms", "INT64"},
    {"expires_ms", "INT64"},
};

/* The columns of a kline table in load order; the staging table of the
 * transformed rows keeps the local time as the lake's text (with offset). */
size_t wh_bq_kline_cols(const struct wh_bq *w, int t, int staging, struct wh_bq_col *out)
{
    const char *const *types = t == WH_RAW ? raw_types : tr_types;
    size_t n = 0;
    for (int i = 0; i < KLINE_NCOLS; i++) {
        out[n++] = (struct wh_bq_col){kline_columns[i], types[i]};
    }
    if (t == WH_TRANSFORMED) {
        out[n++] = (struct wh_bq_col){w->local, staging ? "STRING" : "DATETIME"};
    }
    out[n++] = (struct wh_bq_col){"symbol", "STRING"};
    out[n++] = (struct wh_bq_col){"interval", "STRING"};
    return n;
}

cJSON *wh_bq_table_json(const struct wh_bq *w, const char *ds, const char *name,
                        const struct wh_bq_col *cols, size_t n, const char *partition,
                        int cluster, int64_t expires_ms, const char *description)
{
    cJSON *t = cJSON_CreateObject();
    cJSON *ref = cJSON_AddObjectToObject(t, "tableReference");
    cJSON_AddStringToObject(ref, "projectId", w->c.project);
    cJSON_AddStringToObject(ref, "datasetId", ds);
    cJSON_AddStringToObject(ref, "tableId", name);
    cJSON_AddStringToObject(t, "description", description);
    cJSON *fields = cJSON_AddArrayToObject(cJSON_AddObjectToObject(t, "schema"), "fields");
    for (size_t i = 0; i < n; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", cols[i].name);
        cJSON_AddStringToObject(f, "type", cols[i].type);
        /* NULLABLE where a value may be absent, as SQLite's NOT NULL says. */
        int nullable = !strcmp(cols[i].name, "error") || !strcmp(cols[i].name, "ended_at") ||
                       !strcmp(cols[i].name, "hostname") || !strcmp(cols[i].name, "row_json") ||
                       !strcmp(cols[i].name, "exit_code") ||
                       (cols == wh_bq_quarantine_cols && !strcmp(cols[i].name, "open_time")) ||
                       cols == wh_bq_pairs_cols;
        cJSON_AddStringToObject(f, "mode", nullable ? "NULLABLE" : "REQUIRED");
        cJSON_AddItemToArray(fields, f);
    }
    if (partition) {
        cJSON *p = cJSON_AddObjectToObject(t, "timePartitioning");
        cJSON_AddStringToObject(p, "type", "DAY");
        cJSON_AddStringToObject(p, "field", partition);
    }
    if (cluster) {
        cJSON *cl = cJSON_AddArrayToObject(cJSON_AddObjectToObject(t, "clustering"), "fields");
        cJSON_AddItemToArray(cl, cJSON_CreateString("symbol"));
        cJSON_AddItemToArray(cl, cJSON_CreateString("interval"));
    }
    if (expires_ms > 0) {
        char when[32];
        snprintf(when, sizeof(when), "%" PRId64, expires_ms);
        cJSON_AddStringToObject(t, "expirationTime", when);
    }
    return t;
}

/* An existing table must have our columns with our types. */
static int check_columns(const cJSON *table, const char *ref, const struct wh_bq_col *cols,
                         size_t n, struct err *e)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(table, "schema"), "fields");
    for (size_t i = 0; i < n; i++) {
        const cJSON *f;
        const char *type = NULL;
        cJSON_ArrayForEach(f, fields) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(f, "type");
            if (cJSON_IsString(nm) && strcasecmp(nm->valuestring, cols[i].name) == 0) {
                type = cJSON_IsString(ty) ? ty->valuestring : "?";
            }
        }
        if (!type) {
            return err_set(e, ERR_WAREHOUSE, "table %s has no column %s (%s; see docs/gcp.md, "
                           "\"Tables of the Python original\")", ref, cols[i].name,
                           strcmp(cols[i].name, "symbol") == 0 ||
                           strcmp(cols[i].name, "interval") == 0
                               ? "a table made by the Python original: add symbol and interval"
                               : "was it created with another DATAOPS_LOCAL_TIME_COLUMN?");
        }
        /* The legacy names INTEGER and FLOAT are the same types. */
        int same = strcmp(type, cols[i].type) == 0 ||
                   (!strcmp(type, "INTEGER") && !strcmp(cols[i].type, "INT64")) ||
                   (!strcmp(type, "FLOAT") && !strcmp(cols[i].type, "FLOAT64"));
        if (!same) {
            return err_set(e, ERR_WAREHOUSE, "table %s has column %s of type %s, expected %s",
                           ref, cols[i].name, type, cols[i].type);
        }
    }
    return 0;
}

static int ensure_table(struct wh_bq *w, const char *ds, const char *name,
                        const struct wh_bq_col *cols, size_t n, const char *partition,
                        int cluster, const char *description, struct err *e)
{
    cJSON *got = NULL;
    int found = 0;
    char ref[600];
    bq_table_ref(&w->c, ds, name, ref, sizeof(ref));
    int rc = bq_table_get(&w->c, ds, name, &got, &found, e);
    if (rc == 0 && found) {
        rc = check_columns(got, ref, cols, n, e);
    }
    else if (rc == 0) {
        cJSON *t = wh_bq_table_json(w, ds, name, cols, n, partition, cluster, 0, description);
        int created = 0;
        rc = bq_table_insert(&w->c, ds, t, &created, e);
        cJSON_Delete(t);
        if (rc == 0 && created) {
            log_info("bigquery", "created table %s", ref);
        }
    }
    cJSON_Delete(got);
    return rc;
}

/*
 * dataops_runs names each run's raw table, the scope of its lock, since runs
 * that die are marked abandoned (wh_bq_abandon_dead_runs).  A table made
 * before gets the column by tables.patch; without the right to patch, runs
 * go on without it and those that die stay 'running'.
 */
static int ensure_runs_table(struct wh_bq *w, struct err *e)
{
    const char *ds = w->ds[WH_RAW];
    const char *name = wh_bq_meta_name[MT_RUNS];
    const size_t n = sizeof(runs_cols) / sizeof(runs_cols[0]);
    cJSON *got = NULL;
    int found = 0;
    char ref[600];
    bq_table_ref(&w->c, ds, name, ref, sizeof(ref));
    if (bq_table_get(&w->c, ds, name, &got, &found, e) != 0) {
        return e->code;
    }
    if (!found) {
        w->runs_raw_table = 1;
        return ensure_table(w, ds, name, runs_cols, n, NULL, 0, "pipeline-dataops: runs", e);
    }
    struct err missing;
    int rc = check_columns(got, ref, runs_cols, n - 1, e);
    if (rc == 0 && check_columns(got, ref, runs_cols + n - 1, 1, &missing) == 0) {
        w->runs_raw_table = 1;
    }
    else if (rc == 0) {
        cJSON *patch = cJSON_CreateObject();
        cJSON *fields = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(got, "schema"), "fields"), 1);
        cJSON *f = cJSON_CreateObject();
        if (!patch || !fields || !f) {
            cJSON_Delete(patch);
            cJSON_Delete(fields);
            cJSON_Delete(f);
            cJSON_Delete(got);
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        cJSON_AddStringToObject(f, "name", "raw_table");
        cJSON_AddStringToObject(f, "type", "STRING");
        cJSON_AddStringToObject(f, "mode", "NULLABLE");
        cJSON_AddItemToArray(fields, f);
        cJSON_AddItemToObject(cJSON_AddObjectToObject(patch, "schema"), "fields", fields);
        struct err e2;
        err_clear(&e2);
        if (bq_table_patch(&w->c, ds, name, patch, &e2) != 0) {
            log_warn("bigquery", "cannot add column raw_table to %s: %s; runs that die stay "
                     "'running' there until it is added", ref, e2.msg);
        }
        else {
            log_info("bigquery", "added column raw_table to %s", ref);
            w->runs_raw_table = 1;
        }
        cJSON_Delete(patch);
    }
    cJSON_Delete(got);
    return rc;
}

/* === open, close, lock =================================================== */

void wh_bq_spool_close(struct wh_bq_spool *s)
{
    if (s->f) {
        fclose(s->f);
    }
    s->f = NULL;
    s->rows = 0;
}

static int project_valid(const char *p)
{
    size_t n = strlen(p);
    if (n < 1 || n > 100) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
              ch == ':')) {
            return 0;
        }
    }
    return 1;
}

static int bq_open(const char *url, const struct wh_names *names, struct wh **out,
                   struct err *e)
{
    const struct config *cfg = names->cfg;
    const char *project = strncmp(url, "bigquery://", 11) == 0 ? url + 11 : "";
    if (!*project && cfg) {
        project = cfg->text[S_PROJECT_ID];
    }
    if (!*project) {
        return err_set(e, ERR_CONFIG, "the BigQuery warehouse needs a project: "
                       "bigquery://PROJECT_ID, or bigquery:// with PROJECT_ID set");
    }
    if (!project_valid(project)) {
        return err_set(e, ERR_CONFIG, "'%.100s' is not a Google Cloud project id (lower-case "
                       "letters, digits and hyphens)", project);
    }
    struct wh_bq *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &wh_bq_ops;
    w->cfg = cfg;
    w->kind = -1;
    buf_init(&w->tmp, 0);
    buf_init(&w->ranges_sql, 0);
    if (bq_init(&w->c, project, cfg, e) != 0) {
        free(w);
        return e->code;
    }
    snprintf(w->ds[WH_RAW], sizeof(w->ds[0]), "%s", names->raw_dataset);
    snprintf(w->ds[WH_TRANSFORMED], sizeof(w->ds[0]), "%s", names->transformed_dataset);
    snprintf(w->table[WH_RAW], sizeof(w->table[0]), "%s", names->raw_table);
    snprintf(w->table[WH_TRANSFORMED], sizeof(w->table[0]), "%s", names->transformed_table);
    snprintf(w->local, sizeof(w->local), "%s", names->local_time_column);
    for (int t = 0; t < 2; t++) {
        bq_table_ref(&w->c, w->ds[t], w->table[t], w->ref[t], sizeof(w->ref[t]));
    }
    /* The bookkeeping tables live in the raw dataset. */
    for (int m = 0; m < MT__COUNT; m++) {
        bq_table_ref(&w->c, w->ds[WH_RAW], wh_bq_meta_name[m], w->meta_ref[m],
                     sizeof(w->meta_ref[m]));
    }
    if (uuid_v4(w->session) != 0) {
        snprintf(w->session, sizeof(w->session), "%" PRId64, time_now_ms());
    }
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(w->holder, sizeof(w->holder), "%s pid %ld on %s", w->session, (long)getpid(), host);
    *out = &w->base;
    return 0;
}

const char *wh_bq_job_prefix(const struct wh_bq *w)
{
    return w->run_id[0] ? w->run_id : w->session;
}

static void lock_job_id(struct wh_bq *w, const char *what, char *out, size_t n)
{
    snprintf(out, n, "dataops_%s_%s_%u", w->session, what, ++w->jobs);
}

static int lock_dml(struct wh_bq *w, const char *sql, long long *affected, struct err *e)
{
    char id[128];
    char lease[24];
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(lease, sizeof(lease), "%lld", (long long)LEASE_MS);
    lock_job_id(w, "lock", id, sizeof(id));
    struct bq_param p[] = {
        {"name", "STRING", w->ref[WH_RAW]},
        {"holder", "STRING", w->holder},
        {"host", "STRING", host},
        {"lease_ms", "INT64", lease},
    };
    struct bq_job_stats st = {-1, -1, -1, -1};
    int rc = bq_query_job(&w->c, id, sql, p, 4, &st, e);
    if (rc == 0 && affected) {
        *affected = st.dml_rows;
    }
    return rc;
}

static int lease_update(struct wh_bq *w, int release, long long *affected, struct err *e)
{
    char sql[1200];
    snprintf(sql, sizeof(sql), release
             ? "UPDATE %s SET `holder` = '', `expires_ms` = 0"
               " WHERE `name` = @name AND `holder` = @holder"
             : "UPDATE %s SET `expires_ms` = UNIX_MILLIS(CURRENT_TIMESTAMP()) + @lease_ms"
               " WHERE `name` = @name AND `holder` = @holder",
             w->meta_ref[MT_LOCKS]);
    return lock_dml(w, sql, affected, e);
}

static int bq_lock(struct wh *base, long timeout_s, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char sql[2000];
    if (bq_ensure_dataset(&w->c, w->ds[WH_RAW], e) != 0 ||
        ensure_table(w, w->ds[WH_RAW], wh_bq_meta_name[MT_LOCKS], locks_cols, 5, NULL, 0,
                     "pipeline-dataops: run lock leases", e) != 0) {
        return e->code;
    }
    /* The lock row, once (concurrent first runs may both insert it: the
     * UPDATE below takes every copy at once, so that stays harmless). */
    snprintf(sql, sizeof(sql), "MERGE %s T USING (SELECT @name AS `name`) S ON T.`name` = S.`name`"
             " WHEN NOT MATCHED THEN INSERT (`name`, `holder`, `host`, `acquired_ms`,"
             " `expires_ms`) VALUES (S.`name`, '', '', 0, 0)", w->meta_ref[MT_LOCKS]);
    if (lock_dml(w, sql, NULL, e) != 0) {
        return e->code;
    }
    snprintf(sql, sizeof(sql), "UPDATE %s SET `holder` = @holder, `host` = @host,"
             " `acquired_ms` = UNIX_MILLIS(CURRENT_TIMESTAMP()),"
             " `expires_ms` = UNIX_MILLIS(CURRENT_TIMESTAMP()) + @lease_ms"
             " WHERE `name` = @name AND (`holder` = @holder OR"
             " `expires_ms` < UNIX_MILLIS(CURRENT_TIMESTAMP()))", w->meta_ref[MT_LOCKS]);
    int64_t deadline = time_monotonic_ms() + timeout_s * 1000;
    int waited = 0;
    for (;;) {
        long long won = 0;
        if (lock_dml(w, sql, &won, e) != 0) {
            return e->code;
        }
        if (won > 0) {
            w->locked = 1;
            w->renewed_ms = time_monotonic_ms();
            return 0;
        }
        char holder[200] = "another run";
        long long left = -1;
        struct bq_rows r;
        char q[800];
        snprintf(q, sizeof(q), "SELECT `holder`, `expires_ms` - UNIX_MILLIS(CURRENT_TIMESTAMP())"
                 " FROM %s WHERE `name` = @name ORDER BY `expires_ms` DESC LIMIT 1",
                 w->meta_ref[MT_LOCKS]);
        struct bq_param p = {"name", "STRING", w->ref[WH_RAW]};
        if (bq_query_rows(&w->c, q, &p, 1, 1, &r, e) == 0 && r.rows) {
            const cJSON *row = cJSON_GetArrayItem(r.rows, 0);
            snprintf(holder, sizeof(holder), "%s", bq_cell(row, 0) ? bq_cell(row, 0) : "?");
            left = bq_cell(row, 1) ? strtoll(bq_cell(row, 1), NULL, 10) / 1000 : -1;
        }
        bq_rows_free(&r);
        if (time_monotonic_ms() >= deadline) {
            return err_set(e, ERR_LOCKED, "another run holds the warehouse lock (row %s of %s, "
                           "held by %s, lease ends in %llds; waited %lds; raise "
                           "--lock-timeout to wait longer)", w->ref[WH_RAW],
                           w->meta_ref[MT_LOCKS], holder, left, timeout_s);
        }
        if (!waited) {
            log_info("warehouse", "%s holds the BigQuery run lock; waiting up to %lds", holder,
                     timeout_s);
            waited = 1;
        }
        if (interrupt_sleep_ms(LOCK_POLL_MS) != 0) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
        }
    }
}

/* Renew the lease once a third of it has passed; a lease lost to another
 * run (we stalled past its end) stops this run. */
int wh_bq_lock_renew(struct wh_bq *w, struct err *e)
{
    if (!w->locked || time_monotonic_ms() - w->renewed_ms < LEASE_MS / 3) {
        return 0;
    }
    long long kept = 0;
    if (lease_update(w, 0, &kept, e) != 0) {
        return e->code;
    }
    if (kept <= 0) {
        w->locked = 0;
        return err_set(e, ERR_LOCKED, "the BigQuery run lock (%s) was taken over by another "
                       "run after this run's lease ran out", w->meta_ref[MT_LOCKS]);
    }
    w->renewed_ms = time_monotonic_ms();
    return 0;
}

static void bq_close(struct wh *base)
{
    struct wh_bq *w = (struct wh_bq *)base;
    if (!w) {
        return;
    }
    if (w->locked) {
        struct err e;
        err_clear(&e);
        if (lease_update(w, 1, NULL, &e) != 0) {
            log_warn("warehouse", "cannot release the BigQuery run lock (it ends with its "
                     "lease): %s", e.msg);
        }
    }
    wh_bq_spool_close(&w->data);
    wh_bq_spool_close(&w->quar);
    bq_rows_free(&w->scan);
    buf_free(&w->tmp);
    buf_free(&w->ranges_sql);
    bq_free(&w->c);
    free(w);
}

static int bq_ensure_schema(struct wh *base, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    struct wh_bq_col cols[WH_BQ_NCOLS_MAX];
    if (bq_ensure_dataset(&w->c, w->ds[WH_RAW], e) != 0) {
        return e->code;
    }
    if (strcmp(w->ds[WH_RAW], w->ds[WH_TRANSFORMED]) != 0 &&
        bq_ensure_dataset(&w->c, w->ds[WH_TRANSFORMED], e) != 0) {
        return e->code;
    }
    for (int t = 0; t < 2; t++) {
        size_t n = wh_bq_kline_cols(w, t, 0, cols);
        if (ensure_table(w, w->ds[t], w->table[t], cols, n, "utc_datetime", 1,
                         t == WH_RAW ? "pipeline-dataops: raw Binance klines, exactly as sent"
                                     : "pipeline-dataops: typed Binance klines", e) != 0) {
            return e->code;
        }
    }
    if (ensure_table(w, w->ds[WH_RAW], wh_bq_meta_name[MT_QUARANTINE], wh_bq_quarantine_cols, 8,
                     "created_at", 1, "pipeline-dataops: rows that failed validation", e) ||
        ensure_runs_table(w, e) ||
        ensure_table(w, w->ds[WH_RAW], wh_bq_meta_name[MT_PAIRS], wh_bq_pairs_cols, 20, NULL, 0,
                     "pipeline-dataops: per (symbol, interval) figures of each run", e) ||
        ensure_table(w, w->ds[WH_RAW], wh_bq_meta_name[MT_RANGES], ranges_cols, 7, NULL, 1,
                     "pipeline-dataops: the backfill planner's ranges (known gaps, transform "
                     "markers, rejected candles)", e)) {
        return e->code;
    }
    return 0;
}

/* dataops check: the credentials work and both datasets exist; nothing is
 * created (tables that are missing are made by the first run). */
static int bq_check(struct wh *base, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    for (int t = 0; t < 2; t++) {
        if (t == WH_TRANSFORMED && strcmp(w->ds[WH_RAW], w->ds[WH_TRANSFORMED]) == 0) {
            break;
        }
        int found = 0;
        if (bq_dataset_exists(&w->c, w->ds[t], &found, e) != 0) {
            return e->code;
        }
        if (!found) {
            return err_set(e, ERR_CONFIG, "dataset %s:%s does not exist: create it (bq mk "
                           "--location=%s %s:%s) or let the first run create it, which needs "
                           "bigquery.datasets.create (roles/bigquery.user on the project)",
                           w->c.project, w->ds[t], w->c.location, w->c.project, w->ds[t]);
        }
    }
    return 0;
}

/* === reads =============================================================== */

static int bq_watermark(struct wh *base, enum wh_table t, const char *symbol,
                        const char *interval, int64_t *open_time, int *found, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char sql[900];
    snprintf(sql, sizeof(sql), "SELECT MAX(`open_time`) FROM %s WHERE `symbol` = @symbol AND"
             " `interval` = @interval", w->ref[t]);
    struct bq_param p[] = {{"symbol", "STRING", symbol}, {"interval", "STRING", interval}};
    struct bq_rows r;
    if (wh_bq_lock_renew(w, e) != 0) {
        return e->code;
    }
    int rc = bq_query_rows(&w->c, sql, p, 2, 1, &r, e);
    if (rc != 0) {
        bq_rows_free(&r);
        return rc;
    }
    const char *v = r.rows ? bq_cell(cJSON_GetArrayItem(r.rows, 0), 0) : NULL;
    *found = v != NULL;
    if (v) {
        char *end = NULL;
        int64_t ms = 0;
        int bad = t == WH_RAW ? (ms = strtoll(v, &end, 10), !end || *end) : bq_datetime_ms(v, &ms);
        if (bad) {
            rc = err_set(e, ERR_WAREHOUSE, "%s holds an unreadable open_time '%.40s'", w->ref[t],
                         v);
        }
        *open_time = ms;
    }
    bq_rows_free(&r);
    return rc;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]" -> the pipeline's "YYYY-MM-DD HH:MM:SS.mmm". */
static int sql_datetime(const char *v, char out[24])
{
    int64_t ms;
    if (bq_datetime_ms(v, &ms) != 0) {
        return -1;
    }
    time_format_sql(ms, out);
    return 0;
}

static void cell_str(const cJSON *row, int i, struct kline *k, int slot)
{
    const char *v = bq_cell(row, i);
    size_t n = v ? strlen(v) : 0;
    if (n >= KLINE_STR_MAX) {
        n = KLINE_STR_MAX - 1;
    }
    memcpy(k->s[slot], v ? v : "", n);
    k->s[slot][n] = '\0';
    k->len[slot] = (uint8_t)n;
}

static int scan_start(struct wh_bq *w, const char *symbol, const char *interval, int64_t after,
                      long want, struct err *e)
{
    char sql[1400];
    char after_s[24];
    char after_dt[24] = "";
    snprintf(after_s, sizeof(after_s), "%" PRId64, after);
    /* utc_datetime is open_time as a datetime: bounding it too prunes the
     * partitions before the watermark, so an incremental transform reads
     * the new days only. */
    int prune = after > 0;
    if (prune) {
        time_format_sql(after, after_dt);
    }
    snprintf(sql, sizeof(sql), "SELECT `open_time`, `open`, `high`, `low`, `close`, `volume`,"
             " `close_time`, `quote_asset_volume`, `number_of_trades`,"
             " `taker_buy_base_asset_volume`, `taker_buy_quote_asset_volume`, `ignore`,"
             " `updated_at` FROM %s WHERE `symbol` = @symbol AND `interval` = @interval AND"
             " `open_time` > @after%s ORDER BY `open_time`", w->ref[WH_RAW],
             prune ? " AND `utc_datetime` >= @after_dt" : "");
    struct bq_param p[] = {
        {"symbol", "STRING", symbol}, {"interval", "STRING", interval},
        {"after", "INT64", after_s}, {"after_dt", "DATETIME", after_dt},
    };
    bq_rows_free(&w->scan);
    w->scan_open = 0;
    int rc = bq_query_rows(&w->c, sql, p, prune ? 4 : 3, want, &w->scan, e);
    if (rc == 0) {
        w->scan_open = 1;
        snprintf(w->scan_pair, sizeof(w->scan_pair), "%s/%s", symbol, interval);
    }
    return rc;
}

static int bq_scan_raw(struct wh *base, const char *symbol, const char *interval, int64_t after,
                       struct kline_batch *out, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char pair[40];
    snprintf(pair, sizeof(pair), "%s/%s", symbol, interval);
    long want = (long)(out->cap - out->n);
    if (want <= 0) {
        return 0;
    }
    /* One query per transform stage, read page by page: the rows after
     * `after` are the rest of the open result when it continues from there. */
    if (!w->scan_open || strcmp(pair, w->scan_pair) != 0 || after != w->scan_last) {
        if (scan_start(w, symbol, interval, after, want, e) != 0) {
            return e->code;
        }
    }
    while (out->n < out->cap) {
        if (!w->scan.rows || w->scan.next >= cJSON_GetArraySize(w->scan.rows)) {
            if (!w->scan.page_token[0]) {
                break;
            }
            if (bq_rows_next(&w->c, &w->scan, (long)(out->cap - out->n), e) != 0) {
                w->scan_open = 0;
                return e->code;
            }
            continue;
        }
        const cJSON *row = cJSON_GetArrayItem(w->scan.rows, w->scan.next++);
        struct kline *k = kline_batch_push(out);
        const char *ot = bq_cell(row, 0);
        const char *ct = bq_cell(row, 6);
        const char *nt = bq_cell(row, 8);
        const char *up = bq_cell(row, 12);
        if (!ot || !ct || !nt || !up || sql_datetime(up, k->updated_at) != 0) {
            w->scan_open = 0;
            return err_set(e, ERR_WAREHOUSE, "%s: a raw row of %s %s has an unreadable value",
                           w->ref[WH_RAW], symbol, interval);
        }
        k->open_time = strtoll(ot, NULL, 10);
        k->close_time = strtoll(ct, NULL, 10);
        k->trades = strtoll(nt, NULL, 10);
        static const int slot[] = {KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME};
        for (int i = 0; i < 5; i++) {
            cell_str(row, 1 + i, k, slot[i]);
        }
        cell_str(row, 7, k, KS_QUOTE_VOLUME);
        cell_str(row, 9, k, KS_TAKER_BASE);
        cell_str(row, 10, k, KS_TAKER_QUOTE);
        cell_str(row, 11, k, KS_IGNORE);
        w->scan_last = k->open_time;
    }
    return 0;
}

/* === batches ============================================================= */

static int bq_begin(struct wh *base, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    wh_bq_spool_close(&w->data);
    wh_bq_spool_close(&w->quar);
    w->kind = -1;
    w->lo = INT64_MAX;
    w->hi = INT64_MIN;
    w->in_txn = 1;
    (void)e;
    return 0;
}

int wh_bq_spool_write(struct wh_bq_spool *s, const struct buf *b, struct err *e)
{
    if (!s->f && !(s->f = tmpfile())) {
        return err_set(e, ERR_IO, "cannot create a temporary file for the BigQuery load: %s",
                       strerror(errno));
    }
    if (b->len && fwrite(b->data, 1, b->len, s->f) != b->len) {
        return err_set(e, ERR_IO, "cannot write the BigQuery load spool: %s", strerror(errno));
    }
    return 0;
}

static int put_common(struct wh_bq *w, int t, const char *symbol, const char *interval,
                      int64_t first, int64_t last, struct err *e)
{
    if (w->kind >= 0 && (w->kind != t || strcmp(w->symbol, symbol) != 0 ||
                         strcmp(w->interval, interval) != 0)) {
        return err_set(e, ERR_WAREHOUSE, "one BigQuery batch takes the rows of one table and "
                       "one (symbol, interval)");
    }
    if (w->kind < 0) {
        w->kind = t;
        snprintf(w->symbol, sizeof(w->symbol), "%s", symbol);
        snprintf(w->interval, sizeof(w->interval), "%s", interval);
        buf_reset(&w->tmp);
        int rc = t == WH_RAW ? csv_raw_header(&w->tmp) : csv_transformed_header(&w->tmp, w->local);
        if (rc != 0 || wh_bq_spool_write(&w->data, &w->tmp, e) != 0) {
            return rc ? err_set(e, ERR_NOMEM, "out of memory") : e->code;
        }
    }
    w->lo = first < w->lo ? first : w->lo;
    w->hi = last > w->hi ? last : w->hi;
    return 0;
}

static int bq_put_raw(struct wh *base, const char *symbol, const char *interval,
                      const struct kline_batch *b, const char *updated_at, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    if (b->n == 0) {
        return 0;
    }
    if (put_common(w, WH_RAW, symbol, interval, b->rows[0].open_time,
                   b->rows[b->n - 1].open_time, e) != 0) {
        return e->code;
    }
    buf_reset(&w->tmp);
    if (csv_raw_rows(&w->tmp, b, symbol, interval, updated_at) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->data.rows += (long long)b->n;
    return wh_bq_spool_write(&w->data, &w->tmp, e);
}

static int bq_put_transformed(struct wh *base, const char *symbol, const char *interval,
                              const struct tkline_batch *b, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    if (b->n == 0) {
        return 0;
    }
    if (put_common(w, WH_TRANSFORMED, symbol, interval, b->rows[0].open_time,
                   b->rows[b->n - 1].open_time, e) != 0) {
        return e->code;
    }
    buf_reset(&w->tmp);
    if (csv_transformed_rows(&w->tmp, b, symbol, interval) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->data.rows += (long long)b->n;
    return wh_bq_spool_write(&w->data, &w->tmp, e);
}

static void json_field(struct buf *b, const char *key, const char *v, int last)
{
    buf_printf(b, "\"%s\":", key);
    if (v) {
        buf_putc(b, '"');
        buf_json_escape(b, v, strlen(v));
        buf_putc(b, '"');
    }
    else {
        buf_puts(b, "null");
    }
    buf_puts(b, last ? "}\n" : ",");
}

static int bq_put_quarantine(struct wh *base, const char *run_id, const char *stage,
                             const char *symbol, const char *interval, int64_t open_time,
                             const char *reason, const char *row_json, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char now[24];
    time_format_sql(time_now_ms(), now);
    buf_reset(&w->tmp);
    buf_putc(&w->tmp, '{');
    json_field(&w->tmp, "run_id", run_id, 0);
    json_field(&w->tmp, "stage", stage, 0);
    json_field(&w->tmp, "symbol", symbol, 0);
    json_field(&w->tmp, "interval", interval, 0);
    buf_printf(&w->tmp, "\"open_time\":%" PRId64 ",", open_time);
    json_field(&w->tmp, "reason", reason, 0);
    json_field(&w->tmp, "row_json", row_json, 0);
    json_field(&w->tmp, "created_at", now, 1);
    w->quar.rows++;
    return wh_bq_spool_write(&w->quar, &w->tmp, e);
}

const struct wh_ops wh_bq_ops = {
    .check = bq_check,
    .scheme = "bigquery",
    .open = bq_open,
    .lock = bq_lock,
    .ensure_schema = bq_ensure_schema,
    .watermark = bq_watermark,
    .begin = bq_begin,
    .put_raw = bq_put_raw,
    .put_transformed = bq_put_transformed,
    .put_quarantine = bq_put_quarantine,
    .commit = wh_bq_commit,
    .rollback = wh_bq_rollback,
    .scan_raw = bq_scan_raw,
    .record_run = wh_bq_record_run,
    .abandon_dead_runs = wh_bq_abandon_dead_runs,
    .close = bq_close,
    .holes = wh_bq_holes,
    .ranges = wh_bq_ranges,
    .range_put = wh_bq_range_put,
    .range_delete = wh_bq_range_delete,
};
