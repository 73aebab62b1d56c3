/*
 * wh_bq_api.c - the BigQuery API v2 calls the warehouse needs, over gapi:
 * datasets.get/insert, tables.get/insert/delete, jobs.insert (with media:
 * wh_bq_upload.c), jobs.get, jobs.query and jobs.getQueryResults.
 *
 * References (BigQuery REST reference, cloud.google.com/bigquery/docs/
 * reference/rest/v2): Job (jobReference, configuration.load/.query,
 * status.state/errorResult/errors, statistics), QueryRequest and
 * GetQueryResultsResponse (jobComplete, rows[].f[].v, pageToken).  See
 * wh_bq.h for the promises kept here.
 */
#include "load/wh_bq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define RESP_MAX (64u << 20)        /* a page of query results is at most ~10 MB */
#define JOB_WAIT_MS (6 * 3600 * 1000L)
#define JOB_ATTEMPTS 4
#define POLL_FIRST_MS 200
#define POLL_MAX_MS 5000
#define QUERY_TIMEOUT_MS 10000

/* Job error reasons BigQuery documents as worth a retry (with a new id). */
static const char *const transient_reasons[] = {
    "backendError", "internalError", "rateLimitExceeded", "jobBackendError",
    "jobInternalError", NULL,
};

/* === setup =============================================================== */

static void endpoint_of(const char *setting, char *out, size_t n)
{
    const char *s = setting && *setting ? setting : BQ_DEFAULT_ENDPOINT;
    /* BIGQUERY_EMULATOR_HOST is "host:port" for Google's Python and Go
     * clients and a base URL for the Node client: take either. */
    if (strstr(s, "://")) {
        snprintf(out, n, "%s", s);
    }
    else {
        snprintf(out, n, "http://%s", s);
    }
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '/') {
        out[--len] = '\0';
    }
    static const char suffix[] = "/bigquery/v2";
    size_t sl = sizeof(suffix) - 1;
    if (len > sl && strcmp(out + len - sl, suffix) == 0) {
        out[len - sl] = '\0';
    }
}

/* A tuning knob from the environment (bytes), at least min. */
static long env_size(const char *name, long def, long min)
{
    const char *v = getenv(name);
    char *end = NULL;
    long n = v && *v ? strtol(v, &end, 10) : def;
    if (v && *v && (!end || *end || n < min)) {
        log_warn("bigquery", "%s=%s is not a size of at least %ld bytes; using %ld", name, v,
                 min, def);
        n = def;
    }
    return n;
}

int bq_init(struct bq *c, const char *project, const struct config *cfg, struct err *e)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->project, sizeof(c->project), "%s", project);
    snprintf(c->location, sizeof(c->location), "%s",
             cfg && cfg->text[S_BQ_LOCATION][0] ? cfg->text[S_BQ_LOCATION] : "US");
    endpoint_of(cfg ? cfg->text[S_BQ_ENDPOINT] : NULL, c->base, sizeof(c->base));
    c->job_wait_ms = JOB_WAIT_MS;
    c->job_attempts = JOB_ATTEMPTS;
    c->resumable_threshold = env_size("DATAOPS_BQ_RESUMABLE_THRESHOLD", 8L << 20, 1);
    c->chunk = env_size("DATAOPS_BQ_CHUNK_SIZE", 8L << 20, 256L << 10);
    c->chunk = (c->chunk + (256L << 10) - 1) / (256L << 10) * (256L << 10);
    const char *key = cfg ? cfg->text[S_CREDENTIALS] : NULL;
    const char *md = getenv("GCE_METADATA_HOST");
    int emulator = cfg && cfg->text[S_BQ_ENDPOINT][0];
    /* Against an emulator with no credentials configured, go without them,
     * as Google's clients do (and as the gs:// lake does); everywhere else a
     * key file or the metadata server. */
    if ((key && *key) || !emulator || (md && *md)) {
        if (gauth_create(key, GAUTH_SCOPE_CLOUD, &c->auth, e) != 0) {
            return e->code;
        }
    }
    /* One request may carry a whole batch (a multipart upload). */
    long timeout = cfg && cfg->http_timeout_s > 0 ? cfg->http_timeout_s * 4 : 120;
    timeout = timeout < 120 ? 120 : timeout;
    if (gapi_create(c->auth, timeout, &c->api, e) != 0) {
        gauth_destroy(c->auth);
        c->auth = NULL;
        return e->code;
    }
    if (cfg && cfg->retries >= 0) {
        gapi_set_retry(c->api, (int)cfg->retries + 1, 250, 16000, 120000);
    }
    return 0;
}

