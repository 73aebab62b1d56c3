/*
 * run.c - see run.h.
 */
#include "metadata/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/timeutil.h"
#include "util/uuid.h"
#include "version.h"

const char *const run_stage_names[RS__COUNT] = {
    "extract", "validate_raw", "lake_raw", "load_raw", "read_raw", "transform",
    "lake_transformed", "load_transformed", "metadata",
};

int64_t run_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int run_init(struct run *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (uuid_v4(r->run_id) != 0) {
        return -1;
    }
    snprintf(r->git_commit, sizeof(r->git_commit), "%s", DATAOPS_COMMIT);
    snprintf(r->version, sizeof(r->version), "%s", DATAOPS_VERSION);
    if (gethostname(r->hostname, sizeof(r->hostname) - 1) != 0) {
        snprintf(r->hostname, sizeof(r->hostname), "unknown");
    }
    r->started_at = time_now_ms();
    snprintf(r->status, sizeof(r->status), "running");
    r->pairs = calloc(cap ? cap : 1, sizeof(*r->pairs));
    return r->pairs ? 0 : -1;
}

void run_free(struct run *r)
{
    free(r->pairs);
    r->pairs = NULL;
    r->npairs = 0;
}

struct pair_stats *run_add_pair(struct run *r, const char *symbol, const struct interval *iv)
{
    struct pair_stats *p = &r->pairs[r->npairs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->symbol, sizeof(p->symbol), "%s", symbol);
    p->iv = iv;
    snprintf(p->status, sizeof(p->status), "pending");
    return p;
}

void pair_note_gap(struct pair_stats *p, int64_t from, int64_t to, long long missing)
{
    if (p->ngaps < RUN_MAX_GAPS) {
        p->gaps[p->ngaps].from = from;
        p->gaps[p->ngaps].to = to;
    }
    p->ngaps++;
    p->missing_candles += missing;
}

static int put_time(struct buf *out, const char *key, int64_t ms)
{
    if (ms <= 0) {
        return buf_printf(out, "\"%s\":null", key);
    }
    char t[32];
    time_format_iso(ms, t);
    return buf_printf(out, "\"%s\":\"%s\"", key, t);
}

static int put_str(struct buf *out, const char *key, const char *v)
{
    int rc = buf_printf(out, "\"%s\":\"", key);
    rc |= buf_json_escape(out, v, strlen(v));
    rc |= buf_putc(out, '"');
    return rc;
}

int run_to_json(const struct run *r, struct buf *out)
{
    int rc = buf_putc(out, '{');
    rc |= put_str(out, "run_id", r->run_id);
    rc |= buf_putc(out, ',');
    rc |= put_str(out, "pipeline", "pipeline-dataops");
    rc |= buf_putc(out, ',');
    rc |= put_str(out, "version", r->version);
    rc |= buf_putc(out, ',');
    rc |= put_str(out, "git_commit", r->git_commit);
    rc |= buf_putc(out, ',');
    rc |= put_str(out, "hostname", r->hostname);
    rc |= buf_putc(out, ',');
    rc |= put_time(out, "started_at", r->started_at);
    rc |= buf_putc(out, ',');
    rc |= put_time(out, "ended_at", r->ended_at);
    rc |= buf_putc(out, ',');
    rc |= put_str(out, "status", r->status);
    rc |= buf_printf(out, ",\"exit_code\":%d,", r->exit_code);
    rc |= put_str(out, "error", r->error);
    rc |= buf_puts(out, ",\"stages_ms\":{");
    for (int s = 0; s < RS__COUNT; s++) {
        rc |= buf_printf(out, "%s\"%s\":%.3f", s ? "," : "", run_stage_names[s],
                         (double)r->stage_ns[s] / 1e6);
    }
    rc |= buf_puts(out, "},\"pairs\":[");
    for (size_t i = 0; i < r->npairs; i++) {
        const struct pair_stats *p = &r->pairs[i];
        rc |= buf_puts(out, i ? ",{" : "{");
        rc |= put_str(out, "symbol", p->symbol);
        rc |= buf_putc(out, ',');
        rc |= put_str(out, "interval", p->iv->name);
        rc |= buf_putc(out, ',');
        rc |= put_time(out, "range_start", p->range_start);
        rc |= buf_putc(out, ',');
        rc |= put_time(out, "range_end", p->range_end);
        rc |= buf_putc(out, ',');
        rc |= put_time(out, "first_open", p->first_open);
        rc |= buf_putc(out, ',');
        rc |= put_time(out, "last_open", p->last_open);
        rc |= buf_printf(out, ",\"pages\":%lld,\"rows_extracted\":%lld,\"open_skipped\":%lld,"
                         "\"rows_raw_loaded\":%lld,\"rows_rejected\":%lld,"
                         "\"rows_transformed\":%lld,\"rows_transformed_rejected\":%lld,"
                         "\"short_candles\":%lld,\"zero_trade_candles\":%lld,"
                         "\"gaps\":%lld,\"missing_candles\":%lld,\"raw_objects\":%d,"
                         "\"transformed_objects\":%d,\"first_gaps\":[",
                         p->pages, p->extracted, p->open_skipped, p->raw_loaded, p->rejected,
                         p->transformed, p->transformed_rejected, p->short_candles,
                         p->zero_trade, p->ngaps, p->missing_candles, p->raw_objects,
                         p->transformed_objects);
        long long ng = p->ngaps < RUN_MAX_GAPS ? p->ngaps : RUN_MAX_GAPS;
        for (long long g = 0; g < ng; g++) {
            rc |= buf_puts(out, g ? ",{" : "{");
            rc |= put_time(out, "from", p->gaps[g].from);
            rc |= buf_putc(out, ',');
            rc |= put_time(out, "to", p->gaps[g].to);
            rc |= buf_putc(out, '}');
        }
        rc |= buf_puts(out, "],");
        rc |= put_str(out, "status", p->status);
        rc |= buf_putc(out, ',');
        rc |= put_str(out, "error", p->error);
        rc |= buf_putc(out, '}');
    }
    rc |= buf_puts(out, "]}\n");
    return rc ? -1 : 0;
}
