/*
 * wh.c - the warehouse scheme registry, and what the backends share:
 * run-id lists, the abandoned run's error, the walk of the holes.
 */
#include "load/wh.h"

#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "load/wh_async.h"
#include "schema/interval.h"

static const struct wh_ops *const backends[] = {
    &wh_sqlite_ops,
#ifdef DATAOPS_HAVE_PG
    &wh_pg_ops,
#endif
#ifdef DATAOPS_HAVE_BQ
    &wh_bq_ops,
#endif
    NULL,
};

static const char *const planned[] = {"postgresql", "postgres", "bigquery", NULL};

static void scheme_of(const char *url, char *out, size_t n)
{
    const char *sep = strstr(url, "://");
    if (!sep || (size_t)(sep - url) >= n) {
        out[0] = '\0';
        return;
    }
    memcpy(out, url, (size_t)(sep - url));
    out[sep - url] = '\0';
}

static const struct wh_ops *find(const char *url)
{
    char scheme[16];
    scheme_of(url, scheme, sizeof(scheme));
    if (!scheme[0]) {
        return &wh_sqlite_ops;
    }
    for (int i = 0; backends[i]; i++) {
        if (strcmp(backends[i]->scheme, scheme) == 0 ||
            (backends[i]->alias && strcmp(backends[i]->alias, scheme) == 0)) {
            return backends[i];
        }
    }
    return NULL;
}

int wh_url_supported(const char *url_in, char *why, size_t n)
{
    /* Messages show the URL with any password masked. */
    char url[512];
    config_mask_url(url_in, url, sizeof(url));
    if (!url[0]) {
        snprintf(why, n, "empty warehouse location");
        return 0;
    }
    if (find(url)) {
        return 1;
    }
    char scheme[16];
    scheme_of(url, scheme, sizeof(scheme));
    for (int i = 0; planned[i]; i++) {  /* reached only when not compiled in */
        if (strcmp(planned[i], scheme) == 0) {
            snprintf(why, n, "'%.200s': %s:// warehouses are not supported by this build",
                     url, scheme);
            return 0;
        }
    }
    snprintf(why, n, "'%.200s' has an unknown URL scheme '%.20s' (supported: a path, "
             "sqlite:///path%s%s)", url, scheme[0] ? scheme : "?",
#ifdef DATAOPS_HAVE_PG
             ", postgresql://..."
#else
             ""
#endif
             ,
#ifdef DATAOPS_HAVE_BQ
             ", bigquery://PROJECT"
#else
             ""
#endif
    );
    return 0;
}

const char *wh_range_kind_name(enum wh_range_kind kind)
{
    return kind == WH_RANGE_KNOWN_GAP ? "known_gap"
           : kind == WH_RANGE_REJECTED ? "rejected" : "transform";
}

void wh_note_id(char *out, size_t n, const char *id)
{
    size_t len = strlen(out);
    if (n < 4 || (len >= 3 && strcmp(out + len - 3, "...") == 0)) {
        return;
    }
    size_t need = strlen(id) + (len ? 2 : 0);
    if (len + need + 6 > n) {   /* leaves room for ", ..." and the NUL */
        snprintf(out + len, n - len, "%s...", len ? ", " : "");
        return;
    }
    snprintf(out + len, n - len, "%s%s", len ? ", " : "", id);
}

void wh_abandoned_error(char *out, size_t n, const char *run_id)
{
    snprintf(out, n, "no end was recorded: the process was killed, crashed or lost its host"
             " (found by run %s)", run_id);
}

void wh_holes_begin(struct wh_holes_walk *h, const struct interval *iv, int64_t from,
                    int64_t to)
{
    h->iv = iv;
    h->start = interval_align_up(iv, from);
    h->to = to;
    h->rows = 0;
}

int wh_holes_row(struct wh_holes_walk *h, int has_prev, int64_t prev, int64_t cur, int last,
                 wh_range_cb cb, void *ctx)
{
    const struct interval *iv = h->iv;
    int64_t expect = has_prev ? interval_next(iv, interval_align_down(iv, prev)) : h->start;
    int stop = 0;
    h->rows++;
    if (cur > expect) {
        stop = cb(ctx, expect, cur);
    }
    if (!stop && last) {
        int64_t after = interval_next(iv, interval_align_down(iv, cur));
        if (after < h->to) {
            stop = cb(ctx, after, h->to);
        }
    }
    return stop;
}

int wh_holes_end(struct wh_holes_walk *h, wh_range_cb cb, void *ctx)
{
    return h->rows == 0 && h->start < h->to ? cb(ctx, h->start, h->to) : 0;
}

int wh_open(const char *url, const struct wh_names *names, struct wh **out, struct err *e)
{
    char why[256];
    if (!wh_url_supported(url, why, sizeof(why))) {
        return err_set(e, ERR_CONFIG, "%s", why);
    }
    const struct wh_ops *ops = find(url);
    struct wh *w = NULL;
    if (ops->open(url, names, &w, e) != 0) {
        return e->code;
    }
    if (!(ops->caps & WH_CAP_ASYNC_PUTS)) {
        *out = w;
        return 0;
    }
    if (wh_async_wrap(w, out, e) != 0) {
        ops->close(w);
        return e->code;
    }
    return 0;
}

void wh_close(struct wh *w)
{
    if (w) {
        w->ops->close(w);
    }
}
