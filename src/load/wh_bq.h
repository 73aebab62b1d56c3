/*
 * wh_bq.h - internals of the BigQuery warehouse (bigquery://PROJECT),
 * shared by wh_bq.c (the wh_ops: what is loaded, merged and queried) and
 * wh_bq_api.c (how: the REST calls of the BigQuery API v2).
 *
 * Not a public header: the rest of the program sees only wh_bq_ops (wh.h).
 *
 * The REST layer keeps three promises the backend builds on:
 *   - a job is inserted with a job id chosen by the caller, and a 409
 *     "duplicate" (the same id already inserted, by a request whose answer
 *     was lost and that gapi repeated, or by an earlier attempt) is not an
 *     error: the existing job is polled and its outcome used, so one id
 *     never runs twice;
 *   - a job is polled until DONE; a job that ends with status.errorResult is
 *     an error whose message carries the reason, the message and the first
 *     errors[] entries; reasons BigQuery documents as transient
 *     (backendError, internalError, rateLimitExceeded, jobBackendError,
 *     jobInternalError) are retried with a new id (base id + "_rN"), bounded,
 *     with gapi's full-jitter backoff, since a failed job changed nothing;
 *   - HTTP-level retries (429, 5xx, rateLimitExceeded, backendError) and the
 *     fail-fast of 403/404 are gapi's; this layer adds to the message which
 *     role the principal lacks for the call that was refused.
 */
#ifndef DATAOPS_WH_BQ_H
#define DATAOPS_WH_BQ_H

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include <cjson/cJSON.h>

#include "google/gapi.h"
#include "google/gauth.h"
#include "util/buf.h"
#include "load/wh.h"
#include "metadata/run.h"
#include "util/err.h"

#define BQ_DEFAULT_ENDPOINT "https://bigquery.googleapis.com"

struct config;

struct bq {
    struct gauth *auth;         /* NULL: no credentials (an emulator) */
    struct gapi *api;
    char base[512];             /* scheme://host[:port], no trailing slash */
    char project[128];
    char location[64];
    long job_wait_ms;           /* how long one job may take before we give up */
    int job_attempts;           /* job-level attempts for transient errorResults */
    long resumable_threshold;   /* media larger than this go resumable */
    long chunk;                 /* resumable chunk, a multiple of 256 KiB */
};

/* A load job's data: size bytes of an open file (read from offset 0). */
struct bq_media {
    FILE *f;
    long size;
};

/* Statistics of a finished job (-1 when absent). */
struct bq_job_stats {
    long long output_rows;      /* load: statistics.load.outputRows */
    long long dml_rows;         /* query: statistics.query.numDmlAffectedRows */
    long long bytes_processed;  /* query: statistics.query.totalBytesProcessed */
    long long bytes_billed;     /* query: statistics.query.totalBytesBilled */
};

/* A named query parameter; value NULL is SQL NULL. */
struct bq_param {
    const char *name;
    const char *type;           /* "STRING", "INT64", "DATETIME", ... */
    const char *value;
};

/* The rows of a query, page by page (jobs.query, then jobs.getQueryResults). */
struct bq_rows {
    cJSON *page;                /* the last response, owned */
    const cJSON *rows;          /* its "rows" array (borrowed from page), or NULL */
    int next;                   /* index of the next unread row in rows */
    char job_id[256];
    char location[64];
    char page_token[1024];      /* "" when this is the last page */
};

int bq_init(struct bq *c, const char *project, const struct config *cfg, struct err *e);
void bq_free(struct bq *c);

/* The dataset exists afterwards (created in c->location when missing). */
int bq_ensure_dataset(struct bq *c, const char *dataset, struct err *e);
/* *found = whether the dataset exists; changes nothing (dataops check). */
int bq_dataset_exists(struct bq *c, const char *dataset, int *found, struct err *e);
/* tables.get: *out is the table resource (caller deletes), or NULL with
 * *found = 0 on 404. */
int bq_table_get(struct bq *c, const char *dataset, const char *table, cJSON **out,
                 int *found, struct err *e);
