#!/usr/bin/env bash
# The demo: vmd boots the project's own guest. It installs what it needs
# (Debian's SeaBIOS among it), builds vmd, vmctl and the boot-sector guest,
# starts a private vmd with a one-VM vm.conf, attaches to the VM's console
# and shows the guest's output until it ends by itself, then the VM's
# status, and stops vmd. Needs root and /dev/kvm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
cargo build --release -p vmd -p vmctl
out=$PWD/target/demo
rm -rf "$out"
regress/guest/build-bs.sh "$out" >/dev/null
cat > "$out/vm.conf" <<CONF
vm "demo" {
	disable
	memory 512M
	disk "$out/bsdisk.img"
}
CONF
export VMD_CONTROL_SOCKET=$out/vmd.sock
target/release/vmd -d -f "$out/vm.conf" 2> "$out/vmd.log" &
vmd_pid=$!
trap 'kill $vmd_pid 2>/dev/null; wait $vmd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$VMD_CONTROL_SOCKET" ] && break; sleep 0.1; done

echo "\$ vmctl start -c demo"
# vmctl leaves the console with ~. ; the guest halts after BS-DONE, so the
# demo sends ~. once the guest is done.
# The console also ends by itself when the VM stops.
set +o pipefail
(sleep 1; for _ in $(seq 600); do grep -q BS-DONE "$out/console.txt" 2>/dev/null && break; sleep 0.1; done
 printf '\r~.' 2>/dev/null) | target/release/vmctl start -c demo | tee "$out/console.txt"
set -o pipefail
sleep 1
echo "\$ vmctl status"
target/release/vmctl status
grep -q BS-DONE "$out/console.txt"
