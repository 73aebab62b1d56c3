/*
 * test_s3_sign.c - unit tests of the S3 lake's signing and settings.
 *
 * Signing: libcurl's built-in SigV4 (CURLOPT_AWS_SIGV4, the way
 * src/load/lake_s3_http.c drives it: "aws:amz:<region>:<service>", the key
 * id and secret as user name and password, the payload hash in
 * x-amz-content-sha256, the query string already canonical) signs AWS's
 * published example requests at their fixed instants: the SigV4 test suite's
 * get-vanilla and the four examples of the S3 documentation ("Signature
 * Calculations for the Authorization Header").  libcurl takes the time from
 * an X-Amz-Date header when the request has one, which makes the signatures
 * reproducible; each request goes to a loopback capture server (the host
 * name is kept with CURLOPT_CONNECT_TO) and the Authorization header it
 * received is compared with the published one.  The live traffic of a run
 * is checked against npm's aws4 by tests/integration/test_lake_s3.py.
 *
 * Helpers: the canonical query builder, the XML text extractor, the MD5
 * ETag check.  Settings: lake_open("s3://...") refuses bad configurations
 * with ERR_CONFIG and a message naming the setting, before any request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef DATAOPS_HAVE_S3

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/config.h"
#include "load/lake.h"
#include "load/lake_s3.h"
#include "util/err.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* === a one-request loopback capture server ============================ */

struct capture {
    int listen_fd;
    int port;
    char request[8192];
    pthread_t thread;
};

static void *serve_one(void *arg)
{
    struct capture *c = arg;
    int fd = accept(c->listen_fd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    size_t n = 0;
    while (n + 1 < sizeof(c->request)) {
        ssize_t k = read(fd, c->request + n, sizeof(c->request) - 1 - n);
        if (k <= 0) {
            break;
        }
        n += (size_t)k;
        c->request[n] = '\0';
        char *end = strstr(c->request, "\r\n\r\n");
        const char *cl = strstr(c->request, "Content-Length: ");
        size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (end && n >= (size_t)(end + 4 - c->request) + body) {
            break;
        }
    }
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ssize_t w = write(fd, reply, sizeof(reply) - 1);
    (void)w;
    close(fd);
    return NULL;
}

static void capture_start(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    c->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->listen_fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(c->listen_fd, 1), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(c->listen_fd, (struct sockaddr *)&a, &len), 0);
    c->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&c->thread, NULL, serve_one, c), 0);
}

static void capture_stop(struct capture *c)
{
    pthread_join(c->thread, NULL);
    close(c->listen_fd);
}

/* === published vectors ================================================ */

struct vector {
    const char *name;
    const char *method;
    const char *host;
    const char *path;           /* path and canonical query, as sent */
    const char *service;
    const char *key_id;
    const char *secret;
    const char *headers[6];     /* besides Host */
    const char *body;           /* PUT body, or NULL */
    const char *signed_headers;
    const char *signature;
};

#define S3_KEY "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define S3_DATE "X-Amz-Date: 20130524T000000Z"