/* tables.insert of the table resource body (borrowed); a table that already
 * exists (409) is success with *created = 0. */
int bq_table_insert(struct bq *c, const char *dataset, const cJSON *table, int *created,
                    struct err *e);
/* tables.patch: the fields of patch replace the table's (a schema must keep
 * every existing column; new columns are NULLABLE). */
int bq_table_patch(struct bq *c, const char *dataset, const char *table, const cJSON *patch,
                   struct err *e);
/* tables.delete, best effort: failures are logged, never returned. */
void bq_table_delete(struct bq *c, const char *dataset, const char *table);

/* Run a job to completion: jobs.insert (with media when not NULL: a load
 * job's data, see bq_upload_job) with jobReference.jobId = job_id, then
 * jobs.get until DONE.  configuration is borrowed.  st may be NULL. */
int bq_job_run(struct bq *c, const char *job_id, const cJSON *configuration,
               const struct bq_media *media, struct bq_job_stats *st, struct err *e);
/* A query job (GoogleSQL, named parameters) run with bq_job_run. */
int bq_query_job(struct bq *c, const char *job_id, const char *sql,
                 const struct bq_param *params, size_t nparams, struct bq_job_stats *st,
                 struct err *e);

/* wh_bq_upload.c: jobs.insert with media, the Job (JSON text) and the data:
 * a multipart upload up to c->resumable_threshold bytes, else a resumable
 * upload in c->chunk pieces that resumes where the service says it stopped.
 * Answers as a call does: *job parsed (2xx), or *status 409 and *job NULL
 * when the id already exists. */
int bq_upload_job(struct bq *c, const char *job_json, const struct bq_media *m, cJSON **job,
                  long *status, struct err *e);
/* URL helpers: base + "/[upload/]bigquery/v2/projects/P" + up to four
 * segments (the first NULL ends them), and "?key=value" / "&key=value",
 * escaped. */
void bq_url(const struct bq *c, struct buf *u, int upload, const char *s1, const char *s2,
            const char *s3, const char *s4);
void bq_url_query(struct buf *u, const char *key, const char *value);
/* After a 403/404: add which role the principal needs (need is the usual
 * one for the call; a permission named by the service wins). */
void bq_hint(struct bq *c, struct err *e, const char *need);

/* Read-only query through jobs.query: the first page of at most
 * max_results rows is in r afterwards.  bq_rows_free must follow. */
int bq_query_rows(struct bq *c, const char *sql, const struct bq_param *params,
                  size_t nparams, long max_results, struct bq_rows *r, struct err *e);
/* The next page (jobs.getQueryResults with the page token); r->rows is NULL
 * at the end. */
int bq_rows_next(struct bq *c, struct bq_rows *r, long max_results, struct err *e);
void bq_rows_free(struct bq_rows *r);
/* Every row of a read-only query, page by page (page_rows at a time), fed
 * to fn; a non-zero return of fn (a stop, or an error it set in e) ends the
 * walk and is returned. */
typedef int (*bq_row_fn)(void *ctx, const cJSON *row, struct err *e);
int bq_each_row(struct bq *c, const char *sql, const struct bq_param *params,
                size_t nparams, long page_rows, bq_row_fn fn, void *ctx, struct err *e);
/* Cell i of a row ({"f": [{"v": ...}]}) as a string, or NULL for NULL. */
const char *bq_cell(const cJSON *row, int i);

/* === the backend's state, shared by wh_bq.c and wh_bq_load.c ============ */

#define WH_BQ_NCOLS_MAX 20

enum wh_bq_meta { MT_QUARANTINE = 0, MT_RUNS, MT_PAIRS, MT_LOCKS, MT_RANGES, MT__COUNT };

struct wh_bq_col {
    const char *name;
    const char *type;
};

/* A batch's rows on their way to a load job: a temporary file. */
struct wh_bq_spool {
    FILE *f;
    long long rows;
};

