//! A safe handle on `/dev/vmm`.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::consts::{VMM_MAX_MEM_RANGES, VMM_MAX_NAME_LEN, VMM_MAX_VCPUS_PER_VM};
use crate::error::{Error, Result};
use crate::ioctl::*;
use crate::sys;
use crate::types::*;
use crate::wire::{c_string, Wire};

/// The vmm(4) device node (`VMM_NODE` in vmd.h).
pub const VMM_NODE: &str = "/dev/vmm";

/// How often `info` re-asks when VMs appear between its two calls.
const INFO_ATTEMPTS: usize = 4;

/// More VMs than this in one reply is a kernel bug, not a reason to
/// allocate without bound.
const INFO_MAX_VMS: usize = 4096;

/// What one `VMM_IOC_INFO` reply means for a buffer of `offered` entries.
#[derive(Debug, PartialEq, Eq)]
enum InfoStep {
    /// The buffer held everything; this many entries are valid.
    Done(usize),
    /// The kernel needs a buffer of this many entries.
    Grow(usize),
}

/// The kernel either fills the buffer (`vip_size` unchanged, `vip_info_ct`
/// set) or, when it is too small, sets `vip_size` to the bytes it needs and
/// `vip_info_ct` to 0. Anything else is rejected.
fn info_step(offered: usize, reply: &VmInfoParams) -> Result<InfoStep> {
    let bad = || Error::BadInfoReply {
        size: reply.vip_size,
        count: reply.vip_info_ct,
    };
    let offered_bytes = (offered * VmInfoResult::SIZE) as u64;
    if reply.vip_size > offered_bytes {
        let need = reply.vip_size as usize;
        if reply.vip_info_ct != 0 || need % VmInfoResult::SIZE != 0 {
            return Err(bad());
        }
        let entries = need / VmInfoResult::SIZE;
        if entries > INFO_MAX_VMS {
            return Err(bad());
        }
        return Ok(InfoStep::Grow(entries));
    }
    if reply.vip_info_ct > offered as u64 {
        return Err(bad());
    }
    Ok(InfoStep::Done(reply.vip_info_ct as usize))
}

impl VmCreateParams {
    /// Input for `VMM_IOC_CREATE`: a named VM with `ncpus` vcpus and the
    /// given guest-physical layout. Rejects what vmm(4) would reject, with
    /// a clearer message.
    pub fn new(name: &str, ncpus: usize, ranges: &[VmMemRange]) -> Result<Self> {
        if ncpus == 0 || ncpus > VMM_MAX_VCPUS_PER_VM {
            return Err(Error::BadVcpuCount(ncpus));
        }
        if ranges.is_empty() || ranges.len() > VMM_MAX_MEM_RANGES {
            return Err(Error::BadMemRanges {
                count: ranges.len(),
            });
        }
        let vcp_name =
            c_string::<VMM_MAX_NAME_LEN>(name).ok_or_else(|| Error::BadName(name.to_owned()))?;
        let mut vcp = Self::zeroed();
        vcp.vcp_name = vcp_name;
        vcp.vcp_ncpus = ncpus as u64;
        vcp.vcp_nmemranges = ranges.len() as u64;
        vcp.vcp_memranges[..ranges.len()].copy_from_slice(ranges);
        Ok(vcp)
    }
}

/// An open `/dev/vmm`. All requests go through this handle.
#[derive(Debug)]
pub struct Vmm {
    fd: OwnedFd,
}

impl Vmm {
    /// Opens [`VMM_NODE`] read-write, as vmd's parent does.
    pub fn open() -> Result<Self> {
        Self::open_path(VMM_NODE)
    }

