/*
 * http.c - see http.h.
 */
#include "extract/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/interrupt.h"

struct http_client {
    CURL *curl;
    struct http_opts o;
};

static int curl_ready;

int http_client_create(const struct http_opts *o, struct http_client **out, struct err *e)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return err_set(e, ERR_NET, "cannot initialise libcurl");
        }
        curl_ready = 1;
    }
    struct http_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->curl = curl_easy_init())) {
        free(c);
        return err_set(e, ERR_NOMEM, "cannot create an HTTP client");
    }
    c->o = *o;
    *out = c;
    return 0;
}

void http_client_destroy(struct http_client *c)
{
    if (c) {
        curl_easy_cleanup(c->curl);
        free(c);
    }
}

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

struct sink {
    struct http_resp *r;
    int too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    if (buf_append(&s->r->body, p, size * n) != 0) {
        s->too_big = 1;
        return 0;
    }
    return size * n;
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

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct http_resp *r = ud;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (colon) {
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        size_t vl = len - nl - 1;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) {
            vl--;
        }
        if (nl == 20 && strncasecmp(p, "x-mbx-used-weight-1m", 20) == 0) {
            r->used_weight_1m = header_long(v, vl);
        }
        else if (nl == 11 && strncasecmp(p, "retry-after", 11) == 0) {
            r->retry_after_s = header_long(v, vl);
        }
    }
    else if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue) resets state. */
        r->used_weight_1m = -1;
        r->retry_after_s = -1;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return interrupt_requested();
}

/* "https://host:port" of url, for messages that must not carry the query. */
static void origin_of(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t k = strcspn(p, "/?#");
    const char *at = memchr(p, '@', k);
    if (at) {
        k -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    snprintf(out, n, "%.*s%.*s", (int)(strstr(url, "://") ? strstr(url, "://") + 3 - url : 0),
             url, (int)k, p);
}

int http_get(struct http_client *c, const char *url, struct http_resp *r, struct err *e)
{
    CURL *h = c->curl;
    struct sink s = {r, 0};
    buf_reset(&r->body);
    r->status = 0;
    r->used_weight_1m = -1;
    r->retry_after_s = -1;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->o.total_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->o.stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dataops/0.1 (+libcurl)");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (c->o.max_body) {
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_body);
    }
    CURLcode rc = curl_easy_perform(h);
    char origin[256];
    origin_of(url, origin, sizeof(origin));
    if (rc == CURLE_ABORTED_BY_CALLBACK && interrupt_requested()) {
        return err_set(e, ERR_INTERRUPTED, "request to %s interrupted by a signal", origin);
    }
    if (s.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        return err_set(e, ERR_INVALID, "response from %s is larger than %zu bytes", origin,
                       c->o.max_body);
    }
    if (rc != CURLE_OK) {
        const char *kind = "network error with";
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            kind = "timeout waiting for";
        }
        else if (rc == CURLE_PARTIAL_FILE) {
            kind = "truncated body from";
        }
        else if (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR) {
            kind = "connection reset by";
        }
        else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
            kind = "cannot connect to";
        }
        else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR) {
            kind = "TLS verification failed for";
        }
        return err_set(e, ERR_NET, "%s %s: %s", kind, origin, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}
