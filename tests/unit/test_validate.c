/*
 * test_validate.c - unit tests for src/validate/validate.c.
 *
 * validate_raw_row: one table of rows that pass (with their VNOTE_* notes)
 * or break exactly one rule (grid, close_time, ohlc, negative, taker,
 * duplicate, order) on 1m, 15m, 3d, 1w and 1M grids; the real truncated
 * outage candle of 2023-03-24 12:30 (15m); and every row of every real
 * sample file (JSON pages and the data.binance.vision CSV) validated in
 * order with prev_open chaining, so there are no false rejections.
 * validate_transformed_row: NaN, infinities, negatives, low > high and
 * empty datetime columns.
 */
#include <math.h>
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
#include "schema/interval.h"
#include "schema/kline.h"
#include "util/timeutil.h"
#include "validate/validate.h"

#define KEEP INT64_MIN
#define PASS (-1)

static void set_str(struct kline *k, int slot, const char *v)
{
    size_t n = strlen(v);
    assert_true(n < KLINE_STR_MAX);
    memcpy(k->s[slot], v, n + 1);
    k->len[slot] = (uint8_t)n;
}

static int64_t day_ms(int64_t y, unsigned m, unsigned d)
{
    return days_from_civil(y, m, d) * MS_PER_DAY;
}

/* A row description; NULL strings and KEEP numbers take the base row's
 * value (the first candle of patten-trainer/BTCUSDT_1m.json). */
struct row_case {
    const char *what;
    const char *iv;
    int64_t prev;
    int64_t open_time;
    int64_t close_time;
    const char *o, *h, *l, *c, *v, *qv, *tb, *tq;
    int64_t trades;
    int rule;            /* PASS or VR_* */
    unsigned notes;      /* expected notes when it passes */
    const char *why;     /* substring of the reason when it fails */
};

#define T0 1725416820000LL   /* 2024-09-04 02:27 UTC */
#define NONE INT64_MIN

static void build_row(const struct row_case *c, struct kline *k)
{
    memset(k, 0, sizeof(*k));
    k->open_time = c->open_time != KEEP ? c->open_time : T0;
    k->close_time = c->close_time != KEEP ? c->close_time : T0 + 59999;
    k->trades = c->trades != KEEP ? c->trades : 1425;
    set_str(k, KS_OPEN, c->o ? c->o : "56714.00000000");
    set_str(k, KS_HIGH, c->h ? c->h : "56714.01000000");
    set_str(k, KS_LOW, c->l ? c->l : "56634.00000000");
    set_str(k, KS_CLOSE, c->c ? c->c : "56642.00000000");
    set_str(k, KS_VOLUME, c->v ? c->v : "11.02444000");
    set_str(k, KS_QUOTE_VOLUME, c->qv ? c->qv : "624782.95032640");
    set_str(k, KS_TAKER_BASE, c->tb ? c->tb : "2.24261000");
    set_str(k, KS_TAKER_QUOTE, c->tq ? c->tq : "127055.79808400");
    set_str(k, KS_IGNORE, "0");
}

#define FLAT "28080.00000000"
#define ZERO "0.00000000"

