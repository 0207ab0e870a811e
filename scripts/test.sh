#!/usr/bin/env bash
# The project's test command: one debug build, then the Swift tests and the API contract check
# against that same build. Fails on any compiler warning in our own sources.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format (swift format lint)"
scripts/format.sh --check

# The Python tools (contract check, fuzzing) in a virtual environment of their own, pinned, made
# once and again when the pins change.
venv=.build/python
requirements=scripts/python-requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    echo "== python tools (virtual environment $venv)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi
export XN_PYTHON="$PWD/$venv/bin/python"

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
"$XN_PYTHON" scripts/contract_test.py "$(swift build --show-bin-path)/xn"

echo "== web page in a real browser (chromium, chromedriver, python3-selenium)"
# xterm.js is not in the repository: Debian's build, fetched and checked by its sha256.
scripts/fetch-xterm.sh
if command -v chromium >/dev/null && command -v chromedriver >/dev/null && /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
    timeout 600 /usr/bin/python3 scripts/browser_test.py "$(swift build --show-bin-path)/xn" --xterm-dir .build/share/xn/xterm
elif [ "${CI:-}" = true ]; then
    echo "browser tests need chromium, chromium-driver and python3-selenium (.ci/run installs them)" >&2
    exit 1
else
    echo "SKIPPED: apt-get install chromium chromium-driver python3-selenium to run them" >&2
fi

echo "== API fuzzing (schemathesis against the OpenAPI document, bounded in time)"
scripts/fuzz_api.sh "$(swift build --show-bin-path)/xn" "${XN_FUZZ_SECONDS:-60}"

# The release tarball, built and checked as a user installs it (a static release build: minutes,
# so by default only in CI; XN_TEST_PACKAGE=1 asks for it here).
if [ "${CI:-}" = true ] || [ "${XN_TEST_PACKAGE:-0}" = 1 ]; then
    echo "== package (scripts/package.sh, then scripts/package_test.sh without the toolchain)"
    tarball=$(scripts/package.sh | tail -n 1)
    scripts/package_test.sh "$tarball"
fi
