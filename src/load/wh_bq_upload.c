/*
 * wh_bq_upload.c - a load job together with its data: the media upload of
 * jobs.insert (BigQuery "API uploads", cloud.google.com/bigquery/docs/
 * reference/api-uploads), used when the lake is not Cloud Storage.
 *
 *   - up to c->resumable_threshold bytes (8 MiB): one multipart upload,
 *     POST /upload/bigquery/v2/projects/P/jobs?uploadType=multipart, a
 *     multipart/related body of two parts, the Job as JSON then the data;
 *     gapi repeats it whole on a transient failure (the job id makes a
 *     repeat that did arrive a 409, never a second job);
 *   - above: a resumable upload, in three steps:
 *       1. POST ...?uploadType=resumable with the Job as JSON and
 *          X-Upload-Content-Type/-Length: the answer's Location is the
 *          session URI;
 *       2. PUT chunks of c->chunk bytes (a multiple of 256 KiB) with
 *          Content-Range: bytes A-B/TOTAL; 308 with Range: bytes=0-N means
 *          "persisted up to N", the last chunk is answered with the Job;
 *       3. after a failed chunk (reset, timeout, 5xx, 429): back off, ask
 *          the session how much it has (PUT, no body, Content-Range:
 *          bytes * /TOTAL: 308 + Range, or the Job if it completed) and go on
 *          from there, bounded by gapi's attempts.
 *     The data is read from the spool file one chunk at a time, so memory
 *     stays at one chunk whatever the batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/wh_bq.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define RESP_MAX (1u << 20)

static int read_at(const struct bq_media *m, long off, size_t n, char *out, struct err *e)
{
    if (fseek(m->f, off, SEEK_SET) != 0 || (n > 0 && fread(out, 1, n, m->f) != n)) {
        return err_set(e, ERR_IO, "cannot read the BigQuery load spool at byte %ld", off);
    }
    return 0;
}

static int parse_job(const struct gapi_resp *resp, cJSON **job, struct err *e)
{
    *job = cJSON_ParseWithLength(resp->body.data ? resp->body.data : "", resp->body.len);
    if (!*job) {
        return err_set(e, ERR_WAREHOUSE, "the BigQuery upload answered HTTP %ld with a body "
                       "that is not a Job", resp->status);
    }
    return 0;
}

static int multipart(struct bq *c, const char *job_json, const struct bq_media *m, cJSON **job,
                     long *status, struct err *e)
{
    static const char part2[] = "Content-Type: application/octet-stream\r\n\r\n";
    char boundary[64];
    char ctype[128];
    char id[37];
    struct buf body;
    struct buf u;
    struct gapi_resp resp;
    buf_init(&body, 0);
    buf_init(&u, 0);
    gapi_resp_init(&resp, RESP_MAX);
    if (uuid_v4(id) != 0) {
        snprintf(id, sizeof(id), "%" PRId64, time_now_ms());
    }
    snprintf(boundary, sizeof(boundary), "dataops_%s", id);
    snprintf(ctype, sizeof(ctype), "multipart/related; boundary=%s", boundary);
    int rc = buf_printf(&body, "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                        "%s\r\n--%s\r\n%s", boundary, job_json, boundary, part2);
    if (rc != 0 || buf_reserve(&body, (size_t)m->size + 64) != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory for a BigQuery upload of %ld bytes", m->size);
        goto out;
    }
    if ((rc = read_at(m, 0, (size_t)m->size, body.data + body.len, e)) != 0) {
        goto out;
    }
    body.len += (size_t)m->size;
    if (buf_printf(&body, "\r\n--%s--\r\n", boundary) != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    bq_url(c, &u, 1, "jobs", NULL, NULL, NULL);
    bq_url_query(&u, "uploadType", "multipart");
    struct gapi_req req = {
        .method = "POST", .url = u.data, .content_type = ctype, .body = body.data,
        .body_len = body.len,
    };
    rc = gapi_call(c->api, &req, &resp, e);
    *status = resp.status;
    if (rc != 0 && resp.status == 409) {
        err_clear(e);
        rc = 0;
    }
    else if (rc == 0) {
        rc = parse_job(&resp, job, e);
    }
out:
    gapi_resp_free(&resp);
    buf_free(&u);
    buf_free(&body);
    return rc;
}

/* Step 1: the session URI (owned by the caller) for the Job. */
static int start_session(struct bq *c, const char *job_json, const struct bq_media *m,
                         char **session, struct err *e)
{
    char len_hdr[64];
    struct buf u;
    struct gapi_resp resp;
    buf_init(&u, 0);
    gapi_resp_init(&resp, RESP_MAX);
    snprintf(len_hdr, sizeof(len_hdr), "X-Upload-Content-Length: %ld", m->size);
    const char *const headers[] = {"X-Upload-Content-Type: application/octet-stream", len_hdr,
                                   NULL};
    bq_url(c, &u, 1, "jobs", NULL, NULL, NULL);
    bq_url_query(&u, "uploadType", "resumable");
    struct gapi_req req = {
        .method = "POST", .url = u.data, .content_type = "application/json; charset=UTF-8",
        .body = job_json, .body_len = strlen(job_json), .headers = headers,
    };
    int rc = gapi_call(c->api, &req, &resp, e);
    if (rc == 0 && !resp.location[0]) {
        rc = err_set(e, ERR_WAREHOUSE, "the BigQuery resumable upload answered HTTP %ld "
                     "without a session URI (Location)", resp.status);
    }
    if (rc == 0 && !(*session = strdup(resp.location))) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
    }
    gapi_resp_free(&resp);
    buf_free(&u);
    return rc;
}

