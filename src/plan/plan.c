/*
 * plan.c - see plan.h.
 *
 * The estimate model (printed by `dataops plan`, documented in
 * docs/backfill.md) uses no network at all:
 *   - API: one request (weight 2) per 1000 candles of each stretch the API
 *     serves; time = the larger of weight / budget-per-minute and
 *     requests x 0.25 s / requests in flight (a page from a cloud region);
 *     ~170 bytes per candle (a 1000-row page is ~170 kB of JSON);
 *   - archive: two requests per file (.CHECKSUM and zip), no weight,
 *     ~56 bytes per candle (a month of 1m candles is a 2.5 MB zip), read at
 *     10 MB/s;
 *   - "now" is the exchange's clock (/api/v3/time, weight 1: the only
 *     request plan sends), or this machine's clock with --source archive
 *     or when the exchange cannot be reached.
 */
#include "plan/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/archive.h"
#include "extract/source.h"
#include "util/log.h"
#include "util/timeutil.h"

#define DEFAULT_BUDGET 4800           /* 80% of 6000, as the REST source */
#define RTT_S 0.25
#define ARCHIVE_BYTES_PER_S 10e6
#define REST_BYTES_PER_CANDLE 170
#define ZIP_BYTES_PER_CANDLE 56

static int push(struct plan_pair *p, int64_t from, int64_t to, int64_t prev, int tail)
{
    if (from >= to) {
        return 0;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        struct plan_range *r = realloc(p->r, cap * sizeof(*r));
        if (!r) {
            return ERR_NOMEM;
        }
        p->r = r;
        p->cap = cap;
    }
    p->r[p->n].from = from;
    p->r[p->n].to = to;
    p->r[p->n].prev_open = prev;
    p->r[p->n].tail = tail;
    p->n++;
    return 0;
}

struct hole_ctx {
    struct plan_pair *p;
    int64_t start;
};

static int on_hole(void *ctx, int64_t a, int64_t b)
{
    struct hole_ctx *h = ctx;
    /* A hole that starts after the range start has a row right before it. */
    int64_t prev = a > h->start ? interval_align_down(h->p->iv, a - 1) : INT64_MIN;
    return push(h->p, a, b, prev, 0);
}

struct known {
    int64_t *v;      /* pairs from, to */
    size_t n;
    size_t cap;
};

static int on_known(void *ctx, int64_t a, int64_t b)
{
    struct known *k = ctx;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        int64_t *v = realloc(k->v, cap * 2 * sizeof(*v));
        if (!v) {
            return ERR_NOMEM;
        }
        k->v = v;
        k->cap = cap;
    }
    k->v[2 * k->n] = a;
    k->v[2 * k->n + 1] = b;
    k->n++;
    return 0;
}

/* Remove [ka, kb) from every range; what follows a cut has no known row
 * before it. */
static int subtract(struct plan_pair *p, int64_t ka, int64_t kb)
{
    struct plan_pair out = *p;
    out.r = NULL;
    out.n = out.cap = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_range *r = &p->r[i];
        if (kb <= r->from || ka >= r->to) {
            if (push(&out, r->from, r->to, r->prev_open, r->tail) != 0) {
                free(out.r);
                return ERR_NOMEM;
            }
            continue;
        }
        int64_t a = ka > r->from ? ka : r->from;
        int64_t b = kb < r->to ? kb : r->to;
        p->known_candles += interval_count(p->iv, a, b);
        if (push(&out, r->from, a, r->prev_open, 0) != 0 ||
            push(&out, b, r->to, INT64_MIN, r->tail) != 0) {
            free(out.r);
            return ERR_NOMEM;
        }
    }
    free(p->r);
    p->r = out.r;
    p->n = out.n;
    p->cap = out.cap;
    return 0;
}

