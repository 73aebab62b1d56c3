/*
 * test_kline_parse.c - unit tests for src/extract/kline_parse.c: the strict
 * /api/v3/klines body parser on real exchange bodies (the compact 1000-row
 * page and the one-row-per-line 15m file), the empty page, the exchange's
 * error object (ERR_API), and every malformed shape it must refuse with
 * ERR_INVALID while leaving the batch as it was (truncation at every byte,
 * 11 and 13 fields, nulls, wrong JSON types, NaN/Infinity/exponents, 19-digit
 * integers, fractions in integer fields, trailing bytes, escapes, over-long
 * strings, raw control characters, more rows than the batch holds).  Also
 * kline_to_json round trips.
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
#include "util/buf.h"
#include "util/err.h"

/* The first row of patten-trainer/BTCUSDT_1m.json, verbatim. */
#define ROW0 "[1725416820000,\"56714.00000000\",\"56714.01000000\",\"56634.00000000\"," \
             "\"56642.00000000\",\"11.02444000\",1725416879999,\"624782.95032640\",1425," \
             "\"2.24261000\",\"127055.79808400\",\"0\"]"
/* Its second row. */
#define ROW1 "[1725416880000,\"56642.00000000\",\"56642.00000000\",\"56604.00000000\"," \
             "\"56618.01000000\",\"8.25521000\",1725416939999,\"467415.07599380\",1289," \
             "\"2.90343000\",\"164385.54496770\",\"0\"]"

static int parse_str(const char *body, struct kline_batch *b, struct err *e)
{
    err_clear(e);
    return kline_parse_page(body, strlen(body), b, e);
}

static void assert_field(const struct kline *k, int slot, const char *want)
{
    assert_string_equal(k->s[slot], want);
    assert_int_equal(k->len[slot], strlen(want));
}

static void test_real_compact_page(void **state)
{
    (void)state;
    size_t len;
    char *body = read_testdata("binance/patten-trainer/BTCUSDT_1m.json", &len);
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 1000), 0);
    err_clear(&e);
    assert_int_equal(kline_parse_page(body, len, &b, &e), 0);
    assert_int_equal(b.n, 1000);

    const struct kline *k = &b.rows[0];
    assert_int_equal(k->open_time, 1725416820000LL);
    assert_field(k, KS_OPEN, "56714.00000000");
    assert_field(k, KS_HIGH, "56714.01000000");
    assert_field(k, KS_LOW, "56634.00000000");
    assert_field(k, KS_CLOSE, "56642.00000000");
    assert_field(k, KS_VOLUME, "11.02444000");
    assert_int_equal(k->close_time, 1725416879999LL);
    assert_field(k, KS_QUOTE_VOLUME, "624782.95032640");
    assert_int_equal(k->trades, 1425);
    assert_field(k, KS_TAKER_BASE, "2.24261000");
    assert_field(k, KS_TAKER_QUOTE, "127055.79808400");
    assert_field(k, KS_IGNORE, "0");

    k = &b.rows[999];
    assert_int_equal(k->open_time, 1725476760000LL);
    assert_field(k, KS_OPEN, "57840.00000000");
    assert_field(k, KS_HIGH, "57840.01000000");
    assert_field(k, KS_LOW, "57767.00000000");
    assert_field(k, KS_CLOSE, "57771.01000000");
    assert_field(k, KS_VOLUME, "7.06270000");
    assert_int_equal(k->close_time, 1725476819999LL);
    assert_field(k, KS_QUOTE_VOLUME, "408241.62272520");
    assert_int_equal(k->trades, 2105);
    assert_field(k, KS_TAKER_BASE, "1.83121000");
    assert_field(k, KS_TAKER_QUOTE, "105828.20841040");
    assert_field(k, KS_IGNORE, "0");

    /* The page is consecutive minutes. */
    for (size_t i = 1; i < b.n; i++) {
        assert_int_equal(b.rows[i].open_time - b.rows[i - 1].open_time, 60000);
    }
    kline_batch_free(&b);
    free(body);
}

