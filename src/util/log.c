/*
 * log.c - see log.h.  The pipeline logs from its main thread, but the
 * warehouse's loader thread (load/wh_async.c) runs backend code that may
 * log too: one mutex keeps the secrets list, the capture buffer and each
 * line whole.
 */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/timeutil.h"

/* Settings' secrets come first; short-lived tokens may add many more over a
 * long run, so the list is generous (a linear scan per line is cheap next
 * to formatting it). */
#define MAX_SECRETS 512

static struct {
    enum log_level level;
    int json;
    char run_id[40];
    char *secrets[MAX_SECRETS];
    int nsecrets;
    struct buf *capture;
} L = {LOG_INFO, 0, "", {0}, 0, NULL};

static pthread_mutex_t L_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(enum log_format fmt, enum log_level level)
{
    L.level = level;
    if (fmt == LOG_FORMAT_AUTO) {
        L.json = !isatty(STDERR_FILENO);
    }
    else {
        L.json = fmt == LOG_FORMAT_JSON;
    }
}

int log_enabled(enum log_level level)
{
    return level >= L.level && level < LOG_OFF;
}

void log_set_run_id(const char *run_id)
{
    pthread_mutex_lock(&L_mu);
    snprintf(L.run_id, sizeof(L.run_id), "%s", run_id ? run_id : "");
    pthread_mutex_unlock(&L_mu);
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4) {
        return;
    }
    pthread_mutex_lock(&L_mu);
    int known = L.nsecrets == MAX_SECRETS;
    for (int i = 0; i < L.nsecrets && !known; i++) {
        known = strcmp(L.secrets[i], secret) == 0;
    }
    char *copy = known ? NULL : strdup(secret);
    if (copy) {
        L.secrets[L.nsecrets++] = copy;
    }
    pthread_mutex_unlock(&L_mu);
}

void log_capture(struct buf *b)
{
    pthread_mutex_lock(&L_mu);
    L.capture = b;
    pthread_mutex_unlock(&L_mu);
}

void log_shutdown(void)
{
    pthread_mutex_lock(&L_mu);
    for (int i = 0; i < L.nsecrets; i++) {
        free(L.secrets[i]);
    }
    L.nsecrets = 0;
    L.capture = NULL;
    pthread_mutex_unlock(&L_mu);
}

int log_format_parse(const char *s)
{
    if (strcmp(s, "json") == 0) {
        return LOG_FORMAT_JSON;
    }
    if (strcmp(s, "text") == 0) {
        return LOG_FORMAT_TEXT;
    }
    if (strcmp(s, "auto") == 0) {
        return LOG_FORMAT_AUTO;
    }
    return -1;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Replace every registered secret in s (in place) with "****". */
static void mask_secrets(char *s)
{
    for (int i = 0; i < L.nsecrets; i++) {
        size_t n = strlen(L.secrets[i]);
        char *p = s;
        while ((p = strstr(p, L.secrets[i])) != NULL) {
            memmove(p + 4, p + n, strlen(p + n) + 1);
            memcpy(p, "****", 4);
            p += 4;
        }
    }
}

void log_write(enum log_level level, const char *comp, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&L_mu);
    mask_secrets(msg);

    char ts[32];
    time_format_iso(time_now_ms(), ts);

    struct buf line;
    buf_init(&line, 0);
    buf_puts(&line, "{\"ts\":\"");
    buf_puts(&line, ts);
    buf_printf(&line, "\",\"level\":\"%s\",\"comp\":\"", level_names[level]);
    buf_json_escape(&line, comp, strlen(comp));
    if (L.run_id[0]) {
        buf_printf(&line, "\",\"run_id\":\"%s", L.run_id);
    }
    buf_puts(&line, "\",\"msg\":\"");
    buf_json_escape(&line, msg, strlen(msg));
    buf_puts(&line, "\"}\n");

    if (line.data) {
        if (L.json) {
            fputs(line.data, stderr);
        }
        else {
            fprintf(stderr, "%s %-5s [%s] %s\n", ts, level_names[level], comp, msg);
        }
        if (L.capture) {
            /* A full capture buffer drops lines rather than failing the run. */
            buf_append(L.capture, line.data, line.len);
        }
    }
    pthread_mutex_unlock(&L_mu);
    buf_free(&line);
}
