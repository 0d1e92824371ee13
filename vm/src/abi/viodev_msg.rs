//! `struct viodev_msg` (virtio.h): the packed 12-byte message between the
//! vm process and a device child, carried in `IMSG_DEVOP_MSG`.

use vmm_sys::wire_struct;

/// `viodev_msg.type`.
pub const VIODEV_MSG_INVALID: u8 = 0;
pub const VIODEV_MSG_READY: u8 = 1;
pub const VIODEV_MSG_ERROR: u8 = 2;
pub const VIODEV_MSG_KICK: u8 = 3;
pub const VIODEV_MSG_IO_READ: u8 = 4;
pub const VIODEV_MSG_IO_WRITE: u8 = 5;
pub const VIODEV_MSG_DUMP: u8 = 6;
pub const VIODEV_MSG_SHUTDOWN: u8 = 7;

/// `viodev_msg.state`.
pub const INTR_STATE_ASSERT: i8 = 1;
pub const INTR_STATE_NOOP: i8 = 0;
pub const INTR_STATE_DEASSERT: i8 = -1;

wire_struct! {
    /// Packed in C (`__packed`), so no padding: 12 bytes, alignment 1.
    #[repr(C, packed)]
    pub struct ViodevMsg = "viodev_msg" {
        /// `type` in C: `VIODEV_MSG_*`.
        pub msg_type: u8,
        /// Virtio register.
        pub reg: u16,
        /// Size of the IN/OUT access.
        pub io_sz: u8,
        pub vcpu: u8,
        pub irq: u8,
        /// `INTR_STATE_*`.
        pub state: i8,
        pub data: u32,
        /// 1 if `data` is meaningful.
        pub data_valid: u8,
    }
}
