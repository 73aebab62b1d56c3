/*
 * test_wh_sqlite.c - unit tests for the SQLite warehouse
 * (src/load/wh_sqlite.c through the wh.c seam), on real klines from the 1m
 * sample, in a mkdtemp directory: schema creation (idempotent), raw upserts
 * in a transaction, the watermark, re-loading the same batch changes nothing
 * (updated_at kept), a changed value updates its row only, rollback and
 * isolation, scan_raw (order, limit by batch capacity, updated_at), the
 * transformed table and its datetime watermark, quarantine rows, run
 * records (insert then update, with pairs), the run lock (ERR_LOCKED naming
 * the lock file, released on close), a file that is not a database, a path
 * through a regular file, and table names with quotes that must never be
 * executed as SQL.
 *
 * The tables are checked through a second, independent sqlite3 connection.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"
#include <sqlite3.h>

#include "extract/kline_parse.h"
#include "load/wh.h"
#include "metadata/run.h"
#include "schema/interval.h"
#include "schema/kline.h"
#include "transform/transform.h"
#include "transform/tz.h"
#include "util/err.h"
#include "util/timeutil.h"

#define UPDATED_1 "2024-09-04 20:03:00.000"
#define UPDATED_2 "2030-01-01 00:00:00.000"

struct fixture {
    char dir[256];
    char db[320];
    struct kline_batch rows;   /* the 1000 rows of the 1m sample */
};

static int load_sample(struct kline_batch *b)
{
    const char *root = getenv("DATAOPS_TESTDATA");
    if (!root) {
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/binance/patten-trainer/BTCUSDT_1m.json", root);
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)n + 1);
    if (!body || fread(body, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(body);
        return -1;
    }
    fclose(f);
    struct err e;
    err_clear(&e);
    int rc = kline_batch_init(b, 1000) == 0 ? kline_parse_page(body, (size_t)n, b, &e) : -1;
    free(body);
    return rc == 0 && b->n == 1000 ? 0 : -1;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/dataops_test_wh_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    if (load_sample(&f->rows) != 0) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/wh.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kline_batch_free(&f->rows);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static const struct wh_names default_names = {
    .raw_dataset = "ds",
    .raw_table = "raw_t",
    .transformed_dataset = "ds",
    .transformed_table = "tr_t",
    .local_time_column = "utc_singapore_datetime",
};

static struct wh *open_wh(const char *url, const struct wh_names *names)
{
    struct wh *w = NULL;
    struct err e;
    err_clear(&e);
    if (wh_open(url, names, &w, &e) != 0) {
        fail_msg("wh_open(%s): %s", url, e.msg);
    }
    assert_non_null(w);
    if (w->ops->ensure_schema(w, &e) != 0) {
        fail_msg("ensure_schema: %s", e.msg);
    }
    return w;
}

/* A view of rows [from, from + n) of the sample as a batch (not owned). */
static struct kline_batch slice(const struct fixture *f, size_t from, size_t n)
{
    struct kline_batch b = {f->rows.rows + from, n, n};
    return b;
}

static void put_raw_txn(struct wh *w, const struct kline_batch *b, const char *updated_at)
{
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->begin(w, &e), 0);
    if (w->ops->put_raw(w, "BTCUSDT", "1m", b, updated_at, &e) != 0) {
        fail_msg("put_raw: %s", e.msg);
    }
    if (w->ops->commit(w, "file:///lake/x.csv", &e) != 0) {
        fail_msg("commit: %s", e.msg);
    }
}

/* One integer from a query on a separate connection. */
static int64_t q_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    }
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

/* One text value (or "NULL") from a query on a separate connection. */
static void q_text(const char *db, const char *sql, char *out, size_t n)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    }
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out, n, "%s", t ? (const char *)t : "NULL");
    sqlite3_finalize(s);
    sqlite3_close(h);
}

static void assert_watermark(struct wh *w, enum wh_table t, const char *symbol,
                             const char *interval, int want_found, int64_t want)
{
    struct err e;
    err_clear(&e);
    int64_t wm = -42;
    int found = -1;
    if (w->ops->watermark(w, t, symbol, interval, &wm, &found, &e) != 0) {
        fail_msg("watermark: %s", e.msg);
    }
    assert_int_equal(found, want_found);
    if (want_found) {
        assert_int_equal(wm, want);
    }
}

