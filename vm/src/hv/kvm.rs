//! The KVM backend: no in-kernel irqchip (the PIC, PIT and RTC are vmd's
//! own models), CPUID trimmed to what vmm(4) shows a guest, interrupts
//! injected with KVM_INTERRUPT.

use kvm_bindings::{
    kvm_debugregs, kvm_dtable, kvm_interrupt, kvm_msr_entry, kvm_regs, kvm_segment,
    kvm_userspace_memory_region, kvm_xcrs, Msrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use devices::memory::GuestMemory;
use vmm_sys::consts::*;
use vmm_sys::{VcpuRegState, VcpuSegmentInfo, Wire};

use super::{Exit, HvError, Vcpu};

fn sys(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> HvError {
    move |e| HvError::Sys {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// _IOW(KVMIO, 0x86, struct kvm_interrupt); kvm-ioctls has no wrapper.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_ae86;

/// CPUID leaf 1 bits vmm(4) does not offer: the local APIC (EDX 9) and
/// x2APIC (ECX 21), as there is no APIC, plus the hypervisor-visible
/// TSC-deadline timer (ECX 24) that needs one.
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
        let leaf1 = self
            .cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 1)
            .map_or((0, 0), |e| (e.eax, e.edx));
        Ok(KvmVcpu {
            fd,
            kick_bound: false,
            leaf1,
        })
    }
}

pub struct KvmVcpu {
    fd: VcpuFd,
    /// Set once the vcpu is bound to its thread: a KVM_RUN that returns
    /// EINTR must then consume the kick that caused it.
    kick_bound: bool,
    /// CPUID leaf 1 EAX and EDX as set for the guest.
    leaf1: (u32, u32),
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

/// The MSRs of `vcpu_reg_state` other than EFER (which KVM keeps in the
/// sregs), with their numbers.
const REG_STATE_MSRS: [(usize, u32); 6] = [
    (VCPU_REGS_STAR, 0xc000_0081),
    (VCPU_REGS_LSTAR, 0xc000_0082),
    (VCPU_REGS_CSTAR, 0xc000_0083),
    (VCPU_REGS_SFMASK, 0xc000_0084),
    (VCPU_REGS_KGSBASE, 0xc000_0102),
    (VCPU_REGS_MISC_ENABLE, 0x0000_01a0),
];

/// A vmm(4) segment (VMX access rights) as KVM takes it.
fn kvm_segment_from(s: &VcpuSegmentInfo) -> kvm_segment {
    let ar = s.vsi_ar;
    let bit = |n: u32| ((ar >> n) & 1) as u8;
    kvm_segment {
        base: s.vsi_base,
        limit: s.vsi_limit,
        selector: s.vsi_sel,
        type_: (ar & 0xf) as u8,
        s: bit(4),
        dpl: ((ar >> 5) & 3) as u8,
        present: bit(7),
        avl: bit(12),
        l: bit(13),
        db: bit(14),
        g: bit(15),
        unusable: bit(16),
        padding: 0,
    }
}

fn segment_from_kvm(k: &kvm_segment) -> VcpuSegmentInfo {
    let bit = |v: u8, n: u32| u32::from(v & 1) << n;
    VcpuSegmentInfo {
        vsi_sel: k.selector,
        vsi_limit: k.limit,
        vsi_ar: u32::from(k.type_ & 0xf)
            | bit(k.s, 4)
            | (u32::from(k.dpl & 3) << 5)
            | bit(k.present, 7)
            | bit(k.avl, 12)
            | bit(k.l, 13)
            | bit(k.db, 14)
            | bit(k.g, 15)
            | bit(k.unusable, 16),
        vsi_base: k.base,
    }
}

fn dtable_from(s: &VcpuSegmentInfo) -> kvm_dtable {
    kvm_dtable {
        base: s.vsi_base,
        limit: s.vsi_limit.min(0xffff) as u16,
        padding: [0; 3],
    }
}

fn dtable_segment(d: &kvm_dtable) -> VcpuSegmentInfo {
    VcpuSegmentInfo {
        vsi_sel: 0,
        vsi_limit: u32::from(d.limit),
        vsi_ar: 0,
        vsi_base: d.base,
    }
}

impl KvmVcpu {
    fn write_reg_state(&mut self, vrs: &VcpuRegState) -> Result<(), HvError> {
        let mut sregs = self.fd.get_sregs().map_err(sys("KVM_GET_SREGS"))?;
        let seg = |i: usize| kvm_segment_from(&vrs.vrs_sregs[i]);
        sregs.es = seg(VCPU_REGS_ES);
        sregs.cs = seg(VCPU_REGS_CS);
        sregs.ss = seg(VCPU_REGS_SS);
        sregs.ds = seg(VCPU_REGS_DS);
        sregs.fs = seg(VCPU_REGS_FS);
        sregs.gs = seg(VCPU_REGS_GS);
        sregs.ldt = seg(VCPU_REGS_LDTR);
        sregs.tr = seg(VCPU_REGS_TR);
        sregs.gdt = dtable_from(&vrs.vrs_gdtr);
        sregs.idt = dtable_from(&vrs.vrs_idtr);
        sregs.cr0 = vrs.vrs_crs[VCPU_REGS_CR0];
        sregs.cr2 = vrs.vrs_crs[VCPU_REGS_CR2];
        sregs.cr3 = vrs.vrs_crs[VCPU_REGS_CR3];
        sregs.cr4 = vrs.vrs_crs[VCPU_REGS_CR4];
        sregs.cr8 = vrs.vrs_crs[VCPU_REGS_CR8];
        sregs.efer = vrs.vrs_msrs[VCPU_REGS_EFER];
        self.fd.set_sregs(&sregs).map_err(sys("KVM_SET_SREGS"))?;

        let entries: Vec<kvm_msr_entry> = REG_STATE_MSRS
            .iter()
            .map(|&(i, index)| kvm_msr_entry {
                index,
                data: vrs.vrs_msrs[i],
                ..Default::default()
            })
            .collect();
        let msrs = Msrs::from_entries(&entries).map_err(|_| HvError::Sys {
            what: "KVM_SET_MSRS",
            source: std::io::Error::from_raw_os_error(libc::E2BIG),
        })?;
        let n = self.fd.set_msrs(&msrs).map_err(sys("KVM_SET_MSRS"))?;
        if n != entries.len() {
            return Err(HvError::Sys {
                what: "KVM_SET_MSRS",
                source: std::io::Error::other(format!(
                    "MSR {:#x} refused",
                    entries[n.min(entries.len() - 1)].index
                )),
            });
        }

        let d = &vrs.vrs_drs;
        let dregs = kvm_debugregs {
            db: [
                d[VCPU_REGS_DR0],
                d[VCPU_REGS_DR1],
                d[VCPU_REGS_DR2],
                d[VCPU_REGS_DR3],
            ],
            dr6: d[VCPU_REGS_DR6],
            dr7: d[VCPU_REGS_DR7],
            ..Default::default()
        };
        self.fd
            .set_debug_regs(&dregs)
            .map_err(sys("KVM_SET_DEBUGREGS"))?;

        let xcr0 = vrs.vrs_crs[VCPU_REGS_XCR0];
        if xcr0 != 0 {
            let mut xcrs = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            xcrs.xcrs[0].value = xcr0;
            self.fd.set_xcrs(&xcrs).map_err(sys("KVM_SET_XCRS"))?;
        }

        let g = &vrs.vrs_gprs;
        let regs = kvm_regs {
            rax: g[VCPU_REGS_RAX],
            rbx: g[VCPU_REGS_RBX],
            rcx: g[VCPU_REGS_RCX],
            rdx: g[VCPU_REGS_RDX],
            rsi: g[VCPU_REGS_RSI],
            rdi: g[VCPU_REGS_RDI],
            rsp: g[VCPU_REGS_RSP],
            rbp: g[VCPU_REGS_RBP],
            r8: g[VCPU_REGS_R8],
            r9: g[VCPU_REGS_R9],
            r10: g[VCPU_REGS_R10],
            r11: g[VCPU_REGS_R11],
            r12: g[VCPU_REGS_R12],
            r13: g[VCPU_REGS_R13],
            r14: g[VCPU_REGS_R14],
            r15: g[VCPU_REGS_R15],
            rip: g[VCPU_REGS_RIP],
            rflags: g[VCPU_REGS_RFLAGS],
        };
        self.fd.set_regs(&regs).map_err(sys("KVM_SET_REGS"))
    }

    fn read_reg_state(&mut self) -> Result<VcpuRegState, HvError> {
        let mut vrs = VcpuRegState::zeroed();
        let r = self.fd.get_regs().map_err(sys("KVM_GET_REGS"))?;
        let g = &mut vrs.vrs_gprs;
        g[VCPU_REGS_RAX] = r.rax;
        g[VCPU_REGS_RBX] = r.rbx;
        g[VCPU_REGS_RCX] = r.rcx;
        g[VCPU_REGS_RDX] = r.rdx;
        g[VCPU_REGS_RSI] = r.rsi;
        g[VCPU_REGS_RDI] = r.rdi;
        g[VCPU_REGS_RSP] = r.rsp;
        g[VCPU_REGS_RBP] = r.rbp;
        g[VCPU_REGS_R8] = r.r8;
        g[VCPU_REGS_R9] = r.r9;
        g[VCPU_REGS_R10] = r.r10;
        g[VCPU_REGS_R11] = r.r11;
        g[VCPU_REGS_R12] = r.r12;
        g[VCPU_REGS_R13] = r.r13;
        g[VCPU_REGS_R14] = r.r14;
        g[VCPU_REGS_R15] = r.r15;
        g[VCPU_REGS_RIP] = r.rip;
        g[VCPU_REGS_RFLAGS] = r.rflags;

        let s = self.fd.get_sregs().map_err(sys("KVM_GET_SREGS"))?;
        let sr = &mut vrs.vrs_sregs;
        sr[VCPU_REGS_ES] = segment_from_kvm(&s.es);
        sr[VCPU_REGS_CS] = segment_from_kvm(&s.cs);
        sr[VCPU_REGS_SS] = segment_from_kvm(&s.ss);
        sr[VCPU_REGS_DS] = segment_from_kvm(&s.ds);
        sr[VCPU_REGS_FS] = segment_from_kvm(&s.fs);
        sr[VCPU_REGS_GS] = segment_from_kvm(&s.gs);
        sr[VCPU_REGS_LDTR] = segment_from_kvm(&s.ldt);
        sr[VCPU_REGS_TR] = segment_from_kvm(&s.tr);
        vrs.vrs_gdtr = dtable_segment(&s.gdt);
        vrs.vrs_idtr = dtable_segment(&s.idt);
        vrs.vrs_crs[VCPU_REGS_CR0] = s.cr0;
        vrs.vrs_crs[VCPU_REGS_CR2] = s.cr2;
        vrs.vrs_crs[VCPU_REGS_CR3] = s.cr3;
        vrs.vrs_crs[VCPU_REGS_CR4] = s.cr4;
        vrs.vrs_crs[VCPU_REGS_CR8] = s.cr8;
        vrs.vrs_msrs[VCPU_REGS_EFER] = s.efer;

        let entries: Vec<kvm_msr_entry> = REG_STATE_MSRS
            .iter()
            .map(|&(_, index)| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(|_| HvError::Sys {
            what: "KVM_GET_MSRS",
            source: std::io::Error::from_raw_os_error(libc::E2BIG),
        })?;
        let n = self.fd.get_msrs(&mut msrs).map_err(sys("KVM_GET_MSRS"))?;
        for (k, e) in msrs.as_slice().iter().take(n).enumerate() {
            vrs.vrs_msrs[REG_STATE_MSRS[k].0] = e.data;
        }

        let d = self.fd.get_debug_regs().map_err(sys("KVM_GET_DEBUGREGS"))?;
        vrs.vrs_drs[VCPU_REGS_DR0] = d.db[0];
        vrs.vrs_drs[VCPU_REGS_DR1] = d.db[1];
        vrs.vrs_drs[VCPU_REGS_DR2] = d.db[2];
        vrs.vrs_drs[VCPU_REGS_DR3] = d.db[3];
        vrs.vrs_drs[VCPU_REGS_DR6] = d.dr6;
        vrs.vrs_drs[VCPU_REGS_DR7] = d.dr7;

        if let Ok(x) = self.fd.get_xcrs() {
            let n = (x.nr_xcrs as usize).min(x.xcrs.len());
            if let Some(x0) = x.xcrs[..n].iter().find(|x| x.xcr == 0) {
                vrs.vrs_crs[VCPU_REGS_XCR0] = x0.value;
            }
        }
        Ok(vrs)
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

    fn set_reg_state(&mut self, vrs: &VcpuRegState) -> Result<(), HvError> {
        self.write_reg_state(vrs)
    }

    fn reg_state(&mut self) -> Result<VcpuRegState, HvError> {
        self.read_reg_state()
    }

    fn bind_to_current_thread(&mut self) -> Result<Box<dyn Fn() + Send + Sync>, HvError> {
        let kicker = self.bind_kicker()?;
        Ok(Box::new(move || kicker.kick()))
    }

    fn cpuid_leaf1(&self) -> (u32, u32) {
        self.leaf1
    }
}
