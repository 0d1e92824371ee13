#!/bin/sh
# Builds the test kernel (regress/guest/kernel) into OUTDIR (default:
# target/guest):
#   bsd     the kernel: an ELF64 executable laid out like OpenBSD/amd64's
#   bsd.gz  the same kernel gzip'd (vmd boots either)
# The build is reproducible: the same sources and toolchain give the same
# bytes, wherever the tree and OUTDIR are. It installs the Rust target it
# needs (x86_64-unknown-none) with rustup; .ci/install-deps does too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
    rustup target add x86_64-unknown-none
fi

# Only the kernel's own configuration (kernel/.cargo/config.toml, build.rs)
# applies: nothing the caller's environment says about flags or targets.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS \
    CARGO_BUILD_TARGET CARGO_BUILD_TARGET_DIR CARGO_TARGET_DIR \
    RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER

cd "$here/kernel"
CARGO_TARGET_DIR="$out/kernel-build" cargo build --release --locked --quiet
cp "$out/kernel-build/x86_64-unknown-none/release/bsd" "$out/bsd.new"
mv "$out/bsd.new" "$out/bsd"
gzip -9 -n -c "$out/bsd" > "$out/bsd.gz.new"
mv "$out/bsd.gz.new" "$out/bsd.gz"
echo "$out"
