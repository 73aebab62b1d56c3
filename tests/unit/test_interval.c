/*
 * test_interval.c - unit tests for src/schema/interval.c: the 16 Binance
 * intervals (case-sensitive lookup, 1m vs 1M, path names), their grids
 * (fixed lengths from the epoch, 3d by days since the epoch = 1 mod 3, 1w on
 * Mondays, 1M on the 1st with 28..31-day lengths), align_down/align_up/next/
 * length for every interval, and interval_count over ranges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "schema/interval.h"
#include "util/timeutil.h"

/* Midnight UTC of a calendar day, in ms. */
static int64_t day_ms(int64_t y, unsigned m, unsigned d)
{
    return days_from_civil(y, m, d) * MS_PER_DAY;
}

struct iv_case {
    const char *name;
    const char *path_name;
    int64_t ms;   /* 0 for the calendar month */
};

static const struct iv_case iv_cases[INTERVAL_COUNT] = {
    {"1s", "1s", 1000LL},
    {"1m", "1m", 60000LL},
    {"3m", "3m", 180000LL},
    {"5m", "5m", 300000LL},
    {"15m", "15m", 900000LL},
    {"30m", "30m", 1800000LL},
    {"1h", "1h", 3600000LL},
    {"2h", "2h", 7200000LL},
    {"4h", "4h", 14400000LL},
    {"6h", "6h", 21600000LL},
    {"8h", "8h", 28800000LL},
    {"12h", "12h", 43200000LL},
    {"1d", "1d", 86400000LL},
    {"3d", "3d", 259200000LL},
    {"1w", "1w", 604800000LL},
    {"1M", "1mo", 0},
};

static void test_all_intervals_found(void **state)
{
    (void)state;
    for (size_t i = 0; i < INTERVAL_COUNT; i++) {
        const struct interval *iv = interval_find(iv_cases[i].name);
        assert_non_null(iv);
        assert_string_equal(iv->name, iv_cases[i].name);
        assert_string_equal(iv->path_name, iv_cases[i].path_name);
        assert_int_equal(iv->ms, iv_cases[i].ms);
        /* The table itself lists each exactly once. */
        assert_ptr_equal(iv, &intervals[i]);
    }
}

static void test_lookup_is_case_sensitive(void **state)
{
    (void)state;
    const struct interval *minute = interval_find("1m");
    const struct interval *month = interval_find("1M");
    assert_non_null(minute);
    assert_non_null(month);
    assert_ptr_not_equal(minute, month);
    assert_int_equal(minute->ms, MS_PER_MIN);
    assert_int_equal(month->ms, 0);
    assert_string_equal(month->path_name, "1mo");

    static const char *const unknown[] = {
        "1MO", "1mo", "2m", "", "1H", "1D", "1W", "1S", "M1", "1m ", " 1m", "60s", "1y",
        "3D", "1M\n", "1",
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        if (interval_find(unknown[i]) != NULL) {
            fail_msg("interval_find(\"%s\") should be NULL", unknown[i]);
        }
    }
}

/* 2024-01-01 00:00 UTC is on every grid at once: a multiple of 1d, a
 * Monday, day 19723 = 1 mod 3, and the 1st of a month.  From there every
 * interval's neighbours are checked. */
static void test_every_interval_around_a_common_boundary(void **state)
{
    (void)state;
    const int64_t t0 = day_ms(2024, 1, 1);
    assert_int_equal(t0, 1704067200000LL);
    for (size_t i = 0; i < INTERVAL_COUNT; i++) {
        const struct interval *iv = &intervals[i];
        int64_t len = iv->ms ? iv->ms : 31 * MS_PER_DAY;          /* January */
        int64_t prev_len = iv->ms ? iv->ms : 31 * MS_PER_DAY;     /* December */
        assert_true(interval_is_aligned(iv, t0));
        assert_false(interval_is_aligned(iv, t0 + 1));
        assert_false(interval_is_aligned(iv, t0 - 1));
        assert_int_equal(interval_next(iv, t0), t0 + len);
        assert_int_equal(interval_length(iv, t0), len);
        assert_true(interval_is_aligned(iv, t0 + len));
        assert_int_equal(interval_align_down(iv, t0), t0);
        assert_int_equal(interval_align_up(iv, t0), t0);
        assert_int_equal(interval_align_down(iv, t0 + 1), t0);
        assert_int_equal(interval_align_down(iv, t0 + len - 1), t0);
        assert_int_equal(interval_align_up(iv, t0 + 1), t0 + len);
        assert_int_equal(interval_align_up(iv, t0 + len - 1), t0 + len);
        assert_int_equal(interval_align_down(iv, t0 - 1), t0 - prev_len);
        assert_int_equal(interval_align_up(iv, t0 - 1), t0);
        assert_int_equal(interval_count(iv, t0, t0 + len), 1);
        assert_int_equal(interval_count(iv, t0, t0 + len + 1), 2);
        assert_int_equal(interval_count(iv, t0 + 1, t0 + len), 0);
        assert_int_equal(interval_count(iv, t0 - 1, t0 + 1), 1);
    }
}

