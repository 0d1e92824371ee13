//! Debian's SeaBIOS boots the project's boot-sector guest (regress/guest)
//! from virtio-blk on KVM, with every device of the vm process in place.
//! The guest's markers on COM1 prove each step: the disk read through
//! SeaBIOS's virtio driver adds up, a write lands in the image, PIT ticks
//! arrive through the PIC, and the RTC and memory size are readable.

#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_written_sector, boot_bs, prepare_bs, skip_without_kvm, BsDisk};
use vm::vcpu::StopReason;

#[test]
fn seabios_boots_bs_guest_from_raw_vioblk_in_process() {
    if skip_without_kvm("seabios_boots_bs_guest_from_raw_vioblk_in_process") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::LocalRaw);
    run.assert_all_markers(&guest);
    assert_written_sector(&std::fs::read(&run.image).unwrap(), &guest);
    println!("booted to BS-DONE in {:?}", run.elapsed);
}

#[test]
fn seabios_boots_bs_guest_from_raw_vioblk_process() {
    if skip_without_kvm("seabios_boots_bs_guest_from_raw_vioblk_process") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::ProcessRaw);
    run.assert_all_markers(&guest);
    assert_written_sector(&std::fs::read(&run.image).unwrap(), &guest);
    println!("booted to BS-DONE in {:?}", run.elapsed);
}

#[test]
fn seabios_boots_bs_guest_from_qcow2_vioblk_process() {
    if skip_without_kvm("seabios_boots_bs_guest_from_qcow2_vioblk_process") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::ProcessQcow2);
    run.assert_all_markers(&guest);
    let check = Command::new("qemu-img")
        .args(["check", "-f", "qcow2"])
        .arg(&run.image)
        .output()
        .expect("qemu-img (qemu-utils) is installed by .ci/install-deps");
    assert!(
        check.status.success(),
        "qemu-img check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let raw = run.image.with_extension("check.raw");
    let conv = Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&run.image)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(conv.success());
    assert_written_sector(&std::fs::read(&raw).unwrap(), &guest);
}

#[test]
fn killing_the_vioblk_process_stops_the_vm() {
    if skip_without_kvm("killing_the_vioblk_process_stops_the_vm") {
        return;
    }
    let guest = common::build_guest();
    let prepared = prepare_bs(&guest, BsDisk::ProcessRaw);
    let pids = prepared.machine.control().device_pids();
    assert_eq!(pids.len(), 1);
    let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let k = killed_at.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill(2) on the device process this test started.
        unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
        *k.lock().unwrap() = Some(Instant::now());
    });
    let run = prepared.run();
    let stopped = Instant::now();
    let killed = killed_at
        .lock()
        .unwrap()
        .expect("the kill happened before the VM stopped");
    assert!(
        matches!(&run.reason, StopReason::DeviceFailed(why) if why.contains("vioblk0")),
        "stop reason {:?}",
        run.reason
    );
    let took = stopped - killed;
    assert!(
        took < Duration::from_secs(2),
        "VM stopped {took:?} after the kill"
    );
    println!("VM stopped {took:?} after vioblk was killed");
}
