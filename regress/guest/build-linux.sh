#!/usr/bin/env bash
# Builds the Linux test guest into OUTDIR (default: target/linux-guest):
#   linux.img   64 MiB raw disk: an MBR that chain-loads syslinux from a
#               FAT16 partition (from 16 MiB) holding Debian's cloud kernel
#               and a busybox initramfs whose /init reports on COM1
#   vmlinuz, initrd.img, cmdline.txt
# /init prints LINUX-BOOT-OK, one LINUX-VIRTIO line per virtio device,
# writes and reads back a pattern at 8 MiB of /dev/vda (LINUX-BLK-OK),
# reads /dev/hwrng (LINUX-RNG-OK), then LINUX-DONE, and powers off (with
# acpi=off that halts with interrupts off: the VMM ends the run).
# Debian packages only; the kernel .deb is fetched and unpacked, nothing
# is installed into /boot. No loop devices or mounts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/.work
export DEBIAN_FRONTEND=noninteractive

pkgs=(busybox-static cpio syslinux syslinux-common mtools dosfstools fdisk kmod)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel: the newest cloud flavour, unpacked from its .deb.
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
kver=${kpkg#linux-image-}
mkdir -p "$work/debs"
ls "$work/debs/${kpkg}_"*.deb >/dev/null 2>&1 || (cd "$work/debs" && apt-get download "$kpkg" >/dev/null)
kdeb=$(ls "$work/debs/${kpkg}_"*.deb | head -1)
kroot=$work/kernel
if [ ! -f "$kroot/.unpacked" ]; then
    rm -rf "$kroot"
    mkdir -p "$kroot"
    dpkg-deb -x "$kdeb" "$kroot"
    depmod -b "$kroot" "$kver"
    touch "$kroot/.unpacked"
fi
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"

# The initramfs: busybox, the virtio modules in dependency order, /init.
ir=$work/initramfs
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,etc,lib/modules}
cp /bin/busybox "$ir/bin/busybox"
for app in $("$ir/bin/busybox" --list); do
    [ "$app" = busybox ] || ln -sf busybox "$ir/bin/$app"
done
: > "$ir/etc/modules"
for m in virtio_pci virtio_blk virtio_rng; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    rel=${ko#"$kroot"/lib/modules/"$kver"/}
    mkdir -p "$ir/lib/modules/$(dirname "$rel")"
    cp "$ko" "$ir/lib/modules/$rel"
    echo "/lib/modules/$rel" >> "$ir/etc/modules"
done
cat > "$ir/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/ttyS0 2>&1 </dev/ttyS0
echo
echo LINUX-BOOT-OK
while read -r ko; do insmod "$ko" || echo "LINUX-INSMOD-FAIL $ko"; done < /etc/modules
i=0; while [ $i -lt 50 ] && [ ! -b /dev/vda ]; do sleep 0.1; i=$((i+1)); done
for d in /sys/bus/virtio/devices/*; do
    [ -e "$d" ] && echo "LINUX-VIRTIO $(cat "$d/device") $(basename "$(readlink "$d/driver")")"
done
pattern=$(i=0; while [ $i -lt 64 ]; do printf 'vmdlinuxpattern%02x' $i; i=$((i+1)); done)
printf '%s' "$pattern" | dd of=/dev/vda bs=4096 seek=2048 conv=notrunc,fsync 2>/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
back=$(dd if=/dev/vda bs=4096 skip=2048 count=1 2>/dev/null | head -c ${#pattern})
[ "$back" = "$pattern" ] && echo LINUX-BLK-OK || echo LINUX-BLK-FAIL
n=$(timeout 10 head -c 32 /dev/hwrng 2>/dev/null | wc -c)
[ "$n" = 32 ] && echo LINUX-RNG-OK || echo "LINUX-RNG-FAIL $n"
echo LINUX-DONE
poweroff -f
INIT
chmod 755 "$ir/init"
(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n > "$out/initrd.img"

# The disk: syslinux's MBR, a FAT16 partition from 16 MiB with syslinux.
cmdline="console=ttyS0,115200 acpi=off noapic nolapic reboot=t panic=-1"
echo "$cmdline" > "$out/cmdline.txt"
part=$work/part.img
rm -f "$part" "$out/linux.img"
truncate -s 48M "$part"
mkfs.fat -F 16 -n VMDLINUX -h 32768 "$part" >/dev/null
printf 'SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND %s\n' \
    "$cmdline" > "$work/syslinux.cfg"
MTOOLS_SKIP_CHECK=1 mcopy -i "$part" "$out/vmlinuz" "$out/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install "$part"
truncate -s 64M "$out/linux.img"
printf 'label: dos\nstart=32768, type=6, bootable\n' | sfdisk -q "$out/linux.img"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$out/linux.img" bs=440 count=1 conv=notrunc status=none
dd if="$part" of="$out/linux.img" bs=1M seek=16 conv=notrunc,sparse status=none
rm -f "$part"
echo "$out"