int plan_pair_compute(struct wh *w, const struct config *c, const char *symbol,
                      const struct interval *iv, int64_t now, struct plan_pair *out,
                      struct err *e)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->symbol, sizeof(out->symbol), "%s", symbol);
    out->iv = iv;
    int64_t start = interval_align_up(iv, c->start_ms);
    int64_t end = now;
    if (c->end_ms && c->end_ms < end) {
        end = c->end_ms;
    }
    if (w->ops->watermark(w, WH_RAW, symbol, iv->name, &out->watermark, &out->found, e) != 0) {
        return e->code;
    }
    out->holes_supported = w->ops->holes != NULL;
    int rc = 0;
    if (out->found && w->ops->holes && start <= out->watermark) {
        int64_t upto = interval_next(iv, out->watermark);
        struct hole_ctx h = {out, start};
        rc = w->ops->holes(w, symbol, iv, start, upto < end ? upto : end, on_hole, &h, e);
        if (rc != 0) {
            if (rc == ERR_NOMEM) {
                err_set(e, ERR_NOMEM, "out of memory");
            }
            return rc;
        }
    }
    /* As ever, a pair with rows continues after its watermark, wherever
     * the configured start is; the start only bounds the holes. */
    int64_t from = out->found ? interval_next(iv, out->watermark) : start;
    int64_t prev = out->found ? out->watermark : INT64_MIN;
    if ((rc = push(out, from, end, prev, 1)) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (w->ops->ranges) {
        struct known k = {0};
        static const enum wh_range_kind kinds[] = {WH_RANGE_KNOWN_GAP, WH_RANGE_REJECTED};
        for (size_t i = 0; i < 2 && rc == 0; i++) {
            rc = w->ops->ranges(w, kinds[i], symbol, iv->name, on_known, &k, e);
        }
        for (size_t i = 0; i < k.n && rc == 0; i++) {
            rc = subtract(out, k.v[2 * i], k.v[2 * i + 1]);
        }
        free(k.v);
        if (rc == ERR_NOMEM) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void plan_pair_free(struct plan_pair *p)
{
    free(p->r);
    p->r = NULL;
    p->n = p->cap = 0;
}

int plan_all_pairs(struct wh *w, const struct config *c, int64_t now, struct plan_pair **out,
                   struct err *e)
{
    size_t npairs = c->nsymbols * c->nintervals;
    *out = calloc(npairs ? npairs : 1, sizeof(**out));
    if (!*out) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < npairs; i++) {
        int rc = plan_pair_compute(w, c, c->symbols[i / c->nintervals],
                                   c->intervals[i % c->nintervals], now, &(*out)[i], e);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void plan_pairs_free(struct plan_pair *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        plan_pair_free(&p[i]);
    }
    free(p);
}

void plan_hint_source(struct source *s, const struct plan_pair *p, size_t n)
{
    size_t nranges = 0;
    for (size_t i = 0; i < n; i++) {
        nranges += p[i].n;
    }
    struct source_range *r = NULL;
    if (!s->ops->plan_range || !nranges || !(r = calloc(nranges, sizeof(*r)))) {
        return;   /* only a hint: without it the progress has no ETA */
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p[i].n; j++, k++) {
            r[k].symbol = p[i].symbol;
            r[k].iv = p[i].iv;
            r[k].from = p[i].r[j].from;
            r[k].to = p[i].r[j].to;
        }
    }
    s->ops->plan_range(s, r, nranges);
    free(r);
}

void plan_estimate(const struct config *c, int64_t now, struct plan_pair *p)
{
    struct plan_cost *k = &p->cost;
    memset(k, 0, sizeof(*k));
    enum archive_use use = archive_use_of(c);
    int64_t last_file = INT64_MIN;
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_range *r = &p->r[i];
        k->candles += interval_count(p->iv, r->from, r->to);
        int64_t cur = r->from;
        while (cur < r->to) {
            struct archive_choice ch;
            archive_choose(use, p->iv, cur, r->to, now, c->archive_min_candles, INT64_MIN,
                           INT64_MIN, &ch);
            int64_t stop = ch.to < r->to ? ch.to : r->to;
            long long n = interval_count(p->iv, cur, stop);
            if (ch.kind == ARCH_MONTHLY || ch.kind == ARCH_DAILY) {
                if (ch.from != last_file) {
                    last_file = ch.from;
                    if (ch.kind == ARCH_MONTHLY) {
                        k->files_monthly++;
                    }
                    else {
                        k->files_daily++;
                    }
                    k->bytes += interval_count(p->iv, ch.from, ch.to) * ZIP_BYTES_PER_CANDLE;
                }
                k->candles_archive += n;
            }
            else if (ch.kind == ARCH_NONE) {
                k->candles_waiting += interval_count(p->iv, cur, r->to);
                break;
            }
            else {
                long req = (long)((n + 999) / 1000);
                k->requests += req ? req : 1;
                k->candles_rest += n;
                k->bytes += n * REST_BYTES_PER_CANDLE;
            }
            cur = stop;
        }
    }
    k->weight = 2 * k->requests;
    long budget = c->weight_budget > 0 ? c->weight_budget : DEFAULT_BUDGET;
    long fly = c->max_in_flight > 0 ? c->max_in_flight : 1;
    double by_weight = (double)k->weight / (double)budget * 60.0;
    double by_latency = (double)k->requests * RTT_S / (double)fly;
    long files = k->files_monthly + k->files_daily;
    double archive = files ? (double)(k->bytes - k->candles_rest * REST_BYTES_PER_CANDLE) /
                                 ARCHIVE_BYTES_PER_S + (double)files * 2 * RTT_S
                           : 0.0;
    k->seconds = (by_weight > by_latency ? by_weight : by_latency) + archive;
}