/* "bytes=0-N" -> N + 1; no Range header -> 0 (nothing persisted). */
static long persisted(const struct gapi_resp *resp)
{
    const char *dash = strchr(resp->range, '-');
    return dash ? strtol(dash + 1, NULL, 10) + 1 : 0;
}

/* One PUT to the session: a chunk [off, off + n), or (n < 0) a status
 * query.  Returns 0 with resp filled (any status), or a transport error. */
static int put(struct bq *c, const char *session, const struct bq_media *m, long off, long n,
               char *chunk, struct gapi_resp *resp, struct err *e)
{
    char range[96];
    if (n < 0) {
        snprintf(range, sizeof(range), "Content-Range: bytes */%ld", m->size);
    }
    else {
        snprintf(range, sizeof(range), "Content-Range: bytes %ld-%ld/%ld", off, off + n - 1,
                 m->size);
        if (read_at(m, off, (size_t)n, chunk, e) != 0) {
            return e->code;
        }
    }
    const char *const headers[] = {range, NULL};
    struct gapi_req req = {
        .method = "PUT", .url = session, .content_type = "application/octet-stream",
        .body = n > 0 ? chunk : "", .body_len = n > 0 ? (size_t)n : 0, .headers = headers,
        .no_retry = 1,
    };
    buf_reset(&resp->body);
    resp->range[0] = '\0';
    return gapi_call(c->api, &req, resp, e);
}

static int resumable(struct bq *c, const char *job_json, const struct bq_media *m, cJSON **job,
                     long *status, struct err *e)
{
    char *session = NULL;
    char *chunk = malloc((size_t)c->chunk);
    struct gapi_resp resp;
    gapi_resp_init(&resp, RESP_MAX);
    int rc = chunk ? start_session(c, job_json, m, &session, e)
                   : err_set(e, ERR_NOMEM, "out of memory");
    long off = 0;
    int failures = 0;
    int query = 0;       /* the next PUT asks for the session's state */
    while (rc == 0) {
        long n = query ? -1 : (m->size - off < c->chunk ? m->size - off : c->chunk);
        int sent = put(c, session, m, off, n, chunk, &resp, e);
        long st = resp.status;
        if (sent == 0 && (st == 200 || st == 201)) {
            *status = st;
            rc = parse_job(&resp, job, e);
            break;
        }
        if (sent == 0 && st == 409) {
            *status = st;
            break;
        }
        if (sent == 0 && st == 308) {
            long have = persisted(&resp);
            if (have > off) {
                failures = 0;
            }
            off = have;
            query = 0;
            if (off >= m->size) {
                rc = err_set(e, ERR_WAREHOUSE, "the BigQuery upload session holds all %ld "
                             "bytes but answered 308, not the job", m->size);
                break;
            }
            continue;
        }
        if (sent == 0 && !gapi_status_retryable(st, &resp.body)) {
            rc = gapi_error("PUT", session, &resp, e);
            break;
        }
        if (sent == 0) {
            gapi_error("PUT", session, &resp, e);
        }
        else if (!err_retryable(sent)) {
            rc = sent;
            break;
        }
        /* A chunk or a status query failed in a way worth another try: back
         * off, then ask the session what it has before sending more. */
        if (++failures >= gapi_max_attempts(c->api)) {
            rc = err_wrap(e, "BigQuery resumable upload: giving up after %d attempts",
                          failures);
            break;
        }
        log_warn("bigquery", "upload of %ld bytes interrupted at byte %ld (%s); asking the "
                 "session how much it has", m->size, off, e->msg);
        if (gapi_backoff(c->api, failures) != 0) {
            rc = err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
            break;
        }
        err_clear(e);
        query = 1;
    }
    gapi_resp_free(&resp);
    free(session);
    free(chunk);
    return rc;
}

int bq_upload_job(struct bq *c, const char *job_json, const struct bq_media *m, cJSON **job,
                  long *status, struct err *e)
{
    *job = NULL;
    *status = 0;
    if (m->size <= c->resumable_threshold) {
        return multipart(c, job_json, m, job, status, e);
    }
    return resumable(c, job_json, m, job, status, e);
}
