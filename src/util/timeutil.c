/*
 * timeutil.c - see timeutil.h.  The civil-date conversions are the
 * well-known era-based formulas (400-year eras of 146097 days).
 */
#include "util/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Fill the fields shared by every format.  Years outside 0..9999 are
 * clamped: no exchange data lives there and validation rejects them. */
struct civil {
    unsigned y, mo, d, h, mi, s, ms;
};

static void to_civil(int64_t ms, struct civil *c)
{
    int64_t days = floor_div(ms, MS_PER_DAY);
    int64_t rem = ms - days * MS_PER_DAY;
    int64_t y;
    civil_from_days(days, &y, &c->mo, &c->d);
    if (y < 0) {
        y = 0;
    }
    if (y > 9999) {
        y = 9999;
    }
    c->y = (unsigned)y;
    c->h = (unsigned)(rem / MS_PER_HOUR);
    c->mi = (unsigned)(rem / MS_PER_MIN % 60);
    c->s = (unsigned)(rem / 1000 % 60);
    c->ms = (unsigned)(rem % 1000);
}

size_t time_format_sql(int64_t ms, char out[24])
{
    /* Rows come in time order, so most share the previous row's day: keep
     * its "YYYY-MM-DD " per thread (the loader thread formats too). */
    static _Thread_local int64_t memo_day = INT64_MIN;
    static _Thread_local char memo[11];
    int64_t days = floor_div(ms, MS_PER_DAY);
    int64_t rem = ms - days * MS_PER_DAY;
    if (days != memo_day) {
        struct civil c;
        to_civil(ms, &c);
        put2(memo, c.y / 100);
        put2(memo + 2, c.y % 100);
        memo[4] = '-';
        put2(memo + 5, c.mo);
        memo[7] = '-';
        put2(memo + 8, c.d);
        memo[10] = ' ';
        memo_day = days;
    }
    memcpy(out, memo, sizeof(memo));
    put2(out + 11, (unsigned)(rem / MS_PER_HOUR));
    out[13] = ':';
    put2(out + 14, (unsigned)(rem / MS_PER_MIN % 60));
    out[16] = ':';
    put2(out + 17, (unsigned)(rem / 1000 % 60));
    out[19] = '.';
    out[20] = (char)('0' + rem % 1000 / 100);
    put2(out + 21, (unsigned)(rem % 100));
    out[23] = '\0';
    return 23;
}

void time_format_iso(int64_t ms, char out[32])
{
    time_format_sql(ms, out);
    out[10] = 'T';
    out[23] = 'Z';
    out[24] = '\0';
}

void time_format_compact(int64_t ms, char out[20])
{
    struct civil c;
    to_civil(ms, &c);
    snprintf(out, 20, "%04u%02u%02uT%02u%02u%02uZ", c.y, c.mo, c.d, c.h, c.mi, c.s);
}

/* Read exactly n digits at *p into *v; advances *p.  0 on success. */
static int digits(const char **p, int n, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return -1;
        }
        x = x * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int fail(char *why, size_t n, const char *msg)
{
    if (why && n) {
        snprintf(why, n, "%s", msg);
    }
    return -1;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return dim[m - 1];
}

int time_parse(const char *s, int64_t *out_ms, char *why, size_t why_len)
{
    size_t len = strlen(s);
    if (len == 0) {
        return fail(why, why_len, "empty time");
    }
    size_t ndig = strspn(s, "0123456789");
    if (ndig == len) {
        if (len < 12) {
            return fail(why, why_len,
                        "looks like seconds, not milliseconds (give epoch milliseconds "
                        "or an ISO-8601 date)");
        }
        if (len > 15) {
            return fail(why, why_len, "epoch milliseconds out of range");
        }
        int64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            v = v * 10 + (s[i] - '0');
        }
        *out_ms = v;
        return 0;
    }

    const char *p = s;
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d)) {
        return fail(why, why_len, "expected epoch milliseconds or YYYY-MM-DD[THH:MM[:SS]][Z]");
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        return fail(why, why_len, "no such calendar date");
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) {
            return fail(why, why_len, "expected HH:MM after the date");
        }
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec)) {
                return fail(why, why_len, "expected SS after HH:MM:");
            }
            if (*p == '.') {
                p++;
                unsigned scale = 100;
                int n = 0;
                while (isdigit((unsigned char)*p)) {
                    if (n < 3) {
                        frac += (unsigned)(*p - '0') * scale;
                        scale /= 10;
                    }
                    n++;
                    p++;
                }
                if (n == 0) {
                    return fail(why, why_len, "expected digits after the decimal point");
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 59) {
            return fail(why, why_len, "time of day out of range");
        }
    }
    int64_t offset_ms = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    }
    else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        unsigned oh, om;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 14 || om > 59) {
            return fail(why, why_len, "bad UTC offset (expected +HH:MM)");
        }
        offset_ms = sign * ((int64_t)oh * MS_PER_HOUR + (int64_t)om * MS_PER_MIN);
    }
    if (*p != '\0') {
        return fail(why, why_len, "unexpected characters after the time");
    }
    int64_t days = days_from_civil(y, mo, d);
    *out_ms = days * MS_PER_DAY + h * MS_PER_HOUR + mi * MS_PER_MIN + sec * 1000LL + frac -
              offset_ms;
    return 0;
}
