//! Message types on vmd's imsg channels; they live in the vm crate, which
//! shares them with the vm process and the device processes.

pub use vm::abi::imsg_types::*;
