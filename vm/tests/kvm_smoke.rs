//! The KVM backend and vcpu loop with a real guest: a few bytes of 16-bit
//! code that write a message to port 0x3f8 one byte at a time, read a
//! port back, and halt with interrupts off; and an interrupt injected by
//! the loop that wakes a HLT. (A triple fault is not tested here: under
//! this machine's kvm_pvm it ends in an emulation failure after minutes.)

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use devices::bus::{AccessSize, PortBus, PortIoDevice};
use devices::memory::{GuestMemory, MemoryRange};
use vm::hv::kvm::KvmVm;
use vm::hv::Vcpu;
use vm::vcpu::{self, InterruptSource, NoInterrupts, StopReason};

#[derive(Default)]
struct Capture {
    out: Vec<u8>,
    reads: u32,
}

struct Port(Arc<Mutex<Capture>>);

impl PortIoDevice for Port {
    fn port_read(&mut self, _port: u16, _size: AccessSize) -> u32 {
        let mut c = self.0.lock().unwrap();
        c.reads += 1;
        0x5a
    }
    fn port_write(&mut self, _port: u16, _size: AccessSize, value: u32) {
        self.0.lock().unwrap().out.push(value as u8);
    }
}

fn skip() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm: {e}")),
    }
}

/// Loads `code` at 0x1000 and runs it in real mode until it stops.
fn run_guest(code: &[u8], irqs: &dyn InterruptSource) -> (StopReason, Capture) {
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 1 << 20)]).unwrap();
    mem.write(0x1000, code).unwrap();
    let kvm = KvmVm::new(&mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    cpu.set_real_mode_entry(0, 0x1000).unwrap();
    let cap = Arc::new(Mutex::new(Capture::default()));
    let mut bus = PortBus::new();
    bus.insert(0x3f8, 8, Arc::new(Mutex::new(Port(cap.clone()))))
        .unwrap();
    let reason = vcpu::run(&mut cpu, &bus, irqs).unwrap();
    let c = std::mem::take(&mut *cap.lock().unwrap());
    (reason, c)
}

/// mov dx,0x3f8; mov si,msg; in al,dx; l: lodsb; test al,al; jz d;
/// out dx,al; jmp l; d: cli; hlt; msg: "KVM-OK\n\0"
const PRINT: &[u8] = &[
    0xba, 0xf8, 0x03, 0xbe, 0x11, 0x10, 0xec, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xfa,
    0xf4, b'K', b'V', b'M', b'-', b'O', b'K', b'\n', 0,
];

#[test]
fn real_mode_guest_prints_and_halts() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: real_mode_guest_prints_and_halts: {why}"
        );
        return;
    }
    let (reason, cap) = run_guest(PRINT, &NoInterrupts);
    assert_eq!(reason, StopReason::HaltedWithInterruptsOff);
    assert_eq!(cap.out, b"KVM-OK\n");
    assert_eq!(cap.reads, 1);
}

#[test]
fn hlt_with_interrupts_on_and_no_source_stops() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: hlt_with_interrupts_on_and_no_source_stops: {why}"
        );
        return;
    }
    // sti; hlt
    let (reason, _) = run_guest(&[0xfb, 0xf4], &NoInterrupts);
    assert_eq!(reason, StopReason::HaltedForever);
}

/// One interrupt, vector 0x20, whose handler prints "I" and returns; the
/// main code enables interrupts, halts, then prints "D" and stops.
struct OneShot(Mutex<bool>);

impl InterruptSource for OneShot {
    fn acknowledge(&self) -> Option<u8> {
        let mut fired = self.0.lock().unwrap();
        if *fired {
            None
        } else {
            *fired = true;
            Some(0x20)
        }
    }
    fn pending(&self) -> bool {
        !*self.0.lock().unwrap()
    }
    fn wait(&self) -> bool {
        !*self.0.lock().unwrap()
    }
}

#[test]
fn interrupt_is_injected_and_wakes_hlt() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: interrupt_is_injected_and_wakes_hlt: {why}"
        );
        return;
    }
    // Real-mode IVT entry 0x20 (at 0x80) -> 0000:1100.
    // main @0x1000: mov dx,0x3f8; sti; hlt; mov al,'D'; out dx,al; cli; hlt
    let mut code = vec![0xba, 0xf8, 0x03, 0xfb, 0xf4, 0xb0, b'D', 0xee, 0xfa, 0xf4];
    code.resize(0x100, 0x90);
    // handler @0x1100: push ax; mov al,'I'; out dx,al; pop ax; iret
    code.extend_from_slice(&[0x50, 0xb0, b'I', 0xee, 0x58, 0xcf]);
    let mem_ivt: [u8; 4] = [0x00, 0x11, 0x00, 0x00];
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 1 << 20)]).unwrap();
    mem.write(0x1000, &code).unwrap();
    mem.write(0x80, &mem_ivt).unwrap();
    let kvm = KvmVm::new(&mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    cpu.set_real_mode_entry(0, 0x1000).unwrap();
    let cap = Arc::new(Mutex::new(Capture::default()));
    let mut bus = PortBus::new();
    bus.insert(0x3f8, 8, Arc::new(Mutex::new(Port(cap.clone()))))
        .unwrap();
    let irqs = OneShot(Mutex::new(false));
    let reason = vcpu::run(&mut cpu, &bus, &irqs).unwrap();
    assert_eq!(reason, StopReason::HaltedWithInterruptsOff);
    assert_eq!(cap.lock().unwrap().out, b"ID");
}
