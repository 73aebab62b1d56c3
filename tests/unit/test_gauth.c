/*
 * test_gauth.c - the shared Google auth: base64/base64url and CRC-32C
 * vectors, the service-account JWT (structure, claims for a fixed now, RS256
 * signature checked with the public key), key-file errors that never show
 * the key, and the token cache against a tiny loopback token endpoint and
 * metadata server run in a thread of this test.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "google/b64.h"
#include "google/crc32c.h"
#include "google/gauth.h"
#include "util/buf.h"

#define T0 1700000000123LL   /* a fixed "now", in ms */

static char tmpdir[256];
static char key_pem[4096];     /* the private key's PEM, to grep for leaks */
static EVP_PKEY *pkey;

/* === vectors ============================================================= */

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[32];
        b64_encode(in[i], strlen(in[i]), out);
        assert_string_equal(out, std[i]);
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(b64url_append(&b, in[i], strlen(in[i])), 0);
        assert_string_equal(b.data ? b.data : "", url[i]);
        buf_free(&b);
        unsigned char dec[16];
        size_t n = 99;
        assert_int_equal(b64_decode(std[i], strlen(std[i]), dec, sizeof(dec), &n), 0);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(dec, in[i], n);
    }
    /* The URL alphabet: bytes that give '+' and '/' in the standard one. */
    const unsigned char odd[] = {0xfb, 0xff, 0xbf};
    char out[8];
    b64_encode(odd, 3, out);
    assert_string_equal(out, "+/+/");
    struct buf b;
    buf_init(&b, 0);
    b64url_append(&b, odd, 3);
    assert_string_equal(b.data, "-_-_");
    buf_free(&b);
    unsigned char dec[4];
    size_t n;
    assert_int_equal(b64_decode("Zm9v!", 5, dec, sizeof(dec), &n), -1);
    assert_int_equal(b64_decode("Zm9vYmFy", 8, dec, 4, &n), -1);
}