static void test_real_one_row_per_line(void **state)
{
    (void)state;
    size_t len;
    char *body = read_testdata("binance/finom-static-klines/BTCUSDT/15m/2023-03-20.json", &len);
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 1000), 0);
    err_clear(&e);
    assert_int_equal(kline_parse_page(body, len, &b, &e), 0);
    assert_int_equal(b.n, 667);
    assert_int_equal(b.rows[0].open_time, 1679270400000LL);
    assert_field(&b.rows[0], KS_OPEN, "27972.87000000");
    assert_field(&b.rows[0], KS_QUOTE_VOLUME, "175548217.59750220");
    assert_int_equal(b.rows[0].trades, 146095);
    assert_int_equal(b.rows[666].open_time, 1679874300000LL);   /* 2023-03-26 23:45 */

    /* The truncated outage candle of 2023-03-24 12:30. */
    int found = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (b.rows[i].open_time == 1679661000000LL) {
            found = 1;
            assert_int_equal(b.rows[i].close_time, 1679661581646LL);
            assert_int_equal(b.rows[i].trades, 0);
            assert_field(&b.rows[i], KS_CLOSE, "28080.00000000");
            assert_field(&b.rows[i], KS_VOLUME, "0.00000000");
        }
    }
    assert_true(found);
    kline_batch_free(&b);
    free(body);
}

/* Rows are appended after what the batch already holds. */
static void test_appends_to_batch(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 4), 0);
    assert_int_equal(parse_str("[" ROW0 "]", &b, &e), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(parse_str(" \n[ " ROW1 " ,\n\t" ROW0 " ]\r\n", &b, &e), 0);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.rows[0].open_time, 1725416820000LL);
    assert_int_equal(b.rows[1].open_time, 1725416880000LL);
    assert_int_equal(b.rows[2].open_time, 1725416820000LL);
    assert_field(&b.rows[1], KS_CLOSE, "56618.01000000");
    kline_batch_free(&b);
}

static void test_empty_array(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 2), 0);
    static const char *const empties[] = {"[]", " [ ] ", "\n[\n]\n", "[\t\r\n]"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        assert_int_equal(parse_str(empties[i], &b, &e), 0);
        assert_int_equal(b.n, 0);
    }
    /* Also on a full batch: nothing to add, nothing refused. */
    assert_int_equal(parse_str("[" ROW0 "," ROW1 "]", &b, &e), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(parse_str("[]", &b, &e), 0);
    assert_int_equal(b.n, 2);
    kline_batch_free(&b);
}

static void test_exchange_error_body(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 4), 0);
    assert_int_equal(parse_str("[" ROW0 "]", &b, &e), 0);
    const char *body = "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}";
    assert_int_equal(parse_str(body, &b, &e), ERR_API);
    assert_int_equal(e.code, ERR_API);
    assert_non_null(strstr(e.msg, "-1121"));
    assert_non_null(strstr(e.msg, "Invalid symbol."));
    assert_int_equal(b.n, 1);

    long code = 0;
    char msg[64];
    assert_int_equal(binance_error_body(body, strlen(body), &code, msg, sizeof(msg)), 1);
    assert_int_equal(code, -1121);
    assert_string_equal(msg, "Invalid symbol.");
    /* Truncated to the caller's buffer. */
    char tiny[5];
    assert_int_equal(binance_error_body(body, strlen(body), &code, tiny, sizeof(tiny)), 1);
    assert_string_equal(tiny, "Inva");
    /* With whitespace, other key order and extra keys. */
    const char *b2 = " \n{\"msg\": \"Too much request weight used.\", \"code\": -1003, \"x\": 1}";
    assert_int_equal(binance_error_body(b2, strlen(b2), &code, msg, sizeof(msg)), 1);
    assert_int_equal(code, -1003);
    /* Not error objects. */
    static const char *const not_errors[] = {
        "[]", "{}", "{\"code\":\"-1121\",\"msg\":\"x\"}", "{\"code\":-1121}",
        "{\"code\":-1121,\"msg\":5}", "{\"code\":-1121,\"msg\":\"x\"", "", "  ",
    };
    for (size_t i = 0; i < sizeof(not_errors) / sizeof(not_errors[0]); i++) {
        if (binance_error_body(not_errors[i], strlen(not_errors[i]), &code, msg, sizeof(msg))) {
            fail_msg("binance_error_body(\"%s\") took it for an error object", not_errors[i]);
        }
    }
    /* An object that is not an error body is simply invalid as a page. */
    assert_int_equal(parse_str("{\"code\":-1121}", &b, &e), ERR_INVALID);
    assert_int_equal(b.n, 1);
    kline_batch_free(&b);
}

