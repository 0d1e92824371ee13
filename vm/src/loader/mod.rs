//! Loading what the VM starts from.

pub mod bios;
