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