static const struct vector vectors[] = {
    {"aws-sig-v4-test-suite get-vanilla", "GET", "example.amazonaws.com", "/", "service",
     "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
     {"X-Amz-Date: 20150830T123600Z", NULL}, NULL, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"S3 GET Object", "GET", S3_HOST, "/test.txt", "s3", S3_KEY, S3_SECRET,
     {"Range: bytes=0-9", "x-amz-content-sha256: " EMPTY_SHA256, S3_DATE, NULL}, NULL,
     "host;range;x-amz-content-sha256;x-amz-date",
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
    {"S3 PUT Object", "PUT", S3_HOST, "/test%24file.text", "s3", S3_KEY, S3_SECRET,
     {"Date: Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class: REDUCED_REDUNDANCY",
      "x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      S3_DATE, NULL},
     "Welcome to Amazon S3.", "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
    /* libcurl signs the query as written: "lifecycle=" is the canonical form. */
    {"S3 GET Bucket Lifecycle", "GET", S3_HOST, "/?lifecycle=", "s3", S3_KEY, S3_SECRET,
     {"x-amz-content-sha256: " EMPTY_SHA256, S3_DATE, NULL}, NULL,
     "host;x-amz-content-sha256;x-amz-date",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
    {"S3 Get Bucket (List Objects)", "GET", S3_HOST, "/?max-keys=2&prefix=J", "s3", S3_KEY,
     S3_SECRET, {"x-amz-content-sha256: " EMPTY_SHA256, S3_DATE, NULL}, NULL,
     "host;x-amz-content-sha256;x-amz-date",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
};

struct body_src {
    const char *p;
    size_t left;
};

static size_t read_body(char *out, size_t size, size_t n, void *ud)
{
    struct body_src *b = ud;
    size_t k = b->left < size * n ? b->left : size * n;
    memcpy(out, b->p, k);
    b->p += k;
    b->left -= k;
    return k;
}

static void test_published_vectors(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        struct capture cap;
        capture_start(&cap);
        CURL *h = curl_easy_init();
        assert_non_null(h);
        char url[256], connect_to[256], sigv4[64];
        snprintf(url, sizeof(url), "http://%s%s", v->host, v->path);
        snprintf(connect_to, sizeof(connect_to), "%s:80:127.0.0.1:%d", v->host, cap.port);
        snprintf(sigv4, sizeof(sigv4), "aws:amz:us-east-1:%s", v->service);
        struct curl_slist *hd = NULL;
        for (int j = 0; v->headers[j]; j++) {
            hd = curl_slist_append(hd, v->headers[j]);
        }
        struct curl_slist *ct = curl_slist_append(NULL, connect_to);
        struct body_src src = {v->body, v->body ? strlen(v->body) : 0};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, v->key_id);
        curl_easy_setopt(h, CURLOPT_PASSWORD, v->secret);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
        if (strcmp(v->method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
            curl_easy_setopt(h, CURLOPT_READDATA, &src);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)src.left);
        }
        CURLcode rc = curl_easy_perform(h);
        capture_stop(&cap);
        curl_easy_cleanup(h);
        curl_slist_free_all(hd);
        curl_slist_free_all(ct);
        if (rc != CURLE_OK) {
            fail_msg("%s: %s", v->name, curl_easy_strerror(rc));
        }
        const char *auth = strstr(cap.request, "\r\nAuthorization: ");
        if (!auth) {
            fail_msg("%s: no Authorization header in:\n%s", v->name, cap.request);
        }
        char want[400];
        snprintf(want, sizeof(want), "SignedHeaders=%s, Signature=%s\r\n", v->signed_headers,
                 v->signature);
        const char *eol = strstr(auth + 2, "\r\n");
        if (!strstr(auth, want) || strstr(auth, want) > eol) {
            fail_msg("%s: libcurl signed\n  %.*s\nwanted\n  ...%s", v->name,
                     (int)(eol - auth - 2), auth + 2, want);
        }
    }
    curl_global_cleanup();
}

/* === helpers ========================================================== */

static void test_query_add(void **state)
{
    (void)state;
    char q[128] = "";
    assert_int_equal(s3_query_add(q, sizeof(q), "partNumber", "12"), 0);
    assert_int_equal(s3_query_add(q, sizeof(q), "uploadId", "a+b/c=d e~f_g-h.i"), 0);
    assert_string_equal(q, "partNumber=12&uploadId=a%2Bb%2Fc%3Dd%20e~f_g-h.i");
    char e[32] = "";
    assert_int_equal(s3_query_add(e, sizeof(e), "uploads", ""), 0);
    assert_string_equal(e, "uploads=");
    char small[16] = "";
    assert_int_equal(s3_query_add(small, sizeof(small), "uploadId", "0123456789"), -1);
    assert_string_equal(small, "");
}

static void test_xml_text(void **state)
{
    (void)state;
    char out[64];
    const char *err = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code>"
                      "<Message>The key &quot;X&quot; &amp; co\n do not exist</Message></Error>";
    assert_int_equal(s3_xml_text(err, "Code", out, sizeof(out)), 0);
    assert_string_equal(out, "InvalidAccessKeyId");
    assert_int_equal(s3_xml_text(err, "Message", out, sizeof(out)), 0);
    assert_string_equal(out, "The key \"X\" & co  do not exist");
    assert_int_equal(s3_xml_text(err, "UploadId", out, sizeof(out)), -1);
    assert_int_equal(s3_xml_text("<ETag>&quot;abc-2&quot;</ETag>", "ETag", out, 4), 0);
    assert_string_equal(out, "\"ab");
    assert_int_equal(s3_xml_text("<Code>unterminated", "Code", out, sizeof(out)), -1);
}

static void test_md5_hex(void **state)
{
    (void)state;
    assert_true(s3_is_md5_hex("9dd4e461268c8034f5c8564e155c67a6"));
    assert_true(s3_is_md5_hex("9DD4E461268C8034F5C8564E155C67A6"));
    assert_false(s3_is_md5_hex("9dd4e461268c8034f5c8564e155c67a6-3"));
    assert_false(s3_is_md5_hex("9dd4e461268c8034f5c8564e155c67a"));
    assert_false(s3_is_md5_hex(""));
    unsigned char md[16];
    for (int i = 0; i < 16; i++) {
        md[i] = (unsigned char)(i * 17);
    }
    char hex[33];
    s3_hex16(md, hex);
    assert_string_equal(hex, "00112233445566778899aabbccddeeff");
}

/* === settings refused before any request ============================== */

static void expect_config_error(const char *url, const char *flag, const char *value,
                                const char *needle)
{
    struct config c;
    struct err e;
    err_clear(&e);
    /* An empty .env file: the settings come from the environment alone. */
    assert_int_equal(config_init(&c, "/dev/null", &e), 0);
    if (flag) {
        assert_int_equal(config_set_flag(&c, flag, value, &e), 0);
    }
    struct lake *lk = NULL;
    int rc = lake_open(url, &c, &lk, &e);
    config_free(&c);
    if (rc != ERR_CONFIG || !strstr(e.msg, needle)) {
        fail_msg("lake_open(%s, %s=%s): rc %d, message '%s' (wanted ERR_CONFIG naming '%s')",
                 url, flag ? flag : "-", value ? value : "-", rc, e.msg, needle);
    }
    assert_null(lk);
    assert_null(strstr(e.msg, "UnitTestSecret"));
}

static void test_settings_refused(void **state)
{
    (void)state;
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("DATAOPS_S3_PART_SIZE");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    expect_config_error("s3://bucket/p", NULL, NULL, "AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY are not set");
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    expect_config_error("s3://bucket/p", NULL, NULL, "AWS_SECRET_ACCESS_KEY is not set");
    setenv("AWS_SECRET_ACCESS_KEY", "UnitTestSecret", 1);
    expect_config_error("s3://", NULL, NULL, "s3://BUCKET");
    expect_config_error("s3://bad*name/p", NULL, NULL, "bucket name");
    expect_config_error("s3://bucket/a//b", NULL, NULL, "prefix");
    expect_config_error("s3://bucket/p", "s3-addressing", "sideways", "DATAOPS_S3_ADDRESSING");
    expect_config_error("s3://bucket/p", "s3-region", "Mars 1", "AWS_REGION");
    expect_config_error("s3://bucket/p", "s3-endpoint", "ftp://host", "DATAOPS_S3_ENDPOINT");
    expect_config_error("s3://bucket/p", "s3-endpoint", "http://u:pw@host:9000",
                        "must not hold credentials");
    /* Virtual-host style needs a host name for the bucket to go in front of. */
    setenv("DATAOPS_S3_ADDRESSING", "virtual", 1);
    expect_config_error("s3://bucket/p", "s3-endpoint", "http://127.0.0.1:9000", "use path");
    expect_config_error("s3://Bucket_1/p", NULL, NULL, "use path");
    unsetenv("DATAOPS_S3_ADDRESSING");
    setenv("DATAOPS_S3_PART_SIZE", "12X", 1);
    expect_config_error("s3://bucket/p", NULL, NULL, "DATAOPS_S3_PART_SIZE");
    setenv("DATAOPS_S3_PART_SIZE", "6G", 1);
    expect_config_error("s3://bucket/p", NULL, NULL, "DATAOPS_S3_PART_SIZE");
    setenv("DATAOPS_S3_PART_SIZE", "512", 1);
    expect_config_error("s3://bucket/p", NULL, NULL, "DATAOPS_S3_PART_SIZE");
    unsetenv("DATAOPS_S3_PART_SIZE");
    setenv("AWS_SESSION_TOKEN", "tok\nen", 1);
    expect_config_error("s3://bucket/p", NULL, NULL, "AWS_SESSION_TOKEN");
    unsetenv("AWS_SESSION_TOKEN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_vectors),
        cmocka_unit_test(test_query_add),
        cmocka_unit_test(test_xml_text),
        cmocka_unit_test(test_md5_hex),
        cmocka_unit_test(test_settings_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

static void test_s3_not_built(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_not_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
