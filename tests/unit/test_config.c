/*
 * test_config.c - unit tests for src/conf/config.c and dotenv.c: defaults,
 * precedence (flag > environment > .env file > default) and the recorded
 * source of each setting, the .env grammar (comments, export, quotes and
 * escapes, inline comments, CRLF, malformed lines by number),
 * config_finalize's errors (each names the variable and the value),
 * de-duplication of lists, URL masking, and the JSON dump (valid JSON, no
 * planted secret).
 *
 * Every test starts with all the program's variables unset and runs in a
 * fresh temporary directory, so neither the caller's environment nor a
 * stray ./.env can leak in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "conf/config.h"
#include "conf/dotenv.h"
#include "util/buf.h"
#include "util/err.h"

struct fixture {
    char dir[256];
    char old_cwd[4096];
};

static void clear_env(void)
{
    for (int i = 0; i < S__COUNT; i++) {
        unsetenv(settings[i].env);
    }
    unsetenv("DATAOPS_TEST_EXTRA");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/dataops_test_config_XXXXXX");
    if (!mkdtemp(f->dir) || !getcwd(f->old_cwd, sizeof(f->old_cwd)) || chdir(f->dir) != 0) {
        free(f);
        return -1;
    }
    clear_env();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    clear_env();
    unlink(".env");
    unlink("test.env");
    if (chdir(f->old_cwd) != 0) {
        return -1;
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    for (int i = 0; i < S__COUNT; i++) {
        assert_int_equal(c.source[i], SRC_DEFAULT);
        assert_string_equal(c.text[i], settings[i].def);
    }
    if (config_finalize(&c, &e) != 0) {
        fail_msg("defaults do not finalize: %s", e.msg);
    }
    assert_int_equal(c.nsymbols, 1);
    assert_string_equal(c.symbols[0], "BTCUSDT");
    assert_int_equal(c.nintervals, 1);
    assert_string_equal(c.intervals[0]->name, "1m");
    assert_int_equal(c.start_ms, 1687363200000LL);
    assert_int_equal(c.end_ms, 0);
    assert_string_equal(c.text[S_TIMEZONE], "Asia/Singapore");
    assert_string_equal(c.text[S_LOCAL_TIME_COLUMN], "utc_singapore_datetime");
    assert_string_equal(c.text[S_RAW_TABLE], "raw_binance_btcusdt_spot");
    assert_int_equal(c.lock_timeout_s, 0);
    assert_int_equal(c.http_timeout_s, 30);
    assert_int_equal(c.connect_timeout_s, 10);
    assert_int_equal(c.retries, 5);
    assert_int_equal(c.weight_budget, 0);
    assert_int_equal(c.batch_rows, 100000);
    /* Finalizing twice gives the same lists (no duplicates, no leak). */
    assert_int_equal(config_finalize(&c, &e), 0);
    assert_int_equal(c.nsymbols, 1);
    assert_int_equal(c.nintervals, 1);
    config_free(&c);
}

