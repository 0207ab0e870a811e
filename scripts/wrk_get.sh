#!/usr/bin/env bash
# usage: scripts/wrk_get.sh XN_BINARY LABEL — a hub on 127.0.0.1:9600, 200 finished jobs, then wrk from outside.
set -euo pipefail
xn=$1; label=$2
data=$(mktemp -d); port=9600
"$xn" hub -p $port --data "$data" --log-level error > /tmp/measure-hub.log 2>&1 &
hub=$!
trap 'kill $hub 2>/dev/null; rm -rf "$data"' EXIT
for i in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
ids=()
for i in $(seq 200); do
  ids+=("$(curl -s -XPOST -d '{"command":"echo","args":["hi"]}' "http://127.0.0.1:$port/v1/jobs?wait=5" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
done
id=${ids[100]}
echo "== $label: GET /v1/jobs/ID, keep-alive, 16 connections, 10 s"
wrk -t2 -c16 -d10s "http://127.0.0.1:$port/v1/jobs/$id" | grep -E "Requests/sec|Latency"
echo "== $label: GET /ID (http-runner), keep-alive, 16 connections, 10 s"
wrk -t2 -c16 -d10s "http://127.0.0.1:$port/$id" | grep -E "Requests/sec|Latency"
echo "== $label: GET /healthz, a new connection per request, 16 connections, 10 s"
wrk -t2 -c16 -d10s -H "Connection: close" "http://127.0.0.1:$port/healthz" | grep -E "Requests/sec|Latency"
