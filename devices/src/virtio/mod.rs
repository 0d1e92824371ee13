//! Virtio: split virtqueues, the PCI transport, and the in-process devices.
//!
//! A virtio device is a [`VirtioPci`] transport (the registers the guest
//! programs) wrapped around a small [`VirtioDevice`] model (its type,
//! features, configuration space and what a queue notification does).

pub mod blk;
pub mod chain;
pub mod net;
pub mod pci;
pub mod queue;
pub mod rnd;
pub mod scsi;
pub mod vmmci;

pub use chain::{Chain, ChainError, ChainReader, ChainWriter, Descriptor};
pub use pci::{attach, Layout, VirtioPci};
pub use queue::{Queue, QueueError};

use crate::bus::AccessSize;
use crate::memory::GuestMemory;

/// The device speaks virtio 1.x.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Indirect descriptor tables.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;

/// Device status bits.
pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FEATURES_OK: u8 = 8;
pub const STATUS_DEVICE_NEEDS_RESET: u8 = 0x40;
pub const STATUS_FAILED: u8 = 0x80;

/// ISR bits: a queue was used / the configuration changed.
pub const ISR_QUEUE: u8 = 1;
pub const ISR_CONFIG_CHANGE: u8 = 2;

/// What the MSI-X vector registers read back: we have no MSI-X.
pub const VIRTIO_MSI_NO_VECTOR: u16 = 0xffff;

/// Virtio device types, which vmd also uses as PCI subsystem IDs
/// (PCI_PRODUCT_VIRTIO_*).
pub const DEVICE_NETWORK: u16 = 1;
pub const DEVICE_BLOCK: u16 = 2;
pub const DEVICE_ENTROPY: u16 = 4;
pub const DEVICE_SCSI: u16 = 8;
pub const DEVICE_VMMCI: u16 = 0xffff;

/// One device model behind a [`VirtioPci`] transport.
pub trait VirtioDevice: Send {
    /// The virtio device type (`DEVICE_*`).
    fn device_type(&self) -> u16;

    /// Feature bits offered to the driver.
    fn features(&self) -> u64;

    /// The maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// Reads the device-specific configuration space at `offset`.
    /// Without one, reads are all ones.
    fn read_config(&mut self, offset: u16, size: AccessSize) -> u32 {
        let _ = (offset, size);
        u32::MAX
    }

    /// Writes the device-specific configuration space.
    fn write_config(&mut self, offset: u16, size: AccessSize, value: u32) {
        let _ = (offset, size, value);
    }

    /// The driver kicked queue `index`. Serve what is available and return
    /// true if buffers were used (the transport then raises the interrupt,
    /// unless the driver suppressed it).
    fn queue_notify(&mut self, index: u16, queue: &mut Queue, mem: &GuestMemory) -> bool;

    /// Queues (a bit per index) that have new device-side work after the
    /// last notification, e.g. a reply to deliver on another queue.
    fn take_pending_queues(&mut self) -> u64 {
        0
    }

    /// The driver wrote status 0: forget per-driver state.
    fn reset(&mut self) {}
}
