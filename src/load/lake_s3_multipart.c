/*
 * lake_s3_multipart.c - objects larger than a part: S3's multipart upload.
 *
 * The first full part buffer starts the upload (after a HEAD: the key must
 * not exist), each part is sent with its Content-MD5 and its ETag checked,
 * and commit sends the last part and CompleteMultipartUpload with the list
 * of parts and If-None-Match: *.  Until that succeeds nothing is visible.
 * Any failure, and abort(), send AbortMultipartUpload, even after SIGTERM
 * (the request is marked as cleanup), so no parts stay billed in the bucket;
 * only a process killed outright leaves them, for the bucket's lifecycle
 * rule AbortIncompleteMultipartUpload (docs/s3.md).
 *
 * A CompleteMultipartUpload retried after a lost answer may find the upload
 * gone (404 NoSuchUpload) or the key present (412): the object is then ours
 * if its ETag is the one our parts give, and the commit succeeds.
 */
#include "load/lake_s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static int create_upload(struct lake_s3_writer *w, struct err *e)
{
    int rc = s3_check_absent(w, e);
    if (rc != 0) {
        return rc;
    }
    struct s3_request rq = {.method = "POST", .key = w->key, .query = "uploads=",
                            .content_type = w->content_type};
    struct s3_response rs;
    if ((rc = s3_call(w->lk, &rq, &rs, e)) != 0) {
        return rc;
    }
    if (rs.status != 200) {
        return s3_fail(w->lk, "CreateMultipartUpload", w->key, &rs, e);
    }
    char id[1024];
    if (s3_xml_text(w->lk->body.data ? w->lk->body.data : "", "UploadId", id, sizeof(id)) != 0 ||
        !id[0]) {
        return err_set(e, ERR_LAKE, "CreateMultipartUpload of s3://%s/%s at %s: no UploadId "
                       "in the answer", w->lk->bucket, w->key, w->lk->endpoint);
    }
    if (!(w->upload_id = strdup(id))) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    log_debug("s3", "multipart upload of s3://%s/%s started", w->lk->bucket, w->key);
    return 0;
}

/* Send the buffered bytes as the next part (creating the upload first). */
int s3_upload_part(struct lake_s3_writer *w, struct err *e)
{
    int rc;
    if (!w->upload_id && (rc = create_upload(w, e)) != 0) {
        return rc;
    }
    if (w->nparts == S3_MAX_PARTS) {
        return err_set(e, ERR_LAKE, "s3://%s/%s would need more than %d parts of %zu bytes: "
                       "raise DATAOPS_S3_PART_SIZE", w->lk->bucket, w->key, S3_MAX_PARTS,
                       w->lk->part_size);
    }
    if (w->nparts == w->parts_cap) {
        size_t ncap = w->parts_cap ? w->parts_cap * 2 : 16;
        struct s3_part *p = realloc(w->parts, ncap * sizeof(*p));
        if (!p) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        w->parts = p;
        w->parts_cap = ncap;
    }
    struct s3_part *part = &w->parts[w->nparts];
    char hex[33];
    char q[1200] = "";
    char num[16];
    snprintf(num, sizeof(num), "%zu", w->nparts + 1);
    if (s3_md5(w->buf, w->len, part->md5) != 0) {
        return err_set(e, ERR_LAKE, "cannot compute an MD5 (OpenSSL)");
    }
    s3_hex16(part->md5, hex);
    /* Sorted: partNumber before uploadId (see s3_query_add). */
    if (s3_query_add(q, sizeof(q), "partNumber", num) != 0 ||
        s3_query_add(q, sizeof(q), "uploadId", w->upload_id) != 0) {
        return err_set(e, ERR_LAKE, "the upload id of s3://%s/%s is too long", w->lk->bucket,
                       w->key);
    }
    struct s3_request rq = {.method = "PUT", .key = w->key, .query = q, .body = w->buf,
                            .len = w->len, .md5 = part->md5};
    struct s3_response rs;
    if ((rc = s3_call(w->lk, &rq, &rs, e)) != 0) {
        return rc;
    }
    char what[32];
    snprintf(what, sizeof(what), "UploadPart %zu", w->nparts + 1);
    if (rs.status != 200) {
        return s3_fail(w->lk, what, w->key, &rs, e);
    }
    if ((rc = s3_check_etag(w, &rs, hex, hex, what, e)) != 0) {
        return rc;
    }
    /* CompleteMultipartUpload wants the ETags as the store gave them. */
    snprintf(part->etag, sizeof(part->etag), "%s", rs.etag[0] ? rs.etag : hex);
    w->nparts++;
    w->len = 0;
    return 0;
}

