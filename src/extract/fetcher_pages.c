/*
 * fetcher_pages.c - see fetcher_pages.h.
 *
 * The pager keeps a ring of `ahead` slots.  Slot order is window order;
 * the head is the next page the pipeline gets.  pager_next() tops the ring
 * up with the following windows, waits for the head (the engine moves the
 * others meanwhile), parses it, and pops it.  The pipeline's next cursor is
 * the delivered page's last open time plus one interval; it must fall in
 * (start, end] of the window just delivered, which is what "continuing"
 * means here.  Anything else (another pair, another range, a cursor the
 * pager did not expect) abandons the outstanding windows and starts a new
 * range with a probe.
 */
#include "extract/fetcher_pages.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract/kline_parse.h"
#include "util/log.h"
#include "util/timeutil.h"

#define PAGE_BODY_MAX (16u << 20)     /* a 1000-row page is ~170 kB */
#define MAX_AHEAD 128
#define BAR_EVERY_MS 200
#define LINE_EVERY_MS 10000

/* ---- progress ----------------------------------------------------------- */

void progress_init(struct progress *p, const struct config *c)
{
    memset(p, 0, sizeof(*p));
    if (isatty(STDERR_FILENO) && c->log_format != LOG_FORMAT_JSON) {
        p->mode = 1;
    }
    else {
        p->mode = 2;
    }
    p->started_ms = time_monotonic_ms();
    p->last_ms = p->started_ms;
}

void progress_plan(struct progress *p, const struct source_range *r, size_t n)
{
    p->planned = 0;
    p->pairs_total = 0;
    for (size_t i = 0; i < n; i++) {
        p->planned += interval_count(r[i].iv, r[i].from, r[i].to);
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = r[k].iv == r[i].iv && strcmp(r[k].symbol, r[i].symbol) == 0;
        }
        p->pairs_total += !seen;
    }
}

void progress_pair(struct progress *p, const char *symbol, const struct interval *iv)
{
    char name[40];
    snprintf(name, sizeof(name), "%s %s", symbol, iv->name);
    if (strcmp(name, p->pair) != 0) {
        snprintf(p->pair, sizeof(p->pair), "%s", name);
        p->pairs_started++;
    }
}

void progress_add(struct progress *p, long long rows, long long pages, long long covered)
{
    p->rows += rows;
    p->pages += pages;
    p->covered += covered;
}

static void fmt_duration(long long s, char *out, size_t n)
{
    if (s < 0) {
        snprintf(out, n, "?");
    }
    else if (s >= 3600) {
        snprintf(out, n, "%lldh%02lldm", s / 3600, s / 60 % 60);
    }
    else if (s >= 60) {
        snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
    }
    else {
        snprintf(out, n, "%llds", s);
    }
}

/* "pairs 1/10  rows 12345  pages 13  weight 26 (24/4800 this min)  1234 rows/s  ETA 1m02s" */
static void line(const struct progress *p, int64_t now, char *out, size_t n, int *pct)
{
    double secs = (double)(now - p->started_ms) / 1000.0;
    double rate = secs > 0.05 ? (double)p->rows / secs : 0.0;
    double crate = secs > 0.05 ? (double)p->covered / secs : 0.0;
    long long eta = -1;
    *pct = -1;
    if (p->planned > 0) {
        long long left = p->planned - p->covered;
        if (left < 0) {
            left = 0;
        }
        *pct = (int)(100.0 * (double)(p->planned - left) / (double)p->planned);
        if (crate > 0) {
            eta = (long long)((double)left / crate + 0.5);
        }
    }
    char etas[16];
    fmt_duration(eta, etas, sizeof(etas));
    char weight[64] = "";
    if (p->rest && p->rl) {
        snprintf(weight, sizeof(weight), "  weight %ld (%ld/%ld this min)", p->rest->weight_sent,
                 p->rl->used, p->rl->budget);
    }
    char files[32] = "";
    if (p->files) {
        snprintf(files, sizeof(files), "  files %lld", p->files);
    }
    size_t done = p->pairs_started > 0 ? p->pairs_started - 1 : 0;
    snprintf(out, n, "pairs %zu/%zu  rows %lld  pages %lld%s%s  %.0f rows/s  ETA %s", done,
             p->pairs_total ? p->pairs_total : p->pairs_started, p->rows, p->pages, files,
             weight, rate, etas);
}

static void draw(struct progress *p, int final)
{
    int64_t now = time_monotonic_ms();
    char text[256];
    int pct;
    line(p, now, text, sizeof(text), &pct);
    if (p->mode == 1) {
        char bar[23];
        int fill = pct < 0 ? 0 : pct / 5;
        bar[0] = '[';
        for (int i = 0; i < 20; i++) {
            bar[1 + i] = i < fill ? '#' : '.';
        }
        bar[21] = ']';
        bar[22] = '\0';
        /* Back to column 0 afterwards, so that a log line written before
         * the next redraw starts on this line and overwrites the bar. */
        fprintf(stderr, "\r\033[K%s %3d%% %s%s", bar, pct < 0 ? 0 : pct, text,
                final ? "\n" : "\r");
        fflush(stderr);
        p->drawn = !final;
    }
    else {
        log_info("progress", "%s%s", text, final ? " (extract finished)" : "");
    }
}

