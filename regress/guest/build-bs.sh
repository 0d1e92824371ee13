#!/usr/bin/env bash
# Builds the boot-sector test guest into OUTDIR (default: target/guest):
#   bsdisk.img    16 MiB raw disk: bs.S in LBA 0.., the data area at DATA_LBA
#   bsdisk.qcow2  the same disk as qcow2 (qemu-img convert)
#   bsreboot.img  the same guest built to triple-fault on its first boot
#   bsloop.img    and one that triple-faults on every boot
#   bsidle.img    and one that idles after BS-DONE until it is stopped
#   bs.iso        an El Torito CD with the first MiB of bsdisk.img as its
#                 hard-disk-emulation boot image (bscd.img, with one MBR
#                 partition so SeaBIOS can take its geometry)
#   bs-data.bin   the data area (2048 lines "vmdbsdata%06x\n")
#   bs.env        shell variables the tests read: data LBA, write LBA, sums
# Needs as, ld (binutils), perl, qemu-img and genisoimage; .ci/install-deps installs them.
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
assemble() { # name, extra as options
    as --32 -o "$tmp/$1.o" \
        --defsym STAGE2_SECTORS=$STAGE2_SECTORS --defsym DATA_LBA=$DATA_LBA \
        --defsym DATA_SECTORS=$DATA_SECTORS --defsym WRITE_LBA=$WRITE_LBA \
        "${@:2}" "$here/bs.S"
    ld -m elf_i386 -Ttext=0x7c00 -e start --oformat binary -o "$tmp/$1.bin" "$tmp/$1.o"
    size=$(stat -c %s "$tmp/$1.bin")
    if [ "$size" -gt $(((STAGE2_SECTORS + 1) * 512)) ]; then
        echo "build-bs.sh: $1.bin is $size bytes, more than $((STAGE2_SECTORS + 1)) sectors" >&2
        exit 1
    fi
}
assemble bs
assemble bsreboot --defsym REBOOT_ONCE=1
assemble bsloop --defsym REBOOT_ONCE=1 --defsym REBOOT_ALWAYS=1
assemble bsidle --defsym IDLE=1

perl -e 'printf "vmdbsdata%06x\n", $_ for 0 .. 2047' > "$out/bs-data.bin"
sum=$(perl -e 'local $/; my $s = 0; $s = ($s + $_) % 4294967296 for unpack("V*", <STDIN>); printf "%08x", $s' \
    < "$out/bs-data.bin")

rm -f "$out/bsdisk.img" "$out/bsdisk.qcow2"
truncate -s 16M "$out/bsdisk.img"
dd if="$tmp/bs.bin" of="$out/bsdisk.img" conv=notrunc status=none
dd if="$out/bs-data.bin" of="$out/bsdisk.img" bs=512 seek=$DATA_LBA conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$out/bsdisk.img" "$out/bsdisk.qcow2"
rm -f "$out/bsreboot.img"
cp --sparse=always "$out/bsdisk.img" "$out/bsreboot.img"
dd if="$tmp/bsreboot.bin" of="$out/bsreboot.img" conv=notrunc status=none
rm -f "$out/bsloop.img"
cp --sparse=always "$out/bsdisk.img" "$out/bsloop.img"
dd if="$tmp/bsloop.bin" of="$out/bsloop.img" conv=notrunc status=none
rm -f "$out/bsidle.img"
cp --sparse=always "$out/bsdisk.img" "$out/bsidle.img"
dd if="$tmp/bsidle.bin" of="$out/bsidle.img" conv=notrunc status=none

# 4 cylinders x 16 heads x 32 sectors = 1 MiB; the partition only carries
# the geometry, the guest reads by sector number as it does from a disk.
mkdir "$tmp/iso"
head -c 1048576 "$out/bsdisk.img" > "$tmp/iso/bscd.img"
perl -e 'open my $f, "+<", $ARGV[0] or die "$ARGV[0]: $!"; binmode $f; seek $f, 446, 0;
    print $f pack("C8 V V", 0x80, 1, 1, 0, 0x83, 15, 32, 3, 32, 2048 - 32)' "$tmp/iso/bscd.img"
cp "$out/bs-data.bin" "$tmp/iso/BSDATA.BIN"
rm -f "$out/bs.iso"
genisoimage -quiet -V BSCD -o "$out/bs.iso" -b bscd.img -hard-disk-boot -c boot.cat "$tmp/iso"

cat > "$out/bs.env" <<ENV
BS_DATA_LBA=$DATA_LBA
BS_DATA_SECTORS=$DATA_SECTORS
BS_WRITE_LBA=$WRITE_LBA
BS_READ_SUM=$sum
ENV
echo "$out"
