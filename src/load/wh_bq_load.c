/*
 * wh_bq_load.c - the end of a BigQuery batch (staging load, then one MERGE
 * script) and the run records: see the steps at the top of wh_bq.c.
 *
 * Names, all derived from the run id and the batch number so that a
 * repeated request finds the same job (and never runs a second one):
 *   staging tables  dataops_stg_<run id without dashes>_<n>_<raw|transformed|quarantine>
 *   load jobs       dataops_<run id>_<n>_<raw|transformed|quarantine>_load
 *   MERGE script    dataops_<run id>_<n>_<raw|transformed>_merge
 *   run records     dataops_<run id>_record_<k> (+ staging ..._runpairs)
 * A batch that only holds quarantined rows still gets a script (the INSERT
 * alone), so quarantine rows are never separated from their batch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "load/wh_bq.h"
#include "util/failpoint.h"
#include "util/log.h"
#include "util/timeutil.h"

#define STAGING_TTL_MS (24 * MS_PER_HOUR)

enum stage_kind { SK_RAW = 0, SK_TRANSFORMED, SK_QUARANTINE, SK_PAIRS };
static const char *const kind_name[] = {"raw", "transformed", "quarantine", "runpairs"};

static void staging_name(const struct wh_bq *w, unsigned n, int kind, char *out, size_t len)
{
    char id[40];
    size_t j = 0;
    for (const char *p = wh_bq_job_prefix(w); *p && j + 1 < sizeof(id); p++) {
        if (*p != '-') {
            id[j++] = *p;
        }
    }
    id[j] = '\0';
    snprintf(out, len, "dataops_stg_%s_%u_%s", id, n, kind_name[kind]);
}

/* The spool as a load job's media (the file, its size). */
static int spool_media(struct wh_bq_spool *s, struct bq_media *m, struct err *e)
{
    if (!s->f || fflush(s->f) != 0 || fseek(s->f, 0, SEEK_END) != 0) {
        return err_set(e, ERR_IO, "cannot read the BigQuery load spool: %s", strerror(errno));
    }
    m->f = s->f;
    m->size = ftell(s->f);
    if (m->size < 0) {
        return err_set(e, ERR_IO, "cannot read the BigQuery load spool: %s", strerror(errno));
    }
    return 0;
}

/*
 * Load one staging table: create it (expiring in a day), then one load job,
 * from the lake object gs_uri when given, else from the spool's bytes.  The
 * rows the job wrote must be the rows we put.
 */
static int stage(struct wh_bq *w, const char *ds, const char *table,
                 const struct wh_bq_col *cols, size_t ncols, int json, const char *gs_uri,
                 struct wh_bq_spool *sp, const char *job_id, struct err *e)
{
    cJSON *t = wh_bq_table_json(w, ds, table, cols, ncols, NULL, 0,
                                time_now_ms() + STAGING_TTL_MS,
                                "pipeline-dataops: staging of one batch (expires)");
    int created = 0;
    int rc = bq_table_insert(&w->c, ds, t, &created, e);
    cJSON_Delete(t);
    if (rc != 0) {
        return rc;
    }
    cJSON *conf = cJSON_CreateObject();
    cJSON *load = cJSON_AddObjectToObject(conf, "load");
    cJSON *dest = cJSON_AddObjectToObject(load, "destinationTable");
    cJSON_AddStringToObject(dest, "projectId", w->c.project);
    cJSON_AddStringToObject(dest, "datasetId", ds);
    cJSON_AddStringToObject(dest, "tableId", table);
    cJSON_AddStringToObject(load, "sourceFormat", json ? "NEWLINE_DELIMITED_JSON" : "CSV");
    if (!json) {
        cJSON_AddNumberToObject(load, "skipLeadingRows", 1);
    }
    cJSON_AddStringToObject(load, "writeDisposition", "WRITE_TRUNCATE");
    cJSON_AddStringToObject(load, "createDisposition", "CREATE_NEVER");
    cJSON_AddNumberToObject(load, "maxBadRecords", 0);
    cJSON_AddStringToObject(load, "encoding", "UTF-8");
    struct bq_media media = {NULL, 0};
    if (gs_uri) {
        cJSON *uris = cJSON_AddArrayToObject(load, "sourceUris");
        cJSON_AddItemToArray(uris, cJSON_CreateString(gs_uri));
    }
    else if ((rc = spool_media(sp, &media, e)) != 0) {
        goto out;
    }
    struct bq_job_stats st = {-1, -1, -1, -1};
    rc = bq_job_run(&w->c, job_id, conf, gs_uri ? NULL : &media, &st, e);
    if (rc == 0 && st.output_rows != sp->rows) {
        rc = err_set(e, ERR_WAREHOUSE, "BigQuery load job %s wrote %lld rows, the batch has "
                     "%lld (%s)", job_id, st.output_rows, sp->rows,
                     gs_uri ? gs_uri : "uploaded");
    }
out:
    cJSON_Delete(conf);
    return rc;
}

