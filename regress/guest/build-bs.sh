#!/bin/sh
# Builds the boot-sector test guest into OUTDIR (default: target/guest):
#   bsdisk.img    16 MiB raw disk: bs.S in LBA 0.., the data area at DATA_LBA
#   bsdisk.qcow2  the same disk as qcow2 (qemu-img convert)
#   bs-data.bin   the data area (2048 lines "vmdbsdata%06x\n")
#   bs.env        shell variables the tests read: data LBA, write LBA, sums
# Needs as, ld (binutils), perl and qemu-img; .ci/install-deps installs them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

STAGE2_SECTORS=7
DATA_LBA=64
DATA_SECTORS=64
WRITE_LBA=16384

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --32 -o "$tmp/bs.o" \
    --defsym STAGE2_SECTORS=$STAGE2_SECTORS --defsym DATA_LBA=$DATA_LBA \
    --defsym DATA_SECTORS=$DATA_SECTORS --defsym WRITE_LBA=$WRITE_LBA \
    "$here/bs.S"
ld -m elf_i386 -Ttext=0x7c00 -e start --oformat binary -o "$tmp/bs.bin" "$tmp/bs.o"
size=$(stat -c %s "$tmp/bs.bin")
if [ "$size" -gt $(((STAGE2_SECTORS + 1) * 512)) ]; then
    echo "build-bs.sh: bs.bin is $size bytes, more than $((STAGE2_SECTORS + 1)) sectors" >&2
    exit 1
fi

perl -e 'printf "vmdbsdata%06x\n", $_ for 0 .. 2047' > "$out/bs-data.bin"
sum=$(perl -e 'local $/; my $s = 0; $s = ($s + $_) % 4294967296 for unpack("V*", <STDIN>); printf "%08x", $s' \
    < "$out/bs-data.bin")

rm -f "$out/bsdisk.img" "$out/bsdisk.qcow2"
truncate -s 16M "$out/bsdisk.img"
dd if="$tmp/bs.bin" of="$out/bsdisk.img" conv=notrunc status=none
dd if="$out/bs-data.bin" of="$out/bsdisk.img" bs=512 seek=$DATA_LBA conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$out/bsdisk.img" "$out/bsdisk.qcow2"

cat > "$out/bs.env" <<ENV
BS_DATA_LBA=$DATA_LBA
BS_DATA_SECTORS=$DATA_SECTORS
BS_WRITE_LBA=$WRITE_LBA
BS_READ_SUM=$sum
ENV
echo "$out"