static void fmt_bytes(long long b, char *out, size_t n)
{
    if (b >= 10LL << 20) {
        snprintf(out, n, "%lld MB", b >> 20);
    }
    else if (b >= 10LL << 10) {
        snprintf(out, n, "%lld kB", b >> 10);
    }
    else {
        snprintf(out, n, "%lld B", b);
    }
}

static void fmt_eta(double s, char *out, size_t n)
{
    long long t = (long long)(s + 0.5);
    if (s < 10) {
        snprintf(out, n, "%.1fs", s);
    }
    else if (t < 3600) {
        snprintf(out, n, "%lldm%02llds", t / 60, t % 60);
    }
    else {
        snprintf(out, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
    }
}

/* "rest", "monthly 12 + daily 3 + rest", "archive: waiting" ... */
static void fmt_sources(const struct plan_cost *k, char *out, size_t n)
{
    out[0] = '\0';
    size_t o = 0;
    if (k->files_monthly) {
        o += (size_t)snprintf(out + o, n - o, "monthly:%ld", k->files_monthly);
    }
    if (k->files_daily && o < n) {
        o += (size_t)snprintf(out + o, n - o, "%sdaily:%ld", o ? "+" : "", k->files_daily);
    }
    if (k->candles_rest && o < n) {
        o += (size_t)snprintf(out + o, n - o, "%srest", o ? "+" : "");
    }
    if (k->candles_waiting && o < n) {
        o += (size_t)snprintf(out + o, n - o, "%snot-published", o ? "+" : "");
    }
    if (o == 0) {
        snprintf(out, n, "-");
    }
}

static void print_row(const char *symbol, const char *iv, const char *kind, int64_t from,
                      int64_t to, const struct plan_cost *k)
{
    char a[32], b[32], bytes[24], eta[24], src[64];
    time_format_iso(from, a);
    time_format_iso(to, b);
    fmt_bytes(k->bytes, bytes, sizeof(bytes));
    fmt_eta(k->seconds, eta, sizeof(eta));
    fmt_sources(k, src, sizeof(src));
    printf("%-12s %-4s %-5s %-24s %-24s %10lld %-34s %8ld %8ld %9s %9s\n", symbol, iv, kind,
           a, b, k->candles, src, k->requests, k->weight, bytes, eta);
}

int plan_command(const struct config *c)
{
    struct err e;
    err_clear(&e);
    struct wh *w = NULL;
    struct wh_names names = {
        c->text[S_RAW_DATASET], c->text[S_RAW_TABLE], c->text[S_TRANSFORMED_DATASET],
        c->text[S_TRANSFORMED_TABLE], c->text[S_LOCAL_TIME_COLUMN], c,
    };
    /* The exchange's clock decides what a run would fetch. */
    int64_t now = time_now_ms();
    const char *clock = "this machine's clock";
    struct source *src = NULL;
    if (archive_use_of(c) != ARCHIVE_ONLY && source_open(c, &src, &e) == 0 &&
        src->ops->server_time(src, &now, &e) == 0) {
        clock = "the exchange's clock";
    }
    else if (archive_use_of(c) != ARCHIVE_ONLY) {
        log_warn("plan", "cannot ask the exchange's clock (%s); using this machine's", e.msg);
        now = time_now_ms();
    }
    source_close(src);
    err_clear(&e);
    int rc = wh_open(c->text[S_WAREHOUSE], &names, &w, &e);
    if (rc == 0) {
        rc = w->ops->ensure_schema(w, &e);
    }
    if (rc != 0) {
        fprintf(stderr, "dataops: plan: %s\n", e.msg);
        wh_close(w);
        return err_exit_code(rc);
    }
    char nows[32];
    time_format_iso(now, nows);
    enum archive_use use = archive_use_of(c);
    printf("dataops plan: %zu pair(s); now %s (%s); source %s%s\n",
           c->nsymbols * c->nintervals, nows, clock, c->text[S_SOURCE],
           use == ARCHIVE_AUTO ? " (archive files and the API)"
           : use == ARCHIVE_ONLY ? " (archive files only)" : " (the API only)");
    printf("%-12s %-4s %-5s %-24s %-24s %10s %-34s %8s %8s %9s %9s\n", "symbol", "iv", "kind",
           "from", "to", "candles", "source", "requests", "weight", "bytes", "eta");
    struct plan_cost total;
    memset(&total, 0, sizeof(total));
    long long known = 0;
    int no_holes = 0;
    for (size_t si = 0; si < c->nsymbols && rc == 0; si++) {
        for (size_t ii = 0; ii < c->nintervals && rc == 0; ii++) {
            struct plan_pair p;
            rc = plan_pair_compute(w, c, c->symbols[si], c->intervals[ii], now, &p, &e);
            if (rc != 0) {
                plan_pair_free(&p);
                break;
            }
            no_holes |= !p.holes_supported;
            known += p.known_candles;
            if (p.n == 0) {
                printf("%-12s %-4s %-5s nothing missing\n", p.symbol, p.iv->name, "-");
            }
            for (size_t i = 0; i < p.n; i++) {
                struct plan_pair one = p;
                one.r = &p.r[i];
                one.n = 1;
                plan_estimate(c, now, &one);
                print_row(p.symbol, p.iv->name, p.r[i].tail ? "tail" : "hole", p.r[i].from,
                          p.r[i].to, &one.cost);
            }
            plan_estimate(c, now, &p);
            total.candles += p.cost.candles;
            total.candles_archive += p.cost.candles_archive;
            total.candles_rest += p.cost.candles_rest;
            total.candles_waiting += p.cost.candles_waiting;
            total.requests += p.cost.requests;
            total.weight += p.cost.weight;
            total.files_monthly += p.cost.files_monthly;
            total.files_daily += p.cost.files_daily;
            total.bytes += p.cost.bytes;
            total.seconds += p.cost.seconds;
            plan_pair_free(&p);
        }
    }
    wh_close(w);
    if (rc != 0) {
        fprintf(stderr, "dataops: plan: %s\n", e.msg);
        return err_exit_code(rc);
    }
    char bytes[24], eta[24];
    fmt_bytes(total.bytes, bytes, sizeof(bytes));
    fmt_eta(total.seconds, eta, sizeof(eta));
    printf("total: %lld candles (%lld from archive files, %lld from the API", total.candles,
           total.candles_archive, total.candles_rest);
    if (total.candles_waiting) {
        printf(", %lld not published yet", total.candles_waiting);
    }
    printf("); %ld requests, weight %ld; %ld monthly + %ld daily files; %s; ETA %s\n",
           total.requests, total.weight, total.files_monthly, total.files_daily, bytes, eta);
    if (known) {
        printf("left out: %lld candles the warehouse knows are missing at the exchange or "
               "rejected (table dataops_ranges)\n", known);
    }
    if (no_holes) {
        printf("note: this warehouse cannot list its holes; only the ranges after the "
               "watermarks are shown\n");
    }
    fflush(stdout);
    return 0;
}
