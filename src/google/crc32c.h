/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum Cloud Storage keeps for
 * every object and reports, base64 of its four big-endian bytes, in the
 * object's "crc32c" field and the x-goog-hash header.
 *
 * OpenSSL has no CRC-32C, so this is a small table-driven implementation of
 * the reflected polynomial 0x82F63B78 (RFC 3720, appendix B.4), with the
 * usual pre- and post-inversion.  Streaming: start from 0 and feed each piece
 * in order; crc32c_update(0, "123456789", 9) == 0xE3069283.
 */
#ifndef DATAOPS_CRC32C_H
#define DATAOPS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);

#endif