static void test_raw_load_idempotent(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    struct err e;
    err_clear(&e);
    /* Schema creation is idempotent. */
    assert_int_equal(w->ops->ensure_schema(w, &e), 0);
    assert_int_equal(w->ops->ensure_schema(w, &e), 0);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 0, 0);

    struct kline_batch b = slice(f, 0, 100);
    put_raw_txn(w, &b, UPDATED_1);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[99].open_time);
    assert_watermark(w, WH_RAW, "ETHUSDT", "1m", 0, 0);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1M", 0, 0);
    assert_watermark(w, WH_TRANSFORMED, "BTCUSDT", "1m", 0, 0);

    /* The stored row is the exchange's, byte for byte. */
    char txt[128];
    q_text(f->db, "SELECT utc_datetime || '|' || \"open\" || '|' || high || '|' || close_time"
           " || '|' || number_of_trades || '|' || \"ignore\" || '|' || updated_at || '|' ||"
           " symbol || '|' || \"interval\" FROM raw_t WHERE open_time = 1725416820000",
           txt, sizeof(txt));
    assert_string_equal(txt, "2024-09-04 02:27:00.000|56714.00000000|56714.01000000|"
                        "1725416879999|1425|0|" UPDATED_1 "|BTCUSDT|1m");

    /* The same batch again, with another updated_at: nothing changes. */
    put_raw_txn(w, &b, UPDATED_2);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t WHERE updated_at = '"
                           UPDATED_1 "'"), 100);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[99].open_time);

    /* A changed value updates that row (and its updated_at) only. */
    struct kline changed = f->rows.rows[5];
    snprintf(changed.s[KS_CLOSE], KLINE_STR_MAX, "56600.12345678");
    changed.len[KS_CLOSE] = (uint8_t)strlen(changed.s[KS_CLOSE]);
    struct kline changed_trades = f->rows.rows[6];
    changed_trades.trades += 1;
    struct kline pair[2] = {changed, changed_trades};
    struct kline_batch cb = {pair, 2, 2};
    put_raw_txn(w, &cb, UPDATED_2);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT \"close\" || '|' || updated_at FROM raw_t"
             " WHERE open_time = %lld", (long long)changed.open_time);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, "56600.12345678|" UPDATED_2);
    snprintf(sql, sizeof(sql), "SELECT number_of_trades FROM raw_t WHERE open_time = %lld",
             (long long)changed_trades.open_time);
    assert_int_equal(q_int(f->db, sql), f->rows.rows[6].trades + 1);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t WHERE updated_at = '"
                           UPDATED_2 "'"), 2);
    wh_close(w);

    /* Reopened, the data is still there. */
    w = open_wh(f->db, &default_names);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[99].open_time);
    wh_close(w);
}

static void test_rollback_and_isolation(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    struct kline_batch first = slice(f, 0, 100);
    put_raw_txn(w, &first, UPDATED_1);

    struct err e;
    err_clear(&e);
    struct kline_batch more = slice(f, 100, 100);
    assert_int_equal(w->ops->begin(w, &e), 0);
    assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &more, UPDATED_1, &e), 0);
    /* Not visible to anyone else before commit. */
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);
    w->ops->rollback(w);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[99].open_time);
    w->ops->rollback(w);   /* a second rollback is harmless */

    /* Closing with an open transaction discards it too. */
    assert_int_equal(w->ops->begin(w, &e), 0);
    assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &more, UPDATED_1, &e), 0);
    wh_close(w);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 100);

    /* And a committed one is all there. */
    w = open_wh(f->db, &default_names);
    put_raw_txn(w, &more, UPDATED_1);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM raw_t"), 200);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[199].open_time);
    wh_close(w);
}

static void assert_same_kline(const struct kline *a, const struct kline *b)
{
    assert_int_equal(a->open_time, b->open_time);
    assert_int_equal(a->close_time, b->close_time);
    assert_int_equal(a->trades, b->trades);
    for (int i = 0; i < KS_COUNT; i++) {
        assert_string_equal(a->s[i], b->s[i]);
        assert_int_equal(a->len[i], b->len[i]);
    }
}