void bq_free(struct bq *c)
{
    gapi_destroy(c->api);
    gauth_destroy(c->auth);
    c->api = NULL;
    c->auth = NULL;
}

/* === URLs and calls ====================================================== */

/* Percent-encode s (an id, a page token) for a path segment or a query. */
static void put_escaped(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == ':') {
            buf_putc(b, (char)*p);
        }
        else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

void bq_url(const struct bq *c, struct buf *u, int upload, const char *s1, const char *s2,
            const char *s3, const char *s4)
{
    const char *const segs[] = {s1, s2, s3, s4};
    buf_reset(u);
    buf_puts(u, c->base);
    buf_puts(u, upload ? "/upload/bigquery/v2/projects/" : "/bigquery/v2/projects/");
    put_escaped(u, c->project);
    for (int i = 0; i < 4 && segs[i]; i++) {
        buf_putc(u, '/');
        put_escaped(u, segs[i]);
    }
}

void bq_url_query(struct buf *u, const char *key, const char *value)
{
    buf_putc(u, strchr(u->data, '?') ? '&' : '?');
    buf_puts(u, key);
    buf_putc(u, '=');
    put_escaped(u, value);
}

/* The role that grants the permission a refusal names ("Permission
 * bigquery.tables.updateData denied ..."), or NULL when it names none we
 * know. */
static const char *role_for(const char *msg)
{
    static const struct {
        const char *perm;
        const char *role;
    } roles[] = {
        {"bigquery.jobs.", "roles/bigquery.jobUser on the project"},
        {"bigquery.datasets.create", "roles/bigquery.user on the project, or create the "
                                     "dataset beforehand"},
        {"bigquery.datasets.", "roles/bigquery.dataEditor on the dataset"},
        {"bigquery.tables.", "roles/bigquery.dataEditor on the dataset"},
        {"storage.objects.", "roles/storage.objectViewer on the lake bucket"},
        {"storage.buckets.", "roles/storage.objectViewer on the lake bucket"},
    };
    const char *p = strcasestr(msg, "permission ");
    for (; p; p = strcasestr(p + 1, "permission ")) {
        const char *perm = p + strlen("permission ");
        for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
            if (strncmp(perm, roles[i].perm, strlen(roles[i].perm)) == 0) {
                return roles[i].role;
            }
        }
    }
    return NULL;
}

/* Add to e which role the principal needs, after a 403 or 404: the one
 * that grants the permission BigQuery named, else the call's usual one. */
void bq_hint(struct bq *c, struct err *e, const char *need)
{
    if (e->http != 403 && e->http != 404) {
        return;
    }
    int http = e->http;
    if (strstr(e->msg, "quotaExceeded")) {
        /* Not a permission: a quota of the project, which waiting out
         * within a run will not lift. */
        size_t len = strlen(e->msg);
        snprintf(e->msg + len, sizeof(e->msg) - len, " [a quota of project %s: see its "
                 "BigQuery quotas; not retried]", c->project);
        return;
    }
    const char *role = role_for(e->msg);
    char msg[sizeof(e->msg)];
    snprintf(msg, sizeof(msg), "%s", e->msg);
    err_set(e, ERR_HTTP_FATAL, "%s [%s needs %s]", msg, gapi_principal(c->api),
            role ? role : need);
    e->http = http;
}

/*
 * One JSON call.  Statuses in ok_status (0-terminated, besides 2xx) are
 * answered with rc 0, *status set and *out NULL; other failures are gapi's
 * error.  A 2xx body is parsed into *out (the caller deletes it).
 */
