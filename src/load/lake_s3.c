/*
 * lake_s3.c - the lake in an S3-compatible bucket (AWS S3, MinIO, Ceph,
 * Cloudflare R2, ...): DATAOPS_LAKE=s3://bucket[/prefix].
 *
 * It keeps the seam's contract (lake.h) with S3's own tools:
 *   - visible only on commit, whole: an object up to the part size is held
 *     in memory and sent by one PUT at commit; a larger one goes up as a
 *     multipart upload, which S3 makes visible only when
 *     CompleteMultipartUpload succeeds.  Any failure, and abort(), send
 *     AbortMultipartUpload, so no parts are left behind (a process killed
 *     outright cannot; a bucket lifecycle rule AbortIncompleteMultipartUpload
 *     is the safety net, see docs/s3.md);
 *   - never overwrite: the final PUT and CompleteMultipartUpload carry
 *     If-None-Match: *, which AWS S3 (and MinIO, R2) refuse with 412 when the
 *     key exists.  Some stores ignore that header, so the key is also checked
 *     with HEAD just before; on those stores a writer racing between the HEAD
 *     and the write could still be overwritten (keys hold the run id, so two
 *     runs never share one);
 *   - integrity: every PUT and part carries Content-MD5 (the store refuses
 *     bytes that changed on the way) and the SHA-256 that SigV4 signs, and the
 *     ETag the store returns is compared with our MD5 whenever it is one;
 *   - bounded memory: one part buffer (DATAOPS_S3_PART_SIZE, 8 MiB by default)
 *     whatever the object's size.
 *
 * Credentials come from the conventional variables (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); the secret and the token are
 * registered with the logger's mask list and never put in a message.
 */
#include "load/lake_s3.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/config.h"
#include "util/backoff.h"
#include "util/log.h"

#define DEFAULT_PART_SIZE ((size_t)8 << 20)
#define S3_MIN_PART ((size_t)5 << 20)        /* S3's minimum for all parts but the last */
#define S3_MAX_PART ((size_t)5 << 30)
#define TEST_MIN_PART ((size_t)1 << 10)      /* lowest accepted, for tests on small data */

/* === settings ========================================================= */

static int dns_bucket(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || b[0] == '-' || b[0] == '.' || b[n - 1] == '-' || b[n - 1] == '.') {
        return 0;
    }
    return strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n && !strstr(b, "..");
}

static int parse_url(struct lake_s3 *lk, const char *url, struct err *e)
{
    const char *p = url + strlen("s3://");
    size_t bl = strcspn(p, "/");
    if (bl == 0 || bl > 255 || strspn(p, "abcdefghijklmnopqrstuvwxyz"
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") < bl) {
        return err_set(e, ERR_CONFIG, "DATAOPS_LAKE '%.200s': expected s3://BUCKET[/PREFIX] "
                       "with a bucket name of letters, digits, '.', '-' and '_'", url);
    }
    lk->bucket = strndup(p, bl);
    p += bl;
    while (*p == '/') {
        p++;
    }
    lk->prefix = strdup(p);
    if (!lk->bucket || !lk->prefix) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    size_t n = strlen(lk->prefix);
    while (n && lk->prefix[n - 1] == '/') {
        lk->prefix[--n] = '\0';
    }
    if (n && (n > 512 || !lake_key_valid(lk->prefix))) {
        return err_set(e, ERR_CONFIG, "DATAOPS_LAKE '%.200s': the prefix '%.100s' is not a "
                       "valid key prefix (printable ASCII, no '..' or empty segments)", url,
                       lk->prefix);
    }
    return 0;
}

/* AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional). */
static int read_credentials(struct lake_s3 *lk, struct err *e)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (!id || !*id || !secret || !*secret) {
        const char *missing = (!id || !*id) && (!secret || !*secret)
                                  ? "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are"
                              : (!id || !*id) ? "AWS_ACCESS_KEY_ID is"
                                              : "AWS_SECRET_ACCESS_KEY is";
        return err_set(e, ERR_CONFIG, "the s3:// lake needs credentials: %s not set (in the "
                       "environment or .env; AWS_SESSION_TOKEN too for temporary ones)",
                       missing);
    }
    for (const char *c = id; *c; c++) {
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
            return err_set(e, ERR_CONFIG, "AWS_ACCESS_KEY_ID holds a space or a control "
                           "character");
        }
    }
    log_add_secret(secret);
    if (token && *token) {
        log_add_secret(token);
        if (strpbrk(token, "\r\n")) {
            return err_set(e, ERR_CONFIG, "AWS_SESSION_TOKEN holds a line break");
        }
    }
    lk->key_id = strdup(id);
    lk->secret = strdup(secret);
    lk->token = token && *token ? strdup(token) : NULL;
    if (!lk->key_id || !lk->secret || (token && *token && !lk->token)) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* DATAOPS_S3_PART_SIZE: bytes, or with a K/M/G suffix (powers of 1024). */
