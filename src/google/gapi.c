/*
 * gapi.c - one authenticated call to a Google REST API, with the retry
 * policy of Google's client libraries (see gapi.h).
 *
 * The policy, in the order it is applied to an answer:
 *   - 2xx: done;
 *   - 401: the token is dropped, a fresh one fetched and the request sent
 *     again, once per call (a token can expire or be revoked between our
 *     clock check and the server's);
 *   - retryable (gapi_status_retryable) or a transport failure: wait a full
 *     jitter backoff, min(cap, base * 2^n) scaled by a uniform draw (the
 *     AWS architecture blog's "full jitter", as fluent-bit's scheduler does),
 *     and try again while attempts and the time budget last;
 *   - anything else: ERR_HTTP_FATAL with the resource, status, reason and
 *     the server's message.
 * A request with no_retry is sent once (bar the 401 repeat) and every status
 * comes back to the caller, who owns the protocol (resumable uploads).
 *
 * One libcurl handle per gapi, reused so that the connection is kept alive.
 * The Authorization header is built in a local buffer, wiped after the
 * transfer, and never formatted into a message: messages name the URL's
 * path only (the query of a resumable session URI is itself a credential).
 */
#include "google/gapi.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/backoff.h"
#include "util/curl_util.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"

struct gapi {
    struct gauth *auth;   /* borrowed; NULL = anonymous */
    CURL *curl;
    long timeout_s;
    int max_attempts;
    long base_ms;
    long cap_ms;
    long budget_ms;
    uint64_t rng;         /* xorshift64*, seeded once */
};

int gapi_create(struct gauth *auth, long timeout_s, struct gapi **out, struct err *e)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return err_set(e, ERR_NET, "cannot initialise libcurl");
    }
    struct gapi *g = calloc(1, sizeof(*g));
    if (!g || !(g->curl = curl_easy_init())) {
        free(g);
        return err_set(e, ERR_NOMEM, "cannot create an HTTP client");
    }
    g->auth = auth;
    g->timeout_s = timeout_s > 0 ? timeout_s : 60;
    g->max_attempts = 6;
    g->base_ms = 250;
    g->cap_ms = 16000;
    g->budget_ms = 120000;
    g->rng = backoff_seed();
    *out = g;
    return 0;
}

void gapi_destroy(struct gapi *g)
{
    if (g) {
        curl_easy_cleanup(g->curl);
        free(g);
    }
}

void gapi_set_retry(struct gapi *g, int max_attempts, long base_ms, long cap_ms, long budget_ms)
{
    g->max_attempts = max_attempts < 1 ? 1 : max_attempts;
    g->base_ms = base_ms < 1 ? 1 : base_ms;
    g->cap_ms = cap_ms < g->base_ms ? g->base_ms : cap_ms;
    g->budget_ms = budget_ms < 0 ? 0 : budget_ms;
}

int gapi_max_attempts(const struct gapi *g)
{
    return g->max_attempts;
}

const char *gapi_principal(const struct gapi *g)
{
    return g->auth ? gauth_principal(g->auth) : "anonymous";
}

int gapi_backoff(struct gapi *g, int attempt)
{
    /* attempt counts from 1: the first retry waits up to base_ms. */
    long wait = backoff_ms(&g->rng, g->base_ms, g->cap_ms, attempt > 1 ? attempt - 1 : 0);
    return interrupt_sleep_ms(wait);
}

void gapi_resp_init(struct gapi_resp *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, max_body);
}

void gapi_resp_free(struct gapi_resp *r)
{
    buf_free(&r->body);
}

/* === response parsing ==================================================== */

/* The first errors[].reason (or error.status) and error.message of a Google
 * error body, cleaned to printable ASCII; empty strings when absent. */
