/*
 * wh_async.c - a warehouse whose batch loads run on a writer thread, so that
 * the pipeline parses, validates, transforms and writes the lake for the
 * next page while the previous one is being inserted (the machine's second
 * core; see bench/README.md for what it buys).
 *
 * It wraps a backend that sets WH_CAP_ASYNC_PUTS and keeps the seam's
 * contract unchanged:
 *   - put_raw/put_transformed copy the batch into one of two slots and
 *     return; the writer thread loads the slots in the order they were put;
 *   - every other op first waits until the queue is empty ("drains"), then
 *     runs on the caller's thread, so the backend's connection is only ever
 *     used by one thread at a time and commit() covers every row put before
 *     it (a batch is still all or nothing);
 *   - the first failed put is remembered and returned by the next put or by
 *     the drain of the next op (normally commit(), which the pipeline then
 *     follows with rollback(), which forgets it); the puts after a failure
 *     are dropped, since the transaction is going to be rolled back;
 *   - scan_raw runs without draining when the backend sets
 *     WH_CAP_CONCURRENT_SCAN (it reads committed rows through a connection
 *     of its own).
 * The thread is started by the first put, so commands that never load
 * (plan, check) never start it.
 */
#include "load/wh_async.h"

#define _GNU_SOURCE 1   /* pthread_setname_np */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 2

struct slot {
    enum wh_table table;
    char symbol[64];
    char interval[16];
    char updated_at[32];
    struct kline_batch kb;
    struct tkline_batch tb;
};

struct wh_async {
    struct wh base;
    struct wh_ops ops;          /* the inner backend's, wrapped entries replaced */
    struct wh *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int stop;
    struct slot slot[SLOTS];
    int head;                   /* the slot the writer loads next */
    int queued;                 /* slots put and not loaded yet */
    int failed;                 /* a put failed: err holds why, until rollback */
    struct err err;
};

static struct wh_async *of(struct wh *w)
{
    return (struct wh_async *)w;
}

static int load_slot(struct wh_async *a, struct slot *s, struct err *e)
{
    const struct wh_ops *ops = a->inner->ops;
    if (s->table == WH_RAW) {
        return ops->put_raw(a->inner, s->symbol, s->interval, &s->kb, s->updated_at, e);
    }
    return ops->put_transformed(a->inner, s->symbol, s->interval, &s->tb, e);
}

