#!/usr/bin/env bash
# Tests of scripts/docker/entrypoint.sh, run on the host with a stub `dataops`
# first on PATH. The stub implements `check-credentials FILE` with a simple
# check and, for any other command, records its argv, environment and PID.
#
#   bash tests/ship/test_entrypoint.sh          (or: make lint-ship)
#
# Needs: bash, coreutils, grep, python3 (to parse JSON log lines).
# Prints one line per check and a final "N passed, N failed"; exits 1 on any
# failure.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ENTRYPOINT=${ENTRYPOINT:-$ROOT/scripts/docker/entrypoint.sh}

PASSED=0
FAILED=0

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_entrypoint.XXXXXX")
chmod 0755 "$WORK"
cleanup() {
    chmod -R u+rwx "$WORK" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() {
    PASSED=$((PASSED + 1))
    printf 'ok     %s\n' "$1"
}
not_ok() {
    FAILED=$((FAILED + 1))
    printf 'FAILED %s\n' "$1"
    shift
    for line in "$@"; do
        printf '       %s\n' "$line"
    done
}
# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
    name=$1
    shift
    if "$@"; then
        ok "$name"
    else
        not_ok "$name" "command: $*" \
            "stdout: $(head -c 400 "$CASE/out" 2>/dev/null)" \
            "stderr: $(head -c 400 "$CASE/err" 2>/dev/null)"
    fi
}

# ---------------------------------------------------------------- fixtures

STUB_BIN=$WORK/bin
mkdir -p "$STUB_BIN"
cat >"$STUB_BIN/dataops" <<'STUB'
#!/bin/sh
# Stub of dataops for the entrypoint tests.
rec=${STUB_RECORD_DIR:?STUB_RECORD_DIR not set}
if [ "${1:-}" = check-credentials ]; then
    f=${2:-}
    echo "check-credentials $f" >>"$rec/calls"
    env >"$rec/check_env"
    if [ ! -f "$f" ] || [ ! -r "$f" ]; then
        echo "dataops: cannot read credentials file $f" >&2
        exit 2
    fi
    if grep -q '"type" *: *"service_account"' "$f" &&
        grep -q '"client_email"' "$f" && grep -q '"private_key"' "$f"; then
        exit 0
    fi
    if grep -q '"type" *: *"authorized_user"' "$f"; then
        exit 0
    fi
    echo "dataops: $f is not a Google credentials JSON object" >&2
    exit 2
fi
echo "$$" >"$rec/pid"
umask >"$rec/umask"
printf '%s\n' "$@" >"$rec/argv"
echo "$#" >"$rec/argc"
env >"$rec/env"
echo "main $*" >>"$rec/calls"
exit "${STUB_EXIT_CODE:-0}"
STUB
chmod 0755 "$STUB_BIN/dataops"

# A fake service-account key: random marker, never a real secret.
MARKER="FAKEKEY$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
KEY_JSON=$WORK/fake-key.json
cat >"$KEY_JSON" <<EOF
{
  "type": "service_account",
  "project_id": "fake-project",
  "private_key_id": "0000",
  "private_key": "-----BEGIN PRIVATE KEY-----\\n$MARKER\\n-----END PRIVATE KEY-----\\n",
  "client_email": "dataops@fake-project.iam.gserviceaccount.com",
  "token_uri": "http://127.0.0.1:9/token"
}
EOF
KEY_B64=$(base64 -w0 "$KEY_JSON")
KEY_B64_WRAPPED=$(base64 "$KEY_JSON")          # wrapped at 76 columns
OTHER_JSON=$WORK/other-key.json
sed 's/fake-project/other-project/g' "$KEY_JSON" >"$OTHER_JSON"
NOT_CREDS_B64=$(printf '{"hello": "%s"}' "$MARKER" | base64 -w0)

