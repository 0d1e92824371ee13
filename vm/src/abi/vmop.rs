//! The `vmop_*` messages of vmd.h that vmctl, the parent, the vmm process
//! and the vm process exchange as raw imsg payloads.

use vmm_sys::consts::{VMM_MAX_MEM_RANGES, VMM_MAX_NAME_LEN, VMM_MAX_VCPUS_PER_VM};
use vmm_sys::wire_struct;
use vmm_sys::{VmCreateParams, VmInfoResult, VmMemRange, Wire};

use super::{
    IF_NAMESIZE, PATH_MAX, VM_MAX_DISKS_PER_VM, VM_MAX_NICS_PER_VM, VM_NAME_MAX, VM_TTYNAME_MAX,
};

/// `vmop_id.vid_flags`.
pub const VMOP_FORCE: u32 = 0x01;
pub const VMOP_WAIT: u32 = 0x02;

/// `vmop_create_params.vmc_flags` and `vmc_checkaccess`.
pub const VMOP_CREATE_CPU: u32 = 0x01;
pub const VMOP_CREATE_KERNEL: u32 = 0x02;
pub const VMOP_CREATE_MEMORY: u32 = 0x04;
pub const VMOP_CREATE_NETWORK: u32 = 0x08;
pub const VMOP_CREATE_DISK: u32 = 0x10;
pub const VMOP_CREATE_CDROM: u32 = 0x20;
pub const VMOP_CREATE_INSTANCE: u32 = 0x40;

/// `vmc_bootdevice`.
pub const VMBOOTDEV_AUTO: u32 = 0;
pub const VMBOOTDEV_DISK: u32 = 1;
pub const VMBOOTDEV_CDROM: u32 = 2;
pub const VMBOOTDEV_NET: u32 = 3;

/// `vmc_ifflags[]`.
pub const VMIFF_UP: u32 = 0x01;
pub const VMIFF_LOCKED: u32 = 0x02;
pub const VMIFF_LOCAL: u32 = 0x04;
pub const VMIFF_RDOMAIN: u32 = 0x08;
pub const VMIFF_OPTMASK: u32 = VMIFF_LOCKED | VMIFF_LOCAL | VMIFF_RDOMAIN;

/// `vmc_disktypes[]`.
pub const VMDF_RAW: u32 = 0x01;
pub const VMDF_QCOW2: u32 = 0x02;

wire_struct! {
    /// Reply to start and terminate requests (`struct vmop_result`).
    #[repr(C)]
    pub struct VmopResult = "vmop_result" {
        /// 0 or an errno / `VMD_*` error code.
        pub vmr_result: i32,
        pub vmr_id: u32,
        pub vmr_pid: i32,
        pub vmr_ttyname: [u8; VM_TTYNAME_MAX],
    }
}

wire_struct! {
    /// One line of `vmctl status` (`struct vmop_info_result`).
    #[repr(C)]
    pub struct VmopInfoResult = "vmop_info_result" {
        pub vir_info: VmInfoResult,
        pub vir_ttyname: [u8; VM_TTYNAME_MAX],
        pub vir_uid: u32,
        /// -1 when no group owns the VM.
        pub vir_gid: i64,
        /// `VM_STATE_*` bits.
        pub vir_state: u32,
    }
}

wire_struct! {
    /// Names a VM by id or name (`struct vmop_id`).
    #[repr(C)]
    pub struct VmopId = "vmop_id" {
        pub vid_id: u32,
        pub vid_name: [u8; VMM_MAX_NAME_LEN],
        pub vid_uid: u32,
        /// `VMOP_FORCE` | `VMOP_WAIT`.
        pub vid_flags: u32,
    }
}

wire_struct! {
    /// Owner of a VM (`struct vmop_owner`).
    #[repr(C)]
    pub struct VmopOwner = "vmop_owner" {
        pub uid: u32,
        /// -1 for none.
        pub gid: i64,
    }
}

