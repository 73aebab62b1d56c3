/*
 * gauth.c - Google OAuth 2.0 access tokens for the Google backends: see
 * gauth.h for the sources and the contract.
 *
 * The service-account flow follows Google's "Using OAuth 2.0 for Server to
 * Server Applications" (developers.google.com/identity/protocols/oauth2/
 * service-account), step by step:
 *   1. the JWT header {"alg":"RS256","typ":"JWT","kid":<private_key_id>};
 *   2. the claim set {iss: client_email, scope, aud: token_uri, iat, exp =
 *      iat + 3600};
 *   3. base64url(header) "." base64url(claims), signed with RSASSA-PKCS1-v1_5
 *      over SHA-256 (OpenSSL EVP_DigestSign), and the signature appended;
 *   4. POST token_uri, application/x-www-form-urlencoded, grant_type=
 *      urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>;
 *      the answer is {"access_token", "expires_in", "token_type": "Bearer"},
 *      a refusal {"error", "error_description"} with a 4xx.
 * The metadata server (GKE Workload Identity, GCE) answers the same JSON to
 * GET /computeMetadata/v1/instance/service-accounts/default/token with the
 * header Metadata-Flavor: Google.
 *
 * Secrets: the key file's text and the private key's PEM are wiped as soon
 * as the key is parsed (only OpenSSL's EVP_PKEY keeps it); the assertion is
 * wiped after the exchange; tokens are registered with log_add_secret() and
 * handed out as copies.  Error messages name files, URLs, the account and
 * what the server said, never a key, an assertion or a token.
 *
 * One attempt per call: retries of transient failures (ERR_NET,
 * ERR_HTTP_RETRY) are the caller's (gapi.c), like every Google call.
 */
#include "google/gauth.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "google/b64.h"
#include "util/curl_util.h"
#include "util/interrupt.h"
#include "util/log.h"

#define KEY_FILE_MAX (64u << 10)
#define TOKEN_MAX 4096
#define RESP_MAX (64u << 10)
#define JWT_LIFETIME_S 3600
#define SKEW_MAX_MS (5 * 60 * 1000LL)
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define DEFAULT_METADATA_HOST "metadata.google.internal"

enum gauth_kind { GAUTH_KEY_FILE, GAUTH_METADATA };

struct gauth {
    enum gauth_kind kind;
    EVP_PKEY *key;
    char principal[256];     /* client_email, or "metadata-server" */
    char key_id[128];        /* private_key_id: the JWT's kid */
    char token_uri[1024];    /* key file: where the JWT is exchanged */
    char metadata_url[1200]; /* metadata server: the token URL */
    char source[1024];       /* token_uri or metadata URL without query */
    char scope[512];
    char token[TOKEN_MAX];
    int64_t expires_ms;      /* 0 = no token cached */
    int64_t skew_ms;
    unsigned fetches;
    CURL *curl;
};

/* === key file ============================================================ */

/* "(type "xyz")" when the value is a short plain word, else "": a type we do
 * not support is shown to help the operator, anything odd is not echoed. */
static void describe_type(const char *t, char *out, size_t n)
{
    size_t len = strlen(t);
    out[0] = '\0';
    if (len == 0 || len > 40) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-')) {
            return;
        }
    }
    snprintf(out, n, " \"%s\"", t);
}

static int read_key_file(const char *path, struct buf *b, struct err *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            return err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' "
                           "does not exist", path);
        }
        return err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: cannot access the key "
                       "file '%s': %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: '%s' is not a regular "
                       "file", path);
    }
    if ((size_t)st.st_size > KEY_FILE_MAX) {
        return err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' is "
                       "larger than %u bytes; it is not a service-account key", path,
                       KEY_FILE_MAX);
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        return err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: cannot read the key "
                       "file '%s': %s", path, strerror(errno));
    }
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(b, chunk, n) != 0) {
            rc = err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' is "
                         "larger than %u bytes", path, KEY_FILE_MAX);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: cannot read the key "
                     "file '%s': %s", path, strerror(errno));
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    fclose(f);
    return rc;
}

