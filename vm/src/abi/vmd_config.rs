//! `struct vmd_config` (vmd.h): the global settings from vm.conf that the
//! parent sends every child in IMSG_VMDOP_CONFIG, at start and on reload.
//! The agentx process takes its master socket and context from it.

use vmm_sys::wire_struct;

use super::cstate::Timeval;
use super::local_prefix::LocalPrefix;

/// `sizeof(((struct sockaddr_un *)0)->sun_path)` on OpenBSD.
pub const SUN_PATH_LEN: usize = 104;
/// SNMP-VIEW-BASED-ACM-MIB's vacmContextName (32 octets) plus its NUL.
pub const AGENTX_CONTEXT_LEN: usize = 33;

/// `cfg_flags`: `local inet6`.
pub const VMD_CFG_INET6: u32 = 0x01;
/// `cfg_flags`: the IPv6 prefix is vmd's random one.
pub const VMD_CFG_AUTOINET6: u32 = 0x02;
/// `cfg_flags`: vm.conf sets `staggered start`.
pub const VMD_CFG_STAGGERED_START: u32 = 0x04;

wire_struct! {
    /// `struct vmd_agentx`: vm.conf's `agentx` line.
    #[repr(C)]
    pub struct VmdAgentx = "vmd_agentx" {
        /// Non-zero when vm.conf has an `agentx` line.
        pub ax_enabled: i32,
        /// The master's socket, NUL-terminated.
        pub ax_path: [u8; SUN_PATH_LEN],
        /// The SNMP context, empty for the default context.
        pub ax_context: [u8; AGENTX_CONTEXT_LEN],
    }
}

wire_struct! {
    /// `struct vmd_config`.
    #[repr(C)]
    pub struct VmdConfig = "vmd_config" {
        /// `VMD_CFG_*`.
        pub cfg_flags: u32,
        /// `staggered start ... delay`.
        pub delay: Timeval,
        /// `staggered start parallel`.
        pub parallelism: i32,
        pub cfg_localprefix: LocalPrefix,
        pub cfg_agentx: VmdAgentx,
    }
}
