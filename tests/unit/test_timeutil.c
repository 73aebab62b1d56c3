/*
 * test_timeutil.c - unit tests for src/util/timeutil.c: the civil-date
 * conversions (days_from_civil / civil_from_days, including negative days,
 * leap years and century rules), floor_div, the three datetime formats
 * (sql, iso, compact) and time_parse (epoch ms and ISO-8601 forms, offsets,
 * and the inputs it must refuse with a reason).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/timeutil.h"

struct civil_case {
    int64_t y;
    unsigned m;
    unsigned d;
    int64_t days;   /* days since 1970-01-01 (checked against Python's date) */
};

static const struct civil_case civil_cases[] = {
    {1970, 1, 1, 0},
    {1969, 12, 31, -1},
    {2000, 2, 29, 11016},
    {2000, 3, 1, 11017},
    {2100, 2, 28, 47540},
    {2100, 3, 1, 47541},
    {1900, 1, 1, -25567},
    {1600, 2, 29, -135081},
    {1, 1, 1, -719162},
    {0, 3, 1, -719468},
    {9999, 12, 31, 2932896},
    {2017, 8, 17, 17395},
    {2020, 1, 1, 18262},
    {2024, 1, 1, 19723},
    {2024, 12, 29, 20086},
};

static void test_civil_known_dates(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(civil_cases) / sizeof(civil_cases[0]); i++) {
        const struct civil_case *c = &civil_cases[i];
        assert_int_equal(days_from_civil(c->y, c->m, c->d), c->days);
        int64_t y;
        unsigned m, d;
        civil_from_days(c->days, &y, &m, &d);
        assert_int_equal(y, c->y);
        assert_int_equal(m, c->m);
        assert_int_equal(d, c->d);
    }
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Walk every day from 1600-01-01 to 2400-12-31 (negative and positive day
 * numbers) and check that the conversions agree with a plain calendar
 * counter in both directions. */
