/*
 * err.c - the tables generated from ERR_MAP and the message helpers.
 */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int retry;
    int exitc;
    const char *text;
} err_table[] = {
#define X(name, retry, exitc, text) {#name, retry, exitc, text},
    ERR_MAP(X)
#undef X
};

void err_clear(struct err *e)
{
    if (e) {
        e->code = ERR_OK;
        e->http = 0;
        e->msg[0] = '\0';
    }
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
    if (!e) {
        return ERR_OK;
    }
    char prefix[256];
    char old[sizeof(e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
    return e->code;
}

static int in_range(int code)
{
    return code >= 0 && code < ERR__COUNT;
}

const char *err_name(int code)
{
    return in_range(code) ? err_table[code].name : "UNKNOWN";
}

const char *err_text(int code)
{
    return in_range(code) ? err_table[code].text : "unknown error";
}

int err_retryable(int code)
{
    return in_range(code) ? err_table[code].retry : 0;
}

int err_exit_code(int code)
{
    return in_range(code) ? err_table[code].exitc : 1;
}