static void error_detail(const struct buf *body, char *reason, size_t rn, char *msg, size_t mn)
{
    reason[0] = '\0';
    msg[0] = '\0';
    cJSON *j = cJSON_ParseWithLength(body->data ? body->data : "", body->len);
    const cJSON *er = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    if (cJSON_IsObject(er)) {
        const cJSON *errors = cJSON_GetObjectItemCaseSensitive(er, "errors");
        const cJSON *first = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
        const cJSON *r = first ? cJSON_GetObjectItemCaseSensitive(first, "reason") : NULL;
        if (!cJSON_IsString(r)) {
            r = cJSON_GetObjectItemCaseSensitive(er, "status");
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(er, "message");
        if (cJSON_IsString(r)) {
            snprintf(reason, rn, "%s", r->valuestring);
        }
        if (cJSON_IsString(m)) {
            snprintf(msg, mn, "%s", m->valuestring);
        }
    }
    else if (cJSON_IsString(er)) {
        snprintf(reason, rn, "%s", er->valuestring);
    }
    cJSON_Delete(j);
    for (char *p = reason; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            *p = ' ';
        }
    }
    for (char *p = msg; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            *p = ' ';
        }
    }
}

int gapi_status_retryable(long status, const struct buf *body)
{
    if (status == 408 || status == 429 || status >= 500) {
        return 1;
    }
    if (status == 400 || status == 403) {
        char reason[64];
        char msg[8];
        error_detail(body, reason, sizeof(reason), msg, sizeof(msg));
        return strcmp(reason, "rateLimitExceeded") == 0 ||
               strcmp(reason, "userRateLimitExceeded") == 0 ||
               strcmp(reason, "backendError") == 0 || strcmp(reason, "internalError") == 0;
    }
    return 0;
}

/* "/path" of an absolute URL, without the query. */
static void resource_of(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    snprintf(out, n, "%.*s", (int)strcspn(p, "?#"), *p == '/' ? p : "/");
}

int gapi_error(const char *method, const char *url, const struct gapi_resp *resp,
               struct err *e)
{
    char path[600];
    char reason[64];
    char msg[300];
    resource_of(url, path, sizeof(path));
    error_detail(&resp->body, reason, sizeof(reason), msg, sizeof(msg));
    int code = gapi_status_retryable(resp->status, &resp->body) ? ERR_HTTP_RETRY
                                                                 : ERR_HTTP_FATAL;
    err_set(e, code, "%s %s: HTTP %ld%s%s%s%s", method, path, resp->status,
            reason[0] ? " " : "", reason, msg[0] ? ": " : "", msg);
    if (e) {
        e->http = (int)resp->status;
    }
    return code;
}

/* === transfer ============================================================ */

