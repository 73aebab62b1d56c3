#!/bin/sh
# Install what the project needs from Debian's packages (and node/npm for
# the shipping checks and the S3 lake tests).
# Usage: install-deps.sh [--if-missing] GROUP...
# Groups: build, test, lint, fuzz, bench, all.  With --if-missing nothing is done
# when every package of the groups is already installed (a fast check, so
# `make` can call it every time).
set -eu

if_missing=0
if [ "${1:-}" = "--if-missing" ]; then
    if_missing=1
    shift
fi
[ $# -gt 0 ] || set -- all

# libzip-dev: the archive source (data.binance.vision zips); at run time the
# image needs libzip4 (Dockerfile runtime stage).
pkgs_build="build-essential cmake pkg-config git ca-certificates tzdata libcurl4-openssl-dev libsqlite3-dev libssl-dev libcjson-dev zlib1g-dev libpq-dev libzip-dev"
pkgs_test="python3 sqlite3 libcmocka-dev valgrind postgresql"
pkgs_lint="cppcheck shellcheck yamllint flake8"
pkgs_fuzz="clang libclang-rt-14-dev"
pkgs_bench="python3 python3-pandas python3-pydantic time"

want=""
for group in "$@"; do
    case "$group" in
        build) want="$want $pkgs_build" ;;
        test) want="$want $pkgs_build $pkgs_test" ;;
        lint) want="$want $pkgs_lint" ;;
        fuzz) want="$want $pkgs_build $pkgs_fuzz" ;;
        bench) want="$want $pkgs_build $pkgs_bench" ;;
        all) want="$want $pkgs_build $pkgs_test $pkgs_lint $pkgs_fuzz $pkgs_bench" ;;
        *) echo "install-deps.sh: unknown group '$group' (build, test, lint, fuzz, bench, all)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
    fi
done

# Node and npm: the lint group's checks and the test group's S3 fakes
# (tests/s3: s3rver and aws4, installed by the S3 test itself with
# `npm ci` from tests/s3/package-lock.json when node_modules is missing;
# by hand: `cd tests/s3 && npm ci`).
need_node=0
case " $* " in *" all "*|*" lint "*|*" test "*|*" bench "*) command -v npm >/dev/null 2>&1 || need_node=1 ;; esac
if [ "$need_node" = 1 ]; then
    missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
    [ "$if_missing" = 1 ] || echo "install-deps.sh: everything is installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps.sh: missing packages:$missing" >&2
        echo "install them as root: apt-get install -y$missing" >&2
        exit 1
    fi
fi
echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
