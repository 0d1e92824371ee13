//! Message types on vmd's imsg channels, numbered exactly as the C vmd
//! (proc.h 1.29 and vmd.h, 2025), so C and Rust processes understand each
//! other.

pub const IMSG_CTL_OK: u32 = 0;
pub const IMSG_CTL_FAIL: u32 = 1;
pub const IMSG_CTL_VERBOSE: u32 = 2;
pub const IMSG_CTL_RESET: u32 = 3;
/// First vmd-specific type (IMSG_PROC_MAX).
pub const IMSG_PROC_MAX: u32 = 4;

pub const IMSG_VMDOP_START_VM_REQUEST: u32 = IMSG_PROC_MAX;
pub const IMSG_VMDOP_START_VM_CDROM: u32 = IMSG_PROC_MAX + 1;
pub const IMSG_VMDOP_START_VM_DISK: u32 = IMSG_PROC_MAX + 2;
pub const IMSG_VMDOP_START_VM_IF: u32 = IMSG_PROC_MAX + 3;
pub const IMSG_VMDOP_START_VM_END: u32 = IMSG_PROC_MAX + 4;
pub const IMSG_VMDOP_START_VM_RESPONSE: u32 = IMSG_PROC_MAX + 5;
pub const IMSG_VMDOP_PAUSE_VM: u32 = IMSG_PROC_MAX + 6;
pub const IMSG_VMDOP_PAUSE_VM_RESPONSE: u32 = IMSG_PROC_MAX + 7;
pub const IMSG_VMDOP_UNPAUSE_VM: u32 = IMSG_PROC_MAX + 8;
pub const IMSG_VMDOP_UNPAUSE_VM_RESPONSE: u32 = IMSG_PROC_MAX + 9;
pub const IMSG_VMDOP_WAIT_VM_REQUEST: u32 = IMSG_PROC_MAX + 10;
pub const IMSG_VMDOP_TERMINATE_VM_REQUEST: u32 = IMSG_PROC_MAX + 11;
pub const IMSG_VMDOP_TERMINATE_VM_RESPONSE: u32 = IMSG_PROC_MAX + 12;
pub const IMSG_VMDOP_TERMINATE_VM_EVENT: u32 = IMSG_PROC_MAX + 13;
pub const IMSG_VMDOP_GET_INFO_VM_REQUEST: u32 = IMSG_PROC_MAX + 14;
pub const IMSG_VMDOP_GET_INFO_VM_DATA: u32 = IMSG_PROC_MAX + 15;
pub const IMSG_VMDOP_GET_INFO_VM_END_DATA: u32 = IMSG_PROC_MAX + 16;
pub const IMSG_VMDOP_LOAD: u32 = IMSG_PROC_MAX + 17;
pub const IMSG_VMDOP_RECEIVE_VMM_FD: u32 = IMSG_PROC_MAX + 18;
pub const IMSG_VMDOP_RECEIVE_PSP_FD: u32 = IMSG_PROC_MAX + 19;
pub const IMSG_VMDOP_RELOAD: u32 = IMSG_PROC_MAX + 20;
pub const IMSG_VMDOP_PRIV_IFDESCR: u32 = IMSG_PROC_MAX + 21;
pub const IMSG_VMDOP_PRIV_IFADD: u32 = IMSG_PROC_MAX + 22;
pub const IMSG_VMDOP_PRIV_IFEXISTS: u32 = IMSG_PROC_MAX + 23;
pub const IMSG_VMDOP_PRIV_IFUP: u32 = IMSG_PROC_MAX + 24;
pub const IMSG_VMDOP_PRIV_IFDOWN: u32 = IMSG_PROC_MAX + 25;
pub const IMSG_VMDOP_PRIV_IFGROUP: u32 = IMSG_PROC_MAX + 26;
pub const IMSG_VMDOP_PRIV_IFADDR: u32 = IMSG_PROC_MAX + 27;
pub const IMSG_VMDOP_PRIV_IFADDR6: u32 = IMSG_PROC_MAX + 28;
pub const IMSG_VMDOP_PRIV_IFRDOMAIN: u32 = IMSG_PROC_MAX + 29;
pub const IMSG_VMDOP_PRIV_GET_ADDR: u32 = IMSG_PROC_MAX + 30;
pub const IMSG_VMDOP_PRIV_GET_ADDR_RESPONSE: u32 = IMSG_PROC_MAX + 31;
pub const IMSG_VMDOP_VM_SHUTDOWN: u32 = IMSG_PROC_MAX + 32;
pub const IMSG_VMDOP_VM_REBOOT: u32 = IMSG_PROC_MAX + 33;
pub const IMSG_VMDOP_CONFIG: u32 = IMSG_PROC_MAX + 34;
pub const IMSG_VMDOP_DONE: u32 = IMSG_PROC_MAX + 35;
pub const IMSG_DEVOP_HOSTMAC: u32 = IMSG_PROC_MAX + 36;
pub const IMSG_DEVOP_MSG: u32 = IMSG_PROC_MAX + 37;
pub const IMSG_DEVOP_VIONET_MSG: u32 = IMSG_PROC_MAX + 38;

/// Sizes of the request payloads the control process accepts, from the
/// OpenBSD/amd64 layouts: `struct vmop_id` (id, name[64], uid, flags).
pub const VMOP_ID_SIZE: usize = 4 + 64 + 4 + 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_matches_vmd_h() {
        // Spot checks against the enum's positions in vmd.h (2025).
        assert_eq!(IMSG_VMDOP_START_VM_REQUEST, 4);
        assert_eq!(IMSG_VMDOP_GET_INFO_VM_REQUEST, 18);
        assert_eq!(IMSG_VMDOP_GET_INFO_VM_END_DATA, 20);
        assert_eq!(IMSG_VMDOP_DONE, 39);
        assert_eq!(IMSG_DEVOP_MSG, 41);
    }
}