/* scan_raw's own read connection: a failure names the cause, and the next
 * call opens it afresh (here: before the tables exist, then after). */
static void test_scan_raw_before_the_tables(void **state)
{
    struct fixture *f = *state;
    struct wh *w = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(wh_open(f->db, &default_names, &w, &e), 0);
    struct kline_batch out;
    assert_int_equal(kline_batch_init(&out, 10), 0);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", INT64_MIN, &out, &e), ERR_WAREHOUSE);
    assert_non_null(strstr(e.msg, "no such table"));
    assert_non_null(strstr(e.msg, "prepare raw scan"));
    err_clear(&e);
    assert_int_equal(w->ops->ensure_schema(w, &e), 0);
    struct kline_batch b = slice(f, 0, 5);
    put_raw_txn(w, &b, UPDATED_1);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", INT64_MIN, &out, &e), 0);
    assert_int_equal(out.n, 5);
    kline_batch_free(&out);
    wh_close(w);
}

static void test_scan_raw(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    /* Loaded out of order, in two transactions. */
    struct kline_batch second = slice(f, 50, 50);
    struct kline_batch first = slice(f, 0, 50);
    put_raw_txn(w, &second, UPDATED_2);
    put_raw_txn(w, &first, UPDATED_1);

    struct kline_batch out;
    assert_int_equal(kline_batch_init(&out, 10), 0);
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", f->rows.rows[44].open_time, &out, &e),
                     0);
    assert_int_equal(out.n, 10);
    for (size_t i = 0; i < out.n; i++) {
        assert_same_kline(&out.rows[i], &f->rows.rows[45 + i]);
        assert_string_equal(out.rows[i].updated_at, 45 + i < 50 ? UPDATED_1 : UPDATED_2);
    }

    /* Appends after what the batch holds, up to its capacity. */
    out.n = 5;
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", f->rows.rows[89].open_time, &out, &e),
                     0);
    assert_int_equal(out.n, 10);
    for (size_t i = 0; i < 5; i++) {
        assert_same_kline(&out.rows[5 + i], &f->rows.rows[90 + i]);
    }
    /* Near the end: fewer rows than room. */
    out.n = 0;
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", f->rows.rows[96].open_time, &out, &e),
                     0);
    assert_int_equal(out.n, 3);
    assert_same_kline(&out.rows[2], &f->rows.rows[99]);
    /* After the watermark, from the very start, and another pair. */
    out.n = 0;
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", f->rows.rows[99].open_time, &out, &e),
                     0);
    assert_int_equal(out.n, 0);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", INT64_MIN, &out, &e), 0);
    assert_int_equal(out.n, 10);
    assert_same_kline(&out.rows[0], &f->rows.rows[0]);
    out.n = 0;
    assert_int_equal(w->ops->scan_raw(w, "ETHUSDT", "1m", INT64_MIN, &out, &e), 0);
    assert_int_equal(out.n, 0);
    /* A full batch takes nothing. */
    out.n = out.cap;
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", INT64_MIN, &out, &e), 0);
    assert_int_equal(out.n, out.cap);
    kline_batch_free(&out);
    wh_close(w);
}

static void transform_slice(const struct fixture *f, size_t from, size_t n,
                            struct tkline_batch *t)
{
    assert_int_equal(tkline_batch_init(t, n), 0);
    for (size_t i = 0; i < n; i++) {
        struct kline k = f->rows.rows[from + i];
        snprintf(k.updated_at, sizeof(k.updated_at), UPDATED_1);
        transform_row(&k, &t->rows[i]);
    }
    t->n = n;
}

static void put_t_txn(struct wh *w, const struct tkline_batch *t)
{
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->begin(w, &e), 0);
    if (w->ops->put_transformed(w, "BTCUSDT", "1m", t, &e) != 0) {
        fail_msg("put_transformed: %s", e.msg);
    }
    assert_int_equal(w->ops->commit(w, "file:///lake/t.csv", &e), 0);
}