wire_struct! {
    /// Everything needed to start a VM (`struct vmop_create_params`), in the
    /// flattened 2026 form the seed (virtio.c 1.135) uses: the former
    /// embedded `struct vm_create_params` input fields appear directly as
    /// `vmc_nmemranges` .. `vmc_seves`; its outputs (`vcp_id`, ...) moved to
    /// [`super::VmdVm`]. See ABI.md for what is inferred.
    #[repr(C)]
    pub struct VmopCreateParams = "vmop_create_params" {
        pub vmc_nmemranges: u64,
        pub vmc_ncpus: u64,
        pub vmc_memranges: [VmMemRange; VMM_MAX_MEM_RANGES],
        pub vmc_name: [u8; VMM_MAX_NAME_LEN],
        pub vmc_sev: i32,
        pub vmc_seves: i32,
        /// `VMOP_CREATE_*`.
        pub vmc_flags: u32,
        /// `VMOP_CREATE_*` resources whose access must be checked.
        pub vmc_checkaccess: u32,
        /// `VMBOOTDEV_*`.
        pub vmc_bootdevice: u32,
        /// `VMIFF_*` per NIC.
        pub vmc_ifflags: [u32; VM_MAX_NICS_PER_VM],
        pub vmc_ndisks: u64,
        pub vmc_disks: [[u8; PATH_MAX]; VM_MAX_DISKS_PER_VM],
        /// `VMDF_*` per disk.
        pub vmc_disktypes: [u32; VM_MAX_DISKS_PER_VM],
        /// Number of images (the disk and its qcow2 bases) per disk.
        pub vmc_diskbases: [u32; VM_MAX_DISKS_PER_VM],
        pub vmc_cdrom: [u8; PATH_MAX],
        pub vmc_kernel: i32,
        pub vmc_nnics: u64,
        pub vmc_ifnames: [[u8; IF_NAMESIZE]; VM_MAX_NICS_PER_VM],
        pub vmc_ifswitch: [[u8; VM_NAME_MAX]; VM_MAX_NICS_PER_VM],
        pub vmc_ifgroup: [[u8; IF_NAMESIZE]; VM_MAX_NICS_PER_VM],
        pub vmc_ifrdomain: [u32; VM_MAX_NICS_PER_VM],
        pub vmc_macs: [[u8; 6]; VM_MAX_NICS_PER_VM],
        pub vmc_owner: VmopOwner,
        /// Name of the template VM this one is an instance of.
        pub vmc_instance: [u8; VMM_MAX_NAME_LEN],
        pub vmc_insowner: VmopOwner,
        pub vmc_insflags: u32,
    }
}

impl VmopCreateParams {
    /// The `VMM_IOC_CREATE` input for this VM, built as vmd's
    /// `vmm_create_vm` builds it: the flattened fields copied into a
    /// zeroed `vm_create_params`, after the same range checks.
    pub fn vm_create_params(&self) -> Result<VmCreateParams, vmm_sys::Error> {
        let ncpus = self.vmc_ncpus as usize;
        if ncpus == 0 || ncpus > VMM_MAX_VCPUS_PER_VM {
            return Err(vmm_sys::Error::BadVcpuCount(ncpus));
        }
        let nranges = self.vmc_nmemranges;
        if nranges == 0 || nranges > VMM_MAX_MEM_RANGES as u64 {
            return Err(vmm_sys::Error::BadMemRanges {
                count: usize::try_from(nranges).unwrap_or(usize::MAX),
            });
        }
        let mut vcp = VmCreateParams::zeroed();
        vcp.vcp_nmemranges = nranges;
        vcp.vcp_ncpus = self.vmc_ncpus;
        vcp.vcp_memranges = self.vmc_memranges;
        vcp.vcp_name = self.vmc_name;
        vcp.vcp_sev = self.vmc_sev;
        vcp.vcp_seves = self.vmc_seves;
        Ok(vcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_create_params_copies_the_flattened_fields() {
        let mut vmc = VmopCreateParams::zeroed();
        vmc.vmc_ncpus = 2;
        vmc.vmc_nmemranges = 1;
        vmc.vmc_memranges[0].vmr_size = 1 << 20;
        vmc.vmc_name = vmm_sys::wire::c_string("db").unwrap();
        vmc.vmc_seves = 1;
        let vcp = vmc.vm_create_params().unwrap();
        assert_eq!(vcp.vcp_ncpus, 2);
        assert_eq!(vcp.vcp_nmemranges, 1);
        assert_eq!(vcp.vcp_memranges[0].vmr_size, 1 << 20);
        assert_eq!(&vcp.vcp_name[..3], b"db\0");
        assert_eq!((vcp.vcp_sev, vcp.vcp_seves), (0, 1));
        assert_eq!(vcp.vcp_id, 0);
    }

    #[test]
    fn vm_create_params_rejects_what_vmm_create_vm_rejects() {
        let mut vmc = VmopCreateParams::zeroed();
        vmc.vmc_nmemranges = 1;
        assert!(vmc.vm_create_params().is_err(), "0 vcpus");
        vmc.vmc_ncpus = 65;
        assert!(vmc.vm_create_params().is_err(), "65 vcpus");
        vmc.vmc_ncpus = 1;
        vmc.vmc_nmemranges = 17;
        assert!(vmc.vm_create_params().is_err(), "17 ranges");
        vmc.vmc_nmemranges = u64::MAX;
        assert!(vmc.vm_create_params().is_err(), "hostile count");
    }
}
