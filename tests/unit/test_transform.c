/*
 * test_transform.c - unit tests for src/transform/transform.c and tz.c:
 * transform_row on real rows (doubles exactly equal to strtod of the
 * exchange's strings, datetime columns, ignore and updated_at carried
 * over), the local-time column in Asia/Singapore, UTC, America/New_York
 * across both 2024 DST changes, half- and quarter-hour zones, and tz_valid
 * on good and hostile zone names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#include "extract/kline_parse.h"
#include "schema/kline.h"
#include "transform/transform.h"
#include "transform/tz.h"
#include "util/timeutil.h"

static const int num_slot[TN_COUNT] = {
    KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, KS_QUOTE_VOLUME, KS_TAKER_BASE,
    KS_TAKER_QUOTE,
};

/* A kline with only the times set; numbers are zero. */
static void kline_at(struct kline *k, int64_t open_time, int64_t close_time)
{
    memset(k, 0, sizeof(*k));
    k->open_time = open_time;
    k->close_time = close_time;
    for (int i = 0; i < KS_COUNT; i++) {
        snprintf(k->s[i], sizeof(k->s[i]), "0");
        k->len[i] = 1;
    }
    snprintf(k->updated_at, sizeof(k->updated_at), "2024-01-01 00:00:00.000");
}

static void test_real_row(void **state)
{
    (void)state;
    assert_int_equal(tz_init("Asia/Singapore"), 0);
    size_t len;
    char *body = read_testdata("binance/patten-trainer/BTCUSDT_1m.json", &len);
    struct kline_batch b;
    struct err e;
    err_clear(&e);
    assert_int_equal(kline_batch_init(&b, 1000), 0);
    assert_int_equal(kline_parse_page(body, len, &b, &e), 0);
    assert_int_equal(b.n, 1000);

    struct kline *k = &b.rows[0];
    snprintf(k->updated_at, sizeof(k->updated_at), "2024-09-04 20:03:00.000");
    struct tkline t;
    memset(&t, 0x55, sizeof(t));
    transform_row(k, &t);
    assert_int_equal(t.open_time, 1725416820000LL);
    assert_int_equal(t.close_time, 1725416879999LL);
    assert_int_equal(t.trades, 1425);
    /* Exactly the doubles strtod gives (correctly rounded), compared with ==. */
    assert_true(t.v[TN_OPEN] == 56714.0);
    assert_true(t.v[TN_HIGH] == 56714.01);
    assert_true(t.v[TN_LOW] == 56634.0);
    assert_true(t.v[TN_CLOSE] == 56642.0);
    assert_true(t.v[TN_VOLUME] == 11.02444);
    assert_true(t.v[TN_QUOTE_VOLUME] == 624782.9503264);
    assert_true(t.v[TN_TAKER_BASE] == 2.24261);
    assert_true(t.v[TN_TAKER_QUOTE] == 127055.798084);
    assert_string_equal(t.utc_datetime, "2024-09-04 02:27:00.000");
    assert_string_equal(t.open_dt, "2024-09-04 02:27:00.000");
    assert_string_equal(t.close_dt, "2024-09-04 02:27:59.999");
    assert_string_equal(t.local_dt, "2024-09-04 10:27:00.000+08:00");
    assert_string_equal(t.ignore, "0");
    assert_string_equal(t.updated_at, "2024-09-04 20:03:00.000");

    /* Every row of the page: each double is strtod of its string. */
    for (size_t i = 0; i < b.n; i++) {
        transform_row(&b.rows[i], &t);
        for (int f = 0; f < TN_COUNT; f++) {
            double want = strtod(b.rows[i].s[num_slot[f]], NULL);
            if (!(t.v[f] == want)) {
                fail_msg("row %zu column %d: %.17g != strtod(\"%s\") = %.17g", i, f, t.v[f],
                         b.rows[i].s[num_slot[f]], want);
            }
        }
        char sql[24];
        time_format_sql(b.rows[i].open_time, sql);
        assert_string_equal(t.utc_datetime, sql);
        time_format_sql(b.rows[i].close_time, sql);
        assert_string_equal(t.close_dt, sql);
        assert_int_equal(strlen(t.local_dt), 29);
        assert_string_equal(t.local_dt + 23, "+08:00");
    }
    kline_batch_free(&b);
    free(body);
}

