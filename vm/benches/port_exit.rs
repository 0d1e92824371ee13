//! An in-process port access, end to end: a real-mode guest executes
//! `in al, dx` N times; each one exits to the vcpu loop, goes through the
//! port bus to a device and back. The reference is the bare kvm-ioctls
//! loop that answers the same exits inline. Both run in the same process.
//!
//!     cargo bench -p vm --bench port_exit

#[cfg(target_os = "linux")]
fn main() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use devices::bus::{AccessSize, PortBus, PortIoDevice};
    use devices::memory::{GuestMemory, MemoryRange};
    use kvm_ioctls::{Kvm, VcpuExit};
    use vm::hv::kvm::KvmVm;
    use vm::hv::Vcpu;
    use vm::vcpu::{self, NoInterrupts, StopReason};

    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        println!("SKIPPED: port_exit: no usable /dev/kvm");
        return;
    }
    const N: u32 = 20_000;
    // mov dx,0x3f8; mov cx,N; l: in al,dx; loop l; cli; hlt
    let n = N.to_le_bytes();
    let code = [
        0xba, 0xf8, 0x03, 0xb9, n[0], n[1], 0xec, 0xe2, 0xfd, 0xfa, 0xf4,
    ];

    struct Lsr;
    impl PortIoDevice for Lsr {
        fn port_read(&mut self, _p: u16, _s: AccessSize) -> u32 {
            0x60
        }
        fn port_write(&mut self, _p: u16, _s: AccessSize, _v: u32) {}
    }

    let ours = || {
        let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 1 << 20)]).unwrap();
        mem.write(0x1000, &code).unwrap();
        let kvm = KvmVm::new(&mem).unwrap();
        let mut cpu = kvm.create_vcpu(0).unwrap();
        cpu.set_real_mode_entry(0, 0x1000).unwrap();
        let mut bus = PortBus::new();
        bus.insert(0x3f8, 8, Arc::new(Mutex::new(Lsr))).unwrap();
        let t = Instant::now();
        let r = vcpu::run(&mut cpu, &bus, &NoInterrupts).unwrap();
        assert_eq!(r, StopReason::HaltedWithInterruptsOff);
        t.elapsed().as_secs_f64() / f64::from(N)
    };

    let bare = || {
        let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 1 << 20)]).unwrap();
        mem.write(0x1000, &code).unwrap();
        // The same VM set-up through our backend, then the raw loop on a
        // second, plain kvm-ioctls VM over the same memory.
        let kvm = Kvm::new().unwrap();
        let vmfd = kvm.create_vm().unwrap();
        let r = mem.regions().next().unwrap();
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: r.range.size as u64,
            userspace_addr: r.host_addr as u64,
            flags: 0,
        };
        // SAFETY: `mem` outlives the VM in this closure.
        unsafe { vmfd.set_user_memory_region(region).unwrap() };
        let mut vcpu = vmfd.create_vcpu(0).unwrap();
        let mut sregs = vcpu.get_sregs().unwrap();
        sregs.cs.selector = 0;
        sregs.cs.base = 0;
        vcpu.set_sregs(&sregs).unwrap();
        let mut regs = vcpu.get_regs().unwrap();
        regs.rip = 0x1000;
        regs.rflags = 2;
        vcpu.set_regs(&regs).unwrap();
        let t = Instant::now();
        loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoIn(_, data) => data[0] = 0x60,
                VcpuExit::Hlt => break,
                other => panic!("unexpected exit {other:?}"),
            }
        }
        t.elapsed().as_secs_f64() / f64::from(N)
    };

    // Interleaved, best of 7 each, so load on the machine hits both alike.
    let (mut b, mut o) = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        b = b.min(bare());
        o = o.min(ours());
    }
    println!("| port access via exit | ns per access | reference (bare kvm-ioctls loop) | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `in al,dx` -> vcpu loop -> PortBus -> device | {:.0} | {:.0} | {:.2} |",
        o * 1e9,
        b * 1e9,
        o / b
    );
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: port_exit: KVM only");
}
