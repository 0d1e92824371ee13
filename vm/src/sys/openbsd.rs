//! OpenBSD: device processes map guest memory through vmm(4)
//! (VMM_IOC_SHAREMEM on the `-i` fd), so nothing travels on the channel.

use std::os::fd::RawFd;

use devices::memory::GuestMemory;
use imsg::ImsgBuf;

use crate::device_proc::DeviceProcError;

pub fn send_guest_memory(_sync: &mut ImsgBuf, _mem: &GuestMemory) -> Result<(), DeviceProcError> {
    Ok(())
}

pub fn receive_guest_memory(
    _sync: &mut ImsgBuf,
    _vmm_fd: RawFd,
) -> Result<GuestMemory, DeviceProcError> {
    Err(DeviceProcError::Memory(
        "sharing guest memory through VMM_IOC_SHAREMEM is not implemented yet".into(),
    ))
}

/// The hypervisor as the vm process uses it: vmm(4), on the /dev/vmm
/// handle vmm passed as `-i`.
pub struct Hypervisor(crate::hv::vmm::VmmVm);

impl Hypervisor {
    pub fn new(
        vmm_fd: RawFd,
        name: &str,
        mem: &GuestMemory,
    ) -> Result<Hypervisor, crate::hv::HvError> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let vmm = if vmm_fd < 0 {
            vmm_sys::Vmm::open().map_err(|e| crate::hv::HvError::Sys {
                what: "/dev/vmm",
                source: std::io::Error::other(e.to_string()),
            })?
        } else {
            // SAFETY: F_GETFD only inspects the fd table.
            if unsafe { libc::fcntl(vmm_fd, libc::F_GETFD) } == -1 {
                return Err(crate::hv::HvError::Sys {
                    what: "/dev/vmm fd",
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: the fd is open and was passed to this process as its
            // /dev/vmm handle; nothing else here owns it.
            vmm_sys::Vmm::from_fd(unsafe { OwnedFd::from_raw_fd(vmm_fd) })
        };
        crate::hv::vmm::VmmVm::new(vmm, name, mem).map(Hypervisor)
    }

    /// vmm(4)'s id for the VM, which vmd reports as the VM's.
    pub fn id(&self) -> Option<u32> {
        Some(self.0.id())
    }

    pub fn create_vcpu(&self) -> Result<Box<dyn crate::hv::Vcpu>, crate::hv::HvError> {
        Ok(Box::new(self.0.create_vcpu()))
    }
}
