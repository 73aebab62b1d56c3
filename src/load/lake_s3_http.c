/*
 * lake_s3_http.c - the S3 lake's transport: one signed request, retries,
 * and S3's error documents turned into operator messages.
 *
 * Signing is libcurl's (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3"); we do
 * not compute SigV4 ourselves.  What libcurl leaves to the caller, we do:
 *   - the payload hash: libcurl takes it from the x-amz-content-sha256
 *     header when the request carries one (7.87.0 and later), so every
 *     request sends the SHA-256 of its body there, as S3 requires;
 *   - the canonical query: libcurl 7.88 (Debian 12) signs the query string
 *     as written, unsorted and without the '=' of a bare name; newer
 *     releases may canonicalise it.  Callers write it already canonical, which
 *     suits both (parameters sorted, every one with '=', values
 *     percent-encoded: s3_query_add);
 *   - the canonical path: keys are percent-encoded here, segment by
 *     segment, with the RFC 3986 unreserved set, which is what S3 expects
 *     (it does not double-encode);
 *   - the session token goes in x-amz-security-token, which libcurl signs
 *     like every header we add.
 * tests/integration/test_lake_s3.py checks these signatures against npm's
 * aws4 for every request a real run sends (tests/s3/sigv4_check.js).
 *
 * Retries are bounded (DATAOPS_HTTP_RETRIES) with capped full-jitter
 * backoff.  A retried PUT or CompleteMultipartUpload may find that its first
 * attempt did succeed; s3_response.attempts lets lake_s3.c recognise that.
 * Credentials never reach a message: errors name the endpoint, the bucket
 * and key, and the access key id.
 */
#include "load/lake_s3.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/backoff.h"
#include "util/curl_util.h"
#include "util/interrupt.h"
#include "util/log.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000
/* A body this large gets more time: the total timeout grows by one second
 * per 64 KiB (8 MiB parts: 128 s more), while the stall timeout still cuts
 * a transfer that stops moving. */
#define LARGE_BODY (1u << 20)

static const char HEXU[] = "0123456789ABCDEF";

void s3_hex16(const unsigned char md5[16], char out[33])
{
    static const char hexl[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hexl[md5[i] >> 4];
        out[2 * i + 1] = hexl[md5[i] & 15];
    }
    out[32] = '\0';
}

int s3_is_md5_hex(const char *s)
{
    size_t n = strspn(s, "0123456789abcdefABCDEF");
    return n == 32 && s[32] == '\0';
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Percent-encode s into b; '/' kept when keep_slash (object key paths). */
static int encode(struct buf *b, const char *s, int keep_slash)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            rc = buf_putc(b, (char)*p);
        }
        else {
            char esc[3] = {'%', HEXU[*p >> 4], HEXU[*p & 15]};
            rc = buf_append(b, esc, 3);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

int s3_query_add(char *q, size_t n, const char *name, const char *value)
{
    struct buf b;
    buf_init(&b, n - 1);
    int rc = buf_puts(&b, q);
    if (rc == 0 && q[0]) {
        rc = buf_putc(&b, '&');
    }
    if (rc == 0) {
        rc = encode(&b, name, 0);
    }
    if (rc == 0) {
        rc = buf_putc(&b, '=');
    }
    if (rc == 0) {
        rc = encode(&b, value, 0);
    }
    if (rc == 0) {
        memcpy(q, b.data, b.len + 1);
    }
    buf_free(&b);
    return rc;
}

int s3_xml_text(const char *xml, const char *tag, char *out, size_t n)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(xml, open);
    if (!a) {
        return -1;
    }
    a += strlen(open);
    const char *z = strstr(a, close);
    if (!z) {
        return -1;
    }
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&quot;", '"'}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}};
    size_t o = 0;
    while (a < z && o + 1 < n) {
        char c = *a;
        size_t skip = 1;
        if (c == '&') {
            for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
                size_t el = strlen(ents[i].ent);
                if ((size_t)(z - a) >= el && strncmp(a, ents[i].ent, el) == 0) {
                    c = ents[i].c;
                    skip = el;
                    break;
                }
            }
        }
        /* Control characters from a hostile body never reach a log line. */
        out[o++] = (unsigned char)c < 0x20 ? ' ' : c;
        a += skip;
    }
    out[o] = '\0';
    return 0;
}