static void test_civil_round_trip_every_day(void **state)
{
    (void)state;
    int64_t y = 1600;
    unsigned m = 1;
    unsigned d = 1;
    int64_t z = days_from_civil(1600, 1, 1);
    assert_int_equal(z, -135140);
    while (y <= 2400) {
        assert_int_equal(days_from_civil(y, m, d), z);
        int64_t yy;
        unsigned mm, dd;
        civil_from_days(z, &yy, &mm, &dd);
        if (yy != y || mm != m || dd != d) {
            fail_msg("day %lld: got %lld-%u-%u, expected %lld-%u-%u", (long long)z,
                     (long long)yy, mm, dd, (long long)y, m, d);
        }
        z++;
        if (++d > month_days(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
}

/* Far from the epoch (both signs) the two functions still invert each other. */
static void test_civil_round_trip_far_days(void **state)
{
    (void)state;
    for (int64_t z = -50000000; z <= 50000000; z += 9973) {
        int64_t y;
        unsigned m, d;
        civil_from_days(z, &y, &m, &d);
        assert_true(m >= 1 && m <= 12);
        assert_true(d >= 1 && d <= month_days(y, m));
        assert_int_equal(days_from_civil(y, m, d), z);
    }
}

static void test_floor_div(void **state)
{
    (void)state;
    assert_int_equal(floor_div(7, 2), 3);
    assert_int_equal(floor_div(-7, 2), -4);
    assert_int_equal(floor_div(-6, 2), -3);
    assert_int_equal(floor_div(0, 5), 0);
    assert_int_equal(floor_div(-1, MS_PER_DAY), -1);
    assert_int_equal(floor_div(7, -2), -4);
}

struct fmt_case {
    int64_t ms;
    const char *sql;
    const char *iso;
    const char *compact;
};

static const struct fmt_case fmt_cases[] = {
    {0, "1970-01-01 00:00:00.000", "1970-01-01T00:00:00.000Z", "19700101T000000Z"},
    {1687363200000LL, "2023-06-21 16:00:00.000", "2023-06-21T16:00:00.000Z",
     "20230621T160000Z"},
    {1679661581646LL, "2023-03-24 12:39:41.646", "2023-03-24T12:39:41.646Z",
     "20230324T123941Z"},
    {951782400000LL, "2000-02-29 00:00:00.000", "2000-02-29T00:00:00.000Z",
     "20000229T000000Z"},
    {1725476819999LL, "2024-09-04 19:06:59.999", "2024-09-04T19:06:59.999Z",
     "20240904T190659Z"},
    {-1, "1969-12-31 23:59:59.999", "1969-12-31T23:59:59.999Z", "19691231T235959Z"},
    {253402300799999LL, "9999-12-31 23:59:59.999", "9999-12-31T23:59:59.999Z",
     "99991231T235959Z"},
    {5, "1970-01-01 00:00:00.005", "1970-01-01T00:00:00.005Z", "19700101T000000Z"},
    {40, "1970-01-01 00:00:00.040", "1970-01-01T00:00:00.040Z", "19700101T000000Z"},
};

static void test_format_known_instants(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fmt_cases) / sizeof(fmt_cases[0]); i++) {
        const struct fmt_case *c = &fmt_cases[i];
        char sql[24];
        char iso[32];
        char compact[20];
        memset(sql, 'x', sizeof(sql));
        assert_int_equal(time_format_sql(c->ms, sql), 23);
        assert_string_equal(sql, c->sql);
        time_format_iso(c->ms, iso);
        assert_string_equal(iso, c->iso);
        time_format_compact(c->ms, compact);
        assert_string_equal(compact, c->compact);
    }
}

/* Formatting and parsing are inverses for every millisecond format. */
static void test_format_then_parse(void **state)
{
    (void)state;
    for (int64_t ms = 0; ms < 4102444800000LL; ms += 7919LL * 3600 * 1000 + 123) {
        char sql[24];
        char iso[32];
        int64_t back = -1;
        char why[128];
        time_format_sql(ms, sql);
        assert_int_equal(time_parse(sql, &back, why, sizeof(why)), 0);
        assert_int_equal(back, ms);
        time_format_iso(ms, iso);
        back = -1;
        assert_int_equal(time_parse(iso, &back, why, sizeof(why)), 0);
        assert_int_equal(back, ms);
    }
}

static void test_now_is_plausible(void **state)
{
    (void)state;
    int64_t now = time_now_ms();
    assert_true(now > 1700000000000LL);           /* after 2023-11 */
    assert_true(now < 4102444800000LL);           /* before 2100 */
    int64_t a = time_monotonic_ms();
    int64_t b = time_monotonic_ms();
    assert_true(b >= a);
}

struct parse_ok {
    const char *in;
    int64_t ms;
};

static const struct parse_ok parse_ok_cases[] = {
    {"1687363200000", 1687363200000LL},
    {"100000000000", 100000000000LL},                 /* 12 digits: the minimum */
    {"2023-06-21", 1687305600000LL},
    {"2023-06-21T16:00", 1687363200000LL},
    {"2023-06-21T16:00:00", 1687363200000LL},
    {"2023-06-21T16:00:00Z", 1687363200000LL},
    {"2023-06-21T16:00Z", 1687363200000LL},
    {"2023-06-21 16:00:00", 1687363200000LL},
    {"2023-06-21 16:00", 1687363200000LL},
    {"2023-06-21T16:00:00.646", 1687363200646LL},
    {"2023-06-21T16:00:00.6", 1687363200600LL},
    {"2023-06-21T16:00:00.06Z", 1687363200060LL},
    {"2023-06-21T16:00:00.123456", 1687363200123LL},  /* beyond ms: truncated */
    {"2023-06-22T00:00:00+08:00", 1687363200000LL},
    {"2023-06-22T00:00+08:00", 1687363200000LL},
    {"2023-06-21T10:30:00-05:30", 1687363200000LL},
    {"2023-06-21T16:00:00.500+00:00", 1687363200500LL},
    {"2023-06-21 16:00:00.000", 1687363200000LL},     /* the warehouse's own text */
    {"2024-02-29", 1709164800000LL},
    {"2000-02-29T00:00:00Z", 951782400000LL},
    {"1970-01-01", 0},
    {"2023-03-24T12:39:41.646Z", 1679661581646LL},
    {"1999-12-31T23:59:59.999Z", 946684799999LL},
};

static void test_parse_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_ok_cases) / sizeof(parse_ok_cases[0]); i++) {
        const struct parse_ok *c = &parse_ok_cases[i];
        int64_t ms = -12345;
        char why[128] = "";
        int rc = time_parse(c->in, &ms, why, sizeof(why));
        if (rc != 0 || ms != c->ms) {
            fail_msg("time_parse(\"%s\"): rc %d, ms %lld (%s), expected %lld", c->in, rc,
                     (long long)ms, why, (long long)c->ms);
        }
    }
}

