/*
 * fetcher.c - see fetcher.h.
 *
 * One loop, fetcher_wait(): start what may start, let libcurl move bytes
 * (curl_multi_perform), classify what finished, sleep in curl_multi_poll
 * until a socket is ready or the next job may start (a backoff ends, a
 * pause ends, a new weight window opens), at most 100 ms so that SIGTERM is
 * seen promptly.  The caller's jobs progress whichever of them it waits
 * for, so a pager that waits for page k lets pages k+1.. arrive meanwhile.
 *
 * The classification below is the sequential extractor's request() turned
 * inside out: what it did in a loop for one request, this does per job at
 * completion, with the job put back in the queue instead of a sleep.
 */
#include "extract/fetcher.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extract/kline_parse.h"
#include "util/backoff.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"

#define MAX_IN_FLIGHT 64
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_TIME_LIMIT_MS (10 * 60 * 1000)
#define POLL_MAX_MS 100
#define TICK_MS 200
#define START_IN_FLIGHT 2

struct fetcher {
    CURLM *multi;
    struct fetcher_opts o;
    char label[512];
    struct ratelimit *rl;          /* borrowed; NULL = no budget */
    int64_t paused_until;          /* wall ms, used when rl is NULL */
    CURL *pool[MAX_IN_FLIGHT];     /* idle easy handles, reused */
    int npool;
    struct fetch_job *queue;       /* sorted by seq */
    struct fetch_job *running[MAX_IN_FLIGHT];
    long nrunning;
    long limit;                    /* in flight allowed now (see grow_limit) */
    long ok_count;                 /* answers since the limit last changed */
    int seen_429;
    long weight_in_flight;
    uint64_t next_seq;
    int banned;
    char ban_msg[400];
    int budget_blocked;
    uint64_t rng;
    struct fetcher_stats st;
    void (*tick)(void *ctx);
    void *tick_ctx;
    int64_t last_tick;
};

static int curl_ready;


static int transient_code(long code)
{
    return code == -1000 || code == -1001 || code == -1006 || code == -1007 || code == -1008;
}

int fetcher_create(const struct fetcher_opts *o, struct ratelimit *rl, struct fetcher **out,
                   struct err *e)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return err_set(e, ERR_NET, "cannot initialise libcurl");
        }
        curl_ready = 1;
    }
    struct fetcher *f = calloc(1, sizeof(*f));
    if (!f || !(f->multi = curl_multi_init())) {
        free(f);
        return err_set(e, ERR_NOMEM, "cannot create an HTTP engine");
    }
    f->o = *o;
    if (f->o.max_in_flight < 1) {
        f->o.max_in_flight = 1;
    }
    if (f->o.max_in_flight > MAX_IN_FLIGHT) {
        f->o.max_in_flight = MAX_IN_FLIGHT;
    }
    f->limit = f->o.max_in_flight < START_IN_FLIGHT ? f->o.max_in_flight : START_IN_FLIGHT;
    snprintf(f->label, sizeof(f->label), "%s", o->label ? o->label : "the server");
    f->o.label = f->label;
    f->rl = rl;
    f->rng = backoff_seed();
    /* Multiplex on HTTP/2 where offered; otherwise up to max_in_flight
     * keep-alive connections to the host, kept open between waves. */
    curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, f->o.max_in_flight);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, f->o.max_in_flight + 2);
    *out = f;
    return 0;
}

static void job_done(struct fetch_job *job, int rc)
{
    job->rc = rc;
    job->state = FJ_DONE;
}

static void unlink_queued(struct fetcher *f, struct fetch_job *job)
{
    for (struct fetch_job **pp = &f->queue; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            job->next = NULL;
            return;
        }
    }
}

/* Insert by seq, so that a retried job keeps its place before later ones. */
static void enqueue(struct fetcher *f, struct fetch_job *job)
{
    struct fetch_job **pp = &f->queue;
    while (*pp && (*pp)->seq < job->seq) {
        pp = &(*pp)->next;
    }
    job->next = *pp;
    *pp = job;
    job->state = FJ_QUEUED;
}

