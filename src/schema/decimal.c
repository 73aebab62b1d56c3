/*
 * decimal.c - see decimal.h.  Comparison works on the digit strings:
 * strip the sign and leading zeros of the integer part, compare integer
 * parts by length then digits, then fraction digits padded with zeros.
 */
#include "schema/decimal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
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

/* Same length, no sign and the point (if any) at the same place: the
 * digits line up, so byte order is numeric order (the usual case: a
 * symbol's prices all carry the same number of decimals). */
static int aligned(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn || an == 0 || a[0] == '-' || b[0] == '-') {
        return 0;
    }
    const char *dot = memchr(a, '.', an);
    size_t at = dot ? (size_t)(dot - a) : an;
    return at == an ? memchr(b, '.', bn) == NULL : b[at] == '.';
}

int dec_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    if (aligned(a, an, b, bn)) {
        int c = memcmp(a, b, an);
        return (c > 0) - (c < 0);
    }
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
    if (n == 0 || s[0] != '-') {
        return 0;
    }
    struct parts p;
    split(s, n, &p);
    return p.neg;
}

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

double dec_to_double(const char *s, size_t n)
{
    /* Fast path: all digits make an integer m < 2^53 and there are at most
     * 22 decimals, so m and 10^k are exact doubles and one IEEE division
     * rounds m / 10^k correctly, which is what strtod returns too. */
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    i = (size_t)neg;
    uint64_t m = 0;
    int any = 0;
    int digits = 0;
    int decimals = -1;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (c < '0' || c > '9') {
            break;
        }
        any = 1;
        if (m || c != '0') {
            digits++;
        }
        m = m * 10 + (uint64_t)(c - '0');
        if (decimals >= 0) {
            decimals++;
        }
        if (digits > 15) {
            break;
        }
    }
    if (i == n && any && digits <= 15 && decimals <= 22) {
        double v = (double)m;
        if (decimals > 0) {
            v /= exact_pow10[decimals];
        }
        return neg ? -v : v;
    }
    /* Anything else (long mantissas, not a plain decimal): strtod, which
     * needs a NUL-terminated copy of s[0..n). */
    char small[64];
    char *buf = n < sizeof(small) ? small : malloc(n + 1);
    if (!buf) {
        return NAN;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) {
        free(buf);
    }
    return v;
}