static int call(struct bq *c, const char *method, const char *url, const char *ctype,
                const void *body, size_t body_len, const long *ok_status, cJSON **out,
                long *status, struct err *e)
{
    struct gapi_resp resp;
    gapi_resp_init(&resp, RESP_MAX);
    struct gapi_req req = {
        .method = method, .url = url, .content_type = ctype, .body = body,
        .body_len = body_len,
    };
    *out = NULL;
    int rc = gapi_call(c->api, &req, &resp, e);
    if (status) {
        *status = resp.status;
    }
    if (rc != 0) {
        for (int i = 0; ok_status && ok_status[i]; i++) {
            if (resp.status == ok_status[i]) {
                err_clear(e);
                rc = 0;
                break;
            }
        }
        gapi_resp_free(&resp);
        return rc;
    }
    *out = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!*out && resp.body.len > 0) {
        rc = err_set(e, ERR_WAREHOUSE, "%s: the BigQuery API answered HTTP %ld with a body that "
                     "is not JSON", method, resp.status);
    }
    gapi_resp_free(&resp);
    return rc;
}

static int call_json(struct bq *c, const char *method, const char *url, const cJSON *body,
                     const long *ok_status, cJSON **out, long *status, struct err *e)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    if (body && !text) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = call(c, method, url, text ? "application/json" : NULL, text,
                  text ? strlen(text) : 0, ok_status, out, status, e);
    cJSON_free(text);
    return rc;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v)) {
        return strtoll(v->valuestring, NULL, 10);
    }
    if (cJSON_IsNumber(v)) {
        return (long long)v->valuedouble;
    }
    return -1;
}

/* === datasets and tables ================================================= */

int bq_ensure_dataset(struct bq *c, const char *dataset, struct err *e)
{
    static const long ok404[] = {404, 0};
    static const long ok409[] = {409, 0};
    struct buf u;
    buf_init(&u, 0);
    cJSON *got = NULL;
    cJSON *body = NULL;
    long status = 0;
    bq_url(c, &u, 0, "datasets", dataset, NULL, NULL);
    int rc = call_json(c, "GET", u.data, NULL, ok404, &got, &status, e);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.dataEditor on the dataset");
        goto out;
    }
    if (status != 404) {
        const char *loc = jstr(got, "location");
        if (loc && strcasecmp(loc, c->location) != 0) {
            log_warn("bigquery", "dataset %s:%s is in %s, not in the configured location %s "
                     "(DATAOPS_BIGQUERY_LOCATION); jobs run where the data is", c->project,
                     dataset, loc, c->location);
            snprintf(c->location, sizeof(c->location), "%s", loc);
        }
        goto out;
    }
    body = cJSON_CreateObject();
    cJSON *ref = cJSON_AddObjectToObject(body, "datasetReference");
    cJSON_AddStringToObject(ref, "projectId", c->project);
    cJSON_AddStringToObject(ref, "datasetId", dataset);
    cJSON_AddStringToObject(body, "location", c->location);
    cJSON_AddStringToObject(body, "description", "pipeline-dataops: Binance klines");
    bq_url(c, &u, 0, "datasets", NULL, NULL, NULL);
    cJSON_Delete(got);
    got = NULL;
    rc = call_json(c, "POST", u.data, body, ok409, &got, &status, e);
    if (rc != 0) {
        bq_hint(c, e, "bigquery.datasets.create on the project (roles/bigquery.user), or create "
                   "the dataset beforehand");
        goto out;
    }
    log_info("bigquery", "%s dataset %s:%s in %s", status == 409 ? "found" : "created",
             c->project, dataset, c->location);
out:
    cJSON_Delete(got);
    cJSON_Delete(body);
    buf_free(&u);
    return rc;
}