/* Detach a running job's transfer and give its handle back to the pool. */
static void detach(struct fetcher *f, struct fetch_job *job)
{
    for (long i = 0; i < f->nrunning; i++) {
        if (f->running[i] == job) {
            f->running[i] = f->running[--f->nrunning];
            break;
        }
    }
    f->weight_in_flight -= job->weight;
    CURL *h = job->easy;
    job->easy = NULL;
    if (h) {
        curl_multi_remove_handle(f->multi, h);
        if (f->npool < MAX_IN_FLIGHT) {
            f->pool[f->npool++] = h;
        }
        else {
            curl_easy_cleanup(h);
        }
    }
}

void fetcher_destroy(struct fetcher *f)
{
    if (!f) {
        return;
    }
    while (f->nrunning > 0) {
        struct fetch_job *job = f->running[0];
        detach(f, job);
        job->state = FJ_IDLE;
    }
    while (f->queue) {
        struct fetch_job *job = f->queue;
        f->queue = job->next;
        job->next = NULL;
        job->state = FJ_IDLE;
    }
    for (int i = 0; i < f->npool; i++) {
        curl_easy_cleanup(f->pool[i]);
    }
    curl_multi_cleanup(f->multi);
    free(f);
}

void fetcher_submit(struct fetcher *f, struct fetch_job *job)
{
    job->rc = 0;
    err_clear(&job->err);
    job->attempt = 0;
    job->first_ms = time_monotonic_ms();
    job->not_before = 0;
    job->seq = f->next_seq++;
    job->easy = NULL;
    job->next = NULL;
    enqueue(f, job);
}

void fetcher_cancel(struct fetcher *f, struct fetch_job *job)
{
    if (job->state == FJ_QUEUED) {
        unlink_queued(f, job);
        job->state = FJ_IDLE;
    }
    else if (job->state == FJ_RUNNING) {
        detach(f, job);
        job->state = FJ_IDLE;
    }
}

/* Fail every queued and running job with the same error. */
static void fail_all(struct fetcher *f, int code, const char *msg)
{
    while (f->nrunning > 0) {
        struct fetch_job *job = f->running[0];
        detach(f, job);
        err_set(&job->err, code, "%s", msg);
        job_done(job, code);
    }
    while (f->queue) {
        struct fetch_job *job = f->queue;
        f->queue = job->next;
        job->next = NULL;
        err_set(&job->err, code, "%s", msg);
        job_done(job, code);
    }
}

/* ---- one transfer ------------------------------------------------------ */

/* The path and query of url, for the exchange's refusals. */
static const char *path_of(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *p = sep ? sep + 3 : url;
    p += strcspn(p, "/?#");
    return *p ? p : "/";
}

static int start_job(struct fetcher *f, struct fetch_job *job)
{
    CURL *h = f->npool > 0 ? f->pool[--f->npool] : curl_easy_init();
    if (!h) {
        err_set(&job->err, ERR_NOMEM, "cannot create an HTTP handle");
        job_done(job, ERR_NOMEM);
        return -1;
    }
    curl_easy_reset(h);
    buf_reset(&job->resp.body);
    job->resp.status = 0;
    job->resp.used_weight_1m = -1;
    job->resp.retry_after_s = -1;
    job->sink = (struct curl_sink){&job->resp.body, 0};
    curl_easy_setopt(h, CURLOPT_URL, job->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, job);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &job->sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &job->resp);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, curl_abort_on_signal);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, f->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, f->o.total_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, f->o.stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dataops/0.1 (+libcurl)");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    if (job->resp.body.max) {
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)job->resp.body.max);
    }
    if (curl_multi_add_handle(f->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        err_set(&job->err, ERR_NET, "cannot start a request to %s", f->label);
        job_done(job, ERR_NET);
        return -1;
    }
    job->easy = h;
    job->state = FJ_RUNNING;
    job->sent_ms = time_now_ms();
    f->running[f->nrunning++] = job;
    f->weight_in_flight += job->weight;
    f->st.requests++;
    f->st.weight_sent += job->weight;
    if (f->nrunning > f->st.peak_in_flight) {
        f->st.peak_in_flight = f->nrunning;
    }
    return 0;
}