# run_ep CASE [VAR=VALUE ...] -- [ARG ...]
# Runs the entrypoint with a clean environment plus the given variables.
# Sets CASE (the case directory), REC (the stub's records), EP_PID, EP_RC.
RUN_AS=()
run_ep() {
    CASE=$WORK/case-$1
    shift
    REC=$CASE/rec
    mkdir -p "$REC"
    chmod 0777 "$CASE" "$REC"
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    # env(1) exec's the entrypoint, which exec's dataops: one PID throughout.
    "${RUN_AS[@]}" env -i PATH="$STUB_BIN:/usr/bin:/bin" HOME="$CASE" \
        STUB_RECORD_DIR="$REC" "${envs[@]}" "$ENTRYPOINT" "$@" \
        >"$CASE/out" 2>"$CASE/err" &
    EP_PID=$!
    wait "$EP_PID"
    EP_RC=$?
}

file_mode() { stat -c '%a' "$1"; }
ran_main() { [ -f "$REC/argv" ]; }
not_ran_main() { [ ! -f "$REC/argv" ]; }
rc_is() { [ "$EP_RC" -eq "$1" ]; }
err_has() { grep -q -- "$1" "$CASE/err"; }
file_lacks() { ! grep -q -F -- "$2" "$1"; }
same_file() { cmp -s "$1" "$2"; }
no_temp_left() { [ -z "$(find "$1" -maxdepth 1 -name '.credentials.*' -print -quit)" ]; }
env_lacks_b64() { ! grep -q '^GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64=' "$1"; }
argv_is() {
    local expected
    expected=$(printf '%s\n' "$@")
    [ "$(cat "$REC/argv")" = "$expected" ]
}
pid_is_entrypoint() { [ "$(cat "$REC/pid" 2>/dev/null)" = "$EP_PID" ]; }

echo "entrypoint: $ENTRYPOINT"

# ------------------------------------------------------------------- cases

# 1. A valid key file is already there (a mounted Kubernetes Secret).
run_ep file-present GOOGLE_APPLICATION_CREDENTIALS="$KEY_JSON" \
    DATAOPS_WAREHOUSE=bigquery://fake-project --
check "valid file present: starts (exit 0)" rc_is 0
check "valid file present: dataops run is exec'd" argv_is run
check "valid file present: file left untouched" same_file "$KEY_JSON" "$WORK/fake-key.json"

# 1b. A valid file wins over the base64 variable (no overwrite).
cp "$OTHER_JSON" "$WORK/mounted.json"
run_ep file-wins GOOGLE_APPLICATION_CREDENTIALS="$WORK/mounted.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" DATAOPS_LAKE=gs://bucket --
check "valid file and base64: exit 0" rc_is 0
check "valid file and base64: the file is not overwritten" same_file "$WORK/mounted.json" "$OTHER_JSON"
check "valid file and base64: base64 variable unset for dataops" env_lacks_b64 "$REC/env"

# 2. Only the base64 variable: decoded into the file, mode 0600.
mkdir -p "$WORK/home2"
run_ep base64-only GOOGLE_APPLICATION_CREDENTIALS="$WORK/home2/gcp-storage-service-account.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" \
    DATAOPS_WAREHOUSE=bigquery://fake-project DATAOPS_LAKE=gs://bucket -- run --symbols BTCUSDT
check "base64 only: exit 0" rc_is 0
check "base64 only: decoded file equals the key" same_file "$WORK/home2/gcp-storage-service-account.json" "$KEY_JSON"
check "base64 only: file mode is 0600" test "$(file_mode "$WORK/home2/gcp-storage-service-account.json")" = 600
check "base64 only: no temporary file left" no_temp_left "$WORK/home2"
check "base64 only: argv passed through" argv_is run --symbols BTCUSDT
check "base64 only: base64 variable unset for dataops" env_lacks_b64 "$REC/env"
check "base64 only: base64 variable not given to check-credentials" env_lacks_b64 "$REC/check_env"
check "base64 only: dataops runs with the caller's umask, not 077" \
    test "$(cat "$REC/umask")" = "$(umask)"
check "base64 only: GOOGLE_APPLICATION_CREDENTIALS kept for dataops" \
    grep -q "^GOOGLE_APPLICATION_CREDENTIALS=$WORK/home2/gcp-storage-service-account.json\$" "$REC/env"