int bq_dataset_exists(struct bq *c, const char *dataset, int *found, struct err *e)
{
    static const long ok404[] = {404, 0};
    struct buf u;
    buf_init(&u, 0);
    cJSON *got = NULL;
    long status = 0;
    bq_url(c, &u, 0, "datasets", dataset, NULL, NULL);
    int rc = call_json(c, "GET", u.data, NULL, ok404, &got, &status, e);
    if (rc != 0) {
        bq_hint(c, e, "bigquery.datasets.get (roles/bigquery.dataViewer on the dataset)");
    }
    else {
        *found = status != 404;
    }
    cJSON_Delete(got);
    buf_free(&u);
    return rc;
}

int bq_table_get(struct bq *c, const char *dataset, const char *table, cJSON **out,
                 int *found, struct err *e)
{
    static const long ok404[] = {404, 0};
    struct buf u;
    buf_init(&u, 0);
    long status = 0;
    bq_url(c, &u, 0, "datasets", dataset, "tables", table);
    int rc = call_json(c, "GET", u.data, NULL, ok404, out, &status, e);
    buf_free(&u);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.dataEditor on the dataset");
        return rc;
    }
    *found = status != 404;
    return 0;
}

int bq_table_insert(struct bq *c, const char *dataset, const cJSON *table, int *created,
                    struct err *e)
{
    static const long ok409[] = {409, 0};
    struct buf u;
    buf_init(&u, 0);
    cJSON *got = NULL;
    long status = 0;
    bq_url(c, &u, 0, "datasets", dataset, "tables", NULL);
    int rc = call_json(c, "POST", u.data, table, ok409, &got, &status, e);
    buf_free(&u);
    cJSON_Delete(got);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.dataEditor on the dataset");
        return rc;
    }
    *created = status != 409;
    return 0;
}

int bq_table_patch(struct bq *c, const char *dataset, const char *table, const cJSON *patch,
                   struct err *e)
{
    struct buf u;
    buf_init(&u, 0);
    cJSON *got = NULL;
    bq_url(c, &u, 0, "datasets", dataset, "tables", table);
    int rc = call_json(c, "PATCH", u.data, patch, NULL, &got, NULL, e);
    buf_free(&u);
    cJSON_Delete(got);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.dataEditor on the dataset");
    }
    return rc;
}

void bq_table_delete(struct bq *c, const char *dataset, const char *table)
{
    static const long ok404[] = {404, 0};
    struct buf u;
    buf_init(&u, 0);
    cJSON *got = NULL;
    struct err e;
    err_clear(&e);
    bq_url(c, &u, 0, "datasets", dataset, "tables", table);
    if (call_json(c, "DELETE", u.data, NULL, ok404, &got, NULL, &e) != 0) {
        log_warn("bigquery", "cannot delete the staging table %s.%s (it expires by itself): %s",
                 dataset, table, e.msg);
    }
    cJSON_Delete(got);
    buf_free(&u);
}

void bq_table_ref(const struct bq *c, const char *dataset, const char *table, char *out,
                  size_t n)
{
    snprintf(out, n, "`%s.%s.%s`", c->project, dataset, table);
}

/* === jobs ================================================================ */

