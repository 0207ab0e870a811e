#!/bin/bash
# Compares xn builds on jobs run through a worker, as a user's load arrives: each round starts
# each build's `xn hub --no-local` and `xn worker` as processes of their own, and wrk (another
# process) submits `true` with `POST /v1/jobs?wait=10`, from 1 connection (submit→exit latency)
# and from 32 (jobs per second).
#
#   scripts/remote_ab.sh 6 3 ./before/xn ./after/xn
set -euo pipefail
# shellcheck source=scripts/start_hub.sh
source "$(dirname "$0")/start_hub.sh"
if [ $# -lt 3 ]; then
    echo "usage: $0 SECONDS ROUNDS XN [XN...]" >&2
    exit 2
fi
seconds=$1 rounds=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/v1/jobs?wait=10"
wrk.body = '{"command":"true"}'
wrk.headers["Content-Type"] = "application/json"
LUA
for _ in $(seq 1 "$rounds"); do
    for xn in "$@"; do
        rm -rf "$work/data" "$work/spool"
        start_hub "$xn" "$work/data" "$work/hub.log" --no-local
        "$xn" worker --hub "${url/http/ws}" --name bench --slots "$(nproc)" --spool "$work/spool" \
            --log-level error > "$work/worker.log" 2>&1 &
        worker=$!
        connected=""
        for _ in $(seq 1 200); do
            curl -s "$url/v1/workers" | grep -q '"bench"' && connected=yes && break
            sleep 0.1
        done
        [ -n "$connected" ] || { echo "$xn: the worker did not connect" >&2; kill "$worker" "$hub"; exit 1; }
        line="$xn"
        for connections in 1 32; do
            result=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "$url")
            line="$line  $connections connection(s): $(echo "$result" |
                awk '/ 50%/ {p50 = $2} / 99%/ {p99 = $2} /Requests\/sec/ {rate = $2}
                     END {print "p50 " p50 ", p99 " p99 ", " rate " jobs/s"}')"
        done
        echo "$line"
        kill "$worker" "$hub"
        wait "$worker" "$hub" 2>/dev/null || true
    done
done
