/*
 * source_archive.c - klines from the data.binance.vision archive
 * (--source archive), or from the archive and the REST API together
 * (--source auto).
 *
 * A file is downloaded into memory (capped at 64 MiB; a month of 1m
 * candles is 2-3 MB), its SHA-256 checked against its .CHECKSUM, its zip
 * structure and CRC-32 checked by a first inflate pass, and only then read
 * as CSV rows, a page at a time, while the pipeline asks (zipstream.c): no
 * temporary file, and no row of a file that fails any check is used.  A
 * checksum that does not match is fetched once more (Binance may reissue a
 * file between our two downloads) before the file is refused.
 *
 * Which open times come from a file and which from the API is decided by
 * archive_choose() (source_auto.c), which the planner shares:
 *   - archive: monthly files where published, else daily files; a period
 *     no file covers yet (today, or a day's file not out yet) ends the
 *     pair's extraction for this run (SOURCE_STOPPED: the watermark stays
 *     where the data ends, and the next run continues from it); a file
 *     missing long after it should have appeared is skipped, leaving a
 *     hole that `dataops plan` lists and the API can fill;
 *   - auto: files where they save API requests, the API for the rest;
 *     a missing or refused file falls back to the daily files of its month
 *     or to the API.
 * Rows go through the pipeline's validation like REST rows, including the
 * closed-candle rule (close_time < server time); with archive alone the
 * server time is our own clock.
 *
 * The run record says which source loaded what: stats() lists, per pair,
 * every file (with its time unit) and every API stretch with their rows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/archive.h"
#include "extract/fetcher.h"
#include "extract/fetcher_pages.h"
#include "extract/source.h"
#include "util/log.h"
#include "util/timeutil.h"

#define ZIP_MAX (64u << 20)
#define CHECKSUM_MAX 4096u
#define MAX_RECORDS 1024
#define LINE_BYTES_MAX 512      /* per row, to bound a file's inflated size */
#define RECENT_MS (2 * 86400000LL)  /* a day's file may still be on its way */

/* What one stretch of a pair was loaded from, for the run record. */
struct rec {
    char symbol[24];
    const struct interval *iv;
    enum archive_kind kind;
    char file[64];
    int micro;
    int64_t first;
    int64_t last;
    long long rows;
};

struct arch {
    struct source base;
    enum archive_use use;
    struct source *rest;           /* auto only */
    struct fetcher *f;
    struct fetch_job sum_job;
    struct fetch_job zip_job;      /* its body backs the open zipstream */
    char base_url[512];
    long min_candles;
    int64_t now;
    struct progress progress;
    /* the pair being fetched */
    char symbol[24];
    const struct interval *iv;
    int64_t skip_month;            /* a month/day whose file was missing or refused */
    int64_t skip_day;
    int64_t done_until;            /* a file or an API stretch had nothing more below
                                      this: the next open time to look at */
    /* the open file */
    struct zipstream *zs;
    struct archive_choice cur;
    char cur_name[64];
    long lineno;
    int cur_micro;
    int64_t file_pos;              /* rows below this were consumed */
    struct kline pending;          /* a row read past the caller's `to` */
    int has_pending;
    /* figures */
    long files_monthly, files_daily, missing, refused, micro_files;
    long long archive_bytes, rows_archive, rows_rest;
    struct rec *recs;
    size_t nrec;
    long long rec_dropped;
};

static void record(struct arch *a, enum archive_kind kind, const char *file, int micro,
                   const struct kline_batch *out, size_t n0)
{
    /* Closed candles only: the pipeline drops a still-forming one, and the
     * record says what was loaded. */
    size_t n = out->n;
    while (n > n0 && out->rows[n - 1].close_time >= a->now) {
        n--;
    }
    if (n <= n0) {
        return;
    }
    int64_t first = out->rows[n0].open_time;
    int64_t last = out->rows[n - 1].open_time;
    long long rows = (long long)(n - n0);
    if (kind == ARCH_REST) {
        a->rows_rest += rows;
    }
    else {
        a->rows_archive += rows;
    }
    struct rec *r = a->nrec ? &a->recs[a->nrec - 1] : NULL;
    if (r && r->kind == kind && r->iv == a->iv && strcmp(r->symbol, a->symbol) == 0 &&
        strcmp(r->file, file) == 0 && first > r->last) {
        r->last = last;
        r->rows += rows;
        r->micro |= micro;
        return;
    }
    if (a->nrec == MAX_RECORDS) {
        a->rec_dropped++;
        return;
    }
    r = &a->recs[a->nrec++];
    snprintf(r->symbol, sizeof(r->symbol), "%s", a->symbol);
    r->iv = a->iv;
    r->kind = kind;
    snprintf(r->file, sizeof(r->file), "%s", file);
    r->micro = micro;
    r->first = first;
    r->last = last;
    r->rows = rows;
}

