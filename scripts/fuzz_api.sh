#!/usr/bin/env bash
# Fuzzes the HTTP API against its OpenAPI document with schemathesis, bounded in time:
#   scripts/fuzz_api.sh PATH_TO_XN_BINARY [SECONDS_PER_PASS]
# The hub runs with bearer tokens on (requests carry an admin token), a whitelist of `true` (so
# generated jobs cannot run anything else) and callbacks limited to 127.0.0.1.
# Pass 1, the v1 API: no 5xx at all. Pass 2, http-runner's routes: every status must be one the
# document declares; their 501 for paths and methods http-runner does not have is by design.
set -euo pipefail
cd "$(dirname "$0")/.."
xn=$1
budget=${2:-60}
spec=Sources/XNHub/openapi.yaml
work=$(mktemp -d)
hub_pid=
cleanup() {
    [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

admin=$("$xn" token create --role admin --name fuzz-admin --data "$work/data" 2>/dev/null)
"$xn" hub -p 0 --data "$work/data" -w true --callback-hosts 127.0.0.1 --log-level error \
    >"$work/hub.out" 2>"$work/hub.err" &
hub_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/hub.out" && break
    kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.err" >&2; exit 1; }
    sleep 0.1
done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/hub.out" | head -n 1)
# Methods an operation does not declare get http-runner's 501 (`unexpected-methods` off).
printf '[phases.coverage]\nunexpected-methods = []\n' >"$work/schemathesis.toml"

# Through the test command's Python (XN_PYTHON, its virtual environment) or python3, so it works
# wherever pip put the package, whether or not its script is on PATH.
schemathesis() {
    "${XN_PYTHON:-python3}" -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())' "$@"
}
# One worker: with two, Hypothesis (describing filter lambdas with ast.parse) hits CPython 3.11's
# thread-unsafe AST constructor (gh-106905), a "Runtime Error: AST constructor recursion depth
# mismatch" on POST /v1/jobs or POST /v1/tokens in the coverage phase of most runs.
common=(--url "$url" -H "Authorization: Bearer $admin" --max-time "$budget" --request-timeout 10 -w 1
    --suppress-health-check all --warnings off)
echo "== fuzz: v1 API, no server errors ($budget s)"
schemathesis --config-file "$work/schemathesis.toml" run "$spec" "${common[@]}" \
    --include-path-regex '^/(v1/|openapi\.yaml)' --checks not_a_server_error
echo "== fuzz: http-runner routes, declared statuses only ($budget s)"
schemathesis --config-file "$work/schemathesis.toml" run "$spec" "${common[@]}" \
    --exclude-path-regex '^/(v1/|openapi\.yaml)' --phases examples,fuzzing \
    --checks status_code_conformance,content_type_conformance
kill -0 "$hub_pid" || { echo "the hub died during fuzzing" >&2; cat "$work/hub.err" >&2; exit 1; }