static int is_transient(const char *reason)
{
    for (int i = 0; reason && transient_reasons[i]; i++) {
        if (strcmp(reason, transient_reasons[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The job's outcome: 0, or an error from status.errorResult and errors[].
 * *transient is set when the reason is one worth a retry. */
static int job_outcome(struct bq *c, const char *job_id, const cJSON *job,
                       struct bq_job_stats *st, int *transient, struct err *e)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(job, "status");
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(status, "errorResult");
    *transient = 0;
    if (cJSON_IsObject(er)) {
        const char *reason = jstr(er, "reason");
        const char *msg = jstr(er, "message");
        const char *where = jstr(er, "location");
        char more[300] = "";
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(status, "errors");
        int shown = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, errs) {
            const char *m = jstr(it, "message");
            if (!m || (msg && strcmp(m, msg) == 0) || shown == 2) {
                continue;
            }
            size_t len = strlen(more);
            snprintf(more + len, sizeof(more) - len, "%s%s", shown ? "; " : "; also: ", m);
            shown++;
        }
        *transient = is_transient(reason);
        int code = *transient ? ERR_HTTP_RETRY : ERR_WAREHOUSE;
        if (reason && (strcmp(reason, "accessDenied") == 0 || strcmp(reason, "notFound") == 0 ||
                       strcmp(reason, "quotaExceeded") == 0)) {
            code = ERR_HTTP_FATAL;
        }
        err_set(e, code, "BigQuery job %s failed: %s%s%s%s%s%s", job_id,
                reason ? reason : "error", msg ? ": " : "", msg ? msg : "",
                where ? " (at " : "", where ? where : "", where ? ")" : "");
        if (more[0]) {
            size_t len = strlen(e->msg);
            snprintf(e->msg + len, sizeof(e->msg) - len, "%s", more);
        }
        if (reason && strcmp(reason, "accessDenied") == 0) {
            const char *role = role_for(msg ? msg : "");
            int load = cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(job, "configuration"), "load") != NULL;
            size_t len = strlen(e->msg);
            snprintf(e->msg + len, sizeof(e->msg) - len, " [%s needs %s]",
                     gapi_principal(c->api), role ? role
                     : load ? "roles/bigquery.dataEditor on the dataset and "
                              "roles/storage.objectViewer on the lake bucket"
                            : "roles/bigquery.dataEditor on the dataset");
        }
        return code;
    }
    if (st) {
        const cJSON *stats = cJSON_GetObjectItemCaseSensitive(job, "statistics");
        const cJSON *load = cJSON_GetObjectItemCaseSensitive(stats, "load");
        const cJSON *query = cJSON_GetObjectItemCaseSensitive(stats, "query");
        st->output_rows = load ? jint(load, "outputRows") : -1;
        st->dml_rows = query ? jint(query, "numDmlAffectedRows") : -1;
        st->bytes_processed = query ? jint(query, "totalBytesProcessed") : -1;
        st->bytes_billed = query ? jint(query, "totalBytesBilled") : -1;
    }
    return 0;
}

static int job_done(const cJSON *job)
{
    const char *state = jstr(cJSON_GetObjectItemCaseSensitive(job, "status"), "state");
    return state && strcmp(state, "DONE") == 0;
}

/* Whether an existing job (met through a 409) is the one we asked for: the
 * same kind, and the same destination table or query text.  Ids carry the
 * run's UUID, so anything else is a foreign job we must not adopt. */
static int same_job(const cJSON *job, const cJSON *configuration)
{
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(job, "configuration");
    const cJSON *hl = cJSON_GetObjectItemCaseSensitive(have, "load");
    const cJSON *wl = cJSON_GetObjectItemCaseSensitive(configuration, "load");
    if (hl && wl) {
        const char *ht = jstr(cJSON_GetObjectItemCaseSensitive(hl, "destinationTable"), "tableId");
        const char *wt = jstr(cJSON_GetObjectItemCaseSensitive(wl, "destinationTable"), "tableId");
        return ht && wt && strcmp(ht, wt) == 0;
    }
    const char *hq = jstr(cJSON_GetObjectItemCaseSensitive(have, "query"), "query");
    const char *wq = jstr(cJSON_GetObjectItemCaseSensitive(configuration, "query"), "query");
    return hq && wq && strcmp(hq, wq) == 0;
}

/* jobs.insert once (gapi repeats transient failures with the same id);
 * *adopted is set when the id already existed (409). */
static int job_insert(struct bq *c, const char *job_id, const cJSON *configuration,
                      const struct bq_media *media, cJSON **job, int *adopted, struct err *e)
{
    static const long ok409[] = {409, 0};
    cJSON *body = cJSON_CreateObject();
    cJSON *ref = cJSON_AddObjectToObject(body, "jobReference");
    cJSON_AddStringToObject(ref, "projectId", c->project);
    cJSON_AddStringToObject(ref, "jobId", job_id);
    cJSON_AddStringToObject(ref, "location", c->location);
    cJSON_AddItemToObject(body, "configuration", cJSON_Duplicate(configuration, 1));
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct buf u;
    buf_init(&u, 0);
    long status = 0;
    int rc;
    if (media) {
        rc = bq_upload_job(c, text, media, job, &status, e);
    }
    else {
        bq_url(c, &u, 0, "jobs", NULL, NULL, NULL);
        rc = call(c, "POST", u.data, "application/json", text, strlen(text), ok409, job,
                  &status, e);
    }
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.jobUser on the project");
        goto out;
    }
    *adopted = status == 409;
    if (status == 409) {
        /* Our own earlier request (its answer was lost) or an earlier
         * attempt: never run the id twice, take the existing job's outcome. */
        log_info("bigquery", "job %s already exists (a repeated request): waiting for its "
                 "outcome instead of running it again", job_id);
    }
out:
    cJSON_free(text);
    buf_free(&u);
    return rc;
}

static int job_get(struct bq *c, const char *job_id, cJSON **job, struct err *e)
{
    struct buf u;
    buf_init(&u, 0);
    bq_url(c, &u, 0, "jobs", job_id, NULL, NULL);
    bq_url_query(&u, "location", c->location);
    int rc = call_json(c, "GET", u.data, NULL, NULL, job, NULL, e);
    buf_free(&u);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.jobUser on the project");
    }
    return rc;
}

