#!/usr/bin/env bash
# Builds the release tarball: `xn` with the Swift runtime linked in (it runs on a machine without
# the Swift toolchain), stripped, with its man pages, shell completions and systemd units.
#
#   scripts/package.sh            → dist/xn-VERSION-linux-ARCH.tar.gz (its path is the last line)
#
# The man pages come from ArgumentParser's generate-manual plugin run on the debug build (the
# same text as the release one; a debug build that is already there costs seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

build=.build-static
echo "== build (release, Swift runtime linked statically)" >&2
swift build -c release --static-swift-stdlib --build-path "$build" --product xn >&2
binary="$build/release/xn"
version=$("$binary" --version)
name="xn-$version-linux-$(uname -m)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d" "$root/lib/systemd/system" \
    "$root/lib/sysusers.d"

strip -o "$root/bin/xn" "$binary"

echo "== man pages (ArgumentParser's generate-manual)" >&2
swift package --allow-writing-to-package-directory generate-manual --configuration debug --multi-page \
    --authors "the xn developers" >&2
pages=$(find .build/plugins/GenerateManual/outputs -name 'xn*.1' -path '*/xn/*' | head -n 1)
if [ -z "$pages" ]; then
    echo "package: generate-manual wrote no xn.1" >&2
    exit 1
fi
cp "$(dirname "$pages")"/xn*.1 "$root/share/man/man1/"

"$root/bin/xn" --generate-completion-script bash >"$root/share/bash-completion/completions/xn"
"$root/bin/xn" --generate-completion-script zsh >"$root/share/zsh/site-functions/_xn"
"$root/bin/xn" --generate-completion-script fish >"$root/share/fish/vendor_completions.d/xn.fish"

# xterm.js for the web page's terminal (Debian's build, checked against scripts/xterm.sha256, with
# its copyright file): the hub finds it at bin/../share/xn/xterm.
scripts/fetch-xterm.sh "$root/share/xn/xterm" >&2

cp contrib/xn-hub.service contrib/xn-worker.service "$root/lib/systemd/system/"
cp contrib/xn.sysusers.conf "$root/lib/sysusers.d/xn.conf"
cp README.md "$root/"

mkdir -p dist
tarball="dist/$name.tar.gz"
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$tarball" "$name"
echo "== $(du -h "$tarball" | cut -f1) $tarball" >&2
echo "$tarball"
