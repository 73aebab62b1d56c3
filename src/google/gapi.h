/*
 * gapi.h - one authenticated JSON/REST call to a Google API, with the
 * retry policy of Google's client libraries:
 *   - 429, 5xx, and 403/400 bodies whose error reason is rateLimitExceeded,
 *     backendError or internalError: exponential backoff with full jitter,
 *     bounded in attempts and time;
 *   - 401: the token is refreshed once and the request repeated;
 *   - 403 (other reasons) and 404: fail fast, ERR_HTTP_FATAL, with a message
 *     naming the resource (the URL path without the query), the HTTP status,
 *     the error reason and message from the body;
 *   - transport failures (timeouts, resets): retried like 5xx.
 * The bearer token never appears in a message.
 *
 * auth may be NULL: requests then go without credentials, as Google's
 * clients do against a local emulator (STORAGE_EMULATOR_HOST) when no
 * credentials are configured.
 */
#ifndef DATAOPS_GAPI_H
#define DATAOPS_GAPI_H

#include <stddef.h>

#include "google/gauth.h"
#include "util/buf.h"
#include "util/err.h"

struct gapi;

struct gapi_req {
    const char *method;         /* "GET", "POST", "PUT", "DELETE", "PATCH" */
    const char *url;            /* absolute */
    const char *content_type;   /* NULL when there is no body */
    const void *body;
    size_t body_len;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    int no_retry;               /* send once (the caller handles the outcome); a 401
                                 * is still refreshed and repeated once, since the
                                 * request was not acted upon */
};

struct gapi_resp {
    long status;
    struct buf body;            /* capped */
    char location[2048];        /* Location header (resumable uploads) */
    char range[128];            /* Range header (resumable upload status) */
    char goog_hash[256];        /* x-goog-hash header (crc32c=..., md5=...) */
    int attempts;               /* requests sent (extension: 2+ means a repeat, so a
                                 * create that meets 412 may have been our own) */
};

int gapi_create(struct gauth *auth, long timeout_s, struct gapi **out, struct err *e);
void gapi_destroy(struct gapi *g);
void gapi_resp_init(struct gapi_resp *r, size_t max_body);
void gapi_resp_free(struct gapi_resp *r);
/* 0 when a 2xx arrived (or any status with no_retry), else an error. */
int gapi_call(struct gapi *g, const struct gapi_req *req, struct gapi_resp *resp,
              struct err *e);

/* Extensions (stable; added by the Cloud Storage lake). */

/* Retry policy: at most max_attempts requests per call, waits drawn from
 * [0, min(cap_ms, base_ms * 2^attempt)] (full jitter), and no new attempt
 * once budget_ms has passed since the first.  Defaults: 6, 250, 16000,
 * 120000. */
void gapi_set_retry(struct gapi *g, int max_attempts, long base_ms, long cap_ms,
                    long budget_ms);
/* Sleep the full-jitter wait before retry number attempt (1, 2, ...), for
 * callers that drive their own no_retry loop (resumable uploads).  Returns
 * non-zero when interrupted by a signal. */
int gapi_backoff(struct gapi *g, int attempt);
/* The retry policy's attempt count, for such callers. */
int gapi_max_attempts(const struct gapi *g);
/* 1 if status (with the response body) is one Google's clients retry:
 * 408, 429, 5xx, or a 400/403 whose reason is rateLimitExceeded,
 * userRateLimitExceeded, backendError or internalError. */
int gapi_status_retryable(long status, const struct buf *body);
/* Fill e for a failed response: ERR_HTTP_RETRY or ERR_HTTP_FATAL, e->http,
 * and "METHOD /path: HTTP status reason: message" (no query, no token).
 * Returns the code. */
int gapi_error(const char *method, const char *url, const struct gapi_resp *resp,
               struct err *e);
/* The principal requests are made as, for messages ("anonymous" without
 * credentials). */
const char *gapi_principal(const struct gapi *g);

#endif