/* One attempt under one id: insert (or find) the job and wait for it. */
static int job_attempt(struct bq *c, const char *job_id, const cJSON *configuration,
                       const struct bq_media *media, struct bq_job_stats *st, int *transient,
                       struct err *e)
{
    cJSON *job = NULL;
    int adopted = 0;
    *transient = 0;
    int rc = job_insert(c, job_id, configuration, media, &job, &adopted, e);
    if (rc != 0) {
        return rc;
    }
    int64_t deadline = time_monotonic_ms() + c->job_wait_ms;
    long wait = POLL_FIRST_MS;
    while (!job || !job_done(job)) {
        if (job) {
            if (time_monotonic_ms() >= deadline) {
                cJSON_Delete(job);
                return err_set(e, ERR_WAREHOUSE, "BigQuery job %s is not done after %lds; it "
                               "may still finish (bq show -j %s)", job_id,
                               c->job_wait_ms / 1000, job_id);
            }
            if (interrupt_sleep_ms(wait) != 0) {
                cJSON_Delete(job);
                return err_set(e, ERR_INTERRUPTED, "interrupted while waiting for BigQuery "
                               "job %s", job_id);
            }
            wait = wait * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : wait * 3 / 2;
        }
        cJSON_Delete(job);
        job = NULL;
        if ((rc = job_get(c, job_id, &job, e)) != 0) {
            return rc;
        }
    }
    if (adopted && !same_job(job, configuration)) {
        cJSON_Delete(job);
        return err_set(e, ERR_WAREHOUSE, "BigQuery job id %s is taken by another job (not "
                       "this run's); nothing was run", job_id);
    }
    rc = job_outcome(c, job_id, job, st, transient, e);
    cJSON_Delete(job);
    return rc;
}

int bq_job_run(struct bq *c, const char *job_id, const cJSON *configuration,
               const struct bq_media *media, struct bq_job_stats *st, struct err *e)
{
    char id[300];
    snprintf(id, sizeof(id), "%s", job_id);
    for (int attempt = 1;; attempt++) {
        int transient = 0;
        int rc = job_attempt(c, id, configuration, media, st, &transient, e);
        if (rc == 0 || !transient || attempt >= c->job_attempts) {
            return rc;
        }
        log_warn("bigquery", "%s; retrying as a new job (%d of %d)", e->msg, attempt,
                 c->job_attempts - 1);
        if (gapi_backoff(c->api, attempt) != 0) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
        }
        snprintf(id, sizeof(id), "%s_r%d", job_id, attempt + 1);
    }
}

