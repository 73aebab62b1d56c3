/*
 * lake.h - the lake seam: immutable objects in a local directory, a Cloud
 * Storage bucket or an S3 bucket, chosen by URL scheme.
 *
 * Contract every backend keeps:
 *   - an object becomes visible only when commit() succeeds, whole, and an
 *     existing object is never overwritten (commit fails instead);
 *   - abort() leaves nothing visible behind;
 *   - writes stream: memory stays bounded whatever the object's size.
 * Keys are relative paths with '/' separators, checked by lake_key_valid().
 */
#ifndef DATAOPS_LAKE_H
#define DATAOPS_LAKE_H

#include <stddef.h>

#include "util/err.h"

struct config;
struct lake;
struct lake_writer;

struct lake_ops {
    const char *scheme;
    const char *alias;   /* a second scheme name for the same backend, or NULL */   /* "file", ... */
    /* Open the lake at url (already known to match the scheme).  cfg gives
     * the backend its other settings; it may be NULL (defaults). */
    int (*open)(const char *url, const struct config *cfg, struct lake **out, struct err *e);
    /* Begin an object at key.  *out is owned by the caller until commit or
     * abort, which both free it. */
    int (*writer_open)(struct lake *lk, const char *key, struct lake_writer **out,
                       struct err *e);
    int (*write)(struct lake_writer *w, const void *data, size_t n, struct err *e);
    /* Make the object durable and visible; ERR_LAKE if the key exists. */
    int (*commit)(struct lake_writer *w, struct err *e);
    void (*abort)(struct lake_writer *w);
    /* The object's full URI, for run records. */
    void (*uri)(const struct lake *lk, const char *key, char *out, size_t n);
    void (*close)(struct lake *lk);
    /* Optional (NULL = opening is the check): verify, without leaving
     * anything behind, that objects can be created where the pipeline will
     * write them; ERR_CONFIG / ERR_HTTP_FATAL naming what is missing. */
    int (*check)(struct lake *lk, struct err *e);
};

/* Every backend's state starts with this. */
struct lake {
    const struct lake_ops *ops;
};

struct lake_writer {
    const struct lake_ops *ops;
};

/* 1 if url names a lake this build can open; else 0 with the reason. */
int lake_url_supported(const char *url, char *why, size_t n);
int lake_open(const char *url, const struct config *cfg, struct lake **out, struct err *e);
void lake_close(struct lake *lk);
int lake_writer_open(struct lake *lk, const char *key, struct lake_writer **out,
                     struct err *e);
int lake_write(struct lake_writer *w, const void *data, size_t n, struct err *e);
int lake_commit(struct lake_writer *w, struct err *e);
void lake_abort(struct lake_writer *w);
void lake_uri(const struct lake *lk, const char *key, char *out, size_t n);
/* Write a whole small object in one call. */
int lake_put(struct lake *lk, const char *key, const void *data, size_t n, struct err *e);
/* Relative, no "..", no empty segments, printable ASCII, at most 1024. */
int lake_key_valid(const char *key);
/* The Content-Type object stores get for a key: by its extension (.csv,
 * .json, .log), application/octet-stream otherwise. */
const char *lake_content_type(const char *key);

extern const struct lake_ops lake_file_ops;
#ifdef DATAOPS_HAVE_S3
extern const struct lake_ops lake_s3_ops;
#endif
#ifdef DATAOPS_HAVE_GCS
extern const struct lake_ops lake_gcs_ops;
#endif

#endif