static void wipe_buf(struct buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
    }
    buf_free(b);
}

/* Wipe every string in a parsed key file before cJSON frees it. */
static void wipe_json(cJSON *j)
{
    for (cJSON *c = j; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring) {
            OPENSSL_cleanse(c->valuestring, strlen(c->valuestring));
        }
        if (c->child) {
            wipe_json(c->child);
        }
    }
}

static int copy_field(const cJSON *j, const char *name, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= n) {
        return -1;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int load_key_file(struct gauth *g, const char *path, struct err *e)
{
    struct buf text;
    buf_init(&text, KEY_FILE_MAX);
    cJSON *j = NULL;
    BIO *bio = NULL;
    int rc = read_key_file(path, &text, e);
    if (rc != 0) {
        goto out;
    }
    rc = ERR_CONFIG;
    j = cJSON_ParseWithLength(text.data ? text.data : "", text.len);
    if (!j || !cJSON_IsObject(j)) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' is not a "
                "JSON object (download a JSON key of a service account)", path);
        goto out;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(type)) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' has no "
                "\"type\"; expected a service-account key (\"type\": \"service_account\")",
                path);
        goto out;
    }
    if (strcmp(type->valuestring, "service_account") != 0) {
        char shown[64];
        describe_type(type->valuestring, shown, sizeof(shown));
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' is of "
                "type%s; only service-account keys (\"service_account\") are supported "
                "(on GKE, unset it to use Workload Identity)", path, shown);
        goto out;
    }
    if (copy_field(j, "client_email", g->principal, sizeof(g->principal)) != 0 ||
        !strchr(g->principal, '@')) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' has no "
                "valid client_email", path);
        goto out;
    }
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(j, "private_key");
    if (!cJSON_IsString(pk) || !pk->valuestring[0]) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the key file '%s' has no "
                "private_key", path);
        goto out;
    }
    if (copy_field(j, "token_uri", g->token_uri, sizeof(g->token_uri)) != 0) {
        snprintf(g->token_uri, sizeof(g->token_uri), "%s", DEFAULT_TOKEN_URI);
    }
    if (strncmp(g->token_uri, "https://", 8) != 0 && strncmp(g->token_uri, "http://", 7) != 0) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the token_uri of the key file "
                "'%s' is not an http(s) URL", path);
        goto out;
    }
    if (copy_field(j, "private_key_id", g->key_id, sizeof(g->key_id)) != 0) {
        g->key_id[0] = '\0';
    }
    bio = BIO_new_mem_buf(pk->valuestring, (int)strlen(pk->valuestring));
    g->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    /* OpenSSL's queue says where the PEM broke; it never goes to a message. */
    ERR_clear_error();
    if (!g->key) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the private_key of the key "
                "file '%s' is not a PEM private key", path);
        goto out;
    }
    if (EVP_PKEY_base_id(g->key) != EVP_PKEY_RSA) {
        err_set(e, ERR_CONFIG, "GOOGLE_APPLICATION_CREDENTIALS: the private_key of the key "
                "file '%s' is not an RSA key (RS256 needs one)", path);
        goto out;
    }
    rc = 0;
out:
    BIO_free(bio);
    if (j) {
        wipe_json(j);
        cJSON_Delete(j);
    }
    wipe_buf(&text);
    return rc;
}

/* === JWT ================================================================= */

/* header "." claims, each base64url, then "." and the RS256 signature. */
static int sign_jwt(EVP_PKEY *key, const struct buf *header, const struct buf *claims,
                    struct buf *out, struct err *e)
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    size_t start = out->len;
    int rc = ERR_NOMEM;
    if (b64url_append(out, header->data, header->len) != 0 || buf_putc(out, '.') != 0 ||
        b64url_append(out, claims->data, claims->len) != 0) {
        err_set(e, rc, "out of memory");
        goto out;
    }
    rc = ERR_CONFIG;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)out->data + start,
                       out->len - start) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out->data + start,
                       out->len - start) != 1) {
        ERR_clear_error();
        err_set(e, rc, "cannot sign the service-account JWT with the key's private_key");
        goto out;
    }
    if (buf_putc(out, '.') != 0 || b64url_append(out, sig, siglen) != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(sig);
    return rc;
}

