//! The PIT and PIC programmed by a real guest the way a PC BIOS does, on
//! KVM: ICW1-4 for both chips, IRQ 0 unmasked, an IVT entry, PIT channel 0
//! in mode 2 at 100 Hz; the guest sleeps in `sti; hlt` and counts ticks in
//! its handler (with an EOI) until it has ten. The ticks must arrive at
//! the programmed rate on the supplied clock.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use devices::bus::PortBus;
use devices::clock::{Clock, HostClock};
use devices::i8253::Pit;
use devices::i8259::Pic;
use devices::memory::GuestMemory;
use vm::hv::kvm::KvmVm;
use vm::hv::Vcpu;
use vm::interrupts::{Doorbell, PcInterrupts};
use vm::memory_layout::{backed_ranges, memory_map, MB};
use vm::vcpu::{self, StopReason};

#[rustfmt::skip]
const GUEST: &[u8] = &[
    0xfa,                               // cli
    0xb0, 0x11, 0xe6, 0x20,             // master ICW1
    0xb0, 0x08, 0xe6, 0x21,             // ICW2: vectors 0x08-0x0f
    0xb0, 0x04, 0xe6, 0x21,             // ICW3: slave on IRQ 2
    0xb0, 0x01, 0xe6, 0x21,             // ICW4: 8086 mode
    0xb0, 0xfe, 0xe6, 0x21,             // OCW1: only IRQ 0
    0xb0, 0x11, 0xe6, 0xa0,             // slave ICW1
    0xb0, 0x70, 0xe6, 0xa1,             // ICW2: vectors 0x70-0x77
    0xb0, 0x02, 0xe6, 0xa1,             // ICW3: cascade identity
    0xb0, 0x01, 0xe6, 0xa1,             // ICW4
    0xb0, 0xff, 0xe6, 0xa1,             // all masked
    0xc7, 0x06, 0x20, 0x00, 0x00, 0x11, // IVT[8] offset = 0x1100
    0xc7, 0x06, 0x22, 0x00, 0x00, 0x00, // IVT[8] segment = 0
    0xc7, 0x06, 0x00, 0x05, 0x00, 0x00, // ticks at 0x500 = 0
    0xb0, 0x34, 0xe6, 0x43,             // PIT: channel 0, lo/hi, mode 2
    0xb0, 0x9c, 0xe6, 0x40,             // divisor 11932 (100 Hz), low
    0xb0, 0x2e, 0xe6, 0x40,             // high
    0xfb,                               // sti
    0xf4,                               // wait: hlt
    0x83, 0x3e, 0x00, 0x05, 0x0a,       // cmp word [0x500], 10
    0x72, 0xf8,                         // jb wait
    0xfa, 0xf4,                         // cli; hlt
];

#[rustfmt::skip]
const HANDLER: &[u8] = &[
    0xff, 0x06, 0x00, 0x05,             // inc word [0x500]
    0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, // push ax; EOI to the master; pop ax
    0xcf,                               // iret
];

#[test]
fn bios_programmed_pit_ticks_through_the_pic() {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: bios_programmed_pit_ticks_through_the_pic: /dev/kvm: {e}"
        );
        return;
    }
    let map = memory_map(16 * MB).unwrap();
    let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
    mem.write(0x1000, GUEST).unwrap();
    mem.write(0x1100, HANDLER).unwrap();

    let clock: Arc<dyn Clock> = Arc::new(HostClock::new());
    let pic = Arc::new(Mutex::new(Pic::new()));
    let pit = Arc::new(Mutex::new(Pit::new(clock.clone())));
    let mut bus = PortBus::new();
    for base in [0x20, 0xa0, 0x4d0] {
        bus.insert(base, 2, pic.clone()).unwrap();
    }
    bus.insert(0x40, 4, pit.clone()).unwrap();
    bus.insert(0x61, 1, pit.clone()).unwrap();
    let irqs = PcInterrupts::new(pic, pit, clock.clone(), Arc::new(Doorbell::default()));

    let kvm = KvmVm::new(&mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    cpu.set_real_mode_entry(0, 0x1000).unwrap();
    let t0 = Instant::now();
    let reason = vcpu::run(&mut cpu, &bus, &irqs).unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(reason, StopReason::HaltedWithInterruptsOff);
    assert_eq!(mem.read_u16(0x500).unwrap(), 10);
    // Ten ticks of a 100 Hz timer: at least 100 ms minus the first
    // partial period, and not wildly more.
    assert!(elapsed.as_millis() >= 95, "{elapsed:?}");
    assert!(elapsed.as_millis() < 2000, "{elapsed:?}");
}
