/*
 * source_binance.c - klines from the Binance spot REST API.
 *
 * Requests go through the HTTP engine (fetcher.c), the one place that
 * retries: backoff with jitter for transport failures, 5xx and transient
 * codes; a 429's Retry-After pauses every request; a 418 stops every
 * request for the rest of the run; other 4xx report the exchange's code and
 * msg.  Weights (klines 2, time 1, exchangeInfo 20) are taken from the
 * weight budget before each request and the used-weight header is fed back
 * after it; all pairs of the run share that one budget.
 *
 * Pages of fixed-length intervals are fetched several at a time and handed
 * over in order by the pager (fetcher_pages.c); 1M is paged sequentially.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/fetcher.h"
#include "extract/fetcher_pages.h"
#include "extract/kline_parse.h"
#include "extract/ratelimit.h"
#include "extract/source.h"
#include "util/log.h"
#include "util/timeutil.h"

#define MAX_BODY (16u << 20)          /* a 1000-row page is ~170 kB */
#define DEFAULT_WEIGHT_LIMIT 6000

struct binance {
    struct source base;
    struct fetcher *f;
    struct pager *pager;
    struct fetch_job job;             /* the sequential requests */
    struct ratelimit rl;
    struct progress own_progress;
    struct progress *pg;              /* own_progress, or the composing source's */
    char base_url[512];
    long budget_setting;
    long max_in_flight;
    int budget_known;
};

/* GET path (with query) costing weight; on success the body is in
 * b->job.resp. */
static int request(struct binance *b, const char *path, long weight, struct err *e)
{
    snprintf(b->job.url, sizeof(b->job.url), "%s%s", b->base_url, path);
    b->job.weight = weight;
    fetcher_submit(b->f, &b->job);
    int rc = fetcher_wait(b->f, &b->job, e);
    b->job.state = FJ_IDLE;
    return rc;
}

static int parse_json_body(struct binance *b, cJSON **out, struct err *e, const char *what)
{
    const struct buf *body = &b->job.resp.body;
    *out = cJSON_ParseWithLength(body->data ? body->data : "", body->len);
    if (!*out) {
        return err_set(e, ERR_INVALID, "%s: the response is not valid JSON", what);
    }
    return 0;
}

static int bn_server_time(struct source *s, int64_t *now, struct err *e)
{
    struct binance *b = (struct binance *)s;
    if (request(b, "/api/v3/time", 1, e) != 0) {
        return err_wrap(e, "asking the exchange clock");
    }
    cJSON *j;
    if (parse_json_body(b, &j, e, "/api/v3/time") != 0) {
        return e->code;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "serverTime");
    int ok = cJSON_IsNumber(t) && t->valuedouble > 0 && t->valuedouble < 1e15;
    if (ok) {
        *now = (int64_t)t->valuedouble;
    }
    cJSON_Delete(j);
    if (!ok) {
        return err_set(e, ERR_INVALID, "/api/v3/time: no valid serverTime in the response");
    }
    return 0;
}

/* Take the REQUEST_WEIGHT limit from exchangeInfo, unless set by the user. */
static void learn_budget(struct binance *b, const cJSON *info)
{
    if (b->budget_setting > 0 || b->budget_known) {
        return;
    }
    long limit = DEFAULT_WEIGHT_LIMIT;
    const cJSON *rl;
    cJSON_ArrayForEach(rl, cJSON_GetObjectItemCaseSensitive(info, "rateLimits"))
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(rl, "rateLimitType");
        const cJSON *iv = cJSON_GetObjectItemCaseSensitive(rl, "interval");
        const cJSON *num = cJSON_GetObjectItemCaseSensitive(rl, "intervalNum");
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(rl, "limit");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "REQUEST_WEIGHT") == 0 &&
            cJSON_IsString(iv) && strcmp(iv->valuestring, "MINUTE") == 0 &&
            cJSON_IsNumber(num) && num->valueint == 1 && cJSON_IsNumber(lim) &&
            lim->valuedouble >= 10) {
            limit = (long)lim->valuedouble;
        }
    }
    b->rl.budget = limit * 8 / 10;
    b->budget_known = 1;
    log_info("extract", "request weight budget %ld/min (80%% of the exchange's %ld)",
             b->rl.budget, limit);
}

static int bn_check_symbols(struct source *s, char *const *symbols, size_t n, struct err *e)
{
    struct binance *b = (struct binance *)s;
    for (size_t i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v3/exchangeInfo?symbol=%s", symbols[i]);
        int rc = request(b, path, 20, e);
        if (rc == ERR_API) {
            e->code = ERR_CONFIG;
            return err_wrap(e, "symbol %s", symbols[i]);
        }
        if (rc != 0) {
            return err_wrap(e, "checking symbol %s", symbols[i]);
        }
        cJSON *j;
        if (parse_json_body(b, &j, e, "/api/v3/exchangeInfo") != 0) {
            return e->code;
        }
        learn_budget(b, j);
        const cJSON *sym = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "symbols"), 0);
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(sym, "status");
        if (cJSON_IsString(status) && strcmp(status->valuestring, "TRADING") != 0) {
            log_warn("extract", "symbol %s has status %s: it may have no new candles",
                     symbols[i], status->valuestring);
        }
        cJSON_Delete(j);
    }
    return 0;
}