static int json_field(struct buf *b, const char *name, const char *value, int comma)
{
    int rc = buf_printf(b, "%s\"%s\":\"", comma ? "," : "", name);
    rc |= buf_json_escape(b, value, strlen(value));
    rc |= buf_putc(b, '"');
    return rc;
}

int gauth_assertion(struct gauth *g, int64_t now_ms, struct buf *out, struct err *e)
{
    if (g->kind != GAUTH_KEY_FILE) {
        return err_set(e, ERR_CONFIG, "the metadata server needs no JWT assertion");
    }
    struct buf header;
    struct buf claims;
    buf_init(&header, 4096);
    buf_init(&claims, 8192);
    int64_t iat = now_ms / 1000;
    int rc = buf_puts(&header, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
    if (g->key_id[0]) {
        rc |= json_field(&header, "kid", g->key_id, 1);
    }
    rc |= buf_putc(&header, '}');
    rc |= buf_putc(&claims, '{');
    rc |= json_field(&claims, "iss", g->principal, 0);
    rc |= json_field(&claims, "scope", g->scope, 1);
    rc |= json_field(&claims, "aud", g->token_uri, 1);
    rc |= buf_printf(&claims, ",\"iat\":%lld,\"exp\":%lld}", (long long)iat,
                     (long long)(iat + JWT_LIFETIME_S));
    if (rc != 0) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
    }
    else {
        rc = sign_jwt(g->key, &header, &claims, out, e);
    }
    buf_free(&header);
    buf_free(&claims);
    return rc;
}

/* === HTTP ================================================================ */

/* One request to the token source: POST form (body != NULL) or GET with
 * Metadata-Flavor.  0 with *status set when a response arrived. */
