/*
 * check.c - `dataops check`: before any data moves, verify that the
 * exchange answers (and how far its clock is from ours), that every symbol
 * is listed, that the lake accepts objects and that the warehouse opens
 * with working credentials, and say what is missing.  Nothing is written:
 * no table is created, no object is left behind, no run is recorded.
 */
#include "check.h"

#include <stdio.h>
#include <string.h>

#include "extract/source.h"
#include "load/lake.h"
#include "load/wh.h"
#include "util/log.h"
#include "util/timeutil.h"

static int report(const char *what, const char *target, int rc, const struct err *e,
                  const char *detail)
{
    if (rc == 0) {
        printf("  ok    %-10s %s%s%s\n", what, target, detail[0] ? ": " : "", detail);
    }
    else {
        printf("  FAIL  %-10s %s: %s\n", what, target, e->msg);
    }
    return rc;
}

int check_run(const struct config *cfg)
{
    int worst = 0;
    struct err e;
    char detail[256];
    char shown[512];
    printf("dataops check\n");

    /* The exchange and the symbols. */
    struct source *src = NULL;
    err_clear(&e);
    config_mask_url(cfg->text[S_SOURCE][0] == 'f' ? cfg->text[S_SOURCE] : cfg->text[S_BASE_URL],
                    shown, sizeof(shown));
    int rc = source_open(cfg, &src, &e);
    int64_t server = 0;
    detail[0] = '\0';
    if (rc == 0) {
        int64_t before = time_now_ms();
        rc = src->ops->server_time(src, &server, &e);
        int64_t after = time_now_ms();
        if (rc == 0) {
            char t[32];
            time_format_iso(server, t);
            snprintf(detail, sizeof(detail), "clock %s, %+lld ms from ours", t,
                     (long long)(server - (before + after) / 2));
        }
    }
    if (report("exchange", shown, rc, &e, detail) != 0) {
        worst = 1;
    }
    else {
        err_clear(&e);
        rc = src->ops->check_symbols(src, cfg->symbols, cfg->nsymbols, &e);
        char list[256] = "";
        for (size_t i = 0; i < cfg->nsymbols; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof(list) - n, "%s%s", i ? "," : "", cfg->symbols[i]);
        }
        if (report("symbols", list, rc, &e, "listed") != 0) {
            worst = rc == ERR_CONFIG ? 2 : 1;
        }
    }
    source_close(src);

    /* The lake. */
    struct lake *lk = NULL;
    err_clear(&e);
    config_mask_url(cfg->text[S_LAKE], shown, sizeof(shown));
    rc = lake_open(cfg->text[S_LAKE], cfg, &lk, &e);
    if (rc == 0 && lk->ops->check) {
        rc = lk->ops->check(lk, &e);
    }
    if (report("lake", shown, rc, &e, "objects can be created") != 0 && worst == 0) {
        worst = err_exit_code(e.code) == 2 ? 2 : 1;
    }
    lake_close(lk);

    /* The warehouse. */
    struct wh *w = NULL;
    struct wh_names names = {
        cfg->text[S_RAW_DATASET], cfg->text[S_RAW_TABLE], cfg->text[S_TRANSFORMED_DATASET],
        cfg->text[S_TRANSFORMED_TABLE], cfg->text[S_LOCAL_TIME_COLUMN], cfg,
    };
    err_clear(&e);
    config_mask_url(cfg->text[S_WAREHOUSE], shown, sizeof(shown));
    rc = wh_open(cfg->text[S_WAREHOUSE], &names, &w, &e);
    if (rc == 0 && w->ops->check) {
        rc = w->ops->check(w, &e);
    }
    if (report("warehouse", shown, rc, &e, "reachable") != 0 && worst == 0) {
        worst = err_exit_code(e.code) == 2 ? 2 : 1;
    }
    wh_close(w);

    printf(worst == 0 ? "all checks passed\n" : "some checks failed\n");
    return worst;
}