static void test_transformed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(tz_init("Asia/Singapore"), 0);
    struct wh *w = open_wh(f->db, &default_names);
    struct tkline_batch t;
    transform_slice(f, 0, 100, &t);
    put_t_txn(w, &t);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM tr_t"), 100);
    /* Stored as datetime text, returned as ms. */
    assert_watermark(w, WH_TRANSFORMED, "BTCUSDT", "1m", 1, f->rows.rows[99].open_time);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 0, 0);
    char txt[256];
    q_text(f->db, "SELECT open_time || '|' || close_time || '|' || utc_singapore_datetime ||"
           " '|' || typeof(\"open\") || '|' || updated_at FROM tr_t"
           " WHERE utc_datetime = '2024-09-04 02:27:00.000'", txt, sizeof(txt));
    assert_string_equal(txt, "2024-09-04 02:27:00.000|2024-09-04 02:27:59.999|"
                        "2024-09-04 10:27:00.000+08:00|real|" UPDATED_1);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM tr_t WHERE high = 56714.01"), 1);

    /* Again, identical: still 100 rows. */
    put_t_txn(w, &t);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM tr_t"), 100);
    /* A changed number updates the row. */
    t.rows[3].v[TN_CLOSE] = 1.5;
    snprintf(t.rows[3].updated_at, sizeof(t.rows[3].updated_at), UPDATED_2);
    put_t_txn(w, &t);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM tr_t"), 100);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM tr_t WHERE \"close\" = 1.5 AND"
                           " updated_at = '" UPDATED_2 "'"), 1);
    tkline_batch_free(&t);
    wh_close(w);
}

/* wh.h: "loads are upserts that leave an identical row untouched" - a row
 * whose local-time column differs (the time zone setting changed) is not
 * identical and must be updated.  BUG if this fails: see the report
 * (wh_sqlite.c, the transformed upsert's WHERE ... IS NOT list omits the
 * local-time column). */
static void test_bug_transformed_local_column_change_updates(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(tz_init("Asia/Singapore"), 0);
    struct wh *w = open_wh(f->db, &default_names);
    struct tkline_batch t;
    transform_slice(f, 0, 10, &t);
    put_t_txn(w, &t);
    assert_int_equal(tz_init("UTC"), 0);
    tkline_batch_free(&t);
    transform_slice(f, 0, 10, &t);
    put_t_txn(w, &t);
    char txt[64];
    q_text(f->db, "SELECT utc_singapore_datetime FROM tr_t"
           " WHERE utc_datetime = '2024-09-04 02:27:00.000'", txt, sizeof(txt));
    assert_string_equal(txt, "2024-09-04 02:27:00.000+00:00");
    tkline_batch_free(&t);
    wh_close(w);
}

static void test_quarantine(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->begin(w, &e), 0);
    assert_int_equal(w->ops->put_quarantine(w, "run-1", "raw", "BTCUSDT", "1m", 1725416820000LL,
                                            "ohlc: low 2 is above open 1", "[1725416820000]", &e),
                     0);
    assert_int_equal(w->ops->put_quarantine(w, "run-1", "transformed", "BTCUSDT", "1m",
                                            1725416880000LL, "it's \"quoted\"; DROP TABLE x",
                                            "[]", &e), 0);
    assert_int_equal(w->ops->commit(w, "", &e), 0);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM dataops_quarantine"), 2);
    char txt[256];
    q_text(f->db, "SELECT run_id || '|' || stage || '|' || symbol || '|' || \"interval\" ||"
           " '|' || open_time || '|' || reason || '|' || row_json FROM dataops_quarantine"
           " WHERE stage = 'raw'", txt, sizeof(txt));
    assert_string_equal(txt, "run-1|raw|BTCUSDT|1m|1725416820000|ohlc: low 2 is above open 1|"
                        "[1725416820000]");
    q_text(f->db, "SELECT reason FROM dataops_quarantine WHERE stage = 'transformed'", txt,
           sizeof(txt));
    assert_string_equal(txt, "it's \"quoted\"; DROP TABLE x");
    q_text(f->db, "SELECT created_at FROM dataops_quarantine LIMIT 1", txt, sizeof(txt));
    int64_t created = 0;
    char why[64];
    assert_int_equal(time_parse(txt, &created, why, sizeof(why)), 0);
    assert_true(llabs(created - time_now_ms()) < 60000);
    wh_close(w);
}