struct bad_case {
    const char *what;
    const char *body;
    const char *msg1;   /* substrings the message must contain (NULL: skip) */
    const char *msg2;
    const char *msg3;
};

/* ROW0 with field `f` (0-based, API order) replaced by `v`. */
#define R(f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11) \
    "[" f0 "," f1 "," f2 "," f3 "," f4 "," f5 "," f6 "," f7 "," f8 "," f9 "," f10 "," f11 "]"
#define F0 "1725416820000"
#define F1 "\"56714.00000000\""
#define F2 "\"56714.01000000\""
#define F3 "\"56634.00000000\""
#define F4 "\"56642.00000000\""
#define F5 "\"11.02444000\""
#define F6 "1725416879999"
#define F7 "\"624782.95032640\""
#define F8 "1425"
#define F9 "\"2.24261000\""
#define F10 "\"127055.79808400\""
#define F11 "\"0\""

/* Every malformed row sits in position 1, after a good row 0, so the
 * message must name row 1 and the batch must drop row 0 of this page too. */
static const struct bad_case bad_cases[] = {
    {"11 fields", "[" ROW0 ",[" F0 "," F1 "," F2 "," F3 "," F4 "," F5 "," F6 "," F7 "," F8
     "," F9 "," F10 "]]", "row 1", "11 fields", NULL},
    {"13 fields", "[" ROW0 ",[" F0 "," F1 "," F2 "," F3 "," F4 "," F5 "," F6 "," F7 "," F8
     "," F9 "," F10 "," F11 ",\"0\"]]", "row 1", "more than 12", NULL},
    {"empty row", "[" ROW0 ",[]]", "row 1", NULL, NULL},
    {"null volume", "[" ROW0 "," R(F0, F1, F2, F3, F4, "null", F6, F7, F8, F9, F10, F11) "]",
     "row 1", "volume", "null"},
    {"null open_time", "[" ROW0 "," R("null", F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11)
     "]", "row 1", "open_time", "null"},
    {"string open_time", "[" ROW0 "," R("\"1725416880000\"", F1, F2, F3, F4, F5, F6, F7, F8,
     F9, F10, F11) "]", "row 1", "open_time", "a string"},
    {"string trades", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, "\"1425\"", F9, F10, F11)
     "]", "row 1", "number_of_trades", "integer"},
    {"int high", "[" ROW0 "," R(F0, F1, "56714", F3, F4, F5, F6, F7, F8, F9, F10, F11) "]",
     "row 1", "high", "expected a string"},
    {"float low", "[" ROW0 "," R(F0, F1, F2, "56634.0", F4, F5, F6, F7, F8, F9, F10, F11) "]",
     "row 1", "low", "expected a string"},
    {"boolean trades", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, "true", F9, F10, F11)
     "]", "row 1", "number_of_trades", "boolean"},
    {"array in close", "[" ROW0 "," R(F0, F1, F2, F3, "[1]", F5, F6, F7, F8, F9, F10, F11) "]",
     "row 1", "close", NULL},
    {"NaN open", "[" ROW0 "," R(F0, "\"NaN\"", F2, F3, F4, F5, F6, F7, F8, F9, F10, F11) "]",
     "row 1", "open", "decimal"},
    {"Infinity high", "[" ROW0 "," R(F0, F1, "\"Infinity\"", F3, F4, F5, F6, F7, F8, F9, F10,
     F11) "]", "row 1", "high", "decimal"},
    {"exponent volume", "[" ROW0 "," R(F0, F1, F2, F3, F4, "\"1e5\"", F6, F7, F8, F9, F10,
     F11) "]", "row 1", "volume", "decimal"},
    {"empty decimal", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, "\"\"", F8, F9, F10, F11)
     "]", "row 1", "quote_asset_volume", "decimal"},
    {"plus sign", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, F8, "\"+2.5\"", F10, F11)
     "]", "row 1", "taker_buy_base_asset_volume", "decimal"},
    {"bare NaN", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, "NaN", F9, F10, F11) "]",
     "row 1", "number_of_trades", "integer"},
    {"19-digit open_time", "[" ROW0 "," R("1725416880000000000", F1, F2, F3, F4, F5, F6, F7,
     F8, F9, F10, F11) "]", "row 1", "open_time", "range"},
    {"20-digit trades", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, "99999999999999999999",
     F9, F10, F11) "]", "row 1", "number_of_trades", "range"},
    {"fraction open_time", "[" ROW0 "," R("1725416880000.0", F1, F2, F3, F4, F5, F6, F7, F8,
     F9, F10, F11) "]", "row 1", "open_time", "fraction"},
    {"exponent close_time", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, "1.725416939999e12", F7,
     F8, F9, F10, F11) "]", "row 1", "close_time", "fraction"},
    {"escape in open", "[" ROW0 "," R(F0, "\"5671\\u00344.0\"", F2, F3, F4, F5, F6, F7, F8,
     F9, F10, F11) "]", "row 1", "open", "escape"},
    {"escape in ignore", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10,
     "\"\\\"\"") "]", "row 1", "ignore", "escape"},
    {"over-long decimal", "[" ROW0 "," R(F0, F1, F2, F3, F4,
     "\"123456789012345678901234567890.12345678901234567890\"", F6, F7, F8, F9, F10, F11) "]",
     "row 1", "volume", "too long"},
    {"over-long ignore", "[" ROW0 "," R(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10,
     "\"0000000000000000000000000000000000000000000000000000000000000\"") "]", "row 1",
     "ignore", "too long"},
    {"unterminated string", "[" ROW0 ",[" F0 ",\"56714.0", "row 1", "open", "unterminated"},
    {"trailing garbage", "[" ROW0 "," ROW1 "]x", "unexpected bytes", NULL, NULL},
    {"second array", "[" ROW0 "][" ROW1 "]", "unexpected bytes", NULL, NULL},
    {"trailing comma", "[" ROW0 "," ROW1 ",]", "row 2", NULL, NULL},
    {"missing comma", "[" ROW0 " " ROW1 "]", "row 1", NULL, NULL},
    {"not an array", "\"hello\"", "array", NULL, NULL},
    {"object row", "[" ROW0 ",{\"a\":1}]", "row 1", NULL, NULL},
    {"missing bracket", "[" ROW0 "," ROW1, "end of the body", NULL, NULL},
    {"nested extra bracket", "[" ROW0 "]]", "unexpected bytes", NULL, NULL},
};

