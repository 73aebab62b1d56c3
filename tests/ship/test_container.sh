#!/usr/bin/env bash
# Builds the pipeline-dataops image for real and runs it, without a Docker
# engine:
#
#   1. debian:bookworm-slim stand-in: `debootstrap --variant=minbase bookworm`,
#      trimmed like the official slim image, cached as a tarball under
#      ${XDG_CACHE_HOME:-$HOME/.cache}/dataops, then `podman import`ed;
#   2. `podman build --isolation chroot --pull=never` of ./Dockerfile;
#   3. `podman image mount` gives the image's root filesystem; `chroot
#      --userspec=UID:GID` runs the entrypoint and dataops in it as the image
#      would (podman run cannot start containers here: no usable cgroups).
#      The root filesystem stays read-only, with writable directories bound at
#      HOME_DIR/data and /tmp, like the CronJob's emptyDirs.
#
#   sudo bash tests/ship/test_container.sh      (or: make test-container)
#
# Needs root, the Debian archive (debootstrap and apt inside the build) and
# installs podman, debootstrap, sqlite3 and openssl from Debian if missing.
# Environment: DATAOPS_CACHE_DIR (tarball cache), SHIP_IMAGE (image name,
# default localhost/pipeline-dataops:test), DEBIAN_MIRROR.
# Prints one line per check, timings, the image size and "N passed, N failed".

# shellcheck disable=SC2317 # predicates are called through check "$@"
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE_DIR=${DATAOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataops}
BASE_IMAGE=docker.io/library/debian:bookworm-slim
IMAGE=${SHIP_IMAGE:-localhost/pipeline-dataops:test}
COMMIT=test1234
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the base preparation below changes (invalidates the cache).
BASE_VERSION=2
BASE_TAR=$CACHE_DIR/debian-bookworm-minbase-v$BASE_VERSION-$(dpkg --print-architecture 2>/dev/null || uname -m).tar

PASSED=0
FAILED=0
T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_container.XXXXXX")
chmod 0755 "$WORK"
MNT=
FAKE_PID=

