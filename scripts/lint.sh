#!/bin/sh
# Static checks of the C code, the shell scripts and the Python tests,
# fakes and benchmarks (make lint).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "lint: cppcheck"
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
    --inline-suppr --suppress=missingIncludeSystem -I src -I "${BUILD_DIR:-build}/generated" \
    -D_GNU_SOURCE -DDATAOPS_HAVE_PG -DDATAOPS_HAVE_S3 -DDATAOPS_HAVE_GCS -DDATAOPS_HAVE_BQ src
echo "lint: shellcheck"
shellcheck scripts/*.sh
echo "lint: flake8"
py=$(git ls-files '*.py' 2>/dev/null || find tests bench -name '*.py' -not -path '*/node_modules/*')
# shellcheck disable=SC2086
flake8 --max-line-length 100 $py
echo "lint: ok"