static void test_record_run(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    struct run r;
    assert_int_equal(run_init(&r, 4), 0);
    struct pair_stats *p = run_add_pair(&r, "BTCUSDT", interval_find("1m"));
    p->range_start = 1725416820000LL;
    p->range_end = 1725476820000LL;
    struct err e;
    err_clear(&e);
    if (w->ops->record_run(w, &r, &e) != 0) {
        fail_msg("record_run: %s", e.msg);
    }
    char sql[256];
    char txt[256];
    snprintf(sql, sizeof(sql), "SELECT status || '|' || coalesce(ended_at, 'NULL') FROM"
             " dataops_runs WHERE run_id = '%s'", r.run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, "running|NULL");
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM dataops_run_pairs"), 1);

    /* The end of the run: an update, not a second row. */
    snprintf(r.status, sizeof(r.status), "ok");
    r.exit_code = 3;
    r.ended_at = 1725480000000LL;
    snprintf(r.error, sizeof(r.error), "quality gate: 2 rows rejected");
    p->raw_loaded = 1000;
    p->rejected = 2;
    p->transformed = 998;
    snprintf(p->status, sizeof(p->status), "rejected");
    struct pair_stats *p2 = run_add_pair(&r, "ETHUSDT", interval_find("1M"));
    snprintf(p2->status, sizeof(p2->status), "failed");
    snprintf(p2->error, sizeof(p2->error), "exchange error -1121");
    if (w->ops->record_run(w, &r, &e) != 0) {
        fail_msg("record_run: %s", e.msg);
    }
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM dataops_runs"), 1);
    snprintf(sql, sizeof(sql), "SELECT status || '|' || ended_at || '|' || exit_code || '|' ||"
             " error || '|' || git_commit FROM dataops_runs WHERE run_id = '%s'", r.run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    char want[256];
    snprintf(want, sizeof(want), "ok|2024-09-04 20:00:00.000|3|quality gate: 2 rows rejected|%s",
             r.git_commit);
    assert_string_equal(txt, want);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM dataops_run_pairs"), 2);
    q_text(f->db, "SELECT rows_raw_loaded || '|' || rows_rejected || '|' || rows_transformed ||"
           " '|' || status || '|' || range_start FROM dataops_run_pairs"
           " WHERE symbol = 'BTCUSDT' AND \"interval\" = '1m'", txt, sizeof(txt));
    assert_string_equal(txt, "1000|2|998|rejected|1725416820000");
    q_text(f->db, "SELECT status || '|' || error FROM dataops_run_pairs"
           " WHERE symbol = 'ETHUSDT' AND \"interval\" = '1M'", txt, sizeof(txt));
    assert_string_equal(txt, "failed|exchange error -1121");
    run_free(&r);
    wh_close(w);
}

/* Two runs that died with status 'running' (one with a pair still
 * pending) and one that ended: only the dead ones are marked. */
static void test_abandon_dead_runs(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    struct run dead[2], ended, now;
    struct err e;
    err_clear(&e);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_init(&dead[i], 4), 0);
        if (i == 0) {
            run_add_pair(&dead[i], "BTCUSDT", interval_find("1m"));
        }
        assert_int_equal(w->ops->record_run(w, &dead[i], &e), 0);
    }
    assert_int_equal(run_init(&ended, 4), 0);
    struct pair_stats *p = run_add_pair(&ended, "BTCUSDT", interval_find("1m"));
    snprintf(p->status, sizeof(p->status), "ok");
    snprintf(ended.status, sizeof(ended.status), "ok");
    ended.ended_at = time_now_ms();
    assert_int_equal(w->ops->record_run(w, &ended, &e), 0);
    assert_int_equal(run_init(&now, 4), 0);
    assert_int_equal(w->ops->record_run(w, &now, &e), 0);

    int n = -1;
    char ids[200];
    if (w->ops->abandon_dead_runs(w, now.run_id, &n, ids, sizeof(ids), &e) != 0) {
        fail_msg("abandon_dead_runs: %s", e.msg);
    }
    assert_int_equal(n, 2);
    assert_non_null(strstr(ids, dead[0].run_id));
    assert_non_null(strstr(ids, dead[1].run_id));
    char sql[300];
    char txt[400];
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof(sql), "SELECT status || '|' || coalesce(exit_code, 'NULL') || '|'"
                 " || error FROM dataops_runs WHERE run_id = '%s'", dead[i].run_id);
        q_text(f->db, sql, txt, sizeof(txt));
        char want[400];
        snprintf(want, sizeof(want), "abandoned|NULL|no end was recorded: the process was"
                 " killed, crashed or lost its host (found by run %s)", now.run_id);
        assert_string_equal(txt, want);
    }
    snprintf(sql, sizeof(sql), "SELECT status FROM dataops_run_pairs WHERE run_id = '%s'",
             dead[0].run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, "abandoned");
    snprintf(sql, sizeof(sql), "SELECT status FROM dataops_runs WHERE run_id = '%s'",
             ended.run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, "ok");
    snprintf(sql, sizeof(sql), "SELECT status FROM dataops_runs WHERE run_id = '%s'",
             now.run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, "running");

    /* Nothing left to mark the second time. */
    assert_int_equal(w->ops->abandon_dead_runs(w, now.run_id, &n, ids, sizeof(ids), &e), 0);
    assert_int_equal(n, 0);
    assert_string_equal(ids, "");
    for (int i = 0; i < 2; i++) {
        run_free(&dead[i]);
    }
    run_free(&ended);
    run_free(&now);
    wh_close(w);
}

