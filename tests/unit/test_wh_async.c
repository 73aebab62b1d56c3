/*
 * test_wh_async.c - unit tests for the warehouse writer thread
 * (src/load/wh_async.c), over a recording backend of the seam itself: puts
 * reach the backend in the order they were made and with their own rows
 * (the caller reuses its page at once); every other op waits for the puts
 * before it (commit sees all of them); a failed put is returned by the next
 * put and by commit, the puts after it are dropped, and rollback forgets
 * it; scan_raw waits for the puts unless the backend reads concurrently;
 * optional ops stay absent; close joins the thread with puts still queued.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "load/wh_async.h"

#define MAX_EVENTS 64

/* The recording backend: every call appends an event; put_raw sleeps a
 * little so that the caller really runs ahead of it. */
struct rec {
    struct wh base;
    struct wh_ops ops;
    pthread_mutex_t mu;
    char events[MAX_EVENTS][96];
    int n;
    int fail_put_at;        /* the put (1-based) that fails; 0 = none */
    int puts;
    int closed;
    pthread_t put_thread;
    pthread_t main_thread;
    int puts_off_main;      /* puts that ran on another thread */
};

static struct rec *rec_of(struct wh *w)
{
    return (struct rec *)w;
}

static void note(struct rec *r, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_EVENTS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->events[r->n++], sizeof(r->events[0]), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

static int rec_put_raw(struct wh *w, const char *symbol, const char *interval,
                       const struct kline_batch *b, const char *updated_at, struct err *e)
{
    struct rec *r = rec_of(w);
    usleep(20000);
    r->puts++;
    if (!pthread_equal(pthread_self(), r->main_thread)) {
        r->puts_off_main++;
    }
    if (r->puts == r->fail_put_at) {
        note(r, "put_raw failed");
        return err_set(e, ERR_WAREHOUSE, "disk I/O error (raw upsert)");
    }
    note(r, "put_raw %s %s %lld n=%zu %s", symbol, interval, (long long)b->rows[0].open_time,
         b->n, updated_at);
    return 0;
}

static int rec_put_t(struct wh *w, const char *symbol, const char *interval,
                     const struct tkline_batch *b, struct err *e)
{
    (void)e;
    struct rec *r = rec_of(w);
    r->puts++;
    note(r, "put_t %s %s %lld n=%zu src=%s", symbol, interval,
         (long long)b->rows[0].open_time, b->n, b->rows[0].src ? "set" : "null");
    return 0;
}

static int rec_begin(struct wh *w, struct err *e)
{
    (void)e;
    note(rec_of(w), "begin");
    return 0;
}

static int rec_commit(struct wh *w, const char *uri, struct err *e)
{
    (void)e;
    note(rec_of(w), "commit %s", uri);
    return 0;
}

static void rec_rollback(struct wh *w)
{
    note(rec_of(w), "rollback");
}

static int rec_scan(struct wh *w, const char *symbol, const char *interval, int64_t after,
                    struct kline_batch *out, struct err *e)
{
    (void)symbol;
    (void)interval;
    (void)out;
    (void)e;
    note(rec_of(w), "scan %lld", (long long)after);
    return 0;
}

static void rec_close(struct wh *w)
{
    struct rec *r = rec_of(w);
    r->closed = 1;
}

static void rec_init(struct rec *r, unsigned caps)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->main_thread = pthread_self();
    r->ops = (struct wh_ops){
        .scheme = "rec",
        .caps = WH_CAP_ASYNC_PUTS | caps,
        .begin = rec_begin,
        .put_raw = rec_put_raw,
        .put_transformed = rec_put_t,
        .commit = rec_commit,
        .rollback = rec_rollback,
        .scan_raw = rec_scan,
        .close = rec_close,
    };
    r->base.ops = &r->ops;
}

static struct wh *wrap(struct rec *r)
{
    struct wh *w = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(wh_async_wrap(&r->base, &w, &e), 0);
    return w;
}

static void fill(struct kline_batch *b, int64_t first, size_t n)
{
    b->n = 0;
    for (size_t i = 0; i < n; i++) {
        struct kline *k = kline_batch_push(b);
        assert_non_null(k);
        memset(k, 0, sizeof(*k));
        k->open_time = first + (int64_t)i;
    }
}

static void test_puts_in_order_with_their_own_rows(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 0);
    struct wh *w = wrap(&r);
    struct err e;
    err_clear(&e);
    struct kline_batch page;
    assert_int_equal(kline_batch_init(&page, 100), 0);

    assert_int_equal(w->ops->begin(w, &e), 0);
    for (int i = 0; i < 5; i++) {
        fill(&page, 1000 * (i + 1), (size_t)(10 + i));
        assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &page, "2026-11-28 00:00:00.000",
                                         &e), 0);
        /* The page is the caller's again: the queued copy must not change. */
        fill(&page, -1, 100);
    }
    assert_int_equal(w->ops->commit(w, "file:///x.csv", &e), 0);
    wh_close(w);

    assert_int_equal(r.n, 7);
    assert_string_equal(r.events[0], "begin");
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof(want), "put_raw BTCUSDT 1m %d n=%d 2026-11-28 00:00:00.000",
                 1000 * (i + 1), 10 + i);
        assert_string_equal(r.events[1 + i], want);
    }
    assert_string_equal(r.events[6], "commit file:///x.csv");
    assert_int_equal(r.puts_off_main, 5);
    assert_int_equal(r.closed, 1);
    kline_batch_free(&page);
}

