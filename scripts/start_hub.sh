# Sourced by the A/B scripts: starts `XN hub` on a free port of 127.0.0.1 with data folder DATA,
# logging to LOG, with any further arguments; sets `hub` (its pid) and `url` once it listens.
start_hub() {
    local xn=$1 data=$2 log=$3
    shift 3
    "$xn" hub -p 0 --data "$data" --log-level error "$@" > "$log" 2>&1 &
    hub=$!
    url=""
    for _ in $(seq 1 200); do
        url=$(grep -o "http://127.0.0.1:[0-9]*" "$log" | head -1 || true)
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "$xn: the hub printed no address" >&2
    kill "$hub"
    exit 1
}
