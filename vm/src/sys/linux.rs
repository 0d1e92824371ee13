//! Linux: device processes get guest memory as memfds, sent as imsgs on
//! the sync channel right after the raw structs (vmm(4) hosts use
//! VMM_IOC_SHAREMEM instead).

use std::os::fd::{FromRawFd, RawFd};

use devices::memory::{GuestMemory, MemoryRange};
use imsg::ImsgBuf;

use crate::abi::vmd_vm::VmdVm;
use crate::device_proc::DeviceProcError;

/// Private to Linux vmd: first the number of ranges, then one message per
/// range with its memfd. Far above the C vmd's numbers.
pub const IMSG_GUEST_MEMORY_COUNT: u32 = 0x6d65_6d00;
pub const IMSG_GUEST_MEMORY_RANGE: u32 = 0x6d65_6d01;
/// vmm(4)'s limit on memory ranges.
const MAX_RANGES: u32 = 16;

pub fn send_guest_memory(sync: &mut ImsgBuf, mem: &GuestMemory) -> Result<(), DeviceProcError> {
    let regions: Vec<_> = mem.regions().collect();
    sync.compose(
        IMSG_GUEST_MEMORY_COUNT,
        0,
        0,
        None,
        &(regions.len() as u32).to_le_bytes(),
    )
    .map_err(DeviceProcError::imsg("send guest memory"))?;
    for r in &regions {
        let fd =
            r.fd.ok_or_else(|| DeviceProcError::Memory("guest memory without a file".into()))?
                .try_clone_to_owned()
                .map_err(DeviceProcError::io("dup guest memory fd"))?;
        let mut payload = [0u8; 24];
        payload[..8].copy_from_slice(&r.range.guest_addr.to_le_bytes());
        payload[8..16].copy_from_slice(&(r.range.size as u64).to_le_bytes());
        payload[16..].copy_from_slice(&r.fd_offset.to_le_bytes());
        sync.compose(IMSG_GUEST_MEMORY_RANGE, 0, 0, Some(fd), &payload)
            .map_err(DeviceProcError::imsg("send guest memory"))?;
    }
    sync.flush()
        .map_err(DeviceProcError::imsg("send guest memory"))
}

fn read_msg(sync: &mut ImsgBuf) -> Result<imsg::Imsg, DeviceProcError> {
    sync.read_one()
        .map_err(DeviceProcError::imsg("receive guest memory"))?
        .ok_or_else(|| DeviceProcError::Memory("channel closed before guest memory arrived".into()))
}

/// Maps the guest memory the vm process sent. `_vmm_fd` and `_vm` are
/// for vmm(4) hosts.
pub fn receive_guest_memory(
    sync: &mut ImsgBuf,
    _vmm_fd: RawFd,
    _vm: &VmdVm,
) -> Result<GuestMemory, DeviceProcError> {
    let first = read_msg(sync)?;
    if first.type_() != IMSG_GUEST_MEMORY_COUNT {
        return Err(DeviceProcError::Memory(format!(
            "expected the guest memory count, got imsg type {}",
            first.type_()
        )));
    }
    let count = u32::from_le_bytes(
        first
            .data_exact(4)
            .map_err(DeviceProcError::imsg("guest memory count"))?
            .try_into()
            .unwrap_or_default(),
    );
    if count == 0 || count > MAX_RANGES {
        return Err(DeviceProcError::Memory(format!(
            "{count} memory ranges (1 to {MAX_RANGES})"
        )));
    }
    let mut ranges = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut m = read_msg(sync)?;
        if m.type_() != IMSG_GUEST_MEMORY_RANGE {
            return Err(DeviceProcError::Memory(format!(
                "expected a guest memory range, got imsg type {}",
                m.type_()
            )));
        }
        let p = m
            .data_exact(24)
            .map_err(DeviceProcError::imsg("guest memory range"))?;
        let word = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap_or_default());
        let (gpa, size, offset) = (word(0), word(8), word(16));
        let size = usize::try_from(size)
            .map_err(|_| DeviceProcError::Memory(format!("range at {gpa:#x}: size {size}")))?;
        let fd = m.take_fd().ok_or_else(|| {
            DeviceProcError::Memory(format!("range at {gpa:#x} came without its fd"))
        })?;
        ranges.push((MemoryRange::new(gpa, size), fd, offset));
    }
    GuestMemory::from_fds(ranges).map_err(|e| DeviceProcError::Memory(e.to_string()))
}

/// The hypervisor as the vm process uses it: KVM here.
pub struct Hypervisor(crate::hv::kvm::KvmVm);

impl Hypervisor {
    /// The VM, on the /dev/kvm handle `kvm_fd` if there is one (vmm passes
    /// it as `-i`), else on a /dev/kvm opened here.
    pub fn new(
        kvm_fd: RawFd,
        _name: &str,
        mem: &GuestMemory,
    ) -> Result<Hypervisor, crate::hv::HvError> {
        if kvm_fd < 0 {
            return crate::hv::kvm::KvmVm::new(mem).map(Hypervisor);
        }
        // SAFETY: F_GETFD only inspects the fd table.
        if unsafe { libc::fcntl(kvm_fd, libc::F_GETFD) } == -1 {
            return Err(crate::hv::HvError::Sys {
                what: "/dev/kvm fd",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: the fd is open and was passed to this process as its
        // /dev/kvm handle; nothing else here owns it.
        let kvm = unsafe { kvm_ioctls::Kvm::from_raw_fd(kvm_fd) };
        crate::hv::kvm::KvmVm::with_kvm(kvm, mem).map(Hypervisor)
    }

    /// The hypervisor's own id for the VM; KVM has none.
    pub fn id(&self) -> Option<u32> {
        None
    }

    pub fn create_vcpu(&self) -> Result<Box<dyn crate::hv::Vcpu>, crate::hv::HvError> {
        Ok(Box::new(self.0.create_vcpu(0)?))
    }
}
