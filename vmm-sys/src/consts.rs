//! Limits, register indices, flags and exit reasons of vmm(4)
//! (`sys/dev/vmm/vmm.h` 1.11, `sys/arch/amd64/include/vmmvar.h` 1.117).

pub const VMM_MAX_MEM_RANGES: usize = 16;
pub const VMM_MAX_DISKS_PER_VM: usize = 4;
pub const VMM_MAX_NAME_LEN: usize = 64;
pub const VMM_MAX_VCPUS: usize = 512;
pub const VMM_MAX_VCPUS_PER_VM: usize = 64;
pub const VMM_MAX_VM_MEM_SIZE: u64 = 128 * 1024 * 1024 * 1024;
pub const VMM_MAX_NICS_PER_VM: usize = 4;

/// `vm_mem_range.vmr_type`.
pub const VM_MEM_RAM: i32 = 0;
pub const VM_MEM_RESERVED: i32 = 1;
pub const VM_MEM_MMIO: i32 = 2;

/// `vm_rwvmparams_params.vpp_mask`.
pub const VM_RWVMPARAMS_PVCLOCK_SYSTEM_GPA: u32 = 0x1;
pub const VM_RWVMPARAMS_PVCLOCK_VERSION: u32 = 0x2;
pub const VM_RWVMPARAMS_ALL: u32 = VM_RWVMPARAMS_PVCLOCK_SYSTEM_GPA | VM_RWVMPARAMS_PVCLOCK_VERSION;

/// `vm_rwregs_params.vrwp_mask`.
pub const VM_RWREGS_GPRS: u64 = 0x1;
pub const VM_RWREGS_SREGS: u64 = 0x2;
pub const VM_RWREGS_CRS: u64 = 0x4;
pub const VM_RWREGS_MSRS: u64 = 0x8;
pub const VM_RWREGS_DRS: u64 = 0x10;
pub const VM_RWREGS_ALL: u64 =
    VM_RWREGS_GPRS | VM_RWREGS_SREGS | VM_RWREGS_CRS | VM_RWREGS_MSRS | VM_RWREGS_DRS;

/// `vcpu_inject_event.vie_type`.
pub const VCPU_INJECT_NONE: u8 = 0;
pub const VCPU_INJECT_INTR: u8 = 1;
pub const VCPU_INJECT_EX: u8 = 2;
pub const VCPU_INJECT_NMI: u8 = 3;

/// `vm_exit_inout.vei_dir`.
pub const VEI_DIR_OUT: u8 = 0;
pub const VEI_DIR_IN: u8 = 1;

/// `vm_exit_eptviolation.vee_fault_type`.
pub const VEE_FAULT_INVALID: u8 = 0;
pub const VEE_FAULT_HANDLED: u8 = 1;
pub const VEE_FAULT_MMIO_ASSIST: u8 = 2;
pub const VEE_FAULT_PROTECT: u8 = 3;
/// `vm_exit_eptviolation.vee_insn_info` bits.
pub const VEE_LEN_VALID: u8 = 0x1;
pub const VEE_BYTES_VALID: u8 = 0x2;

/// `vir_vcpu_state` values.
pub const VCPU_STATE_STOPPED: u8 = 0;
pub const VCPU_STATE_RUNNING: u8 = 1;
pub const VCPU_STATE_REQTERM: u8 = 2;
pub const VCPU_STATE_TERMINATED: u8 = 3;
pub const VCPU_STATE_UNKNOWN: u8 = 4;

// General purpose registers, ordered to help instruction decoding.
pub const VCPU_REGS_RAX: usize = 0;
pub const VCPU_REGS_RCX: usize = 1;
pub const VCPU_REGS_RDX: usize = 2;
pub const VCPU_REGS_RBX: usize = 3;
pub const VCPU_REGS_RSP: usize = 4;
pub const VCPU_REGS_RBP: usize = 5;
pub const VCPU_REGS_RSI: usize = 6;
pub const VCPU_REGS_RDI: usize = 7;
pub const VCPU_REGS_R8: usize = 8;
pub const VCPU_REGS_R9: usize = 9;
pub const VCPU_REGS_R10: usize = 10;
pub const VCPU_REGS_R11: usize = 11;
pub const VCPU_REGS_R12: usize = 12;
pub const VCPU_REGS_R13: usize = 13;
pub const VCPU_REGS_R14: usize = 14;
pub const VCPU_REGS_R15: usize = 15;
pub const VCPU_REGS_RIP: usize = 16;
pub const VCPU_REGS_RFLAGS: usize = 17;
pub const VCPU_REGS_NGPRS: usize = VCPU_REGS_RFLAGS + 1;

