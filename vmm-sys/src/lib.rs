//! The OpenBSD vmm(4) interface for amd64: the `repr(C)` parameter structs,
//! the `VMM_IOC_*` request numbers in OpenBSD's encoding, and a safe
//! [`Vmm`] handle.
//!
//! Everything compiles and is tested on every host; only the system calls
//! in `sys/openbsd.rs` are OpenBSD-only. Layouts are pinned to numbers
//! clang computed from OpenBSD's own headers (`layout.rs`, `ABI.md`).

pub mod consts;
mod error;
pub mod ioctl;
mod layout;
mod sys;
pub mod types;
mod vmm;
pub mod wire;

#[cfg(test)]
mod abi_md;
#[cfg(test)]
mod golden_tests;

pub use error::{Error, Result};
pub use types::*;
pub use vmm::{Vmm, VMM_NODE};
pub use wire::{Wire, WireError};