/* 1M: one request at a time, following the exchange's own paging. */
static int fetch_sequential(struct binance *b, const char *symbol, const struct interval *iv,
                            int64_t from, int64_t to, struct kline_batch *out, int *done,
                            struct err *e)
{
    char path[256];
    snprintf(path, sizeof(path),
             "/api/v3/klines?symbol=%s&interval=%s&startTime=%lld&endTime=%lld&limit=%d", symbol,
             iv->name, (long long)from, (long long)(to - 1), SOURCE_PAGE_ROWS);
    int rc = request(b, path, 2, e);
    if (rc != 0) {
        return rc;
    }
    size_t before = out->n;
    const struct buf *body = &b->job.resp.body;
    rc = kline_parse_page(body->data ? body->data : "", body->len, out, e);
    if (rc != 0) {
        return rc;
    }
    size_t got = out->n - before;
    *done = got < SOURCE_PAGE_ROWS ? SOURCE_DONE : 0;
    int64_t upto = *done ? to : interval_next(iv, out->rows[out->n - 1].open_time);
    progress_add(b->pg, (long long)got, 1, interval_count(iv, from, upto));
    return 0;
}

static int bn_fetch(struct source *s, const char *symbol, const struct interval *iv,
                    int64_t from, int64_t to, struct kline_batch *out, int *done,
                    struct err *e)
{
    struct binance *b = (struct binance *)s;
    progress_pair(b->pg, symbol, iv);
    if (iv->ms == 0) {
        return fetch_sequential(b, symbol, iv, from, to, out, done, e);
    }
    size_t before = out->n;
    long long covered = 0;
    int rc = pager_next(b->pager, symbol, iv, from, to, out, done, &covered, e);
    if (rc == 0) {
        progress_add(b->pg, (long long)(out->n - before), 1, covered);
    }
    return rc;
}

static void bn_plan_range(struct source *s, const struct source_range *r, size_t n)
{
    struct binance *b = (struct binance *)s;
    progress_plan(b->pg, r, n);
}

static void bn_stats(struct source *s, char *out, size_t n)
{
    struct binance *b = (struct binance *)s;
    const struct fetcher_stats *st = fetcher_stats(b->f);
    /* Asked for its figures, the extract is over: end the progress line
     * before the run's summary is printed. */
    if (b->pg == &b->own_progress) {
        progress_finish(b->pg);
    }
    snprintf(out, n, "\"source\":\"rest\",\"requests\":%ld,\"retries\":%ld,\"http_429\":%ld,"
             "\"http_5xx\":%ld,\"network_errors\":%ld,\"weight_budget\":%ld,"
             "\"max_used_weight\":%ld,\"budget_waits\":%ld,\"weight_sent\":%ld,"
             "\"max_in_flight\":%ld,\"peak_in_flight\":%ld,\"bytes\":%lld", st->requests,
             st->retried, st->got_429, st->got_5xx, st->net_errors, b->rl.budget, b->rl.max_used,
             b->rl.waits, st->weight_sent, b->max_in_flight, st->peak_in_flight, st->bytes);
}

static void bn_close(struct source *s)
{
    struct binance *b = (struct binance *)s;
    if (!b) {
        return;
    }
    if (b->pg == &b->own_progress) {
        progress_finish(b->pg);
    }
    pager_destroy(b->pager);
    if (b->f) {
        fetcher_cancel(b->f, &b->job);
    }
    fetcher_destroy(b->f);
    http_resp_free(&b->job.resp);
    free(b);
}

int source_binance_open_shared(const struct config *c, struct progress *pg,
                               struct source **out, struct err *e)
{
    struct binance *b = calloc(1, sizeof(*b));
    if (!b) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    b->base.ops = &source_binance_ops;
    snprintf(b->base_url, sizeof(b->base_url), "%s", c->text[S_BASE_URL]);
    size_t n = strlen(b->base_url);
    while (n > 0 && b->base_url[n - 1] == '/') {
        b->base_url[--n] = '\0';
    }
    b->budget_setting = c->weight_budget;
    b->max_in_flight = c->max_in_flight > 0 ? c->max_in_flight : 1;
    ratelimit_init(&b->rl, c->weight_budget > 0 ? c->weight_budget
                                               : DEFAULT_WEIGHT_LIMIT * 8 / 10);
    http_resp_init(&b->job.resp, MAX_BODY);
    if (pg) {
        b->pg = pg;
    }
    else {
        progress_init(&b->own_progress, c);
        b->pg = &b->own_progress;
    }
    struct fetcher_opts o = {
        .label = b->base_url,
        .max_in_flight = b->max_in_flight,
        .retries = c->retries,
        .connect_timeout_s = c->connect_timeout_s,
        .total_timeout_s = c->http_timeout_s,
        .stall_timeout_s = c->http_timeout_s < 15 ? c->http_timeout_s : 15,
    };
    /* Two pages outstanding per request in flight: the ones behind a slow
     * page keep arriving while it is awaited, and memory stays bounded. */
    if (fetcher_create(&o, &b->rl, &b->f, e) != 0 ||
        pager_create(b->f, b->base_url, 2 * b->max_in_flight, &b->pager, e) != 0) {
        bn_close(&b->base);
        return e->code;
    }
    b->pg->rest = fetcher_stats(b->f);
    b->pg->rl = &b->rl;
    fetcher_set_tick(b->f, progress_tick, b->pg);
    *out = &b->base;
    return 0;
}

static int bn_open(const struct config *c, struct source **out, struct err *e)
{
    return source_binance_open_shared(c, NULL, out, e);
}

const struct source_ops source_binance_ops = {
    .name = "rest",
    .caps = SOURCE_CAP_GAPS_ARE_REAL,
    .open = bn_open,
    .server_time = bn_server_time,
    .check_symbols = bn_check_symbols,
    .fetch = bn_fetch,
    .stats = bn_stats,
    .close = bn_close,
    .plan_range = bn_plan_range,
};