static void test_precedence(void **state)
{
    (void)state;
    write_file("test.env",
               "DATAOPS_SYMBOLS=ETHUSDT\n"
               "DATAOPS_INTERVALS=5m\n"
               "DATAOPS_HTTP_RETRIES=7\n"
               "DATAOPS_BATCH_ROWS=5000\n"
               "DATAOPS_TEST_EXTRA=from-file\n");
    setenv("DATAOPS_SYMBOLS", "BNBUSDT", 1);
    setenv("DATAOPS_INTERVALS", "15m", 1);
    setenv("DATAOPS_BATCH_ROWS", "2000", 1);
    struct config c;
    struct err e;
    err_clear(&e);
    if (config_init(&c, "test.env", &e) != 0) {
        fail_msg("config_init: %s", e.msg);
    }
    assert_int_equal(config_set_flag(&c, "symbols", "SOLUSDT", &e), 0);
    assert_int_equal(config_finalize(&c, &e), 0);

    /* flag > env > .env */
    assert_int_equal(c.source[S_SYMBOLS], SRC_FLAG);
    assert_int_equal(c.nsymbols, 1);
    assert_string_equal(c.symbols[0], "SOLUSDT");
    /* env > .env */
    assert_int_equal(c.source[S_INTERVALS], SRC_ENV);
    assert_string_equal(c.intervals[0]->name, "15m");
    assert_int_equal(c.source[S_BATCH_ROWS], SRC_ENV);
    assert_int_equal(c.batch_rows, 2000);
    /* .env > default */
    assert_int_equal(c.source[S_RETRIES], SRC_DOTENV);
    assert_int_equal(c.retries, 7);
    /* default */
    assert_int_equal(c.source[S_HTTP_TIMEOUT], SRC_DEFAULT);
    assert_int_equal(c.http_timeout_s, 30);
    /* The file's values reach the environment without overriding it. */
    assert_string_equal(getenv("DATAOPS_TEST_EXTRA"), "from-file");
    assert_string_equal(getenv("DATAOPS_SYMBOLS"), "BNBUSDT");
    assert_string_equal(getenv("DATAOPS_HTTP_RETRIES"), "7");
    config_free(&c);
}

/* ./.env is read when no path is given; a missing ./.env is fine, a
 * missing explicit file is a configuration error. */
static void test_dotenv_file_lookup(void **state)
{
    (void)state;
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, "no-such.env", &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "no-such.env"));
    config_free(&c);

    write_file(".env", "# defaults for this directory\nDATAOPS_INTERVALS=1h\n");
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    assert_int_equal(c.source[S_INTERVALS], SRC_DOTENV);
    assert_string_equal(c.text[S_INTERVALS], "1h");
    config_free(&c);

    /* A malformed ./.env is refused with its line number. */
    unsetenv("DATAOPS_INTERVALS");
    write_file(".env", "DATAOPS_INTERVALS=1h\n\nthis is not an assignment\n");
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), ERR_CONFIG);
    assert_int_equal(e.code, ERR_CONFIG);
    assert_non_null(strstr(e.msg, "line 3"));
    config_free(&c);
}

struct kv_list {
    int n;
    char key[16][64];
    char val[16][128];
};

static int collect(void *ctx, const char *key, const char *value)
{
    struct kv_list *l = ctx;
    if (l->n == 16) {
        return ERR_CONFIG;
    }
    snprintf(l->key[l->n], sizeof(l->key[0]), "%s", key);
    snprintf(l->val[l->n], sizeof(l->val[0]), "%s", value);
    l->n++;
    return 0;
}

static void test_dotenv_grammar(void **state)
{
    (void)state;
    const char *text =
        "# a comment line\n"
        "\n"
        "   # an indented comment\n"
        "export A=1\n"
        "B = two words   # inline comment\n"
        "C='single $x \\n #not a comment'\n"
        "D=\"dq \\\"q\\\" \\\\ back\\nline\"\n"
        "E=a#b\n"
        "F=crlf\r\n"
        "G=\n"
        "  H=indented\t\n"
        "I=\"quoted\" # trailing comment\n"
        "export\tJ='tab export'\n"
        "K=\"#not a comment\"\n"
        "L = 'x' \r\n"
        "M=url://u:p@h/db?x=1&y=2";
    struct kv_list l;
    memset(&l, 0, sizeof(l));
    struct err e;
    err_clear(&e);
    if (dotenv_parse(text, strlen(text), "test.env", collect, &l, &e) != 0) {
        fail_msg("dotenv_parse: %s", e.msg);
    }
    static const char *const want[][2] = {
        {"A", "1"},
        {"B", "two words"},
        {"C", "single $x \\n #not a comment"},
        {"D", "dq \"q\" \\ back\nline"},
        {"E", "a#b"},
        {"F", "crlf"},
        {"G", ""},
        {"H", "indented"},
        {"I", "quoted"},
        {"J", "tab export"},
        {"K", "#not a comment"},
        {"L", "x"},
        {"M", "url://u:p@h/db?x=1&y=2"},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    assert_int_equal(l.n, (int)n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l.key[i], want[i][0]);
        assert_string_equal(l.val[i], want[i][1]);
    }
}