void s3_abort_upload(struct lake_s3_writer *w)
{
    if (!w->upload_id) {
        return;
    }
    char q[1100] = "";
    s3_query_add(q, sizeof(q), "uploadId", w->upload_id);
    struct s3_request rq = {.method = "DELETE", .key = w->key, .query = q, .cleanup = 1};
    struct s3_response rs;
    struct err e2;
    err_clear(&e2);
    int rc = s3_call(w->lk, &rq, &rs, &e2);
    if (rc == 0 && (rs.status == 204 || rs.status == 200 || rs.status == 404)) {
        log_info("lake", "multipart upload of s3://%s/%s aborted (%zu parts discarded)",
                 w->lk->bucket, w->key, w->nparts);
    }
    else {
        log_warn("lake", "could not abort the multipart upload of s3://%s/%s (%s): its parts "
                 "stay in the bucket, invisible, until a lifecycle rule "
                 "(AbortIncompleteMultipartUpload) removes them", w->lk->bucket, w->key,
                 rc ? e2.msg : rs.code[0] ? rs.code : "refused");
    }
    free(w->upload_id);
    w->upload_id = NULL;
}

/* The multipart ETag S3 computes: MD5 of the parts' binary MD5s, "-N". */
static int multipart_etag(const struct lake_s3_writer *w, char out[48])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[16];
    unsigned int len = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_md5(), NULL);
    for (size_t i = 0; ok && i < w->nparts; i++) {
        ok = EVP_DigestUpdate(c, w->parts[i].md5, 16);
    }
    ok = ok && EVP_DigestFinal_ex(c, md, &len) && len == 16;
    EVP_MD_CTX_free(c);
    if (!ok) {
        return -1;
    }
    char hex[33];
    s3_hex16(md, hex);
    snprintf(out, 48, "%s-%zu", hex, w->nparts);
    return 0;
}

int s3_complete_upload(struct lake_s3_writer *w, const char *whole, struct err *e)
{
    char expected[48];
    if (multipart_etag(w, expected) != 0) {
        return err_set(e, ERR_LAKE, "cannot compute an MD5 (OpenSSL)");
    }
    struct buf xml;
    buf_init(&xml, 0);
    int rc = buf_puts(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/"
                      "2006-03-01/\">");
    for (size_t i = 0; rc == 0 && i < w->nparts; i++) {
        rc = buf_printf(&xml, "<Part><PartNumber>%zu</PartNumber><ETag>\"%s\"</ETag></Part>",
                        i + 1, w->parts[i].etag);
    }
    if (rc == 0) {
        rc = buf_puts(&xml, "</CompleteMultipartUpload>");
    }
    unsigned char md5[16];
    char q[1100] = "";
    if (rc != 0 || s3_md5(xml.data, xml.len, md5) != 0 ||
        s3_query_add(q, sizeof(q), "uploadId", w->upload_id) != 0) {
        buf_free(&xml);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct s3_request rq = {.method = "POST", .key = w->key, .query = q, .body = xml.data,
                            .len = xml.len, .content_type = "application/xml", .md5 = md5,
                            .if_none_match = 1};
    struct s3_response rs;
    rc = s3_call(w->lk, &rq, &rs, e);
    buf_free(&xml);
    if (rc != 0) {
        return rc;
    }
    if (rs.attempts > 1 &&
        ((rs.status == 404 && strcmp(rs.code, "NoSuchUpload") == 0) || rs.status == 412)) {
        /* A retry after our first Complete landed: the upload is gone and
         * the object is there, ours if its ETag says so. */
        struct s3_response hs;
        if (s3_head_key(w, &hs, e) == 0 && hs.status == 200 &&
            s3_check_etag(w, &hs, expected, whole, "CompleteMultipartUpload", e) == 0) {
            free(w->upload_id);
            w->upload_id = NULL;
            return 0;
        }
    }
    if (rs.status == 412 || rs.status == 409) {
        return err_set(e, ERR_LAKE, "lake object s3://%s/%s already exists (HTTP %ld %s); "
                       "not overwritten", w->lk->bucket, w->key, rs.status, rs.code);
    }
    if (rs.status != 200) {
        return s3_fail(w->lk, "CompleteMultipartUpload", w->key, &rs, e);
    }
    /* Done: the upload no longer exists, whatever the check below says. */
    free(w->upload_id);
    w->upload_id = NULL;
    char etag[128] = "";
    s3_xml_text(w->lk->body.data, "ETag", etag, sizeof(etag));
    const char *p = etag;
    while (*p == '"') {
        p++;
    }
    snprintf(rs.etag, sizeof(rs.etag), "%s", p);
    char *q2 = strchr(rs.etag, '"');
    if (q2) {
        *q2 = '\0';
    }
    if ((rc = s3_check_etag(w, &rs, expected, whole, "CompleteMultipartUpload", e)) != 0) {
        s3_delete_own(w);
    }
    return rc;
}
