//! vmd's own cross-process structs, with the OpenBSD/amd64 layout on every
//! host: C and Rust vmd processes exchange them as raw bytes over imsg and
//! socketpairs. Each type implements [`vmm_sys::Wire`] (`to_bytes` /
//! `from_bytes`, little-endian, zeroed padding). Layouts are pinned to
//! clang's numbers in `layout.rs`; vmm-sys/ABI.md documents them.

pub mod cstate;
pub mod imsg_types;
mod layout;
pub mod local_prefix;
pub mod viodev_msg;
pub mod virtio_dev;
pub mod vmd_config;
pub mod vmd_vm;
pub mod vmop;

#[cfg(test)]
mod golden_tests;

pub use cstate::{Event, ImsgBuf, ImsgEv, Timeval, VirtioBacking, VmDevPipe};
pub use local_prefix::LocalPrefix;
pub use viodev_msg::ViodevMsg;
pub use virtio_dev::{
    VioblkDev, VionetDev, VioscsiDev, VirtioDev, VirtioDevUnion, VirtioIoCfg, VirtioPciCommonCfg,
    VirtioVqInfo, VmmciDev,
};
pub use vmd_config::{VmdAgentx, VmdConfig};
pub use vmd_vm::{VmdIf, VmdVm};
pub use vmop::{VmopCreateParams, VmopId, VmopInfoResult, VmopOwner, VmopResult};

/// OpenBSD's `PATH_MAX`.
pub const PATH_MAX: usize = 1024;
/// OpenBSD's `IF_NAMESIZE`.
pub const IF_NAMESIZE: usize = 16;
/// vmd.h limits.
pub const VM_NAME_MAX: usize = 64;
pub const VM_MAX_BASE_PER_DISK: usize = 4;
pub const VM_TTYNAME_MAX: usize = 16;
pub const VM_MAX_DISKS_PER_VM: usize = 4;
pub const VM_MAX_NICS_PER_VM: usize = 4;
