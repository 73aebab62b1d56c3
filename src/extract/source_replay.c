/*
 * source_replay.c - klines from a file of recorded /api/v3/klines bodies.
 *
 * --source file://PATH reads one response body per line, as a recorder or
 * shared/bench/gen.py writes them.  PATH may contain {symbol} and
 * {interval} (the interval's file name, 1mo for 1M) so one setting covers
 * many pairs.  Rows before the cursor are skipped silently (replaying a
 * file into a warehouse that already holds part of it is normal); a
 * candle whose close_time is not before the file's modification time was
 * still forming when it was recorded and is dropped.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "extract/kline_parse.h"
#include "extract/source.h"
#include "util/timeutil.h"

#define MAX_LINE (64u << 20)

struct replay {
    struct source base;
    char pattern[PATH_MAX];
    char path[PATH_MAX];     /* file of the current pair */
    FILE *f;
    int64_t recorded_at;     /* the file's mtime, ms */
    char *line;
    size_t line_cap;
    long lines;
    long dropped_unclosed;
};

static void expand(const char *pattern, const char *symbol, const char *iv, char *out,
                   size_t n)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < n;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (strncmp(p, "{symbol}", 8) == 0) {
            rep = symbol;
            skip = 8;
        }
        else if (strncmp(p, "{interval}", 10) == 0) {
            rep = iv;
            skip = 10;
        }
        if (rep) {
            int w = snprintf(out + o, n - o, "%s", rep);
            o += (size_t)w < n - o ? (size_t)w : n - o - 1;
            p += skip;
        }
        else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static int rp_open_pair(struct replay *r, const char *symbol, const struct interval *iv,
                        struct err *e)
{
    char path[PATH_MAX];
    expand(r->pattern, symbol, iv->path_name, path, sizeof(path));
    if (r->f && strcmp(path, r->path) == 0) {
        return 0;
    }
    if (r->f) {
        fclose(r->f);
    }
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->f = fopen(path, "rb");
    if (!r->f) {
        return err_set(e, ERR_CONFIG, "cannot open replay file '%s' (DATAOPS_SOURCE): %s", path,
                       strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(r->f), &st) == 0) {
        r->recorded_at = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    }
    r->lines = 0;
    return 0;
}

static int rp_server_time(struct source *s, int64_t *now, struct err *e)
{
    (void)s;
    (void)e;
    *now = time_now_ms();
    return 0;
}

static int rp_check_symbols(struct source *s, char *const *symbols, size_t n, struct err *e)
{
    (void)s;
    (void)symbols;
    (void)n;
    (void)e;
    return 0;
}

static int rp_fetch(struct source *s, const char *symbol, const struct interval *iv,
                    int64_t from, int64_t to, struct kline_batch *out, int *done,
                    struct err *e)
{
    struct replay *r = (struct replay *)s;
    if (rp_open_pair(r, symbol, iv, e) != 0) {
        return e->code;
    }
    *done = 0;
    for (;;) {
        ssize_t len = getline(&r->line, &r->line_cap, r->f);
        if (len < 0) {
            if (ferror(r->f)) {
                return err_set(e, ERR_IO, "reading replay file '%s': %s", r->path,
                               strerror(errno));
            }
            *done = 1;
            return 0;
        }
        r->lines++;
        if ((size_t)len > MAX_LINE) {
            return err_set(e, ERR_INVALID, "replay file '%s' line %ld is longer than %u bytes",
                           r->path, r->lines, MAX_LINE);
        }
        while (len > 0 && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r')) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        size_t before = out->n;
        if (kline_parse_page(r->line, (size_t)len, out, e) != 0) {
            return err_wrap(e, "replay file '%s' line %ld", r->path, r->lines);
        }
        /* Keep [from, to) and closed candles only, in place. */
        size_t w = before;
        for (size_t i = before; i < out->n; i++) {
            const struct kline *k = &out->rows[i];
            if (k->open_time < from) {
                continue;
            }
            if (k->open_time >= to) {
                *done = 1;
                break;
            }
            if (k->close_time >= r->recorded_at) {
                r->dropped_unclosed++;
                continue;
            }
            if (w != i) {
                out->rows[w] = *k;
            }
            w++;
        }
        out->n = w;
        if (w > before || *done) {
            return 0;
        }
    }
}

static void rp_stats(struct source *s, char *out, size_t n)
{
    struct replay *r = (struct replay *)s;
    snprintf(out, n, "\"source\":\"replay\",\"dropped_unclosed\":%ld", r->dropped_unclosed);
}

static void rp_close(struct source *s)
{
    struct replay *r = (struct replay *)s;
    if (r) {
        if (r->f) {
            fclose(r->f);
        }
        free(r->line);
        free(r);
    }
}

static int rp_open(const struct config *c, struct source **out, struct err *e)
{
    struct replay *r = calloc(1, sizeof(*r));
    if (!r) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    r->base.ops = &source_replay_ops;
    snprintf(r->pattern, sizeof(r->pattern), "%s", c->text[S_SOURCE] + 7);
    *out = &r->base;
    return 0;
}

const struct source_ops source_replay_ops = {
    .name = "replay",
    .open = rp_open,
    .server_time = rp_server_time,
    .check_symbols = rp_check_symbols,
    .fetch = rp_fetch,
    .stats = rp_stats,
    .close = rp_close,
};