static void test_failed_put_reaches_next_put_and_commit(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 0);
    r.fail_put_at = 2;
    struct wh *w = wrap(&r);
    struct err e;
    err_clear(&e);
    struct kline_batch page;
    assert_int_equal(kline_batch_init(&page, 10), 0);
    fill(&page, 1, 10);

    assert_int_equal(w->ops->begin(w, &e), 0);
    int first_error_at = 0;
    for (int i = 1; i <= 6 && !first_error_at; i++) {
        if (w->ops->put_raw(w, "BTCUSDT", "1m", &page, "u", &e) != 0) {
            first_error_at = i;
        }
    }
    /* Returned by a later put (how much later depends on the queue). */
    assert_true(first_error_at >= 3);
    assert_int_equal(e.code, ERR_WAREHOUSE);
    assert_non_null(strstr(e.msg, "disk I/O error (raw upsert)"));
    err_clear(&e);
    assert_int_equal(w->ops->commit(w, "file:///x.csv", &e), ERR_WAREHOUSE);
    assert_non_null(strstr(e.msg, "disk I/O error"));
    /* Nothing was committed, and nothing after the failed put was loaded. */
    for (int i = 0; i < r.n; i++) {
        assert_null(strstr(r.events[i], "commit"));
    }
    assert_string_equal(r.events[r.n - 1], "put_raw failed");

    /* rollback forgets the failure: the next transaction is clean. */
    w->ops->rollback(w);
    err_clear(&e);
    assert_int_equal(w->ops->begin(w, &e), 0);
    assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &page, "u", &e), 0);
    assert_int_equal(w->ops->commit(w, "file:///y.csv", &e), 0);
    assert_string_equal(r.events[r.n - 1], "commit file:///y.csv");
    assert_string_equal(r.events[r.n - 2], "put_raw BTCUSDT 1m 1 n=10 u");
    wh_close(w);
    kline_batch_free(&page);
}

static int event_index(const struct rec *r, const char *prefix)
{
    for (int i = 0; i < r->n; i++) {
        if (strncmp(r->events[i], prefix, strlen(prefix)) == 0) {
            return i;
        }
    }
    return -1;
}

static void scan_after_put(unsigned caps, int *put_at, int *scan_at)
{
    struct rec r;
    rec_init(&r, caps);
    struct wh *w = wrap(&r);
    struct err e;
    err_clear(&e);
    struct kline_batch page;
    assert_int_equal(kline_batch_init(&page, 10), 0);
    fill(&page, 7, 3);
    assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &page, "u", &e), 0);
    assert_int_equal(w->ops->scan_raw(w, "BTCUSDT", "1m", 42, &page, &e), 0);
    assert_int_equal(w->ops->commit(w, "", &e), 0);
    *put_at = event_index(&r, "put_raw");
    *scan_at = event_index(&r, "scan 42");
    wh_close(w);
    kline_batch_free(&page);
}

static void test_scan_waits_unless_concurrent(void **state)
{
    (void)state;
    int put_at, scan_at;
    scan_after_put(0, &put_at, &scan_at);
    assert_true(put_at >= 0 && scan_at > put_at);
    /* The put sleeps 20 ms on the writer thread: a concurrent scan is first. */
    scan_after_put(WH_CAP_CONCURRENT_SCAN, &put_at, &scan_at);
    assert_true(scan_at >= 0 && put_at > scan_at);
}

static void test_transformed_copy_and_absent_ops(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 0);
    struct wh *w = wrap(&r);
    /* What the backend lacks stays NULL: the pipeline tests for it. */
    assert_null(w->ops->range_put);
    assert_null(w->ops->holes);
    assert_null(w->ops->check);
    assert_non_null(w->ops->put_transformed);
    struct err e;
    err_clear(&e);
    struct tkline_batch t;
    assert_int_equal(tkline_batch_init(&t, 4), 0);
    struct kline k = {0};
    t.n = 2;
    memset(t.rows, 0, 2 * sizeof(*t.rows));
    t.rows[0].open_time = 99;
    t.rows[0].src = &k;
    assert_int_equal(w->ops->put_transformed(w, "ETHUSDT", "1h", &t, &e), 0);
    t.rows[0].open_time = -5;
    assert_int_equal(w->ops->commit(w, "", &e), 0);
    /* src points into the caller's page, which moves on: not handed over. */
    assert_int_equal(event_index(&r, "put_t ETHUSDT 1h 99 n=2 src=null"), 0);
    wh_close(w);
    tkline_batch_free(&t);
}

static void test_close_with_puts_queued(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 0);
    struct wh *w = wrap(&r);
    struct err e;
    err_clear(&e);
    struct kline_batch page;
    assert_int_equal(kline_batch_init(&page, 10), 0);
    fill(&page, 1, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w->ops->put_raw(w, "BTCUSDT", "1m", &page, "u", &e), 0);
    }
    wh_close(w);   /* joins the writer after the queued puts; no leak, no hang */
    assert_int_equal(r.puts, 3);
    assert_int_equal(r.closed, 1);
    kline_batch_free(&page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_puts_in_order_with_their_own_rows),
        cmocka_unit_test(test_failed_put_reaches_next_put_and_commit),
        cmocka_unit_test(test_scan_waits_unless_concurrent),
        cmocka_unit_test(test_transformed_copy_and_absent_ops),
        cmocka_unit_test(test_close_with_puts_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
