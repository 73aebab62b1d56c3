/*
 * lake_gcs.c - the lake as Cloud Storage buckets (gs://), through the JSON
 * API (cloud.google.com/storage/docs/json_api), as the original pipeline
 * stored its raw files and run artifacts.
 *
 * How the lake's contract is kept:
 *   - visible only on commit, whole: an object is created by one request
 *     (a multipart upload, for objects up to the resumable threshold) or by
 *     the last request of a resumable upload session, and Cloud Storage
 *     publishes an object only when its upload completes;
 *   - never overwritten: every create carries ifGenerationMatch=0, so the
 *     service refuses (412) when the name exists; commit then fails with
 *     ERR_LAKE, unless our own earlier attempt of the same commit is what
 *     created it (a lost answer) and its checksums are ours;
 *   - abort leaves nothing: a resumable session is cancelled (DELETE on the
 *     session URI), and an unfinished one expires by itself;
 *   - streaming with bounded memory: bytes are buffered up to the threshold
 *     (8 MiB) and then sent in chunks (8 MiB, a multiple of 256 KiB as the
 *     protocol requires), so a writer holds at most one chunk plus the last
 *     write;
 *   - checked: CRC32C and MD5 are computed while streaming, sent with a
 *     multipart upload's metadata (the service verifies them) and compared
 *     with the crc32c/md5Hash of the created object; a mismatch deletes that
 *     generation and fails.
 * A chunk that fails (reset, timeout, 5xx, 429) is not resent blindly: the
 * session is asked how much it persisted (PUT with Content-Range: bytes
 * * /TOTAL and no body, answered 308 with a Range header) and the upload
 * resumes from there ("Resumable uploads": performing-resumable-uploads).
 *
 * Where keys go (buckets, prefix, artifacts): see lake_gcs.h.
 */
#include "load/lake_gcs.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "google/b64.h"
#include "google/crc32c.h"
#include "google/gapi.h"
#include "google/gauth.h"
#include "load/lake.h"
#include "util/log.h"
#include "util/timeutil.h"

#define CHUNK_QUANTUM (256u << 10)
#define DEFAULT_THRESHOLD (8u << 20)
#define DEFAULT_CHUNK (8u << 20)
#define RESP_MAX (1u << 20)
#define ART_SEGMENT "pipeline-dataops/"

struct lake_gcs {
    struct lake base;
    struct gauth *auth;      /* NULL: anonymous (an emulator without credentials) */
    struct gapi *api;
    char endpoint[512];      /* scheme://host[:port], no trailing slash */
    char bucket[224];
    char prefix[512];        /* "" or "dir/" */
    char art_bucket[224];    /* DATAOPS_GCS_ARTIFACTS_BUCKET; "" = ordinary keys */
    char art_lead[256];      /* "<GCS_BUCKET_PROJECT_NAME>/pipeline-dataops/" */
    size_t threshold;
    size_t chunk;
};

struct gcs_writer {
    struct lake_writer base;
    struct lake_gcs *lk;
    const char *bucket;      /* borrowed from lk */
    char object[1600];
    char key[1100];
    const char *ctype;
    struct buf pending;      /* bytes not yet persisted by the service */
    uint64_t sent;           /* bytes the session has persisted */
    uint64_t total;          /* bytes written by the caller */
    uint32_t crc;
    EVP_MD_CTX *md5;
    unsigned char md5_sum[16];
    char session[2048];      /* resumable session URI; "" before it starts */
    int retried;             /* a request of this object was repeated */
    int verified;            /* the object exists and its checksums are ours */
    int failed;              /* a write failed: commit must not publish */
};

/* === names =============================================================== */

/* Bucket naming rules (cloud.google.com/storage/docs/buckets#naming), the
 * part that matters for building URLs safely. */
static int bucket_name_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 222) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.')) {
            return 0;
        }
    }
    return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