/* === the request ====================================================== */

struct upload_src {
    const char *data;
    size_t len;
    size_t off;
};

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    struct upload_src *s = ud;
    size_t k = s->len - s->off;
    if (k > size * n) {
        k = size * n;
    }
    memcpy(p, s->data + s->off, k);
    s->off += k;
    return k;
}

/* libcurl rewinds the body when it must send it again (a redirect, an
 * authentication round, a reused connection that turned out closed). */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct upload_src *s = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > s->len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    s->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct s3_response *rs = ud;
    size_t len = size * n;
    if (curl_header_is_status(p, len)) {
        /* A new response (after 100-continue) starts afresh. */
        rs->etag[0] = '\0';
        rs->etag_not_md5 = 0;
        return len;
    }
    size_t nl, vl;
    const char *v;
    if (!curl_header_split(p, len, &nl, &v, &vl)) {
        return len;
    }
    if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {   /* an ETag is quoted */
        v++;
        vl -= 2;
    }
    if (nl == 4 && strncasecmp(p, "etag", 4) == 0 && vl < sizeof(rs->etag)) {
        memcpy(rs->etag, v, vl);
        rs->etag[vl] = '\0';
    }
    else if ((nl == 28 && strncasecmp(p, "x-amz-server-side-encryption", 28) == 0 &&
              vl >= 7 && strncasecmp(v, "aws:kms", 7) == 0) ||
             (nl == 47 &&
              strncasecmp(p, "x-amz-server-side-encryption-customer-algorithm", 47) == 0)) {
        /* With SSE-KMS or SSE-C keys S3's ETag is not the MD5 of the data. */
        rs->etag_not_md5 = 1;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    const struct s3_request *rq = ud;
    return !rq->cleanup && interrupt_requested();
}