pub const VCPU_REGS_CR0: usize = 0;
pub const VCPU_REGS_CR2: usize = 1;
pub const VCPU_REGS_CR3: usize = 2;
pub const VCPU_REGS_CR4: usize = 3;
pub const VCPU_REGS_CR8: usize = 4;
pub const VCPU_REGS_XCR0: usize = 5;
pub const VCPU_REGS_PDPTE0: usize = 6;
pub const VCPU_REGS_PDPTE1: usize = 7;
pub const VCPU_REGS_PDPTE2: usize = 8;
pub const VCPU_REGS_PDPTE3: usize = 9;
pub const VCPU_REGS_NCRS: usize = VCPU_REGS_PDPTE3 + 1;

pub const VCPU_REGS_ES: usize = 0;
pub const VCPU_REGS_CS: usize = 1;
pub const VCPU_REGS_SS: usize = 2;
pub const VCPU_REGS_DS: usize = 3;
pub const VCPU_REGS_FS: usize = 4;
pub const VCPU_REGS_GS: usize = 5;
pub const VCPU_REGS_LDTR: usize = 6;
pub const VCPU_REGS_TR: usize = 7;
pub const VCPU_REGS_NSREGS: usize = VCPU_REGS_TR + 1;

pub const VCPU_REGS_EFER: usize = 0;
pub const VCPU_REGS_STAR: usize = 1;
pub const VCPU_REGS_LSTAR: usize = 2;
pub const VCPU_REGS_CSTAR: usize = 3;
pub const VCPU_REGS_SFMASK: usize = 4;
pub const VCPU_REGS_KGSBASE: usize = 5;
pub const VCPU_REGS_MISC_ENABLE: usize = 6;
pub const VCPU_REGS_NMSRS: usize = VCPU_REGS_MISC_ENABLE + 1;

pub const VCPU_REGS_DR0: usize = 0;
pub const VCPU_REGS_DR1: usize = 1;
pub const VCPU_REGS_DR2: usize = 2;
pub const VCPU_REGS_DR3: usize = 3;
pub const VCPU_REGS_DR6: usize = 4;
pub const VCPU_REGS_DR7: usize = 5;
pub const VCPU_REGS_NDRS: usize = VCPU_REGS_DR7 + 1;

/// Synthetic exit reasons vmm(4) reports in `vrp_exit_reason`.
pub const VM_EXIT_TERMINATED: u16 = 0xFFFE;
pub const VM_EXIT_NONE: u16 = 0xFFFF;

// VMX basic exit reasons that vmd's vcpu_exit() handles (Intel).
pub const VMX_EXIT_NMI: u16 = 0;
pub const VMX_EXIT_EXTINT: u16 = 1;
pub const VMX_EXIT_TRIPLE_FAULT: u16 = 2;
pub const VMX_EXIT_INT_WINDOW: u16 = 7;
pub const VMX_EXIT_CPUID: u16 = 10;
pub const VMX_EXIT_HLT: u16 = 12;
pub const VMX_EXIT_IO: u16 = 30;
pub const VMX_EXIT_RDMSR: u16 = 31;
pub const VMX_EXIT_WRMSR: u16 = 32;
pub const VMX_EXIT_ENTRY_FAILED_GUEST_STATE: u16 = 33;
pub const VMX_EXIT_EPT_VIOLATION: u16 = 48;
pub const VMX_EXIT_EPT_MISCONFIGURATION: u16 = 49;
pub const VMX_EXIT_XSETBV: u16 = 55;

// SVM intercept codes that vmd's vcpu_exit() handles (AMD).
pub const SVM_VMEXIT_INTR: u16 = 0x60;
pub const SVM_VMEXIT_NMI: u16 = 0x61;
pub const SVM_VMEXIT_VINTR: u16 = 0x64;
pub const SVM_VMEXIT_CPUID: u16 = 0x72;
pub const SVM_VMEXIT_HLT: u16 = 0x78;
pub const SVM_VMEXIT_IOIO: u16 = 0x7B;
pub const SVM_VMEXIT_MSR: u16 = 0x7C;
pub const SVM_VMEXIT_SHUTDOWN: u16 = 0x7F;
pub const SVM_VMEXIT_XSETBV: u16 = 0x8D;
pub const SVM_VMEXIT_NPF: u16 = 0x400;
pub const SVM_VMEXIT_VMGEXIT: u16 = 0x403;
