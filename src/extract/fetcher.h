/*
 * fetcher.h - the extractor's HTTP engine: several requests in flight over
 * libcurl's multi interface, one thread, no callbacks into the caller.
 *
 * A job is one GET.  The engine starts queued jobs while fewer than
 * max_in_flight run, the weight budget has room (ratelimit_try_acquire:
 * the weight in flight plus the weight answered in a window never exceeds
 * it) and no Retry-After pause runs.  Connections are kept alive and
 * shared by all jobs; HTTPS offers HTTP/2, and jobs then wait to be
 * multiplexed over one connection (CURLOPT_PIPEWAIT) instead of opening
 * more.
 *
 * It is the one place that retries, with the guarantees the sequential
 * extractor had, per job:
 *   - transport failures (timeouts, resets, truncated bodies), HTTP 5xx and
 *     the exchange's transient codes: capped full-jitter backoff, at most
 *     `retries` times and never past a total retry time;
 *   - 429: Retry-After pauses every job (nothing new starts until it has
 *     passed); the job is queued again without counting an attempt;
 *   - 418: the IP is banned; every job fails with ERR_BANNED and no further
 *     request is sent by this engine;
 *   - other 4xx: the job fails with the exchange's code and msg (ERR_API)
 *     or ERR_HTTP_FATAL, and err.http holds the status (404 for a missing
 *     archive file);
 *   - bodies are capped per job (ERR_INVALID above the cap), TLS peer and
 *     host verification stay on, SIGTERM aborts every transfer.
 * Memory is max_in_flight easy handles plus the bodies of the jobs the
 * caller owns.
 */
#ifndef DATAOPS_FETCHER_H
#define DATAOPS_FETCHER_H

#include <stddef.h>
#include <stdint.h>

#include "extract/http.h"
#include "extract/ratelimit.h"
#include "util/err.h"

enum fetch_state { FJ_IDLE = 0, FJ_QUEUED, FJ_RUNNING, FJ_DONE };

struct fetcher;

struct fetch_job {
    /* Set by the caller before fetcher_submit(). */
    char url[1024];
    long weight;               /* request weight; 0 for hosts without a budget */
    /* Result, valid once state == FJ_DONE: rc 0 means a 200 is in resp. */
    int rc;
    struct err err;
    struct http_resp resp;     /* the caller's: http_resp_init() it with the body cap */
    /* The engine's; the caller reads state only. */
    enum fetch_state state;
    int attempt;
    struct curl_sink sink;     /* resp.body, and whether it hit its cap */
    uint64_t seq;              /* submission order: earlier jobs start first */
    int64_t first_ms;          /* monotonic, first attempt */
    int64_t not_before;        /* monotonic, backoff */
    int64_t sent_ms;           /* wall clock, last attempt */
    void *easy;
    struct fetch_job *next;
};

struct fetcher_opts {
    const char *label;         /* origin named in messages, e.g. the base URL */
    long max_in_flight;        /* 1 .. 64 */
    long retries;
    long connect_timeout_s;
    long total_timeout_s;
    long stall_timeout_s;
};

/* Figures for the run record and the progress display. */
struct fetcher_stats {
    long requests;             /* attempts sent */
    long retried;
    long got_429;
    long got_5xx;
    long net_errors;
    long weight_sent;          /* sum of the weights of the attempts sent */
    long peak_in_flight;
    long long bytes;           /* response bodies received */
};

/* rl (borrowed, may be NULL: no budget) is shared by every engine that
 * talks to the same exchange. */
int fetcher_create(const struct fetcher_opts *o, struct ratelimit *rl, struct fetcher **out,
                   struct err *e);
void fetcher_destroy(struct fetcher *f);
/* Queue job (state FJ_QUEUED).  The job stays the caller's; it must not be
 * freed or resubmitted until it is FJ_DONE or cancelled. */
void fetcher_submit(struct fetcher *f, struct fetch_job *job);
/* Take a queued or running job back (a running transfer is abandoned; its
 * weight stays spent).  The job ends FJ_IDLE.  A done job is left alone. */
void fetcher_cancel(struct fetcher *f, struct fetch_job *job);
/* Drive every job until job is FJ_DONE; returns job->rc (and copies its
 * error into e), or ERR_INTERRUPTED / ERR_BANNED for the whole engine. */
int fetcher_wait(struct fetcher *f, struct fetch_job *job, struct err *e);
/* Called (about five times a second) while the engine waits. */
void fetcher_set_tick(struct fetcher *f, void (*tick)(void *ctx), void *ctx);
const struct fetcher_stats *fetcher_stats(const struct fetcher *f);
long fetcher_in_flight(const struct fetcher *f);
/* Non-zero once a 418 was seen: the message says until when. */
int fetcher_banned(const struct fetcher *f, const char **msg);

#endif
