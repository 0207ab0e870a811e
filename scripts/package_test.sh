#!/usr/bin/env bash
# Checks a release tarball as a user would meet it on a machine without Swift: unpacked
# elsewhere, the toolchain off the PATH and its libraries out of the loader's reach, `xn` prints
# its version, serves a hub, and runs a job on it; the man page, completions and units are there.
#
#   scripts/package_test.sh dist/xn-VERSION-linux-ARCH.tar.gz
set -euo pipefail
tarball=$(realpath "$1")
work=$(mktemp -d)
hub_pid=""
cleanup() {
    if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "package test: $*" >&2
    exit 1
}

tar -C "$work" -xzf "$tarball"
root=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'xn-*')
[ -n "$root" ] || fail "no xn-* folder in $tarball"
for file in bin/xn share/xn/xterm/xterm.js share/xn/xterm/copyright share/man/man1/xn.1 share/man/man1/xn.hub.1 share/bash-completion/completions/xn \
    share/zsh/site-functions/_xn share/fish/vendor_completions.d/xn.fish lib/systemd/system/xn-hub.service \
    lib/systemd/system/xn-worker.service lib/sysusers.d/xn.conf; do
    [ -s "$root/$file" ] || fail "missing or empty: $file"
done

# No Swift library comes from outside the binary.
if ldd "$root/bin/xn" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/swift'; then
    fail "xn still loads Swift libraries at run time"
fi
if nm "$root/bin/xn" >/dev/null 2>&1 && [ "$(nm "$root/bin/xn" 2>/dev/null | wc -l)" -gt 0 ]; then
    fail "xn is not stripped"
fi

# A user's shell: a plain PATH without the toolchain, nothing for the loader beyond the system.
clean=(env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$work" "LANG=C.UTF-8")
xn="$root/bin/xn"
version=$("${clean[@]}" "$xn" --version) || fail "xn --version failed"
case "$(basename "$root")" in
"xn-$version-"*) ;;
*) fail "xn --version says $version, the tarball is $(basename "$root")" ;;
esac
echo "xn --version: $version"

grep -q '^\.Dt XN 1' "$root/share/man/man1/xn.1" || fail "xn.1 is not a man page (mdoc)"
grep -q 'complete' "$root/share/bash-completion/completions/xn" || fail "bash completion holds no complete"
if command -v bash >/dev/null; then
    bash -n "$root/share/bash-completion/completions/xn" || fail "bash completion does not parse"
fi
if command -v systemd-analyze >/dev/null; then
    units="$work/units"
    mkdir -p "$units"
    for unit in xn-hub.service xn-worker.service; do
        sed "s|/usr/local/bin/xn|$xn|" "$root/lib/systemd/system/$unit" >"$units/$unit"
    done
    systemd-analyze verify --man=no "$units/xn-hub.service" "$units/xn-worker.service" ||
        fail "systemd-analyze verify refuses the units"
fi

# A hub on a free loopback port with its own data folder, and one job through it.
"${clean[@]}" "$xn" hub --port 0 --data "$work/data" --allow-root >"$work/hub.out" 2>"$work/hub.err" &
hub_pid=$!
url=""
for _ in $(seq 1 100); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/hub.out" | head -n 1 || true)
    [ -n "$url" ] && break
    kill -0 "$hub_pid" 2>/dev/null || fail "the hub exited: $(cat "$work/hub.err")"
    sleep 0.1
done
[ -n "$url" ] || fail "the hub did not say where it listens: $(cat "$work/hub.out" "$work/hub.err")"
out=$("${clean[@]}" "XN_HUB=$url" "$xn" run -- sh -c 'echo packaged; exit 3') && status=0 || status=$?
[ "$out" = "packaged" ] || fail "xn run printed '$out'"
[ "$status" = 3 ] || fail "xn run exited $status, the job exited 3"
grep -q "web page: $url/ui/ (terminal: xterm.js from" "$work/hub.out" ||
    fail "the hub did not find the xterm.js the tarball carries: $(cat "$work/hub.out")"
page=$(curl -s "$url/ui/xterm/xterm.js" | head -c 100000 | grep -c Terminal || true)
[ "$page" -gt 0 ] || fail "the hub does not serve xterm.js at /ui/xterm/xterm.js"
echo "hub at $url ran a job: '$out', exit $status"
kill "$hub_pid"
wait "$hub_pid" || fail "the hub did not stop cleanly on SIGTERM: $(cat "$work/hub.err")"
hub_pid=""
# The release build under the worst a hub suffers: killed twice while 1 GiB streams through a worker.
"$(dirname "$0")/hub_kill_test.sh" "$xn"
echo "package test passed: $(basename "$tarball")"