static void close_file(struct arch *a)
{
    zipstream_close(a->zs);
    a->zs = NULL;
    a->has_pending = 0;
}

/* GET one archive object into job; a 404 is ERR_HTTP_FATAL with e->http
 * 404 (the caller's "not published"). */
static int get(struct arch *a, struct fetch_job *job, const char *path, struct err *e)
{
    snprintf(job->url, sizeof(job->url), "%s/%s", a->base_url, path);
    job->weight = 0;
    fetcher_submit(a->f, job);
    int rc = fetcher_wait(a->f, job, e);
    job->state = FJ_IDLE;
    return rc;
}

/* Download, verify and open the file of ch.  Returns 0, or an error; a
 * missing file is ERR_HTTP_FATAL with e->http == 404. */
static int open_file(struct arch *a, const char *symbol, const struct interval *iv,
                     const struct archive_choice *ch, struct err *e)
{
    char name[128];
    char path[512];
    char sum_path[600];
    archive_file_name(symbol, iv, ch, name, sizeof(name));
    archive_file_path(symbol, iv, ch, path, sizeof(path));
    snprintf(sum_path, sizeof(sum_path), "%s.CHECKSUM", path);
    close_file(a);
    for (int attempt = 0;; attempt++) {
        unsigned char want[32];
        char got[65];
        int rc = get(a, &a->sum_job, sum_path, e);
        if (rc == 0) {
            const struct buf *b = &a->sum_job.resp.body;
            rc = archive_checksum_parse(b->data ? b->data : "", b->len, name, want, e);
        }
        if (rc == 0) {
            rc = get(a, &a->zip_job, path, e);
        }
        if (rc != 0) {
            if (e->http == 404 || e->http == 403) {
                a->missing++;
                log_info("archive", "%s is not in the archive (HTTP %d)", name, e->http);
            }
            return rc;
        }
        const struct buf *zb = &a->zip_job.resp.body;
        if (!archive_sha256_matches(zb->data ? zb->data : "", zb->len, want, got)) {
            char want_hex[65];
            for (int i = 0; i < 32; i++) {
                snprintf(want_hex + 2 * i, 3, "%02x", want[i]);
            }
            if (attempt == 0) {
                log_warn("archive", "%s: SHA-256 %.16s... does not match its .CHECKSUM "
                         "%.16s...; fetching both again (a reissue?)", name, got, want_hex);
                continue;
            }
            a->refused++;
            return err_set(e, ERR_INVALID, "archive file %s: its SHA-256 %s does not match "
                           "its .CHECKSUM %s; the file is not used", name, got, want_hex);
        }
        size_t max = (size_t)(interval_count(iv, ch->from, ch->to) + 16) * LINE_BYTES_MAX;
        rc = zipstream_open(zb->data, zb->len, name, max, &a->zs, e);
        if (rc != 0) {
            a->refused++;
            return rc;
        }
        a->archive_bytes += (long long)zb->len;
        log_info("archive", "%s: %zu bytes, SHA-256 and CRC-32 verified", name, zb->len);
        break;
    }
    a->cur = *ch;
    snprintf(a->cur_name, sizeof(a->cur_name), "%s", name);
    a->lineno = 0;
    a->cur_micro = 0;
    a->file_pos = ch->from;
    a->has_pending = 0;
    if (ch->kind == ARCH_MONTHLY) {
        a->files_monthly++;
    }
    else {
        a->files_daily++;
    }
    a->progress.files++;
    return 0;
}

/* Rows of the open file in [from, to), up to one page.  *hit_to: a row at
 * or past `to` was reached (kept as pending).  The file is closed at its
 * end. */
