/*
 * source_binance.c - klines from the Binance spot REST API.
 *
 * Every request goes through request(), the one place that retries:
 *   - transport failures (timeouts, resets, truncated bodies), HTTP 5xx and
 *     the exchange's transient codes: exponential backoff with full jitter,
 *     at most `retries` times and never past a total retry time;
 *   - 429: wait Retry-After (the limiter holds every request), then retry;
 *   - 418: the IP is banned; stop calling the API for the rest of the run
 *     and fail with the time the ban ends;
 *   - other 4xx: the request is wrong; report the exchange's code and msg.
 * Weights (klines 2, time 1, exchangeInfo 20) are acquired from the limiter
 * before each request and the used-weight header is fed back after it.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "extract/http.h"
#include "extract/kline_parse.h"
#include "extract/ratelimit.h"
#include "extract/source.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"

#define MAX_BODY (16u << 20)          /* a 1000-row page is ~170 kB */
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_TIME_LIMIT_MS (10 * 60 * 1000)
#define DEFAULT_WEIGHT_LIMIT 6000

struct binance {
    struct source base;
    struct http_client *http;
    struct http_resp resp;
    struct ratelimit rl;
    char base_url[512];
    long retries;
    long budget_setting;
    int budget_known;
    int banned;
    char ban_msg[256];
    uint64_t rng;
    /* figures for the run record */
    long requests, retried, got_429, got_5xx, net_errors;
};

/* xorshift64*, seeded once from the kernel: jitter needs no crypto. */
static uint64_t next_rand(struct binance *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static long backoff_ms(struct binance *b, int attempt)
{
    long cap = BACKOFF_BASE_MS;
    for (int i = 0; i < attempt && cap < BACKOFF_CAP_MS; i++) {
        cap *= 2;
    }
    if (cap > BACKOFF_CAP_MS) {
        cap = BACKOFF_CAP_MS;
    }
    return (long)(next_rand(b) % (uint64_t)(cap + 1));
}

static int transient_code(long code)
{
    return code == -1000 || code == -1001 || code == -1006 || code == -1007 || code == -1008;
}

/* GET path (with query) costing weight; on success the body is in b->resp. */
static int request(struct binance *b, const char *path, long weight, struct err *e)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", b->base_url, path);
    int64_t started = time_monotonic_ms();
    int attempt = 0;
    for (;;) {
        if (b->banned) {
            return err_set(e, ERR_BANNED, "%s", b->ban_msg);
        }
        if (interrupt_requested()) {
            return err_set(e, ERR_INTERRUPTED, "interrupted");
        }
        if (ratelimit_acquire(&b->rl, weight, e) != 0) {
            return e->code;
        }
        b->requests++;
        char reason[600];
        int rc = http_get(b->http, url, &b->resp, e);
        if (rc == ERR_INTERRUPTED || rc == ERR_INVALID) {
            return rc;
        }
        if (rc == 0) {
            ratelimit_observe(&b->rl, b->resp.used_weight_1m);
            long st = b->resp.status;
            if (st == 200) {
                return 0;
            }
            long code = 0;
            char msg[256] = "";
            int has_body = binance_error_body(b->resp.body.data ? b->resp.body.data : "",
                                              b->resp.body.len, &code, msg, sizeof(msg));
            if (st == 418) {
                long secs = b->resp.retry_after_s > 0 ? b->resp.retry_after_s : 120;
                char until[32];
                time_format_iso(time_now_ms() + secs * 1000, until);
                snprintf(b->ban_msg, sizeof(b->ban_msg), "HTTP 418 from %s: the exchange has "
                         "banned this IP until %s (Retry-After %lds)%s%s; no further requests "
                         "are sent this run", b->base_url, until, secs, has_body ? ": " : "",
                         has_body ? msg : "");
                b->banned = 1;
                return err_set(e, ERR_BANNED, "%s", b->ban_msg);
            }
            if (st == 429) {
                long secs = b->resp.retry_after_s > 0 ? b->resp.retry_after_s : 1;
                b->got_429++;
                ratelimit_pause(&b->rl, secs);
                log_warn("extract", "HTTP 429 (rate limit, code %ld): waiting Retry-After %lds "
                         "before the next request", code, secs);
                if (time_monotonic_ms() - started > RETRY_TIME_LIMIT_MS) {
                    return err_set(e, ERR_RATE_LIMIT, "still rate limited after %d minutes",
                                   RETRY_TIME_LIMIT_MS / 60000);
                }
                continue;   /* a 429 is a pacing signal, not a failed attempt */
            }
            if (st >= 500 || (has_body && transient_code(code))) {
                b->got_5xx++;
                snprintf(reason, sizeof(reason), "HTTP %ld%s%s", st, has_body ? ": " : "",
                         has_body ? msg : "");
            }
            else {
                e->http = (int)st;
                if (has_body) {
                    return err_set(e, ERR_API, "exchange refused %s (HTTP %ld, code %ld): %s",
                                   path[0] ? path : "/", st, code, msg);
                }
                return err_set(e, ERR_HTTP_FATAL, "HTTP %ld from %s%.*s", st, b->base_url,
                               (int)strcspn(path, "?"), path);
            }
        }
        else {
            b->net_errors++;
            snprintf(reason, sizeof(reason), "%s", e->msg);
        }
        if (attempt >= b->retries || time_monotonic_ms() - started > RETRY_TIME_LIMIT_MS) {
            return err_set(e, rc == 0 ? ERR_HTTP_RETRY : ERR_NET, "giving up after %d attempts: "
                           "%s", attempt + 1, reason);
        }
        long wait = backoff_ms(b, attempt);
        attempt++;
        b->retried++;
        log_warn("extract", "retry %d/%ld in %ld ms after %s", attempt, b->retries, wait,
                 reason);
        if (interrupt_sleep_ms(wait)) {
            return err_set(e, ERR_INTERRUPTED, "interrupted");
        }
    }
}

