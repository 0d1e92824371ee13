//! OpenBSD: device processes map guest memory through vmm(4)
//! (VMM_IOC_SHAREMEM on the `-i` fd), so nothing travels on the channel.

use std::os::fd::{BorrowedFd, RawFd};

use devices::memory::GuestMemory;
use imsg::ImsgBuf;

use crate::abi::vmd_vm::VmdVm;
use crate::device_proc::sharemem::{adopt_list, shared_ranges};
use crate::device_proc::DeviceProcError;

pub fn send_guest_memory(_sync: &mut ImsgBuf, _mem: &GuestMemory) -> Result<(), DeviceProcError> {
    Ok(())
}

/// Maps the VM's memory into this device process as vmd's
/// remap_guest_mem does: VMM_IOC_SHAREMEM on the `-i` /dev/vmm handle,
/// for vmm(4)'s VM `vm.vm_vmmid` and the ranges the vm process created it
/// with; the kernel picks where each range lands.
pub fn receive_guest_memory(
    _sync: &mut ImsgBuf,
    vmm_fd: RawFd,
    vm: &VmdVm,
) -> Result<GuestMemory, DeviceProcError> {
    let ranges = shared_ranges(vm)?;
    if vmm_fd < 0 {
        return Err(DeviceProcError::Memory("no /dev/vmm handle (-i)".into()));
    }
    // SAFETY: vmm_fd is the /dev/vmm handle this process was started with;
    // borrowed only for the ioctl.
    let fd = unsafe { BorrowedFd::borrow_raw(vmm_fd) };
    let owned = fd
        .try_clone_to_owned()
        .map_err(DeviceProcError::io("dup /dev/vmm handle"))?;
    let vmm = vmm_sys::Vmm::from_fd(owned);
    let vas = vmm
        .share_mem(vm.vm_vmmid, &ranges)
        .map_err(|e| DeviceProcError::Memory(format!("VMM_IOC_SHAREMEM: {e}")))?;
    let mappings = adopt_list(&ranges, &vas)?;
    // SAFETY: vmm(4) just mapped each range, of its size, at these
    // addresses in this process; nothing else knows of them.
    unsafe { GuestMemory::adopt_mappings(mappings) }
        .map_err(|e| DeviceProcError::Memory(e.to_string()))
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