void progress_tick(void *ctx)
{
    struct progress *p = ctx;
    if (!p || p->mode == 0 || p->pairs_started == 0) {
        return;   /* nothing to show before the first page is asked for */
    }
    int64_t now = time_monotonic_ms();
    if (now - p->last_ms < (p->mode == 1 ? BAR_EVERY_MS : LINE_EVERY_MS)) {
        return;
    }
    p->last_ms = now;
    draw(p, 0);
}

void progress_finish(struct progress *p)
{
    if (!p || p->mode == 0) {
        return;
    }
    /* Only say something when there was something to follow. */
    if (p->pages > 0 || p->files > 0) {
        if (p->pairs_started > 0 && p->pairs_total < p->pairs_started) {
            p->pairs_total = p->pairs_started;
        }
        p->pairs_started = p->pairs_total + 1;   /* every pair done */
        draw(p, 1);
    }
    p->mode = 0;
}

/* ---- pager ------------------------------------------------------------- */

struct slot {
    struct fetch_job job;
    int64_t start;           /* requested startTime */
    int64_t end;             /* window end (exclusive); `to` for a probe */
    int probe;
};

struct pager {
    struct fetcher *f;
    char base_url[512];
    long nslots;
    struct slot *slots;
    long head;               /* index of the next page to deliver */
    long count;              /* outstanding slots from head on */
    int active;
    char symbol[24];
    const struct interval *iv;
    int64_t to;
    int64_t next_start;      /* first window not yet submitted */
    int64_t lo, hi;          /* the next cursor must be in (lo, hi] */
};

int pager_create(struct fetcher *f, const char *base_url, long ahead, struct pager **out,
                 struct err *e)
{
    if (ahead < 1) {
        ahead = 1;
    }
    if (ahead > MAX_AHEAD) {
        ahead = MAX_AHEAD;
    }
    struct pager *p = calloc(1, sizeof(*p));
    if (!p || !(p->slots = calloc((size_t)ahead, sizeof(*p->slots)))) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    p->f = f;
    p->nslots = ahead;
    snprintf(p->base_url, sizeof(p->base_url), "%s", base_url);
    for (long i = 0; i < ahead; i++) {
        http_resp_init(&p->slots[i].job.resp, PAGE_BODY_MAX);
    }
    *out = p;
    return 0;
}

void pager_reset(struct pager *p)
{
    for (long k = 0; k < p->count; k++) {
        fetcher_cancel(p->f, &p->slots[(p->head + k) % p->nslots].job);
    }
    p->head = 0;
    p->count = 0;
    p->active = 0;
}

void pager_destroy(struct pager *p)
{
    if (!p) {
        return;
    }
    pager_reset(p);
    for (long i = 0; i < p->nslots; i++) {
        http_resp_free(&p->slots[i].job.resp);
    }
    free(p->slots);
    free(p);
}

static void submit(struct pager *p, int64_t start, int64_t end, int probe, int at_head)
{
    long idx;
    if (at_head) {
        p->head = (p->head + p->nslots - 1) % p->nslots;
        idx = p->head;
    }
    else {
        idx = (p->head + p->count) % p->nslots;
    }
    p->count++;
    struct slot *s = &p->slots[idx];
    s->start = start;
    s->end = end;
    s->probe = probe;
    /* A probe asks up to `to` and lets the exchange page; a window asks for
     * exactly its 1000 grid slots. */
    int64_t last = (probe ? p->to : (end < p->to ? end : p->to)) - 1;
    snprintf(s->job.url, sizeof(s->job.url),
             "%s/api/v3/klines?symbol=%s&interval=%s&startTime=%" PRId64 "&endTime=%" PRId64
             "&limit=%d", p->base_url, p->symbol, p->iv->name, start, last, SOURCE_PAGE_ROWS);
    s->job.weight = 2;
    fetcher_submit(p->f, &s->job);
}

static void top_up(struct pager *p)
{
    int64_t w = p->iv->ms * SOURCE_PAGE_ROWS;
    /* Until the probe has answered, where the windows start is unknown. */
    while (p->next_start != INT64_MIN && p->count < p->nslots && p->next_start < p->to) {
        int64_t end = p->next_start + w;
        submit(p, p->next_start, end < p->to ? end : p->to, 0, 0);
        p->next_start = end;
    }
}

static void start_range(struct pager *p, const char *symbol, const struct interval *iv,
                        int64_t from, int64_t to)
{
    pager_reset(p);
    p->active = 1;
    snprintf(p->symbol, sizeof(p->symbol), "%s", symbol);
    p->iv = iv;
    p->to = to;
    submit(p, from, to, 1, 0);
    p->next_start = INT64_MIN;
    p->lo = from - 1;
    p->hi = from;
}