static void test_crc32c_vectors(void **state)
{
    (void)state;
    unsigned char buf[32];
    assert_int_equal(crc32c_update(0, "123456789", 9), 0xE3069283u);
    /* RFC 3720, appendix B.4. */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(crc32c_update(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(crc32c_update(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (unsigned char)i;
    }
    assert_int_equal(crc32c_update(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (unsigned char)(31 - i);
    }
    assert_int_equal(crc32c_update(0, buf, 32), 0x113FDB5Cu);
    /* Streaming in any split gives the one-shot value. */
    const char *text = "The quick brown fox jumps over the lazy dog, twice over.";
    uint32_t whole = crc32c_update(0, text, strlen(text));
    for (size_t cut = 0; cut <= strlen(text); cut++) {
        uint32_t c = crc32c_update(0, text, cut);
        assert_int_equal(crc32c_update(c, text + cut, strlen(text) - cut), whole);
    }
    /* Cloud Storage's form: base64 of the big-endian bytes. */
    uint32_t v = crc32c_update(0, "hello world", 11);
    unsigned char be[4] = {v >> 24, v >> 16, v >> 8, v};
    char out[16];
    b64_encode(be, 4, out);
    assert_string_equal(out, "yZRlqg==");
}

/* === a key file ========================================================== */

static void write_key_file(const char *path, const char *type, const char *token_uri,
                           const char *pem, int with_key)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", type);
    cJSON_AddStringToObject(j, "project_id", "test-project");
    cJSON_AddStringToObject(j, "private_key_id", "0123abcd");
    if (with_key) {
        cJSON_AddStringToObject(j, "private_key", pem);
    }
    cJSON_AddStringToObject(j, "client_email", "sa@test-project.iam.gserviceaccount.com");
    if (token_uri) {
        cJSON_AddStringToObject(j, "token_uri", token_uri);
    }
    char *text = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(j);
}

static int setup_key(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_gauth.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return -1;
    }
    pkey = EVP_RSA_gen(2048);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL);
    int n = BIO_read(b, key_pem, sizeof(key_pem) - 1);
    key_pem[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    return pkey ? 0 : -1;
}

static int teardown_key(void **state)
{
    (void)state;
    EVP_PKEY_free(pkey);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A line from the middle of the PEM body: no message may contain it. */
static void assert_no_key(const char *msg)
{
    char line[80];
    const char *p = strchr(key_pem, '\n') + 1;
    p = strchr(p, '\n') + 1;
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
    assert_true(strlen(line) > 20);
    assert_null(strstr(msg, line));
    assert_null(strstr(msg, "eyJ"));   /* a JWT */
}

static cJSON *decode_part(const char *p, size_t n)
{
    unsigned char out[2048];
    size_t len;
    assert_int_equal(b64_decode(p, n, out, sizeof(out) - 1, &len), 0);
    out[len] = '\0';
    return cJSON_Parse((char *)out);
}

static void test_jwt_structure_claims_and_signature(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "%s/key.json", tmpdir);
    write_key_file(path, "service_account", "https://oauth2.example.test/token", key_pem, 1);
    struct gauth *g = NULL;
    struct err e;
    assert_int_equal(gauth_create(path, GAUTH_SCOPE_CLOUD, &g, &e), 0);
    assert_string_equal(gauth_principal(g), "sa@test-project.iam.gserviceaccount.com");
    assert_string_equal(gauth_source(g), "https://oauth2.example.test/token");
    struct buf jwt;
    buf_init(&jwt, 0);
    assert_int_equal(gauth_assertion(g, T0, &jwt, &e), 0);
    const char *d1 = strchr(jwt.data, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_null(strpbrk(jwt.data, "+/="));   /* base64url, unpadded */

    cJSON *h = decode_part(jwt.data, (size_t)(d1 - jwt.data));
    assert_string_equal(cJSON_GetObjectItem(h, "alg")->valuestring, "RS256");
    assert_string_equal(cJSON_GetObjectItem(h, "typ")->valuestring, "JWT");
    assert_string_equal(cJSON_GetObjectItem(h, "kid")->valuestring, "0123abcd");
    cJSON_Delete(h);
    cJSON *c = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring,
                        "sa@test-project.iam.gserviceaccount.com");
    assert_string_equal(cJSON_GetObjectItem(c, "scope")->valuestring, GAUTH_SCOPE_CLOUD);
    assert_string_equal(cJSON_GetObjectItem(c, "aud")->valuestring,
                        "https://oauth2.example.test/token");
    assert_int_equal((int64_t)cJSON_GetObjectItem(c, "iat")->valuedouble, 1700000000);
    assert_int_equal((int64_t)cJSON_GetObjectItem(c, "exp")->valuedouble, 1700003600);
    cJSON_Delete(c);

    /* RS256: PKCS#1 v1.5 over SHA-256 of "header.claims", with the public key. */
    unsigned char sig[512];
    size_t siglen;
    assert_int_equal(b64_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig), &siglen), 0);
    assert_int_equal(siglen, 256);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestVerify(ctx, sig, siglen, (unsigned char *)jwt.data,
                                      (size_t)(d2 - jwt.data)), 1);
    /* A changed claim no longer verifies. */
    jwt.data[d1 - jwt.data + 5] ^= 1;
    EVP_MD_CTX_reset(ctx);
    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey);
    assert_int_not_equal(EVP_DigestVerify(ctx, sig, siglen, (unsigned char *)jwt.data,
                                          (size_t)(d2 - jwt.data)), 1);
    EVP_MD_CTX_free(ctx);
    buf_free(&jwt);
    gauth_destroy(g);
}

static void expect_key_error(const char *path, const char *want)
{
    struct gauth *g = NULL;
    struct err e;
    err_clear(&e);
    int rc = gauth_create(path, NULL, &g, &e);
    assert_int_equal(rc, ERR_CONFIG);
    assert_null(g);
    if (!strstr(e.msg, want) || !strstr(e.msg, path)) {
        fail_msg("message '%s' lacks '%s' or the path", e.msg, want);
    }
    assert_no_key(e.msg);
}