/* The MERGE of a staging table into its target on the key. */
static int merge_sql(const struct wh_bq *w, const char *stg_ref, struct buf *b)
{
    struct wh_bq_col cols[WH_BQ_NCOLS_MAX];
    size_t n = wh_bq_kline_cols(w, w->kind, 0, cols);
    const char *target = w->ref[w->kind];
    int rc = buf_printf(b, "MERGE %s T USING %s S ON T.`symbol` = S.`symbol` AND T.`interval` = "
                        "S.`interval` AND T.`open_time` = S.`open_time` AND T.`utc_datetime` "
                        "BETWEEN @lo AND @hi\nWHEN MATCHED AND (", target, stg_ref);
    /* Only a changed value updates a row, so a rerun leaves every row (and
     * its updated_at) as it was: open .. ignore, as SQLite's upsert. */
    for (int i = 2; i <= 12; i++) {
        rc |= buf_printf(b, "%sT.`%s` IS DISTINCT FROM S.`%s`", i > 2 ? " OR " : "",
                         cols[i].name, cols[i].name);
    }
    rc |= buf_puts(b, ") THEN UPDATE SET ");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const char *c = cols[i].name;
        if (!strcmp(c, "open_time") || !strcmp(c, "symbol") || !strcmp(c, "interval")) {
            continue;
        }
        rc |= buf_printf(b, "%s`%s` = ", first ? "" : ", ", c);
        first = 0;
        if (w->kind == WH_TRANSFORMED && i == KLINE_NCOLS) {
            rc |= buf_printf(b, "PARSE_DATETIME('%%Y-%%m-%%d %%H:%%M:%%E3S', SUBSTR(S.`%s`, 1, "
                             "23))", c);
        }
        else {
            rc |= buf_printf(b, "S.`%s`", c);
        }
    }
    rc |= buf_puts(b, "\nWHEN NOT MATCHED THEN INSERT (");
    for (size_t i = 0; i < n; i++) {
        rc |= buf_printf(b, "%s`%s`", i ? ", " : "", cols[i].name);
    }
    rc |= buf_puts(b, ") VALUES (");
    for (size_t i = 0; i < n; i++) {
        if (w->kind == WH_TRANSFORMED && i == KLINE_NCOLS) {
            rc |= buf_printf(b, "%sPARSE_DATETIME('%%Y-%%m-%%d %%H:%%M:%%E3S', SUBSTR(S.`%s`, "
                             "1, 23))", i ? ", " : "", cols[i].name);
        }
        else {
            rc |= buf_printf(b, "%sS.`%s`", i ? ", " : "", cols[i].name);
        }
    }
    rc |= buf_puts(b, ");\n");
    return rc ? -1 : 0;
}

