/*
 * lake.c - the lake scheme registry and the thin dispatch helpers.
 */
#include "load/lake.h"

#include <stdio.h>
#include <string.h>

#include "conf/config.h"

static const struct lake_ops *const backends[] = {
    &lake_file_ops,
#ifdef DATAOPS_HAVE_S3
    &lake_s3_ops,
#endif
#ifdef DATAOPS_HAVE_GCS
    &lake_gcs_ops,
#endif
    NULL,
};

/* Schemes the project plans but this build does not carry yet. */
static const char *const planned[] = {"gs", "s3", NULL};

/* Copy the scheme of url into out ("" when it has none: a plain path). */
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

static const struct lake_ops *find(const char *url)
{
    char scheme[16];
    scheme_of(url, scheme, sizeof(scheme));
    if (!scheme[0]) {
        return &lake_file_ops;
    }
    for (int i = 0; backends[i]; i++) {
        if (strcmp(backends[i]->scheme, scheme) == 0 ||
            (backends[i]->alias && strcmp(backends[i]->alias, scheme) == 0)) {
            return backends[i];
        }
    }
    return NULL;
}

int lake_url_supported(const char *url_in, char *why, size_t n)
{
    /* Messages show the URL with any password masked. */
    char url[512];
    config_mask_url(url_in, url, sizeof(url));
    if (!url[0]) {
        snprintf(why, n, "empty lake location");
        return 0;
    }
    if (find(url)) {
        return 1;
    }
    char scheme[16];
    scheme_of(url, scheme, sizeof(scheme));
    for (int i = 0; planned[i]; i++) {
        if (strcmp(planned[i], scheme) == 0) {
            snprintf(why, n, "'%.200s': %s:// lakes are not supported by this build", url,
                     scheme);
            return 0;
        }
    }
    snprintf(why, n, "'%.200s' has an unknown URL scheme '%.20s' (supported: a directory, "
             "file:///path%s%s)", url, scheme[0] ? scheme : "?",
#ifdef DATAOPS_HAVE_S3
             ", s3://bucket/prefix"
#else
             ""
#endif
             ,
#ifdef DATAOPS_HAVE_GCS
             ", gs://bucket"
#else
             ""
#endif
    );
    return 0;
}

int lake_open(const char *url, const struct config *cfg, struct lake **out, struct err *e)
{
    char why[256];
    if (!lake_url_supported(url, why, sizeof(why))) {
        return err_set(e, ERR_CONFIG, "%s", why);
    }
    return find(url)->open(url, cfg, out, e);
}

void lake_close(struct lake *lk)
{
    if (lk) {
        lk->ops->close(lk);
    }
}

int lake_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 1024 || key[0] == '/' || key[n - 1] == '/') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7e || c == '\\') {
            return 0;
        }
        if (c == '/' && key[i + 1] == '/') {
            return 0;
        }
    }
    const char *p = key;
    while (p) {
        if ((p[0] == '.' && (p[1] == '/' || p[1] == '\0')) ||
            (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))) {
            return 0;
        }
        p = strchr(p, '/');
        if (p) {
            p++;
        }
    }
    return 1;
}

int lake_writer_open(struct lake *lk, const char *key, struct lake_writer **out,
                     struct err *e)
{
    if (!lake_key_valid(key)) {
        return err_set(e, ERR_LAKE, "invalid lake object key '%.200s'", key);
    }
    return lk->ops->writer_open(lk, key, out, e);
}

int lake_write(struct lake_writer *w, const void *data, size_t n, struct err *e)
{
    return w->ops->write(w, data, n, e);
}

int lake_commit(struct lake_writer *w, struct err *e)
{
    return w->ops->commit(w, e);
}

void lake_abort(struct lake_writer *w)
{
    if (w) {
        w->ops->abort(w);
    }
}

void lake_uri(const struct lake *lk, const char *key, char *out, size_t n)
{
    lk->ops->uri(lk, key, out, n);
}

int lake_put(struct lake *lk, const char *key, const void *data, size_t n, struct err *e)
{
    struct lake_writer *w = NULL;
    int rc = lake_writer_open(lk, key, &w, e);
    if (rc == 0) {
        rc = lake_write(w, data, n, e);
        if (rc == 0) {
            return lake_commit(w, e);
        }
        lake_abort(w);
    }
    return rc;
}

const char *lake_content_type(const char *key)
{
    const char *dot = strrchr(key, '.');
    if (dot && strcmp(dot, ".csv") == 0) {
        return "text/csv";
    }
    if (dot && strcmp(dot, ".json") == 0) {
        return "application/json";
    }
    if (dot && strcmp(dot, ".log") == 0) {
        return "text/plain";
    }
    return "application/octet-stream";
}
