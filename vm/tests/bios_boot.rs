//! The BIOS loader and vmd's memory map on KVM: a 64 KiB firmware image
//! built here runs from the reset vector F000:FFF0, prints through port
//! 0x3f8 and halts; its second copy sits below 4 GiB.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use devices::bus::{AccessSize, PortBus, PortIoDevice};
use devices::memory::GuestMemory;
use vm::hv::kvm::KvmVm;
use vm::hv::Vcpu;
use vm::loader::bios::{load_bios, BiosError, RESET_IP, RESET_SEGMENT};
use vm::memory_layout::{backed_ranges, memory_map, GB, MB};
use vm::vcpu::{self, NoInterrupts, StopReason};

struct Capture(Arc<Mutex<Vec<u8>>>);

impl PortIoDevice for Capture {
    fn port_read(&mut self, _p: u16, _s: AccessSize) -> u32 {
        0
    }
    fn port_write(&mut self, _p: u16, _s: AccessSize, v: u32) {
        self.0.lock().unwrap().push(v as u8);
    }
}

/// A 64 KiB image: the reset vector jumps to code at offset 0xE000 that
/// prints the string at 0xE100 and halts.
fn firmware() -> Vec<u8> {
    let mut img = vec![0xffu8; 64 * 1024];
    let code = [
        0x0e, 0x1f, 0xba, 0xf8, 0x03, 0xbe, 0x00, 0xe1, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb,
        0xf8, 0xfa, 0xf4,
    ];
    img[0xe000..0xe000 + code.len()].copy_from_slice(&code);
    img[0xe100..0xe100 + 9].copy_from_slice(b"BIOS-OK\n\0");
    // jmp near 0xe000 from 0xfff0 (3-byte instruction).
    let rel = (0xe000i32 - 0xfff3) as i16;
    img[0xfff0] = 0xe9;
    img[0xfff1..0xfff3].copy_from_slice(&rel.to_le_bytes());
    img
}

#[test]
fn firmware_runs_from_the_reset_vector() {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: firmware_runs_from_the_reset_vector: /dev/kvm: {e}"
        );
        return;
    }
    let map = memory_map(32 * MB).unwrap();
    let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
    let img = firmware();
    load_bios(&mem, &img).unwrap();
    let mut high = vec![0u8; img.len()];
    mem.read(4 * GB - img.len() as u64, &mut high).unwrap();
    assert_eq!(high, img, "second copy ends at 4 GiB");

    let kvm = KvmVm::new(&mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    cpu.set_real_mode_entry(RESET_SEGMENT, RESET_IP).unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut bus = PortBus::new();
    bus.insert(0x3f8, 8, Arc::new(Mutex::new(Capture(out.clone()))))
        .unwrap();
    let reason = vcpu::run(&mut cpu, &bus, &NoInterrupts).unwrap();
    assert_eq!(reason, StopReason::HaltedWithInterruptsOff);
    assert_eq!(&*out.lock().unwrap(), b"BIOS-OK\n");
}

#[test]
fn bad_images_are_refused() {
    let map = memory_map(4 * MB).unwrap();
    let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
    assert!(matches!(
        load_bios(&mem, &[0; 15]),
        Err(BiosError::Size(15))
    ));
    assert!(matches!(
        load_bios(&mem, &vec![0; 1024 * 1024 + 1]),
        Err(BiosError::Size(_))
    ));
    load_bios(&mem, &[0x90; 16]).unwrap();
}
