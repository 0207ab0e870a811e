#!/bin/bash
# Compares xn builds on lookups as wrk (another process) asks for them: each round starts each
# build's hub on a fresh copy of the same seeded jobs, loads it with GET /v1/jobs/ID and GET /ID
# of random jobs, and prints requests per second beside the hub's CPU time per request (from
# /proc, steadier than the rate on a machine whose speed moves).
#
#   XN_BENCH_KEEP=/tmp/seed xn-bench --wrk 200000      # seed once
#   scripts/lookup_ab.sh /tmp/seed 8 3 ./before/xn ./after/xn
set -euo pipefail
# shellcheck source=scripts/start_hub.sh
source "$(dirname "$0")/start_hub.sh"
if [ $# -lt 4 ]; then
    echo "usage: $0 SEED_DIR SECONDS ROUNDS XN [XN...]" >&2
    exit 2
fi
seed=$1 seconds=$2 rounds=$3
shift 3
ticks=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for _ in $(seq 1 "$rounds"); do
    for xn in "$@"; do
        rm -rf "$work/data"
        cp -r "$seed/data" "$work/data"
        start_hub "$xn" "$work/data" "$work/hub.log" --no-local
        line="$xn"
        for script in v1 compat; do
            before=$(cpu_ticks "$hub")
            result=$(wrk -t2 -c16 -d"${seconds}s" -s "$seed/$script.lua" "$url")
            after=$(cpu_ticks "$hub")
            requests=$(echo "$result" | awk '/requests in/ {print $1}')
            rate=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
            per=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')
            line="$line  $script ${rate}/s ${per} us CPU/request"
        done
        echo "$line  RSS $(awk '/VmRSS/ {print $2}' "/proc/$hub/status") kB"
        kill "$hub"
        wait "$hub" 2>/dev/null || true
    done
done
