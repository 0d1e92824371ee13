//! The hypervisor behind the vm process. The KVM backend runs on Linux;
//! vmm(4) on OpenBSD goes through `vmm-sys` (its backend comes with the vm
//! process work). The vcpu loop sees only [`Vcpu`] and [`Exit`].

#[cfg(target_os = "linux")]
pub mod kvm;
#[cfg(target_os = "openbsd")]
pub mod vmm;

pub use vmm_sys::VcpuRegState;

/// Why the guest stopped running and what it wants.
#[derive(Debug)]
pub enum Exit<'a> {
    /// `out` to `port`; `data` is 1, 2 or 4 bytes.
    IoOut { port: u16, data: &'a [u8] },
    /// `in` from `port`: fill `data` before running again.
    IoIn { port: u16, data: &'a mut [u8] },
    /// A read of guest-physical `addr` that no memory backs: fill `data`.
    MmioRead { addr: u64, data: &'a mut [u8] },
    /// A write to guest-physical `addr` that no memory backs.
    MmioWrite { addr: u64, data: &'a [u8] },
    /// The guest executed HLT.
    Halt,
    /// The guest can take an interrupt now (after a window was requested).
    InterruptWindow,
    /// A triple fault: vmd reboots the VM.
    Shutdown,
    /// KVM_RUN was interrupted by a signal (a kick).
    Interrupted,
    /// Anything else, described for the log.
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum HvError {
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("guest memory region at {addr:#x} cannot be registered: {reason}")]
    Memory { addr: u64, reason: String },
}

/// One virtual CPU.
pub trait Vcpu {
    /// Runs the guest until the next exit.
    fn run(&mut self) -> Result<Exit<'_>, HvError>;
    /// Whether the guest has interrupts enabled (RFLAGS.IF).
    fn interrupts_enabled(&mut self) -> Result<bool, HvError>;
    /// Whether an interrupt can be injected right now.
    fn ready_for_interrupt(&mut self) -> bool;
    /// Injects external interrupt `vector`.
    fn inject_interrupt(&mut self, vector: u8) -> Result<(), HvError>;
    /// Asks for an [`Exit::InterruptWindow`] as soon as the guest can take
    /// an interrupt.
    fn request_interrupt_window(&mut self, on: bool);
    /// Real mode at `segment`:`ip` with interrupts off (the BIOS entry).
    fn set_real_mode_entry(&mut self, segment: u16, ip: u16) -> Result<(), HvError>;
    /// Replaces the register state with `vrs`, as vmm(4)'s
    /// VMM_IOC_RESETCPU does with the state a loader built (the ELF
    /// kernel's flat 64-bit start). Segment access rights are in the VMX
    /// layout vmd uses (type, S, DPL, P in bits 0-7; AVL, L, D/B, G in
    /// bits 12-15; unusable in bit 16); limits are in bytes.
    fn set_reg_state(&mut self, vrs: &VcpuRegState) -> Result<(), HvError>;
    /// The register state, as VMM_IOC_READREGS with VM_RWREGS_ALL gives it.
    fn reg_state(&mut self) -> Result<VcpuRegState, HvError>;
    /// Makes the calling thread the vcpu's thread and returns what other
    /// threads call to get the vcpu out of the guest promptly.
    fn bind_to_current_thread(&mut self) -> Result<Box<dyn Fn() + Send + Sync>, HvError>;
    /// EAX (signature) and EDX (features) of CPUID leaf 1 as the guest
    /// sees them; the firmware's SMBIOS processor ID.
    fn cpuid_leaf1(&self) -> (u32, u32);
}