ok() { PASSED=$((PASSED + 1)); printf 'ok     %s\n' "$1"; }
not_ok() {
    FAILED=$((FAILED + 1))
    printf 'FAILED %s\n' "$1"
    shift
    local line
    for line in "$@"; do printf '       %s\n' "$line"; done
}
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "command: $*"; fi
}
note() { printf '%s\n' "-- $*"; }
elapsed() { echo $(($(date +%s) - T0)); }
finish() {
    echo
    note "total time: $(elapsed) s"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit
}
cleanup() {
    if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" 2>/dev/null; fi
    if [ -n "$MNT" ]; then podman image unmount "$IMAGE" >/dev/null 2>&1; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------- prerequisites

if [ "$(id -u)" -ne 0 ]; then
    not_ok "runs as root (debootstrap, podman storage, chroot need it)"
    finish
fi

need_pkgs=()
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v sqlite3 >/dev/null 2>&1 || need_pkgs+=(sqlite3)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    note "installing ${need_pkgs[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${need_pkgs[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1
        apt-get install -y --no-install-recommends "${need_pkgs[@]}" >>"$WORK/apt.log" 2>&1 || {
            not_ok "install ${need_pkgs[*]}" "$(tail -5 "$WORK/apt.log")"
            finish
        }
    fi
fi
note "podman $(podman --version | awk '{print $3}'), cache $CACHE_DIR"

# -------------------------------------------------- base image (cached)

t=$(date +%s)
if [ -f "$BASE_TAR" ]; then
    note "base rootfs from cache: $BASE_TAR"
else
    note "debootstrap --variant=minbase bookworm (cold cache, about a minute)"
    mkdir -p "$CACHE_DIR"
    rootfs=$WORK/rootfs
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        not_ok "debootstrap" "$(tail -5 "$WORK/debootstrap.log")"
        finish
    fi
    # Trim it like the official slim image: no apt lists or caches, no
    # documentation, manual pages or translations (and keep them out of the
    # packages installed later), and the security and updates suites.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
    # As the official image: dpkg without fsync (a container layer is
    # written once; much faster apt installs on slow disks).
    echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/*
    : >"$rootfs/etc/hostname"
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.part" . && mv "$BASE_TAR.part" "$BASE_TAR"
    rm -rf "$rootfs"
fi
# Import only when the stored base is not this tarball: a new import gets a
# new image id, and every cached layer of the build on top of it is lost.
base_id="$(basename "$BASE_TAR")@$(stat -c '%s-%Y' "$BASE_TAR")"
have_id=$(podman image inspect --format '{{index .Config.Labels "dataops.test.base"}}' "$BASE_IMAGE" 2>/dev/null)
if [ "$have_id" = "$base_id" ]; then
    note "base image already imported from this tarball"
elif ! podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL dataops.test.base=$base_id" \
    "$BASE_TAR" "$BASE_IMAGE" >"$WORK/import.log" 2>&1; then
    not_ok "podman import of the base rootfs" "$(tail -5 "$WORK/import.log")"
    finish
fi
base_size=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
note "base image $BASE_IMAGE: $((base_size / 1000000)) MB, ready in $(($(date +%s) - t)) s"

# ----------------------------------------------------------------- build

t=$(date +%s)
note "podman build (log: build.log; layers are cached between runs)"
if (cd "$ROOT" && podman build --isolation chroot --pull=never \
    --build-arg GIT_COMMIT_HASH="$COMMIT" \
    -f Dockerfile -t "$IMAGE" . 2>&1) |
    while IFS= read -r line; do printf '%(%T)T %s\n' -1 "$line"; done >"$WORK/build.log"; then
    ok "image builds ($(($(date +%s) - t)) s)"
    cp "$WORK/build.log" "$CACHE_DIR/last-build.log" 2>/dev/null
else
    not_ok "image builds ($(($(date +%s) - t)) s)" "$(tail -25 "$WORK/build.log")"
    cp "$WORK/build.log" "$CACHE_DIR/last-build.log" 2>/dev/null && note "log kept: $CACHE_DIR/last-build.log"
    finish
fi

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
note "image size: $size bytes ($((size / 1000000)) MB; base $((base_size / 1000000)) MB)"

config=$WORK/config.json
podman image inspect --format '{{json .Config}}' "$IMAGE" >"$config"
cfg() { python3 -c 'import json,sys
c=json.load(open(sys.argv[1])); v=c.get(sys.argv[2])
if isinstance(v,list): print("\n".join(v))
elif isinstance(v,dict): print("\n".join(f"{k}={x}" for k,x in sorted(v.items())))
elif v is not None: print(v)' "$config" "$1"; }

USER_SPEC=$(cfg User)
WORKDIR=$(cfg WorkingDir)
ENTRYPOINT=$(cfg Entrypoint | head -n 1)
mapfile -t IMAGE_ENV < <(cfg Env)
mapfile -t IMAGE_CMD < <(cfg Cmd)
UID_IMG=${USER_SPEC%%:*}
GID_IMG=${USER_SPEC#*:}
[ "$GID_IMG" = "$USER_SPEC" ] && GID_IMG=$UID_IMG

# Small predicates for the checks below.
contains() { [[ "$1" == *"$2"* ]]; }
has_line() { grep -qxF -- "$2" <<<"$1"; }
numeric_nonroot() { [[ "$1" =~ ^[0-9]+(:[0-9]+)?$ ]] && [ "${1%%:*}" -ne 0 ]; }
rc_and_file_has() { [ "$1" -eq "$2" ] && grep -q -- "$4" "$3"; }
none_of() { local f; for f in "$@"; do [ -e "$f" ] && return 1; done; return 0; }
no_secret_in() { local mark=$1 b64=$2; shift 2; ! grep -q -F -e "$mark" -e "${b64:0:40}" -e "BEGIN PRIVATE" "$@"; }
all_owned_by() { [ -z "$(find "$1" ! -user "$2" -print -quit)" ]; }
cannot_write_in() { ! touch "$1/.write-test" 2>/dev/null; }
apt_lists_empty() { [ -z "$(find "$1/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -print -quit 2>/dev/null)" ]; }

check "image config: numeric non-root USER ($USER_SPEC)" numeric_nonroot "$USER_SPEC"
check "image config: ENTRYPOINT is the entrypoint script ($ENTRYPOINT)" test -n "$ENTRYPOINT"
check "image config: CMD run" test "${IMAGE_CMD[*]}" = run
check "image config: WORKDIR /pipeline-dataops" test "$WORKDIR" = /pipeline-dataops
check "image config: ENV GIT_COMMIT_HASH=$COMMIT" has_line "$(printf '%s\n' "${IMAGE_ENV[@]}")" "GIT_COMMIT_HASH=$COMMIT"
check "image config: revision label $COMMIT" has_line "$(cfg Labels)" "org.opencontainers.image.revision=$COMMIT"

# ------------------------------------------------------- the image's files

if ! MNT=$(podman image mount "$IMAGE" 2>"$WORK/mount.err"); then
    not_ok "podman image mount" "$(cat "$WORK/mount.err")"
    MNT=
    finish
fi
note "image root filesystem: $MNT"

check "binary at /usr/local/bin/dataops" test -x "$MNT/usr/local/bin/dataops"
check "entrypoint script in the image, executable" test -x "$MNT$ENTRYPOINT"
check "entrypoint is the repository's scripts/docker/entrypoint.sh" \
    cmp -s "$MNT$ENTRYPOINT" "$ROOT/scripts/docker/entrypoint.sh"
check "runtime image has no compiler, headers or sources" \
    none_of "$MNT/usr/bin/gcc" "$MNT/usr/bin/cc" "$MNT/usr/include/curl" "$MNT/src"
check "CA certificates present" test -s "$MNT/etc/ssl/certs/ca-certificates.crt"
check "time zone data present" test -e "$MNT/usr/share/zoneinfo/Asia/Singapore"
check "no apt lists left in the runtime image" apt_lists_empty "$MNT"
check "HOME_DIR/data owned by the image user" \
    test "$(stat -c '%u:%g' "$MNT$WORKDIR/data")" = "$UID_IMG:$GID_IMG"
check "root filesystem of the image is not writable (like readOnlyRootFilesystem)" \
    cannot_write_in "$MNT"

# in_image [-u USER:GROUP] [VAR=VALUE ...] -- COMMAND...
# Runs COMMAND in the image root in a private mount namespace, with the
# image's environment plus the given variables, fresh writable directories at
# WORKDIR/data ($DATA_DIR) and /tmp, and /dev and /proc mounted.
DATA_DIR=$WORK/data
TMP_DIR=$WORK/tmp
reset_scratch() {
    rm -rf "$DATA_DIR" "$TMP_DIR"
    mkdir -p "$DATA_DIR" "$TMP_DIR"
    chown "$UID_IMG:$GID_IMG" "$DATA_DIR"
    chmod 0750 "$DATA_DIR"
    chmod 1777 "$TMP_DIR"
}
in_image() {
    local user="$UID_IMG:$GID_IMG"
    if [ "$1" = -u ]; then user=$2; shift 2; fi
    local envs=("${IMAGE_ENV[@]}")
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    # exec all the way down: the PID of unshare is the PID of COMMAND (and,
    # with IN_IMAGE_EXEC=1 in a background subshell, the PID in $!).
    local run=()
    [ "${IN_IMAGE_EXEC:-0}" = 1 ] && run=(exec)
    # shellcheck disable=SC2016 # the inner sh expands its own arguments
    "${run[@]}" unshare --mount --propagation private -- /bin/sh -c '
        set -e
        mnt=$1 data=$2 tmp=$3 workdir=$4 user=$5
        shift 5
        mount --bind "$data" "$mnt$workdir/data"
        mount --bind "$tmp" "$mnt/tmp"
        mount --rbind /dev "$mnt/dev"
        mount -t proc proc "$mnt/proc"
        cd "$mnt$workdir"
        exec chroot --userspec="$user" "$mnt" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$workdir" "$@"
    ' sh "$MNT" "$DATA_DIR" "$TMP_DIR" "$WORKDIR" "$user" /usr/bin/env -i "${envs[@]}" "$@"
}

reset_scratch
out=$(in_image -- "$ENTRYPOINT" version 2>&1)
check "entrypoint + 'dataops version' prints the build arg commit ($out)" contains "$out" "$COMMIT"
out=$(in_image -- /usr/bin/ldd /usr/local/bin/dataops 2>&1)
check "every shared library of dataops resolves in the image" \
    test -n "$out" -a "${out/not found/}" = "$out"
out=$(in_image -- /usr/bin/id -u 2>&1)
check "processes run as the image user, not root (uid $out)" test "$out" = "$UID_IMG" -a "$out" != 0

# --------------------------------------------- credentials via the entrypoint

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/fake.pem" 2>/dev/null
python3 - "$WORK/fake.pem" "$WORK/fake-key.json" <<'EOF'
import json, sys
pem = open(sys.argv[1]).read()
json.dump({
    "type": "service_account",
    "project_id": "fake-project",
    "private_key_id": "0123456789abcdef",
    "private_key": pem,
    "client_email": "dataops-test@fake-project.iam.gserviceaccount.com",
    "client_id": "1",
    "token_uri": "http://127.0.0.1:9/token",
}, open(sys.argv[2], "w"), indent=2)
EOF
KEY_B64=$(base64 -w0 "$WORK/fake-key.json")
KEY_MARK=$(sed -n '2p' "$WORK/fake.pem")
rm -f "$WORK/fake.pem"

reset_scratch
in_image GOOGLE_APPLICATION_CREDENTIALS="$WORKDIR/data/gcp-storage-service-account.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" -- "$ENTRYPOINT" version \
    >"$WORK/cred.out" 2>"$WORK/cred.err"
rc=$?
key_file=$DATA_DIR/gcp-storage-service-account.json
check "base64 credentials: entrypoint decodes and exec's dataops (exit $rc)" \
    rc_and_file_has "$rc" 0 "$WORK/cred.out" "$COMMIT"
check "base64 credentials: file equals the key" cmp -s "$key_file" "$WORK/fake-key.json"
check "base64 credentials: mode 0600, owned by the image user" \
    test "$(stat -c '%a %u' "$key_file" 2>/dev/null)" = "600 $UID_IMG"
check "base64 credentials: the secret is not printed" \
    no_secret_in "$KEY_MARK" "$KEY_B64" "$WORK/cred.out" "$WORK/cred.err"
in_image GOOGLE_APPLICATION_CREDENTIALS="$WORKDIR/data/gcp-storage-service-account.json" \
    -- /usr/local/bin/dataops check-credentials "$WORKDIR/data/gcp-storage-service-account.json" \
    >"$WORK/cc.out" 2>&1
check "dataops check-credentials accepts the decoded key" test $? -eq 0
check "dataops check-credentials does not print the key" \
    no_secret_in "$KEY_MARK" "$KEY_B64" "$WORK/cc.out"

reset_scratch
in_image GOOGLE_APPLICATION_CREDENTIALS="$WORKDIR/gcp-storage-service-account.json" \
    GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64="$KEY_B64" DATAOPS_WAREHOUSE=bigquery://fake-project \
    -- "$ENTRYPOINT" >"$WORK/ro.out" 2>&1
rc=$?
check "read-only root: key path outside the scratch volume is refused clearly (exit $rc)" \
    rc_and_file_has "$rc" 2 "$WORK/ro.out" "not writable"

reset_scratch
in_image DATAOPS_WAREHOUSE=bigquery://fake-project -- "$ENTRYPOINT" >"$WORK/refuse.out" 2>&1
rc=$?
check "Google backend without credentials: refused (exit $rc)" \
    rc_and_file_has "$rc" 2 "$WORK/refuse.out" "refusing to start"

# ---------------------------------------------------- a full run in the image

FAKE=$ROOT/tests/fakes/fake_binance.py
KLINES=tests/samples/binance/finom-static-klines/BTCUSDT/1h/2022-01-01.json
start_fake() { # start_fake [EXTRA ARGS...]: sets FAKE_PID and PORT
    rm -f "$WORK/fake.port"
    (cd "$ROOT" && exec python3 "$FAKE" --port 0 --port-file "$WORK/fake.port" \
        --data "BTCUSDT:1h:$KLINES" --now 1643673600000 "$@") >"$WORK/fake.log" 2>&1 &
    FAKE_PID=$!
    local _i
    for _i in $(seq 1 100); do
        [ -s "$WORK/fake.port" ] && break
        kill -0 "$FAKE_PID" 2>/dev/null || break
        sleep 0.1
    done
    PORT=$(cat "$WORK/fake.port" 2>/dev/null)
    [ -n "$PORT" ]
}
stop_fake() {
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
    FAKE_PID=
}
RUN_ENV=(DATAOPS_SYMBOLS=BTCUSDT DATAOPS_INTERVALS=1h DATAOPS_START_TIME=2022-01-01
    DATAOPS_END_TIME=2022-02-01 DATAOPS_LOG_FORMAT=json)

if [ ! -f "$FAKE" ]; then
    not_ok "fake exchange tests/fakes/fake_binance.py exists"
elif ! start_fake; then
    not_ok "fake exchange starts" "$(tail -5 "$WORK/fake.log")"
else
    reset_scratch
    t=$(date +%s)
    in_image "${RUN_ENV[@]}" BINANCE_BASE_URL="http://127.0.0.1:$PORT" -- "$ENTRYPOINT" \
        >"$WORK/run.out" 2>"$WORK/run.err"
    rc=$?
    check "dataops run in the image against the fake exchange: exit 0 ($rc, $(($(date +%s) - t)) s)" test "$rc" -eq 0
    [ "$rc" -eq 0 ] || printf '       %s\n' "$(tail -c 1500 "$WORK/run.err")"
    wh=$DATA_DIR/warehouse.db
    rows=$(sqlite3 "$wh" 'SELECT count(*) FROM raw_binance_btcusdt_spot' 2>&1)
    check "SQLite warehouse: raw_binance_btcusdt_spot has 744 rows ($rows)" test "$rows" = 744
    trows=$(sqlite3 "$wh" 'SELECT count(*) FROM processed_binance_btcusdt_spot' 2>&1)
    check "SQLite warehouse: processed_binance_btcusdt_spot has 744 rows ($trows)" test "$trows" = 744
    runrec=$(sqlite3 "$wh" 'SELECT git_commit || " " || status FROM dataops_runs' 2>&1)
    check "run record carries the image's commit ($runrec)" contains "$runrec" "$COMMIT"
    check "files written by the run belong to the image user" all_owned_by "$DATA_DIR" "$UID_IMG"
    check "the run's log lines are JSON (DATAOPS_LOG_FORMAT=json)" \
        python3 -c 'import json,sys
lines=[l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no log lines"
for l in lines: json.loads(l)' "$WORK/run.err"
    stop_fake

    # SIGTERM reaches dataops through the entrypoint (exec): the fake stalls
    # the klines request, the run is stopped and must exit 1 promptly.
    if start_fake --fault "klines:*:stall:60"; then
        reset_scratch
        (IN_IMAGE_EXEC=1 in_image "${RUN_ENV[@]}" BINANCE_BASE_URL="http://127.0.0.1:$PORT" \
            -- "$ENTRYPOINT" run >"$WORK/term.out" 2>"$WORK/term.err") &
        run_pid=$!
        sleep 3
        comm=$(cat "/proc/$run_pid/comm" 2>/dev/null)
        t=$(date +%s)
        kill -TERM "$run_pid" 2>/dev/null
        for _ in $(seq 1 150); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$run_pid" 2>/dev/null; then kill -KILL "$run_pid"; fi
        wait "$run_pid"
        rc=$?
        check "exec chain: the process started as the entrypoint is dataops ($comm)" test "$comm" = dataops
        check "SIGTERM: dataops exits 1 within 15 s (exit $rc after $(($(date +%s) - t)) s)" test "$rc" -eq 1
        status=$(sqlite3 "$DATA_DIR/warehouse.db" 'SELECT status FROM dataops_runs' 2>&1)
        check "SIGTERM: the run is recorded as interrupted ($status)" test "$status" = interrupted
        stop_fake
    else
        not_ok "fake exchange starts with a stall fault" "$(tail -5 "$WORK/fake.log")"
    fi
fi

podman image unmount "$IMAGE" >/dev/null 2>&1
MNT=
note "image $IMAGE kept (layer cache for the next run); remove: podman rmi $IMAGE"
note "image size: $size bytes ($((size / 1000000)) MB)"
finish