struct bad_env {
    const char *text;
    const char *line;
};

static const struct bad_env bad_envs[] = {
    {"A=1\nB\n", "line 2"},
    {"A=1\n\n1X=3\n", "line 3"},
    {"A='unterminated\n", "line 1"},
    {"A=\"unterminated\n", "line 1"},
    {"A=\"x\" y\n", "line 1"},
    {"A=1\r\nB C=2\r\n", "line 2"},
    {"-A=1\n", "line 1"},
    {"A-B=1\n", "line 1"},
    {"export\n", "line 1"},
    {"=value\n", "line 1"},
    {"A=1\nB=2\nC=3\nD='x'y\n", "line 4"},
};

static void test_dotenv_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_envs) / sizeof(bad_envs[0]); i++) {
        struct kv_list l;
        memset(&l, 0, sizeof(l));
        struct err e;
        err_clear(&e);
        int rc = dotenv_parse(bad_envs[i].text, strlen(bad_envs[i].text), "test.env", collect,
                              &l, &e);
        if (rc != ERR_CONFIG || e.code != ERR_CONFIG) {
            fail_msg("case %zu: rc %d (%s)", i, rc, e.msg);
        }
        if (!strstr(e.msg, bad_envs[i].line) || !strstr(e.msg, "test.env")) {
            fail_msg("case %zu: message \"%s\" should name test.env %s", i, e.msg,
                     bad_envs[i].line);
        }
    }
    /* A NUL byte inside a line. */
    const char nul[] = "A=1\nB=x\0y\n";
    struct kv_list l;
    memset(&l, 0, sizeof(l));
    struct err e;
    err_clear(&e);
    assert_int_equal(dotenv_parse(nul, sizeof(nul) - 1, "test.env", collect, &l, &e),
                     ERR_CONFIG);
    assert_non_null(strstr(e.msg, "line 2"));
    /* An over-long line. */
    size_t big = 10000;
    char *longline = malloc(big + 8);
    assert_non_null(longline);
    memcpy(longline, "A=", 2);
    memset(longline + 2, 'x', big);
    longline[big + 2] = '\n';
    err_clear(&e);
    assert_int_equal(dotenv_parse(longline, big + 3, "test.env", collect, &l, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "line 1"));
    free(longline);
}

/* A callback's refusal stops the parse with its code and the line. */
static int refuse_b(void *ctx, const char *key, const char *value)
{
    (void)value;
    int *count = ctx;
    (*count)++;
    return strcmp(key, "B") == 0 ? ERR_NOMEM : 0;
}

static void test_dotenv_callback_stops(void **state)
{
    (void)state;
    const char *text = "A=1\nB=2\nC=3\n";
    int count = 0;
    struct err e;
    err_clear(&e);
    assert_int_equal(dotenv_parse(text, strlen(text), "test.env", refuse_b, &count, &e),
                     ERR_NOMEM);
    assert_int_equal(count, 2);
    assert_non_null(strstr(e.msg, "line 2"));
}

struct finalize_case {
    const char *env;
    const char *value;
    const char *msg1;   /* besides the variable name, the message contains these */
    const char *msg2;
};

