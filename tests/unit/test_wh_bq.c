/*
 * test_wh_bq.c - unit tests for the BigQuery warehouse's pure parts
 * (src/load/wh_bq_api.c): BigQuery's DATETIME text as the REST API renders
 * it (with or without a fraction, 'T' or space) back to epoch ms, the
 * inputs it refuses, and table references.  The REST calls, loads, MERGE
 * and lock are covered end to end by tests/integration/test_wh_bq.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#ifdef DATAOPS_HAVE_BQ
#include "load/wh_bq.h"
#include "util/timeutil.h"

struct dt_case {
    const char *text;
    int64_t ms;
};

static const struct dt_case dt_cases[] = {
    {"2023-03-20T00:00:00", 1679270400000},
    {"2023-03-20 00:00:00", 1679270400000},
    {"2023-03-20T00:14:59.999000", 1679271299999},
    {"2023-03-20 00:14:59.999", 1679271299999},
    {"2023-03-20T00:14:59.9", 1679271299900},
    {"2023-03-20T00:14:59.999999", 1679271299999},   /* microseconds truncated */
    {"1970-01-01T00:00:00", 0},
    {"2017-08-17T04:00:00", 1502942400000},
    {"2024-02-29T23:59:59.5", 1709251199500},
};

static void test_datetime_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dt_cases) / sizeof(dt_cases[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(bq_datetime_ms(dt_cases[i].text, &ms), 0);
        if (ms != dt_cases[i].ms) {
            fail_msg("%s: got %lld, want %lld", dt_cases[i].text, (long long)ms,
                     (long long)dt_cases[i].ms);
        }
    }
}

static void test_datetime_round_trip_with_sql_text(void **state)
{
    (void)state;
    char text[24];
    for (int64_t ms = 1502942400000; ms < 1502942400000 + 3 * MS_PER_DAY; ms += 4321987) {
        int64_t back = -1;
        time_format_sql(ms, text);
        assert_int_equal(bq_datetime_ms(text, &back), 0);
        assert_int_equal(back, ms);
    }
}

static void test_datetime_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL, "", "2023-03-20", "2023-03-20T00:00", "2023-13-01T00:00:00",
        "2023-03-20T24:00:00", "2023-03-20T00:00:00Z", "2023-03-20T00:00:00+08:00",
        "2023-03-20X00:00:00", "1679270400000", "2023-03-20T00:00:00.12a",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        if (bq_datetime_ms(bad[i], &ms) != -1) {
            fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
        }
    }
}

static void test_table_ref(void **state)
{
    (void)state;
    struct bq c;
    memset(&c, 0, sizeof(c));
    snprintf(c.project, sizeof(c.project), "example.com:my-project");
    char ref[200];
    bq_table_ref(&c, "thebareops_production", "raw_binance_btcusdt_spot", ref, sizeof(ref));
    assert_string_equal(ref, "`example.com:my-project.thebareops_production."
                             "raw_binance_btcusdt_spot`");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime_text),
        cmocka_unit_test(test_datetime_round_trip_with_sql_text),
        cmocka_unit_test(test_datetime_refused),
        cmocka_unit_test(test_table_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
static void test_not_built(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
