//! The vmm(4) parameter structs of `sys/dev/vmm/vmm.h` and
//! `sys/arch/amd64/include/vmmvar.h`, field for field.
//!
//! C `size_t`, `paddr_t` and `vaddr_t` are `u64`, `int` and `pid_t` are
//! `i32`, `char[N]` is `[u8; N]`. The two pointers the kernel follows
//! (`vip_info`, `vrp_exit`) are carried as `u64` addresses: [`crate::Vmm`]
//! fills them in from live Rust references for the duration of one ioctl.

use crate::consts::{
    VCPU_REGS_NCRS, VCPU_REGS_NDRS, VCPU_REGS_NGPRS, VCPU_REGS_NMSRS, VCPU_REGS_NSREGS,
    VMM_MAX_MEM_RANGES, VMM_MAX_NAME_LEN, VMM_MAX_VCPUS, VMM_MAX_VCPUS_PER_VM,
};
use crate::wire::Wire;
use crate::wire_struct;

wire_struct! {
    /// One guest-physical memory range (`struct vm_mem_range`).
    #[repr(C)]
    pub struct VmMemRange = "vm_mem_range" {
        pub vmr_gpa: u64,
        /// Host virtual address in the process that owns the mapping.
        pub vmr_va: u64,
        pub vmr_size: u64,
        /// `VM_MEM_RAM`, `VM_MEM_RESERVED` or `VM_MEM_MMIO`.
        pub vmr_type: i32,
    }
}

wire_struct! {
    /// `VMM_IOC_CREATE` input and output.
    #[repr(C)]
    pub struct VmCreateParams = "vm_create_params" {
        pub vcp_nmemranges: u64,
        pub vcp_ncpus: u64,
        pub vcp_memranges: [VmMemRange; VMM_MAX_MEM_RANGES],
        pub vcp_name: [u8; VMM_MAX_NAME_LEN],
        pub vcp_sev: i32,
        pub vcp_seves: i32,
        /// Output: the vmm(4) id of the new VM.
        pub vcp_id: u32,
        pub vcp_poscbit: u32,
        pub vcp_asid: [u32; VMM_MAX_VCPUS],
    }
}

wire_struct! {
    /// One VM as `VMM_IOC_INFO` reports it (`struct vm_info_result`).
    #[repr(C)]
    pub struct VmInfoResult = "vm_info_result" {
        pub vir_memory_size: u64,
        pub vir_used_size: u64,
        pub vir_ncpus: u64,
        pub vir_vcpu_state: [u8; VMM_MAX_VCPUS_PER_VM],
        pub vir_creator_pid: i32,
        pub vir_id: u32,
        pub vir_name: [u8; VMM_MAX_NAME_LEN],
    }
}

wire_struct! {
    /// `VMM_IOC_INFO` input and output.
    #[repr(C)]
    pub struct VmInfoParams = "vm_info_params" {
        /// Size in bytes of the buffer at `vip_info`.
        pub vip_size: u64,
        /// Output: number of entries written.
        pub vip_info_ct: u64,
        /// Address of a `[VmInfoResult]` buffer (a C pointer).
        pub vip_info: u64,
    }
}

wire_struct! {
    /// `VMM_IOC_TERM` input.
    #[repr(C)]
    pub struct VmTerminateParams = "vm_terminate_params" {
        pub vtp_vm_id: u32,
    }
}

wire_struct! {
    /// Segment register contents (`struct vcpu_segment_info`).
    #[repr(C)]
    pub struct VcpuSegmentInfo = "vcpu_segment_info" {
        pub vsi_sel: u16,
        pub vsi_limit: u32,
        pub vsi_ar: u32,
        pub vsi_base: u64,
    }
}

wire_struct! {
    /// The full register state of one vcpu (`struct vcpu_reg_state`),
    /// indexed by the `VCPU_REGS_*` constants.
    #[repr(C)]
    pub struct VcpuRegState = "vcpu_reg_state" {
        pub vrs_gprs: [u64; VCPU_REGS_NGPRS],
        pub vrs_crs: [u64; VCPU_REGS_NCRS],
        pub vrs_msrs: [u64; VCPU_REGS_NMSRS],
        pub vrs_drs: [u64; VCPU_REGS_NDRS],
        pub vrs_sregs: [VcpuSegmentInfo; VCPU_REGS_NSREGS],
        pub vrs_gdtr: VcpuSegmentInfo,
        pub vrs_idtr: VcpuSegmentInfo,
    }
}

wire_struct! {
    /// `VMM_IOC_RESETCPU` input.
    #[repr(C)]
    pub struct VmResetcpuParams = "vm_resetcpu_params" {
        pub vrp_vm_id: u32,
        pub vrp_vcpu_id: u32,
        pub vrp_init_state: VcpuRegState,
    }
}

wire_struct! {
    /// `VMM_IOC_SHAREMEM` input and output.
    #[repr(C)]
    pub struct VmSharememParams = "vm_sharemem_params" {
        pub vsp_vm_id: u32,
        pub vsp_nmemranges: u64,
        pub vsp_memranges: [VmMemRange; VMM_MAX_MEM_RANGES],
        /// Output: where each range is mapped in the caller.
        pub vsp_va: [u64; VMM_MAX_MEM_RANGES],
    }
}