static int read_rows(struct arch *a, int64_t from, int64_t to, struct kline_batch *out,
                     int *hit_to, struct err *e)
{
    size_t n0 = out->n;
    *hit_to = 0;
    while (out->n - n0 < SOURCE_PAGE_ROWS) {
        struct kline k;
        if (a->has_pending) {
            k = a->pending;
            a->has_pending = 0;
        }
        else {
            const char *line;
            size_t len;
            if (zipstream_line(a->zs, &line, &len, e) != 0) {
                return err_wrap(e, "archive file %s", a->cur_name);
            }
            if (!line) {
                close_file(a);
                return 0;
            }
            a->lineno++;
            if (len == 0) {
                continue;
            }
            int micro = 0;
            int rc = archive_csv_row(line, len, a->lineno, &k, &micro, e);
            if (rc == 1) {
                continue;   /* the header line */
            }
            if (rc != 0) {
                return err_wrap(e, "archive file %s", a->cur_name);
            }
            if (micro && !a->cur_micro) {
                a->cur_micro = 1;
                a->micro_files++;
                log_info("archive", "%s: timestamps in microseconds, converted to "
                         "milliseconds", a->cur_name);
            }
        }
        a->file_pos = k.open_time;
        if (k.open_time < from) {
            continue;
        }
        if (k.open_time >= to) {
            a->pending = k;
            a->has_pending = 1;
            *hit_to = 1;
            return 0;
        }
        struct kline *dst = kline_batch_push(out);
        if (!dst) {
            a->pending = k;
            a->has_pending = 1;
            return 0;
        }
        *dst = k;
    }
    return 0;
}

static void same_pair(struct arch *a, const char *symbol, const struct interval *iv)
{
    if (a->iv == iv && strcmp(a->symbol, symbol) == 0) {
        return;
    }
    close_file(a);
    snprintf(a->symbol, sizeof(a->symbol), "%s", symbol);
    a->iv = iv;
    a->skip_month = INT64_MIN;
    a->skip_day = INT64_MIN;
    a->done_until = INT64_MIN;
}

static int ar_fetch(struct source *s, const char *symbol, const struct interval *iv,
                    int64_t from, int64_t to, struct kline_batch *out, int *done,
                    struct err *e)
{
    struct arch *a = (struct arch *)s;
    progress_pair(&a->progress, symbol, iv);
    same_pair(a, symbol, iv);
    *done = 0;
    int64_t call_from = from;
    while (from < to) {
        if (a->zs && from >= a->cur.from && from < a->cur.to && from >= a->file_pos) {
            size_t n0 = out->n;
            int hit_to = 0;
            int rc = read_rows(a, from, to, out, &hit_to, e);
            if (rc != 0) {
                close_file(a);
                return rc;
            }
            if (!a->zs) {
                a->done_until = a->cur.to;   /* the file has ended */
            }
            if (out->n > n0) {
                record(a, a->cur.kind, a->cur_name, a->cur_micro, out, n0);
                int64_t upto = interval_next(iv, out->rows[out->n - 1].open_time);
                if (hit_to || (!a->zs && a->cur.to >= to)) {
                    *done = SOURCE_DONE;
                    upto = to;
                }
                progress_add(&a->progress, (long long)(out->n - n0), 0,
                             interval_count(iv, call_from, upto));
                return 0;
            }
            if (hit_to) {
                *done = SOURCE_DONE;
                return 0;
            }
            from = a->cur.to > from ? a->cur.to : from;   /* nothing more in this file */
            close_file(a);
            continue;
        }
        close_file(a);
        if (from < a->done_until) {
            from = a->done_until;
            continue;
        }
        struct archive_choice ch;
        archive_choose(a->use, iv, from, to, a->now, a->min_candles, a->skip_month,
                       a->skip_day, &ch);
        if (ch.kind == ARCH_MONTHLY || ch.kind == ARCH_DAILY) {
            int rc = open_file(a, symbol, iv, &ch, e);
            if (rc == 0) {
                continue;
            }
            /* S3 behind the archive may say 403 for a key it does not have. */
            int missing = e->http == 404 || e->http == 403;
            if (a->use == ARCHIVE_ONLY && missing) {
                char t[32];
                time_format_iso(from, t);
                int daily = iv->ms > 0 && iv->ms <= 86400000LL;
                if (ch.kind == ARCH_MONTHLY && daily) {
                    a->skip_month = ch.from;   /* its days may have daily files */
                    err_clear(e);
                    continue;
                }
                if (ch.kind == ARCH_DAILY && a->now - ch.to < RECENT_MS) {
                    log_warn("archive", "%s %s: no archive file covers %s yet; stopping here, "
                             "the next run continues from the watermark", symbol, iv->name, t);
                    *done = SOURCE_STOPPED;
                    return 0;
                }
                /* Long published, yet missing: go on past it.  It stays a
                 * hole of the warehouse, which `dataops plan` lists and a
                 * run with the API (auto, rest) fills. */
                log_warn("archive", "%s %s: the archive has no file for %s; skipped (a hole "
                         "for `dataops plan`)", symbol, iv->name, t);
                a->done_until = ch.to;
                from = ch.to;
                err_clear(e);
                continue;
            }
            if (a->use == ARCHIVE_AUTO && (missing || rc == ERR_INVALID || rc == ERR_HTTP_FATAL ||
                                           rc == ERR_NET || rc == ERR_HTTP_RETRY)) {
                if (!missing) {
                    log_warn("archive", "%s; falling back for its period", e->msg);
                }
                if (ch.kind == ARCH_MONTHLY) {
                    a->skip_month = ch.from;
                }
                else {
                    a->skip_day = ch.from;
                }
                err_clear(e);
                continue;
            }
            return rc;
        }
        if (ch.kind == ARCH_NONE) {
            char t[32];
            time_format_iso(from, t);
            log_info("archive", "%s %s: no archive file covers %s yet (today, or not "
                     "published); stopping here", symbol, iv->name, t);
            *done = SOURCE_STOPPED;
            return 0;
        }
        /* ARCH_REST */
        size_t n0 = out->n;
        int d = 0;
        int rc = a->rest->ops->fetch(a->rest, symbol, iv, from, ch.to, out, &d, e);
        if (rc != 0) {
            return rc;
        }
        if (d) {
            a->done_until = ch.to;
        }
        if (out->n > n0) {
            record(a, ARCH_REST, "", 0, out, n0);
            *done = d && ch.to >= to ? d : 0;
            return 0;
        }
        if (d == SOURCE_STOPPED) {
            *done = d;
            return 0;
        }
        from = ch.to;
    }
    *done = SOURCE_DONE;
    return 0;
}

