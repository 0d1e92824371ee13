//! The platform-independent half of sharing guest memory through vmm(4)'s
//! VMM_IOC_SHAREMEM: which ranges to ask for, and checking what the kernel
//! answers, so both can be tested on any host.

use std::ptr::NonNull;

use devices::memory::MemoryRange;
use vmm_sys::types::VmMemRange;

use super::DeviceProcError;
use crate::abi::vmd_vm::VmdVm;

/// The ranges vmd asks vmm(4) to share: the VM's creation ranges, as
/// remap_guest_mem copies them from the vm parameters.
pub fn shared_ranges(vm: &VmdVm) -> Result<Vec<VmMemRange>, DeviceProcError> {
    let n = usize::try_from(vm.vm_params.vmc_nmemranges).unwrap_or(usize::MAX);
    let all = &vm.vm_params.vmc_memranges;
    if n == 0 || n > all.len() {
        return Err(DeviceProcError::Memory(format!(
            "vm has {n} memory ranges (1 to {} allowed)",
            all.len()
        )));
    }
    Ok(all[..n].to_vec())
}

/// Pairs each range with the address vmm(4) mapped it at; refuses a null
/// or unaligned address and sizes that do not fit this process.
pub fn adopt_list(
    ranges: &[VmMemRange],
    vas: &[u64],
) -> Result<Vec<(MemoryRange, NonNull<u8>)>, DeviceProcError> {
    if vas.len() != ranges.len() {
        return Err(DeviceProcError::Memory(format!(
            "VMM_IOC_SHAREMEM returned {} addresses for {} ranges",
            vas.len(),
            ranges.len()
        )));
    }
    ranges
        .iter()
        .zip(vas)
        .map(|(r, &va)| {
            let size = usize::try_from(r.vmr_size)
                .map_err(|_| DeviceProcError::Memory(format!("range size {:#x}", r.vmr_size)))?;
            let host = usize::try_from(va)
                .ok()
                .filter(|va| va % 4096 == 0)
                .and_then(|va| NonNull::new(va as *mut u8))
                .ok_or_else(|| {
                    DeviceProcError::Memory(format!(
                        "range at {:#x} shared at unusable address {va:#x}",
                        r.vmr_gpa
                    ))
                })?;
            Ok((MemoryRange::new(r.vmr_gpa, size), host))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys::Wire;

    fn vm_with(ranges: &[(u64, u64)]) -> VmdVm {
        let mut vm = VmdVm::zeroed();
        vm.vm_params.vmc_nmemranges = ranges.len() as u64;
        for (i, &(gpa, size)) in ranges.iter().enumerate() {
            vm.vm_params.vmc_memranges[i].vmr_gpa = gpa;
            vm.vm_params.vmc_memranges[i].vmr_size = size;
        }
        vm
    }

    #[test]
    fn asks_for_the_creation_ranges() {
        let vm = vm_with(&[(0, 0xa0000), (0x100000, 0x3f00000)]);
        let r = shared_ranges(&vm).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].vmr_gpa, r[1].vmr_size), (0x100000, 0x3f00000));
        assert!(shared_ranges(&vm_with(&[])).is_err());
        let mut bad = vm_with(&[(0, 0x1000)]);
        bad.vm_params.vmc_nmemranges = 1000;
        assert!(shared_ranges(&bad).is_err());
    }

    #[test]
    fn checks_what_the_kernel_answers() {
        let vm = vm_with(&[(0, 0xa0000), (0x100000, 0x3f00000)]);
        let r = shared_ranges(&vm).unwrap();
        let ok = adopt_list(&r, &[0x7f00_0000_0000, 0x7f10_0000_0000]).unwrap();
        assert_eq!(ok[1].0, MemoryRange::new(0x100000, 0x3f00000));
        assert_eq!(ok[1].1.as_ptr() as u64, 0x7f10_0000_0000);
        assert!(adopt_list(&r, &[0x7f00_0000_0000]).is_err());
        assert!(adopt_list(&r, &[0, 0x7f10_0000_0000]).is_err());
        assert!(adopt_list(&r, &[0x7f00_0000_0010, 0x7f10_0000_0000]).is_err());
    }
}