/* Fixed-length intervals: 50 consecutive candles, each next() one length on. */
static void test_fixed_intervals_walk(void **state)
{
    (void)state;
    const int64_t t0 = day_ms(2024, 1, 1);
    for (size_t i = 0; i < INTERVAL_COUNT; i++) {
        const struct interval *iv = &intervals[i];
        if (!iv->ms) {
            continue;
        }
        int64_t t = t0;
        for (int k = 0; k < 50; k++) {
            int64_t n = interval_next(iv, t);
            assert_int_equal(n - t, iv->ms);
            assert_true(interval_is_aligned(iv, n));
            assert_int_equal(interval_align_down(iv, n - 1), t);
            t = n;
        }
        assert_int_equal(interval_count(iv, t0, t), 50);
        assert_int_equal(interval_count(iv, t0, t + 1), 51);
    }
}

static void test_3d_grid(void **state)
{
    (void)state;
    const struct interval *iv = interval_find("3d");
    assert_non_null(iv);
    static const int starts[][3] = {{2017, 8, 17}, {2020, 1, 1}, {2024, 12, 29},
                                    {1970, 1, 2}, {2020, 1, 4}, {2024, 12, 26}};
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        int64_t t = day_ms(starts[i][0], (unsigned)starts[i][1], (unsigned)starts[i][2]);
        assert_true(interval_is_aligned(iv, t));
        assert_int_equal(floor_div(t, MS_PER_DAY) % 3, 1);
    }
    static const int not_starts[][3] = {{2020, 1, 2}, {2020, 1, 3}, {1970, 1, 1},
                                        {2017, 8, 18}, {2024, 12, 30}, {2024, 1, 2}};
    for (size_t i = 0; i < sizeof(not_starts) / sizeof(not_starts[0]); i++) {
        int64_t t = day_ms(not_starts[i][0], (unsigned)not_starts[i][1],
                           (unsigned)not_starts[i][2]);
        assert_false(interval_is_aligned(iv, t));
    }
    int64_t jan1 = day_ms(2020, 1, 1);
    assert_int_equal(interval_next(iv, jan1), day_ms(2020, 1, 4));
    assert_int_equal(interval_align_down(iv, day_ms(2020, 1, 2) + 12 * MS_PER_HOUR), jan1);
    assert_int_equal(interval_align_down(iv, day_ms(2020, 1, 3)), jan1);
    assert_int_equal(interval_align_up(iv, day_ms(2020, 1, 2)), day_ms(2020, 1, 4));
    /* Before 1970 the grid continues: 1969-12-30 is day -2 = 1 mod 3. */
    assert_int_equal(interval_align_down(iv, 0), day_ms(1969, 12, 30));
    assert_true(interval_is_aligned(iv, day_ms(1969, 12, 30)));
    assert_int_equal(interval_count(iv, jan1, day_ms(2020, 1, 10)), 3);
    assert_int_equal(interval_count(iv, day_ms(2020, 1, 2), day_ms(2020, 1, 4)), 0);
    assert_int_equal(interval_count(iv, day_ms(2020, 1, 2), day_ms(2020, 1, 4) + 1), 1);
}

static void test_1w_mondays(void **state)
{
    (void)state;
    const struct interval *iv = interval_find("1w");
    assert_non_null(iv);
    int64_t first_monday = day_ms(1970, 1, 5);
    assert_int_equal(first_monday, 4 * MS_PER_DAY);
    assert_true(interval_is_aligned(iv, first_monday));
    assert_true(interval_is_aligned(iv, day_ms(2024, 1, 1)));
    assert_true(interval_is_aligned(iv, day_ms(2024, 12, 30)));
    assert_true(interval_is_aligned(iv, day_ms(2017, 8, 14)));
    /* Every other weekday of that week is off the grid. */
    for (unsigned d = 2; d <= 7; d++) {
        assert_false(interval_is_aligned(iv, day_ms(2024, 1, d)));
        assert_int_equal(interval_align_down(iv, day_ms(2024, 1, d)), day_ms(2024, 1, 1));
        assert_int_equal(interval_align_up(iv, day_ms(2024, 1, d)), day_ms(2024, 1, 8));
    }
    /* The week closes Sunday 23:59:59.999. */
    int64_t sunday_end = day_ms(2024, 1, 8) - 1;
    assert_int_equal(interval_align_down(iv, sunday_end), day_ms(2024, 1, 1));
    assert_int_equal(interval_next(iv, day_ms(2024, 1, 1)), day_ms(2024, 1, 8));
    /* The epoch is a Thursday: its week began on Monday 1969-12-29. */
    assert_false(interval_is_aligned(iv, 0));
    assert_int_equal(interval_align_down(iv, 0), day_ms(1969, 12, 29));
    assert_int_equal(interval_align_up(iv, 0), first_monday);
    /* 2024 has 53 Mondays (Jan 1 and Dec 30 included). */
    assert_int_equal(interval_count(iv, day_ms(2024, 1, 1), day_ms(2025, 1, 1)), 53);
    assert_int_equal(interval_count(iv, day_ms(2023, 1, 1), day_ms(2024, 1, 1)), 52);
}