static int ar_server_time(struct source *s, int64_t *now, struct err *e)
{
    struct arch *a = (struct arch *)s;
    if (a->rest) {
        int rc = a->rest->ops->server_time(a->rest, now, e);
        if (rc == 0) {
            a->now = *now;
        }
        return rc;
    }
    /* Archive alone asks no API: our clock decides what is closed and
     * which files may be published. */
    *now = time_now_ms();
    a->now = *now;
    return 0;
}

static int ar_check_symbols(struct source *s, char *const *symbols, size_t n, struct err *e)
{
    struct arch *a = (struct arch *)s;
    if (a->rest) {
        return a->rest->ops->check_symbols(a->rest, symbols, n, e);
    }
    return 0;
}

static void ar_plan_range(struct source *s, const struct source_range *r, size_t n)
{
    struct arch *a = (struct arch *)s;
    progress_plan(&a->progress, r, n);
}

static const char *kind_name(enum archive_kind k)
{
    return k == ARCH_MONTHLY ? "archive-monthly" : k == ARCH_DAILY ? "archive-daily" : "rest";
}

static void ar_stats(struct source *s, char *out, size_t n)
{
    struct arch *a = (struct arch *)s;
    progress_finish(&a->progress);   /* the extract is over; see bn_stats */
    struct buf b;
    buf_init(&b, n > 1 ? n - 1 : 1);
    int rc = buf_printf(&b, "\"source\":\"%s\",\"archive_used\":%s,\"files_monthly\":%ld,"
                        "\"files_daily\":%ld,\"files_missing\":%ld,\"files_refused\":%ld,"
                        "\"microsecond_files\":%ld,\"archive_bytes\":%lld,"
                        "\"rows_archive\":%lld,\"rows_rest\":%lld",
                        a->rest ? "auto" : "archive", a->use != ARCHIVE_OFF ? "true" : "false",
                        a->files_monthly, a->files_daily, a->missing, a->refused,
                        a->micro_files, a->archive_bytes, a->rows_archive, a->rows_rest);
    if (a->rest) {
        char rest[1024];
        a->rest->ops->stats(a->rest, rest, sizeof(rest));
        rc |= buf_printf(&b, ",\"rest\":{%s}", rest);
    }
    rc |= buf_puts(&b, ",\"loaded\":[");
    for (size_t i = 0; i < a->nrec && rc == 0; i++) {
        const struct rec *r = &a->recs[i];
        char f[32], l[32];
        time_format_iso(r->first, f);
        time_format_iso(r->last, l);
        rc |= buf_printf(&b, "%s{\"symbol\":\"%s\",\"interval\":\"%s\",\"source\":\"%s\","
                         "\"first_open\":\"%s\",\"last_open\":\"%s\",\"rows\":%lld", i ? "," : "",
                         r->symbol, r->iv->name, kind_name(r->kind), f, l, r->rows);
        if (r->kind != ARCH_REST) {
            rc |= buf_printf(&b, ",\"file\":\"%s\",\"time_unit\":\"%s\"", r->file,
                             r->micro ? "us (converted to ms)" : "ms");
        }
        rc |= buf_putc(&b, '}');
    }
    rc |= buf_printf(&b, "],\"loaded_not_listed\":%lld", a->rec_dropped);
    snprintf(out, n, "%s", rc == 0 && b.data ? b.data : "\"source\":\"archive\",\"stats\":"
                                                      "\"truncated\"");
    buf_free(&b);
}