static int read_part_size(struct lake_s3 *lk, struct err *e)
{
    const char *v = getenv("DATAOPS_S3_PART_SIZE");
    lk->part_size = DEFAULT_PART_SIZE;
    if (!v || !*v) {
        return 0;
    }
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k') {
        mult = 1ull << 10;
    }
    else if (*end == 'M' || *end == 'm') {
        mult = 1ull << 20;
    }
    else if (*end == 'G' || *end == 'g') {
        mult = 1ull << 30;
    }
    if (mult > 1) {
        end++;
        if (*end == 'i' && end[1] == 'B') {
            end += 2;
        }
    }
    if (end == v || *end || v[0] == '-' || x > S3_MAX_PART / mult || x * mult < TEST_MIN_PART) {
        return err_set(e, ERR_CONFIG, "DATAOPS_S3_PART_SIZE '%.40s' is not a size from 1K to "
                       "5G (bytes, or with a K, M or G suffix)", v);
    }
    lk->part_size = (size_t)(x * mult);
    if (lk->part_size < S3_MIN_PART) {
        log_warn("lake", "DATAOPS_S3_PART_SIZE=%zu is below S3's 5 MiB minimum part size: "
                 "multipart uploads will fail on AWS and most stores (meant for tests)",
                 lk->part_size);
    }
    return 0;
}

static int is_ip_host(const char *host, size_t n)
{
    return n && (host[0] == '[' || strspn(host, "0123456789.") == n);
}

