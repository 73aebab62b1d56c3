/*
 * test_decimal.c - unit tests for src/schema/decimal.c: the grammar check
 * dec_valid (-?[0-9]+(\.[0-9]+)?, nothing else), exact comparison dec_cmp
 * (trailing and leading zeros, negative zero, signs, long fractions,
 * integer-length differences, antisymmetry; the aligned fast path against
 * the general one on random pairs) and dec_negative; dec_to_double equals
 * strtod bit for bit on a table of edge cases and on 200,000 random
 * decimals of every length (fast path and fallback alike).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "schema/decimal.h"

static int valid(const char *s)
{
    return dec_valid(s, strlen(s));
}

static void test_valid_accepts(void **state)
{
    (void)state;
    static const char *const good[] = {
        "0", "123.45", "-1.5", "0.00000000", "56714.01000000", "-0", "-0.0", "007",
        "1234567890123456789012345678901234567890", "0.000000000000000000000001",
        "9", "10.5",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!valid(good[i])) {
            fail_msg("dec_valid(\"%s\") should accept it", good[i]);
        }
    }
}

static void test_valid_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-", "1.", ".5", "1e5", "1E5", "NaN", "nan", "Infinity", "-Infinity", "inf",
        "1,5", " 1", "1 ", "+1", "--1", "1.2.3", "0x10", "1.-5", "-.5", "1..2", "\xd9\xa1",
        "12a", "a12", ".", "-.", "1.5e-3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i])) {
            fail_msg("dec_valid(\"%s\") should reject it", bad[i]);
        }
    }
}

/* The length argument is honoured: only s[0..n) is looked at. */
static void test_valid_uses_length(void **state)
{
    (void)state;
    const char *s = "12.50xyz";
    assert_true(dec_valid(s, 5));
    assert_false(dec_valid(s, 6));
    assert_false(dec_valid(s, 3));    /* "12." */
    assert_true(dec_valid(s, 2));     /* "12" */
    assert_false(dec_valid(s, 0));
    const char with_nul[] = {'1', '\0', '2'};
    assert_false(dec_valid(with_nul, 3));
}

struct cmp_case {
    const char *a;
    const char *b;
    int sign;   /* -1, 0, 1 */
};

static const struct cmp_case cmp_cases[] = {
    {"1.10", "1.1", 0},
    {"1.1", "1.10000000", 0},
    {"007.5", "7.5", 0},
    {"007.50", "7.5", 0},
    {"0", "0", 0},
    {"-0", "0", 0},
    {"-0.00000000", "0", 0},
    {"0.0", "0", 0},
    {"00", "0", 0},
    {"0.00000000", "-0", 0},
    {"-1.5", "-1.50", 0},
    {"56714.00000000", "56714", 0},
    {"-1", "1", -1},
    {"-2", "-1", -1},
    {"-1.5", "-1.25", -1},
    {"-10", "-9.99999999", -1},
    {"-0.00000001", "0", -1},
    {"0", "0.00000001", -1},
    {"10", "9", 1},
    {"100", "99.999999", 1},
    {"1000", "0999", 1},
    {"9", "10", -1},
    {"123.45", "123.450000001", -1},
    {"0.123456789012345678901", "0.12345678901234567890", 1},
    {"0.12345678901234567890123456789", "0.12345678901234567890123456788", 1},
    {"12345678901234567890123456789.5", "12345678901234567890123456789.49999", 1},
    {"56714.01000000", "56714.00000000", 1},
    {"56634.00000000", "56714.01000000", -1},
    {"0.5", "0.05", 1},
    {"0.05", "0.5", -1},
    {"1", "0.99999999999999999999", 1},
    {"-100", "-99", -1},
    {"-0.5", "-0.05", -1},
    {"5", "-5", 1},
};

static int sign_of(int v)
{
    return v < 0 ? -1 : (v > 0 ? 1 : 0);
}

static void test_cmp_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cmp_cases) / sizeof(cmp_cases[0]); i++) {
        const struct cmp_case *c = &cmp_cases[i];
        assert_true(valid(c->a));
        assert_true(valid(c->b));
        int ab = sign_of(dec_cmp(c->a, strlen(c->a), c->b, strlen(c->b)));
        int ba = sign_of(dec_cmp(c->b, strlen(c->b), c->a, strlen(c->a)));
        if (ab != c->sign || ba != -c->sign) {
            fail_msg("dec_cmp(\"%s\", \"%s\") = %d (reverse %d), expected %d", c->a, c->b, ab,
                     ba, c->sign);
        }
        /* Every value equals itself. */
        assert_int_equal(dec_cmp(c->a, strlen(c->a), c->a, strlen(c->a)), 0);
    }
}