static int token_request(struct gauth *g, const char *url, const char *body, struct buf *resp,
                         long *status, struct err *e)
{
    if (!g->curl && !(g->curl = curl_easy_init())) {
        return err_set(e, ERR_NOMEM, "cannot create an HTTP client");
    }
    CURL *h = g->curl;
    struct curl_sink s = {resp, 0};
    struct curl_slist *hdr = NULL;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, curl_abort_on_signal);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dataops/0.1 (+libcurl)");
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    else {
        hdr = curl_slist_append(hdr, "Metadata-Flavor: Google");
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(h);
    /* The POST body held the assertion: let the handle forget it. */
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(hdr);
    if (cc == CURLE_ABORTED_BY_CALLBACK && interrupt_requested()) {
        return err_set(e, ERR_INTERRUPTED, "token request to %s interrupted by a signal",
                       g->source);
    }
    if (s.too_big) {
        return err_set(e, ERR_HTTP_RETRY, "the answer of %s is larger than %u bytes", g->source,
                       RESP_MAX);
    }
    if (cc != CURLE_OK) {
        if (g->kind == GAUTH_METADATA && cc == CURLE_COULDNT_RESOLVE_HOST) {
            return err_set(e, ERR_CONFIG, "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS "
                           "is not set and the metadata server (%s) cannot be resolved; set "
                           "it to a service-account key file, or run on GKE with Workload "
                           "Identity", g->source);
        }
        return err_set(e, ERR_NET, "cannot get an access token from %s: %s", g->source,
                       curl_easy_strerror(cc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* Printable ASCII of s, at most max characters, into out (server text). */
static void clean_text(const char *s, char *out, size_t n, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 1 < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    out[o] = '\0';
}

static int refused(struct gauth *g, long status, const struct buf *resp, struct err *e)
{
    char what[160] = "";
    char why[320] = "";
    cJSON *j = cJSON_ParseWithLength(resp->data ? resp->data : "", resp->len);
    const cJSON *er = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    const cJSON *desc = j ? cJSON_GetObjectItemCaseSensitive(j, "error_description") : NULL;
    if (cJSON_IsString(er)) {
        clean_text(er->valuestring, what, sizeof(what), 100);
    }
    else if (cJSON_IsObject(er)) {
        /* Google APIs' error shape: {"error": {"code", "message", "status"}} */
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(er, "status");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(er, "message");
        if (cJSON_IsString(st)) {
            clean_text(st->valuestring, what, sizeof(what), 100);
        }
        if (cJSON_IsString(msg)) {
            clean_text(msg->valuestring, why, sizeof(why), 300);
        }
    }
    if (cJSON_IsString(desc)) {
        clean_text(desc->valuestring, why, sizeof(why), 300);
    }
    cJSON_Delete(j);
    int code = (status == 429 || status >= 500) ? ERR_HTTP_RETRY : ERR_HTTP_FATAL;
    if (e) {
        e->http = (int)status;
    }
    return err_set(e, code, "the token endpoint %s refused %s: HTTP %ld%s%s%s%s%s", g->source,
                   g->principal, status, what[0] ? " " : "", what, why[0] ? " (" : "", why,
                   why[0] ? ")" : "");
}

static int parse_token(struct gauth *g, int64_t now_ms, const struct buf *resp, struct err *e)
{
    cJSON *j = cJSON_ParseWithLength(resp->data ? resp->data : "", resp->len);
    const cJSON *tok = j ? cJSON_GetObjectItemCaseSensitive(j, "access_token") : NULL;
    const cJSON *exp = j ? cJSON_GetObjectItemCaseSensitive(j, "expires_in") : NULL;
    const cJSON *typ = j ? cJSON_GetObjectItemCaseSensitive(j, "token_type") : NULL;
    int rc = ERR_HTTP_RETRY;
    if (!cJSON_IsString(tok) || !tok->valuestring[0] ||
        strlen(tok->valuestring) >= sizeof(g->token) ||
        strcspn(tok->valuestring, " \t\r\n\"") != strlen(tok->valuestring)) {
        err_set(e, rc, "the answer of %s has no usable access_token", g->source);
        goto out;
    }
    if (cJSON_IsString(typ) && strcasecmp(typ->valuestring, "Bearer") != 0) {
        err_set(e, ERR_HTTP_FATAL, "%s issued a token of type other than Bearer", g->source);
        rc = ERR_HTTP_FATAL;
        goto out;
    }
    double lifetime_s = cJSON_IsNumber(exp) ? exp->valuedouble : 3600.0;
    if (lifetime_s < 1) {
        lifetime_s = 1;
    }
    if (lifetime_s > 86400) {
        lifetime_s = 86400;
    }
    memcpy(g->token, tok->valuestring, strlen(tok->valuestring) + 1);
    log_add_secret(g->token);
    int64_t life_ms = (int64_t)(lifetime_s * 1000);
    g->skew_ms = life_ms / 4 < SKEW_MAX_MS ? life_ms / 4 : SKEW_MAX_MS;
    g->expires_ms = now_ms + life_ms;
    g->fetches++;
    rc = 0;
out:
    if (j) {
        wipe_json(j);
        cJSON_Delete(j);
    }
    return rc;
}

static int fetch_token(struct gauth *g, int64_t now_ms, struct err *e)
{
    struct buf resp;
    struct buf body;
    buf_init(&resp, RESP_MAX);
    buf_init(&body, 64u << 10);
    long status = 0;
    int rc;
    if (g->kind == GAUTH_KEY_FILE) {
        rc = buf_puts(&body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                             "&assertion=") != 0 ? err_set(e, ERR_NOMEM, "out of memory")
                                                : gauth_assertion(g, now_ms, &body, e);
        if (rc == 0) {
            rc = token_request(g, g->token_uri, body.data, &resp, &status, e);
        }
    }
    else {
        rc = token_request(g, g->metadata_url, NULL, &resp, &status, e);
    }
    if (rc == 0) {
        if (status == 200) {
            rc = parse_token(g, now_ms, &resp, e);
        }
        else if (g->kind == GAUTH_METADATA && status == 404) {
            if (e) {
                e->http = 404;
            }
            rc = err_set(e, ERR_HTTP_FATAL, "the metadata server (%s) has no service-account "
                         "token: HTTP 404 (on GKE, bind the pod's Kubernetes service account "
                         "to a Google service account with Workload Identity)", g->source);
        }
        else {
            rc = refused(g, status, &resp, e);
        }
    }
    wipe_buf(&body);
    wipe_buf(&resp);
    return rc;
}

/* === public ============================================================== */

/* "https://host/path" of url, without the query (which may carry secrets). */
static void without_query(const char *url, char *out, size_t n)
{
    snprintf(out, n, "%.*s", (int)strcspn(url, "?#"), url);
}

int gauth_create(const char *key_path, const char *scope, struct gauth **out, struct err *e)
{
    struct gauth *g = calloc(1, sizeof(*g));
    if (!g) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(g);
        return err_set(e, ERR_NET, "cannot initialise libcurl");
    }
    snprintf(g->scope, sizeof(g->scope), "%s", scope && scope[0] ? scope : GAUTH_SCOPE_CLOUD);
    if (key_path && key_path[0]) {
        g->kind = GAUTH_KEY_FILE;
        int rc = load_key_file(g, key_path, e);
        if (rc != 0) {
            gauth_destroy(g);
            return rc;
        }
        without_query(g->token_uri, g->source, sizeof(g->source));
    }
    else {
        g->kind = GAUTH_METADATA;
        snprintf(g->principal, sizeof(g->principal), "metadata-server");
        const char *host = getenv("GCE_METADATA_HOST");
        if (!host || !host[0]) {
            host = DEFAULT_METADATA_HOST;
        }
        if (strncmp(host, "http://", 7) == 0) {
            host += 7;
        }
        char *esc = curl_easy_escape(NULL, g->scope, 0);
        int n = snprintf(g->metadata_url, sizeof(g->metadata_url),
                         "http://%.*s/computeMetadata/v1/instance/service-accounts/default/token"
                         "?scopes=%s", (int)strcspn(host, "/"), host, esc ? esc : "");
        curl_free(esc);
        if (n < 0 || (size_t)n >= sizeof(g->metadata_url)) {
            gauth_destroy(g);
            return err_set(e, ERR_CONFIG, "GCE_METADATA_HOST is too long");
        }
        without_query(g->metadata_url, g->source, sizeof(g->source));
    }
    *out = g;
    return 0;
}

void gauth_destroy(struct gauth *g)
{
    if (!g) {
        return;
    }
    EVP_PKEY_free(g->key);
    if (g->curl) {
        curl_easy_cleanup(g->curl);
    }
    OPENSSL_cleanse(g->token, sizeof(g->token));
    free(g);
}

int gauth_token(struct gauth *g, int64_t now_ms, char *out, size_t n, struct err *e)
{
    if (!g->expires_ms || now_ms >= g->expires_ms - g->skew_ms) {
        g->expires_ms = 0;
        int rc = fetch_token(g, now_ms, e);
        if (rc != 0) {
            return rc;
        }
        log_debug("gauth", "access token for %s from %s, valid %llds", g->principal, g->source,
                  (long long)((g->expires_ms - now_ms) / 1000));
    }
    size_t len = strlen(g->token);
    if (len >= n) {
        return err_set(e, ERR_INVALID, "access token longer than %zu bytes", n);
    }
    memcpy(out, g->token, len + 1);
    return 0;
}

void gauth_invalidate(struct gauth *g)
{
    if (g) {
        g->expires_ms = 0;
    }
}

const char *gauth_principal(const struct gauth *g)
{
    return g->principal;
}

const char *gauth_source(const struct gauth *g)
{
    return g->source;
}

unsigned gauth_fetches(const struct gauth *g)
{
    return g->fetches;
}
