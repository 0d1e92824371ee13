//! Device models for vmd.
//!
//! Nothing here knows about processes, hypervisors or sockets. A device gets a
//! register access (a port read or write) or a queue notification, and acts
//! through the small interfaces in [`bus`], [`irq`] and [`clock`], which the
//! vm process implements on top of the real hypervisor. Guest memory is
//! reached only through [`memory::GuestMemory`].

pub mod bus;
pub mod clock;
pub mod dhcp;
pub mod disk;
pub mod fw_cfg;
pub mod i8253;
pub mod i8259;
pub mod irq;
pub mod mc146818;
pub mod memory;
pub mod ns8250;
pub mod pci;
pub mod smbios;
pub mod sys;
pub mod virtio;
