//! Port I/O: the access sizes x86 `in`/`out` use, and the trait every
//! port-mapped device implements.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// A shareable port device: one device may answer several port ranges.
pub type SharedPortDevice = Arc<Mutex<dyn PortIoDevice>>;

/// Why a device could not be placed on the bus.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("port range 0x{base:x}+{len} is empty or wraps past 0xffff")]
    BadRange { base: u16, len: u32 },
    #[error("port range 0x{base:x}+{len} overlaps 0x{other:x}")]
    Overlap { base: u16, len: u32, other: u16 },
}

struct PortRange {
    base: u16,
    /// Last port, inclusive, so 0xffff fits.
    last: u16,
    device: SharedPortDevice,
}

/// Routes port I/O to the device that owns the port: the vcpu loop calls
/// [`PortBus::read`] / [`PortBus::write`] on every I/O exit.
///
/// Ports nobody claims go to the fallback device if there is one (the PCI
/// bus, whose BARs the guest may move), else read as all ones and ignore
/// writes, as on real hardware.
#[derive(Default)]
pub struct PortBus {
    ranges: Vec<PortRange>,
    fallback: Option<SharedPortDevice>,
}

fn lock(d: &SharedPortDevice) -> MutexGuard<'_, dyn PortIoDevice + 'static> {
    // A device that panicked mid-access is still the best we have;
    // panics abort in release builds anyway.
    d.lock().unwrap_or_else(|e| e.into_inner())
}

impl PortBus {
    pub fn new() -> PortBus {
        PortBus::default()
    }

    /// Gives `device` the ports `base .. base + len`.
    pub fn insert(
        &mut self,
        base: u16,
        len: u32,
        device: SharedPortDevice,
    ) -> Result<(), BusError> {
        let last = u32::from(base) + len.saturating_sub(1);
        if len == 0 || last > 0xffff {
            return Err(BusError::BadRange { base, len });
        }
        let last = last as u16;
        if let Some(o) = self
            .ranges
            .iter()
            .find(|r| base <= r.last && r.base <= last)
        {
            return Err(BusError::Overlap {
                base,
                len,
                other: o.base,
            });
        }
        let at = self.ranges.partition_point(|r| r.base < base);
        self.ranges.insert(at, PortRange { base, last, device });
        Ok(())
    }

    /// Sends unclaimed ports to `device`.
    pub fn set_fallback(&mut self, device: SharedPortDevice) {
        self.fallback = Some(device);
    }

    fn find(&self, port: u16) -> Option<&SharedPortDevice> {
        let at = self.ranges.partition_point(|r| r.base <= port);
        match at.checked_sub(1).map(|i| &self.ranges[i]) {
            Some(r) if port <= r.last => Some(&r.device),
            _ => self.fallback.as_ref(),
        }
    }

    /// An `in` instruction: the value, masked to the access size.
    pub fn read(&self, port: u16, size: AccessSize) -> u32 {
        match self.find(port) {
            Some(d) => lock(d).port_read(port, size) & size.mask(),
            None => size.mask(),
        }
    }

    /// An `out` instruction; the value is masked to the access size.
    pub fn write(&self, port: u16, size: AccessSize, value: u32) {
        if let Some(d) = self.find(port) {
            lock(d).port_write(port, size, value & size.mask());
        }
    }
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

    struct Echo(u16);
    impl PortIoDevice for Echo {
        fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
            0xabcd_0000 | u32::from(port - self.0)
        }
        fn port_write(&mut self, port: u16, _size: AccessSize, value: u32) {
            self.0 = port.wrapping_add(value as u16);
        }
    }

    #[test]
    fn port_bus_routes_ranges_masks_and_falls_back() {
        let mut bus = PortBus::new();
        bus.insert(0x40, 4, Arc::new(Mutex::new(Echo(0x40))))
            .unwrap();
        bus.insert(0xfff0, 0x10, Arc::new(Mutex::new(Echo(0xfff0))))
            .unwrap();
        assert_eq!(bus.read(0x42, AccessSize::Dword), 0xabcd_0002);
        assert_eq!(bus.read(0x42, AccessSize::Byte), 0x02);
        assert_eq!(bus.read(0xffff, AccessSize::Word), 0x000f);
        // Unclaimed ports float high.
        assert_eq!(bus.read(0x44, AccessSize::Word), 0xffff);
        assert_eq!(bus.read(0x3f, AccessSize::Dword), 0xffff_ffff);
        bus.set_fallback(Arc::new(Mutex::new(Echo(0))));
        assert_eq!(bus.read(0x1234, AccessSize::Word), 0x1234);
        // Overlaps and impossible ranges are refused.
        let e = Arc::new(Mutex::new(Echo(0)));
        assert!(matches!(
            bus.insert(0x43, 2, e.clone()),
            Err(BusError::Overlap { other: 0x40, .. })
        ));
        assert!(bus.insert(0x3c, 5, e.clone()).is_err());
        assert!(bus.insert(0x10, 0, e.clone()).is_err());
        assert!(bus.insert(0xfff0, 0x11, e.clone()).is_err());
        bus.insert(0x3c, 4, e).unwrap();
    }
}