/* A file made before dataops_runs had raw_table gets the column, and runs
 * recorded without it are still marked (this file's lock covers them). */
static void test_old_runs_table_gets_raw_table(void **state)
{
    struct fixture *f = *state;
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE dataops_runs (run_id TEXT PRIMARY KEY,"
                                  " git_commit TEXT NOT NULL, version TEXT NOT NULL, hostname"
                                  " TEXT, started_at TEXT NOT NULL, ended_at TEXT, status TEXT"
                                  " NOT NULL, exit_code INTEGER, error TEXT); INSERT INTO"
                                  " dataops_runs VALUES ('old', 'x', '0', NULL, '2024-01-01"
                                  " 00:00:00.000', NULL, 'running', 0, NULL)", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(h);
    struct wh *w = open_wh(f->db, &default_names);
    struct run r;
    assert_int_equal(run_init(&r, 4), 0);
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->record_run(w, &r, &e), 0);
    char sql[200];
    char txt[200];
    snprintf(sql, sizeof(sql), "SELECT raw_table FROM dataops_runs WHERE run_id = '%s'",
             r.run_id);
    q_text(f->db, sql, txt, sizeof(txt));
    assert_string_equal(txt, default_names.raw_table);
    int n = 0;
    char ids[100];
    assert_int_equal(w->ops->abandon_dead_runs(w, r.run_id, &n, ids, sizeof(ids), &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids, "old");
    run_free(&r);
    wh_close(w);
}

/* Processes that open one new file at the same moment, each then creating
 * the tables, all succeed.  (The SQLITE_BUSY that the open now retries
 * was seen twice in about a hundred runs of two concurrent dataops runs;
 * this test has not caught it, but guards the path.) */
static void test_concurrent_first_open(void **state)
{
    struct fixture *f = *state;
    enum { ROUNDS = 20, PROCS = 6 };
    int failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/new-%d.db", f->dir, round);
        pid_t pids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                struct wh *w = NULL;
                struct err e;
                err_clear(&e);
                int rc = wh_open(path, &default_names, &w, &e);
                if (rc == 0) {
                    rc = w->ops->ensure_schema(w, &e);
                }
                if (rc != 0) {
                    fprintf(stderr, "round %d: %s\n", round, e.msg);
                }
                wh_close(w);
                _exit(rc == 0 ? 0 : 1);
            }
        }
        for (int i = 0; i < PROCS; i++) {
            int st = 0;
            assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
            failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
    }
    assert_int_equal(failed, 0);
}

