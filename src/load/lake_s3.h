/*
 * lake_s3.h - private to the S3-compatible lake (lake_s3.c,
 * lake_s3_multipart.c, lake_s3_http.c).
 *
 * lake_s3.c is the backend behind the lake seam: settings, the writer, the
 * single PUT; lake_s3_multipart.c the multipart upload.  lake_s3_http.c is its transport: one
 * signed request with libcurl's built-in AWS Signature Version 4
 * (CURLOPT_AWS_SIGV4), the retry policy, and the translation of S3's XML
 * error bodies into struct err.  Nothing else in the program includes this.
 */
#ifndef DATAOPS_LAKE_S3_H
#define DATAOPS_LAKE_S3_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "load/lake.h"
#include "util/buf.h"
#include "util/err.h"

/* A response body larger than this is refused: S3 answers with small XML
 * documents (errors, upload ids, the completion result), never with data. */
#define S3_MAX_RESPONSE (1u << 20)

struct lake_s3 {
    struct lake base;               /* must be first */
    void *curl;                     /* CURL *, reused for keep-alive */
    char *bucket;
    char *prefix;                   /* "" or "a/b": no leading or trailing '/' */
    char *endpoint;                 /* scheme://host[:port], for messages */
    char *base_url;                 /* where "/<key>" is appended (addressing applied) */
    char *region;
    char *key_id;                   /* AWS_ACCESS_KEY_ID: may be named in messages */
    char *secret;                   /* AWS_SECRET_ACCESS_KEY: never in a message */
    char *token;                    /* AWS_SESSION_TOKEN or NULL: never in a message */
    int virtual_host;               /* bucket in the host name, else in the path */
    char sigv4[96];                 /* "aws:amz:<region>:s3" */
    size_t part_size;               /* single PUT up to this size; multipart parts of it */
    long retries;                   /* retries after the first attempt */
    long connect_timeout_s;
    long timeout_s;                 /* total for a request without a large body */
    uint64_t rng;                   /* backoff jitter, seeded once */
    int head_forbidden_noted;       /* a 403 on HEAD was logged once */
    struct buf body;                /* last response body, at most S3_MAX_RESPONSE */
    /* Figures for the log. */
    long requests, retried;
};

struct s3_request {
    const char *method;             /* "GET", "HEAD", "PUT", "POST" or "DELETE" */
    const char *key;                /* full object key (prefix included); NULL = the bucket */
    const char *query;              /* canonical query string, or NULL: see s3_query_add */
    const void *body;
    size_t len;
    const char *content_type;       /* or NULL */
    const unsigned char *md5;       /* MD5 of body, sent as Content-MD5; or NULL */
    int if_none_match;              /* send If-None-Match: * (never overwrite) */
    int cleanup;                    /* an abort: runs even after SIGTERM, few retries */
};

struct s3_response {
    long status;                    /* HTTP status; see s3_call for a 200 holding an error */
    int attempts;                   /* requests sent for this call (1 + retries used) */
    char etag[128];                 /* ETag header without quotes, or "" */
    int etag_not_md5;               /* SSE-KMS / SSE-C: the ETag is not the MD5 of the data */
    char code[64];                  /* <Code> of an XML error body, or "" */
    char message[200];              /* <Message> of an XML error body, or "" */
};

/*
 * Send one signed request, retrying transport failures, 5xx, 429 and S3's
 * transient error codes with capped, fully jittered exponential backoff
 * (lk->retries times at most).  Returns 0 when a final answer arrived, of
 * any status (the caller decides what it means; lk->body holds the body);
 * ERR_NET or ERR_HTTP_RETRY when the retries ran out, ERR_INTERRUPTED on
 * SIGTERM, ERR_INVALID for an oversized answer.  A 200 whose body is an
 * <Error> document (CompleteMultipartUpload may answer so) is reported as
 * the error it holds: status 500 when its code is transient, else 400.
 */
int s3_call(struct lake_s3 *lk, const struct s3_request *rq, struct s3_response *rs,
            struct err *e);

