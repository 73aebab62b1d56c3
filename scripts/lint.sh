#!/bin/sh
# Static checks of the C code and the shell scripts (make lint).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "lint: cppcheck"
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
    --inline-suppr --suppress=missingIncludeSystem -I src -I "${BUILD_DIR:-build}/generated" \
    -D_GNU_SOURCE -DDATAOPS_HAVE_PG -DDATAOPS_HAVE_S3 -DDATAOPS_HAVE_GCS -DDATAOPS_HAVE_BQ src
echo "lint: shellcheck"
shellcheck scripts/*.sh
echo "lint: ok"