wire_struct! {
    /// An event to inject on the next entry (`struct vcpu_inject_event`).
    #[repr(C)]
    pub struct VcpuInjectEvent = "vcpu_inject_event" {
        pub vie_vector: u8,
        pub vie_errorcode: u32,
        /// `VCPU_INJECT_NONE`, `_INTR`, `_EX` or `_NMI`.
        pub vie_type: u8,
    }
}

wire_struct! {
    /// `VMM_IOC_RUN` input and output.
    #[repr(C)]
    pub struct VmRunParams = "vm_run_params" {
        pub vrp_vm_id: u32,
        pub vrp_vcpu_id: u32,
        pub vrp_inject: VcpuInjectEvent,
        pub vrp_intr_pending: u8,
        /// Address of the [`VmExit`] the kernel reads and updates (a C pointer).
        pub vrp_exit: u64,
        /// Output: `VMX_EXIT_*`, `SVM_VMEXIT_*` or `VM_EXIT_*`.
        pub vrp_exit_reason: u16,
        pub vrp_irqready: u8,
    }
}

wire_struct! {
    /// `VMM_IOC_READVMPARAMS` / `VMM_IOC_WRITEVMPARAMS` input and output.
    #[repr(C)]
    pub struct VmRwvmparamsParams = "vm_rwvmparams_params" {
        pub vpp_vm_id: u32,
        pub vpp_vcpu_id: u32,
        /// `VM_RWVMPARAMS_*` bits.
        pub vpp_mask: u32,
        pub vpp_pvclock_system_gpa: u64,
        pub vpp_pvclock_version: u32,
    }
}

wire_struct! {
    /// An IN/OUT exit (`struct vm_exit_inout`).
    #[repr(C)]
    pub struct VmExitInout = "vm_exit_inout" {
        /// Access size in bytes: 1, 2 or 4.
        pub vei_size: u8,
        /// `VEI_DIR_OUT` or `VEI_DIR_IN`.
        pub vei_dir: u8,
        pub vei_rep: u8,
        pub vei_string: u8,
        pub vei_encoding: u8,
        pub vei_port: u16,
        pub vei_data: u32,
        pub vei_insn_len: u8,
    }
}

wire_struct! {
    /// An EPT violation / nested page fault exit (`struct vm_exit_eptviolation`).
    #[repr(C)]
    pub struct VmExitEptViolation = "vm_exit_eptviolation" {
        /// `VEE_FAULT_*`.
        pub vee_fault_type: u8,
        /// `VEE_LEN_VALID` | `VEE_BYTES_VALID`.
        pub vee_insn_info: u8,
        pub vee_insn_len: u8,
        pub vee_insn_bytes: [u8; 15],
    }
}

wire_struct! {
    /// The anonymous union at the start of `struct vm_exit`, kept as its raw
    /// bytes. Which member is live depends on the exit reason, which is
    /// outside the struct, so the caller picks the view it needs; both
    /// views accept every bit pattern, so no view can be unsound.
    #[repr(C, align(4))]
    pub struct VmExitUnion = "vm_exit union" {
        pub bytes: [u8; 20],
    }
}

impl VmExitUnion {
    /// The union read as `vei` (IN/OUT exits).
    pub fn inout(&self) -> VmExitInout {
        VmExitInout::get(&self.bytes[..VmExitInout::SIZE])
    }

    /// Stores `vei`, as vmd does to return IN data to the kernel.
    pub fn set_inout(&mut self, vei: &VmExitInout) {
        self.bytes[..VmExitInout::SIZE].fill(0);
        vei.put(&mut self.bytes[..VmExitInout::SIZE]);
    }

    /// The union read as `vee` (EPT violation / NPF exits).
    pub fn ept_violation(&self) -> VmExitEptViolation {
        VmExitEptViolation::get(&self.bytes[..VmExitEptViolation::SIZE])
    }

    /// Stores `vee`.
    pub fn set_ept_violation(&mut self, vee: &VmExitEptViolation) {
        self.bytes[..VmExitEptViolation::SIZE].fill(0);
        vee.put(&mut self.bytes[..VmExitEptViolation::SIZE]);
    }
}

wire_struct! {
    /// Exit information exchanged on every `VMM_IOC_RUN` (`struct vm_exit`).
    #[repr(C)]
    pub struct VmExit = "vm_exit" {
        /// The `vei` / `vee` union.
        pub info: VmExitUnion,
        pub vrs: VcpuRegState,
        /// Current privilege level of the guest.
        pub cpl: i32,
    }
}

wire_struct! {
    /// `VMM_IOC_INTR` input.
    #[repr(C)]
    pub struct VmIntrParams = "vm_intr_params" {
        pub vip_vm_id: u32,
        pub vip_vcpu_id: u32,
        pub vip_intr: u16,
    }
}

wire_struct! {
    /// `VMM_IOC_READREGS` / `VMM_IOC_WRITEREGS` input and output.
    #[repr(C)]
    pub struct VmRwregsParams = "vm_rwregs_params" {
        pub vrwp_vm_id: u32,
        pub vrwp_vcpu_id: u32,
        /// `VM_RWREGS_*` bits.
        pub vrwp_mask: u64,
        pub vrwp_regs: VcpuRegState,
    }
}