/*
 * Fill e from a response that is not a success.  what names the operation
 * ("PUT", "UploadPart 3"), key the object (NULL for the bucket).  Refused
 * credentials (InvalidAccessKeyId, SignatureDoesNotMatch, expired tokens,
 * AccessDenied) and a missing bucket are ERR_CONFIG with a message naming
 * the endpoint and the access key id, never the secret; the rest ERR_LAKE.
 */
int s3_fail(struct lake_s3 *lk, const char *what, const char *key,
            const struct s3_response *rs, struct err *e);

/* Append name=value to a query being built in q (size n), percent-encoding
 * the value as SigV4 requires.  Callers add parameters in sorted order
 * because libcurl 7.88 signs the query string as it is written.  Returns 0,
 * or -1 when it does not fit. */
int s3_query_add(char *q, size_t n, const char *name, const char *value);

/* Copy the text of the first <tag>...</tag> in xml into out, with the five
 * XML entities decoded.  Returns 0, or -1 when the element is absent. */
int s3_xml_text(const char *xml, const char *tag, char *out, size_t n);

/* Hex of a 16-byte digest into out (33 bytes). */
void s3_hex16(const unsigned char md5[16], char out[33]);

/* 1 if s is 32 lowercase or uppercase hex digits (a plain MD5 ETag). */
int s3_is_md5_hex(const char *s);

/* S3 accepts at most this many parts in one multipart upload. */
#define S3_MAX_PARTS 10000

struct s3_part {
    unsigned char md5[16];
    char etag[72];
};

struct lake_s3_writer {
    struct lake_writer base;        /* must be first */
    struct lake_s3 *lk;
    char *key;                      /* full key: prefix/key */
    const char *content_type;
    char *buf;                      /* bytes not sent yet ... */
    size_t len;                     /* ... len of them, in cap bytes, at most lk->part_size */
    size_t cap;
    EVP_MD_CTX *whole;              /* MD5 of the whole object (OpenSSL EVP_MD_CTX) */
    char *upload_id;                /* NULL until CreateMultipartUpload */
    struct s3_part *parts;
    size_t nparts;
    size_t parts_cap;
    unsigned long long size;
    int failed;                     /* sticky: a write failed, the upload is aborted */
};


/* === lake_s3.c: checks shared with the multipart code ================= */

/* MD5 of data into out.  0, or -1 if OpenSSL refuses (MD5 disabled). */
int s3_md5(const void *data, size_t n, unsigned char out[16]);
/* HEAD the writer's key: rs->status 200 (exists), 404 (absent) or 403
 * (cannot tell: no list permission).  Other answers are errors. */
int s3_head_key(struct lake_s3_writer *w, struct s3_response *rs, struct err *e);
/* ERR_LAKE "already exists; not overwritten" when HEAD finds the key. */
int s3_check_absent(struct lake_s3_writer *w, struct err *e);
/* Compare the store's ETag (rs->etag) with the MD5 sent: expected is the
 * multipart form "<hex>-<N>" (or the part's hex), whole the object's MD5. */
int s3_check_etag(struct lake_s3_writer *w, const struct s3_response *rs, const char *expected,
                  const char *whole, const char *what, struct err *e);
/* Best-effort DELETE of an object this writer has just made and found corrupt. */
void s3_delete_own(struct lake_s3_writer *w);

/* === lake_s3_multipart.c ============================================== */

/* Send the buffered bytes as the next part, creating the upload first. */
int s3_upload_part(struct lake_s3_writer *w, struct err *e);
/* CompleteMultipartUpload of the parts sent; whole is the object's MD5 hex.
 * On success the upload is gone (w->upload_id NULL). */
int s3_complete_upload(struct lake_s3_writer *w, const char *whole, struct err *e);
/* AbortMultipartUpload if one is open (even after SIGTERM); logs, never fails. */
void s3_abort_upload(struct lake_s3_writer *w);

#endif