/* 1 if sql names @name (not as the prefix of a longer name). */
static int uses_param(const char *sql, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strchr(sql, '@'); p; p = strchr(p + 1, '@')) {
        char after = p[1 + n];
        if (strncmp(p + 1, name, n) == 0 &&
            !((after >= 'A' && after <= 'Z') || (after >= 'a' && after <= 'z') ||
              (after >= '0' && after <= '9') || after == '_')) {
            return 1;
        }
    }
    return 0;
}

/* queryParameters: only those the statement uses, so a caller may offer a
 * common set to several statements. */
static cJSON *params_json(const char *sql, const struct bq_param *params, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (!uses_param(sql, params[i].name)) {
            continue;
        }
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", params[i].name);
        cJSON *t = cJSON_AddObjectToObject(p, "parameterType");
        cJSON_AddStringToObject(t, "type", params[i].type);
        cJSON *v = cJSON_AddObjectToObject(p, "parameterValue");
        if (params[i].value) {
            cJSON_AddStringToObject(v, "value", params[i].value);
        }
        cJSON_AddItemToArray(arr, p);
    }
    return arr;
}

int bq_query_job(struct bq *c, const char *job_id, const char *sql,
                 const struct bq_param *params, size_t nparams, struct bq_job_stats *st,
                 struct err *e)
{
    cJSON *conf = cJSON_CreateObject();
    cJSON *q = cJSON_AddObjectToObject(conf, "query");
    cJSON_AddStringToObject(q, "query", sql);
    cJSON_AddFalseToObject(q, "useLegacySql");
    cJSON_AddStringToObject(q, "parameterMode", "NAMED");
    cJSON_AddItemToObject(q, "queryParameters", params_json(sql, params, nparams));
    int rc = bq_job_run(c, job_id, conf, NULL, st, e);
    cJSON_Delete(conf);
    return rc;
}

/* === read-only queries =================================================== */

static void rows_take(struct bq_rows *r, cJSON *page)
{
    cJSON_Delete(r->page);
    r->page = page;
    r->next = 0;
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(page, "rows");
    r->rows = cJSON_IsArray(rows) && cJSON_GetArraySize(rows) > 0 ? rows : NULL;
    const char *tok = jstr(page, "pageToken");
    snprintf(r->page_token, sizeof(r->page_token), "%s", tok ? tok : "");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(page, "jobReference");
    const char *id = jstr(ref, "jobId");
    const char *loc = jstr(ref, "location");
    if (id) {
        snprintf(r->job_id, sizeof(r->job_id), "%s", id);
    }
    if (loc) {
        snprintf(r->location, sizeof(r->location), "%s", loc);
    }
}

static int get_results(struct bq *c, struct bq_rows *r, long max_results, const char *token,
                       struct err *e)
{
    struct buf u;
    buf_init(&u, 0);
    char num[32];
    bq_url(c, &u, 0, "queries", r->job_id, NULL, NULL);
    bq_url_query(&u, "location", r->location[0] ? r->location : c->location);
    snprintf(num, sizeof(num), "%ld", max_results);
    bq_url_query(&u, "maxResults", num);
    snprintf(num, sizeof(num), "%d", QUERY_TIMEOUT_MS);
    bq_url_query(&u, "timeoutMs", num);
    if (token && *token) {
        bq_url_query(&u, "pageToken", token);
    }
    cJSON *page = NULL;
    int rc = call_json(c, "GET", u.data, NULL, NULL, &page, NULL, e);
    buf_free(&u);
    if (rc == 0) {
        rows_take(r, page);
    }
    return rc;
}

