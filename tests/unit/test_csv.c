/*
 * test_csv.c - unit tests for src/load/csv.c: the raw and transformed lake
 * CSV layouts.  Headers and lines are compared with expected text written
 * out by hand for the first two candles of the real 1m sample; raw decimals
 * stay byte-identical; transformed doubles are printed with 17 significant
 * digits and read back by strtod to the same bits; several batches append;
 * a buffer with a maximum refuses what does not fit.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load/csv.h"
#include "schema/kline.h"
#include "util/buf.h"

static void set_str(struct kline *k, int slot, const char *v)
{
    size_t n = strlen(v);
    assert_true(n < KLINE_STR_MAX);
    memcpy(k->s[slot], v, n + 1);
    k->len[slot] = (uint8_t)n;
}

/* The first two rows of patten-trainer/BTCUSDT_1m.json. */
static void fill_raw(struct kline_batch *b)
{
    struct kline *k = kline_batch_push(b);
    assert_non_null(k);
    memset(k, 0, sizeof(*k));
    k->open_time = 1725416820000LL;
    k->close_time = 1725416879999LL;
    k->trades = 1425;
    set_str(k, KS_OPEN, "56714.00000000");
    set_str(k, KS_HIGH, "56714.01000000");
    set_str(k, KS_LOW, "56634.00000000");
    set_str(k, KS_CLOSE, "56642.00000000");
    set_str(k, KS_VOLUME, "11.02444000");
    set_str(k, KS_QUOTE_VOLUME, "624782.95032640");
    set_str(k, KS_TAKER_BASE, "2.24261000");
    set_str(k, KS_TAKER_QUOTE, "127055.79808400");
    set_str(k, KS_IGNORE, "0");

    k = kline_batch_push(b);
    assert_non_null(k);
    memset(k, 0, sizeof(*k));
    k->open_time = 1725416880000LL;
    k->close_time = 1725416939999LL;
    k->trades = 1289;
    set_str(k, KS_OPEN, "56642.00000000");
    set_str(k, KS_HIGH, "56642.00000000");
    set_str(k, KS_LOW, "56604.00000000");
    set_str(k, KS_CLOSE, "56618.01000000");
    set_str(k, KS_VOLUME, "8.25521000");
    set_str(k, KS_QUOTE_VOLUME, "467415.07599380");
    set_str(k, KS_TAKER_BASE, "2.90343000");
    set_str(k, KS_TAKER_QUOTE, "164385.54496770");
    set_str(k, KS_IGNORE, "0");
}

#define RAW_HEADER "utc_datetime,open_time,open,high,low,close,volume,close_time," \
                   "quote_asset_volume,number_of_trades,taker_buy_base_asset_volume," \
                   "taker_buy_quote_asset_volume,ignore,updated_at,symbol,interval\n"

#define RAW_LINE0 "2024-09-04 02:27:00.000,1725416820000,56714.00000000,56714.01000000," \
                  "56634.00000000,56642.00000000,11.02444000,1725416879999,624782.95032640," \
                  "1425,2.24261000,127055.79808400,0,2024-09-04 20:03:00.000,BTCUSDT,1m\n"
#define RAW_LINE1 "2024-09-04 02:28:00.000,1725416880000,56642.00000000,56642.00000000," \
                  "56604.00000000,56618.01000000,8.25521000,1725416939999,467415.07599380," \
                  "1289,2.90343000,164385.54496770,0,2024-09-04 20:03:00.000,BTCUSDT,1m\n"

static void test_raw_header(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(csv_raw_header(&out), 0);
    assert_string_equal(out.data, RAW_HEADER);
    buf_free(&out);
}

static void test_raw_rows(void **state)
{
    (void)state;
    struct kline_batch b;
    assert_int_equal(kline_batch_init(&b, 4), 0);
    fill_raw(&b);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(csv_raw_header(&out), 0);
    assert_int_equal(csv_raw_rows(&out, &b, "BTCUSDT", "1m", "2024-09-04 20:03:00.000"), 0);
    assert_string_equal(out.data, RAW_HEADER RAW_LINE0 RAW_LINE1);
    assert_int_equal(out.len, strlen(RAW_HEADER RAW_LINE0 RAW_LINE1));
    /* A second batch appends. */
    b.n = 1;
    assert_int_equal(csv_raw_rows(&out, &b, "BTCUSDT", "1m", "2024-09-04 20:03:00.000"), 0);
    assert_string_equal(out.data, RAW_HEADER RAW_LINE0 RAW_LINE1 RAW_LINE0);
    /* An empty batch writes nothing. */
    size_t before = out.len;
    b.n = 0;
    assert_int_equal(csv_raw_rows(&out, &b, "BTCUSDT", "1m", "x"), 0);
    assert_int_equal(out.len, before);
    buf_free(&out);
    kline_batch_free(&b);
}

