//! vmm(4) request numbers in OpenBSD's `_IOC` encoding
//! (`sys/sys/ioccom.h` 1.4). nix and libc compute Linux numbers on Linux,
//! which differ, so the encoding is done here once.

use core::mem::size_of;

use crate::types::{
    VmCreateParams, VmInfoParams, VmIntrParams, VmResetcpuParams, VmRunParams, VmRwregsParams,
    VmRwvmparamsParams, VmSharememParams, VmTerminateParams,
};

/// Parameter length field: 13 bits.
pub const IOCPARM_MASK: u64 = 0x1fff;
/// No parameters.
pub const IOC_VOID: u64 = 0x2000_0000;
/// Parameters are copied out to user space.
pub const IOC_OUT: u64 = 0x4000_0000;
/// Parameters are copied in from user space.
pub const IOC_IN: u64 = 0x8000_0000;
pub const IOC_INOUT: u64 = IOC_IN | IOC_OUT;

/// OpenBSD's `_IOC(inout, group, num, len)`.
///
/// Panics (at compile time when used in a const) if `len` does not fit the
/// 13-bit length field, where C would silently truncate it.
pub const fn ioc(inout: u64, group: u8, num: u8, len: usize) -> u64 {
    assert!(len as u64 <= IOCPARM_MASK, "ioctl parameter too large");
    inout | ((len as u64 & IOCPARM_MASK) << 16) | ((group as u64) << 8) | num as u64
}

/// `_IO(g, n)`.
pub const fn io(group: u8, num: u8) -> u64 {
    ioc(IOC_VOID, group, num, 0)
}

/// `_IOR(g, n, t)` with `len = sizeof(t)`.
pub const fn ior(group: u8, num: u8, len: usize) -> u64 {
    ioc(IOC_OUT, group, num, len)
}

/// `_IOW(g, n, t)` with `len = sizeof(t)`.
pub const fn iow(group: u8, num: u8, len: usize) -> u64 {
    ioc(IOC_IN, group, num, len)
}

/// `_IOWR(g, n, t)` with `len = sizeof(t)`.
pub const fn iowr(group: u8, num: u8, len: usize) -> u64 {
    ioc(IOC_INOUT, group, num, len)
}

const V: u8 = b'V';

pub const VMM_IOC_CREATE: u64 = iowr(V, 1, size_of::<VmCreateParams>());
pub const VMM_IOC_RUN: u64 = iowr(V, 2, size_of::<VmRunParams>());
pub const VMM_IOC_INFO: u64 = iowr(V, 3, size_of::<VmInfoParams>());
pub const VMM_IOC_TERM: u64 = iow(V, 4, size_of::<VmTerminateParams>());
pub const VMM_IOC_RESETCPU: u64 = iow(V, 5, size_of::<VmResetcpuParams>());
pub const VMM_IOC_INTR: u64 = iow(V, 6, size_of::<VmIntrParams>());
pub const VMM_IOC_READREGS: u64 = iowr(V, 7, size_of::<VmRwregsParams>());
pub const VMM_IOC_WRITEREGS: u64 = iow(V, 8, size_of::<VmRwregsParams>());
pub const VMM_IOC_READVMPARAMS: u64 = iowr(V, 9, size_of::<VmRwvmparamsParams>());
pub const VMM_IOC_WRITEVMPARAMS: u64 = iow(V, 10, size_of::<VmRwvmparamsParams>());
pub const VMM_IOC_SHAREMEM: u64 = iowr(V, 11, size_of::<VmSharememParams>());

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the ioctl table in ABI.md (clang's numbers) must equal
    /// what the const fns compute, and every request must have a row.
    #[test]
    fn ioctl_numbers_match_abi_md() {
        let ours = [
            ("VMM_IOC_CREATE", VMM_IOC_CREATE),
            ("VMM_IOC_RUN", VMM_IOC_RUN),
            ("VMM_IOC_INFO", VMM_IOC_INFO),
            ("VMM_IOC_TERM", VMM_IOC_TERM),
            ("VMM_IOC_RESETCPU", VMM_IOC_RESETCPU),
            ("VMM_IOC_INTR", VMM_IOC_INTR),
            ("VMM_IOC_READREGS", VMM_IOC_READREGS),
            ("VMM_IOC_WRITEREGS", VMM_IOC_WRITEREGS),
            ("VMM_IOC_READVMPARAMS", VMM_IOC_READVMPARAMS),
            ("VMM_IOC_WRITEVMPARAMS", VMM_IOC_WRITEVMPARAMS),
            ("VMM_IOC_SHAREMEM", VMM_IOC_SHAREMEM),
        ];
        let table = crate::abi_md::ioctl_table();
        assert_eq!(table.len(), ours.len(), "ABI.md ioctl rows: {table:?}");
        for (name, value) in ours {
            let (hex, dec) = table
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, h, d)| (*h, *d))
                .unwrap_or_else(|| panic!("{name} missing from ABI.md"));
            assert_eq!(value, hex, "{name}: {value:#x} != ABI.md {hex:#x}");
            assert_eq!(value, dec, "{name}: hex and decimal columns disagree");
        }
    }

    #[test]
    fn encoding_matches_the_bsd_macros() {
        // _IOW('t', 90, int) is TIOCSETD-like: group 't', len 4.
        assert_eq!(iow(b't', 90, 4), 0x8004_745a);
        assert_eq!(ior(b'f', 127, 4), 0x4004_667f); // FIONREAD
        assert_eq!(io(b'f', 1), 0x2000_6601); // FIOCLEX
        assert_eq!(iowr(b'i', 33, 32), 0xc020_6921);
    }
}
