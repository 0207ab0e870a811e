#!/usr/bin/env bash
# The project's test command: one debug build, then the Swift tests and the API contract check
# against that same build. Fails on any compiler warning in our own sources.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format (swift format lint)"
scripts/format.sh --check

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== build (debug, with tests)"
if ! swift build --build-tests 2>&1 | tee "$log"; then
    echo "build failed" >&2
    exit 1
fi
root=$(pwd)
if grep -E "^$root/(Sources|Tests)/.*warning:" "$log"; then
    echo "warnings in our sources (treated as errors)" >&2
    exit 1
fi

echo "== swift test"
# Serially: the integration tests time real processes on 2 cores; in parallel they starve each other.
swift test --skip-build --no-parallel

echo "== API contract (OpenAPI document vs. the running hub)"
python3 scripts/contract_test.py "$(swift build --show-bin-path)/xn"

echo "== API fuzzing (schemathesis against the OpenAPI document, bounded in time)"
if ! python3 -c "import schemathesis" 2>/dev/null; then
    echo "schemathesis is missing: python3 -m pip install schemathesis (.ci/run does)" >&2
    exit 1
fi
scripts/fuzz_api.sh "$(swift build --show-bin-path)/xn" "${XN_FUZZ_SECONDS:-60}"