static const struct finalize_case finalize_cases[] = {
    {"DATAOPS_INTERVALS", "2m", "'2m'", "interval"},
    {"DATAOPS_INTERVALS", "1m,1MO", "'1MO'", NULL},
    {"DATAOPS_INTERVALS", "", "empty", NULL},
    {"DATAOPS_INTERVALS", " , ", "empty", NULL},
    {"DATAOPS_SYMBOLS", "btcusdt", "'btcusdt'", "upper case"},
    {"DATAOPS_SYMBOLS", "BTCUSDT,eth", "'eth'", NULL},
    {"DATAOPS_SYMBOLS", "", "empty", NULL},
    {"DATAOPS_SYMBOLS", ",,", "empty", NULL},
    {"DATAOPS_SYMBOLS", "BTC USDT", "'BTC USDT'", NULL},
    {"DATAOPS_SYMBOLS", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA", NULL},
    {"DATAOPS_START_TIME", "yesterday", "'yesterday'", NULL},
    {"DATAOPS_START_TIME", "1687363200", "'1687363200'", "seconds"},
    {"DATAOPS_START_TIME", "2023-02-30", "'2023-02-30'", NULL},
    {"DATAOPS_END_TIME", "2023-06-21T25:00", "'2023-06-21T25:00'", NULL},
    {"DATAOPS_END_TIME", "2023-06-21T16:00:00Z", "'2023-06-21T16:00:00Z'", "start"},
    {"DATAOPS_END_TIME", "2020-01-01", "'2020-01-01'", "start"},
    {"DATAOPS_WAREHOUSE", "mysql://x", "mysql", "scheme"},
#ifndef DATAOPS_HAVE_BQ
    {"DATAOPS_WAREHOUSE", "bigquery://p", "bigquery", "not supported"},
#endif
    {"DATAOPS_WAREHOUSE", "", "empty", NULL},
    {"DATAOPS_LAKE", "ftp://x", "ftp://x", NULL},
#ifndef DATAOPS_HAVE_GCS
    {"DATAOPS_LAKE", "gs://b", "gs://", "not supported"},
#endif
    {"DATAOPS_SOURCE", "kafka", "'kafka'", NULL},
    {"DATAOPS_SOURCE", "file://", "path", NULL},
    {"BINANCE_BASE_URL", "ftp://api.binance.com", "ftp://api.binance.com", NULL},
    {"BIGQUERY_RAW_TABLE_NAME", "x\"; DROP TABLE y; --", "x\"; DROP TABLE y; --", NULL},
    {"BIGQUERY_TRANSFORMED_TABLE_NAME", "1table", "'1table'", "identifier"},
    {"BIGQUERY_RAW_DATASET", "my-dataset", "'my-dataset'", NULL},
    {"DATAOPS_LOCAL_TIME_COLUMN", "local time", "'local time'", NULL},
    {"GCS_BUCKET_PROJECT_NAME", "../x", "'../x'", NULL},
    {"DATAOPS_TIMEZONE", "Mars/Base", "'Mars/Base'", NULL},
    {"DATAOPS_TIMEZONE", "../etc/passwd", "'../etc/passwd'", NULL},
    {"DATAOPS_LOG_FORMAT", "xml", NULL, NULL},
    {"DATAOPS_LOG_LEVEL", "verbose", NULL, NULL},
    {"DATAOPS_BATCH_ROWS", "10", "'10'", "1000"},
    {"DATAOPS_BATCH_ROWS", "99999999999999999999", "'99999999999999999999'", NULL},
    {"DATAOPS_BATCH_ROWS", "5000x", "'5000x'", NULL},
    {"DATAOPS_HTTP_TIMEOUT", "0", "'0'", NULL},
    {"DATAOPS_HTTP_TIMEOUT", "", "''", NULL},
    {"DATAOPS_CONNECT_TIMEOUT", "601", "'601'", NULL},
    {"DATAOPS_HTTP_RETRIES", "101", "'101'", NULL},
    {"DATAOPS_LOCK_TIMEOUT", "-1", "'-1'", NULL},
    {"DATAOPS_WEIGHT_BUDGET", "abc", "'abc'", NULL},
    {"DATAOPS_WEIGHT_BUDGET", "1000001", "'1000001'", NULL},
};

static void test_finalize_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(finalize_cases) / sizeof(finalize_cases[0]); i++) {
        const struct finalize_case *fc = &finalize_cases[i];
        clear_env();
        if (strcmp(fc->env, "DATAOPS_END_TIME") == 0) {
            setenv("DATAOPS_START_TIME", "2023-06-21T16:00:00Z", 1);
        }
        setenv(fc->env, fc->value, 1);
        struct config c;
        struct err e;
        err_clear(&e);
        assert_int_equal(config_init(&c, NULL, &e), 0);
        int rc = config_finalize(&c, &e);
        if (rc != ERR_CONFIG || e.code != ERR_CONFIG) {
            fail_msg("%s=\"%s\": rc %d (%s)", fc->env, fc->value, rc, e.msg);
        }
        if (!strstr(e.msg, fc->env)) {
            fail_msg("%s=\"%s\": message \"%s\" does not name the variable", fc->env,
                     fc->value, e.msg);
        }
        const char *want[] = {fc->msg1, fc->msg2};
        for (int k = 0; k < 2; k++) {
            if (want[k] && !strstr(e.msg, want[k])) {
                fail_msg("%s=\"%s\": message \"%s\" does not contain \"%s\"", fc->env,
                         fc->value, e.msg, want[k]);
            }
        }
        config_free(&c);
    }
}