static int insert_select_sql(const char *target, const char *from, const struct wh_bq_col *cols,
                             size_t n, struct buf *b)
{
    int rc = buf_printf(b, "INSERT INTO %s (", target);
    for (size_t i = 0; i < n; i++) {
        rc |= buf_printf(b, "%s`%s`", i ? ", " : "", cols[i].name);
    }
    rc |= buf_puts(b, ") SELECT ");
    for (size_t i = 0; i < n; i++) {
        rc |= buf_printf(b, "%s`%s`", i ? ", " : "", cols[i].name);
    }
    rc |= buf_printf(b, " FROM %s;\n", from);
    return rc ? -1 : 0;
}

static void end_batch(struct wh_bq *w)
{
    wh_bq_spool_close(&w->data);
    wh_bq_spool_close(&w->quar);
    buf_reset(&w->ranges_sql);
    w->in_txn = 0;
    w->kind = -1;
}

int wh_bq_commit(struct wh *base, const char *lake_uri, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    char stg[2][200] = {"", ""};
    char stg_ref[2][600];
    char job[300];
    struct buf sql;
    buf_init(&sql, 0);
    int rc = 0;
    unsigned n = ++w->seq;
    const char *prefix = wh_bq_job_prefix(w);
    int has_data = w->kind >= 0 && w->data.rows > 0;
    int has_quar = w->quar.rows > 0;
    int has_ranges = w->ranges_sql.len > 0;
    if (!has_data && !has_quar && !has_ranges) {
        goto out;
    }
    if ((rc = wh_bq_lock_renew(w, e)) != 0) {
        goto out;
    }
    if (has_data) {
        struct wh_bq_col cols[WH_BQ_NCOLS_MAX];
        size_t ncols = wh_bq_kline_cols(w, w->kind, 1, cols);
        int sk = w->kind == WH_RAW ? SK_RAW : SK_TRANSFORMED;
        const char *ds = w->ds[w->kind];
        /* The lake object holds exactly this batch's rows in this CSV
         * layout: BigQuery reads it from Cloud Storage, nothing is sent. */
        const char *gs = lake_uri && strncmp(lake_uri, "gs://", 5) == 0 ? lake_uri : NULL;
        staging_name(w, n, sk, stg[0], sizeof(stg[0]));
        bq_table_ref(&w->c, ds, stg[0], stg_ref[0], sizeof(stg_ref[0]));
        snprintf(job, sizeof(job), "dataops_%s_%u_%s_load", prefix, n, kind_name[sk]);
        if ((rc = stage(w, ds, stg[0], cols, ncols, 0, gs, &w->data, job, e)) != 0) {
            goto out;
        }
        log_info("bigquery", "staged %lld %s rows of %s %s in %s (job %s%s%s)", w->data.rows,
                 kind_name[sk], w->symbol, w->interval, stg[0], job, gs ? ", from " : "",
                 gs ? gs : "");
    }
    if (has_quar) {
        staging_name(w, n, SK_QUARANTINE, stg[1], sizeof(stg[1]));
        bq_table_ref(&w->c, w->ds[WH_RAW], stg[1], stg_ref[1], sizeof(stg_ref[1]));
        snprintf(job, sizeof(job), "dataops_%s_%u_%s_load", prefix, n, kind_name[SK_QUARANTINE]);
        if ((rc = stage(w, w->ds[WH_RAW], stg[1], wh_bq_quarantine_cols, 8, 1, NULL, &w->quar,
                        job, e)) != 0) {
            goto out;
        }
    }
    if ((rc = FAILPOINT("bq.staged", e)) != 0) {
        goto out;
    }
    /* One script, one transaction: the rows, their quarantine and the
     * planner's ranges that describe them (wh_bq_plan.c) together. */
    rc = buf_puts(&sql, "BEGIN TRANSACTION;\n");
    if (has_data) {
        rc |= merge_sql(w, stg_ref[0], &sql);
    }
    if (has_quar) {
        rc |= insert_select_sql(w->meta_ref[MT_QUARANTINE], stg_ref[1], wh_bq_quarantine_cols, 8,
                                &sql);
    }
    if (has_ranges) {
        rc |= buf_puts(&sql, w->ranges_sql.data);
    }
    rc |= buf_puts(&sql, "COMMIT TRANSACTION;\n");
    if (rc != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    char lo[24] = "1970-01-01 00:00:00.000";
    char hi[24] = "1970-01-01 00:00:00.000";
    if (has_data) {
        time_format_sql(w->lo, lo);
        time_format_sql(w->hi, hi);
    }
    struct bq_param p[] = {{"lo", "DATETIME", lo}, {"hi", "DATETIME", hi}};
    struct bq_job_stats st = {-1, -1, -1, -1};
    snprintf(job, sizeof(job), "dataops_%s_%u_%s_merge", prefix, n,
             has_data ? kind_name[w->kind == WH_RAW ? SK_RAW : SK_TRANSFORMED]
                      : has_quar ? "quarantine" : "ranges");
    if ((rc = bq_query_job(&w->c, job, sql.data, p, 2, &st, e)) != 0) {
        goto out;
    }
    char what[200] = "";
    if (has_data) {
        snprintf(what, sizeof(what), "%lld %s rows of %s %s and ", w->data.rows,
                 kind_name[w->kind], w->symbol, w->interval);
    }
    log_info("bigquery", "merged %s%lld quarantined%s (job %s: %lld bytes processed, %lld "
             "billed)", what, w->quar.rows, has_ranges ? ", with the planner's ranges" : "", job,
             st.bytes_processed, st.bytes_billed);
out:
    /* Best effort: a staging table that stays behind expires in a day. */
    if (stg[0][0]) {
        bq_table_delete(&w->c, w->ds[w->kind], stg[0]);
    }
    if (stg[1][0]) {
        bq_table_delete(&w->c, w->ds[WH_RAW], stg[1]);
    }
    buf_free(&sql);
    end_batch(w);
    return rc;
}

void wh_bq_rollback(struct wh *base)
{
    /* Nothing reached BigQuery before commit(): dropping the spools is the
     * whole rollback. */
    end_batch((struct wh_bq *)base);
}

/* === run records ========================================================= */

static void ndjson_i64(struct buf *b, const char *key, long long v)
{
    buf_printf(b, "\"%s\":%lld,", key, v);
}

static void ndjson_str(struct buf *b, const char *key, const char *v, int last)
{
    buf_printf(b, "\"%s\":", key);
    if (v && *v) {
        buf_putc(b, '"');
        buf_json_escape(b, v, strlen(v));
        buf_putc(b, '"');
    }
    else {
        buf_puts(b, "null");
    }
    buf_puts(b, last ? "}\n" : ",");
}

static int spool_pairs(struct wh_bq *w, const struct run *r, struct wh_bq_spool *sp,
                       struct err *e)
{
    for (size_t i = 0; i < r->npairs; i++) {
        const struct pair_stats *p = &r->pairs[i];
        buf_reset(&w->tmp);
        buf_putc(&w->tmp, '{');
        ndjson_str(&w->tmp, "run_id", r->run_id, 0);
        ndjson_str(&w->tmp, "symbol", p->symbol, 0);
        ndjson_str(&w->tmp, "interval", p->iv->name, 0);
        ndjson_i64(&w->tmp, "range_start", p->range_start);
        ndjson_i64(&w->tmp, "range_end", p->range_end);
        ndjson_i64(&w->tmp, "first_open", p->first_open);
        ndjson_i64(&w->tmp, "last_open", p->last_open);
        ndjson_i64(&w->tmp, "pages", p->pages);
        ndjson_i64(&w->tmp, "rows_extracted", p->extracted);
        ndjson_i64(&w->tmp, "open_skipped", p->open_skipped);
        ndjson_i64(&w->tmp, "rows_raw_loaded", p->raw_loaded);
        ndjson_i64(&w->tmp, "rows_rejected", p->rejected);
        ndjson_i64(&w->tmp, "rows_transformed", p->transformed);
        ndjson_i64(&w->tmp, "rows_transformed_rejected", p->transformed_rejected);
        ndjson_i64(&w->tmp, "short_candles", p->short_candles);
        ndjson_i64(&w->tmp, "zero_trade", p->zero_trade);
        ndjson_i64(&w->tmp, "gaps", p->ngaps);
        ndjson_i64(&w->tmp, "missing_candles", p->missing_candles);
        ndjson_str(&w->tmp, "status", p->status, 0);
        ndjson_str(&w->tmp, "error", p->error, 1);
        sp->rows++;
        if (wh_bq_spool_write(sp, &w->tmp, e) != 0) {
            return e->code;
        }
    }
    return 0;
}

int wh_bq_record_run(struct wh *base, const struct run *r, struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    struct wh_bq_spool pairs = {NULL, 0};
    struct buf sql;
    buf_init(&sql, 0);
    char stg[200] = "";
    char stg_ref[600];
    char job[300];
    int rc;
    if (!w->run_id[0]) {
        snprintf(w->run_id, sizeof(w->run_id), "%s", r->run_id);
    }
    unsigned k = ++w->records;
    if (r->npairs > 0) {
        if ((rc = spool_pairs(w, r, &pairs, e)) != 0) {
            goto out;
        }
        staging_name(w, k, SK_PAIRS, stg, sizeof(stg));
        bq_table_ref(&w->c, w->ds[WH_RAW], stg, stg_ref, sizeof(stg_ref));
        snprintf(job, sizeof(job), "dataops_%s_record_%u_load", r->run_id, k);
        if ((rc = stage(w, w->ds[WH_RAW], stg, wh_bq_pairs_cols, 20, 1, NULL, &pairs, job,
                        e)) != 0) {
            goto out;
        }
    }
    const int with_raw = w->runs_raw_table;
    rc = buf_printf(&sql, "BEGIN TRANSACTION;\nMERGE %s T USING (SELECT @run_id AS `run_id`, "
                    "@git_commit AS `git_commit`, @version AS `version`, @hostname AS "
                    "`hostname`, @started_at AS `started_at`, @ended_at AS `ended_at`, @status "
                    "AS `status`, @exit_code AS `exit_code`, @error AS `error`%s) S ON T.`run_id` "
                    "= S.`run_id`\nWHEN MATCHED THEN UPDATE SET `ended_at` = S.`ended_at`, "
                    "`status` = S.`status`, `exit_code` = S.`exit_code`, `error` = S.`error`\n"
                    "WHEN NOT MATCHED THEN INSERT (`run_id`, `git_commit`, `version`, "
                    "`hostname`, `started_at`, `ended_at`, `status`, `exit_code`, `error`%s) "
                    "VALUES (S.`run_id`, S.`git_commit`, S.`version`, S.`hostname`, "
                    "S.`started_at`, S.`ended_at`, S.`status`, S.`exit_code`, S.`error`%s);\n",
                    w->meta_ref[MT_RUNS], with_raw ? ", @raw_table AS `raw_table`" : "",
                    with_raw ? ", `raw_table`" : "", with_raw ? ", S.`raw_table`" : "");
    if (r->npairs > 0) {
        rc |= buf_printf(&sql, "DELETE FROM %s WHERE `run_id` = @run_id;\n",
                         w->meta_ref[MT_PAIRS]);
        rc |= insert_select_sql(w->meta_ref[MT_PAIRS], stg_ref, wh_bq_pairs_cols, 20, &sql);
    }
    rc |= buf_puts(&sql, "COMMIT TRANSACTION;\n");
    if (rc != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    char started[24];
    char ended[24];
    char code[16];
    time_format_sql(r->started_at, started);
    if (r->ended_at > 0) {
        time_format_sql(r->ended_at, ended);
    }
    snprintf(code, sizeof(code), "%d", r->exit_code);
    struct bq_param p[] = {
        {"run_id", "STRING", r->run_id},
        {"git_commit", "STRING", r->git_commit},
        {"version", "STRING", r->version},
        {"hostname", "STRING", r->hostname[0] ? r->hostname : NULL},
        {"started_at", "DATETIME", started},
        {"ended_at", "DATETIME", r->ended_at > 0 ? ended : NULL},
        {"status", "STRING", r->status},
        {"exit_code", "INT64", code},
        {"error", "STRING", r->error[0] ? r->error : NULL},
        {"raw_table", "STRING", w->table[WH_RAW]},
    };
    snprintf(job, sizeof(job), "dataops_%s_record_%u", r->run_id, k);
    rc = bq_query_job(&w->c, job, sql.data, p, with_raw ? 10 : 9, NULL, e);
out:
    if (stg[0]) {
        bq_table_delete(&w->c, w->ds[WH_RAW], stg);
    }
    wh_bq_spool_close(&pairs);
    buf_free(&sql);
    return rc;
}

struct dead_ctx {
    int *n;
    char *ids;
    size_t idsz;
};

static int dead_row(void *ctx, const cJSON *row, struct err *e)
{
    struct dead_ctx *x = ctx;
    const char *id = bq_cell(row, 0);
    (void)e;
    (*x->n)++;
    wh_note_id(x->ids, x->idsz, id ? id : "?");
    return 0;
}

/* The lock is a lease per raw table while dataops_runs is per raw dataset:
 * only the runs of this raw table are known to be dead.  Runs recorded
 * without a raw table (before the column) are left alone.  The lease
 * makes the set stable between the SELECT and the UPDATE; a run that
 * stalled past its lease and still records its end overwrites the mark. */
int wh_bq_abandon_dead_runs(struct wh *base, const char *run_id, int *n, char *ids, size_t idsz,
                            struct err *e)
{
    struct wh_bq *w = (struct wh_bq *)base;
    *n = 0;
    ids[0] = '\0';
    if (!w->runs_raw_table) {
        return 0;
    }
    char error[200];
    wh_abandoned_error(error, sizeof(error), run_id);
    struct bq_param p[] = {
        {"run_id", "STRING", run_id},
        {"raw_table", "STRING", w->table[WH_RAW]},
        {"error", "STRING", error},
    };
    static const char dead[] = "`status` = 'running' AND `raw_table` = @raw_table AND"
                               " `run_id` <> @run_id";
    struct dead_ctx x = {n, ids, idsz};
    struct buf sql;
    buf_init(&sql, 0);
    if (buf_printf(&sql, "SELECT `run_id` FROM %s WHERE %s ORDER BY `run_id`",
                   w->meta_ref[MT_RUNS], dead) != 0) {
        buf_free(&sql);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = bq_each_row(&w->c, sql.data, p, 2, 1000, dead_row, &x, e);
    if (rc == 0 && *n > 0) {
        buf_reset(&sql);
        rc = buf_printf(&sql, "BEGIN TRANSACTION;\nUPDATE %s SET `status` = 'abandoned'"
                        " WHERE `status` = 'pending' AND `run_id` IN (SELECT `run_id` FROM %s"
                        " WHERE %s);\nUPDATE %s SET `status` = 'abandoned', `exit_code` = NULL,"
                        " `error` = @error WHERE %s;\nCOMMIT TRANSACTION;\n",
                        w->meta_ref[MT_PAIRS], w->meta_ref[MT_RUNS], dead, w->meta_ref[MT_RUNS],
                        dead);
        char job[300];
        snprintf(job, sizeof(job), "dataops_%s_abandon", run_id);
        rc = rc ? err_set(e, ERR_NOMEM, "out of memory")
                : bq_query_job(&w->c, job, sql.data, p, 3, NULL, e);
    }
    buf_free(&sql);
    if (rc != 0) {
        *n = 0;
        ids[0] = '\0';
    }
    return rc;
}