static void ar_close(struct source *s)
{
    struct arch *a = (struct arch *)s;
    if (!a) {
        return;
    }
    progress_finish(&a->progress);
    close_file(a);
    source_close(a->rest);
    fetcher_destroy(a->f);
    http_resp_free(&a->sum_job.resp);
    http_resp_free(&a->zip_job.resp);
    free(a->recs);
    free(a);
}

static int open_mode(const struct config *c, int auto_mode, struct source **out,
                     struct err *e)
{
    struct arch *a = calloc(1, sizeof(*a));
    if (!a || !(a->recs = calloc(MAX_RECORDS, sizeof(*a->recs)))) {
        free(a);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    a->base.ops = auto_mode ? &source_auto_ops : &source_archive_ops;
    a->use = archive_use_of(c);
    snprintf(a->base_url, sizeof(a->base_url), "%s", c->text[S_ARCHIVE_URL]);
    size_t n = strlen(a->base_url);
    while (n > 0 && a->base_url[n - 1] == '/') {
        a->base_url[--n] = '\0';
    }
    a->min_candles = c->archive_min_candles;
    a->now = time_now_ms();
    a->skip_month = a->skip_day = a->done_until = INT64_MIN;
    progress_init(&a->progress, c);
    http_resp_init(&a->sum_job.resp, CHECKSUM_MAX);
    http_resp_init(&a->zip_job.resp, ZIP_MAX);
    long total = c->http_timeout_s > 300 ? c->http_timeout_s : 300;
    struct fetcher_opts o = {
        .label = a->base_url,
        .max_in_flight = 2,
        .retries = c->retries,
        .connect_timeout_s = c->connect_timeout_s,
        .total_timeout_s = total,
        .stall_timeout_s = c->http_timeout_s < 15 ? c->http_timeout_s : 15,
    };
    int rc = fetcher_create(&o, NULL, &a->f, e);
    if (rc == 0 && auto_mode) {
        rc = source_binance_open_shared(c, &a->progress, &a->rest, e);
        if (rc == 0 && a->use == ARCHIVE_OFF) {
            log_info("archive", "auto: archive files are not used with this API base URL "
                     "(not one of Binance's hosts) unless DATAOPS_ARCHIVE_URL is set; the "
                     "API serves every range");
        }
    }
    if (rc != 0) {
        ar_close(&a->base);
        return rc;
    }
    fetcher_set_tick(a->f, progress_tick, &a->progress);
    *out = &a->base;
    return 0;
}

static int ar_open(const struct config *c, struct source **out, struct err *e)
{
    return open_mode(c, 0, out, e);
}

static int auto_open(const struct config *c, struct source **out, struct err *e)
{
    return open_mode(c, 1, out, e);
}

/* Archive alone cannot tell a file it skipped (missing) from an exchange
 * outage, so it lets the warehouse remember no gap (caps 0). */
const struct source_ops source_archive_ops = {
    .name = "archive",
    .caps = 0,
    .open = ar_open,
    .server_time = ar_server_time,
    .check_symbols = ar_check_symbols,
    .fetch = ar_fetch,
    .stats = ar_stats,
    .close = ar_close,
    .plan_range = ar_plan_range,
};

const struct source_ops source_auto_ops = {
    .name = "auto",
    .caps = SOURCE_CAP_GAPS_ARE_REAL,
    .open = auto_open,
    .server_time = ar_server_time,
    .check_symbols = ar_check_symbols,
    .fetch = ar_fetch,
    .stats = ar_stats,
    .close = ar_close,
    .plan_range = ar_plan_range,
};