static void test_malformed_bodies(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 16), 0);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        /* One row already in the batch from an earlier page. */
        b.n = 0;
        assert_int_equal(parse_str("[" ROW0 "]", &b, &e), 0);
        assert_int_equal(b.n, 1);
        int rc = parse_str(c->body, &b, &e);
        if (rc != ERR_INVALID || e.code != ERR_INVALID) {
            fail_msg("%s: expected ERR_INVALID, got %d (%s)", c->what, rc, e.msg);
        }
        if (b.n != 1) {
            fail_msg("%s: batch has %zu rows after the failure, expected 1", c->what, b.n);
        }
        const char *want[] = {c->msg1, c->msg2, c->msg3};
        for (int k = 0; k < 3; k++) {
            if (want[k] && !strstr(e.msg, want[k])) {
                fail_msg("%s: message \"%s\" does not contain \"%s\"", c->what, e.msg, want[k]);
            }
        }
    }
    kline_batch_free(&b);
}

/* The largest 18-digit integers are still taken; negative ones parse too
 * (the validator, not the parser, rejects them). */
static void test_integer_limits(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 2), 0);
    const char *body = "[" R(F0, F1, F2, F3, F4, F5, "999999999999999999", F7, "-5", F9, F10,
                             F11) "]";
    assert_int_equal(parse_str(body, &b, &e), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.rows[0].close_time, 999999999999999999LL);
    assert_int_equal(b.rows[0].trades, -5);
    kline_batch_free(&b);
}