/* A page must hold only what was asked for: open times from its startTime
 * up to its endTime.  Anything else is the exchange misbehaving, and is
 * refused rather than silently dropped. */
static int check_page(const struct pager *p, const struct slot *s, const struct kline_batch *out,
                      size_t n0, struct err *e)
{
    int64_t end = s->probe || s->end > p->to ? p->to : s->end;
    for (size_t i = n0; i < out->n; i++) {
        int64_t t = out->rows[i].open_time;
        if (t < s->start) {
            return err_set(e, ERR_INVALID, "%s %s: the page for startTime %" PRId64 " holds "
                           "open_time %" PRId64 ", before it started (the source went back in "
                           "time)", p->symbol, p->iv->name, s->start, t);
        }
        if (t >= end) {
            return err_set(e, ERR_INVALID, "%s %s: the page for startTime %" PRId64 " holds "
                           "open_time %" PRId64 ", past its endTime %" PRId64, p->symbol,
                           p->iv->name, s->start, t, end - 1);
        }
    }
    return 0;
}

/* Drop rows outside [from, to) from out[n0..], in place. */
static void keep_range(struct kline_batch *out, size_t n0, int64_t from, int64_t to)
{
    size_t w = n0;
    for (size_t i = n0; i < out->n; i++) {
        if (out->rows[i].open_time < from || out->rows[i].open_time >= to) {
            continue;
        }
        if (w != i) {
            out->rows[w] = out->rows[i];
        }
        w++;
    }
    out->n = w;
}

int pager_next(struct pager *p, const char *symbol, const struct interval *iv, int64_t from,
               int64_t to, struct kline_batch *out, int *done, long long *covered,
               struct err *e)
{
    *done = 0;
    *covered = 0;
    int cont = p->active && p->iv == iv && p->to == to && strcmp(p->symbol, symbol) == 0 &&
               from > p->lo && from <= p->hi;
    if (!cont) {
        start_range(p, symbol, iv, from, to);
    }
    for (;;) {
        top_up(p);
        if (p->count == 0) {
            p->active = 0;
            *done = SOURCE_DONE;
            return 0;
        }
        struct slot *s = &p->slots[p->head];
        int rc = fetcher_wait(p->f, &s->job, e);
        if (rc != 0) {
            pager_reset(p);
            return rc;
        }
        size_t n0 = out->n;
        rc = kline_parse_page(s->job.resp.body.data ? s->job.resp.body.data : "",
                              s->job.resp.body.len, out, e);
        if (rc == 0 && (rc = check_page(p, s, out, n0, e)) != 0) {
            out->n = n0;
        }
        if (rc != 0) {
            pager_reset(p);
            return rc;
        }
        size_t got = out->n - n0;
        int64_t last = got ? out->rows[out->n - 1].open_time : INT64_MIN;
        keep_range(out, n0, from, to);
        p->head = (p->head + 1) % p->nslots;
        p->count--;
        s->job.state = FJ_IDLE;
        if (s->probe) {
            if (got < SOURCE_PAGE_ROWS) {
                /* The exchange paged through to `to`: nothing after this. */
                *covered += interval_count(iv, s->start, to);
                pager_reset(p);
                *done = SOURCE_DONE;
                return 0;
            }
            /* The windows start where the probe's page ends. */
            int64_t next = interval_next(iv, interval_align_down(iv, last));
            *covered += interval_count(iv, s->start, next);
            p->next_start = next;
            p->lo = s->start;
            p->hi = next;
        }
        else {
            if (got == SOURCE_PAGE_ROWS && last + iv->ms < s->end) {
                /* More rows than grid slots (off-grid rows): ask for the
                 * rest of this window before moving on. */
                submit(p, last + 1, s->end, 0, 1);
                *covered += interval_count(iv, s->start, last + 1);
                p->lo = s->start;
                p->hi = interval_next(iv, interval_align_down(iv, last));
                return 0;
            }
            *covered += interval_count(iv, s->start, s->end);
            p->lo = s->start;
            p->hi = s->end;
            if (p->count == 0 && p->next_start >= p->to) {
                p->active = 0;
                *done = SOURCE_DONE;
                return 0;
            }
            if (got == 0) {
                /* An empty window: the data may have ended (a delisting)
                 * or a long outage runs.  Let a probe find the next row
                 * instead of walking every window to `to`. */
                for (long k = 0; k < p->count; k++) {
                    fetcher_cancel(p->f, &p->slots[(p->head + k) % p->nslots].job);
                }
                p->count = 0;
                submit(p, s->end, p->to, 1, 0);
                p->next_start = INT64_MIN;
            }
        }
        if (out->n > n0) {
            return 0;
        }
        /* An empty window: go on to the next one in the same call. */
        from = p->hi;
    }
}