static void test_key_file_errors(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
    expect_key_error(path, "does not exist");

    snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s", key_pem);   /* a PEM, not JSON */
    fclose(f);
    expect_key_error(path, "is not a JSON object");

    write_key_file(path, "authorized_user", NULL, key_pem, 1);
    expect_key_error(path, "\"authorized_user\"");
    write_key_file(path, "external_account", NULL, key_pem, 1);
    expect_key_error(path, "only service-account keys");
    write_key_file(path, "service_account", NULL, key_pem, 0);
    expect_key_error(path, "has no private_key");

    /* A PEM with its body damaged. */
    char broken[4096];
    snprintf(broken, sizeof(broken), "%s", key_pem);
    memcpy(strchr(broken, '\n') + 10, "!!!!", 4);
    write_key_file(path, "service_account", NULL, broken, 1);
    expect_key_error(path, "is not a PEM private key");

    /* An EC key cannot sign RS256. */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL);
    char ecpem[1024];
    int n = BIO_read(b, ecpem, sizeof(ecpem) - 1);
    ecpem[n] = '\0';
    BIO_free(b);
    EVP_PKEY_free(ec);
    write_key_file(path, "service_account", NULL, ecpem, 1);
    expect_key_error(path, "not an RSA key");

    if (geteuid() != 0) {
        write_key_file(path, "service_account", NULL, key_pem, 1);
        chmod(path, 0);
        expect_key_error(path, "cannot read");
    }
    snprintf(path, sizeof(path), "%s", tmpdir);
    expect_key_error(path, "not a regular file");
}

/* === a loopback token endpoint =========================================== */

static struct {
    int fd;
    int port;
    int requests;
    int refuse;          /* 1: 400 invalid_grant */
    long expires_in;
    char last_request[8192];
    pthread_mutex_t mu;
} srv = {.expires_in = 3600, .mu = PTHREAD_MUTEX_INITIALIZER};

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        char req[8192];
        size_t len = 0;
        ssize_t k;
        /* Read headers, then Content-Length bytes of body. */
        while (len < sizeof(req) - 1 && (k = read(c, req + len, sizeof(req) - 1 - len)) > 0) {
            len += (size_t)k;
            req[len] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            if (end) {
                char *cl = strcasestr(req, "Content-Length:");
                size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
                if (len >= (size_t)(end + 4 - req) + want) {
                    break;
                }
            }
        }
        char body[512];
        char resp[1024];
        pthread_mutex_lock(&srv.mu);
        srv.requests++;
        snprintf(srv.last_request, sizeof(srv.last_request), "%s", req);
        int status = 200;
        if (strncmp(req, "GET /computeMetadata/", 21) == 0 &&
            !strcasestr(req, "Metadata-Flavor: Google")) {
            status = 403;
            snprintf(body, sizeof(body), "Missing Metadata-Flavor");
        }
        else if (srv.refuse) {
            status = 400;
            snprintf(body, sizeof(body), "{\"error\":\"invalid_grant\",\"error_description\":"
                     "\"Invalid JWT Signature.\"}");
        }
        else {
            snprintf(body, sizeof(body), "{\"access_token\":\"tok-%d-abcdef\",\"expires_in\":%ld,"
                     "\"token_type\":\"Bearer\"}", srv.requests, srv.expires_in);
        }
        pthread_mutex_unlock(&srv.mu);
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
                         strlen(body), body);
        if (write(c, resp, (size_t)n) < 0) {
            perror("write");
        }
        close(c);
    }
}

static int setup_server(void **state)
{
    if (setup_key(state) != 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv.fd, 16) != 0 ||
        getsockname(srv.fd, (struct sockaddr *)&a, &al) != 0) {
        return -1;
    }
    srv.port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    pthread_detach(t);
    return 0;
}

