/*
 * main.c - the dataops command line: subcommands, options, exit codes.
 *
 *   dataops run       run the pipeline once for every (symbol, interval)
 *   dataops plan      print what a run would fetch (holes, sources, cost)
 *   dataops config    print the effective configuration (secrets redacted)
 *   dataops version   print the version and the commit it was built from
 *   dataops check-credentials FILE
 *                     check that FILE holds Google credentials JSON
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,
 * 3 a data-quality gate failed, 4 another run holds the warehouse lock.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conf/config.h"
#include "pipeline.h"
#include "plan/plan.h"
#include "util/failpoint.h"
#include "util/fsutil.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "version.h"

enum cmd {
    CMD_NONE,
    CMD_RUN,
    CMD_PLAN,
    CMD_CHECK,
    CMD_CONFIG,
    CMD_VERSION,
    CMD_CHECK_CREDENTIALS,
    CMD_HELP
};

static const struct {
    const char *name;
    enum cmd cmd;
    const char *summary;
} commands[] = {
    {"run", CMD_RUN, "run the pipeline once for every configured (symbol, interval)"},
    {"plan", CMD_PLAN, "list what run would fetch (holes, sources, requests, weight, ETA)"},
    {"check", CMD_CHECK, "verify the exchange, symbols, lake and warehouse; move no data"},
    {"config", CMD_CONFIG, "print the effective configuration as JSON, secrets redacted"},
    {"version", CMD_VERSION, "print the version and the git commit baked in at build time"},
    {"check-credentials", CMD_CHECK_CREDENTIALS,
     "check that FILE holds Google credentials JSON (used by the container entrypoint)"},
    {"help", CMD_HELP, "show this help"},
};

static void usage_options(FILE *f, int run_options)
{
    fprintf(f, "\nOptions (each also read from the environment variable shown; flags win over "
               "the environment,\nwhich wins over a .env file in the working directory, which "
               "wins over the default):\n");
    for (int i = 0; i < S__COUNT; i++) {
        if (settings[i].run_only && !run_options) {
            continue;
        }
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s %s", settings[i].flag, settings[i].metavar);
        fprintf(f, "  %-30s %s\n  %-30s [%s", flag, settings[i].help, "", settings[i].env);
        if (settings[i].def[0]) {
            fprintf(f, ", default %s", settings[i].def);
        }
        fprintf(f, "]\n");
    }
    fprintf(f, "  %-30s %s\n", "--env-file FILE", "read settings from FILE instead of ./.env");
    fprintf(f, "  %-30s %s\n", "-h, --help", "show help");
}

static void usage(FILE *f, enum cmd cmd)
{
    switch (cmd) {
    case CMD_RUN:
        fprintf(f, "usage: dataops run [options]\n\n"
                   "Extract closed klines from the exchange for every (symbol, interval), "
                   "validate them,\nwrite raw and transformed CSV objects to the lake, upsert "
                   "the raw and transformed\nwarehouse tables, and record the run. Each pair "
                   "continues from its own watermarks.\n");
        usage_options(f, 1);
        fprintf(f, "\nExit codes: 0 success, 1 runtime failure, 2 usage or configuration error, "
                   "3 rows failed\nvalidation (quarantined), 4 another run holds the warehouse "
                   "lock.\n");
        return;
    case CMD_PLAN:
        fprintf(f, "usage: dataops plan [options]\n\nFor every (symbol, interval), list what "
                   "the warehouse is missing: its holes and the\nrange after its watermark, "
                   "less the gaps it knows the exchange has. For each range,\nthe source a "
                   "run would use (archive files or the API), the requests, request\nweight, "
                   "bytes and an ETA. Fetches no data: the one request asks the\nexchange's "
                   "clock (this machine's with --source archive).\n"
                   "`dataops run` fetches exactly these ranges. See docs/backfill.md.\n");
        usage_options(f, 1);
        return;
    case CMD_CHECK:
        fprintf(f, "usage: dataops check [options]\n\nBefore any data moves: ask the "
                   "exchange for its clock, check that every symbol\nis listed, that the lake "
                   "accepts objects and that the warehouse opens with working\ncredentials. "
                   "Prints one line per check. No data is written (a missing lake\ndirectory "
                   "or SQLite file is created, as the first run would). Exit 0 if all\npass, "
                   "1 if a check failed, 2 for a configuration problem.\n");
        usage_options(f, 1);
        return;
    case CMD_CONFIG:
        fprintf(f, "usage: dataops config [options]\n\nPrint every setting's effective value "
                   "and where it came from, as JSON.\nPasswords in URLs are replaced by ****."
                   " Exits 2 if a value is invalid.\n");
        usage_options(f, 1);
        return;
    case CMD_VERSION:
        fprintf(f, "usage: dataops version\n\nPrint the version and the git commit "
                   "(GIT_COMMIT_HASH at build time).\n");
        return;
    case CMD_CHECK_CREDENTIALS:
        fprintf(f, "usage: dataops check-credentials FILE\n\nExit 0 if FILE holds a Google "
                   "service-account key (JSON with type service_account,\nclient_email and a PEM "
                   "private_key), else 2. Never prints the file.\n");
        return;
    default:
        break;
    }
    fprintf(f, "usage: dataops <command> [options]\n\n"
               "An ELT pipeline for Binance klines: exchange -> lake -> warehouse.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-19s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\nRun 'dataops <command> --help' for the options of a command.\n");
}

static int check_credentials(const char *path)
{
    struct buf b;
    struct err e;
    err_clear(&e);
    buf_init(&b, 1 << 20);
    if (fs_read_file(path, &b, &e) != 0) {
        fprintf(stderr, "dataops: credentials: %s\n", e.msg);
        buf_free(&b);
        return 2;
    }
    cJSON *j = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    buf_free(&b);
    const char *problem = NULL;
    if (!j || !cJSON_IsObject(j)) {
        problem = "is not a JSON object";
    }
    else {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
        if (!cJSON_IsString(type)) {
            problem = "has no \"type\"";
        }
        else if (strcmp(type->valuestring, "service_account") == 0) {
            const cJSON *email = cJSON_GetObjectItemCaseSensitive(j, "client_email");
            const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "private_key");
            if (!cJSON_IsString(email) || !strchr(email->valuestring, '@')) {
                problem = "is a service-account key without a valid client_email";
            }
            else if (!cJSON_IsString(key) || !strstr(key->valuestring, "PRIVATE KEY-----")) {
                problem = "is a service-account key without a PEM private_key";
            }
        }
        else {
            problem = "has an unsupported \"type\" (dataops uses service-account keys; "
                      "without a key file it uses the metadata server)";
        }
    }
    cJSON_Delete(j);
    if (problem) {
        fprintf(stderr, "dataops: credentials file %s %s\n", path, problem);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum cmd cmd = CMD_NONE;
    const char *env_file = NULL;
    const char *positional = NULL;
    int want_help = 0;
    struct err e;
    err_clear(&e);

    int i = 1;
    if (i < argc && argv[i][0] != '-') {
        for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
            if (strcmp(argv[i], commands[k].name) == 0) {
                cmd = commands[k].cmd;
            }
        }
        if (cmd == CMD_NONE) {
            fprintf(stderr, "dataops: unknown command '%s'\n\n", argv[i]);
            usage(stderr, CMD_NONE);
            return 2;
        }
        i++;
    }
    /* Settings flags are applied after the config is initialised; collect. */
    int nflags = 0;
    const char **fnames = calloc((size_t)argc, sizeof(char *));
    const char **fvals = calloc((size_t)argc, sizeof(char *));
    char **owned = calloc((size_t)argc, sizeof(char *));
    int rc = 2;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (!fnames || !fvals || !owned) {
        fprintf(stderr, "dataops: out of memory\n");
        goto out;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            want_help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            const char *val;
            char *nm;
            if (eq) {
                nm = strndup(name, (size_t)(eq - name));
                val = eq + 1;
            }
            else {
                nm = strdup(name);
                if (i + 1 >= argc) {
                    fprintf(stderr, "dataops: option --%s needs a value\n", name);
                    free(nm);
                    goto out;
                }
                val = argv[++i];
            }
            owned[nflags] = nm;
            if (strcmp(nm, "env-file") == 0) {
                env_file = val;
                continue;
            }
            fnames[nflags] = nm;
            fvals[nflags] = val;
            nflags++;
            continue;
        }
        if (!positional && cmd == CMD_CHECK_CREDENTIALS) {
            positional = a;
            continue;
        }
        fprintf(stderr, "dataops: unexpected argument '%s' (see --help)\n", a);
        goto out;
    }
    if (want_help || cmd == CMD_HELP) {
        usage(stdout, cmd == CMD_HELP ? CMD_NONE : cmd);
        rc = 0;
        goto out;
    }
    switch (cmd) {
    case CMD_NONE:
        usage(stderr, CMD_NONE);
        goto out;
    case CMD_VERSION:
        printf("dataops %s (commit %s)\n", DATAOPS_VERSION, DATAOPS_COMMIT);
        rc = 0;
        goto out;
    case CMD_CHECK_CREDENTIALS:
        if (!positional) {
            fprintf(stderr, "dataops: check-credentials needs a FILE\n");
            goto out;
        }
        rc = check_credentials(positional);
        goto out;
    default:
        break;
    }

    if (config_init(&cfg, env_file, &e) != 0) {
        fprintf(stderr, "dataops: %s\n", e.msg);
        rc = err_exit_code(e.code);
        goto out;
    }
    for (int k = 0; k < nflags; k++) {
        if (config_set_flag(&cfg, fnames[k], fvals[k], &e) != 0) {
            fprintf(stderr, "dataops: %s\n", e.msg);
            rc = 2;
            goto out;
        }
    }
    config_register_secrets(&cfg);
    if (config_finalize(&cfg, &e) != 0) {
        fprintf(stderr, "dataops: %s\n", e.msg);
        rc = err_exit_code(e.code);
        goto out;
    }
    log_init((enum log_format)cfg.log_format, (enum log_level)cfg.log_level);
    if (cmd == CMD_CONFIG) {
        struct buf b;
        buf_init(&b, 0);
        if (config_to_json(&cfg, &b) == 0) {
            fputs(b.data, stdout);
            rc = 0;
        }
        buf_free(&b);
        goto out;
    }
    if (cmd == CMD_PLAN) {
        rc = plan_command(&cfg);
        goto out;
    }
    interrupt_install();
    if (cmd == CMD_CHECK) {
        rc = check_run(&cfg);
        goto out;
    }
    failpoint_init(getenv("DATAOPS_FAILPOINT"));
    rc = pipeline_run(&cfg);
out:
    for (int k = 0; k < argc && owned; k++) {
        free(owned[k]);
    }
    free(owned);
    free(fnames);
    free(fvals);
    config_free(&cfg);
    failpoint_shutdown();
    log_shutdown();
    return rc;
}