struct month_case {
    int64_t y;
    unsigned m;
    int64_t days;
};

static const struct month_case month_cases[] = {
    {2023, 1, 31}, {2023, 2, 28}, {2023, 3, 31}, {2023, 4, 30}, {2023, 5, 31},
    {2023, 6, 30}, {2023, 7, 31}, {2023, 8, 31}, {2023, 9, 30}, {2023, 10, 31},
    {2023, 11, 30}, {2023, 12, 31}, {2024, 2, 29}, {2000, 2, 29}, {2100, 2, 28},
    {1900, 2, 28}, {1969, 12, 31}, {1970, 1, 31},
};

static void test_1M_calendar(void **state)
{
    (void)state;
    const struct interval *iv = interval_find("1M");
    assert_non_null(iv);
    for (size_t i = 0; i < sizeof(month_cases) / sizeof(month_cases[0]); i++) {
        const struct month_case *c = &month_cases[i];
        int64_t start = day_ms(c->y, c->m, 1);
        int64_t next = c->m == 12 ? day_ms(c->y + 1, 1, 1) : day_ms(c->y, c->m + 1, 1);
        assert_true(interval_is_aligned(iv, start));
        assert_int_equal(interval_length(iv, start), c->days * MS_PER_DAY);
        assert_int_equal(interval_next(iv, start), next);
        assert_int_equal(interval_align_down(iv, start + 15 * MS_PER_DAY), start);
        assert_int_equal(interval_align_down(iv, next - 1), start);
        assert_int_equal(interval_align_up(iv, start + 1), next);
        assert_false(interval_is_aligned(iv, start + MS_PER_DAY));
        assert_false(interval_is_aligned(iv, start + 1));
    }
    /* December rolls over into January of the next year. */
    assert_int_equal(interval_next(iv, day_ms(2023, 12, 1)), day_ms(2024, 1, 1));
    assert_int_equal(interval_next(iv, day_ms(1969, 12, 1)), 0);
    assert_int_equal(interval_align_down(iv, day_ms(2024, 2, 29) + 12 * MS_PER_HOUR),
                     day_ms(2024, 2, 1));
    assert_int_equal(interval_align_up(iv, day_ms(2024, 2, 15)), day_ms(2024, 3, 1));
    assert_int_equal(interval_align_up(iv, day_ms(2024, 3, 1)), day_ms(2024, 3, 1));
    assert_int_equal(interval_align_down(iv, -1), day_ms(1969, 12, 1));
}

static void test_count_ranges(void **state)
{
    (void)state;
    const struct interval *m1 = interval_find("1m");
    const struct interval *d1 = interval_find("1d");
    const struct interval *mo = interval_find("1M");
    const int64_t t0 = day_ms(2024, 1, 1);
    assert_int_equal(interval_count(m1, t0, t0 + MS_PER_HOUR), 60);
    assert_int_equal(interval_count(m1, t0 + 1, t0 + MS_PER_HOUR), 59);
    assert_int_equal(interval_count(m1, t0, t0 + MS_PER_HOUR + 1), 61);
    assert_int_equal(interval_count(m1, t0, t0), 0);
    assert_int_equal(interval_count(m1, t0 + MS_PER_HOUR, t0), 0);
    assert_int_equal(interval_count(m1, t0, t0 + MS_PER_DAY), 1440);
    assert_int_equal(interval_count(d1, day_ms(2024, 1, 1), day_ms(2025, 1, 1)), 366);
    assert_int_equal(interval_count(d1, day_ms(2023, 1, 1), day_ms(2024, 1, 1)), 365);
    assert_int_equal(interval_count(mo, day_ms(2023, 1, 1), day_ms(2024, 1, 1)), 12);
    assert_int_equal(interval_count(mo, day_ms(2023, 1, 1), day_ms(2024, 1, 1) + 1), 13);
    assert_int_equal(interval_count(mo, day_ms(2023, 1, 2), day_ms(2024, 1, 1)), 11);
    assert_int_equal(interval_count(mo, day_ms(2024, 1, 15), day_ms(2024, 3, 1)), 1);
    assert_int_equal(interval_count(mo, day_ms(2024, 1, 15), day_ms(2024, 2, 1)), 0);
    assert_int_equal(interval_count(mo, day_ms(2000, 1, 1), day_ms(2025, 1, 1)), 300);
    /* Across the epoch. */
    assert_int_equal(interval_count(d1, -10 * MS_PER_DAY, 10 * MS_PER_DAY), 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_intervals_found),
        cmocka_unit_test(test_lookup_is_case_sensitive),
        cmocka_unit_test(test_every_interval_around_a_common_boundary),
        cmocka_unit_test(test_fixed_intervals_walk),
        cmocka_unit_test(test_3d_grid),
        cmocka_unit_test(test_1w_mondays),
        cmocka_unit_test(test_1M_calendar),
        cmocka_unit_test(test_count_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
