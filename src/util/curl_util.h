/*
 * curl_util.h - the libcurl callbacks every HTTP client of ours shares (the
 * exchange's REST engine, the Google APIs and token source, the S3 lake):
 * a response body collected into a buf with a size cap, a transfer that
 * SIGTERM aborts, and the split of a response header line.
 */
#ifndef DATAOPS_CURL_UTIL_H
#define DATAOPS_CURL_UTIL_H

#include <curl/curl.h>
#include <stddef.h>

#include "util/buf.h"

/* CURLOPT_WRITEFUNCTION curl_sink_write with CURLOPT_WRITEDATA = struct
 * curl_sink *: appends to b; when b's limit is reached the transfer stops
 * (CURLE_WRITE_ERROR) and too_big says why. */
struct curl_sink {
    struct buf *b;
    int too_big;
};
size_t curl_sink_write(char *p, size_t size, size_t n, void *sink);

/* CURLOPT_XFERINFOFUNCTION: abort the transfer once SIGTERM has arrived. */
int curl_abort_on_signal(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d);

/* For CURLOPT_HEADERFUNCTION: 1 if p[0..len) is a status line ("HTTP/..."),
 * which starts a new response (after a redirect or 100 Continue). */
int curl_header_is_status(const char *p, size_t len);
/* 1 if p[0..len) is "Name: value": *name_len, and the value without the
 * blanks around it and the line end; 0 for any other line. */
int curl_header_split(const char *p, size_t len, size_t *name_len, const char **value,
                      size_t *value_len);

#endif
