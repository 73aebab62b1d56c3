#!/bin/sh
# Entrypoint of the pipeline-dataops image.
#
# 1. Makes sure GOOGLE_APPLICATION_CREDENTIALS names a file that holds valid
#    Google credentials when they can be had:
#    - a file already there (for example a Kubernetes Secret mounted as a
#      file) is used as it is;
#    - otherwise GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64, if set, is
#      decoded into that file (mode 0600, written to a temporary file in the
#      same directory, checked, then renamed into place).
#    With a Google backend configured (DATAOPS_WAREHOUSE=bigquery://...
#    or DATAOPS_LAKE=gs://...) and no valid credentials, it refuses to start.
# 2. Removes GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 from the environment
#    and exec's `dataops "$@"` (default: `dataops run`), so that dataops
#    replaces this shell, runs as PID 1 and receives SIGTERM itself.
#
# Exit codes of its own: 2 (configuration error, as `dataops` uses), 127
# (dataops not found). The secret is never printed: do not add `set -x`.

set -eu
# The key file is created under umask 077; dataops gets the caller's umask.
caller_umask=$(umask)

ENTRYPOINT_NAME=entrypoint

# One line on stderr; JSON when the pipeline logs JSON, so that log
# collectors parse entrypoint and pipeline lines alike.
log() {
    level=$1
    shift
    if [ "${DATAOPS_LOG_FORMAT:-}" = json ]; then
        msg=$(printf '%s' "$*" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\n\r\t')
        printf '{"level":"%s","component":"%s","msg":"%s"}\n' \
            "$level" "$ENTRYPOINT_NAME" "$msg" >&2
    else
        printf '%s: %s: %s\n' "$ENTRYPOINT_NAME" "$level" "$*" >&2
    fi
}

die() {
    code=$1
    shift
    log error "$*"
    exit "$code"
}

google_backend_configured() {
    case "${DATAOPS_WAREHOUSE:-}" in
        bigquery://*) return 0 ;;
    esac
    case "${DATAOPS_LAKE:-}" in
        gs://*) return 0 ;;
    esac
    return 1
}

# True when FILE holds valid credentials. dataops never prints the file's
# content; its message is shown only when asked (second argument "loud").
credentials_valid() {
    if [ "${2:-quiet}" = loud ]; then
        dataops check-credentials "$1" >&2
    else
        dataops check-credentials "$1" >/dev/null 2>&1
    fi
}

# Keep the encoded secret in an unexported shell variable only: no child
# process (not even `dataops check-credentials`) sees it in its environment.
creds_b64=${GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64:-}
unset GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64

command -v dataops >/dev/null 2>&1 ||
    die 127 "dataops not found on PATH ($PATH)"

creds_file=${GOOGLE_APPLICATION_CREDENTIALS:-}

if [ -n "$creds_file" ] && [ -f "$creds_file" ] && [ -r "$creds_file" ] &&
    credentials_valid "$creds_file"; then
    log info "using the credentials in $creds_file"
elif [ -n "$creds_b64" ]; then
    [ -n "$creds_file" ] ||
        die 2 "GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is set but GOOGLE_APPLICATION_CREDENTIALS, the file to decode it into, is not"
    [ ! -d "$creds_file" ] ||
        die 2 "GOOGLE_APPLICATION_CREDENTIALS=$creds_file is a directory, not a file"
    creds_dir=$(dirname -- "$creds_file")
    [ -d "$creds_dir" ] ||
        die 2 "the directory $creds_dir of GOOGLE_APPLICATION_CREDENTIALS does not exist (create it in the image or mount a volume there)"
    if [ ! -w "$creds_dir" ] || [ ! -x "$creds_dir" ]; then
        die 2 "the directory $creds_dir of GOOGLE_APPLICATION_CREDENTIALS is not writable by uid $(id -u); mount a writable volume there or mount the key file itself"
    fi

    umask 077
    tmp_file=$(mktemp "$creds_dir/.credentials.XXXXXX") ||
        die 2 "cannot create a temporary file in $creds_dir"
    # Whatever happens before the rename, leave no partial key behind.
    trap 'rm -f "$tmp_file"' EXIT
    trap 'rm -f "$tmp_file"; exit 1' HUP INT TERM

    # printf is a shell builtin: the secret never shows in a process list.
    # Line breaks (base64 wraps at 76 columns) and stray CRs are tolerated.
    if ! printf '%s' "$creds_b64" | tr -d ' \t\r\n' |
        base64 -d >"$tmp_file" 2>/dev/null; then
        die 2 "GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is not valid base64; nothing was written to $creds_file"
    fi
    creds_b64=
    chmod 0600 "$tmp_file"
    if ! credentials_valid "$tmp_file" loud; then
        die 2 "GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 does not decode to valid Google credentials JSON (a service_account key with client_email and private_key); nothing was written to $creds_file"
    fi
    mv -f "$tmp_file" "$creds_file" ||
        die 2 "cannot move the decoded credentials into $creds_file"
    trap - EXIT HUP INT TERM
    log info "decoded GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 into $creds_file (mode 0600)"
elif google_backend_configured; then
    if [ -z "$creds_file" ] && [ "${DATAOPS_GOOGLE_AUTH:-}" = metadata ]; then
        # GKE Workload Identity: no key file; dataops asks the metadata
        # server (GCE_METADATA_HOST) for tokens.
        log info "no key file: Google tokens come from the metadata server (DATAOPS_GOOGLE_AUTH=metadata)"
    elif [ -z "$creds_file" ]; then
        die 2 "a Google backend is configured (DATAOPS_WAREHOUSE bigquery:// or DATAOPS_LAKE gs://) but GOOGLE_APPLICATION_CREDENTIALS is not set and GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is empty; refusing to start (with Workload Identity, set DATAOPS_GOOGLE_AUTH=metadata)"
    elif [ ! -e "$creds_file" ]; then
        die 2 "a Google backend is configured but $creds_file (GOOGLE_APPLICATION_CREDENTIALS) does not exist and GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is empty; refusing to start"
    elif [ ! -r "$creds_file" ] || [ ! -f "$creds_file" ]; then
        die 2 "a Google backend is configured but $creds_file (GOOGLE_APPLICATION_CREDENTIALS) is not a file readable by uid $(id -u) and GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is empty; refusing to start"
    else
        credentials_valid "$creds_file" loud || true
        die 2 "a Google backend is configured but $creds_file (GOOGLE_APPLICATION_CREDENTIALS) does not hold valid credentials and GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64 is empty; refusing to start"
    fi
elif [ -n "$creds_file" ]; then
    log warning "GOOGLE_APPLICATION_CREDENTIALS=$creds_file holds no valid credentials; continuing, since no Google backend is configured"
fi

unset creds_b64 creds_file creds_dir tmp_file
umask "$caller_umask"

if [ "$#" -eq 0 ]; then
    set -- run
fi
exec dataops "$@"
