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
    // Mid-boot: once SeaBIOS has printed its banner on COM1, well before
    // the guest's last marker whatever the host's speed.
    let console = prepared.console();
    std::thread::spawn(move || {
        while console.text().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
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

/// Debian's SeaBIOS does not know vmd's host bridge and writes 0xff ("no
/// connection") into the interrupt line of every device with a pin;
/// OpenBSD's vmm firmware leaves vmd's IRQs there, and guests without
/// ACPI or MP tables (OpenBSD, Linux) take the line register as the
/// device's IRQ. After the firmware ran, each line must still name the IRQ
/// the device interrupts on.
#[test]
fn pci_interrupt_lines_survive_the_firmware() {
    if skip_without_kvm("pci_interrupt_lines_survive_the_firmware") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::ProcessRaw);
    run.assert_all_markers(&guest);
    assert!(
        run.pci_lines_before.len() >= 3,
        "viornd, vioblk and vmmci have pins: {:?}",
        run.pci_lines_before
    );
    for &(dev, _, line) in &run.pci_lines_before {
        assert!((3..=15).contains(&line), "device {dev}: IRQ {line}");
    }
    assert_eq!(run.pci_lines_after, run.pci_lines_before);
}

/// The structures of an SMBIOS table: (type, formatted area, strings).
fn smbios_structures(t: &[u8]) -> Vec<(u8, Vec<u8>, Vec<String>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= t.len() {
        let (kind, len) = (t[at], usize::from(t[at + 1]));
        let area = t[at..at + len].to_vec();
        let mut p = at + len;
        let mut strings = Vec::new();
        while t[p] != 0 {
            let end = p + t[p..].iter().position(|&c| c == 0).unwrap();
            strings.push(String::from_utf8_lossy(&t[p..end]).into_owned());
            p = end + 1;
        }
        at = if strings.is_empty() { p + 2 } else { p + 1 };
        out.push((kind, area, strings));
        if kind == 127 {
            break;
        }
    }
    out
}

/// The firmware installs the SMBIOS tables the machine offers through
/// fw_cfg, as OpenBSD's vmm firmware builds them: a guest finds a valid
/// entry point in the F segment, "OpenBSD" "VMM" as its system, its own
/// CPUID signature as the processor ID, the memory it was given, and a
/// BIOS structure the firmware added itself.
#[test]
fn seabios_installs_the_smbios_tables_of_vmds_firmware() {
    if skip_without_kvm("seabios_installs_the_smbios_tables_of_vmds_firmware") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::LocalRaw);
    run.assert_all_markers(&guest);
    let mut fseg = vec![0u8; 0x10000];
    run.memory.read(0xf0000, &mut fseg).unwrap();
    let at = (0..fseg.len() - 31)
        .step_by(16)
        .find(|&i| &fseg[i..i + 4] == b"_SM_")
        .expect("no SMBIOS entry point in the F segment");
    let ep = &fseg[at..at + 31];
    let sum = |b: &[u8]| b.iter().fold(0u8, |s, &x| s.wrapping_add(x));
    assert_eq!(sum(&ep[..16]), 0, "entry point checksum");
    assert_eq!(sum(&ep[16..]), 0, "intermediate checksum");
    assert_eq!(&ep[16..21], b"_DMI_");
    let len = usize::from(u16::from_le_bytes([ep[22], ep[23]]));
    let addr = u32::from_le_bytes(ep[24..28].try_into().unwrap());
    let count = u16::from_le_bytes([ep[28], ep[29]]);
    let mut table = vec![0u8; len];
    run.memory.read(u64::from(addr), &mut table).unwrap();
    let s = smbios_structures(&table);
    let kinds: Vec<u8> = s.iter().map(|x| x.0).collect();
    assert_eq!(kinds, [0, 1, 3, 4, 16, 17, 19, 20, 32, 127]);
    assert_eq!(usize::from(count), s.len());
    assert_eq!(s[0].2[0], "SeaBIOS", "the firmware's own BIOS structure");
    assert_eq!(s[1].2, ["OpenBSD", "VMM"]);
    assert_eq!(s[3].2, ["CPU 1", "OpenBSD"]);
    // KVM gives the guest the host's signature in CPUID leaf 1.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU.
    let host = unsafe { std::arch::x86_64::__cpuid(1) };
    assert_eq!(
        u32::from_le_bytes(s[3].1[8..12].try_into().unwrap()),
        host.eax
    );
    assert_eq!(u16::from_le_bytes([s[5].1[12], s[5].1[13]]), 512, "MiB");
}