static void test_note_id(void **state)
{
    (void)state;
    char out[20] = "";
    wh_note_id(out, sizeof(out), "aaaa");
    wh_note_id(out, sizeof(out), "bbbb");
    assert_string_equal(out, "aaaa, bbbb");
    wh_note_id(out, sizeof(out), "cccc");   /* 16 + 6 > 20: cut */
    assert_string_equal(out, "aaaa, bbbb, ...");
    wh_note_id(out, sizeof(out), "d");
    assert_string_equal(out, "aaaa, bbbb, ...");
    char tiny[5] = "";
    wh_note_id(tiny, sizeof(tiny), "a-long-id");
    assert_string_equal(tiny, "...");
}

static void test_lock(void **state)
{
    struct fixture *f = *state;
    struct wh *w1 = open_wh(f->db, &default_names);
    struct wh *w2 = open_wh(f->db, &default_names);
    struct err e;
    err_clear(&e);
    assert_int_equal(w1->ops->lock(w1, 0, &e), 0);
    char lock_path[400];
    snprintf(lock_path, sizeof(lock_path), "%s.lock", f->db);
    assert_int_equal(access(lock_path, F_OK), 0);

    int64_t t0 = time_monotonic_ms();
    err_clear(&e);
    assert_int_equal(w2->ops->lock(w2, 0, &e), ERR_LOCKED);
    assert_int_equal(e.code, ERR_LOCKED);
    assert_true(time_monotonic_ms() - t0 < 1000);
    assert_non_null(strstr(e.msg, lock_path));
    /* The holder is named for the operator. */
    char holder[64];
    snprintf(holder, sizeof(holder), "pid %ld", (long)getpid());
    assert_non_null(strstr(e.msg, holder));

    /* Released when its holder closes. */
    wh_close(w1);
    err_clear(&e);
    if (w2->ops->lock(w2, 0, &e) != 0) {
        fail_msg("second lock after release: %s", e.msg);
    }
    wh_close(w2);
}

static void test_not_a_database(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->db, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++) {
        fprintf(fp, "line %d: this is a text file, not an SQLite database at all\n", i);
    }
    fclose(fp);
    struct stat before;
    assert_int_equal(stat(f->db, &before), 0);

    struct wh *w = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(wh_open(f->db, &default_names, &w, &e), ERR_WAREHOUSE);
    assert_int_equal(e.code, ERR_WAREHOUSE);
    assert_null(w);
    assert_non_null(strstr(e.msg, f->db));
    assert_non_null(strstr(e.msg, "not a"));
    assert_non_null(strstr(e.msg, "database"));
    /* The file is left as it was. */
    struct stat after;
    assert_int_equal(stat(f->db, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
}

/* Names reach SQL quoted: a quote inside a name is part of the name, and a
 * name that looks like an injection creates a table of that exact name. */
static void test_quoted_names(void **state)
{
    struct fixture *f = *state;
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE victim (x INTEGER); INSERT INTO victim"
                                  " VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    const struct wh_names names = {
        .raw_dataset = "ds",
        .raw_table = "we\"ird",
        .transformed_dataset = "ds",
        .transformed_table = "x\"; DROP TABLE victim; --",
        .local_time_column = "lo\"c",
    };
    assert_int_equal(tz_init("UTC"), 0);
    struct wh *w = open_wh(f->db, &names);
    struct kline_batch b = slice(f, 0, 20);
    put_raw_txn(w, &b, UPDATED_1);
    assert_watermark(w, WH_RAW, "BTCUSDT", "1m", 1, f->rows.rows[19].open_time);
    struct tkline_batch t;
    transform_slice(f, 0, 20, &t);
    put_t_txn(w, &t);
    assert_watermark(w, WH_TRANSFORMED, "BTCUSDT", "1m", 1, f->rows.rows[19].open_time);
    struct kline_batch out;
    assert_int_equal(kline_batch_init(&out, 50), 0);
    struct err e;
    err_clear(&e);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", INT64_MIN, &out, &e), 0);
    assert_int_equal(out.n, 20);
    wh_close(w);

    assert_int_equal(q_int(f->db, "SELECT count(*) FROM victim"), 1);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM \"we\"\"ird\""), 20);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM \"x\"\"; DROP TABLE victim; --\""),
                     20);
    assert_int_equal(q_int(f->db, "SELECT count(*) FROM \"x\"\"; DROP TABLE victim; --\""
                           " WHERE \"lo\"\"c\" LIKE '%+00:00'"), 20);
    kline_batch_free(&out);
    tkline_batch_free(&t);
}