/* Endpoint, region and addressing style: the URL of the bucket. */
static int resolve_endpoint(struct lake_s3 *lk, const struct config *cfg, struct err *e)
{
    const char *ep = cfg ? cfg->text[S_S3_ENDPOINT] : "";
    const char *region = cfg ? cfg->text[S_S3_REGION] : "";
    const char *style = cfg ? cfg->text[S_S3_ADDRESSING] : "auto";
    /* The AWS CLI's second name for the region, when AWS_REGION is unset. */
    if ((!cfg || cfg->source[S_S3_REGION] == SRC_DEFAULT) && getenv("AWS_DEFAULT_REGION") &&
        *getenv("AWS_DEFAULT_REGION")) {
        region = getenv("AWS_DEFAULT_REGION");
    }
    if (!region || !*region) {
        region = "us-east-1";
    }
    size_t rl = strlen(region);
    if (rl > 40 || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != rl) {
        return err_set(e, ERR_CONFIG, "AWS_REGION '%.60s' is not a region name (like "
                       "us-east-1, or auto for R2)", region);
    }
    int path;
    if (strcmp(style, "path") == 0) {
        path = 1;
    }
    else if (strcmp(style, "virtual") == 0) {
        path = 0;
    }
    else if (strcmp(style, "auto") == 0) {
        path = -1;
    }
    else {
        return err_set(e, ERR_CONFIG, "DATAOPS_S3_ADDRESSING '%.40s' is not one of auto, "
                       "path, virtual", style);
    }

    char scheme[8];
    char host[300];
    const char *rest = "";
    if (!ep || !*ep) {
        snprintf(scheme, sizeof(scheme), "https");
        snprintf(host, sizeof(host), "s3.%s.amazonaws.com%s", region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
        /* AWS: virtual-host style, unless the name cannot be a host name
         * (dots also break the TLS wildcard certificate). */
        if (path < 0) {
            path = !dns_bucket(lk->bucket) || strchr(lk->bucket, '.');
        }
    }
    else {
        const char *p;
        if (strncmp(ep, "http://", 7) == 0) {
            snprintf(scheme, sizeof(scheme), "http");
            p = ep + 7;
        }
        else if (strncmp(ep, "https://", 8) == 0) {
            snprintf(scheme, sizeof(scheme), "https");
            p = ep + 8;
        }
        else {
            return err_set(e, ERR_CONFIG, "DATAOPS_S3_ENDPOINT '%.100s' is not an http:// or "
                           "https:// URL", ep);
        }
        size_t hl = strcspn(p, "/?#");
        if (memchr(p, '@', hl)) {
            return err_set(e, ERR_CONFIG, "DATAOPS_S3_ENDPOINT must not hold credentials: use "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        rest = p + hl;
        if (hl == 0 || hl >= sizeof(host) || strpbrk(rest, "?#")) {
            return err_set(e, ERR_CONFIG, "DATAOPS_S3_ENDPOINT '%.100s' is not a URL like "
                           "http://host:port", ep);
        }
        memcpy(host, p, hl);
        host[hl] = '\0';
        if (path < 0) {
            path = 1;   /* custom endpoints (MinIO, R2, Ceph) serve path-style */
        }
    }
    size_t restl = strlen(rest);
    while (restl && rest[restl - 1] == '/') {
        restl--;
    }
    if (!path && (!dns_bucket(lk->bucket) || is_ip_host(host, strcspn(host, ":")))) {
        return err_set(e, ERR_CONFIG, "DATAOPS_S3_ADDRESSING=virtual needs a bucket name that "
                       "is a valid host name and an endpoint with a host name; use path");
    }
    char base[800];
    char origin[400];
    snprintf(origin, sizeof(origin), "%s://%s", scheme, host);
    lk->virtual_host = !path;
    if (path) {
        snprintf(base, sizeof(base), "%s%.*s/%s", origin, (int)restl, rest, lk->bucket);
    }
    else {
        snprintf(base, sizeof(base), "%s://%s.%s%.*s", scheme, lk->bucket, host, (int)restl,
                 rest);
    }
    lk->endpoint = strdup(origin);
    lk->base_url = strdup(base);
    lk->region = strdup(region);
    if (!lk->endpoint || !lk->base_url || !lk->region) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    snprintf(lk->sigv4, sizeof(lk->sigv4), "aws:amz:%s:s3", region);
    return 0;
}

/* One cheap signed request at open, so wrong credentials, a missing bucket
 * or an unreachable endpoint stop the run before anything is extracted. */
static int probe(struct lake_s3 *lk, struct err *e)
{
    char q[700] = "";
    char pfx[520];
    snprintf(pfx, sizeof(pfx), "%s%s", lk->prefix, lk->prefix[0] ? "/" : "");
    /* ListObjects (version 1): every S3-compatible store has it. */
    if (s3_query_add(q, sizeof(q), "max-keys", "1") != 0 ||
        s3_query_add(q, sizeof(q), "prefix", pfx) != 0) {
        return err_set(e, ERR_CONFIG, "the lake prefix is too long");
    }
    struct s3_request rq = {.method = "GET", .query = q};
    struct s3_response rs;
    int rc = s3_call(lk, &rq, &rs, e);
    if (rc != 0) {
        return err_wrap(e, "opening the s3:// lake");
    }
    if (rs.status == 200) {
        return 0;
    }
    if (rs.status == 403 && strcmp(rs.code, "AccessDenied") == 0) {
        /* Allowed to write but not to list: fine, HEAD then says 403 for a
         * missing key and only If-None-Match guards against overwrites. */
        log_info("lake", "s3://%s: listing is not allowed for key id %s; existence checks "
                 "rely on If-None-Match", lk->bucket, lk->key_id);
        return 0;
    }
    return s3_fail(lk, "ListObjects", NULL, &rs, e);
}

static void s3_close(struct lake *base)
{
    struct lake_s3 *lk = (struct lake_s3 *)base;
    if (!lk) {
        return;
    }
    if (lk->curl) {
        log_debug("lake", "s3://%s: %ld requests, %ld retried", lk->bucket, lk->requests,
                  lk->retried);
        curl_easy_cleanup(lk->curl);
        curl_global_cleanup();
    }
    if (lk->secret) {
        explicit_bzero(lk->secret, strlen(lk->secret));
    }
    if (lk->token) {
        explicit_bzero(lk->token, strlen(lk->token));
    }
    free(lk->bucket);
    free(lk->prefix);
    free(lk->endpoint);
    free(lk->base_url);
    free(lk->region);
    free(lk->key_id);
    free(lk->secret);
    free(lk->token);
    buf_free(&lk->body);
    free(lk);
}

static int s3_open(const char *url, const struct config *cfg, struct lake **out, struct err *e)
{
    struct lake_s3 *lk = calloc(1, sizeof(*lk));
    if (!lk) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    lk->base.ops = &lake_s3_ops;
    buf_init(&lk->body, S3_MAX_RESPONSE);
    lk->retries = cfg && cfg->retries >= 0 ? cfg->retries : 5;
    lk->connect_timeout_s = cfg && cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
    lk->timeout_s = cfg && cfg->http_timeout_s > 0 ? cfg->http_timeout_s : 30;
    lk->rng = backoff_seed();
    int rc = parse_url(lk, url, e);
    if (rc == 0) {
        rc = read_credentials(lk, e);
    }
    if (rc == 0) {
        rc = resolve_endpoint(lk, cfg, e);
    }
    if (rc == 0) {
        rc = read_part_size(lk, e);
    }
    if (rc == 0) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            rc = err_set(e, ERR_NET, "cannot initialise libcurl");
        }
        else if (!(lk->curl = curl_easy_init())) {
            curl_global_cleanup();
            rc = err_set(e, ERR_NOMEM, "cannot create an HTTP client");
        }
    }
    if (rc == 0) {
        rc = probe(lk, e);
    }
    if (rc != 0) {
        s3_close(&lk->base);
        return rc;
    }
    log_info("lake", "S3 lake s3://%s%s%s at %s (%s-style, region %s, key id %s, objects over "
             "%zu bytes go as multipart uploads)", lk->bucket, lk->prefix[0] ? "/" : "",
             lk->prefix, lk->endpoint, lk->virtual_host ? "virtual-host" : "path", lk->region,
             lk->key_id, lk->part_size);
    *out = &lk->base;
    return 0;
}

static void s3_uri(const struct lake *base, const char *key, char *out, size_t n)
{
    const struct lake_s3 *lk = (const struct lake_s3 *)base;
    snprintf(out, n, "s3://%s/%s%s%s", lk->bucket, lk->prefix, lk->prefix[0] ? "/" : "", key);
}

/* === the writer ======================================================= */

int s3_md5(const void *data, size_t n, unsigned char out[16])
{
    unsigned int len = 0;
    return EVP_Digest(n ? data : "", n, out, &len, EVP_md5(), NULL) && len == 16 ? 0 : -1;
}

static void writer_free(struct lake_s3_writer *w)
{
    if (w) {
        free(w->buf);
        EVP_MD_CTX_free(w->whole);
        free(w->key);
        free(w->upload_id);
        free(w->parts);
        free(w);
    }
}

static int s3_writer_open(struct lake *base, const char *key, struct lake_writer **out,
                          struct err *e)
{
    struct lake_s3 *lk = (struct lake_s3 *)base;
    struct lake_s3_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &lake_s3_ops;
    w->lk = lk;
    w->content_type = lake_content_type(key);
    size_t n = strlen(lk->prefix) + 1 + strlen(key) + 1;
    w->key = malloc(n);
    w->whole = EVP_MD_CTX_new();
    if (!w->key || !w->whole || !EVP_DigestInit_ex(w->whole, EVP_md5(), NULL)) {
        writer_free(w);
        return err_set(e, ERR_NOMEM, "cannot start an MD5 digest (out of memory, or MD5 "
                       "disabled by the OpenSSL configuration)");
    }
    snprintf(w->key, n, "%s%s%s", lk->prefix, lk->prefix[0] ? "/" : "", key);
    *out = &w->base;
    return 0;
}

/* Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key. */
int s3_head_key(struct lake_s3_writer *w, struct s3_response *rs, struct err *e)
{
    struct s3_request rq = {.method = "HEAD", .key = w->key};
    int rc = s3_call(w->lk, &rq, rs, e);
    if (rc != 0) {
        return rc;
    }
    if (rs->status == 200 || rs->status == 404) {
        return 0;
    }
    if (rs->status == 403) {
        if (!w->lk->head_forbidden_noted) {
            w->lk->head_forbidden_noted = 1;
            log_info("lake", "s3://%s: HEAD of a new key is forbidden (no s3:ListBucket): "
                     "never-overwrite relies on If-None-Match", w->lk->bucket);
        }
        return 0;
    }
    return s3_fail(w->lk, "HEAD", w->key, rs, e);
}

/* The last check before an object becomes visible (see the top comment). */
int s3_check_absent(struct lake_s3_writer *w, struct err *e)
{
    struct s3_response rs;
    int rc = s3_head_key(w, &rs, e);
    if (rc == 0 && rs.status == 200) {
        rc = err_set(e, ERR_LAKE, "lake object s3://%s/%s already exists; not overwritten",
                     w->lk->bucket, w->key);
    }
    return rc;
}

/* Best-effort removal of an object we have just written and found corrupt. */
void s3_delete_own(struct lake_s3_writer *w)
{
    struct s3_request rq = {.method = "DELETE", .key = w->key, .cleanup = 1};
    struct s3_response rs;
    struct err e2;
    if (s3_call(w->lk, &rq, &rs, &e2) != 0 || (rs.status != 204 && rs.status != 200)) {
        log_error("lake", "could not delete the corrupt object s3://%s/%s: delete it by hand",
                  w->lk->bucket, w->key);
    }
}

/* Compare the ETag the store returned with what we sent; expected is the
 * MD5 hex (or the multipart form "<hex>-<N>").  A store whose ETag is not
 * an MD5 (SSE-KMS, SSE-C, some gateways) is trusted on Content-MD5 alone. */
int s3_check_etag(struct lake_s3_writer *w, const struct s3_response *rs, const char *expected,
                  const char *whole, const char *what, struct err *e)
{
    const char *got = rs->etag;
    if (rs->etag_not_md5 || !got[0]) {
        return 0;
    }
    int ok;
    if (strchr(got, '-')) {
        ok = strcasecmp(got, expected) == 0;
    }
    else if (s3_is_md5_hex(got)) {
        ok = strcasecmp(got, whole) == 0;
    }
    else {
        ok = 1;
    }
    if (!ok) {
        return err_set(e, ERR_LAKE, "%s of s3://%s/%s: the store's ETag %.70s differs from the "
                       "MD5 %s of the bytes sent", what, w->lk->bucket, w->key, got,
                       strchr(got, '-') ? expected : whole);
    }
    return 0;
}

/* One object, one PUT (it fits in a part). */
static int put_single(struct lake_s3_writer *w, struct err *e)
{
    unsigned char md5[16];
    char hex[33];
    if (s3_md5(w->buf, w->len, md5) != 0) {
        return err_set(e, ERR_LAKE, "cannot compute an MD5 (OpenSSL)");
    }
    s3_hex16(md5, hex);
    int rc = s3_check_absent(w, e);
    if (rc != 0) {
        return rc;
    }
    struct s3_request rq = {.method = "PUT", .key = w->key, .body = w->buf,
                            .len = w->len, .content_type = w->content_type, .md5 = md5,
                            .if_none_match = 1};
    struct s3_response rs;
    if ((rc = s3_call(w->lk, &rq, &rs, e)) != 0) {
        return rc;
    }
    if (rs.status == 412 && rs.attempts > 1) {
        /* Our first attempt may have landed before its answer was lost. */
        struct s3_response hs;
        if (s3_head_key(w, &hs, e) == 0 && hs.status == 200 && strcasecmp(hs.etag, hex) == 0) {
            return 0;
        }
    }
    if (rs.status == 412 || rs.status == 409) {
        return err_set(e, ERR_LAKE, "lake object s3://%s/%s already exists (HTTP %ld %s); "
                       "not overwritten", w->lk->bucket, w->key, rs.status, rs.code);
    }
    if (rs.status != 200) {
        return s3_fail(w->lk, "PUT", w->key, &rs, e);
    }
    if ((rc = s3_check_etag(w, &rs, hex, hex, "PUT", e)) != 0) {
        s3_delete_own(w);
    }
    return rc;
}

/* Double the buffer (from 64 KiB), never past the part size: small objects
 * stay small in memory, and a part takes part_size bytes, not a power of 2. */
static int grow(struct lake_s3_writer *w)
{
    size_t ncap = w->cap ? w->cap * 2 : (size_t)64 << 10;
    if (ncap > w->lk->part_size) {
        ncap = w->lk->part_size;
    }
    char *p = realloc(w->buf, ncap);
    if (!p) {
        return -1;
    }
    w->buf = p;
    w->cap = ncap;
    return 0;
}

static int s3_write(struct lake_writer *base, const void *data, size_t n, struct err *e)
{
    struct lake_s3_writer *w = (struct lake_s3_writer *)base;
    const char *p = data;
    if (w->failed) {
        return err_set(e, ERR_LAKE, "s3://%s/%s: an earlier write failed", w->lk->bucket,
                       w->key);
    }
    while (n > 0) {
        size_t space = w->lk->part_size - w->len;
        if (space && w->len + (n < space ? n : space) > w->cap && grow(w) != 0) {
            w->failed = 1;
            s3_abort_upload(w);
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        if (space == 0) {
            /* The buffer is full and more is coming: this is a large object. */
            int rc = s3_upload_part(w, e);
            if (rc != 0) {
                w->failed = 1;
                s3_abort_upload(w);
                return rc;
            }
            continue;
        }
        size_t k = n < space ? n : space;
        if (k > w->cap - w->len) {
            k = w->cap - w->len;
        }
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        if (!EVP_DigestUpdate(w->whole, p, k)) {
            w->failed = 1;
            s3_abort_upload(w);
            return err_set(e, ERR_LAKE, "cannot compute an MD5 (OpenSSL)");
        }
        w->size += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int s3_commit(struct lake_writer *base, struct err *e)
{
    struct lake_s3_writer *w = (struct lake_s3_writer *)base;
    unsigned char md[16];
    unsigned int len = 0;
    char whole[33] = "";
    int rc;
    if (w->failed) {
        rc = err_set(e, ERR_LAKE, "s3://%s/%s: an earlier write failed", w->lk->bucket, w->key);
    }
    else if (!w->upload_id) {
        rc = put_single(w, e);
    }
    else if (!EVP_DigestFinal_ex(w->whole, md, &len) || len != 16) {
        rc = err_set(e, ERR_LAKE, "cannot compute an MD5 (OpenSSL)");
    }
    else {
        s3_hex16(md, whole);
        rc = w->len ? s3_upload_part(w, e) : 0;
        if (rc == 0) {
            rc = s3_check_absent(w, e);
        }
        if (rc == 0) {
            rc = s3_complete_upload(w, whole, e);
        }
    }
    if (rc == 0) {
        log_debug("s3", "committed s3://%s/%s: %llu bytes, %s", w->lk->bucket, w->key, w->size,
                  w->nparts ? "multipart" : "one PUT");
    }
    s3_abort_upload(w);    /* only when an upload is still open: a failure */
    writer_free(w);
    return rc;
}

static void s3_abort(struct lake_writer *base)
{
    struct lake_s3_writer *w = (struct lake_s3_writer *)base;
    s3_abort_upload(w);
    writer_free(w);
}

const struct lake_ops lake_s3_ops = {
    .scheme = "s3",
    .open = s3_open,
    .writer_open = s3_writer_open,
    .write = s3_write,
    .commit = s3_commit,
    .abort = s3_abort,
    .uri = s3_uri,
    .close = s3_close,
};
