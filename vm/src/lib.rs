//! The vm process: hypervisor backends, the vcpu loop, and the wire
//! structs it shares with vmd and the device children.

pub mod abi;
pub mod device_proc;
pub mod hv;
pub mod interrupts;
pub mod loader;
pub mod log_level;
pub mod machine;
pub mod memory_layout;
mod sys;
pub mod terminate;
pub mod vcpu;
pub mod vm_proc;