int lake_gcs_endpoint(const char *text, char *out, size_t n)
{
    if (!text || !text[0]) {
        snprintf(out, n, "%s", LAKE_GCS_DEFAULT_ENDPOINT);
        return 0;
    }
    int w;
    if (strncmp(text, "http://", 7) == 0 || strncmp(text, "https://", 8) == 0) {
        w = snprintf(out, n, "%s", text);
    }
    else if (strstr(text, "://")) {
        return -1;
    }
    else {
        w = snprintf(out, n, "http://%s", text);
    }
    if (w < 0 || (size_t)w >= n) {
        return -1;
    }
    size_t len = strlen(out);
    while (len && out[len - 1] == '/') {
        out[--len] = '\0';
    }
    if (len > 11 && strcmp(out + len - 11, "/storage/v1") == 0) {
        out[len - 11] = '\0';
    }
    const char *host = strstr(out, "://") + 3;
    return host[0] && host[0] != '/' ? 0 : -1;
}

/* The bucket and object name of key. */
static const char *locate(const struct lake_gcs *lk, const char *key, char *object, size_t n)
{
    size_t lead = strlen(lk->art_lead);
    if (lk->art_bucket[0] && strncmp(key, lk->art_lead, lead) == 0) {
        /* Drop "<GCS_BUCKET_PROJECT_NAME>/": it is the bucket. */
        snprintf(object, n, "%s", key + strcspn(key, "/") + 1);
        return lk->art_bucket;
    }
    snprintf(object, n, "%s%s", lk->prefix, key);
    return lk->bucket;
}

/* "endpoint/<path>b/<bucket>/o[/<object>]" with the object percent-encoded. */
static int object_url(const struct lake_gcs *lk, const char *api, const char *bucket,
                      const char *object, const char *query, char *out, size_t n)
{
    char *esc = object ? curl_easy_escape(NULL, object, 0) : NULL;
    if (object && !esc) {
        return -1;
    }
    int w = snprintf(out, n, "%s/%sb/%s/o%s%s%s%s", lk->endpoint, api, bucket, esc ? "/" : "",
                     esc ? esc : "", query ? "?" : "", query ? query : "");
    curl_free(esc);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* === open / close ======================================================== */

static size_t env_size(const char *name, size_t def)
{
    const char *v = getenv(name);
    if (!v || !v[0]) {
        return def;
    }
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || x > (1ull << 32)) {
        log_warn("lake", "ignoring %s='%.40s' (expected a number of bytes)", name, v);
        return def;
    }
    return (size_t)x;
}

static void gcs_close(struct lake *base)
{
    struct lake_gcs *lk = (struct lake_gcs *)base;
    if (!lk) {
        return;
    }
    gapi_destroy(lk->api);
    gauth_destroy(lk->auth);
    free(lk);
}

/* Parse gs://BUCKET[/prefix] and the settings into lk. */
static int configure(struct lake_gcs *lk, const char *url, const struct config *cfg,
                     struct err *e)
{
    const char *rest = url + 5;   /* after "gs://" */
    size_t blen = strcspn(rest, "/");
    const char *fallback = cfg ? cfg->text[S_GCS_BUCKET] : "";
    if (blen == 0 && (!fallback || !fallback[0])) {
        return err_set(e, ERR_CONFIG, "the lake gs:// names no bucket and GCS_BUCKET_NAME is "
                       "not set (use gs://BUCKET or set GCS_BUCKET_NAME)");
    }
    if (blen >= sizeof(lk->bucket)) {
        return err_set(e, ERR_CONFIG, "the bucket name in '%.80s' is too long", url);
    }
    if (blen) {
        memcpy(lk->bucket, rest, blen);
        lk->bucket[blen] = '\0';
    }
    else {
        snprintf(lk->bucket, sizeof(lk->bucket), "%s", fallback);
    }
    if (!bucket_name_valid(lk->bucket)) {
        return err_set(e, ERR_CONFIG, "'%.100s' is not a Cloud Storage bucket name (3-222 of "
                       "a-z 0-9 - _ ., starting and ending with a letter or digit)",
                       lk->bucket);
    }
    const char *prefix = rest + blen;
    while (*prefix == '/') {
        prefix++;
    }
    size_t plen = strlen(prefix);
    while (plen && prefix[plen - 1] == '/') {
        plen--;
    }
    if (plen + 2 > sizeof(lk->prefix)) {
        return err_set(e, ERR_CONFIG, "the object prefix of '%.80s' is too long", url);
    }
    if (plen) {
        snprintf(lk->prefix, sizeof(lk->prefix), "%.*s/", (int)plen, prefix);
    }
    const char *ab = getenv("DATAOPS_GCS_ARTIFACTS_BUCKET");
    if (ab && ab[0]) {
        if (!bucket_name_valid(ab) || strlen(ab) >= sizeof(lk->art_bucket)) {
            return err_set(e, ERR_CONFIG, "DATAOPS_GCS_ARTIFACTS_BUCKET '%.100s' is not a "
                           "Cloud Storage bucket name", ab);
        }
        snprintf(lk->art_bucket, sizeof(lk->art_bucket), "%s", ab);
        snprintf(lk->art_lead, sizeof(lk->art_lead), "%s/" ART_SEGMENT,
                 cfg ? cfg->text[S_ARTIFACTS_PREFIX] : "thebareops_production");
    }
    const char *ep = cfg ? cfg->text[S_GCS_ENDPOINT] : "";
    if (lake_gcs_endpoint(ep, lk->endpoint, sizeof(lk->endpoint)) != 0) {
        char shown[256];
        config_mask_url(ep, shown, sizeof(shown));
        return err_set(e, ERR_CONFIG, "STORAGE_EMULATOR_HOST '%s' is not host:port or an "
                       "http(s):// URL", shown);
    }
    lk->threshold = env_size("DATAOPS_GCS_RESUMABLE_THRESHOLD", DEFAULT_THRESHOLD);
    size_t chunk = env_size("DATAOPS_GCS_CHUNK_SIZE", DEFAULT_CHUNK);
    chunk = (chunk + CHUNK_QUANTUM - 1) / CHUNK_QUANTUM * CHUNK_QUANTUM;
    lk->chunk = chunk ? chunk : CHUNK_QUANTUM;
    return 0;
}

