#!/usr/bin/env bash
# Fetches xterm.js 5.3.0 (and its fit addon, stylesheet and licence) for the hub's web terminal.
#
#   scripts/fetch-xterm.sh [DEST]   → DEST (default: .build/share/xn/xterm under the repository root)
#
# Why: no third-party JavaScript is committed to this repository, so the web UI's xterm.js is
# fetched at build time from Debian instead. Debian trixie's `libjs-xterm` 5.3.0-4 is a working
# build; bookworm's (the release this machine's apt sources point at) is a broken stub, so the
# script uses a private apt setup in a temporary directory that points at trixie, downloads the
# .deb with `apt-get download` (no installation, no root needed for dpkg) and removes everything
# on exit. The system's apt sources, lists and cache are never touched.
#
# Every byte is checked against the committed list scripts/xterm.sha256 (sha256sum format): the
# .deb itself, then each file taken from it (named by its path inside the package). On any
# mismatch the script stops with an error and exit status 1, and installs nothing.
#
# DEST gets four flat files: xterm.js, xterm.css, xterm-addon-fit.js and copyright (Debian's
# copyright file for the package: the MIT licence travels with the code). They are staged in
# DEST.tmp and renamed into place, so a failed run never leaves a half-filled DEST. When DEST
# already holds the right files the script says so and exits at once, without network.
#
# The hub looks for these files in `<directory of the xn executable>/../share/xn/xterm`, so both
# .build/release/xn and .build/debug/xn find the default DEST, .build/share/xn/xterm.
#
# XTERM_SHA256_LIST overrides the path of the hash list (for testing the mismatch path).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
list=${XTERM_SHA256_LIST:-$root/scripts/xterm.sha256}
dest=${1:-$root/.build/share/xn/xterm}
[[ $dest == / ]] || dest=${dest%/}

version=5.3.0
debian_version=5.3.0-4
deb=libjs-xterm_${debian_version}_all.deb
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# installed name → path inside the package
names=(xterm.js xterm.css xterm-addon-fit.js copyright)
declare -A source_of=(
    [xterm.js]=usr/share/javascript/xterm/xterm.js
    [xterm.css]=usr/share/javascript/xterm/xterm.css
    [xterm-addon-fit.js]=usr/share/javascript/xterm/addons/fit/xterm-addon-fit.js
    [copyright]=usr/share/doc/libjs-xterm/copyright
)

die() {
    echo "fetch-xterm: error: $*" >&2
    exit 1
}

[[ -r $list ]] || die "hash list $list is missing"

# expected_hash NAME: the sha256 the list gives for NAME (a path inside the package, or the .deb).
expected_hash() {
    local hash
    hash=$(awk -v name="$1" '$2 == name || $2 == "*" name { print $1; exit }' "$list")
    [[ $hash =~ ^[0-9a-f]{64}$ ]] || die "$list has no valid sha256 entry for $1"
    echo "$hash"
}

actual_hash() {
    local line
    line=$(sha256sum <"$1")
    echo "${line%% *}"
}

# verify FILE NAME: dies unless FILE's sha256 is the one the list gives for NAME.
verify() {
    local want got
    want=$(expected_hash "$2")
    [[ -f $1 ]] || die "$2 is missing from $deb"
    got=$(actual_hash "$1")
    [[ $got == "$want" ]] || die "sha256 mismatch for $2: expected $want, got $got (list: $list); nothing installed"
}

# Fail early on a damaged list rather than halfway through.
for name in "$deb" "${source_of[@]}"; do
    expected_hash "$name" >/dev/null
done

# Already there? (hash-checked, no network)
installed=1
for name in "${names[@]}"; do
    if [[ ! -f $dest/$name ]] || [[ $(actual_hash "$dest/$name") != "$(expected_hash "${source_of[$name]}")" ]]; then
        installed=0
        break
    fi
done
if ((installed)); then
    echo "xterm.js $version already in $dest"
    exit 0
fi

for tool in apt-get dpkg-deb sha256sum awk; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian or Ubuntu with apt)"
done
[[ -r $keyring ]] || die "$keyring is missing (package debian-archive-keyring)"

tmp=$(mktemp -d)
stage=""
cleanup() {
    rm -rf "$tmp"
    if [[ -n $stage ]]; then rm -rf "$stage"; fi
}
trap cleanup EXIT

echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/download"
# As root, apt drops privileges to _apt for downloads; let it write there (else it warns).
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then
    chown -R _apt "$tmp"
fi
apt_options=(
    -o "Dir::Etc::SourceList=$tmp/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache=$tmp/cache"
    -o APT::Get::List-Cleanup=0
)

echo "== apt-get update (private, Debian trixie main)" >&2
apt-get "${apt_options[@]}" update -q >&2 || die "apt-get update failed"
echo "== apt-get download libjs-xterm=$debian_version" >&2
(cd "$tmp/download" && apt-get "${apt_options[@]}" download "libjs-xterm=$debian_version") >&2 ||
    die "apt-get download libjs-xterm=$debian_version failed"

verify "$tmp/download/$deb" "$deb"
dpkg-deb -x "$tmp/download/$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
for name in "${names[@]}"; do
    verify "$tmp/root/${source_of[$name]}" "${source_of[$name]}"
done

# Stage next to DEST (same file system), then rename into place.
mkdir -p "$(dirname "$dest")"
stage=$dest.tmp
rm -rf "$stage"
mkdir "$stage"
for name in "${names[@]}"; do
    install -m 0644 "$tmp/root/${source_of[$name]}" "$stage/$name"
done
if [[ -e $dest ]]; then
    rm -rf "$dest.old"
    mv "$dest" "$dest.old"
    mv "$stage" "$dest"
    rm -rf "$dest.old"
else
    mv "$stage" "$dest"
fi
stage=""

echo "xterm.js $version (Debian trixie libjs-xterm $debian_version) installed in $dest"
