//! `struct vmd_vm` (vmd.h): the parent's record of one VM. The vm process
//! sends it whole to each device child (seed: `virtio_dev_launch` writes
//! `sizeof(*vm)` bytes), so its bytes are part of the protocol.

use vmm_sys::consts::VMM_MAX_VCPUS_PER_VM;
use vmm_sys::wire_struct;
use vmm_sys::VmMemRange;

use super::cstate::{ImsgEv, Timeval};
use super::vmop::VmopCreateParams;
use super::{VM_MAX_BASE_PER_DISK, VM_MAX_DISKS_PER_VM, VM_MAX_NICS_PER_VM, VM_TTYNAME_MAX};

/// Size of `vm_sev_memsegments`.
pub const VM_SEV_NSEGMENTS: usize = 128;

/// `vm_state` bits.
pub const VM_STATE_RUNNING: u32 = 0x01;
pub const VM_STATE_DISABLED: u32 = 0x02;
pub const VM_STATE_SHUTDOWN: u32 = 0x04;
pub const VM_STATE_PAUSED: u32 = 0x10;
pub const VM_STATE_WAITING: u32 = 0x20;

wire_struct! {
    /// One network interface of a VM (`struct vmd_if`). The strings are
    /// pointers in the sender and meaningless to the receiver.
    #[repr(C)]
    pub struct VmdIf = "vmd_if" {
        /// `char *`.
        pub vif_name: u64,
        /// `char *`.
        pub vif_switch: u64,
        /// `char *`.
        pub vif_group: u64,
        pub vif_fd: i32,
        pub vif_rdomain: u32,
        pub vif_flags: u32,
        /// `TAILQ_ENTRY(vmd_if)`: next and prev pointers.
        pub vif_entry: [u64; 2],
    }
}

wire_struct! {
    /// `struct vmd_vm` with the 2026 fields the seed uses (`vm_vmmid`);
    /// see ABI.md for the placement of `vm_vmmid` and `vm_poscbit`.
    #[repr(C)]
    pub struct VmdVm = "vmd_vm" {
        pub vm_params: VmopCreateParams,
        pub vm_pid: i32,
        /// vmd's id for the VM (stable across restarts).
        pub vm_vmid: u32,
        /// vmm(4)'s id for the running VM (`vcp_id` of VMM_IOC_CREATE).
        pub vm_vmmid: u32,
        /// SEV C-bit position (`vcp_poscbit`).
        pub vm_poscbit: u32,
        pub vm_sev_handle: u32,
        pub vm_sev_asid: [u32; VMM_MAX_VCPUS_PER_VM],
        pub vm_sev_nmemsegments: u64,
        pub vm_sev_memsegments: [VmMemRange; VM_SEV_NSEGMENTS],
        pub vm_kernel: i32,
        /// `char *`, used by vm.conf.
        pub vm_kernel_path: u64,
        pub vm_cdrom: i32,
        pub vm_disks: [[i32; VM_MAX_BASE_PER_DISK]; VM_MAX_DISKS_PER_VM],
        pub vm_ifs: [VmdIf; VM_MAX_NICS_PER_VM],
        pub vm_ttyname: [u8; VM_TTYNAME_MAX],
        pub vm_tty: i32,
        pub vm_peerid: u32,
        pub vm_from_config: i32,
        pub vm_iev: ImsgEv,
        pub vm_uid: u32,
        /// `VM_STATE_*`.
        pub vm_state: u32,
        pub vm_start_tv: Timeval,
        pub vm_start_limit: i32,
        /// `TAILQ_ENTRY(vmd_vm)`: next and prev pointers.
        pub vm_entry: [u64; 2],
    }
}
