//! Loading what the VM starts from: a BIOS image, or an OpenBSD kernel
//! with the boot arguments /boot would have passed.

pub mod bios;
pub mod bootargs;
pub mod elf;
