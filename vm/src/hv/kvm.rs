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
        KvmVm::with_kvm(kvm, mem)
    }

    /// As [`KvmVm::new`], on a /dev/kvm handle someone else opened (vmd's
    /// vmm process passes it, so the vm process needs no privileges).
    pub fn with_kvm(kvm: Kvm, mem: &GuestMemory) -> Result<KvmVm, HvError> {
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
        Ok(KvmVcpu {
            fd,
            kick_bound: false,
        })
    }
}

pub struct KvmVcpu {
    fd: VcpuFd,
    /// Set once the vcpu is bound to its thread: a KVM_RUN that returns
    /// EINTR must then consume the kick that caused it.
    kick_bound: bool,
}

/// The signal that kicks a vcpu thread out of KVM_RUN. The vcpu thread
/// keeps it blocked and KVM unblocks it only while the guest runs, so a
/// kick sent at any moment ends the current or the next KVM_RUN at once
/// and is never delivered to a handler.
const KICK_SIGNAL: libc::c_int = libc::SIGUSR2;

/// _IOW(KVMIO, 0x8b, struct kvm_signal_mask); kvm-ioctls has no wrapper.
const KVM_SET_SIGNAL_MASK: libc::c_ulong = 0x4004_ae8b;

/// Kicks one vcpu thread out of the guest; cheap and callable from any
/// thread.
#[derive(Clone, Copy, Debug)]
pub struct Kicker {
    thread: libc::pthread_t,
}

impl Kicker {
    pub fn kick(&self) {
        // SAFETY: pthread_kill with a valid signal number; the thread id
        // came from pthread_self on the vcpu thread, which the vm process
        // keeps alive as long as the machine it kicks exists.
        unsafe { libc::pthread_kill(self.thread, KICK_SIGNAL) };
    }
}

fn kick_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, KICK_SIGNAL);
        set
    }
}

extern "C" fn ignore_kick(_: libc::c_int) {}

fn os_err(what: &'static str) -> HvError {
    HvError::Sys {
        what,
        source: std::io::Error::last_os_error(),
    }
}

impl KvmVcpu {
    /// Real mode, CS:IP = `segment`:`ip`, other segments at 0, interrupts
    /// off: for guests loaded below 1 MiB.
    fn real_mode_entry(&mut self, segment: u16, ip: u16) -> Result<(), HvError> {
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

impl KvmVcpu {
    /// Makes the calling thread the one that runs this vcpu and returns
    /// the handle other threads use to kick it out of the guest.
    pub fn bind_kicker(&mut self) -> Result<Kicker, HvError> {
        use std::os::fd::AsRawFd;
        let set = kick_sigset();
        // SAFETY: installing a handler that does nothing, so a kick that
        // somehow reaches a thread with the signal unblocked is harmless
        // instead of SIGUSR2's default, termination.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_kick as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(KICK_SIGNAL, &sa, std::ptr::null_mut()) == -1 {
                return Err(os_err("sigaction"));
            }
        }
        let mut during_run: libc::sigset_t = kick_sigset();
        // SAFETY: pthread_sigmask on sets we own; the old mask is what
        // the guest runs with, minus nothing: only the kick is unblocked.
        unsafe {
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut during_run) != 0 {
                return Err(os_err("pthread_sigmask"));
            }
            libc::sigdelset(&mut during_run, KICK_SIGNAL);
        }
        // struct kvm_signal_mask: u32 len, then the kernel's 8-byte sigset.
        let mut arg = [0u8; 12];
        arg[..4].copy_from_slice(&8u32.to_le_bytes());
        // SAFETY: the first 8 bytes of a glibc sigset_t are the kernel's
        // sigset for signals 1-64.
        let raw: [u8; 8] = unsafe { std::ptr::read((&during_run as *const libc::sigset_t).cast()) };
        arg[4..].copy_from_slice(&raw);
        // SAFETY: KVM_SET_SIGNAL_MASK reads a kvm_signal_mask of len 8
        // from a valid buffer of 12 bytes.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_SET_SIGNAL_MASK as _, arg.as_ptr()) } == -1
        {
            return Err(os_err("KVM_SET_SIGNAL_MASK"));
        }
        self.kick_bound = true;
        // SAFETY: pthread_self has no preconditions.
        Ok(Kicker {
            thread: unsafe { libc::pthread_self() },
        })
    }
}

/// Consumes a pending kick so the next KVM_RUN enters the guest.
fn drain_kick() {
    let set = kick_sigset();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait on a set we own with a zero timeout; the
    // signal is blocked on this thread, so this only dequeues it.
    while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) } == KICK_SIGNAL {}
}

impl Vcpu for KvmVcpu {
    fn run(&mut self) -> Result<Exit<'_>, HvError> {
        let kick_bound = self.kick_bound;
        match self.fd.run() {
            Ok(exit) => Ok(match exit {
                VcpuExit::IoOut(port, data) => Exit::IoOut { port, data },
                VcpuExit::IoIn(port, data) => Exit::IoIn { port, data },
                VcpuExit::MmioRead(addr, data) => Exit::MmioRead { addr, data },
                VcpuExit::MmioWrite(addr, data) => Exit::MmioWrite { addr, data },
                VcpuExit::Hlt => Exit::Halt,
                VcpuExit::IrqWindowOpen => Exit::InterruptWindow,
                VcpuExit::Shutdown => Exit::Shutdown,
                VcpuExit::Intr => Exit::Interrupted,
                other => Exit::Other(format!("{other:?}")),
            }),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                if kick_bound {
                    drain_kick();
                }
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

    fn set_real_mode_entry(&mut self, segment: u16, ip: u16) -> Result<(), HvError> {
        self.real_mode_entry(segment, ip)
    }

    fn bind_to_current_thread(&mut self) -> Result<Box<dyn Fn() + Send + Sync>, HvError> {
        let kicker = self.bind_kicker()?;
        Ok(Box::new(move || kicker.kick()))
    }
}