/* Long fraction strings round correctly (no digit-by-digit accumulation). */
static void test_decimal_strings_round_correctly(void **state)
{
    (void)state;
    assert_int_equal(tz_init("UTC"), 0);
    static const char *const values[] = {
        "0.1", "0.30000000000000004", "123456789.12345678", "0.00000001", "9007199254740993",
        "1.000000000000000111022302462515654042363166809", "28080.00000000",
        "57771.01000000", "0.00000000",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        assert_true(strlen(values[i]) < KLINE_STR_MAX);
        struct kline k;
        kline_at(&k, 0, 59999);
        for (int f = 0; f < TN_COUNT; f++) {
            snprintf(k.s[num_slot[f]], KLINE_STR_MAX, "%s", values[i]);
            k.len[num_slot[f]] = (uint8_t)strlen(values[i]);
        }
        struct tkline t;
        transform_row(&k, &t);
        double want = strtod(values[i], NULL);
        for (int f = 0; f < TN_COUNT; f++) {
            assert_true(t.v[f] == want);
        }
    }
}

struct local_case {
    const char *zone;
    int64_t ms;
    const char *local;
    long offset;
};

static const struct local_case local_cases[] = {
    {"Asia/Singapore", 0, "1970-01-01 07:30:00.000+07:30", 27000},
    {"Asia/Singapore", 1687363200000LL, "2023-06-22 00:00:00.000+08:00", 28800},
    {"Asia/Singapore", 1679661581646LL, "2023-03-24 20:39:41.646+08:00", 28800},
    {"UTC", 1687363200000LL, "2023-06-21 16:00:00.000+00:00", 0},
    {"UTC", 1679661581646LL, "2023-03-24 12:39:41.646+00:00", 0},
    /* New York, spring forward 2024-03-10 at 02:00 EST = 07:00 UTC. */
    {"America/New_York", 1710053100000LL, "2024-03-10 01:45:00.000-05:00", -18000},
    {"America/New_York", 1710053999999LL, "2024-03-10 01:59:59.999-05:00", -18000},
    {"America/New_York", 1710054000000LL, "2024-03-10 03:00:00.000-04:00", -14400},
    {"America/New_York", 1710054900000LL, "2024-03-10 03:15:00.000-04:00", -14400},
    /* Fall back 2024-11-03 at 02:00 EDT = 06:00 UTC: 01:xx happens twice. */
    {"America/New_York", 1730613540000LL, "2024-11-03 01:59:00.000-04:00", -14400},
    {"America/New_York", 1730613600000LL, "2024-11-03 01:00:00.000-05:00", -18000},
    {"Asia/Kolkata", 1687363200000LL, "2023-06-21 21:30:00.000+05:30", 19800},
    {"Asia/Kathmandu", 1687363200000LL, "2023-06-21 21:45:00.000+05:45", 20700},
    {"America/St_Johns", 1704067200000LL, "2023-12-31 20:30:00.000-03:30", -12600},
    {"Pacific/Chatham", 1704067200000LL, "2024-01-01 13:45:00.000+13:45", 49500},
    {"Europe/London", 1687363200000LL, "2023-06-21 17:00:00.000+01:00", 3600},
    {"Europe/London", 1704067200000LL, "2024-01-01 00:00:00.000+00:00", 0},
};