static const struct row_case row_cases[] = {
    {"good row", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP,
     PASS, 0, NULL},
    {"good row after its predecessor", "1m", T0 - 60000, KEEP, KEEP, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
    {"good row after a gap", "1m", T0 - 600000, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, KEEP, PASS, 0, NULL},
    {"zero-trade flat candle", "1m", NONE, KEEP, KEEP, FLAT, FLAT, FLAT, FLAT, ZERO, ZERO,
     ZERO, ZERO, 0, PASS, VNOTE_ZERO_TRADE, NULL},
    {"short candle", "1m", NONE, KEEP, T0 + 30000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, KEEP, PASS, VNOTE_SHORT, NULL},
    {"one ms short", "1m", NONE, KEEP, T0 + 59998, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, KEEP, PASS, VNOTE_SHORT, NULL},
    {"shortest candle (1 ms)", "1m", NONE, KEEP, T0 + 1, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, PASS, VNOTE_SHORT, NULL},
    {"short and zero-trade", "1m", NONE, KEEP, T0 + 1000, FLAT, FLAT, FLAT, FLAT, ZERO, ZERO,
     ZERO, ZERO, 0, PASS, VNOTE_SHORT | VNOTE_ZERO_TRADE, NULL},
    {"open = high, low = close", "1m", NONE, KEEP, KEEP, "56714.01", "56714.01000000",
     "56634.00000000", "56634", NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
    {"taker volumes equal to totals", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL,
     "11.02444000", "624782.95032640", "11.02444", "624782.9503264", KEEP, PASS, 0, NULL},
    {"negative zero volume", "1m", NONE, KEEP, KEEP, FLAT, FLAT, FLAT, FLAT, "-0.00000000",
     ZERO, ZERO, ZERO, 0, PASS, VNOTE_ZERO_TRADE, NULL},

    {"off-grid by 1 ms", "1m", NONE, T0 + 1, T0 + 60000, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_GRID, 0, "grid"},
    {"off-grid by 30 s", "1m", NONE, T0 + 30000, T0 + 89999, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, KEEP, VR_GRID, 0, "grid"},
    {"15m opening at :27", "15m", NONE, KEEP, T0 + 899999, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_GRID, 0, "15m"},
    {"negative open_time", "1m", NONE, -60000, -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, KEEP, VR_GRID, 0, "grid"},

    {"close_time = open_time", "1m", NONE, KEEP, T0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
    {"close_time before open_time", "1m", NONE, KEEP, T0 - 1, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
    {"close_time past the interval", "1m", NONE, KEEP, T0 + 60000, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
    {"close_time a day late", "1m", NONE, KEEP, T0 + MS_PER_DAY, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},

    {"high < low", "1m", NONE, KEEP, KEEP, "56600.00000000", "56600.00000000",
     "56634.00000000", "56600.00000000", NULL, NULL, NULL, NULL, KEEP, VR_OHLC, 0, "low"},
    {"high < open", "1m", NONE, KEEP, KEEP, NULL, "56713.99999999", NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_OHLC, 0, "high"},
    {"high < close", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, "56714.01000001", NULL, NULL,
     NULL, NULL, KEEP, VR_OHLC, 0, "high"},
    {"low > close", "1m", NONE, KEEP, KEEP, NULL, NULL, "56642.00000001", NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_OHLC, 0, "low"},
    {"low > open", "1m", NONE, KEEP, KEEP, "56600.00000000", NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_OHLC, 0, "low"},
    {"high < low, longer integer part", "1m", NONE, KEEP, KEEP, "9.5", "9.9", "10", "9.5",
     NULL, NULL, NULL, NULL, KEEP, VR_OHLC, 0, "low"},

    {"negative volume", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, "-11.02444000", NULL,
     NULL, NULL, KEEP, VR_NEGATIVE, 0, "volume is negative"},
    {"negative quote volume", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL,
     "-0.00000001", NULL, NULL, KEEP, VR_NEGATIVE, 0, "quote_asset_volume"},
    {"negative trades", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, -1, VR_NEGATIVE, 0, "number_of_trades"},
    {"negative prices", "1m", NONE, KEEP, KEEP, "-5", "-1", "-10", "-5", NULL, NULL, NULL,
     NULL, KEEP, VR_NEGATIVE, 0, "negative"},
    {"negative taker base", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL,
     "-2.24261000", NULL, KEEP, VR_NEGATIVE, 0, "taker_buy_base_asset_volume"},

    {"taker base > volume", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL,
     "11.02444001", NULL, KEEP, VR_TAKER, 0, "taker_buy_base_asset_volume"},
    {"taker quote > quote volume", "1m", NONE, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, "624782.95032641", KEEP, VR_TAKER, 0, "taker_buy_quote_asset_volume"},

    {"duplicate", "1m", T0, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP,
     VR_DUPLICATE, 0, "duplicate"},
    {"going back", "1m", T0 + 60000, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, KEEP, VR_ORDER, 0, "back"},
    {"going back a day", "1m", T0 + MS_PER_DAY, KEEP, KEEP, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, KEEP, VR_ORDER, 0, "back"},
};

static void run_row_cases(const struct row_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct row_case *c = &cases[i];
        const struct interval *iv = interval_find(c->iv);
        assert_non_null(iv);
        struct kline k;
        build_row(c, &k);
        char why[256] = "";
        unsigned notes = 0xdead;
        int rule = validate_raw_row(iv, &k, c->prev, why, sizeof(why), &notes);
        if (rule != c->rule) {
            fail_msg("%s: rule %d (%s), expected %d", c->what, rule, why, c->rule);
        }
        if (c->rule == PASS) {
            if (notes != c->notes) {
                fail_msg("%s: notes %u, expected %u", c->what, notes, c->notes);
            }
        }
        else {
            if (notes != 0) {
                fail_msg("%s: notes %u on a rejected row", c->what, notes);
            }
            if (!strstr(why, c->why)) {
                fail_msg("%s: reason \"%s\" does not mention \"%s\"", c->what, why, c->why);
            }
        }
    }
}

static void test_raw_rule_table(void **state)
{
    (void)state;
    run_row_cases(row_cases, sizeof(row_cases) / sizeof(row_cases[0]));
}

/* Rows on the calendar grids: 3d, 1w (Monday..Sunday) and 1M. */
static void test_calendar_grids(void **state)
{
    (void)state;
    const int64_t mon = day_ms(2024, 1, 1);
    const int64_t feb24 = day_ms(2024, 2, 1);
    const int64_t mar24 = day_ms(2024, 3, 1);
    const int64_t feb23 = day_ms(2023, 2, 1);
    const int64_t mar23 = day_ms(2023, 3, 1);
    const int64_t d3 = day_ms(2020, 1, 1);
    const struct row_case cases[] = {
        {"1w on a Monday", "1w", NONE, mon, mon + 7 * MS_PER_DAY - 1, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
        {"1w on a Tuesday", "1w", NONE, mon + MS_PER_DAY, mon + 8 * MS_PER_DAY - 1, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, KEEP, VR_GRID, 0, "1w"},
        {"1w closing next Monday", "1w", NONE, mon, mon + 7 * MS_PER_DAY, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
        {"1w closing Saturday", "1w", NONE, mon, mon + 6 * MS_PER_DAY - 1, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, KEEP, PASS, VNOTE_SHORT, NULL},
        {"1M February 2024 (29 days)", "1M", NONE, feb24, mar24 - 1, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
        {"1M February 2024 closing on the 28th", "1M", NONE, feb24, mar24 - MS_PER_DAY - 1,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP, PASS, VNOTE_SHORT, NULL},
        {"1M February 2024 closing in March", "1M", NONE, feb24, mar24, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
        {"1M February 2023 (28 days)", "1M", NONE, feb23, mar23 - 1, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
        {"1M February 2023 with a 29th", "1M", NONE, feb23, mar23 + MS_PER_DAY - 1, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP, VR_CLOSE_TIME, 0, "close_time"},
        {"1M on the 2nd", "1M", NONE, feb24 + MS_PER_DAY, mar24 - 1, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, VR_GRID, 0, "1M"},
        {"1M December", "1M", NONE, day_ms(2023, 12, 1), mon - 1, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, KEEP, PASS, 0, NULL},
        {"1M after the previous month", "1M", day_ms(2023, 12, 1), mon,
         day_ms(2024, 2, 1) - 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP, PASS, 0,
         NULL},
        {"3d on the grid", "3d", NONE, d3, d3 + 3 * MS_PER_DAY - 1, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, KEEP, PASS, 0, NULL},
        {"3d a day off the grid", "3d", NONE, d3 + MS_PER_DAY, d3 + 4 * MS_PER_DAY - 1, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, KEEP, VR_GRID, 0, "3d"},
    };
    run_row_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* The real truncated candle of 2023-03-24 12:30 (15m), from the sample. */
static void test_real_truncated_candle(void **state)
{
    (void)state;
    size_t len;
    char *body = read_testdata("binance/finom-static-klines/BTCUSDT/15m/2023-03-20.json", &len);
    struct kline_batch b;
    struct err e;
    err_clear(&e);
    assert_int_equal(kline_batch_init(&b, 1000), 0);
    assert_int_equal(kline_parse_page(body, len, &b, &e), 0);
    const struct interval *iv = interval_find("15m");
    const struct kline *k = NULL;
    size_t idx = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (b.rows[i].open_time == 1679661000000LL) {
            k = &b.rows[i];
            idx = i;
        }
    }
    assert_non_null(k);
    assert_int_equal(k->close_time, 1679661581646LL);
    char why[256] = "";
    unsigned notes = 0;
    assert_int_equal(validate_raw_row(iv, k, b.rows[idx - 1].open_time, why, sizeof(why),
                                      &notes), PASS);
    assert_int_equal(notes, VNOTE_SHORT | VNOTE_ZERO_TRADE);
    /* The row after it opens at 14:00, five candles later: a gap, not an error. */
    assert_int_equal(b.rows[idx + 1].open_time, 1679666400000LL);
    assert_int_equal(validate_raw_row(iv, &b.rows[idx + 1], k->open_time, why, sizeof(why),
                                      &notes), PASS);
    kline_batch_free(&b);
    free(body);
}

/* Parse a data.binance.vision CSV (optional header, CRLF or LF) into b. */
static void parse_csv(const char *text, struct kline_batch *b)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n > 0 && p[0] >= '0' && p[0] <= '9') {
            char line[512];
            assert_true(n < sizeof(line));
            memcpy(line, p, n);
            line[n] = '\0';
            struct kline *k = kline_batch_push(b);
            assert_non_null(k);
            memset(k, 0, sizeof(*k));
            static const int slot[12] = {-1, KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, -1,
                                         KS_QUOTE_VOLUME, -1, KS_TAKER_BASE, KS_TAKER_QUOTE,
                                         KS_IGNORE};
            char *save = NULL;
            int f = 0;
            for (char *tok = strtok_r(line, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                assert_true(f < 12);
                if (f == 0) {
                    k->open_time = strtoll(tok, NULL, 10);
                }
                else if (f == 6) {
                    k->close_time = strtoll(tok, NULL, 10);
                }
                else if (f == 8) {
                    k->trades = strtoll(tok, NULL, 10);
                }
                else {
                    set_str(k, slot[f], tok);
                }
                f++;
            }
            assert_int_equal(f, 12);
        }
        if (!eol) {
            break;
        }
        p = eol + 1;
    }
}

struct sample {
    const char *path;
    const char *iv;
    int csv;
    size_t rows;
    unsigned short_rows;
    unsigned zero_rows;
};

static const struct sample samples[] = {
    {"binance/patten-trainer/BTCUSDT_1m.json", "1m", 0, 1000, 0, 0},
    {"binance/patten-trainer/BTCUSDT_5m.json", "5m", 0, 1000, 0, 0},
    {"binance/batmayacagiz/BTCUSDT-1h-2022-01.csv", "1h", 1, 744, 0, 0},
    {"binance/finom-static-klines/BTCUSDT/1h/2022-01-01.json", "1h", 0, 744, 0, 0},
    {"binance/finom-static-klines/BTCUSDT/15m/2023-03-20.json", "15m", 0, 667, 1, 5},
    {"binance/finom-static-klines/BTCUSDT/1d/2024-01-01.json", "1d", 0, 731, 0, 0},
};

static void test_real_samples_pass(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        const struct sample *sm = &samples[s];
        size_t len;
        char *text = read_testdata(sm->path, &len);
        struct kline_batch b;
        struct err e;
        err_clear(&e);
        assert_int_equal(kline_batch_init(&b, 2000), 0);
        if (sm->csv) {
            parse_csv(text, &b);
        }
        else if (kline_parse_page(text, len, &b, &e) != 0) {
            fail_msg("%s: %s", sm->path, e.msg);
        }
        assert_int_equal(b.n, sm->rows);
        const struct interval *iv = interval_find(sm->iv);
        assert_non_null(iv);
        int64_t prev = INT64_MIN;
        unsigned nshort = 0;
        unsigned nzero = 0;
        for (size_t i = 0; i < b.n; i++) {
            char why[256] = "";
            unsigned notes = 0;
            int rule = validate_raw_row(iv, &b.rows[i], prev, why, sizeof(why), &notes);
            if (rule != PASS) {
                fail_msg("%s row %zu rejected (%s): %s", sm->path, i, vrule_names[rule], why);
            }
            nshort += (notes & VNOTE_SHORT) != 0;
            nzero += (notes & VNOTE_ZERO_TRADE) != 0;
            prev = b.rows[i].open_time;
        }
        assert_int_equal(nshort, sm->short_rows);
        assert_int_equal(nzero, sm->zero_rows);
        /* Replaying the first row after the last one goes back in time. */
        char why[256];
        unsigned notes;
        assert_int_equal(validate_raw_row(iv, &b.rows[0], prev, why, sizeof(why), &notes),
                         VR_ORDER);
        kline_batch_free(&b);
        free(text);
    }
}

/* The CSV and the JSON of January 2022 (1h) are the same klines. */
static void test_csv_and_json_samples_agree(void **state)
{
    (void)state;
    size_t l1, l2;
    char *csv = read_testdata("binance/batmayacagiz/BTCUSDT-1h-2022-01.csv", &l1);
    char *json = read_testdata("binance/finom-static-klines/BTCUSDT/1h/2022-01-01.json", &l2);
    struct kline_batch a, b;
    struct err e;
    err_clear(&e);
    assert_int_equal(kline_batch_init(&a, 1000), 0);
    assert_int_equal(kline_batch_init(&b, 1000), 0);
    parse_csv(csv, &a);
    assert_int_equal(kline_parse_page(json, l2, &b, &e), 0);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.rows[i].open_time, b.rows[i].open_time);
        assert_int_equal(a.rows[i].close_time, b.rows[i].close_time);
        assert_int_equal(a.rows[i].trades, b.rows[i].trades);
        for (int f = 0; f < KS_COUNT; f++) {
            assert_string_equal(a.rows[i].s[f], b.rows[i].s[f]);
        }
    }
    kline_batch_free(&a);
    kline_batch_free(&b);
    free(csv);
    free(json);
}

static void good_tkline(struct tkline *t)
{
    memset(t, 0, sizeof(*t));
    t->open_time = T0;
    t->close_time = T0 + 59999;
    t->trades = 1425;
    const double v[TN_COUNT] = {56714.0, 56714.01, 56634.0, 56642.0, 11.02444, 624782.9503264,
                                2.24261, 127055.798084};
    memcpy(t->v, v, sizeof(v));
    snprintf(t->utc_datetime, sizeof(t->utc_datetime), "2024-09-04 02:27:00.000");
    snprintf(t->open_dt, sizeof(t->open_dt), "2024-09-04 02:27:00.000");
    snprintf(t->close_dt, sizeof(t->close_dt), "2024-09-04 02:27:59.999");
    snprintf(t->local_dt, sizeof(t->local_dt), "2024-09-04 10:27:00.000+08:00");
    snprintf(t->ignore, sizeof(t->ignore), "0");
    snprintf(t->updated_at, sizeof(t->updated_at), "2024-09-04 20:03:00.000");
}

static void test_transformed_rows(void **state)
{
    (void)state;
    struct tkline t;
    char why[256];
    good_tkline(&t);
    assert_int_equal(validate_transformed_row(&t, why, sizeof(why)), PASS);
    for (int i = 0; i < TN_COUNT; i++) {
        t.v[i] = 0.0;
    }
    assert_int_equal(validate_transformed_row(&t, why, sizeof(why)), PASS);

    static const double bad_values[] = {NAN, INFINITY, -INFINITY, -1.0, -1e-300};
    for (int i = 0; i < TN_COUNT; i++) {
        for (size_t j = 0; j < sizeof(bad_values) / sizeof(bad_values[0]); j++) {
            good_tkline(&t);
            t.v[i] = bad_values[j];
            why[0] = '\0';
            if (validate_transformed_row(&t, why, sizeof(why)) != VR_TRANSFORMED) {
                fail_msg("column %d = %g accepted", i, bad_values[j]);
            }
            assert_non_null(strstr(why, "finite"));
        }
    }

    good_tkline(&t);
    t.v[TN_LOW] = t.v[TN_HIGH] + 0.01;
    t.v[TN_OPEN] = t.v[TN_CLOSE] = t.v[TN_LOW];
    assert_int_equal(validate_transformed_row(&t, why, sizeof(why)), VR_TRANSFORMED);
    assert_non_null(strstr(why, "low"));

    for (int i = 0; i < 5; i++) {
        good_tkline(&t);
        switch (i) {
        case 0: t.utc_datetime[0] = '\0'; break;
        case 1: t.open_dt[0] = '\0'; break;
        case 2: t.close_dt[0] = '\0'; break;
        case 3: t.local_dt[0] = '\0'; break;
        default: t.updated_at[0] = '\0'; break;
        }
        why[0] = '\0';
        if (validate_transformed_row(&t, why, sizeof(why)) != VR_TRANSFORMED) {
            fail_msg("empty datetime column %d accepted", i);
        }
        assert_non_null(strstr(why, "datetime"));
    }
}

static void test_rule_names(void **state)
{
    (void)state;
    assert_string_equal(vrule_names[VR_GRID], "grid");
    assert_string_equal(vrule_names[VR_CLOSE_TIME], "close_time");
    assert_string_equal(vrule_names[VR_OHLC], "ohlc");
    assert_string_equal(vrule_names[VR_NEGATIVE], "negative");
    assert_string_equal(vrule_names[VR_TAKER], "taker");
    assert_string_equal(vrule_names[VR_DUPLICATE], "duplicate");
    assert_string_equal(vrule_names[VR_ORDER], "order");
    assert_string_equal(vrule_names[VR_TRANSFORMED], "transformed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_rule_table),
        cmocka_unit_test(test_calendar_grids),
        cmocka_unit_test(test_real_truncated_candle),
        cmocka_unit_test(test_real_samples_pass),
        cmocka_unit_test(test_csv_and_json_samples_agree),
        cmocka_unit_test(test_transformed_rows),
        cmocka_unit_test(test_rule_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
