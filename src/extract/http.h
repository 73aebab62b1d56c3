/*
 * http.h - one HTTP client over a reused libcurl handle (keep-alive).
 *
 * It performs a single request and reports what happened; whether to try
 * again is the caller's decision (retries live in one place, the source).
 * TLS peer and host verification stay on; the body is capped so a huge or
 * endless response cannot exhaust memory; a transfer that stalls (less than
 * one byte a second for the stall time) or exceeds the total timeout is cut.
 */
#ifndef DATAOPS_HTTP_H
#define DATAOPS_HTTP_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct http_opts {
    long connect_timeout_s;
    long total_timeout_s;
    long stall_timeout_s;
    size_t max_body;
};

struct http_resp {
    long status;
    long used_weight_1m;   /* X-MBX-USED-WEIGHT-1M, or -1 when absent */
    long retry_after_s;    /* Retry-After, or -1 when absent */
    struct buf body;
};

struct http_client;

int http_client_create(const struct http_opts *o, struct http_client **out, struct err *e);
void http_client_destroy(struct http_client *c);
void http_resp_init(struct http_resp *r, size_t max_body);
void http_resp_free(struct http_resp *r);
/* GET url.  0 when a response arrived (any status: look at r->status);
 * ERR_NET for a transport failure (connect error, timeout, reset, a body
 * shorter than announced), ERR_INVALID for a body over the cap,
 * ERR_INTERRUPTED on SIGTERM.  The message names the host, not the query. */
int http_get(struct http_client *c, const char *url, struct http_resp *r, struct err *e);

#endif