static void test_token_cached_and_renewed_before_expiry(void **state)
{
    (void)state;
    char path[300];
    char uri[100];
    char tok[256];
    struct err e;
    snprintf(path, sizeof(path), "%s/key-local.json", tmpdir);
    snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", srv.port);
    write_key_file(path, "service_account", uri, key_pem, 1);
    struct gauth *g = NULL;
    assert_int_equal(gauth_create(path, NULL, &g, &e), 0);
    srv.requests = 0;
    srv.refuse = 0;
    srv.expires_in = 3600;

    assert_int_equal(gauth_token(g, T0, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-1-abcdef");
    assert_non_null(strstr(srv.last_request, "POST /token"));
    assert_non_null(strstr(srv.last_request, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                                             "grant-type%3Ajwt-bearer&assertion=eyJ"));
    /* Cached while more than the 5-minute skew remains. */
    assert_int_equal(gauth_token(g, T0 + 1000, tok, sizeof(tok), &e), 0);
    assert_int_equal(gauth_token(g, T0 + (3600 - 301) * 1000LL, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-1-abcdef");
    assert_int_equal(srv.requests, 1);
    /* Renewed inside the skew, before the token actually expires. */
    assert_int_equal(gauth_token(g, T0 + (3600 - 299) * 1000LL, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-2-abcdef");
    /* A short-lived token is renewed in the last quarter of its life. */
    srv.expires_in = 8;
    gauth_invalidate(g);
    int64_t t1 = T0 + 4000000;
    assert_int_equal(gauth_token(g, t1, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-3-abcdef");
    assert_int_equal(gauth_token(g, t1 + 5900, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-3-abcdef");
    assert_int_equal(gauth_token(g, t1 + 6100, tok, sizeof(tok), &e), 0);
    assert_string_equal(tok, "tok-4-abcdef");
    assert_int_equal(gauth_fetches(g), 4);
    /* Too small a buffer is an error, not a truncated token. */
    assert_int_equal(gauth_token(g, t1 + 6200, tok, 5, &e), ERR_INVALID);

    /* A refusing endpoint: its error and description, never the JWT. */
    srv.refuse = 1;
    gauth_invalidate(g);
    err_clear(&e);
    assert_int_equal(gauth_token(g, t1 + 7000, tok, sizeof(tok), &e), ERR_HTTP_FATAL);
    assert_int_equal(e.http, 400);
    assert_non_null(strstr(e.msg, "invalid_grant"));
    assert_non_null(strstr(e.msg, "Invalid JWT Signature."));
    assert_non_null(strstr(e.msg, uri));
    assert_non_null(strstr(e.msg, "sa@test-project.iam.gserviceaccount.com"));
    assert_no_key(e.msg);
    srv.refuse = 0;
    gauth_destroy(g);
}

static void test_metadata_server(void **state)
{
    (void)state;
    char host[64];
    char tok[256];
    struct err e;
    snprintf(host, sizeof(host), "127.0.0.1:%d", srv.port);
    setenv("GCE_METADATA_HOST", host, 1);
    struct gauth *g = NULL;
    assert_int_equal(gauth_create(NULL, NULL, &g, &e), 0);
    assert_string_equal(gauth_principal(g), "metadata-server");
    srv.expires_in = 3600;
    assert_int_equal(gauth_token(g, T0, tok, sizeof(tok), &e), 0);
    assert_non_null(strstr(tok, "-abcdef"));
    assert_non_null(strstr(srv.last_request, "GET /computeMetadata/v1/instance/"
                                             "service-accounts/default/token?scopes="));
    assert_non_null(strstr(srv.last_request, "Metadata-Flavor: Google"));
    assert_int_equal(gauth_assertion(g, T0, &(struct buf){0}, &e), ERR_CONFIG);
    gauth_destroy(g);
    unsetenv("GCE_METADATA_HOST");
}

int main(void)
{
    const struct CMUnitTest vectors[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_crc32c_vectors),
    };
    const struct CMUnitTest keys[] = {
        cmocka_unit_test(test_jwt_structure_claims_and_signature),
        cmocka_unit_test(test_key_file_errors),
        cmocka_unit_test(test_token_cached_and_renewed_before_expiry),
        cmocka_unit_test(test_metadata_server),
    };
    int rc = cmocka_run_group_tests_name("gauth vectors", vectors, NULL, NULL);
    rc |= cmocka_run_group_tests_name("gauth keys and tokens", keys, setup_server, teardown_key);
    return rc;
}