/* Decimals are copied byte for byte, whatever their shape, and integers of
 * every size (including negative and zero) are printed exactly. */
static void test_raw_values_verbatim(void **state)
{
    (void)state;
    struct kline_batch b;
    assert_int_equal(kline_batch_init(&b, 1), 0);
    struct kline *k = kline_batch_push(&b);
    memset(k, 0, sizeof(*k));
    k->open_time = 0;
    k->close_time = 999999999999999999LL;
    k->trades = -9223372036854775807LL - 1;
    set_str(k, KS_OPEN, "0.00000000");
    set_str(k, KS_HIGH, "0000123.45000000000000000000000000000");
    set_str(k, KS_LOW, "-0");
    set_str(k, KS_CLOSE, "1");
    set_str(k, KS_VOLUME, "12345678901234567890.123456789");
    set_str(k, KS_QUOTE_VOLUME, "0.1");
    set_str(k, KS_TAKER_BASE, "0");
    set_str(k, KS_TAKER_QUOTE, "7");
    set_str(k, KS_IGNORE, "0");
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(csv_raw_rows(&out, &b, "ETHUSDT", "1M", "2000-01-01 00:00:00.000"), 0);
    assert_string_equal(out.data,
                        "1970-01-01 00:00:00.000,0,0.00000000,"
                        "0000123.45000000000000000000000000000,-0,1,"
                        "12345678901234567890.123456789,999999999999999999,0.1,"
                        "-9223372036854775808,0,7,0,2000-01-01 00:00:00.000,ETHUSDT,1M\n");
    buf_free(&out);
    kline_batch_free(&b);
}

#define T_HEADER "utc_datetime,open_time,open,high,low,close,volume,close_time," \
                 "quote_asset_volume,number_of_trades,taker_buy_base_asset_volume," \
                 "taker_buy_quote_asset_volume,ignore,updated_at,utc_singapore_datetime," \
                 "symbol,interval\n"

static void fill_tkline(struct tkline *t, int64_t open_time, int64_t close_time,
                        int64_t trades, const double v[TN_COUNT], const char *utc,
                        const char *close_dt, const char *local)
{
    memset(t, 0, sizeof(*t));
    t->open_time = open_time;
    t->close_time = close_time;
    t->trades = trades;
    memcpy(t->v, v, sizeof(t->v));
    snprintf(t->utc_datetime, sizeof(t->utc_datetime), "%s", utc);
    snprintf(t->open_dt, sizeof(t->open_dt), "%s", utc);
    snprintf(t->close_dt, sizeof(t->close_dt), "%s", close_dt);
    snprintf(t->local_dt, sizeof(t->local_dt), "%s", local);
    snprintf(t->ignore, sizeof(t->ignore), "0");
    snprintf(t->updated_at, sizeof(t->updated_at), "2024-09-04 20:03:00.000");
}

static void test_transformed(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(csv_transformed_header(&out, "utc_singapore_datetime"), 0);
    assert_string_equal(out.data, T_HEADER);

    struct tkline_batch b;
    assert_int_equal(tkline_batch_init(&b, 2), 0);
    const double v0[TN_COUNT] = {56714.0, 56714.01, 56634.0, 56642.0, 11.02444, 624782.9503264,
                                 2.24261, 127055.798084};
    const double v1[TN_COUNT] = {56642.0, 56642.0, 56604.0, 56618.01, 8.25521, 467415.0759938,
                                 2.90343, 164385.5449677};
    fill_tkline(&b.rows[0], 1725416820000LL, 1725416879999LL, 1425, v0,
                "2024-09-04 02:27:00.000", "2024-09-04 02:27:59.999",
                "2024-09-04 10:27:00.000+08:00");
    fill_tkline(&b.rows[1], 1725416880000LL, 1725416939999LL, 1289, v1,
                "2024-09-04 02:28:00.000", "2024-09-04 02:28:59.999",
                "2024-09-04 10:28:00.000+08:00");
    b.n = 2;
    assert_int_equal(csv_transformed_rows(&out, &b, "BTCUSDT", "1m"), 0);
    assert_string_equal(out.data,
                        T_HEADER
                        "2024-09-04 02:27:00.000,2024-09-04 02:27:00.000,56714,"
                        "56714.010000000002,56634,56642,11.02444,2024-09-04 02:27:59.999,"
                        "624782.95032639999,1425,2.24261,127055.79808399999,0,"
                        "2024-09-04 20:03:00.000,2024-09-04 10:27:00.000+08:00,BTCUSDT,1m\n"
                        "2024-09-04 02:28:00.000,2024-09-04 02:28:00.000,56642,56642,56604,"
                        "56618.010000000002,8.2552099999999999,2024-09-04 02:28:59.999,"
                        "467415.07599380001,1289,2.9034300000000002,164385.5449677,0,"
                        "2024-09-04 20:03:00.000,2024-09-04 10:28:00.000+08:00,BTCUSDT,1m\n");

    /* Another local-time column name goes into the header. */
    buf_reset(&out);
    assert_int_equal(csv_transformed_header(&out, "local_dt"), 0);
    assert_non_null(strstr(out.data, ",updated_at,local_dt,symbol,interval\n"));
    buf_free(&out);
    tkline_batch_free(&b);
}

