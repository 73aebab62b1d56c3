/*
 * fuzz_klines.c - libFuzzer target for the /api/v3/klines response parser
 * and the validation that follows it.  Any input must either parse into
 * rows whose strings are NUL-terminated and within bounds, or be refused
 * with a message; the batch is left untouched on refusal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract/kline_parse.h"
#include "schema/interval.h"
#include "validate/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kline_batch batch;
    if (!batch.rows && kline_batch_init(&batch, 1000) != 0) {
        abort();
    }
    batch.n = 0;
    struct err e;
    err_clear(&e);
    int rc = kline_parse_page((const char *)data, size, &batch, &e);
    if (rc != 0) {
        if (batch.n != 0 || e.msg[0] == '\0') {
            abort();
        }
        return 0;
    }
    const struct interval *iv = interval_find("1m");
    int64_t prev = INT64_MIN;
    for (size_t i = 0; i < batch.n; i++) {
        const struct kline *k = &batch.rows[i];
        for (int f = 0; f < KS_COUNT; f++) {
            if (k->len[f] >= KLINE_STR_MAX || strlen(k->s[f]) != k->len[f]) {
                abort();
            }
        }
        char why[300];
        unsigned notes;
        if (validate_raw_row(iv, k, prev, why, sizeof(why), &notes) < 0) {
            prev = k->open_time;
        }
    }
    return 0;
}
