/*
 * lake_gcs.h - what the Cloud Storage lake (gs://) offers beyond the lake
 * seam: the preflight that `dataops check` runs, and its tuning knobs.
 *
 * Buckets and keys (see docs/gcp.md "Where objects go"):
 *   - gs://BUCKET[/PREFIX] (or gs:// with GCS_BUCKET_NAME) holds everything:
 *     key K is the object PREFIX/K.  With the original's settings this is
 *     its layout exactly: raw objects under <dataset>/<table>/..., run
 *     artifacts under <GCS_BUCKET_PROJECT_NAME>/pipeline-dataops/<run_id>/,
 *     both in GCS_BUCKET_NAME (the original's SimpleDVC writes
 *     "<GCS_BUCKET_PROJECT_NAME>/<dir>/<md5>" into GCS_BUCKET_NAME: the
 *     variable names a top-level folder, not a bucket);
 *   - DATAOPS_GCS_ARTIFACTS_BUCKET=NAME (opt-in) sends the artifacts to a
 *     bucket of their own: the key "<GCS_BUCKET_PROJECT_NAME>/
 *     pipeline-dataops/<run_id>/<file>" becomes the object
 *     "pipeline-dataops/<run_id>/<file>" of NAME.  Only keys with the
 *     pipeline-dataops/ segment are routed, because the raw keys start with
 *     the dataset name, which defaults to the same word.
 * Environment (tuning, read when the lake is opened):
 *   DATAOPS_GCS_RESUMABLE_THRESHOLD  objects larger than this many bytes go
 *                                    through a resumable upload (8 MiB);
 *   DATAOPS_GCS_CHUNK_SIZE           bytes per resumable chunk, rounded up to
 *                                    a multiple of 256 KiB (8 MiB);
 *   DATAOPS_GCS_ARTIFACTS_BUCKET     see above (unset: artifacts stay in the
 *                                    lake bucket).
 */
#ifndef DATAOPS_LAKE_GCS_H
#define DATAOPS_LAKE_GCS_H

#include <stddef.h>

#include "util/err.h"

struct config;

#define LAKE_GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"

/* Check that the buckets of the gs:// lake at url (and the artifacts bucket,
 * when routed) exist and are readable with the configured credentials:
 * a token is obtained, then GET /storage/v1/b/BUCKET for each bucket.
 * 0, or an error naming the bucket, the principal and what is missing:
 * ERR_CONFIG for 403 (storage.buckets.get; writing needs
 * storage.objects.create) and 404 (no such bucket), the token source's own
 * errors otherwise.  Writes nothing. */
int lake_gcs_check(const char *url, const struct config *cfg, struct err *e);

/* The endpoint of STORAGE_EMULATOR_HOST-style text: "" gives Google's,
 * "host:port" gives http://host:port, "http(s)://host:port[/]" is kept
 * (without a trailing slash or "/storage/v1").  0, or -1 if it is unusable. */
int lake_gcs_endpoint(const char *text, char *out, size_t n);

#endif