/* config.h: "ERR_CONFIG naming the setting and the value".  For URLs with
 * an unknown or planned scheme the whole value must be named, as it is for
 * every other setting.  BUG if this fails: see the report (wh.c and lake.c
 * *_url_supported name only the scheme). */
static void test_bug_finalize_url_errors_name_value(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"DATAOPS_WAREHOUSE", "mysql://x"},
#ifndef DATAOPS_HAVE_BQ
        {"DATAOPS_WAREHOUSE", "bigquery://p"},
#endif
#ifndef DATAOPS_HAVE_GCS
        {"DATAOPS_LAKE", "gs://b"},
#endif
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        clear_env();
        setenv(cases[i][0], cases[i][1], 1);
        struct config c;
        struct err e;
        err_clear(&e);
        assert_int_equal(config_init(&c, NULL, &e), 0);
        assert_int_equal(config_finalize(&c, &e), ERR_CONFIG);
        if (!strstr(e.msg, cases[i][0]) || !strstr(e.msg, cases[i][1])) {
            fail_msg("%s=\"%s\": message \"%s\" does not name the variable and the value",
                     cases[i][0], cases[i][1], e.msg);
        }
        config_free(&c);
    }
}

/* The same errors reached through flags name the flag too. */
static void test_finalize_error_from_flag(void **state)
{
    (void)state;
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    assert_int_equal(config_set_flag(&c, "intervals", "1m,2m", &e), 0);
    assert_int_equal(config_finalize(&c, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "--intervals"));
    assert_non_null(strstr(e.msg, "'2m'"));
    assert_int_equal(config_set_flag(&c, "no-such-flag", "x", &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "no-such-flag"));
    config_free(&c);
}

/* A password in a refused URL is masked in the error message too. */
static void test_finalize_error_masks_password(void **state)
{
    (void)state;
    setenv("BINANCE_BASE_URL", "ftp://user:hunter2secret@api.binance.com", 1);
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    assert_int_equal(config_finalize(&c, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "BINANCE_BASE_URL"));
    assert_null(strstr(e.msg, "hunter2secret"));
    assert_non_null(strstr(e.msg, "****"));
    config_free(&c);

    clear_env();
    setenv("DATAOPS_WAREHOUSE", "mysql://user:hunter2secret@db/x", 1);
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    assert_int_equal(config_finalize(&c, &e), ERR_CONFIG);
    assert_null(strstr(e.msg, "hunter2secret"));
    config_free(&c);
}

