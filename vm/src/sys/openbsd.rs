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

/// The hypervisor as the vm process uses it: vmm(4), whose vcpu backend
/// is not written yet.
pub struct Hypervisor;

impl Hypervisor {
    pub fn new(_vmm_fd: RawFd, _mem: &GuestMemory) -> Result<Hypervisor, crate::hv::HvError> {
        Err(crate::hv::HvError::Sys {
            what: "vmm(4) backend",
            source: std::io::Error::from_raw_os_error(libc::ENOSYS),
        })
    }

    pub fn id(&self) -> Option<u32> {
        None
    }

    pub fn create_vcpu(&self) -> Result<Box<dyn crate::hv::Vcpu>, crate::hv::HvError> {
        Err(crate::hv::HvError::Sys {
            what: "vmm(4) backend",
            source: std::io::Error::from_raw_os_error(libc::ENOSYS),
        })
    }
}
