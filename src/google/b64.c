/*
 * b64.c - see b64.h.
 */
#include "google/b64.h"

#include <stdint.h>
#include <string.h>

static const char std_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Encode with the given alphabet; pad or not.  Returns characters written. */
static size_t encode(const unsigned char *p, size_t n, const char *alpha, int pad, char *out)
{
    size_t o = 0;
    while (n >= 3) {
        uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
        p += 3;
        n -= 3;
    }
    if (n) {
        uint32_t v = (uint32_t)p[0] << 16 | (n == 2 ? (uint32_t)p[1] << 8 : 0);
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (n == 2) {
            out[o++] = alpha[(v >> 6) & 63];
        }
        else if (pad) {
            out[o++] = '=';
        }
        if (pad) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return o;
}

void b64_encode(const void *in, size_t n, char *out)
{
    encode(in, n, std_alpha, 1, out);
}

int b64url_append(struct buf *b, const void *in, size_t n)
{
    if (buf_reserve(b, b64_encoded_len(n) + 1) != 0) {
        return -1;
    }
    b->len += encode(in, n, url_alpha, 0, b->data + b->len);
    return 0;
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

int b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    while (n > 0 && in[n - 1] == '=') {
        n--;
    }
    if (n % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = o;
    return 0;
}
