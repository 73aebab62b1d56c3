/*
 * err.h - one error vocabulary for the whole program.
 *
 * Every fallible function returns 0 on success or an ERR_* code, and fills a
 * caller-owned struct err with a message meant for the operator.  The code
 * says what the caller should do (retry, give up, exit with which status);
 * the message says what happened.  Only the lowest layer that knows the
 * detail writes the message; callers may prefix context with err_wrap().
 *
 * The list is an X-macro so that the enum, the names and the classification
 * cannot drift apart.  Columns: name, retryable, process exit code.
 */
#ifndef DATAOPS_ERR_H
#define DATAOPS_ERR_H

#include <stdarg.h>

#define ERR_MAP(X)                                                      \
    X(OK, 0, 0, "ok")                                                   \
    X(CONFIG, 0, 2, "configuration error")                              \
    X(USAGE, 0, 2, "usage error")                                       \
    X(IO, 0, 1, "i/o error")                                            \
    X(NOMEM, 0, 1, "out of memory")                                     \
    X(NET, 1, 1, "network error")                                       \
    X(HTTP_RETRY, 1, 1, "transient HTTP error")                         \
    X(HTTP_FATAL, 0, 1, "HTTP request refused")                         \
    X(RATE_LIMIT, 1, 1, "rate limited")                                 \
    X(BANNED, 0, 1, "IP banned by the exchange")                        \
    X(API, 0, 1, "exchange API error")                                  \
    X(INVALID, 0, 1, "invalid data")                                    \
    X(WAREHOUSE, 0, 1, "warehouse error")                               \
    X(LAKE, 0, 1, "lake error")                                         \
    X(QUALITY, 0, 3, "data-quality gate failed")                        \
    X(LOCKED, 0, 4, "another run holds the warehouse lock")             \
    X(INTERRUPTED, 0, 1, "interrupted")

enum err_code {
#define X(name, retry, exitc, text) ERR_##name,
    ERR_MAP(X)
#undef X
    ERR__COUNT
};

struct err {
    int code;      /* enum err_code */
    int http;      /* HTTP status when the error came from a response, else 0 */
    char msg[512];
};

/* Reset to ERR_OK with an empty message. */
void err_clear(struct err *e);

/* Set code and a printf-style message; returns code so callers can
 * `return err_set(e, ERR_IO, "...")`.  e may be NULL. */
int err_set(struct err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with context ("loading raw: <old msg>"),
 * keeping the code.  Returns the code. */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *err_name(int code);        /* "CONFIG", "NET", ... */
const char *err_text(int code);        /* human description of the class */
int err_retryable(int code);           /* 1 if a retry may succeed */
int err_exit_code(int code);           /* process exit status for this class */

#endif