static int first_token(struct lake_gcs *lk, struct err *e)
{
    char token[4096];
    int rc;
    for (int attempt = 1;; attempt++) {
        rc = gauth_token(lk->auth, time_now_ms(), token, sizeof(token), e);
        if (rc == 0 || !err_retryable(rc) || attempt >= gapi_max_attempts(lk->api)) {
            break;
        }
        log_warn("lake", "%s; retry %d", e->msg, attempt);
        if (gapi_backoff(lk->api, attempt) != 0) {
            rc = err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
            break;
        }
    }
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}

static int gcs_open(const char *url, const struct config *cfg, struct lake **out, struct err *e)
{
    struct lake_gcs *lk = calloc(1, sizeof(*lk));
    if (!lk) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    lk->base.ops = &lake_gcs_ops;
    int rc = configure(lk, url, cfg, e);
    const char *key = cfg ? cfg->text[S_CREDENTIALS] : "";
    const char *md = getenv("GCE_METADATA_HOST");
    int emulator = cfg && cfg->text[S_GCS_ENDPOINT][0];
    /* Against an emulator with no credentials configured, go anonymous as
     * Google's own clients do; otherwise a key file or the metadata server. */
    if (rc == 0 && (key[0] || !emulator || (md && md[0]))) {
        rc = gauth_create(key, GAUTH_SCOPE_CLOUD, &lk->auth, e);
    }
    long timeout = cfg ? cfg->http_timeout_s * 4 : 120;
    if (rc == 0) {
        rc = gapi_create(lk->auth, timeout < 120 ? 120 : timeout, &lk->api, e);
    }
    if (rc != 0) {
        gcs_close(&lk->base);
        return rc;
    }
    if (cfg) {
        gapi_set_retry(lk->api, (int)cfg->retries + 1, 250, 16000, 120000);
    }
    /* Get the first token now, so that bad credentials stop the run before
     * it extracts anything. */
    if (lk->auth && (rc = first_token(lk, e)) != 0) {
        gcs_close(&lk->base);
        return rc;
    }
    log_info("lake", "Cloud Storage lake gs://%s/%s at %s as %s%s%s", lk->bucket, lk->prefix,
             lk->endpoint, gapi_principal(lk->api), lk->art_bucket[0] ? ", artifacts in gs://" :
             "", lk->art_bucket);
    *out = &lk->base;
    return 0;
}

static void gcs_uri(const struct lake *base, const char *key, char *out, size_t n)
{
    const struct lake_gcs *lk = (const struct lake_gcs *)base;
    char object[1600];
    const char *bucket = locate(lk, key, object, sizeof(object));
    snprintf(out, n, "gs://%s/%s", bucket, object);
}