    /// Opens a vmm(4) node at `path`.
    pub fn open_path(path: &str) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self { fd: file.into() })
    }

    /// Wraps a descriptor received from another process (vmd passes the
    /// vmm fd to its children).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// `VMM_IOC_CREATE`: creates the VM and fills in the outputs of
    /// `params` (`vcp_id`, `vcp_asid`, the `vmr_va` of each range).
    /// Returns the new vmm(4) id.
    pub fn create(&self, params: &mut VmCreateParams) -> Result<u32> {
        sys::ioctl(self.fd.as_fd(), "VMM_IOC_CREATE", VMM_IOC_CREATE, params)?;
        Ok(params.vcp_id)
    }

    /// `VMM_IOC_RUN`: runs one vcpu until its next exit. `exit` carries
    /// data for the kernel in (the result of the previous IN) and the new
    /// exit out; `params.vrp_exit_reason` says which exit it was.
    pub fn run(&self, params: &mut VmRunParams, exit: &mut VmExit) -> Result<()> {
        params.vrp_exit = exit as *mut VmExit as u64;
        let result = sys::ioctl(self.fd.as_fd(), "VMM_IOC_RUN", VMM_IOC_RUN, params);
        // Never leave an address behind that could outlive `exit`.
        params.vrp_exit = 0;
        result
    }

    /// `VMM_IOC_TERM`.
    pub fn terminate(&self, vm_id: u32) -> Result<()> {
        let mut vtp = VmTerminateParams { vtp_vm_id: vm_id };
        sys::ioctl(self.fd.as_fd(), "VMM_IOC_TERM", VMM_IOC_TERM, &mut vtp)
    }

    /// `VMM_IOC_INFO`: every VM the kernel knows. Uses the kernel's
    /// two-step protocol: a call with too small a buffer reports the size
    /// needed, the next call fills the buffer. VMs can come and go between
    /// the calls, so it retries a few times.
    pub fn info(&self) -> Result<Vec<VmInfoResult>> {
        let mut buf: Vec<VmInfoResult> = Vec::new();
        for _ in 0..INFO_ATTEMPTS {
            let mut vip = VmInfoParams {
                vip_size: (buf.len() * VmInfoResult::SIZE) as u64,
                vip_info_ct: 0,
                vip_info: buf.as_mut_ptr() as u64,
            };
            sys::ioctl(self.fd.as_fd(), "VMM_IOC_INFO", VMM_IOC_INFO, &mut vip)?;
            match info_step(buf.len(), &vip)? {
                InfoStep::Done(count) => {
                    buf.truncate(count);
                    return Ok(buf);
                }
                InfoStep::Grow(entries) => buf = vec![VmInfoResult::zeroed(); entries],
            }
        }
        Err(Error::InfoRaced)
    }

    /// `VMM_IOC_RESETCPU`: loads `state` into a stopped vcpu.
    pub fn reset_cpu(&self, vm_id: u32, vcpu_id: u32, state: &VcpuRegState) -> Result<()> {
        let mut vrp = VmResetcpuParams {
            vrp_vm_id: vm_id,
            vrp_vcpu_id: vcpu_id,
            vrp_init_state: *state,
        };
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_RESETCPU",
            VMM_IOC_RESETCPU,
            &mut vrp,
        )
    }

    /// `VMM_IOC_INTR`: tells vmm(4) whether an interrupt is pending for the
    /// vcpu, so it exits when the guest opens an interrupt window.
    pub fn intr(&self, vm_id: u32, vcpu_id: u32, pending: u16) -> Result<()> {
        let mut vip = VmIntrParams {
            vip_vm_id: vm_id,
            vip_vcpu_id: vcpu_id,
            vip_intr: pending,
        };
        sys::ioctl(self.fd.as_fd(), "VMM_IOC_INTR", VMM_IOC_INTR, &mut vip)
    }

    /// `VMM_IOC_READREGS`: the register groups in `mask` (`VM_RWREGS_*`).
    pub fn read_regs(&self, vm_id: u32, vcpu_id: u32, mask: u64) -> Result<VcpuRegState> {
        let mut vrwp = VmRwregsParams {
            vrwp_vm_id: vm_id,
            vrwp_vcpu_id: vcpu_id,
            vrwp_mask: mask,
            vrwp_regs: VcpuRegState::zeroed(),
        };
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_READREGS",
            VMM_IOC_READREGS,
            &mut vrwp,
        )?;
        Ok(vrwp.vrwp_regs)
    }

    /// `VMM_IOC_WRITEREGS`: the register groups in `mask` from `regs`.
    pub fn write_regs(
        &self,
        vm_id: u32,
        vcpu_id: u32,
        mask: u64,
        regs: &VcpuRegState,
    ) -> Result<()> {
        let mut vrwp = VmRwregsParams {
            vrwp_vm_id: vm_id,
            vrwp_vcpu_id: vcpu_id,
            vrwp_mask: mask,
            vrwp_regs: *regs,
        };
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_WRITEREGS",
            VMM_IOC_WRITEREGS,
            &mut vrwp,
        )
    }

    /// `VMM_IOC_READVMPARAMS`: the pvclock parameters in `mask`.
    pub fn read_vm_params(
        &self,
        vm_id: u32,
        vcpu_id: u32,
        mask: u32,
    ) -> Result<VmRwvmparamsParams> {
        let mut vpp = VmRwvmparamsParams {
            vpp_vm_id: vm_id,
            vpp_vcpu_id: vcpu_id,
            vpp_mask: mask,
            vpp_pvclock_system_gpa: 0,
            vpp_pvclock_version: 0,
        };
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_READVMPARAMS",
            VMM_IOC_READVMPARAMS,
            &mut vpp,
        )?;
        Ok(vpp)
    }

    /// `VMM_IOC_WRITEVMPARAMS`.
    pub fn write_vm_params(&self, params: &VmRwvmparamsParams) -> Result<()> {
        let mut vpp = *params;
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_WRITEVMPARAMS",
            VMM_IOC_WRITEVMPARAMS,
            &mut vpp,
        )
    }

    /// `VMM_IOC_SHAREMEM`: maps the guest memory of `vm_id` (created by
    /// another process) into this one. Returns where each range landed.
    pub fn share_mem(&self, vm_id: u32, ranges: &[VmMemRange]) -> Result<Vec<u64>> {
        if ranges.is_empty() || ranges.len() > VMM_MAX_MEM_RANGES {
            return Err(Error::BadMemRanges {
                count: ranges.len(),
            });
        }
        let mut vsp = VmSharememParams::zeroed();
        vsp.vsp_vm_id = vm_id;
        vsp.vsp_nmemranges = ranges.len() as u64;
        vsp.vsp_memranges[..ranges.len()].copy_from_slice(ranges);
        sys::ioctl(
            self.fd.as_fd(),
            "VMM_IOC_SHAREMEM",
            VMM_IOC_SHAREMEM,
            &mut vsp,
        )?;
        Ok(vsp.vsp_va[..ranges.len()].to_vec())
    }
}