struct wh_bq {
    struct wh base;             /* first: a struct wh_bq is a struct wh */
    struct bq c;
    const struct config *cfg;
    char ds[2][129];            /* datasets of WH_RAW, WH_TRANSFORMED */
    char table[2][129];
    char local[129];            /* the local-time column's name */
    char ref[2][600];           /* `project.dataset.table` */
    char meta_ref[MT__COUNT][600];
    char session[37];           /* job ids before the run id is known */
    char run_id[37];
    char holder[160];
    int locked;
    int runs_raw_table;         /* dataops_runs has its raw_table column */
    int64_t renewed_ms;
    unsigned seq;               /* batches committed or tried */
    unsigned jobs;              /* lock jobs */
    unsigned records;           /* record_run calls */
    /* the open batch */
    int in_txn;
    int kind;                   /* WH_RAW, WH_TRANSFORMED, or -1 before a put */
    char symbol[24];
    char interval[8];
    int64_t lo, hi;             /* open_time range of the batch */
    struct wh_bq_spool data;    /* the lake's CSV of the rows, with its header */
    struct wh_bq_spool quar;    /* quarantined rows, JSON lines */
    struct buf ranges_sql;      /* range statements for the commit script */
    struct buf tmp;
    /* the transform's scan of the raw table, page by page */
    struct bq_rows scan;
    int scan_open;
    char scan_pair[40];
    int64_t scan_last;
};

extern const char *const wh_bq_meta_name[MT__COUNT];
extern const struct wh_bq_col wh_bq_quarantine_cols[8];
extern const struct wh_bq_col wh_bq_pairs_cols[20];

/* The columns of a kline table in load order (staging: the local time is
 * the lake's text). Returns the count. */
size_t wh_bq_kline_cols(const struct wh_bq *w, int t, int staging, struct wh_bq_col *out);
/* A tables.insert body; expires_ms 0 = never. Caller deletes. */
cJSON *wh_bq_table_json(const struct wh_bq *w, const char *ds, const char *name,
                        const struct wh_bq_col *cols, size_t n, const char *partition,
                        int cluster, int64_t expires_ms, const char *description);
void wh_bq_spool_close(struct wh_bq_spool *s);
int wh_bq_spool_write(struct wh_bq_spool *s, const struct buf *b, struct err *e);
int wh_bq_lock_renew(struct wh_bq *w, struct err *e);
const char *wh_bq_job_prefix(const struct wh_bq *w);

/* wh_bq_load.c: the end of a batch, and the run records. */
int wh_bq_abandon_dead_runs(struct wh *base, const char *run_id, int *n, char *ids, size_t idsz,
                            struct err *e);
int wh_bq_commit(struct wh *base, const char *lake_uri, struct err *e);
void wh_bq_rollback(struct wh *base);
int wh_bq_record_run(struct wh *base, const struct run *r, struct err *e);

/* wh_bq_plan.c: the backfill planner's ops. */
int wh_bq_holes(struct wh *base, const char *symbol, const struct interval *iv, int64_t from,
                int64_t to, wh_range_cb cb, void *ctx, struct err *e);
int wh_bq_ranges(struct wh *base, enum wh_range_kind kind, const char *symbol,
                 const char *interval, wh_range_cb cb, void *ctx, struct err *e);
int wh_bq_range_put(struct wh *base, enum wh_range_kind kind, const char *symbol,
                    const char *interval, int64_t from, int64_t to, const char *run_id,
                    struct err *e);
int wh_bq_range_delete(struct wh *base, enum wh_range_kind kind, const char *symbol,
                       const char *interval, int64_t from, int64_t to, struct err *e);

/* "`project.dataset.table`" into out (identifiers validated by config). */
void bq_table_ref(const struct bq *c, const char *dataset, const char *table, char *out,
                  size_t n);
/* Parse BigQuery's DATETIME text ("YYYY-MM-DD[ T]HH:MM:SS[.ffffff]") to
 * epoch ms (UTC wall time); -1 if malformed. */
int bq_datetime_ms(const char *s, int64_t *ms);

#endif