static void test_good_settings(void **state)
{
    (void)state;
    setenv("DATAOPS_SYMBOLS", " BTCUSDT, ETHUSDT ,BTCUSDT,,BNB_USDT.X ", 1);
    setenv("DATAOPS_INTERVALS", "1m,1h,1m,1M,1M", 1);
    setenv("DATAOPS_START_TIME", "2024-01-01T08:00:00+08:00", 1);
    setenv("DATAOPS_END_TIME", "1704153600000", 1);
    setenv("DATAOPS_WAREHOUSE", "sqlite:///tmp/x/wh.db", 1);
    setenv("DATAOPS_LAKE", "file:///tmp/x/lake", 1);
    setenv("DATAOPS_SOURCE", "file:///tmp/pages.jsonl", 1);
    setenv("DATAOPS_TIMEZONE", "UTC", 1);
    setenv("DATAOPS_LOCK_TIMEOUT", "86400", 1);
    setenv("DATAOPS_BATCH_ROWS", "1000", 1);
    setenv("BIGQUERY_RAW_TABLE_NAME", "_raw2", 1);
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    if (config_finalize(&c, &e) != 0) {
        fail_msg("config_finalize: %s", e.msg);
    }
    assert_int_equal(c.nsymbols, 3);
    assert_string_equal(c.symbols[0], "BTCUSDT");
    assert_string_equal(c.symbols[1], "ETHUSDT");
    assert_string_equal(c.symbols[2], "BNB_USDT.X");
    assert_int_equal(c.nintervals, 3);
    assert_string_equal(c.intervals[0]->name, "1m");
    assert_string_equal(c.intervals[1]->name, "1h");
    assert_string_equal(c.intervals[2]->name, "1M");
    assert_int_equal(c.start_ms, 1704067200000LL);
    assert_int_equal(c.end_ms, 1704153600000LL);
    assert_int_equal(c.lock_timeout_s, 86400);
    assert_int_equal(c.batch_rows, 1000);
    config_free(&c);
}

static void test_identifier(void **state)
{
    (void)state;
    assert_true(config_is_identifier("raw_binance_btcusdt_spot"));
    assert_true(config_is_identifier("_x1"));
    assert_false(config_is_identifier(""));
    assert_false(config_is_identifier("1x"));
    assert_false(config_is_identifier("x\"; DROP TABLE y; --"));
    assert_false(config_is_identifier("a.b"));
    assert_false(config_is_identifier("a-b"));
    assert_false(config_is_identifier("we\"ird"));
    char long_name[200];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_false(config_is_identifier(long_name));
    long_name[128] = '\0';
    assert_true(config_is_identifier(long_name));
}

struct mask_case {
    const char *in;
    const char *out;
};

static const struct mask_case mask_cases[] = {
    {"postgresql://u:secret@h/db", "postgresql://u:****@h/db"},
    {"postgresql://u:secret@h:5432/db?sslmode=require",
     "postgresql://u:****@h:5432/db?sslmode=require"},
    {"postgresql://h/db?password=x", "postgresql://h/db?password=****"},
    {"postgresql://h/db?user=u&password=longsecret&sslmode=require",
     "postgresql://h/db?user=u&password=****&sslmode=require"},
    {"s3://bucket/p?X-Amz-Credential=a&sig=abcdef", "s3://bucket/p?X-Amz-Credential=a&sig=****"},
    {"https://h/x?token=t0k", "https://h/x?token=****"},
    {"postgresql://u@h/db", "postgresql://u@h/db"},
    {"postgresql://h/db", "postgresql://h/db"},
    {"sqlite:///tmp/wh.db", "sqlite:///tmp/wh.db"},
    {"data/warehouse.db", "data/warehouse.db"},
    {"https://api.binance.com", "https://api.binance.com"},
    {"https://h/path@x:y", "https://h/path@x:y"},
    {"", ""},
};

static void test_mask_url(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++) {
        char out[256];
        config_mask_url(mask_cases[i].in, out, sizeof(out));
        if (strcmp(out, mask_cases[i].out) != 0) {
            fail_msg("config_mask_url(\"%s\") = \"%s\", expected \"%s\"", mask_cases[i].in, out,
                     mask_cases[i].out);
        }
    }
    /* A short buffer gets a terminated prefix, never the secret. */
    char small[16];
    config_mask_url("postgresql://u:secret@h/db", small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_null(strstr(small, "secret"));
}

