/*
 * source_auto.c - the decision behind --source auto (and archive): which
 * open times come from a monthly file, which from a daily file, which from
 * the REST API.  The archive source follows it while fetching and the
 * planner follows it to count requests, so both say the same.
 *
 * The rule, in words: a file is used when it is published and, for auto,
 * when the part of its period the run needs holds more candles than
 * DATAOPS_ARCHIVE_MIN_CANDLES (1000 by default: when the API would need at
 * least two requests for it).  Files cost no request weight at all, so they
 * also leave the per-IP budget to everything else behind the same address.
 * What no file covers (today, files not published yet or missing) comes
 * from the API, in stretches that end where a file could take over.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "extract/archive.h"
#include "extract/source.h"
#include "util/timeutil.h"

/* Binance's own API hosts (binance-api-facts.md section 1): the archive
 * holds their data.  Another base URL (a fake exchange, a proxy, the
 * testnet) keeps auto on the API unless DATAOPS_ARCHIVE_URL is set. */
static const char *const binance_hosts[] = {
    "api.binance.com", "api1.binance.com", "api2.binance.com", "api3.binance.com",
    "api4.binance.com", "api-gcp.binance.com", "data-api.binance.vision", NULL,
};

static int is_binance_host(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *at = strchr(p, '@');
    if (at && at < p + strcspn(p, "/")) {
        p = at + 1;
    }
    size_t n = strcspn(p, ":/?#");
    for (int i = 0; binance_hosts[i]; i++) {
        if (strlen(binance_hosts[i]) == n && strncasecmp(p, binance_hosts[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

enum archive_use archive_use_of(const struct config *c)
{
    const char *s = c->text[S_SOURCE];
    if (strcmp(s, "archive") == 0) {
        return ARCHIVE_ONLY;
    }
    if (strcmp(s, "auto") == 0 &&
        (c->source[S_ARCHIVE_URL] != SRC_DEFAULT || is_binance_host(c->text[S_BASE_URL]))) {
        return ARCHIVE_AUTO;
    }
    return ARCHIVE_OFF;
}

static int64_t month_start_of(int64_t t, int add)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(floor_div(t, MS_PER_DAY), &y, &m, &d);
    int64_t mm = (int64_t)m - 1 + add;
    y += floor_div(mm, 12);
    mm -= floor_div(mm, 12) * 12;
    return days_from_civil(y, (unsigned)mm + 1, 1) * MS_PER_DAY;
}

/* Daily files exist for 1s .. 1d; monthly ones for everything but 1s,
 * whose month (2.6 million rows) is larger than a file we hold in memory. */
static int has_daily(const struct interval *iv)
{
    return iv->ms > 0 && iv->ms <= MS_PER_DAY;
}

static int has_monthly(const struct interval *iv)
{
    return iv->ms != 1000;
}

void archive_choose(enum archive_use use, const struct interval *iv, int64_t from, int64_t to,
                    int64_t now, long min_candles, int64_t skip_month, int64_t skip_day,
                    struct archive_choice *out)
{
    int64_t ms = month_start_of(from, 0);
    int64_t me = month_start_of(from, 1);
    int64_t ds = floor_div(from, MS_PER_DAY) * MS_PER_DAY;
    int64_t de = ds + MS_PER_DAY;
    int only = use == ARCHIVE_ONLY;
    if (use != ARCHIVE_OFF) {
        /* A month's file appears on the first Monday after it, at most a
         * week after its end; a day's file the day after. */
        if (has_monthly(iv) && ms != skip_month && now >= me + 7 * MS_PER_DAY &&
            (only || interval_count(iv, from, me < to ? me : to) > min_candles)) {
            out->kind = ARCH_MONTHLY;
            out->from = ms;
            out->to = me;
            return;
        }
        if (has_daily(iv) && ds != skip_day && now >= de &&
            (only || interval_count(iv, from, de < to ? de : to) > min_candles)) {
            out->kind = ARCH_DAILY;
            out->from = ds;
            out->to = de;
            return;
        }
        if (only) {
            out->kind = ARCH_NONE;
            out->from = from;
            out->to = to;
            return;
        }
    }
    /* The API, up to where a file could take over. */
    int64_t end = to;
    if (use == ARCHIVE_AUTO) {
        if (has_daily(iv) && interval_count(iv, ds, de) > min_candles) {
            end = de;
        }
        else if (has_monthly(iv) && interval_count(iv, ms, me) > min_candles) {
            end = me;
        }
    }
    out->kind = ARCH_REST;
    out->from = from;
    out->to = end < to ? end : to;
}

void archive_file_name(const char *symbol, const struct interval *iv,
                       const struct archive_choice *ch, char *name, size_t n)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(floor_div(ch->from, MS_PER_DAY), &y, &m, &d);
    if (ch->kind == ARCH_DAILY) {
        snprintf(name, n, "%s-%s-%04lld-%02u-%02u.zip", symbol, iv->path_name, (long long)y, m,
                 d);
    }
    else {
        snprintf(name, n, "%s-%s-%04lld-%02u.zip", symbol, iv->path_name, (long long)y, m);
    }
}

void archive_file_path(const char *symbol, const struct interval *iv,
                       const struct archive_choice *ch, char *path, size_t n)
{
    char name[128];
    archive_file_name(symbol, iv, ch, name, sizeof(name));
    snprintf(path, n, "data/spot/%s/klines/%s/%s/%s",
             ch->kind == ARCH_DAILY ? "daily" : "monthly", symbol, iv->path_name, name);
}