static int64_t pause_end(const struct fetcher *f)
{
    int64_t p = f->paused_until;
    if (f->rl && f->rl->paused_until > p) {
        p = f->rl->paused_until;
    }
    return p;
}

/* Start queued jobs while the limits allow; returns the ms until one more
 * might be startable (-1 when nothing waits for time). */
static long start_ready(struct fetcher *f)
{
    long wake = -1;
    while (f->nrunning < f->limit && f->queue) {
        int64_t mono = time_monotonic_ms();
        struct fetch_job *job = NULL;
        for (struct fetch_job *j = f->queue; j; j = j->next) {
            if (j->not_before <= mono) {
                job = j;
                break;
            }
            long w = (long)(j->not_before - mono);
            if (wake < 0 || w < wake) {
                wake = w;
            }
        }
        if (!job) {
            break;
        }
        int64_t now = time_now_ms();
        int64_t pause = pause_end(f);
        if (pause > now) {
            long w = (long)(pause - now);
            if (wake < 0 || w < wake) {
                wake = w;
            }
            break;
        }
        if (job->weight > 0 && f->rl) {
            int64_t w = 0;
            int r = ratelimit_try_acquire(f->rl, job->weight, f->weight_in_flight, &w);
            if (r < 0) {
                unlink_queued(f, job);
                err_set(&job->err, ERR_CONFIG, "a request of weight %ld can never fit in the "
                        "weight budget of %ld/min (raise DATAOPS_WEIGHT_BUDGET)", job->weight,
                        f->rl->budget);
                job_done(job, ERR_CONFIG);
                continue;
            }
            if (r > 0) {
                if (!f->budget_blocked) {
                    f->budget_blocked = 1;
                    f->rl->waits++;
                    log_info("ratelimit", "weight budget %ld/min reached (used %ld); waiting "
                             "%ld ms", f->rl->budget, f->rl->used, (long)w);
                }
                if (wake < 0 || w < wake) {
                    wake = (long)w;
                }
                break;
            }
            f->budget_blocked = 0;
        }
        unlink_queued(f, job);
        start_job(f, job);
    }
    return wake;
}

/* Queue job again after a transient failure, or fail it for good. */
static void retry_or_fail(struct fetcher *f, struct fetch_job *job, int code,
                          const char *reason)
{
    if (job->attempt >= f->o.retries ||
        time_monotonic_ms() - job->first_ms > RETRY_TIME_LIMIT_MS) {
        err_set(&job->err, code, "giving up after %d attempts: %s", job->attempt + 1, reason);
        job_done(job, code);
        return;
    }
    long wait = backoff_ms(&f->rng, BACKOFF_BASE_MS, BACKOFF_CAP_MS, job->attempt);
    job->attempt++;
    f->st.retried++;
    log_warn("extract", "retry %d/%ld in %ld ms after %s", job->attempt, f->o.retries, wait,
             reason);
    job->not_before = time_monotonic_ms() + wait;
    enqueue(f, job);
}

static void on_banned(struct fetcher *f, struct fetch_job *job, long code, const char *msg,
                      int has_body)
{
    long secs = job->resp.retry_after_s > 0 ? job->resp.retry_after_s : 120;
    char until[32];
    time_format_iso(time_now_ms() + secs * 1000, until);
    snprintf(f->ban_msg, sizeof(f->ban_msg), "HTTP 418 from %s: the exchange has banned this IP "
             "until %s (Retry-After %lds)%s%s; no further requests are sent this run", f->label,
             until, secs, has_body ? ": " : "", has_body ? msg : "");
    (void)code;
    f->banned = 1;
    err_set(&job->err, ERR_BANNED, "%s", f->ban_msg);
    job_done(job, ERR_BANNED);
    fail_all(f, ERR_BANNED, f->ban_msg);
}