static int parse_json_body(struct binance *b, cJSON **out, struct err *e, const char *what)
{
    *out = cJSON_ParseWithLength(b->resp.body.data ? b->resp.body.data : "", b->resp.body.len);
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

static int bn_fetch(struct source *s, const char *symbol, const struct interval *iv,
                    int64_t from, int64_t to, struct kline_batch *out, int *done,
                    struct err *e)
{
    struct binance *b = (struct binance *)s;
    char path[256];
    snprintf(path, sizeof(path),
             "/api/v3/klines?symbol=%s&interval=%s&startTime=%lld&endTime=%lld&limit=%d", symbol,
             iv->name, (long long)from, (long long)(to - 1), SOURCE_PAGE_ROWS);
    int rc = request(b, path, 2, e);
    if (rc != 0) {
        return rc;
    }
    size_t before = out->n;
    rc = kline_parse_page(b->resp.body.data ? b->resp.body.data : "", b->resp.body.len, out, e);
    if (rc != 0) {
        return rc;
    }
    *done = out->n - before < SOURCE_PAGE_ROWS;
    return 0;
}

static void bn_stats(struct source *s, char *out, size_t n)
{
    struct binance *b = (struct binance *)s;
    snprintf(out, n, "\"source\":\"rest\",\"requests\":%ld,\"retries\":%ld,\"http_429\":%ld,"
             "\"http_5xx\":%ld,\"network_errors\":%ld,\"weight_budget\":%ld,"
             "\"max_used_weight\":%ld,\"budget_waits\":%ld", b->requests, b->retried, b->got_429,
             b->got_5xx, b->net_errors, b->rl.budget, b->rl.max_used, b->rl.waits);
}

static void bn_close(struct source *s)
{
    struct binance *b = (struct binance *)s;
    if (!b) {
        return;
    }
    http_client_destroy(b->http);
    http_resp_free(&b->resp);
    free(b);
}

static int bn_open(const struct config *c, struct source **out, struct err *e)
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
    b->retries = c->retries;
    b->budget_setting = c->weight_budget;
    ratelimit_init(&b->rl, c->weight_budget > 0 ? c->weight_budget
                                               : DEFAULT_WEIGHT_LIMIT * 8 / 10);
    if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng) || b->rng == 0) {
        b->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)time_now_ms();
    }
    struct http_opts o = {
        .connect_timeout_s = c->connect_timeout_s,
        .total_timeout_s = c->http_timeout_s,
        .stall_timeout_s = c->http_timeout_s < 15 ? c->http_timeout_s : 15,
        .max_body = MAX_BODY,
    };
    http_resp_init(&b->resp, MAX_BODY);
    if (http_client_create(&o, &b->http, e) != 0) {
        bn_close(&b->base);
        return e->code;
    }
    *out = &b->base;
    return 0;
}

const struct source_ops source_binance_ops = {
    .name = "rest",
    .open = bn_open,
    .server_time = bn_server_time,
    .check_symbols = bn_check_symbols,
    .fetch = bn_fetch,
    .stats = bn_stats,
    .close = bn_close,
};
