/*
 * failpoint.c - see failpoint.h.
 */
#include "util/failpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

const char *const failpoint_names[] = {
    "extract.page",          /* after a page was fetched, before it is used */
    "lake.raw.written",      /* raw object written, raw load not started */
    "wh.raw.inside",         /* rows inserted, raw transaction not committed */
    "wh.raw.committed",      /* raw batch committed, transform not started */
    "lake.transformed.written", /* transformed object written, load not started */
    "wh.transformed.inside", /* rows inserted, transformed txn not committed */
    "wh.transformed.committed", /* transformed batch committed */
    "metadata.write",        /* while writing the run's artifacts */
    "bq.staged",             /* BigQuery: batch in its staging table, not merged */
    NULL,
};

int failpoint_active;
static char *spec_copy;

void failpoint_init(const char *spec)
{
    free(spec_copy);
    spec_copy = NULL;
    failpoint_active = 0;
    if (spec && *spec) {
        spec_copy = strdup(spec);
        failpoint_active = spec_copy != NULL;
    }
}

void failpoint_shutdown(void)
{
    failpoint_init(NULL);
}

/* Find name in the comma list; return its action ("kill" if none given). */
static const char *lookup(const char *name, char *action, size_t n)
{
    size_t nl = strlen(name);
    const char *p = spec_copy;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= nl && strncmp(p, name, nl) == 0 && (len == nl || p[nl] == ':')) {
            if (len == nl) {
                snprintf(action, n, "kill");
            }
            else {
                snprintf(action, n, "%.*s", (int)(len - nl - 1), p + nl + 1);
            }
            return action;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int failpoint_hit(const char *name, struct err *e)
{
    char action[16];
    if (!lookup(name, action, sizeof(action))) {
        return 0;
    }
    log_warn("failpoint", "failpoint %s triggered (%s)", name, action);
    if (strcmp(action, "error") == 0) {
        return err_set(e, ERR_IO, "failpoint %s triggered", name);
    }
    fflush(NULL);
    if (strcmp(action, "exit") == 0) {
        _exit(1);
    }
    raise(SIGKILL);
    _exit(137);
}