static int sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        return -1;
    }
    static const char hexl[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hexl[md[i] >> 4];
        out[2 * i + 1] = hexl[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* The headers of a request; everything here is signed by libcurl. */
static int build_headers(const struct lake_s3 *lk, const struct s3_request *rq,
                         struct curl_slist **out)
{
    char line[160];
    char sha[65];
    struct curl_slist *h = NULL;
    struct curl_slist *t;
    if (sha256_hex(rq->len ? rq->body : "", rq->len, sha) != 0) {
        return -1;
    }
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
    if (!(t = curl_slist_append(h, line))) {
        goto fail;
    }
    h = t;
    if (rq->md5) {
        unsigned char b64[32];
        EVP_EncodeBlock(b64, rq->md5, 16);
        snprintf(line, sizeof(line), "Content-MD5: %s", (const char *)b64);
        if (!(t = curl_slist_append(h, line))) {
            goto fail;
        }
        h = t;
    }
    if (rq->if_none_match) {
        if (!(t = curl_slist_append(h, "If-None-Match: *"))) {
            goto fail;
        }
        h = t;
    }
    /* Every POST names its type: libcurl would add a form type otherwise. */
    if (rq->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", rq->content_type);
        if (!(t = curl_slist_append(h, line))) {
            goto fail;
        }
        h = t;
    }
    if (lk->token) {
        struct buf tok;
        buf_init(&tok, 0);
        int rc = buf_printf(&tok, "x-amz-security-token: %s", lk->token);
        t = rc == 0 ? curl_slist_append(h, tok.data) : NULL;
        explicit_bzero(tok.data, tok.cap);
        buf_free(&tok);
        if (!t) {
            goto fail;
        }
        h = t;
    }
    *out = h;
    return 0;
fail:
    curl_slist_free_all(h);
    return -1;
}

static int build_url(const struct lake_s3 *lk, const struct s3_request *rq, struct buf *url)
{
    if (buf_puts(url, lk->base_url) != 0 || buf_putc(url, '/') != 0) {
        return -1;
    }
    if (rq->key && encode(url, rq->key, 1) != 0) {
        return -1;
    }
    if (rq->query && (buf_putc(url, '?') != 0 || buf_puts(url, rq->query) != 0)) {
        return -1;
    }
    return 0;
}

/* Permanent transport failures: retrying cannot help. */
static int curl_permanent(CURLcode rc)
{
    return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
           rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_OUT_OF_MEMORY ||
           rc == CURLE_NOT_BUILT_IN || rc == CURLE_BAD_FUNCTION_ARGUMENT ||
           rc == CURLE_UNKNOWN_OPTION || rc == CURLE_LOGIN_DENIED;
}

/* S3 error codes worth another attempt, whatever the status. */
static int code_transient(const char *code)
{
    static const char *const codes[] = {"InternalError", "SlowDown", "ServiceUnavailable",
                                        "RequestTimeout", "RequestTimeTooSkewed",
                                        "OperationAborted", NULL};
    for (int i = 0; codes[i]; i++) {
        if (strcmp(code, codes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One attempt.  0 with rs filled when an answer arrived; else an ERR_*
 * with e set (retry is the caller's decision, *permanent says if it helps). */
static int attempt(struct lake_s3 *lk, const struct s3_request *rq, const char *url,
                   struct curl_slist *headers, struct s3_response *rs, int *permanent,
                   struct err *e)
{
    CURL *h = lk->curl;
    struct upload_src src = {rq->body, rq->len, 0};
    struct curl_sink sink = {&lk->body, 0};
    buf_reset(&lk->body);
    rs->status = 0;
    rs->etag[0] = '\0';
    rs->etag_not_md5 = 0;
    rs->code[0] = '\0';
    rs->message[0] = '\0';
    *permanent = 0;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, lk->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, lk->key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, lk->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)rq);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, lk->connect_timeout_s);
    long total = lk->timeout_s;
    if (rq->len > LARGE_BODY) {
        total += (long)(rq->len >> 16);
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT, total);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, lk->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dataops/0.1 (+libcurl)");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    else if (strcmp(rq->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &src);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->len);
    }
    else if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->len ? (const char *)rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len);
    }
    else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    lk->requests++;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_ABORTED_BY_CALLBACK && interrupt_requested()) {
        *permanent = 1;
        return err_set(e, ERR_INTERRUPTED, "S3 request to %s interrupted by a signal",
                       lk->endpoint);
    }
    if (sink.too_big) {
        *permanent = 1;
        return err_set(e, ERR_INVALID, "S3 endpoint %s answered with more than %u bytes",
                       lk->endpoint, S3_MAX_RESPONSE);
    }
    if (rc != CURLE_OK) {
        *permanent = curl_permanent(rc);
        return err_set(e, ERR_NET, "S3 endpoint %s: %s", lk->endpoint, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
    if (lk->body.len) {
        s3_xml_text(lk->body.data, "Code", rs->code, sizeof(rs->code));
        s3_xml_text(lk->body.data, "Message", rs->message, sizeof(rs->message));
    }
    /* CompleteMultipartUpload may answer 200 and report a failure in the
     * body (S3 sends the status before it has finished the work). */
    if (rs->status == 200 && lk->body.len && strstr(lk->body.data, "<Error>")) {
        rs->status = code_transient(rs->code) ? 500 : 400;
    }
    return 0;
}

int s3_call(struct lake_s3 *lk, const struct s3_request *rq, struct s3_response *rs,
            struct err *e)
{
    struct buf url;
    struct curl_slist *headers = NULL;
    buf_init(&url, 0);
    int rc = ERR_NOMEM;
    if (build_url(lk, rq, &url) != 0 || build_headers(lk, rq, &headers) != 0) {
        err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    long tries = rq->cleanup ? (lk->retries < 2 ? lk->retries : 2) : lk->retries;
    for (int i = 0;; i++) {
        int permanent = 0;
        rs->attempts = i + 1;
        rc = attempt(lk, rq, url.data, headers, rs, &permanent, e);
        int again;
        if (rc != 0) {
            again = !permanent;
        }
        else {
            again = rs->status >= 500 || rs->status == 429 ||
                    (rs->status == 400 && code_transient(rs->code)) ||
                    (rs->status == 403 && strcmp(rs->code, "RequestTimeTooSkewed") == 0);
            if (again) {
                rc = err_set(e, ERR_HTTP_RETRY, "S3 endpoint %s: HTTP %ld %s%s%s", lk->endpoint,
                             rs->status, rs->code, rs->message[0] ? ": " : "", rs->message);
            }
        }
        if (!again) {
            break;
        }
        if (i >= tries) {
            err_wrap(e, "%s s3://%s/%s (%d attempt%s)", rq->method, lk->bucket,
                     rq->key ? rq->key : "", i + 1, i ? "s" : "");
            break;
        }
        long wait = backoff_ms(&lk->rng, BACKOFF_BASE_MS, BACKOFF_CAP_MS, i);
        log_debug("s3", "%s s3://%s/%s failed (%s); retry %d in %ld ms", rq->method, lk->bucket,
                  rq->key ? rq->key : "", e->msg, i + 1, wait);
        lk->retried++;
        if (!rq->cleanup && interrupt_sleep_ms(wait)) {
            rc = err_set(e, ERR_INTERRUPTED, "S3 request to %s interrupted by a signal",
                         lk->endpoint);
            break;
        }
        if (rq->cleanup) {
            struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (rc == 0) {
        err_clear(e);
        log_debug("s3", "%s s3://%s/%s%s%s -> %ld", rq->method, lk->bucket,
                  rq->key ? rq->key : "", rq->query ? "?" : "", rq->query ? rq->query : "",
                  rs->status);
    }
out:
    curl_slist_free_all(headers);
    buf_free(&url);
    return rc;
}

/* === errors =========================================================== */

static int credential_code(const char *code)
{
    static const char *const codes[] = {"InvalidAccessKeyId", "SignatureDoesNotMatch",
                                        "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
                                        "AuthorizationHeaderMalformed", "InvalidClientTokenId",
                                        NULL};
    for (int i = 0; codes[i]; i++) {
        if (strcmp(code, codes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int s3_fail(struct lake_s3 *lk, const char *what, const char *key,
            const struct s3_response *rs, struct err *e)
{
    const char *code = rs->code[0] ? rs->code : "";
    const char *sep = rs->message[0] ? ": " : "";
    e->http = (int)rs->status;
    if (credential_code(code) || (rs->status == 401) ||
        (rs->status == 403 && (!code[0] || strcmp(code, "AccessDenied") == 0))) {
        const char *hint = "";
        if (strcmp(code, "SignatureDoesNotMatch") == 0) {
            hint = " (check AWS_SECRET_ACCESS_KEY and AWS_REGION)";
        }
        else if (strcmp(code, "InvalidAccessKeyId") == 0) {
            hint = " (check AWS_ACCESS_KEY_ID and DATAOPS_S3_ENDPOINT)";
        }
        else if (strstr(code, "Token")) {
            hint = " (check AWS_SESSION_TOKEN)";
        }
        err_set(e, ERR_CONFIG, "S3 endpoint %s refused access key id '%s' for %s s3://%s/%s: "
                "HTTP %ld %s%s%s%s", lk->endpoint, lk->key_id, what, lk->bucket,
                key ? key : "", rs->status, code, sep, rs->message, hint);
        return ERR_CONFIG;
    }
    if (strcmp(code, "NoSuchBucket") == 0) {
        return err_set(e, ERR_CONFIG, "bucket '%s' does not exist at S3 endpoint %s",
                       lk->bucket, lk->endpoint);
    }
    if (strcmp(code, "PermanentRedirect") == 0 || rs->status == 301) {
        return err_set(e, ERR_CONFIG, "bucket '%s' is not in region %s at S3 endpoint %s "
                       "(set AWS_REGION, or DATAOPS_S3_ENDPOINT): HTTP %ld %s%s%s", lk->bucket,
                       lk->region, lk->endpoint, rs->status, code, sep, rs->message);
    }
    return err_set(e, ERR_LAKE, "%s s3://%s/%s at %s: HTTP %ld %s%s%s", what, lk->bucket,
                   key ? key : "", lk->endpoint, rs->status, code, sep, rs->message);
}
