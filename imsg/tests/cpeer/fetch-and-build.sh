#!/usr/bin/env bash
# Builds the C imsg peer into OUTDIR (default: target/imsg-cpeer) from
# OpenBSD's imsg as shipped in Debian's openbgpd source package (8.8 or
# newer, bookworm-backports). deb-src is enabled for this run only, through
# a private apt configuration; /etc/apt is not touched. Nothing fetched or
# built here is committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../../target/imsg-cpeer}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$out/peer" ] && [ "$out/peer" -nt "$here/peer.c" ] && exit 0

work="$out/work"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/src"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
echo "deb-src $mirror bookworm-backports main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
# Only the upstream tarball is needed; the Debian packaging files are not,
# so a mirror that lacks them is not an error as long as the tarball came.
(cd "$work/src" && apt-get "${apt_opts[@]}" source -qq --download-only openbgpd) || true
tarball=$(ls "$work/src"/openbgpd_*.orig.tar.gz 2>/dev/null | sort -V | tail -n 1)
if [ -z "$tarball" ]; then
  echo "fetch-and-build: could not fetch openbgpd's source from $mirror bookworm-backports" >&2
  exit 1
fi
version=$(basename "$tarball" | sed -E 's/openbgpd_([0-9.]+)\.orig.*/\1/')
if ! printf '%s\n%s\n' 8.8 "$version" | sort -V -C; then
  echo "fetch-and-build: openbgpd $version is older than 8.8" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work/src"
src="$work/src/openbgpd-$version"
# Only imsg.h from the package's include/: its other compat headers assume
# the package's configure step. compat.h (ours) supplies what glibc lacks.
mkdir -p "$work/inc"
cp "$src/include/imsg.h" "$work/inc/"
gcc -O2 -D_GNU_SOURCE -include "$here/compat.h" -I "$work/inc" -o "$out/peer" "$here/peer.c" \
  "$src/compat/imsg.c" "$src/compat/imsg-buffer.c" \
  "$src/compat/freezero.c" "$src/compat/recallocarray.c"
head -1 "$src/compat/imsg.c" > "$out/VERSION"
head -1 "$src/compat/imsg-buffer.c" >> "$out/VERSION"
echo "openbgpd $version" >> "$out/VERSION"