/*
 * How many requests may be in flight, like a TCP congestion window: a run
 * starts with START_IN_FLIGHT, adds one each time as many answers as are
 * allowed in flight have come back (so it grows by about one per round
 * trip) up to max_in_flight, and halves on a 429, after which it grows
 * only by one per 20 answers.  The requests that are on their way when an
 * exchange decides on a 429 reach it during the Retry-After period, which
 * it may hold against us: keeping the window small at the start and after
 * a 429 keeps that number small.  The weight budget bounds it as well.
 */
static void grow_limit(struct fetcher *f)
{
    if (f->limit >= f->o.max_in_flight) {
        return;
    }
    if (++f->ok_count >= (f->seen_429 ? 20 : f->limit)) {
        f->limit++;
        f->ok_count = 0;
    }
}

/*
 * The used-weight header counts the window in which the exchange counted
 * the request.  An answer that crosses a minute boundary may carry the
 * last window's total, which applied to the new one would stop every
 * request for a whole minute; and near a boundary our clock and the
 * exchange's may disagree.  So the header is believed only for requests
 * sent more than a second into a window and answered within it (the
 * weight still in flight is counted at each new window anyway).
 */
static int same_window(int64_t sent, int64_t now)
{
    return floor_div(sent, MS_PER_MIN) == floor_div(now, MS_PER_MIN) &&
           sent - floor_div(sent, MS_PER_MIN) * MS_PER_MIN >= 1000;
}

static void complete(struct fetcher *f, struct fetch_job *job, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo((CURL *)job->easy, CURLINFO_RESPONSE_CODE, &status);
    detach(f, job);
    char origin[256];
    char reason[600];
    http_origin_of(job->url, origin, sizeof(origin));
    if (cc == CURLE_ABORTED_BY_CALLBACK && interrupt_requested()) {
        err_set(&job->err, ERR_INTERRUPTED, "request to %s interrupted by a signal", origin);
        job_done(job, ERR_INTERRUPTED);
        return;
    }
    if (job->sink.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        err_set(&job->err, ERR_INVALID, "response from %s is larger than %zu bytes", origin,
                job->resp.body.max);
        job_done(job, ERR_INVALID);
        return;
    }
    if (cc != CURLE_OK) {
        const char *kind = "network error with";
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            kind = "timeout waiting for";
        }
        else if (cc == CURLE_PARTIAL_FILE) {
            kind = "truncated body from";
        }
        else if (cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING || cc == CURLE_SEND_ERROR) {
            kind = "connection reset by";
        }
        else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
            kind = "cannot connect to";
        }
        else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR) {
            kind = "TLS verification failed for";
        }
        f->st.net_errors++;
        snprintf(reason, sizeof(reason), "%s %s: %s", kind, origin, curl_easy_strerror(cc));
        retry_or_fail(f, job, ERR_NET, reason);
        return;
    }
    job->resp.status = status;
    f->st.bytes += (long long)job->resp.body.len;
    if (f->rl && job->weight > 0 && same_window(job->sent_ms, time_now_ms())) {
        ratelimit_observe(f->rl, job->resp.used_weight_1m);
    }
    if (status == 200) {
        grow_limit(f);
        job_done(job, 0);
        return;
    }
    long code = 0;
    char msg[256] = "";
    int has_body = binance_error_body(job->resp.body.data ? job->resp.body.data : "",
                                      job->resp.body.len, &code, msg, sizeof(msg));
    if (status == 418) {
        on_banned(f, job, code, msg, has_body);
        return;
    }
    if (status == 429) {
        long secs = job->resp.retry_after_s > 0 ? job->resp.retry_after_s : 1;
        f->st.got_429++;
        if (f->rl) {
            ratelimit_pause(f->rl, secs);
        }
        else if (time_now_ms() + secs * 1000 > f->paused_until) {
            f->paused_until = time_now_ms() + secs * 1000;
        }
        /* Fewer requests in flight from now on: whatever else another
         * client behind our address is doing, we leave it more room. */
        f->limit = f->limit > 1 ? f->limit / 2 : 1;
        f->ok_count = 0;
        f->seen_429 = 1;
        log_warn("extract", "HTTP 429 (rate limit, code %ld): waiting Retry-After %lds before "
                 "the next request; at most %ld in flight from now on", code, secs, f->limit);
        if (time_monotonic_ms() - job->first_ms > RETRY_TIME_LIMIT_MS) {
            err_set(&job->err, ERR_RATE_LIMIT, "still rate limited after %d minutes",
                    RETRY_TIME_LIMIT_MS / 60000);
            job_done(job, ERR_RATE_LIMIT);
            return;
        }
        enqueue(f, job);   /* a 429 is a pacing signal, not a failed attempt */
        return;
    }
    if (status >= 500 || (has_body && transient_code(code))) {
        f->st.got_5xx++;
        snprintf(reason, sizeof(reason), "HTTP %ld%s%s", status, has_body ? ": " : "",
                 has_body ? msg : "");
        retry_or_fail(f, job, ERR_HTTP_RETRY, reason);
        return;
    }
    job->err.http = (int)status;
    if (has_body) {
        err_set(&job->err, ERR_API, "exchange refused %s (HTTP %ld, code %ld): %s",
                path_of(job->url), status, code, msg);
        job->err.http = (int)status;
        job_done(job, ERR_API);
        return;
    }
    const char *path = path_of(job->url);
    err_set(&job->err, ERR_HTTP_FATAL, "HTTP %ld from %s%.*s", status, origin,
            (int)strcspn(path, "?"), path);
    job->err.http = (int)status;
    job_done(job, ERR_HTTP_FATAL);
}

