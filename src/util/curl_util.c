/*
 * curl_util.c - see curl_util.h.
 */
#include "util/curl_util.h"

#include <string.h>

#include "util/interrupt.h"

size_t curl_sink_write(char *p, size_t size, size_t n, void *sink)
{
    struct curl_sink *s = sink;
    if (buf_append(s->b, p, size * n) != 0) {
        s->too_big = 1;
        return 0;
    }
    return size * n;
}

int curl_abort_on_signal(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return interrupt_requested();
}

int curl_header_is_status(const char *p, size_t len)
{
    return len > 5 && strncmp(p, "HTTP/", 5) == 0;
}

int curl_header_split(const char *p, size_t len, size_t *name_len, const char **value,
                      size_t *value_len)
{
    const char *colon = memchr(p, ':', len);
    if (!colon) {
        return 0;
    }
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' ||
                  v[vl - 1] == '\t')) {
        vl--;
    }
    *name_len = nl;
    *value = v;
    *value_len = vl;
    return 1;
}
