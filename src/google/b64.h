/*
 * b64.h - base64 (RFC 4648 section 4, padded), as Cloud Storage writes
 * md5Hash and crc32c, and base64url without padding (section 5), as JSON Web
 * Tokens need (RFC 7515).  Small enough to keep here rather than go through
 * OpenSSL's BIO layer and translate alphabets afterwards.
 */
#ifndef DATAOPS_B64_H
#define DATAOPS_B64_H

#include <stddef.h>

#include "util/buf.h"

/* Characters b64_encode writes for n bytes (padded), without the NUL. */
size_t b64_encoded_len(size_t n);
/* Standard alphabet, padded; out holds b64_encoded_len(n) + 1 bytes. */
void b64_encode(const void *in, size_t n, char *out);
/* base64url without padding, appended to b; 0 or -1 (over the buffer's max). */
int b64url_append(struct buf *b, const void *in, size_t n);
/* Decode standard or URL-safe base64 (padding optional, no whitespace) into
 * out (cap bytes).  0 with *outlen set, or -1 for bad input or no room. */
int b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen);

#endif