/* A sorted list compares consistently pairwise (a total order). */
static void test_cmp_total_order(void **state)
{
    (void)state;
    static const char *const sorted[] = {
        "-1000", "-999.99999999", "-10", "-9.5", "-1.25", "-1", "-0.5", "-0.05",
        "-0.00000001", "0", "0.00000001", "0.05", "0.5", "1", "1.00000001", "9.99", "10",
        "99.999999", "100", "1000", "56714.01000000",
    };
    size_t n = sizeof(sorted) / sizeof(sorted[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = sign_of(dec_cmp(sorted[i], strlen(sorted[i]), sorted[j], strlen(sorted[j])));
            int want = i < j ? -1 : (i > j ? 1 : 0);
            if (c != want) {
                fail_msg("dec_cmp(\"%s\", \"%s\") = %d, expected %d", sorted[i], sorted[j], c,
                         want);
            }
        }
    }
}

/* Only s[0..n) is compared. */
static void test_cmp_uses_length(void **state)
{
    (void)state;
    const char *a = "1.59";
    const char *b = "1.5";
    assert_int_equal(dec_cmp(a, 3, b, 3), 0);
    assert_true(dec_cmp(a, 4, b, 3) > 0);
}

static void test_negative(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int neg;
    } cases[] = {
        {"-1.5", 1}, {"-0.00000001", 1}, {"-100", 1}, {"-0", 0}, {"-0.00000000", 0},
        {"-000", 0}, {"0", 0}, {"1", 0}, {"0.5", 0}, {"123.45", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (dec_negative(cases[i].s, strlen(cases[i].s)) != cases[i].neg) {
            fail_msg("dec_negative(\"%s\") should be %d", cases[i].s, cases[i].neg);
        }
    }
}

/* A random decimal: sign, 1..20 integer digits (leading zeros too), and
 * 0..26 decimals; xorshift so that every run checks the same strings. */
static uint64_t rng = 0x9E3779B97F4A7C15u;

static unsigned next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static size_t random_decimal(char *out, int neg_allowed, unsigned ilen, unsigned flen)
{
    size_t n = 0;
    if (neg_allowed && next(4) == 0) {
        out[n++] = '-';
    }
    for (unsigned i = 0; i < ilen; i++) {
        out[n++] = (char)('0' + (i == 0 && next(3) ? 0 : next(10)));
    }
    if (flen) {
        out[n++] = '.';
        for (unsigned i = 0; i < flen; i++) {
            out[n++] = (char)('0' + next(10));
        }
    }
    out[n] = '\0';
    return n;
}

static void same_as_strtod(const char *s)
{
    double want = strtod(s, NULL);
    double got = dec_to_double(s, strlen(s));
    if (memcmp(&want, &got, sizeof(want)) != 0) {
        fail_msg("dec_to_double(\"%s\") = %.17g, strtod gives %.17g", s, got, want);
    }
}

static void test_to_double_table(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "0", "-0", "0.0", "-0.00000000", "1", "27354.12000000", "0.00000001",
        "0.1", "0.2", "0.3", "1.1", "9007199254740991", "9007199254740993",
        "900719925474099.3", "123456789012345", "1234567890123456",
        "0.0000000000000000000001", "0.00000000000000000000001", "5.", ".5",
        "1797693134862315.7", "99999999999999999999999999.99",
        "4.35", "2.675", "0.000000000000000000000000000000000001",
        "0.30000000000000004", "17976931348623157081452742373170435679807056752584499659",
        /* Longer than the on-stack copy (64 bytes). */
        "1234567890123456789012345678901234567890123456789012345678901234567890.5",
        "0.00000000000000000000000000000000000000000000000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        same_as_strtod(cases[i]);
    }
    /* Only s[0..n) is read. */
    assert_true(dec_to_double("1.59", 3) == 1.5);
}

static void test_to_double_random(void **state)
{
    (void)state;
    char s[64];
    for (int i = 0; i < 200000; i++) {
        random_decimal(s, 1, 1 + next(20), next(27));
        same_as_strtod(s);
    }
}

/* The aligned fast path (same length, same point) agrees with the general
 * comparison, reached by a leading zero that changes the length only. */
static void test_cmp_aligned_random(void **state)
{
    (void)state;
    char a[64], b[64], a0[72];
    for (int i = 0; i < 100000; i++) {
        unsigned il = 1 + next(8), fl = next(10);
        random_decimal(a, 0, il, fl);
        random_decimal(b, 0, il, fl);
        if (next(10) == 0) {
            memcpy(b, a, strlen(a) + 1);
        }
        snprintf(a0, sizeof(a0), "0%s", a);
        int fast = dec_cmp(a, strlen(a), b, strlen(b));
        int slow = dec_cmp(a0, strlen(a0), b, strlen(b));
        slow = (slow > 0) - (slow < 0);
        if (fast != slow) {
            fail_msg("dec_cmp(\"%s\", \"%s\") = %d, the general path says %d", a, b, fast,
                     slow);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_accepts),
        cmocka_unit_test(test_valid_rejects),
        cmocka_unit_test(test_valid_uses_length),
        cmocka_unit_test(test_cmp_table),
        cmocka_unit_test(test_cmp_total_order),
        cmocka_unit_test(test_cmp_uses_length),
        cmocka_unit_test(test_negative),
        cmocka_unit_test(test_to_double_table),
        cmocka_unit_test(test_to_double_random),
        cmocka_unit_test(test_cmp_aligned_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