impl AsFd for Vmm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::VM_MEM_RAM;

    fn ram(gpa: u64, size: u64) -> VmMemRange {
        VmMemRange {
            vmr_gpa: gpa,
            vmr_va: 0,
            vmr_size: size,
            vmr_type: VM_MEM_RAM,
        }
    }

    #[test]
    fn create_params_fill_the_c_fields() {
        let vcp =
            VmCreateParams::new("web1", 2, &[ram(0, 0xa0000), ram(0x100000, 1 << 30)]).unwrap();
        assert_eq!(&vcp.vcp_name[..5], b"web1\0");
        assert_eq!(vcp.vcp_ncpus, 2);
        assert_eq!(vcp.vcp_nmemranges, 2);
        assert_eq!(vcp.vcp_memranges[1].vmr_size, 1 << 30);
        let bytes = vcp.to_bytes();
        assert_eq!(bytes.len(), 2656);
        assert_eq!(&bytes[0..8], &2u64.to_le_bytes()); // vcp_nmemranges
        assert_eq!(&bytes[8..16], &2u64.to_le_bytes()); // vcp_ncpus
        assert_eq!(&bytes[528..532], b"web1"); // vcp_name
    }

    #[test]
    fn create_params_reject_bad_input() {
        let long = "x".repeat(VMM_MAX_NAME_LEN);
        assert!(matches!(
            VmCreateParams::new(&long, 1, &[ram(0, 4096)]),
            Err(Error::BadName(_))
        ));
        assert!(matches!(
            VmCreateParams::new("a", 0, &[ram(0, 4096)]),
            Err(Error::BadVcpuCount(0))
        ));
        assert!(matches!(
            VmCreateParams::new("a", 65, &[ram(0, 4096)]),
            Err(Error::BadVcpuCount(65))
        ));
        assert!(matches!(
            VmCreateParams::new("a", 1, &[]),
            Err(Error::BadMemRanges { count: 0 })
        ));
        let many = vec![ram(0, 4096); 17];
        assert!(matches!(
            VmCreateParams::new("a", 1, &many),
            Err(Error::BadMemRanges { count: 17 })
        ));
    }

    fn reply(size: u64, count: u64) -> VmInfoParams {
        VmInfoParams {
            vip_size: size,
            vip_info_ct: count,
            vip_info: 0,
        }
    }

    #[test]
    fn info_protocol_steps() {
        let one = VmInfoResult::SIZE as u64;
        // No VMs at all: nothing offered, nothing needed.
        assert_eq!(info_step(0, &reply(0, 0)).unwrap(), InfoStep::Done(0));
        // First call: the kernel asks for three entries.
        assert_eq!(info_step(0, &reply(3 * one, 0)).unwrap(), InfoStep::Grow(3));
        // Second call: filled.
        assert_eq!(info_step(3, &reply(3 * one, 3)).unwrap(), InfoStep::Done(3));
        // A VM vanished in between: fewer entries than offered.
        assert_eq!(info_step(3, &reply(3 * one, 2)).unwrap(), InfoStep::Done(2));
        // One appeared: ask again with more room.
        assert_eq!(info_step(3, &reply(4 * one, 0)).unwrap(), InfoStep::Grow(4));
        // Nonsense from the kernel is an error, never an overread or a huge
        // allocation.
        assert!(info_step(3, &reply(3 * one, 4)).is_err());
        assert!(info_step(0, &reply(one + 1, 0)).is_err());
        assert!(info_step(0, &reply(one, 1)).is_err());
        assert!(info_step(0, &reply(u64::MAX - u64::MAX % one, 0)).is_err());
    }

    #[test]
    fn open_missing_node_names_the_path() {
        let err = Vmm::open_path("/nonexistent/vmm").unwrap_err();
        assert!(
            err.to_string().starts_with("cannot open /nonexistent/vmm:"),
            "{err}"
        );
    }

    /// Off OpenBSD every request must fail with `Unsupported`, never touch
    /// the descriptor as if it were vmm(4).
    #[cfg(not(target_os = "openbsd"))]
    #[test]
    fn requests_are_unsupported_off_openbsd() {
        let vmm = Vmm::open_path("/dev/null").unwrap();
        let err = vmm.terminate(1).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    request: "VMM_IOC_TERM"
                }
            ),
            "{err}"
        );
        assert!(matches!(vmm.info(), Err(Error::Unsupported { .. })));
        let mut vrp = VmRunParams::zeroed();
        let mut exit = VmExit::zeroed();
        assert!(vmm.run(&mut vrp, &mut exit).is_err());
        assert_eq!(
            vrp.vrp_exit, 0,
            "the exit pointer must not outlive the call"
        );
    }
}
