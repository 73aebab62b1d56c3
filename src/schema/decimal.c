/*
 * decimal.c - see decimal.h.  Comparison works on the digit strings:
 * strip the sign and leading zeros of the integer part, compare integer
 * parts by length then digits, then fraction digits padded with zeros.
 */
#include "schema/decimal.h"

#include <string.h>

int dec_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (i == start) {
        return 0;
    }
    if (i == n) {
        return 1;
    }
    if (s[i] != '.') {
        return 0;
    }
    i++;
    size_t fstart = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    return i > fstart && i == n;
}

struct parts {
    int neg;
    const char *ip;   /* integer digits without leading zeros */
    size_t il;
    const char *fp;   /* fraction digits without trailing zeros */
    size_t fl;
};

static void split(const char *s, size_t n, struct parts *p)
{
    size_t i = 0;
    p->neg = n > 0 && s[0] == '-';
    if (p->neg) {
        i = 1;
    }
    while (i + 1 < n && s[i] == '0' && s[i + 1] != '.') {
        i++;
    }
    const char *dot = memchr(s + i, '.', n - i);
    p->ip = s + i;
    p->il = dot ? (size_t)(dot - (s + i)) : n - i;
    if (p->il == 1 && p->ip[0] == '0') {
        p->il = 0;   /* "0" has no significant integer digits */
    }
    p->fp = dot ? dot + 1 : s + n;
    p->fl = dot ? (size_t)(s + n - (dot + 1)) : 0;
    while (p->fl > 0 && p->fp[p->fl - 1] == '0') {
        p->fl--;
    }
    if (p->il == 0 && p->fl == 0) {
        p->neg = 0;   /* -0 == 0 */
    }
}

static int cmp_abs(const struct parts *a, const struct parts *b)
{
    if (a->il != b->il) {
        return a->il < b->il ? -1 : 1;
    }
    int c = memcmp(a->ip, b->ip, a->il);
    if (c) {
        return c < 0 ? -1 : 1;
    }
    size_t m = a->fl > b->fl ? a->fl : b->fl;
    for (size_t i = 0; i < m; i++) {
        char da = i < a->fl ? a->fp[i] : '0';
        char db = i < b->fl ? b->fp[i] : '0';
        if (da != db) {
            return da < db ? -1 : 1;
        }
    }
    return 0;
}

int dec_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    struct parts pa, pb;
    split(a, an, &pa);
    split(b, bn, &pb);
    if (pa.neg != pb.neg) {
        return pa.neg ? -1 : 1;
    }
    int c = cmp_abs(&pa, &pb);
    return pa.neg ? -c : c;
}

int dec_negative(const char *s, size_t n)
{
    struct parts p;
    split(s, n, &p);
    return p.neg;
}
