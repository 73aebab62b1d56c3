/*
 * dotenv.c - see dotenv.h.  Works on a bounded copy of each line so a
 * hostile file cannot make it read out of bounds.
 */
#include "conf/dotenv.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 8192

static int is_key_start(int c)
{
    return isalpha(c) || c == '_';
}

static int is_key_char(int c)
{
    return isalnum(c) || c == '_';
}

static int parse_line(char *line, size_t lineno, const char *name, char **key, char **val,
                      struct err *e)
{
    char *p = line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0' || *p == '#') {
        *key = NULL;
        return 0;
    }
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
        p += 6;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
    }
    if (!is_key_start((unsigned char)*p)) {
        return err_set(e, ERR_CONFIG, "%s line %zu: expected KEY=VALUE", name, lineno);
    }
    char *k = p;
    while (is_key_char((unsigned char)*p)) {
        p++;
    }
    char *kend = p;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p != '=') {
        return err_set(e, ERR_CONFIG, "%s line %zu: expected '=' after the key", name, lineno);
    }
    *kend = '\0';
    p++;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    char *v = p;
    if (*p == '\'' || *p == '"') {
        char q = *p++;
        char *out = v;
        while (*p && *p != q) {
            if (q == '"' && *p == '\\' && p[1]) {
                p++;
                *out++ = *p == 'n' ? '\n' : *p;
                p++;
                continue;
            }
            *out++ = *p++;
        }
        if (*p != q) {
            return err_set(e, ERR_CONFIG, "%s line %zu: unterminated quoted value", name,
                           lineno);
        }
        p++;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p != '\0' && *p != '#') {
            return err_set(e, ERR_CONFIG, "%s line %zu: unexpected text after the quoted value",
                           name, lineno);
        }
        *out = '\0';
    }
    else {
        char *hash = v;
        while ((hash = strchr(hash, '#')) != NULL) {
            if (hash > v && (hash[-1] == ' ' || hash[-1] == '\t')) {
                *hash = '\0';
                break;
            }
            hash++;
        }
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
            v[--n] = '\0';
        }
    }
    *key = k;
    *val = v;
    return 0;
}

int dotenv_parse(const char *text, size_t len, const char *name, dotenv_cb cb, void *ctx,
                 struct err *e)
{
    char *line = malloc(LINE_MAX_LEN + 1);
    if (!line) {
        return err_set(e, ERR_NOMEM, "out of memory reading %s", name);
    }
    int rc = 0;
    size_t lineno = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t j = i;
        while (j < len && text[j] != '\n') {
            j++;
        }
        lineno++;
        size_t n = j - i;
        if (n > 0 && text[i + n - 1] == '\r') {
            n--;
        }
        if (n > LINE_MAX_LEN) {
            rc = err_set(e, ERR_CONFIG, "%s line %zu: longer than %d bytes", name, lineno,
                         LINE_MAX_LEN);
            break;
        }
        if (memchr(text + i, '\0', n)) {
            rc = err_set(e, ERR_CONFIG, "%s line %zu: contains a NUL byte", name, lineno);
            break;
        }
        memcpy(line, text + i, n);
        line[n] = '\0';
        char *key = NULL;
        char *val = NULL;
        rc = parse_line(line, lineno, name, &key, &val, e);
        if (rc == 0 && key) {
            rc = cb(ctx, key, val);
            if (rc != 0 && e->code == ERR_OK) {
                err_set(e, rc, "%s line %zu: rejected", name, lineno);
            }
        }
        i = j + 1;
    }
    free(line);
    return rc;
}