static void set_header(char *dst, size_t dn, const char *v, size_t vl, int append)
{
    size_t cur = append ? strlen(dst) : 0;
    if (append && cur && cur + 1 < dn) {
        dst[cur++] = ',';
    }
    if (cur + vl >= dn) {
        vl = cur < dn ? dn - cur - 1 : 0;
    }
    memcpy(dst + cur, v, vl);
    dst[cur + vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct gapi_resp *r = ud;
    size_t len = size * n;
    if (curl_header_is_status(p, len)) {
        /* A new response (100 Continue, a redirect) starts afresh. */
        r->location[0] = '\0';
        r->range[0] = '\0';
        r->goog_hash[0] = '\0';
        return len;
    }
    size_t nl, vl;
    const char *v;
    if (!curl_header_split(p, len, &nl, &v, &vl)) {
        return len;
    }
    if (nl == 8 && strncasecmp(p, "location", 8) == 0) {
        set_header(r->location, sizeof(r->location), v, vl, 0);
    }
    else if (nl == 5 && strncasecmp(p, "range", 5) == 0) {
        set_header(r->range, sizeof(r->range), v, vl, 0);
    }
    else if (nl == 11 && strncasecmp(p, "x-goog-hash", 11) == 0) {
        /* Sent once per hash ("crc32c=...", "md5=..."): keep them all. */
        set_header(r->goog_hash, sizeof(r->goog_hash), v, vl, 1);
    }
    return len;
}

/* Send the request once.  0 with resp->status set, or ERR_NET /
 * ERR_INTERRUPTED / ERR_INVALID for a transport failure. */
static int send_once(struct gapi *g, const struct gapi_req *req, const char *token,
                     struct gapi_resp *resp, struct err *e)
{
    CURL *h = g->curl;
    struct curl_sink s = {&resp->body, 0};
    struct curl_slist *hdr = NULL;
    char auth[4200];
    char ctype[300];
    char path[600];
    int rc = 0;

    buf_reset(&resp->body);
    resp->status = 0;
    resp->location[0] = '\0';
    resp->range[0] = '\0';
    resp->goog_hash[0] = '\0';
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, curl_abort_on_signal);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, g->timeout_s < 10 ? g->timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, g->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, g->timeout_s < 30 ? g->timeout_s : 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dataops/0.1 (+libcurl)");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcmp(req->method, "DELETE") != 0) {
            /* POST/PUT/PATCH always carry a body, possibly empty, so that
             * Content-Length: 0 goes out (a resumable status query). */
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    if (req->content_type) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", req->content_type);
        hdr = curl_slist_append(hdr, ctype);
    }
    else if (req->body || strcmp(req->method, "GET") != 0) {
        hdr = curl_slist_append(hdr, "Content-Type:");
    }
    /* No "Expect: 100-continue" round trip before large bodies. */
    hdr = curl_slist_append(hdr, "Expect:");
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        hdr = curl_slist_append(hdr, req->headers[i]);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    /* curl_slist_append copied the header: wipe both copies. */
    for (struct curl_slist *l = hdr; l; l = l->next) {
        if (strncmp(l->data, "Authorization:", 14) == 0) {
            OPENSSL_cleanse(l->data, strlen(l->data));
        }
    }
    curl_slist_free_all(hdr);
    OPENSSL_cleanse(auth, sizeof(auth));

    resource_of(req->url, path, sizeof(path));
    if (cc == CURLE_ABORTED_BY_CALLBACK && interrupt_requested()) {
        rc = err_set(e, ERR_INTERRUPTED, "%s %s interrupted by a signal", req->method, path);
    }
    else if (s.too_big) {
        rc = err_set(e, ERR_HTTP_RETRY, "%s %s: the answer is larger than %zu bytes",
                     req->method, path, resp->body.max);
    }
    else if (cc != CURLE_OK) {
        const char *kind = "network error";
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            kind = "timeout";
        }
        else if (cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING || cc == CURLE_SEND_ERROR ||
                 cc == CURLE_PARTIAL_FILE) {
            kind = "connection reset";
        }
        else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
            kind = "cannot connect";
        }
        rc = err_set(e, ERR_NET, "%s %s: %s: %s", req->method, path, kind,
                     curl_easy_strerror(cc));
    }
    else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    }
    return rc;
}

int gapi_call(struct gapi *g, const struct gapi_req *req, struct gapi_resp *resp,
              struct err *e)
{
    char token[4096];
    int refreshed = 0;
    int failures = 0;
    int rc = 0;
    int64_t start = time_monotonic_ms();
    resp->attempts = 0;
    for (;;) {
        if (g->auth) {
            rc = gauth_token(g->auth, time_now_ms(), token, sizeof(token), e);
        }
        if (rc == 0) {
            resp->attempts++;
            rc = send_once(g, req, g->auth ? token : NULL, resp, e);
        }
        if (rc == 0 && resp->status == 401 && g->auth && !refreshed) {
            char path[600];
            resource_of(req->url, path, sizeof(path));
            log_info("gapi", "%s %s: HTTP 401, refreshing the access token of %s",
                     req->method, path, gauth_principal(g->auth));
            gauth_invalidate(g->auth);
            refreshed = 1;
            continue;
        }
        if (rc == 0 && (req->no_retry || (resp->status >= 200 && resp->status < 300))) {
            break;
        }
        if (rc == 0) {
            rc = gapi_error(req->method, req->url, resp, e);
        }
        if (!err_retryable(rc) || req->no_retry) {
            break;
        }
        failures++;
        if (failures >= g->max_attempts ||
            time_monotonic_ms() - start >= (int64_t)g->budget_ms) {
            err_wrap(e, "giving up after %d attempts", failures);
            break;
        }
        log_warn("gapi", "%s; retry %d of %d", e->msg, failures, g->max_attempts - 1);
        if (gapi_backoff(g, failures) != 0) {
            rc = err_set(e, ERR_INTERRUPTED, "interrupted by a signal");
            break;
        }
        rc = 0;
    }
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}
