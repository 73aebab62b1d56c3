/*
 * fuzz_dotenv.c - libFuzzer target for the .env parser and the time
 * parser used by the configuration.  Every key handed to the callback must
 * be a valid identifier and every value a NUL-terminated string.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/dotenv.h"
#include "util/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *ctx, const char *key, const char *value)
{
    (void)ctx;
    if (!key[0] || !(isalpha((unsigned char)key[0]) || key[0] == '_')) {
        abort();
    }
    for (const char *p = key; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '_')) {
            abort();
        }
    }
    (void)strlen(value);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err e;
    err_clear(&e);
    dotenv_parse((const char *)data, size, "fuzz", check, NULL, &e);
    if (size < 256) {
        char s[256];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t ms;
        char why[128];
        time_parse(s, &ms, why, sizeof(why));
    }
    return 0;
}