/* === checksums =========================================================== */

static void crc_b64(uint32_t crc, char out[16])
{
    unsigned char be[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16),
                           (unsigned char)(crc >> 8), (unsigned char)crc};
    b64_encode(be, 4, out);
}

static void md5_b64(const unsigned char sum[16], char out[32])
{
    b64_encode(sum, 16, out);
}

/* Compare the object resource's size, crc32c and md5Hash with ours.  0 when
 * they agree (at least one checksum present), else ERR_LAKE; *generation
 * gets the object's generation when found. */
static int verify_object(struct gcs_writer *w, const struct gapi_resp *r, char *generation,
                         size_t gn, struct err *e)
{
    char crc[16];
    char md5[32];
    crc_b64(w->crc, crc);
    md5_b64(w->md5_sum, md5);
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *jc = j ? cJSON_GetObjectItemCaseSensitive(j, "crc32c") : NULL;
    const cJSON *jm = j ? cJSON_GetObjectItemCaseSensitive(j, "md5Hash") : NULL;
    const cJSON *js = j ? cJSON_GetObjectItemCaseSensitive(j, "size") : NULL;
    const cJSON *jg = j ? cJSON_GetObjectItemCaseSensitive(j, "generation") : NULL;
    int rc = ERR_LAKE;
    generation[0] = '\0';
    if (cJSON_IsString(jg)) {
        snprintf(generation, gn, "%s", jg->valuestring);
    }
    if (!j) {
        err_set(e, rc, "gs://%s/%s: the service's answer is not an object resource", w->bucket,
                w->object);
        goto out;
    }
    if (cJSON_IsString(js) && strtoull(js->valuestring, NULL, 10) != w->total) {
        err_set(e, rc, "gs://%s/%s: the service stored %s bytes, %" PRIu64 " were sent",
                w->bucket, w->object, js->valuestring, w->total);
        goto out;
    }
    if (!cJSON_IsString(jc) && !cJSON_IsString(jm)) {
        err_set(e, rc, "gs://%s/%s: the service returned neither crc32c nor md5Hash", w->bucket,
                w->object);
        goto out;
    }
    if (cJSON_IsString(jc) && strcmp(jc->valuestring, crc) != 0) {
        err_set(e, rc, "gs://%s/%s: crc32c mismatch (service %.16s, ours %s)", w->bucket,
                w->object, jc->valuestring, crc);
        goto out;
    }
    if (cJSON_IsString(jm) && strcmp(jm->valuestring, md5) != 0) {
        err_set(e, rc, "gs://%s/%s: md5Hash mismatch (service %.32s, ours %s)", w->bucket,
                w->object, jm->valuestring, md5);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* After a checksum mismatch, remove exactly the generation we created, so
 * a corrupt object never stays visible (needs storage.objects.delete). */
static void delete_generation(struct gcs_writer *w, const char *generation)
{
    char url[2400];
    char query[96];
    struct err e2;
    struct gapi_resp r;
    if (!generation[0]) {
        return;
    }
    snprintf(query, sizeof(query), "ifGenerationMatch=%.40s", generation);
    if (object_url(w->lk, "storage/v1/", w->bucket, w->object, query, url, sizeof(url)) != 0) {
        return;
    }
    struct gapi_req req = {.method = "DELETE", .url = url};
    gapi_resp_init(&r, RESP_MAX);
    err_clear(&e2);
    if (gapi_call(w->lk->api, &req, &r, &e2) != 0) {
        log_error("lake", "cannot delete the corrupt gs://%s/%s (generation %s): %s", w->bucket,
                  w->object, generation, e2.msg);
    }
    gapi_resp_free(&r);
}

/* A create was refused with 412: the name exists.  If one of our requests
 * for this object was repeated, the object may be our own first attempt
 * whose answer was lost: accept it when its checksums are ours. */
static int on_exists(struct gcs_writer *w, struct err *e)
{
    if (w->retried) {
        char url[2400];
        char gen[48];
        struct gapi_resp r;
        struct err e2;
        err_clear(&e2);
        gapi_resp_init(&r, RESP_MAX);
        struct gapi_req req = {.method = "GET", .url = url};
        int ok = object_url(w->lk, "storage/v1/", w->bucket, w->object, NULL, url,
                            sizeof(url)) == 0 &&
                 gapi_call(w->lk->api, &req, &r, &e2) == 0 &&
                 verify_object(w, &r, gen, sizeof(gen), &e2) == 0;
        gapi_resp_free(&r);
        if (ok) {
            log_info("lake", "gs://%s/%s was created by an earlier attempt of this upload",
                     w->bucket, w->object);
            w->verified = 1;
            return 0;
        }
    }
    if (e) {
        e->http = 412;
    }
    return err_set(e, ERR_LAKE, "lake object gs://%s/%s already exists; not overwritten "
                   "(ifGenerationMatch=0)", w->bucket, w->object);
}

static int finish(struct gcs_writer *w, const struct gapi_resp *r, struct err *e)
{
    char gen[48];
    int rc = verify_object(w, r, gen, sizeof(gen), e);
    if (rc != 0) {
        delete_generation(w, gen);
    }
    return rc;
}

/* === resumable upload ==================================================== */

/* "bytes=0-N" -> N + 1; absent -> 0 (nothing persisted). */
static int persisted_of(const char *range, uint64_t *out)
{
    if (!range[0]) {
        *out = 0;
        return 0;
    }
    unsigned long long a;
    unsigned long long b;
    if (sscanf(range, "bytes=%llu-%llu", &a, &b) != 2 || a != 0) {
        return -1;
    }
    *out = (uint64_t)b + 1;
    return 0;
}

static int start_session(struct gcs_writer *w, struct err *e)
{
    struct lake_gcs *lk = w->lk;
    char url[2400];
    char hdr[200];
    struct buf meta;
    struct gapi_resp r;
    buf_init(&meta, 8192);
    gapi_resp_init(&r, RESP_MAX);
    int rc = ERR_LAKE;
    if (object_url(lk, "upload/storage/v1/", w->bucket, NULL,
                   "uploadType=resumable&ifGenerationMatch=0", url, sizeof(url)) != 0) {
        err_set(e, rc, "URL for gs://%s/%s is too long", w->bucket, w->object);
        goto out;
    }
    snprintf(hdr, sizeof(hdr), "X-Upload-Content-Type: %s", w->ctype);
    const char *headers[] = {hdr, NULL};
    if (buf_puts(&meta, "{\"name\":\"") || buf_json_escape(&meta, w->object, strlen(w->object)) ||
        buf_printf(&meta, "\",\"contentType\":\"%s\"}", w->ctype)) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    struct gapi_req req = {.method = "POST", .url = url,
                           .content_type = "application/json; charset=UTF-8",
                           .body = meta.data, .body_len = meta.len, .headers = headers};
    if ((rc = gapi_call(lk->api, &req, &r, e)) != 0) {
        if (e->http == 412) {
            /* Nothing of ours was sent yet: whatever is there is not ours. */
            rc = err_set(e, ERR_LAKE, "lake object gs://%s/%s already exists; not overwritten "
                         "(ifGenerationMatch=0)", w->bucket, w->object);
            e->http = 412;
        }
        goto out;
    }
    /* The session URI carries our bearer token from now on: it must lead to
     * the endpoint we trust, and it is never logged (it is a credential). */
    size_t ep = strlen(lk->endpoint);
    if (!r.location[0] || strncmp(r.location, lk->endpoint, ep) != 0 ||
        (r.location[ep] != '/' && r.location[ep] != '?')) {
        rc = err_set(e, ERR_LAKE, "gs://%s/%s: the resumable upload was not given a session "
                     "URI on %s", w->bucket, w->object, lk->endpoint);
        goto out;
    }
    snprintf(w->session, sizeof(w->session), "%s", r.location);
    rc = 0;
out:
    buf_free(&meta);
    gapi_resp_free(&r);
    return rc;
}

/* Drop n persisted bytes from the front of pending. */
static void consume(struct gcs_writer *w, size_t n)
{
    memmove(w->pending.data, w->pending.data + n, w->pending.len - n);
    w->pending.len -= n;
    w->pending.data[w->pending.len] = '\0';
    w->sent += n;
}

/*
 * Send the first len bytes of pending (all of it, and the object's end,
 * when final), resuming after failures from what the session persisted.
 * On 200/201 (final), *done is set and r holds the object resource.
 */
static int upload_range(struct gcs_writer *w, size_t len, int final, struct gapi_resp *r,
                        struct err *e)
{
    struct gapi *api = w->lk->api;
    uint64_t target = w->sent + len;
    int failures = 0;
    int query = 0;
    char range[96];
    char total[32];
    snprintf(total, sizeof(total), final ? "%" PRIu64 : "*", w->total);
    for (;;) {
        size_t cur = (size_t)(target - w->sent);
        if (query || (final && cur == 0)) {
            snprintf(range, sizeof(range), "Content-Range: bytes */%s", total);
        }
        else {
            snprintf(range, sizeof(range), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%s",
                     w->sent, target - 1, total);
        }
        const char *headers[] = {range, NULL};
        int sending = !(query || (final && cur == 0));
        struct gapi_req req = {.method = "PUT", .url = w->session, .headers = headers,
                               .content_type = sending ? w->ctype : NULL,
                               .body = sending ? w->pending.data : NULL,
                               .body_len = sending ? cur : 0, .no_retry = 1};
        int rc = gapi_call(api, &req, r, e);
        int was_query = !sending;
        query = 0;
        if (rc == ERR_INTERRUPTED) {
            return rc;
        }
        if (rc == 0 && (r->status == 200 || r->status == 201)) {
            if (!final) {
                return err_set(e, ERR_LAKE, "gs://%s/%s: the upload session completed early",
                               w->bucket, w->object);
            }
            return 0;
        }
        if (rc == 0 && r->status == 308) {
            uint64_t p;
            if (persisted_of(r->range, &p) != 0 || p < w->sent || p > target) {
                return err_set(e, ERR_LAKE, "gs://%s/%s: the session reports an unexpected "
                               "persisted range '%.60s'", w->bucket, w->object, r->range);
            }
            int progress = p > w->sent;
            consume(w, (size_t)(p - w->sent));
            if (!final && w->sent == target) {
                return 0;
            }
            if (progress || was_query) {
                continue;
            }
            /* A 308 that kept nothing of what we sent counts as a failure. */
            rc = err_set(e, ERR_HTTP_RETRY, "the upload session persisted nothing of the chunk");
        }
        else if (rc == 0 && (r->status == 404 || r->status == 410)) {
            return err_set(e, ERR_LAKE, "gs://%s/%s: the upload session expired or was "
                           "cancelled (HTTP %ld); nothing was created", w->bucket, w->object,
                           r->status);
        }
        else if (rc == 0 && r->status == 412) {
            return on_exists(w, e);
        }
        else if (rc == 0) {
            rc = gapi_error("PUT", w->session, r, e);
        }
        if (!err_retryable(rc)) {
            return rc;
        }
        failures++;
        w->retried = 1;
        if (failures >= gapi_max_attempts(api)) {
            return err_wrap(e, "giving up after %d attempts", failures);
        }
        log_warn("lake", "gs://%s/%s: %s; asking the session what it kept (retry %d)",
                 w->bucket, w->object, e->msg, failures);
        if (gapi_backoff(api, failures) != 0) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
        }
        query = 1;
    }
}

/* Send every full chunk that pending holds beyond one (the last bytes stay
 * for commit, which sends them with the object's size). */
static int flush_chunks(struct gcs_writer *w, struct err *e)
{
    struct gapi_resp r;
    int rc = 0;
    gapi_resp_init(&r, RESP_MAX);
    while (rc == 0 && w->pending.len > w->lk->chunk) {
        rc = upload_range(w, w->lk->chunk, 0, &r, e);
    }
    gapi_resp_free(&r);
    return rc;
}

/* === writer ============================================================== */

/* Make sure the message names the object (lower layers name the request). */
static int name_it(const struct gcs_writer *w, int rc, struct err *e)
{
    if (rc != 0 && e && !strstr(e->msg, "gs://")) {
        err_wrap(e, "gs://%s/%s", w->bucket, w->object);
    }
    return rc;
}

static void writer_free(struct gcs_writer *w)
{
    EVP_MD_CTX_free(w->md5);
    buf_free(&w->pending);
    free(w);
}

static int gcs_writer_open(struct lake *base, const char *key, struct lake_writer **out,
                           struct err *e)
{
    struct lake_gcs *lk = (struct lake_gcs *)base;
    struct gcs_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &lake_gcs_ops;
    w->lk = lk;
    snprintf(w->key, sizeof(w->key), "%s", key);
    w->bucket = locate(lk, key, w->object, sizeof(w->object));
    w->ctype = lake_content_type(key);
    buf_init(&w->pending, 0);
    w->md5 = EVP_MD_CTX_new();
    if (!w->md5 || EVP_DigestInit_ex(w->md5, EVP_md5(), NULL) != 1) {
        writer_free(w);
        return err_set(e, ERR_NOMEM, "cannot start an MD5 digest");
    }
    *out = &w->base;
    return 0;
}

static int gcs_write(struct lake_writer *base, const void *data, size_t n, struct err *e)
{
    struct gcs_writer *w = (struct gcs_writer *)base;
    if (w->failed) {
        return err_set(e, ERR_LAKE, "gs://%s/%s: an earlier write failed", w->bucket,
                       w->object);
    }
    if (n == 0) {
        return 0;
    }
    w->crc = crc32c_update(w->crc, data, n);
    EVP_DigestUpdate(w->md5, data, n);
    w->total += n;
    if (buf_append(&w->pending, data, n) != 0) {
        w->failed = 1;
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    if (!w->session[0] && w->pending.len > w->lk->threshold) {
        rc = start_session(w, e);
    }
    if (rc == 0 && w->session[0]) {
        rc = flush_chunks(w, e);
    }
    if (rc != 0) {
        w->failed = 1;
    }
    return name_it(w, rc, e);
}

/* One multipart/related request: the metadata (with our checksums, which
 * the service verifies) and the bytes. */
static int upload_multipart(struct gcs_writer *w, struct gapi_resp *r, struct err *e)
{
    struct lake_gcs *lk = w->lk;
    char url[2400];
    char boundary[48];
    char ctype[96];
    char crc[16];
    char md5[32];
    struct buf body;
    buf_init(&body, 0);
    int rc = ERR_LAKE;
    if (object_url(lk, "upload/storage/v1/", w->bucket, NULL,
                   "uploadType=multipart&ifGenerationMatch=0", url, sizeof(url)) != 0) {
        err_set(e, rc, "URL for gs://%s/%s is too long", w->bucket, w->object);
        goto out;
    }
    /* A boundary that the data does not contain. */
    for (unsigned salt = 0;; salt++) {
        snprintf(boundary, sizeof(boundary), "dataops-%08x-%08x-%u", w->crc,
                 (unsigned)w->total, salt);
        if (!memmem(w->pending.data ? w->pending.data : "", w->pending.len, boundary,
                    strlen(boundary))) {
            break;
        }
    }
    crc_b64(w->crc, crc);
    md5_b64(w->md5_sum, md5);
    if (buf_printf(&body, "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                   "{\"name\":\"", boundary) ||
        buf_json_escape(&body, w->object, strlen(w->object)) ||
        buf_printf(&body, "\",\"contentType\":\"%s\",\"crc32c\":\"%s\",\"md5Hash\":\"%s\"}"
                   "\r\n--%s\r\nContent-Type: %s\r\n\r\n", w->ctype, crc, md5, boundary,
                   w->ctype) ||
        buf_append(&body, w->pending.data ? w->pending.data : "", w->pending.len) ||
        buf_printf(&body, "\r\n--%s--\r\n", boundary)) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(ctype, sizeof(ctype), "multipart/related; boundary=%s", boundary);
    struct gapi_req req = {.method = "POST", .url = url, .content_type = ctype,
                           .body = body.data, .body_len = body.len};
    rc = gapi_call(lk->api, &req, r, e);
    if (r->attempts > 1) {
        w->retried = 1;
    }
    if (rc != 0 && e->http == 412) {
        rc = on_exists(w, e);
    }
out:
    buf_free(&body);
    return rc;
}

static void gcs_abort(struct lake_writer *base)
{
    struct gcs_writer *w = (struct gcs_writer *)base;
    if (w->session[0]) {
        /* Cancel the session (the service answers 499); an unfinished one
         * would expire by itself within a week, invisible meanwhile. */
        struct gapi_req req = {.method = "DELETE", .url = w->session, .no_retry = 1};
        struct gapi_resp r;
        struct err e2;
        err_clear(&e2);
        gapi_resp_init(&r, RESP_MAX);
        if (gapi_call(w->lk->api, &req, &r, &e2) != 0) {
            log_warn("lake", "gs://%s/%s: cannot cancel the upload session: %s", w->bucket,
                     w->object, e2.msg);
        }
        gapi_resp_free(&r);
    }
    writer_free(w);
}

static int gcs_commit(struct lake_writer *base, struct err *e)
{
    struct gcs_writer *w = (struct gcs_writer *)base;
    struct gapi_resp r;
    gapi_resp_init(&r, RESP_MAX);
    int rc;
    if (w->failed) {
        rc = err_set(e, ERR_LAKE, "gs://%s/%s: an earlier write failed; not committed",
                     w->bucket, w->object);
        goto fail;
    }
    EVP_DigestFinal_ex(w->md5, w->md5_sum, NULL);
    if (w->session[0]) {
        rc = upload_range(w, w->pending.len, 1, &r, e);
    }
    else {
        rc = upload_multipart(w, &r, e);
    }
    if (rc == 0 && !w->verified) {
        rc = finish(w, &r, e);
    }
    if (rc != 0) {
        goto fail;
    }
    log_debug("lake", "gs://%s/%s: %" PRIu64 " bytes, %s upload", w->bucket, w->object,
              w->total, w->session[0] ? "resumable" : "multipart");
    gapi_resp_free(&r);
    w->session[0] = '\0';
    writer_free(w);
    return 0;
fail:
    name_it(w, rc, e);
    gapi_resp_free(&r);
    gcs_abort(base);
    return rc;
}

/* === preflight =========================================================== */

static int check_bucket(struct lake_gcs *lk, const char *bucket, const char *what,
                        struct err *e)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s/storage/v1/b/%s?fields=name", lk->endpoint, bucket);
    struct gapi_req req = {.method = "GET", .url = url};
    struct gapi_resp r;
    gapi_resp_init(&r, RESP_MAX);
    int rc = gapi_call(lk->api, &req, &r, e);
    const char *who = gapi_principal(lk->api);
    if (rc != 0 && e->http == 404) {
        rc = err_set(e, ERR_CONFIG, "the %s bucket gs://%s does not exist (HTTP 404 at %s)",
                     what, bucket, lk->endpoint);
    }
    else if (rc != 0 && e->http == 403) {
        rc = err_set(e, ERR_CONFIG, "%s may not read the %s bucket gs://%s: HTTP 403, missing "
                     "storage.buckets.get (roles/storage.legacyBucketReader); the lake also "
                     "needs storage.objects.create and storage.objects.get "
                     "(roles/storage.objectCreator, roles/storage.objectViewer)", who, what,
                     bucket);
    }
    else if (rc != 0 && e->http == 401) {
        rc = err_set(e, ERR_CONFIG, "the %s bucket gs://%s: HTTP 401, the credentials of %s "
                     "were not accepted", what, bucket, who);
    }
    gapi_resp_free(&r);
    return rc;
}

/* The seam's check(): the buckets exist and the credentials can read them. */
static int gcs_check(struct lake *base, struct err *e)
{
    struct lake_gcs *lk = (struct lake_gcs *)base;
    int rc = check_bucket(lk, lk->bucket, "lake", e);
    if (rc == 0 && lk->art_bucket[0] && strcmp(lk->art_bucket, lk->bucket) != 0) {
        rc = check_bucket(lk, lk->art_bucket, "artifacts", e);
    }
    return rc;
}

int lake_gcs_check(const char *url, const struct config *cfg, struct err *e)
{
    struct lake *base = NULL;
    if (strncmp(url, "gs://", 5) != 0) {
        return err_set(e, ERR_CONFIG, "'%.100s' is not a gs:// lake", url);
    }
    int rc = gcs_open(url, cfg, &base, e);
    if (rc != 0) {
        return rc;
    }
    rc = gcs_check(base, e);
    gcs_close(base);
    return rc;
}

const struct lake_ops lake_gcs_ops = {
    .scheme = "gs",
    .open = gcs_open,
    .writer_open = gcs_writer_open,
    .write = gcs_write,
    .commit = gcs_commit,
    .abort = gcs_abort,
    .uri = gcs_uri,
    .close = gcs_close,
    .check = gcs_check,
};