# 2b. Wrapped base64 (GNU base64's default 76 columns) with CRLF.
mkdir -p "$WORK/home2b"
run_ep base64-wrapped GOOGLE_APPLICATION_CREDENTIALS="$WORK/home2b/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$(printf '%s' "$KEY_B64_WRAPPED" | sed 's/$/\r/')" --
check "wrapped base64 with CRLF: decoded" same_file "$WORK/home2b/key.json" "$KEY_JSON"

# 2c. An invalid file (say, empty) is replaced by the decoded key.
mkdir -p "$WORK/home2c"
: >"$WORK/home2c/key.json"
chmod 0644 "$WORK/home2c/key.json"
run_ep replace-invalid GOOGLE_APPLICATION_CREDENTIALS="$WORK/home2c/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" DATAOPS_LAKE=gs://bucket --
check "invalid file + base64: exit 0" rc_is 0
check "invalid file + base64: replaced by the key" same_file "$WORK/home2c/key.json" "$KEY_JSON"
check "invalid file + base64: mode 0600" test "$(file_mode "$WORK/home2c/key.json")" = 600

# 3. Invalid base64: clear error, no partial file.
mkdir -p "$WORK/home3"
run_ep bad-base64 GOOGLE_APPLICATION_CREDENTIALS="$WORK/home3/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="${KEY_B64:0:40}!!!not*base64" \
    DATAOPS_WAREHOUSE=bigquery://fake-project --
check "invalid base64: exit 2" rc_is 2
check "invalid base64: says so" err_has "not valid base64"
check "invalid base64: no file written" test ! -e "$WORK/home3/key.json"
check "invalid base64: no temporary file left" no_temp_left "$WORK/home3"
check "invalid base64: dataops run not started" not_ran_main

# 3b. Valid base64 of something that is not a credentials object.
mkdir -p "$WORK/home3b"
run_ep not-creds GOOGLE_APPLICATION_CREDENTIALS="$WORK/home3b/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$NOT_CREDS_B64" --
check "base64 of non-credentials: exit 2" rc_is 2
check "base64 of non-credentials: says so" err_has "does not decode to valid Google credentials"
check "base64 of non-credentials: no file written" test ! -e "$WORK/home3b/key.json"
check "base64 of non-credentials: no temporary file left" no_temp_left "$WORK/home3b"
check "base64 of non-credentials: dataops run not started" not_ran_main

# 4. The directory of GOOGLE_APPLICATION_CREDENTIALS does not exist.
run_ep no-dir GOOGLE_APPLICATION_CREDENTIALS="$WORK/missing/dir/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" --
check "missing directory: exit 2" rc_is 2
check "missing directory: says so" err_has "does not exist"
check "missing directory: dataops run not started" not_ran_main

# 4b. The directory is not writable (as an unprivileged user: root writes anyway).
mkdir -p "$WORK/ro"
chmod 0555 "$WORK/ro"
if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi
run_ep ro-dir GOOGLE_APPLICATION_CREDENTIALS="$WORK/ro/key.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" --
RUN_AS=()
check "read-only directory: exit 2" rc_is 2
check "read-only directory: says not writable" err_has "not writable"
check "read-only directory: nothing written" test ! -e "$WORK/ro/key.json"

# 4c. GOOGLE_APPLICATION_CREDENTIALS is a directory.
mkdir -p "$WORK/isdir"
run_ep is-dir GOOGLE_APPLICATION_CREDENTIALS="$WORK/isdir" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" --
check "credentials path is a directory: exit 2" rc_is 2

# 4d. Base64 given but no file name to write it to.
run_ep no-path GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" --
check "base64 without GOOGLE_APPLICATION_CREDENTIALS: exit 2" rc_is 2
check "base64 without GOOGLE_APPLICATION_CREDENTIALS: says so" err_has "GOOGLE_APPLICATION_CREDENTIALS, the file"