/* Split a CSV line into fields (in place). */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

/* Every printed double reads back to the same bits. */
static void test_doubles_round_trip(void **state)
{
    (void)state;
    static const double values[] = {
        0.0, 0.1, 0.30000000000000004, 1e-8, 123456789.12345678, 56714.01, 624782.9503264,
        DBL_MAX, DBL_MIN, 4.9406564584124654e-324, 1.0 / 3.0, 2.0 / 3.0, 1e22, 1e23,
        9007199254740993.0, 28080.0, 0.00000001, 99999999.99999999, 5e-324, 1.5e300,
    };
    size_t nv = sizeof(values) / sizeof(values[0]);
    struct tkline_batch b;
    assert_int_equal(tkline_batch_init(&b, nv), 0);
    for (size_t i = 0; i < nv; i++) {
        double v[TN_COUNT];
        for (int f = 0; f < TN_COUNT; f++) {
            v[f] = values[(i + (size_t)f) % nv];
        }
        fill_tkline(&b.rows[i], 0, 59999, 1, v, "1970-01-01 00:00:00.000",
                    "1970-01-01 00:00:59.999", "1970-01-01 07:30:00.000+07:30");
    }
    b.n = nv;
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(csv_transformed_rows(&out, &b, "BTCUSDT", "1m"), 0);

    /* Column of each number in the line. */
    static const int col[TN_COUNT] = {2, 3, 4, 5, 6, 8, 10, 11};
    char *p = out.data;
    for (size_t i = 0; i < nv; i++) {
        char *eol = strchr(p, '\n');
        assert_non_null(eol);
        *eol = '\0';
        char *fields[32];
        int nf = split_fields(p, fields, 32);
        assert_int_equal(nf, 17);
        for (int f = 0; f < TN_COUNT; f++) {
            char *end = NULL;
            double back = strtod(fields[col[f]], &end);
            assert_true(*end == '\0');
            if (memcmp(&back, &b.rows[i].v[f], sizeof(double)) != 0) {
                fail_msg("row %zu column %d: \"%s\" reads back as %.17g, not %.17g", i, f,
                         fields[col[f]], back, b.rows[i].v[f]);
            }
        }
        p = eol + 1;
    }
    assert_int_equal(*p, '\0');
    buf_free(&out);
    tkline_batch_free(&b);
}

/* A buffer with a maximum refuses rows that would not fit. */
static void test_buffer_limit(void **state)
{
    (void)state;
    struct kline_batch b;
    assert_int_equal(kline_batch_init(&b, 4), 0);
    fill_raw(&b);
    struct buf out;
    buf_init(&out, 64);
    assert_int_equal(csv_raw_rows(&out, &b, "BTCUSDT", "1m", "2024-09-04 20:03:00.000"), -1);
    assert_true(out.len <= 64);
    buf_free(&out);

    struct buf hdr;
    buf_init(&hdr, 20);
    assert_int_equal(csv_raw_header(&hdr), -1);
    assert_true(hdr.len <= 20);
    buf_free(&hdr);
    kline_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_header),
        cmocka_unit_test(test_raw_rows),
        cmocka_unit_test(test_raw_values_verbatim),
        cmocka_unit_test(test_transformed),
        cmocka_unit_test(test_doubles_round_trip),
        cmocka_unit_test(test_buffer_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