static void *writer_main(void *arg)
{
    struct wh_async *a = arg;
    pthread_setname_np(pthread_self(), "dataops-loader");   /* for top -H and perf */
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->queued == 0 && !a->stop) {
            pthread_cond_wait(&a->cv, &a->mu);
        }
        if (a->queued == 0) {
            break;
        }
        struct slot *s = &a->slot[a->head];
        int skip = a->failed;
        pthread_mutex_unlock(&a->mu);

        struct err e = {0};
        int rc = skip ? 0 : load_slot(a, s, &e);

        pthread_mutex_lock(&a->mu);
        if (rc != 0 && !a->failed) {
            a->failed = 1;
            a->err = e;
        }
        a->head = (a->head + 1) % SLOTS;
        a->queued--;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static int start_writer(struct wh_async *a, struct err *e)
{
    /* Signals (SIGTERM's flag, SIGINT) stay with the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, writer_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return err_set(e, ERR_WAREHOUSE, "cannot start the warehouse writer thread: %s",
                       strerror(rc));
    }
    a->started = 1;
    return 0;
}

/* Wait until every put is loaded; the first failure, if any. */
static int drain(struct wh_async *a, struct err *e)
{
    pthread_mutex_lock(&a->mu);
    while (a->queued > 0) {
        pthread_cond_wait(&a->cv, &a->mu);
    }
    int rc = 0;
    if (a->failed) {
        *e = a->err;
        rc = e->code ? e->code : ERR_WAREHOUSE;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* A free slot for the next put (the caller fills it, then enqueue()). */
static int reserve(struct wh_async *a, struct slot **out, struct err *e)
{
    if (!a->started && start_writer(a, e) != 0) {
        return e->code;
    }
    pthread_mutex_lock(&a->mu);
    while (a->queued == SLOTS && !a->failed) {
        pthread_cond_wait(&a->cv, &a->mu);
    }
    int rc = 0;
    if (a->failed) {
        *e = a->err;
        rc = e->code ? e->code : ERR_WAREHOUSE;
    }
    else {
        *out = &a->slot[(a->head + a->queued) % SLOTS];
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void enqueue(struct wh_async *a)
{
    pthread_mutex_lock(&a->mu);
    a->queued++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static int copy_names(struct slot *s, enum wh_table t, const char *symbol,
                      const char *interval, const char *updated_at, struct err *e)
{
    s->table = t;
    if ((size_t)snprintf(s->symbol, sizeof(s->symbol), "%s", symbol) >= sizeof(s->symbol) ||
        (size_t)snprintf(s->interval, sizeof(s->interval), "%s", interval) >=
            sizeof(s->interval) ||
        (size_t)snprintf(s->updated_at, sizeof(s->updated_at), "%s",
                         updated_at ? updated_at : "") >= sizeof(s->updated_at)) {
        return err_set(e, ERR_INVALID, "symbol '%.80s' or interval '%.20s' is too long for "
                       "the warehouse writer", symbol, interval);
    }
    return 0;
}

static int as_put_raw(struct wh *w, const char *symbol, const char *interval,
                      const struct kline_batch *b, const char *updated_at, struct err *e)
{
    struct wh_async *a = of(w);
    struct slot *s = NULL;
    if (reserve(a, &s, e) != 0 || copy_names(s, WH_RAW, symbol, interval, updated_at, e)) {
        return e->code;
    }
    if (s->kb.cap < b->n) {
        kline_batch_free(&s->kb);
        if (kline_batch_init(&s->kb, b->cap) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
    }
    memcpy(s->kb.rows, b->rows, b->n * sizeof(*b->rows));
    s->kb.n = b->n;
    enqueue(a);
    return 0;
}

static int as_put_transformed(struct wh *w, const char *symbol, const char *interval,
                              const struct tkline_batch *b, struct err *e)
{
    struct wh_async *a = of(w);
    struct slot *s = NULL;
    if (reserve(a, &s, e) != 0 || copy_names(s, WH_TRANSFORMED, symbol, interval, NULL, e)) {
        return e->code;
    }
    if (s->tb.cap < b->n) {
        tkline_batch_free(&s->tb);
        if (tkline_batch_init(&s->tb, b->cap) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
    }
    memcpy(s->tb.rows, b->rows, b->n * sizeof(*b->rows));
    for (size_t i = 0; i < b->n; i++) {
        s->tb.rows[i].src = NULL;   /* points into the caller's page, which moves on */
    }
    s->tb.n = b->n;
    enqueue(a);
    return 0;
}

/* The other ops: drain, then the backend's own, on this thread. */

static int as_lock(struct wh *w, long timeout_s, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->lock(a->inner, timeout_s, e);
}

static int as_ensure_schema(struct wh *w, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->ensure_schema(a->inner, e);
}

static int as_watermark(struct wh *w, enum wh_table t, const char *symbol,
                        const char *interval, int64_t *open_time, int *found, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->watermark(a->inner, t, symbol, interval, open_time,
                                                  found, e);
}

static int as_begin(struct wh *w, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->begin(a->inner, e);
}

static int as_put_quarantine(struct wh *w, const char *run_id, const char *stage,
                             const char *symbol, const char *interval, int64_t open_time,
                             const char *reason, const char *row_json, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->put_quarantine(a->inner, run_id, stage, symbol,
                                                       interval, open_time, reason, row_json,
                                                       e);
}

static int as_commit(struct wh *w, const char *lake_uri, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->commit(a->inner, lake_uri, e);
}

static void as_rollback(struct wh *w)
{
    struct wh_async *a = of(w);
    struct err ignored = {0};
    drain(a, &ignored);
    pthread_mutex_lock(&a->mu);
    a->failed = 0;
    pthread_mutex_unlock(&a->mu);
    a->inner->ops->rollback(a->inner);
}

static int as_scan_raw(struct wh *w, const char *symbol, const char *interval, int64_t after,
                       struct kline_batch *out, struct err *e)
{
    struct wh_async *a = of(w);
    if (!(a->inner->ops->caps & WH_CAP_CONCURRENT_SCAN) && drain(a, e) != 0) {
        return e->code;
    }
    return a->inner->ops->scan_raw(a->inner, symbol, interval, after, out, e);
}

static int as_record_run(struct wh *w, const struct run *r, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->record_run(a->inner, r, e);
}

static int as_abandon_dead_runs(struct wh *w, const char *run_id, int *n, char *ids,
                                size_t idsz, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->abandon_dead_runs(a->inner, run_id, n, ids, idsz, e);
}

static int as_check(struct wh *w, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code : a->inner->ops->check(a->inner, e);
}

static int as_holes(struct wh *w, const char *symbol, const struct interval *iv, int64_t from,
                    int64_t to, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->holes(a->inner, symbol, iv, from, to, cb, ctx, e);
}

static int as_ranges(struct wh *w, enum wh_range_kind kind, const char *symbol,
                     const char *interval, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->ranges(a->inner, kind, symbol, interval, cb, ctx, e);
}

static int as_range_put(struct wh *w, enum wh_range_kind kind, const char *symbol,
                        const char *interval, int64_t from, int64_t to, const char *run_id,
                        struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->range_put(a->inner, kind, symbol, interval, from, to,
                                                  run_id, e);
}

static int as_range_delete(struct wh *w, enum wh_range_kind kind, const char *symbol,
                           const char *interval, int64_t from, int64_t to, struct err *e)
{
    struct wh_async *a = of(w);
    return drain(a, e) ? e->code
                       : a->inner->ops->range_delete(a->inner, kind, symbol, interval, from,
                                                     to, e);
}

static void as_close(struct wh *w)
{
    struct wh_async *a = of(w);
    if (!a) {
        return;
    }
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    a->inner->ops->close(a->inner);
    for (int i = 0; i < SLOTS; i++) {
        kline_batch_free(&a->slot[i].kb);
        tkline_batch_free(&a->slot[i].tb);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Replace an op only where the backend has one: NULL keeps meaning "absent". */
#define WRAP(field, fn) (a->ops.field = inner->ops->field ? (fn) : NULL)

int wh_async_wrap(struct wh *inner, struct wh **out, struct err *e)
{
    struct wh_async *a = calloc(1, sizeof(*a));
    if (!a) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (pthread_mutex_init(&a->mu, NULL) != 0 || pthread_cond_init(&a->cv, NULL) != 0) {
        free(a);
        return err_set(e, ERR_NOMEM, "cannot initialise the warehouse writer's lock");
    }
    a->inner = inner;
    a->ops = *inner->ops;
    WRAP(lock, as_lock);
    WRAP(ensure_schema, as_ensure_schema);
    WRAP(watermark, as_watermark);
    WRAP(begin, as_begin);
    WRAP(put_raw, as_put_raw);
    WRAP(put_transformed, as_put_transformed);
    WRAP(put_quarantine, as_put_quarantine);
    WRAP(commit, as_commit);
    WRAP(rollback, as_rollback);
    WRAP(scan_raw, as_scan_raw);
    WRAP(record_run, as_record_run);
    WRAP(abandon_dead_runs, as_abandon_dead_runs);
    WRAP(check, as_check);
    WRAP(holes, as_holes);
    WRAP(ranges, as_ranges);
    WRAP(range_put, as_range_put);
    WRAP(range_delete, as_range_delete);
    a->ops.close = as_close;
    a->base.ops = &a->ops;
    *out = &a->base;
    return 0;
}