/* A body cut at any byte is refused, never half taken. */
static void test_every_truncation_refused(void **state)
{
    (void)state;
    const char *body = "[" ROW0 ",\n  " ROW1 "\n]\n";
    size_t len = strlen(body);
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 8), 0);
    for (size_t cut = 0; cut < len - 1; cut++) {
        b.n = 0;
        assert_int_equal(parse_str("[" ROW1 "]", &b, &e), 0);
        err_clear(&e);
        /* Copy so that nothing past the cut is readable as part of the body. */
        char *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, body, cut);
        int rc = kline_parse_page(copy, cut, &b, &e);
        free(copy);
        if (rc != ERR_INVALID) {
            fail_msg("body cut at byte %zu of %zu: rc %d (%s)", cut, len, rc, e.msg);
        }
        assert_int_equal(b.n, 1);
        assert_true(e.msg[0] != '\0');
    }
    /* Cut just before the final newline, or not at all: complete. */
    b.n = 0;
    err_clear(&e);
    assert_int_equal(kline_parse_page(body, len - 1, &b, &e), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(kline_parse_page(body, len, &b, &e), 0);
    assert_int_equal(b.n, 4);
    kline_batch_free(&b);
}

static void test_more_rows_than_capacity(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 3), 0);
    assert_int_equal(parse_str("[" ROW0 "]", &b, &e), 0);
    /* Room for two more: three rows are refused as a whole. */
    assert_int_equal(parse_str("[" ROW0 "," ROW1 "," ROW0 "]", &b, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "more than 2 rows"));
    assert_int_equal(b.n, 1);
    /* Exactly two fit. */
    assert_int_equal(parse_str("[" ROW0 "," ROW1 "]", &b, &e), 0);
    assert_int_equal(b.n, 3);
    kline_batch_free(&b);
}

/* JSON forbids raw control characters inside strings (RFC 8259 section 7);
 * a strict parser must not take them into the ignore field, where they would
 * later break the lake's unquoted CSV lines. */
static void test_raw_control_character_in_string(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 2), 0);
    static const char *const bodies[] = {
        "[" R(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, "\"0\n1\"") "]",
        "[" R(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, "\"\t\"") "]",
        "[" R(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, "\"\x01\"") "]",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        int rc = parse_str(bodies[i], &b, &e);
        assert_int_equal(rc, ERR_INVALID);
        assert_non_null(strstr(e.msg, "ignore"));
        assert_int_equal(b.n, 0);
    }
    kline_batch_free(&b);
}

/* kline_to_json writes the API's shape, which parses back to the same row. */
static void test_to_json_round_trip(void **state)
{
    (void)state;
    struct kline_batch b;
    struct err e;
    assert_int_equal(kline_batch_init(&b, 2), 0);
    assert_int_equal(parse_str("[" ROW0 "]", &b, &e), 0);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(buf_putc(&out, '['), 0);
    assert_int_equal(kline_to_json(&b.rows[0], &out), 0);
    assert_int_equal(buf_putc(&out, ']'), 0);
    assert_string_equal(out.data, "[" ROW0 "]");
    assert_int_equal(kline_parse_page(out.data, out.len, &b, &e), 0);
    assert_int_equal(b.n, 2);
    assert_memory_equal(b.rows[0].s, b.rows[1].s, sizeof(b.rows[0].s));
    assert_memory_equal(b.rows[0].len, b.rows[1].len, sizeof(b.rows[0].len));
    assert_int_equal(b.rows[0].open_time, b.rows[1].open_time);
    assert_int_equal(b.rows[0].close_time, b.rows[1].close_time);
    assert_int_equal(b.rows[0].trades, b.rows[1].trades);
    buf_free(&out);
    kline_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_compact_page),
        cmocka_unit_test(test_real_one_row_per_line),
        cmocka_unit_test(test_appends_to_batch),
        cmocka_unit_test(test_empty_array),
        cmocka_unit_test(test_exchange_error_body),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_integer_limits),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_more_rows_than_capacity),
        cmocka_unit_test(test_raw_control_character_in_string),
        cmocka_unit_test(test_to_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