static int wait_complete(struct bq *c, struct bq_rows *r, long max_results, struct err *e)
{
    int64_t deadline = time_monotonic_ms() + c->job_wait_ms;
    while (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->page, "jobComplete"))) {
        if (!r->job_id[0]) {
            return err_set(e, ERR_WAREHOUSE, "BigQuery answered a query without a job "
                           "reference");
        }
        if (time_monotonic_ms() >= deadline || interrupt_requested()) {
            return err_set(e, interrupt_requested() ? ERR_INTERRUPTED : ERR_WAREHOUSE,
                           "BigQuery query job %s did not complete", r->job_id);
        }
        int rc = get_results(c, r, max_results, NULL, e);
        if (rc != 0) {
            return rc;
        }
    }
    /* A query that failed after it was accepted reports it in errors. */
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r->page, "errors");
    if (cJSON_IsArray(errs) && cJSON_GetArraySize(errs) > 0 && !r->rows) {
        const char *m = jstr(cJSON_GetArrayItem(errs, 0), "message");
        const char *reason = jstr(cJSON_GetArrayItem(errs, 0), "reason");
        if (reason && strcmp(reason, "warning") != 0) {
            return err_set(e, ERR_WAREHOUSE, "BigQuery query job %s failed: %s: %s", r->job_id,
                           reason, m ? m : "");
        }
    }
    return 0;
}

int bq_query_rows(struct bq *c, const char *sql, const struct bq_param *params,
                  size_t nparams, long max_results, struct bq_rows *r, struct err *e)
{
    memset(r, 0, sizeof(*r));
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "query", sql);
    cJSON_AddFalseToObject(body, "useLegacySql");
    cJSON_AddStringToObject(body, "parameterMode", "NAMED");
    cJSON_AddItemToObject(body, "queryParameters", params_json(sql, params, nparams));
    cJSON_AddStringToObject(body, "location", c->location);
    cJSON_AddNumberToObject(body, "maxResults", (double)max_results);
    cJSON_AddNumberToObject(body, "timeoutMs", QUERY_TIMEOUT_MS);
    struct buf u;
    buf_init(&u, 0);
    bq_url(c, &u, 0, "queries", NULL, NULL, NULL);
    cJSON *page = NULL;
    int rc = call_json(c, "POST", u.data, body, NULL, &page, NULL, e);
    cJSON_Delete(body);
    buf_free(&u);
    if (rc != 0) {
        bq_hint(c, e, "roles/bigquery.jobUser on the project and roles/bigquery.dataViewer on "
                   "the dataset");
        return rc;
    }
    rows_take(r, page);
    return wait_complete(c, r, max_results, e);
}

int bq_rows_next(struct bq *c, struct bq_rows *r, long max_results, struct err *e)
{
    if (!r->page_token[0]) {
        cJSON_Delete(r->page);
        r->page = NULL;
        r->rows = NULL;
        r->next = 0;
        return 0;
    }
    char token[sizeof(r->page_token)];
    snprintf(token, sizeof(token), "%s", r->page_token);
    return get_results(c, r, max_results, token, e);
}

void bq_rows_free(struct bq_rows *r)
{
    cJSON_Delete(r->page);
    memset(r, 0, sizeof(*r));
}

int bq_each_row(struct bq *c, const char *sql, const struct bq_param *params,
                size_t nparams, long page_rows, bq_row_fn fn, void *ctx, struct err *e)
{
    struct bq_rows r;
    int rc = bq_query_rows(c, sql, params, nparams, page_rows, &r, e);
    while (rc == 0 && r.rows) {
        const cJSON *row;
        cJSON_ArrayForEach(row, r.rows) {
            if ((rc = fn(ctx, row, e)) != 0) {
                break;
            }
        }
        if (rc == 0) {
            rc = bq_rows_next(c, &r, page_rows, e);
        }
    }
    bq_rows_free(&r);
    return rc;
}

const char *bq_cell(const cJSON *row, int i)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(row, "f");
    const cJSON *cell = cJSON_GetArrayItem(f, i);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cell, "v");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int bq_datetime_ms(const char *s, int64_t *ms)
{
    unsigned y, mo, d, h, mi, sec;
    int n = 0;
    if (!s || sscanf(s, "%4u-%2u-%2u%*1[ T]%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    int64_t frac = 0;
    const char *p = s + 19;
    if (*p == '.') {
        int64_t scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p != '\0') {
        return -1;
    }
    *ms = days_from_civil(y, mo, d) * MS_PER_DAY + h * MS_PER_HOUR + mi * MS_PER_MIN +
          sec * MS_PER_SEC + frac;
    return 0;
}
