#!/usr/bin/env bash
# Installs qemu-system-x86, the reference for the boot benchmark, if it is
# missing. Debian bookworm machines here carry qemu-utils 10 from
# bookworm-backports, which conflicts with bookworm's qemu-system-x86 7.2,
# so QEMU comes from backports too, through an apt configuration under
# /tmp (nothing in /etc/apt changes). Elsewhere the distribution's QEMU is
# taken.
set -euo pipefail
command -v qemu-system-x86_64 >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [ -n "$utils" ] && dpkg --compare-versions "$utils" ge 1:8.0; then
    conf=/tmp/vmd-bench-apt
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
    mkdir -p "$conf/lists/partial"
    echo "deb $mirror bookworm-backports main" > "$conf/sources.list"
    opts=(-o "Dir::Etc::SourceList=$conf/sources.list" -o "Dir::State::Lists=$conf/lists")
    apt-get "${opts[@]}" update -qq
    apt-get "${opts[@]}" install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86
else
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86
fi