static void test_local_time_column(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(local_cases) / sizeof(local_cases[0]); i++) {
        const struct local_case *c = &local_cases[i];
        if (tz_init(c->zone) != 0) {
            fail_msg("tz_init(\"%s\") failed", c->zone);
        }
        char out[32];
        memset(out, 'x', sizeof(out));
        assert_int_equal(tz_format_local(c->ms, out), 29);
        if (strcmp(out, c->local) != 0) {
            fail_msg("%s at %lld: \"%s\", expected \"%s\"", c->zone, (long long)c->ms, out,
                     c->local);
        }
        assert_int_equal(tz_offset_at(c->ms), c->offset);
        /* Through transform_row too. */
        struct kline k;
        kline_at(&k, c->ms, c->ms + 59999);
        struct tkline t;
        transform_row(&k, &t);
        assert_string_equal(t.local_dt, c->local);
    }
}

/* Walking a New York day minute by minute in order (the quarter-hour cache
 * is hit and refreshed) gives the same offsets as asking each cold. */
static void test_offset_cache_walk(void **state)
{
    (void)state;
    assert_int_equal(tz_init("America/New_York"), 0);
    const int64_t from = 1710028800000LL;    /* 2024-03-10 00:00 UTC */
    int changes = 0;
    long prev = tz_offset_at(from);
    for (int64_t ms = from; ms < from + MS_PER_DAY; ms += MS_PER_MIN) {
        long off = tz_offset_at(ms);
        long want = ms < 1710054000000LL ? -18000 : -14400;
        if (off != want) {
            fail_msg("offset at %lld is %ld, expected %ld", (long long)ms, off, want);
        }
        changes += off != prev;
        prev = off;
    }
    assert_int_equal(changes, 1);
    /* And backwards in time after the cache holds a later value. */
    assert_int_equal(tz_offset_at(1710053999999LL), -18000);
    /* Switching zones drops the cache. */
    assert_int_equal(tz_init("Asia/Singapore"), 0);
    assert_int_equal(tz_offset_at(1710053999999LL), 28800);
}

static void test_tz_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "UTC", "Europe/London", "Asia/Singapore", "America/New_York",
        "America/Argentina/Buenos_Aires", "Etc/GMT+5",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!tz_valid(good[i])) {
            fail_msg("tz_valid(\"%s\") should accept it", good[i]);
        }
    }
    static const char *const bad[] = {
        "Mars/Base", "../etc/passwd", "", "/etc/passwd", "Europe/../../etc/passwd",
        "Europe/London ", "Europe/London\n", "Asia/Singapore;rm", "Europe\\London",
        "asia/singapore/x", "UTC/..", "Europe//London/x",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tz_valid(bad[i])) {
            fail_msg("tz_valid(\"%s\") should reject it", bad[i]);
        }
    }
    assert_false(tz_valid(NULL));
    assert_int_equal(tz_init("Mars/Base"), -1);
    /* A failed tz_init leaves the previous zone in force. */
    assert_int_equal(tz_init("Asia/Singapore"), 0);
    assert_int_equal(tz_init("Mars/Base"), -1);
    assert_int_equal(tz_offset_at(0), 27000);   /* 1970: +07:30 */
    assert_int_equal(tz_offset_at(1687363200000LL), 28800);
}

/* tz_valid must only accept names that glibc will load as a zone; glibc
 * falls back to UTC silently for anything else, which is what tz_valid is
 * there to prevent (tz.h).  A directory of the zone database ("Asia") or a
 * data file that is not a zone ("leapseconds") passes the access() check.
 * BUG if this fails: see the report (tz.c tz_valid). */
static void test_bug_tz_valid_rejects_non_zone_files(void **state)
{
    (void)state;
    assert_false(tz_valid("Asia"));
    assert_false(tz_valid("America"));
    assert_false(tz_valid("leapseconds"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_row),
        cmocka_unit_test(test_decimal_strings_round_correctly),
        cmocka_unit_test(test_local_time_column),
        cmocka_unit_test(test_offset_cache_walk),
        cmocka_unit_test(test_tz_valid),
        cmocka_unit_test(test_bug_tz_valid_rejects_non_zone_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
