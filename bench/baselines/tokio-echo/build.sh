#!/bin/sh
# Build the Tokio echo baseline fully offline against Debian's packaged crates.
#
# usage: build.sh OUTDIR
#
# Everything the build writes (a copy of the sources, Cargo.lock, the cargo home with its
# source-replacement config, the target dir) goes under OUTDIR; the repository is left
# untouched. On Debian, when run as root, missing packages (cargo, librust-tokio-dev) are
# installed with apt-get. The last line printed is the path of the built binary.
set -eu

usage="usage: $0 OUTDIR   (builds tokio-echo offline from /usr/share/cargo/registry; prints the binary path last)"
if [ $# -eq 1 ] && { [ "$1" = "--help" ] || [ "$1" = "-h" ]; }; then
    echo "$usage"
    exit 0
fi
if [ $# -ne 1 ]; then
    echo "$usage" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
outdir=$(cd "$1" && pwd)
registry=/usr/share/cargo/registry

# librust-tokio-dev provides every tokio feature (+rt, +net, +io-util, +signal, +macros)
# and depends on the crates those features need.
missing=""
for pkg in cargo librust-tokio-dev; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "tokio-echo: installing$missing" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2; then
            apt-get update >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
        fi
    else
        echo "tokio-echo: missing Debian packages:$missing (run as root to install them)" >&2
        exit 1
    fi
fi

# Debian's cargo and rustc match the packaged crates; a rustup toolchain earlier in PATH
# may not, and would try to reach the network for its own toolchain files.
if [ -x /usr/bin/cargo ]; then
    cargo=/usr/bin/cargo
    [ -x /usr/bin/rustc ] && export RUSTC=/usr/bin/rustc
    [ -x /usr/bin/rustdoc ] && export RUSTDOC=/usr/bin/rustdoc
else
    cargo=cargo
fi
if [ ! -d "$registry" ]; then
    echo "tokio-echo: $registry not found (is librust-tokio-dev installed?)" >&2
    exit 1
fi

# A private cargo home keeps the user's ~/.cargo config and caches out of the build.
export CARGO_HOME="$outdir/cargo-home"
mkdir -p "$CARGO_HOME"
cat > "$CARGO_HOME/config.toml" <<CONFIG
[source.crates-io]
replace-with = "debian-packages"

[source.debian-packages]
directory = "$registry"

[net]
offline = true
CONFIG

# Cargo writes Cargo.lock next to Cargo.toml, so build a copy of the sources.
src="$outdir/src-copy"
rm -rf "$src"
mkdir -p "$src"
cp "$here/Cargo.toml" "$src/"
cp -R "$here/src" "$src/"

"$cargo" build --release --offline --manifest-path "$src/Cargo.toml" --target-dir "$outdir/target" >&2

echo "$outdir/target/release/tokio-echo"
