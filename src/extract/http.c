/*
 * http.c - see http.h.
 */
#include "extract/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


void http_resp_init(struct http_resp *r, size_t max_body)
{
    r->status = 0;
    r->used_weight_1m = -1;
    r->retry_after_s = -1;
    buf_init(&r->body, max_body);
}

void http_resp_free(struct http_resp *r)
{
    buf_free(&r->body);
}

static long header_long(const char *v, size_t n)
{
    char tmp[32];
    if (n >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    long x = strtol(tmp, &end, 10);
    return end == tmp ? -1 : x;
}

size_t http_header_cb(char *p, size_t size, size_t n, void *resp)
{
    struct http_resp *r = resp;
    size_t len = size * n;
    size_t nl, vl;
    const char *v;
    if (curl_header_split(p, len, &nl, &v, &vl)) {
        if (nl == 20 && strncasecmp(p, "x-mbx-used-weight-1m", 20) == 0) {
            r->used_weight_1m = header_long(v, vl);
        }
        else if (nl == 11 && strncasecmp(p, "retry-after", 11) == 0) {
            r->retry_after_s = header_long(v, vl);
        }
    }
    else if (curl_header_is_status(p, len)) {
        /* A new response (after a redirect or 100-continue) resets state. */
        r->used_weight_1m = -1;
        r->retry_after_s = -1;
    }
    return len;
}

void http_origin_of(const char *url, char *out, size_t n)
{
    const char *sep = strstr(url, "://");
    const char *p = sep ? sep + 3 : url;
    size_t k = strcspn(p, "/?#");
    const char *at = memchr(p, '@', k);
    if (at) {
        k -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    snprintf(out, n, "%.*s%.*s", (int)(sep ? sep + 3 - url : 0), url, (int)k, p);
}