static void drain(struct fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        struct fetch_job *job = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&job);
        CURLcode cc = m->data.result;
        if (job) {
            complete(f, job, cc);
        }
    }
}

int fetcher_wait(struct fetcher *f, struct fetch_job *job, struct err *e)
{
    for (;;) {
        if (job->state == FJ_DONE) {
            if (job->rc != 0) {
                *e = job->err;
            }
            return job->rc;
        }
        if (job->state == FJ_IDLE) {
            return err_set(e, ERR_IO, "internal: waiting for a request that was never sent");
        }
        if (f->banned) {
            fail_all(f, ERR_BANNED, f->ban_msg);
            continue;
        }
        if (interrupt_requested()) {
            fail_all(f, ERR_INTERRUPTED, "interrupted by a signal");
            continue;
        }
        /* Read what has arrived first: a 429 among it must stop what would
         * otherwise start now. */
        int still = 0;
        curl_multi_perform(f->multi, &still);
        drain(f);
        if (job->state == FJ_DONE || f->banned) {
            continue;
        }
        long started = f->st.requests;
        long wake = start_ready(f);
        if (f->st.requests != started) {
            curl_multi_perform(f->multi, &still);
        }
        long timeout = POLL_MAX_MS;
        if (wake >= 0 && wake < timeout) {
            timeout = wake;
        }
        curl_multi_poll(f->multi, NULL, 0, (int)timeout, NULL);
        int64_t now = time_monotonic_ms();
        if (f->tick && now - f->last_tick >= TICK_MS) {
            f->last_tick = now;
            f->tick(f->tick_ctx);
        }
    }
}

void fetcher_set_tick(struct fetcher *f, void (*tick)(void *ctx), void *ctx)
{
    f->tick = tick;
    f->tick_ctx = ctx;
}

const struct fetcher_stats *fetcher_stats(const struct fetcher *f)
{
    return &f->st;
}

long fetcher_in_flight(const struct fetcher *f)
{
    return f->nrunning;
}

int fetcher_banned(const struct fetcher *f, const char **msg)
{
    if (msg) {
        *msg = f->ban_msg;
    }
    return f->banned;
}
