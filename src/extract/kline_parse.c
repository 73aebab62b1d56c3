/*
 * kline_parse.c - see kline_parse.h.
 */
#include "extract/kline_parse.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "schema/decimal.h"

static const char *const field_names[12] = {
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_asset_volume", "number_of_trades", "taker_buy_base_asset_volume",
    "taker_buy_quote_asset_volume", "ignore",
};

/* Which kline string slot each API position fills; -1 for the int fields. */
static const int str_slot[12] = {
    -1, KS_OPEN, KS_HIGH, KS_LOW, KS_CLOSE, KS_VOLUME, -1, KS_QUOTE_VOLUME, -1,
    KS_TAKER_BASE, KS_TAKER_QUOTE, KS_IGNORE,
};

struct scan {
    const char *p;
    const char *end;
    const char *start;
    size_t row;
    struct err *e;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) {
        s->p++;
    }
}

/* Describe what sits at the cursor, for error messages. */
static const char *found(const struct scan *s, char *tmp, size_t n)
{
    if (s->p >= s->end) {
        return "the end of the body";
    }
    switch (*s->p) {
    case '"': return "a string";
    case 'n': return "null";
    case 't': case 'f': return "a boolean";
    case '[': return "an array";
    case '{': return "an object";
    default: break;
    }
    size_t k = 0;
    while (k < 12 && s->p + k < s->end && s->p[k] != ',' && s->p[k] != ']') {
        k++;
    }
    snprintf(tmp, n, "'%.*s'", (int)k, s->p);
    return tmp;
}

static int fail(struct scan *s, int field, const char *what)
{
    char tmp[32];
    size_t off = (size_t)(s->p - s->start);
    if (field >= 0) {
        return err_set(s->e, ERR_INVALID, "klines response row %zu, field %s: %s, found %s "
                       "(byte %zu)", s->row, field_names[field], what, found(s, tmp, sizeof(tmp)),
                       off);
    }
    return err_set(s->e, ERR_INVALID, "klines response row %zu: %s, found %s (byte %zu)",
                   s->row, what, found(s, tmp, sizeof(tmp)), off);
}

static int expect(struct scan *s, char c, int field, const char *what)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c) {
        return fail(s, field, what);
    }
    s->p++;
    return 0;
}

static int parse_int(struct scan *s, int field, int64_t *out)
{
    skip_ws(s);
    const char *q = s->p;
    int neg = 0;
    if (q < s->end && *q == '-') {
        neg = 1;
        q++;
    }
    if (q >= s->end || *q < '0' || *q > '9') {
        return fail(s, field, "expected an integer");
    }
    uint64_t v = 0;
    int nd = 0;
    while (q < s->end && *q >= '0' && *q <= '9') {
        if (++nd > 18) {
            return fail(s, field, "integer out of range");
        }
        v = v * 10 + (uint64_t)(*q - '0');
        q++;
    }
    if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E')) {
        return fail(s, field, "expected an integer, not a fraction");
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    s->p = q;
    return 0;
}

static int parse_str(struct scan *s, int field, struct kline *k)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"') {
        return fail(s, field, "expected a string");
    }
    const char *q = s->p + 1;
    const char *close = memchr(q, '"', (size_t)(s->end - q));
    if (!close) {
        return fail(s, field, "unterminated string");
    }
    size_t n = (size_t)(close - q);
    if (memchr(q, '\\', n)) {
        return fail(s, field, "escape sequences are not allowed here");
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)q[i] < 0x20) {
            /* JSON forbids raw control characters inside strings. */
            return fail(s, field, "control character inside a string");
        }
    }
    if (n >= KLINE_STR_MAX) {
        return fail(s, field, "value too long");
    }
    int slot = str_slot[field];
    if (slot != KS_IGNORE && !dec_valid(q, n)) {
        return fail(s, field, "not a decimal number");
    }
    if (slot == KS_IGNORE && (memchr(q, ',', n) || memchr(q, '"', n))) {
        /* It is written to CSV unquoted, like every other field. */
        return fail(s, field, "a comma or quote is not allowed here");
    }
    memcpy(k->s[slot], q, n);
    k->s[slot][n] = '\0';
    k->len[slot] = (uint8_t)n;
    s->p = close + 1;
    return 0;
}

static int parse_row(struct scan *s, struct kline *k)
{
    if (expect(s, '[', -1, "expected '[' to start a kline row") != 0) {
        return s->e->code;
    }
    for (int f = 0; f < 12; f++) {
        if (f > 0) {
            skip_ws(s);
            if (s->p < s->end && *s->p == ']') {
                return err_set(s->e, ERR_INVALID, "klines response row %zu has %d fields, "
                               "expected 12", s->row, f);
            }
            if (expect(s, ',', f, "expected ','") != 0) {
                return s->e->code;
            }
        }
        int rc;
        if (f == 0) {
            rc = parse_int(s, f, &k->open_time);
        }
        else if (f == 6) {
            rc = parse_int(s, f, &k->close_time);
        }
        else if (f == 8) {
            rc = parse_int(s, f, &k->trades);
        }
        else {
            rc = parse_str(s, f, k);
        }
        if (rc != 0) {
            return rc;
        }
    }
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        return err_set(s->e, ERR_INVALID, "klines response row %zu has more than 12 fields",
                       s->row);
    }
    return expect(s, ']', -1, "expected ']' to end a kline row");
}

int binance_error_body(const char *body, size_t len, long *code, char *msg, size_t msg_len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) {
        i++;
    }
    if (i == len || body[i] != '{') {
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j) {
        return 0;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "msg");
    int ok = cJSON_IsNumber(c) && cJSON_IsString(m);
    if (ok) {
        *code = (long)c->valuedouble;
        snprintf(msg, msg_len, "%s", m->valuestring);
    }
    cJSON_Delete(j);
    return ok;
}

int kline_parse_page(const char *body, size_t len, struct kline_batch *out, struct err *e)
{
    size_t n0 = out->n;
    struct scan s = {body, body + len, body, 0, e};
    long code;
    char msg[256];
    if (binance_error_body(body, len, &code, msg, sizeof(msg))) {
        return err_set(e, ERR_API, "exchange error %ld: %s", code, msg);
    }
    if (expect(&s, '[', -1, "expected a JSON array of klines") != 0) {
        goto fail;
    }
    skip_ws(&s);
    if (s.p < s.end && *s.p == ']') {
        s.p++;
    }
    else {
        for (;;) {
            struct kline *k = kline_batch_push(out);
            if (!k) {
                err_set(e, ERR_INVALID, "klines response has more than %zu rows", out->cap - n0);
                goto fail;
            }
            if (parse_row(&s, k) != 0) {
                goto fail;
            }
            s.row++;
            skip_ws(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                continue;
            }
            if (expect(&s, ']', -1, "expected ',' or ']' after a kline row") != 0) {
                goto fail;
            }
            break;
        }
    }
    skip_ws(&s);
    if (s.p != s.end) {
        err_set(e, ERR_INVALID, "unexpected bytes after the klines array (byte %zu)",
                (size_t)(s.p - s.start));
        goto fail;
    }
    return 0;
fail:
    out->n = n0;
    return e->code;
}