struct parse_bad {
    const char *in;
    const char *why_contains;   /* NULL: any non-empty reason */
};

static const struct parse_bad parse_bad_cases[] = {
    {"1687363200", "seconds"},          /* 10 digits: seconds, not ms */
    {"168736320", "seconds"},
    {"0", "seconds"},
    {"", "empty"},
    {"2023-02-30", "calendar"},
    {"2023-02-29", "calendar"},         /* 2023 is not a leap year */
    {"2100-02-29", "calendar"},         /* neither is 2100 */
    {"2023-13-01", "calendar"},
    {"2023-00-10", "calendar"},
    {"2023-06-00", "calendar"},
    {"2023-06-31", "calendar"},
    {"2023-06-21T25:00", "range"},
    {"2023-06-21T24:00", "range"},
    {"2023-06-21T23:60", "range"},
    {"2023-06-21T23:59:60", "range"},
    {"2023-06-21T16:00:00Zjunk", "unexpected"},
    {"2023-06-21x", "unexpected"},
    {"2023-06-21T16:00:00 ", "unexpected"},
    {"2023-06-21T16", NULL},
    {"2023-06-21T", NULL},
    {"2023-06-21T16:0", NULL},
    {"2023-06-21T16:00:00.", "digits"},
    {"2023-06-21T16:00:00+08", "offset"},
    {"2023-06-21T16:00:00+0800", "offset"},
    {"2023-06-21T16:00:00+15:00", "offset"},
    {"2023-6-21", NULL},
    {"23-06-21", NULL},
    {"yesterday", NULL},
    {"1687363200000x", NULL},
    {"-1687363200000", NULL},
    {"12345678901234567", "range"},    /* 17 digits of ms: year 5e6 */
    {"0001687363200000", "range"},     /* 16 digits: microseconds, not ms */
    {" 2023-06-21", NULL},
};

static void test_parse_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_bad_cases) / sizeof(parse_bad_cases[0]); i++) {
        const struct parse_bad *c = &parse_bad_cases[i];
        int64_t ms = 777;
        char why[128] = "";
        int rc = time_parse(c->in, &ms, why, sizeof(why));
        if (rc != -1) {
            fail_msg("time_parse(\"%s\") accepted it as %lld", c->in, (long long)ms);
        }
        assert_int_equal(ms, 777);   /* output untouched on failure */
        assert_true(why[0] != '\0');
        if (c->why_contains && !strstr(why, c->why_contains)) {
            fail_msg("time_parse(\"%s\"): reason \"%s\" does not mention \"%s\"", c->in, why,
                     c->why_contains);
        }
    }
}

/* A NULL or zero-sized reason buffer is allowed. */
static void test_parse_without_reason_buffer(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(time_parse("2023-02-30", &ms, NULL, 0), -1);
    char one[1] = {'x'};
    assert_int_equal(time_parse("nope", &ms, one, 0), -1);
    assert_int_equal(one[0], 'x');
    char small[8];
    assert_int_equal(time_parse("1687363200", &ms, small, sizeof(small)), -1);
    assert_true(strlen(small) < sizeof(small));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_known_dates),
        cmocka_unit_test(test_civil_round_trip_every_day),
        cmocka_unit_test(test_civil_round_trip_far_days),
        cmocka_unit_test(test_floor_div),
        cmocka_unit_test(test_format_known_instants),
        cmocka_unit_test(test_format_then_parse),
        cmocka_unit_test(test_now_is_plausible),
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_without_reason_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
