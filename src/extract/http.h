/*
 * http.h - what every HTTP exchange with the exchange shares: the response
 * record, the header parser that reads the rate-limit headers, and the
 * origin of a URL for messages that must not carry its query (the
 * callbacks every client shares are in util/curl_util.h).  The transfers themselves run in
 * the concurrent engine (fetcher.c) on libcurl's multi interface.
 */
#ifndef DATAOPS_HTTP_H
#define DATAOPS_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/curl_util.h"

struct http_resp {
    long status;
    long used_weight_1m;   /* X-MBX-USED-WEIGHT-1M, or -1 when absent */
    long retry_after_s;    /* Retry-After, or -1 when absent */
    struct buf body;
};

void http_resp_init(struct http_resp *r, size_t max_body);
void http_resp_free(struct http_resp *r);
/* CURLOPT_HEADERFUNCTION with CURLOPT_HEADERDATA = struct http_resp *: reads
 * X-MBX-USED-WEIGHT-1M and Retry-After, whatever their case (HTTP/2 sends
 * lower case), and resets them when a new response starts. */
size_t http_header_cb(char *p, size_t size, size_t n, void *resp);
/* "scheme://host:port" of url (credentials and path dropped). */
void http_origin_of(const char *url, char *out, size_t n);

#endif