/* An existing transformed table made with another local-time column name
 * is reported by ensure_schema, not failed on at insert time (wh_sqlite.c's
 * own comment).  BUG if this fails: see the report (the check selects the
 * double-quoted name, which SQLite reads as a string literal when no such
 * column exists, so it always succeeds). */
static void test_bug_other_local_column(void **state)
{
    struct fixture *f = *state;
    struct wh *w = open_wh(f->db, &default_names);
    wh_close(w);
    struct wh_names other = default_names;
    other.local_time_column = "utc_tokyo_datetime";
    w = NULL;
    struct err e;
    err_clear(&e);
    if (wh_open(f->db, &other, &w, &e) != 0) {
        fail_msg("wh_open: %s", e.msg);
    }
    assert_int_equal(w->ops->ensure_schema(w, &e), ERR_WAREHOUSE);
    assert_non_null(strstr(e.msg, "utc_tokyo_datetime"));
    wh_close(w);
}

/* A warehouse path that runs through a regular file fails with
 * ERR_WAREHOUSE and a readable message that keeps the cause.  BUG if this
 * fails: see the report (wh_sqlite.c sq_open formats e->msg into itself:
 * err_set(e, ..., "warehouse directory: %s", e->msg)). */
static void test_bug_open_under_a_file(void **state)
{
    struct fixture *f = *state;
    put_file(f->dir, "file", "");
    char url[600];
    snprintf(url, sizeof(url), "%s/file/sub/wh.db", f->dir);
    struct wh *w = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(wh_open(url, &default_names, &w, &e), ERR_WAREHOUSE);
    assert_null(w);
    const char *first = strstr(e.msg, "warehouse directory");
    assert_non_null(first);
    if (strstr(first + 1, "warehouse directory")) {
        fail_msg("garbled message: %s", e.msg);
    }
    assert_non_null(strstr(e.msg, "Not a directory"));
}

static void test_urls(void **state)
{
    struct fixture *f = *state;
    char why[256];
    assert_true(wh_url_supported(f->db, why, sizeof(why)));
    assert_true(wh_url_supported("data/warehouse.db", why, sizeof(why)));
    assert_true(wh_url_supported("sqlite:///tmp/x.db", why, sizeof(why)));
    why[0] = '\0';
    assert_false(wh_url_supported("mysql://x", why, sizeof(why)));
    assert_non_null(strstr(why, "mysql"));
    why[0] = '\0';
    assert_false(wh_url_supported("", why, sizeof(why)));
    assert_non_null(strstr(why, "empty"));
#ifndef DATAOPS_HAVE_BQ
    why[0] = '\0';
    assert_false(wh_url_supported("bigquery://p", why, sizeof(why)));
    assert_non_null(strstr(why, "not supported by this build"));
#endif

    /* sqlite:///abs/path opens /abs/path, creating missing directories. */
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s/sub/dir/wh2.db", f->dir);
    struct wh *w = open_wh(url, &default_names);
    wh_close(w);
    char path[512];
    snprintf(path, sizeof(path), "%s/sub/dir/wh2.db", f->dir);
    assert_int_equal(access(path, F_OK), 0);

    struct err e;
    err_clear(&e);
    w = NULL;
    assert_int_equal(wh_open("sqlite://", &default_names, &w, &e), ERR_CONFIG);
    assert_null(w);
    err_clear(&e);
    assert_int_equal(wh_open("mysql://x", &default_names, &w, &e), ERR_CONFIG);
    assert_null(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_raw_load_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_and_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_raw_before_the_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_transformed_local_column_change_updates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_other_local_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_open_under_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_dead_runs, setup, teardown),
        cmocka_unit_test(test_note_id),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_runs_table_gets_raw_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
