//! The KVM backend: no in-kernel irqchip (the PIC, PIT and RTC are vmd's
//! own models), CPUID trimmed to what vmm(4) shows a guest, interrupts
//! injected with KVM_INTERRUPT.

use kvm_bindings::{kvm_interrupt, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use devices::memory::GuestMemory;

use super::{Exit, HvError, Vcpu};

fn sys(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> HvError {
    move |e| HvError::Sys {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// CPUID leaf 1 bits vmm(4) does not offer: the local APIC (EDX 9) and
/// x2APIC (ECX 21), as there is no APIC, plus the hypervisor-visible
/// TSC-deadline timer (ECX 24) that needs one.
/// _IOW(KVMIO, 0x86, struct kvm_interrupt); kvm-ioctls has no wrapper.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_ae86;

const LEAF1_EDX_APIC: u32 = 1 << 9;
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;

/// A KVM virtual machine with its memory registered.
pub struct KvmVm {
    _kvm: Kvm,
    vm: VmFd,
    cpuid: kvm_bindings::CpuId,
    // Keeps the mappings alive as long as KVM may use them.
    _mem: GuestMemory,
}

impl KvmVm {
    pub fn new(mem: &GuestMemory) -> Result<KvmVm, HvError> {
        let kvm = Kvm::new().map_err(sys("open /dev/kvm"))?;
        let vm = kvm.create_vm().map_err(sys("KVM_CREATE_VM"))?;
        for (slot, r) in mem.regions().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                guest_phys_addr: r.range.guest_addr,
                memory_size: r.range.size as u64,
                userspace_addr: r.host_addr as u64,
                flags: 0,
            };
            // SAFETY: the region is a live shared mapping of exactly
            // `memory_size` bytes owned by `mem`, which this struct keeps
            // alive for the lifetime of the VM.
            unsafe { vm.set_user_memory_region(region) }.map_err(|e| HvError::Memory {
                addr: r.range.guest_addr,
                reason: e.to_string(),
            })?;
        }
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(sys("KVM_GET_SUPPORTED_CPUID"))?;
        for e in cpuid.as_mut_slice() {
            if e.function == 1 {
                e.edx &= !LEAF1_EDX_APIC;
                e.ecx &= !(LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE);
            }
        }
        Ok(KvmVm {
            _kvm: kvm,
            vm,
            cpuid,
            _mem: mem.clone(),
        })
    }

    /// Creates vcpu `id` in the x86 reset state with vmm(4)'s CPUID.
    pub fn create_vcpu(&self, id: u64) -> Result<KvmVcpu, HvError> {
        let fd = self.vm.create_vcpu(id).map_err(sys("KVM_CREATE_VCPU"))?;
        fd.set_cpuid2(&self.cpuid).map_err(sys("KVM_SET_CPUID2"))?;
        Ok(KvmVcpu { fd })
    }
}

pub struct KvmVcpu {
    fd: VcpuFd,
}

impl KvmVcpu {
    /// Real mode, CS:IP = `segment`:`ip`, other segments at 0, interrupts
    /// off: for guests loaded below 1 MiB.
    pub fn set_real_mode_entry(&mut self, segment: u16, ip: u16) -> Result<(), HvError> {
        let mut sregs = self.fd.get_sregs().map_err(sys("KVM_GET_SREGS"))?;
        sregs.cs.selector = segment;
        sregs.cs.base = u64::from(segment) << 4;
        for s in [
            &mut sregs.ds,
            &mut sregs.es,
            &mut sregs.ss,
            &mut sregs.fs,
            &mut sregs.gs,
        ] {
            s.selector = 0;
            s.base = 0;
        }
        self.fd.set_sregs(&sregs).map_err(sys("KVM_SET_SREGS"))?;
        let mut regs = self.fd.get_regs().map_err(sys("KVM_GET_REGS"))?;
        regs.rip = u64::from(ip);
        regs.rflags = 0x2;
        regs.rsp = 0x7000;
        self.fd.set_regs(&regs).map_err(sys("KVM_SET_REGS"))
    }
}

impl Vcpu for KvmVcpu {
    fn run(&mut self) -> Result<Exit<'_>, HvError> {
        match self.fd.run() {
            Ok(exit) => Ok(match exit {
                VcpuExit::IoOut(port, data) => Exit::IoOut { port, data },
                VcpuExit::IoIn(port, data) => Exit::IoIn { port, data },
                VcpuExit::Hlt => Exit::Halt,
                VcpuExit::IrqWindowOpen => Exit::InterruptWindow,
                VcpuExit::Shutdown => Exit::Shutdown,
                VcpuExit::Intr => Exit::Interrupted,
                other => Exit::Other(format!("{other:?}")),
            }),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                Ok(Exit::Interrupted)
            }
            Err(e) => Err(sys("KVM_RUN")(e)),
        }
    }

    fn interrupts_enabled(&mut self) -> Result<bool, HvError> {
        let regs = self.fd.get_regs().map_err(sys("KVM_GET_REGS"))?;
        Ok(regs.rflags & (1 << 9) != 0)
    }

    fn ready_for_interrupt(&mut self) -> bool {
        let run = self.fd.get_kvm_run();
        run.ready_for_interrupt_injection != 0 && run.if_flag != 0
    }

    fn inject_interrupt(&mut self, vector: u8) -> Result<(), HvError> {
        use std::os::fd::AsRawFd;
        let irq = kvm_interrupt {
            irq: u32::from(vector),
        };
        // SAFETY: KVM_INTERRUPT reads one struct kvm_interrupt from a
        // valid pointer; the fd is a vcpu fd.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_INTERRUPT as _, &irq) };
        if rc == -1 {
            return Err(HvError::Sys {
                what: "KVM_INTERRUPT",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn request_interrupt_window(&mut self, on: bool) {
        self.fd.get_kvm_run().request_interrupt_window = u8::from(on);
    }
}