# 5. A Google backend is configured and there are no credentials: refused.
run_ep refuse-bq DATAOPS_WAREHOUSE=bigquery://fake-project --
check "BigQuery without credentials: exit 2" rc_is 2
check "BigQuery without credentials: refuses with a message" err_has "refusing to start"
check "BigQuery without credentials: dataops run not started" not_ran_main
run_ep refuse-gcs DATAOPS_LAKE=gs://bucket GOOGLE_APPLICATION_CREDENTIALS="$WORK/nope.json" --
check "GCS lake, credentials file missing: exit 2" rc_is 2
check "GCS lake, credentials file missing: names the file" err_has "nope.json"
echo '{"type": "service_account"}' >"$WORK/partial.json"
run_ep refuse-partial DATAOPS_LAKE=gs://bucket GOOGLE_APPLICATION_CREDENTIALS="$WORK/partial.json" --
check "GCS lake, incomplete key file: exit 2" rc_is 2
check "GCS lake, incomplete key file: dataops run not started" not_ran_main

# 5b. Other settings may hold passwords: the refusal does not echo them.
run_ep refuse-no-echo DATAOPS_LAKE=gs://bucket \
    DATAOPS_WAREHOUSE="postgresql://user:$MARKER@db.example/dataops" --
check "refusal message does not echo setting values (passwords in URLs)" \
    file_lacks "$CASE/err" "$MARKER"

# 5c. Workload Identity: no key file at all, by explicit choice: starts.
run_ep workload-identity DATAOPS_LAKE=gs://bucket DATAOPS_GOOGLE_AUTH=metadata --
check "Workload Identity (DATAOPS_GOOGLE_AUTH=metadata): exit 0" rc_is 0
check "Workload Identity: says tokens come from the metadata server" err_has "metadata server"

# 6. Local default (no Google backend) and no credentials: starts.
run_ep local-default --
check "local default, no credentials: exit 0" rc_is 0
check "no arguments: defaults to 'dataops run'" argv_is run
run_ep local-missing-file GOOGLE_APPLICATION_CREDENTIALS="$WORK/nope.json" \
    DATAOPS_WAREHOUSE=sqlite:///tmp/wh.db DATAOPS_LAKE=file:///tmp/lake --
check "local backends, credentials file missing: starts with a warning" rc_is 0
check "local backends, credentials file missing: warns" err_has "warning"

# 7. exec: dataops replaces the shell (same PID), arguments kept verbatim,
#    exit code passed through.
# shellcheck disable=SC2016 # a literal '$HOME' must reach dataops unexpanded
run_ep exec STUB_EXIT_CODE=3 -- run --symbols 'BTC USDT' '' '--x=$HOME' '*'
check "exec: dataops has the entrypoint's PID" pid_is_entrypoint
# shellcheck disable=SC2016
check "exec: argv with spaces, empty and glob characters kept" argv_is run --symbols 'BTC USDT' '' '--x=$HOME' '*'
check "exec: dataops' exit code (3) is the container's" rc_is 3
run_ep version -- version
check "exec: 'version' passed through" argv_is version

# 8. JSON log lines when DATAOPS_LOG_FORMAT=json.
run_ep json-log DATAOPS_LOG_FORMAT=json DATAOPS_WAREHOUSE=bigquery://p --
check "json log format: refusal is one JSON object per line" \
    python3 -c 'import json,sys
lines=[l for l in open(sys.argv[1]) if l.strip()]
assert lines
for l in lines: assert json.loads(l)["component"]=="entrypoint"' "$CASE/err"

# 9. dataops not on PATH.
CASE=$WORK/case-no-dataops
mkdir -p "$CASE"
env -i PATH=/usr/bin:/bin "$ENTRYPOINT" >"$CASE/out" 2>"$CASE/err"
EP_RC=$?
check "dataops missing from PATH: exit 127" rc_is 127
check "dataops missing from PATH: says so" err_has "dataops not found"

# 10. The secret never appears on stdout or stderr of any case.
leaks=$(grep -l -F -e "$MARKER" -e "${KEY_B64:0:40}" -e "${KEY_B64: -40}" \
    -e "${NOT_CREDS_B64:0:24}" \
    "$WORK"/case-*/out "$WORK"/case-*/err 2>/dev/null)
CASE=$WORK
check "the secret never appears in stdout/stderr" test -z "$leaks"
# shellcheck disable=SC2016 # $1 expands in the inner sh
check "the entrypoint has no 'set -x'" sh -c '! grep -Eq "^[^#]*set +-[a-z]*x" "$1"' sh "$ENTRYPOINT"

echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
