/*
 * zipstream.c - one archive zip, verified and read line by line from
 * memory (libzip); the .CHECKSUM line; the archive's CSV rows.
 *
 * Verification order, so that no row of a bad file is ever used:
 *   1. the whole zip's SHA-256 against its .CHECKSUM (the caller, with
 *      archive_sha256_matches, before opening);
 *   2. zipstream_open: libzip reads the central directory (a truncated zip
 *      has none), the single member is inflated to the end once, where
 *      libzip compares its CRC-32, and its size is bounded;
 *   3. only then is the member inflated again, as lines.
 * Inflating twice costs a few milliseconds for a month of 1m candles and
 * keeps memory to the compressed file plus a 64 KiB window, with no
 * temporary file.
 */
#include "extract/archive.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "schema/decimal.h"

#define CHUNK (64u << 10)
#define MAX_LINE 1024

struct zipstream {
    zip_t *za;
    zip_file_t *zf;
    char label[160];
    char *buf;            /* CHUNK + MAX_LINE: inflated bytes not yet returned */
    size_t have;          /* bytes in buf */
    size_t pos;           /* start of the next line in buf */
    int eof;
};

int archive_checksum_parse(const char *body, size_t len, const char *want,
                           unsigned char digest[32], struct err *e)
{
    size_t i = 0;
    for (int k = 0; k < 32; k++) {
        int v = 0;
        for (int h = 0; h < 2; h++, i++) {
            char c = i < len ? body[i] : '\0';
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) {
                return err_set(e, ERR_INVALID, "%s.CHECKSUM does not start with 64 hex digits",
                               want);
            }
            v = v * 16 + d;
        }
        digest[k] = (unsigned char)v;
    }
    /* sha256sum: two spaces (text mode) or " *" (binary mode), then the name. */
    if (i + 2 > len || body[i] != ' ' || (body[i + 1] != ' ' && body[i + 1] != '*')) {
        return err_set(e, ERR_INVALID, "%s.CHECKSUM is not in sha256sum format", want);
    }
    i += 2;
    size_t end = len;
    while (end > i && (body[end - 1] == '\n' || body[end - 1] == '\r' || body[end - 1] == ' ')) {
        end--;
    }
    /* The name may carry a directory; compare its last component. */
    const char *name = body + i;
    size_t nlen = end - i;
    for (size_t k = nlen; k > 0; k--) {
        if (name[k - 1] == '/') {
            name += k;
            nlen -= k;
            break;
        }
    }
    if (nlen != strlen(want) || memcmp(name, want, nlen) != 0) {
        return err_set(e, ERR_INVALID, "%s.CHECKSUM names another file ('%.*s')", want,
                       (int)(nlen > 80 ? 80 : nlen), name);
    }
    return 0;
}

int archive_sha256_matches(const void *data, size_t len, const unsigned char want[32],
                           char got_hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    got_hex[0] = '\0';
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return 0;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        got_hex[2 * i] = hex[md[i] >> 4];
        got_hex[2 * i + 1] = hex[md[i] & 15];
    }
    got_hex[64] = '\0';
    return memcmp(md, want, 32) == 0;
}

void zipstream_close(struct zipstream *z)
{
    if (!z) {
        return;
    }
    if (z->zf) {
        zip_fclose(z->zf);
    }
    if (z->za) {
        zip_discard(z->za);
    }
    free(z->buf);
    free(z);
}

static int zip_fail(struct zipstream *z, zip_error_t *ze, const char *what, struct err *e)
{
    int crc = zip_error_code_zip(ze) == ZIP_ER_CRC;
    return err_set(e, ERR_INVALID, "archive file %s: %s: %s", z->label, what,
                   crc ? "CRC-32 mismatch (the file is damaged)" : zip_error_strerror(ze));
}

int zipstream_open(const void *data, size_t len, const char *label, size_t max_bytes,
                   struct zipstream **out, struct err *e)
{
    struct zipstream *z = calloc(1, sizeof(*z));
    if (!z || !(z->buf = malloc(CHUNK + MAX_LINE))) {
        free(z);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    snprintf(z->label, sizeof(z->label), "%s", label);
    int rc = ERR_INVALID;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (!src) {
        rc = zip_fail(z, &ze, "cannot read", e);
        goto out;
    }
    z->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z->za) {
        zip_source_free(src);
        rc = zip_fail(z, &ze, "not a readable zip (truncated?)", e);
        goto out;
    }
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    if (n != 1) {
        rc = err_set(e, ERR_INVALID, "archive file %s holds %lld members, expected one CSV",
                     z->label, (long long)n);
        goto out;
    }
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->za, 0, 0, &st) != 0) {
        rc = zip_fail(z, zip_get_error(z->za), "cannot stat its member", e);
        goto out;
    }
    if ((st.valid & ZIP_STAT_SIZE) && st.size > max_bytes) {
        rc = err_set(e, ERR_INVALID, "archive file %s: its CSV would be %llu bytes, more than "
                     "the %zu its period can hold", z->label, (unsigned long long)st.size,
                     max_bytes);
        goto out;
    }
    /* Pass 1: inflate everything; libzip checks the CRC-32 at the end. */
    zip_file_t *zf = zip_fopen_index(z->za, 0, 0);
    if (!zf) {
        rc = zip_fail(z, zip_get_error(z->za), "cannot open its member", e);
        goto out;
    }
    unsigned long long total = 0;
    zip_int64_t got;
    while ((got = zip_fread(zf, z->buf, CHUNK)) > 0) {
        total += (unsigned long long)got;
        if (total > max_bytes) {
            zip_fclose(zf);
            rc = err_set(e, ERR_INVALID, "archive file %s: its CSV is larger than %zu bytes",
                         z->label, max_bytes);
            goto out;
        }
    }
    if (got < 0) {
        rc = zip_fail(z, zip_file_get_error(zf), "cannot inflate", e);
        zip_fclose(zf);
        goto out;
    }
    int cr = zip_fclose(zf);
    if (cr != 0) {
        zip_error_t ce;
        zip_error_init_with_code(&ce, cr);
        rc = zip_fail(z, &ce, "cannot inflate", e);
        zip_error_fini(&ce);
        goto out;
    }
    /* Pass 2 starts here. */
    z->zf = zip_fopen_index(z->za, 0, 0);
    if (!z->zf) {
        rc = zip_fail(z, zip_get_error(z->za), "cannot reopen its member", e);
        goto out;
    }
    rc = 0;
