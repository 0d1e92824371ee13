//! Port I/O: the access sizes x86 `in`/`out` use, and the trait every
//! port-mapped device implements.

use std::fmt;

/// The width of one port access. Anything else a guest could encode is
/// rejected before it reaches a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessSize {
    Byte,
    Word,
    Dword,
}

impl AccessSize {
    /// Parses a width in bytes (1, 2 or 4).
    pub fn from_len(len: usize) -> Option<AccessSize> {
        match len {
            1 => Some(AccessSize::Byte),
            2 => Some(AccessSize::Word),
            4 => Some(AccessSize::Dword),
            _ => None,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            AccessSize::Byte => 1,
            AccessSize::Word => 2,
            AccessSize::Dword => 4,
        }
    }

    /// The bits an access of this width carries.
    pub fn mask(self) -> u32 {
        match self {
            AccessSize::Byte => 0xff,
            AccessSize::Word => 0xffff,
            AccessSize::Dword => 0xffff_ffff,
        }
    }
}

impl fmt::Display for AccessSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-byte", self.bytes())
    }
}

/// A device reached through x86 port I/O.
///
/// `port` is the absolute port number the guest used, so a device that
/// spans several ports decodes the offset itself. A read returns the value
/// in the low bits (masked to the access size by the bus); unimplemented
/// registers read as all ones, as on real hardware with nothing behind the
/// port.
pub trait PortIoDevice: Send {
    fn port_read(&mut self, port: u16, size: AccessSize) -> u32;
    fn port_write(&mut self, port: u16, size: AccessSize, value: u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_sizes_round_trip() {
        for len in [1, 2, 4] {
            assert_eq!(AccessSize::from_len(len).unwrap().bytes(), len);
        }
        for len in [0, 3, 5, 8] {
            assert!(AccessSize::from_len(len).is_none());
        }
        assert_eq!(AccessSize::Word.mask(), 0xffff);
    }
}