/* Both the user-info password and a password= parameter are masked.
 * BUG if this fails: see the report (config.c config_mask_url returns after
 * the user-info branch without looking at the query). */
static void test_bug_mask_url_both_forms(void **state)
{
    (void)state;
    char out[256];
    config_mask_url("postgresql://u:userpw@h/db?sslpassword=querypw", out, sizeof(out));
    assert_null(strstr(out, "userpw"));
    assert_null(strstr(out, "querypw"));
    config_mask_url("postgresql://u:userpw@h/db?password=querypw", out, sizeof(out));
    assert_null(strstr(out, "userpw"));
    assert_null(strstr(out, "querypw"));
}

/* config_mask_url writes at most n bytes, whatever the secret's length.
 * A secret shorter than the 4-character mask makes the string grow while
 * masking.  BUG if this fails: see the report (config.c config_mask_url,
 * memmove past out[n-1]). */
static void test_bug_mask_url_stays_in_buffer(void **state)
{
    (void)state;
    const char *url = "postgresql://h/db?password=x";
    size_t n = strlen(url) + 1;   /* exactly enough for the unmasked URL */
    char area[128];
    memset(area, '#', sizeof(area));
    config_mask_url(url, area, n);
    for (size_t i = n; i < sizeof(area); i++) {
        if (area[i] != '#') {
            fail_msg("config_mask_url wrote byte %zu of a %zu-byte buffer", i, n);
        }
    }
    assert_true(memchr(area, '\0', n) != NULL);
}

static void test_to_json(void **state)
{
    (void)state;
    setenv("DATAOPS_WAREHOUSE", "postgresql://loader:Pl4ntedPassw0rd@db.example/wh", 1);
    setenv("DATAOPS_LAKE", "s3://bucket/lake?sig=Pl4ntedSig4ture", 1);
    setenv("BINANCE_BASE_URL", "https://key:Pl4ntedApiS3cret@api.binance.com", 1);
    setenv("DATAOPS_SYMBOLS", "A\"B\\C\n", 1);
    struct config c;
    struct err e;
    err_clear(&e);
    assert_int_equal(config_init(&c, NULL, &e), 0);
    assert_int_equal(config_set_flag(&c, "intervals", "5m", &e), 0);
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(config_to_json(&c, &out), 0);
    assert_null(strstr(out.data, "Pl4nted"));

    cJSON *j = cJSON_ParseWithLength(out.data, out.len);
    if (!j) {
        fail_msg("config_to_json output is not JSON:\n%s", out.data);
    }
    assert_true(cJSON_IsObject(j));
    assert_int_equal(cJSON_GetArraySize(j), S__COUNT);
    for (int i = 0; i < S__COUNT; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, settings[i].env);
        assert_non_null(item);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "value");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(item, "source");
        assert_true(cJSON_IsString(v));
        assert_true(cJSON_IsString(s));
        assert_null(strstr(v->valuestring, "Pl4nted"));
    }
    const cJSON *sym = cJSON_GetObjectItemCaseSensitive(j, "DATAOPS_SYMBOLS");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(sym, "value")->valuestring,
                        "A\"B\\C\n");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(sym, "source")->valuestring,
                        "environment");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(j, "DATAOPS_INTERVALS");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(iv, "source")->valuestring, "flag");
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(j, "DATAOPS_TIMEZONE");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tz, "value")->valuestring,
                        "Asia/Singapore");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tz, "source")->valuestring, "default");
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(j, "DATAOPS_WAREHOUSE");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(wh, "value")->valuestring,
                        "postgresql://loader:****@db.example/wh");
    cJSON_Delete(j);
    buf_free(&out);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_file_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_grammar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_callback_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_finalize_url_errors_name_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_error_from_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_error_masks_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identifier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mask_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_mask_url_both_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_mask_url_stays_in_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_to_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