out:
    zip_error_fini(&ze);
    if (rc != 0) {
        zipstream_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

int zipstream_line(struct zipstream *z, const char **line, size_t *len, struct err *e)
{
    for (;;) {
        char *start = z->buf + z->pos;
        char *nl = memchr(start, '\n', z->have - z->pos);
        if (nl || (z->eof && z->pos < z->have)) {
            size_t n = nl ? (size_t)(nl - start) : z->have - z->pos;
            z->pos += n + (nl ? 1 : 0);
            while (n > 0 && start[n - 1] == '\r') {
                n--;
            }
            if (n > MAX_LINE) {
                return err_set(e, ERR_INVALID, "archive file %s has a line longer than %u "
                               "bytes", z->label, MAX_LINE);
            }
            start[n] = '\0';
            *line = start;
            *len = n;
            return 0;
        }
        if (z->eof) {
            *line = NULL;
            *len = 0;
            return 0;
        }
        /* Keep the partial line, refill behind it. */
        size_t keep = z->have - z->pos;
        if (keep > MAX_LINE) {
            return err_set(e, ERR_INVALID, "archive file %s has a line longer than %u bytes",
                           z->label, MAX_LINE);
        }
        memmove(z->buf, z->buf + z->pos, keep);
        z->have = keep;
        z->pos = 0;
        zip_int64_t got = zip_fread(z->zf, z->buf + keep, CHUNK - 1);
        if (got < 0) {
            return zip_fail(z, zip_file_get_error(z->zf), "cannot inflate", e);
        }
        if (got == 0) {
            z->eof = 1;
        }
        z->have += (size_t)got;
    }
}

/* ---- CSV rows ----------------------------------------------------------- */

static const int csv_slot[12] = {
    -1, KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, -1, KS_QUOTE_VOLUME, -1,
    KS_TAKER_BASE, KS_TAKER_QUOTE, KS_IGNORE,
};

static const char *const csv_names[12] = {
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_asset_volume", "number_of_trades", "taker_buy_base_asset_volume",
    "taker_buy_quote_asset_volume", "ignore",
};

static int parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) {
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int archive_csv_row(const char *line, size_t len, long lineno, struct kline *k, int *micro,
                    struct err *e)
{
    const char *p = line;
    const char *end = line + len;
    *micro = 0;
    if (len > 0 && !(line[0] >= '0' && line[0] <= '9')) {
        /* A header ("open_time,open,..." or "Opentime,Open,..."). */
        if (lineno == 1) {
            return 1;
        }
        return err_set(e, ERR_INVALID, "line %ld does not start with an open time", lineno);
    }
    memset(k->len, 0, sizeof(k->len));
    k->updated_at[0] = '\0';
    for (int f = 0; f < 12; f++) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *fe = c ? c : end;
        if (!c && f < 11) {
            return err_set(e, ERR_INVALID, "line %ld has %d fields, expected 12", lineno, f + 1);
        }
        if (c && f == 11) {
            return err_set(e, ERR_INVALID, "line %ld has more than 12 fields", lineno);
        }
        size_t n = (size_t)(fe - p);
        if (f == 0 || f == 6 || f == 8) {
            int64_t v;
            if (parse_i64(p, n, &v) != 0) {
                return err_set(e, ERR_INVALID, "line %ld, field %s: '%.*s' is not a whole "
                               "number", lineno, csv_names[f], (int)(n > 24 ? 24 : n), p);
            }
            if (f == 0) {
                k->open_time = v;
            }
            else if (f == 6) {
                k->close_time = v;
            }
            else {
                k->trades = v;
            }
        }
        else {
            int slot = csv_slot[f];
            if (n >= KLINE_STR_MAX || (slot != KS_IGNORE && !dec_valid(p, n))) {
                return err_set(e, ERR_INVALID, "line %ld, field %s: '%.*s' is not a decimal",
                               lineno, csv_names[f], (int)(n > 24 ? 24 : n), p);
            }
            memcpy(k->s[slot], p, n);
            k->s[slot][n] = '\0';
            k->len[slot] = (uint8_t)n;
        }
        p = fe + 1;
    }
    /* Spot files from 2025 on count microseconds: 16 digits where the API
     * has 13.  A millisecond value above 10^14 would be in the year 5138. */
    if (k->open_time > 100000000000000LL) {
        k->open_time /= 1000;
        k->close_time /= 1000;
        *micro = 1;
    }
    return 0;
}
