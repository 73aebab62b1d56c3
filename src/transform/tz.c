/*
 * tz.c - see tz.h.  Offsets are cached per quarter hour of UTC: every zone
 * transition in tzdata falls on a quarter-hour boundary, so rows in the
 * same quarter hour share one localtime_r() call.
 */
#include "transform/tz.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/timeutil.h"

#define QUARTER_MS (15 * MS_PER_MIN)

static int64_t cached_quarter = INT64_MIN;
static long cached_offset;

int tz_valid(const char *name)
{
    if (!name || !*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 64) {
        return 0;
    }
    if (strcmp(name, "UTC") == 0) {
        return 1;
    }
    for (const char *p = name; *p; p++) {
        if (!(*p == '/' || *p == '_' || *p == '-' || *p == '+' ||
              (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            return 0;
        }
    }
    const char *dir = getenv("TZDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    /* A zone is a regular file starting with the TZif magic: "Asia" (a
     * directory) or "leapseconds" would make glibc fall back to UTC. */
    FILE *f = fopen(path, "rb");
    if (!f) {
        return 0;
    }
    char magic[4] = {0};
    struct stat st;
    int ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
             fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return ok;
}

int tz_init(const char *name)
{
    if (!tz_valid(name)) {
        return -1;
    }
    if (setenv("TZ", name, 1) != 0) {
        return -1;
    }
    tzset();
    cached_quarter = INT64_MIN;
    return 0;
}

long tz_offset_at(int64_t ms)
{
    int64_t q = floor_div(ms, QUARTER_MS);
    if (q != cached_quarter) {
        time_t t = (time_t)floor_div(ms, 1000);
        struct tm tm;
        if (localtime_r(&t, &tm)) {
            cached_offset = tm.tm_gmtoff;
        }
        else {
            cached_offset = 0;
        }
        cached_quarter = q;
    }
    return cached_offset;
}

size_t tz_format_local(int64_t ms, char out[32])
{
    long off = tz_offset_at(ms);
    time_format_sql(ms + (int64_t)off * 1000, out);
    char sign = off < 0 ? '-' : '+';
    long a = off < 0 ? -off : off;
    long hh = a / 3600;
    long mm = a / 60 % 60;
    out[23] = sign;
    out[24] = (char)('0' + hh / 10);
    out[25] = (char)('0' + hh % 10);
    out[26] = ':';
    out[27] = (char)('0' + mm / 10);
    out[28] = (char)('0' + mm % 10);
    out[29] = '\0';
    return 29;
}
