//! A split virtqueue as the device sees it.
//!
//! The driver programs the queue through the transport: in virtio 1.x it
//! writes separate descriptor/avail/used addresses and may shrink the size;
//! in virtio 0.9 it writes one page frame number and the three parts follow
//! each other at fixed offsets, with the size fixed by the device.
//!
//! Nothing the guest wrote is trusted: [`Queue::pop`] refuses a queue whose
//! rings are not in guest memory, an avail index more than the queue size
//! ahead of us, and (through [`Chain::parse`]) any malformed chain. A bad
//! chain is handed back on the used ring with length 0 and logged (rate
//! limited), and the queue carries on with the next one.

use std::num::Wrapping;
use std::sync::atomic::Ordering;

use super::chain::{Chain, ChainError, DESC_SIZE};
use crate::memory::{fence_acquire, fence_full, fence_release, GuestMemory, MemoryError};

/// Page size of the virtio 0.9 queue layout.
pub const VIRTIO_PAGE_SIZE: u64 = 4096;
/// The driver does not want an interrupt when we use a buffer.
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Largest queue any device offers (IOV_MAX, as the C vmd).
pub const VIRTIO_QUEUE_SIZE_MAX: u16 = 1024;

/// Bytes of the descriptor table, avail ring and used ring for `size` entries.
fn ring_sizes(size: u16) -> (u64, u64, u64) {
    let n = u64::from(size);
    (DESC_SIZE * n, 4 + 2 * n + 2, 4 + 8 * n + 2)
}

fn align_page(n: u64) -> u64 {
    n.div_ceil(VIRTIO_PAGE_SIZE) * VIRTIO_PAGE_SIZE
}

/// Total bytes of a 0.9 ring of `size` entries (vring_size in the C vmd).
pub fn legacy_ring_size(size: u16) -> u64 {
    let n = u64::from(size);
    align_page(DESC_SIZE * n + 2 * (2 + n)) + align_page(4 + 8 * n)
}

/// Why a queue could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue is not enabled")]
    NotReady,
    #[error("queue size {0} is zero, not a power of two or above the maximum")]
    BadSize(u16),
    #[error("ring {what} at 0x{addr:x} is misaligned or not in guest memory")]
    BadRing { what: &'static str, addr: u64 },
    #[error("avail index {avail} is {ahead} entries ahead of {next}, queue size {size}")]
    AvailTooFarAhead {
        avail: u16,
        next: u16,
        ahead: u16,
        size: u16,
    },
    #[error("chain at head {head}: {error}")]
    BadChain { head: u16, error: ChainError },
    #[error("ring access failed: {0}")]
    Memory(#[from] MemoryError),
}

/// Logs the first error and then every 2^n-th, so a guest that repeats a
/// mistake millions of times cannot flood the log.
#[derive(Debug, Default)]
struct RateLimit {
    count: u64,
}

impl RateLimit {
    fn log(&mut self, what: &str, err: &QueueError) {
        self.count = self.count.saturating_add(1);
        if self.count.is_power_of_two() {
            log::warn!("{what}: {err} (seen {} times)", self.count);
        }
    }
}

/// One split virtqueue.
#[derive(Debug)]
pub struct Queue {
    max_size: u16,
    size: u16,
    enabled: bool,
    desc_table: u64,
    avail_ring: u64,
    used_ring: u64,
    next_avail: Wrapping<u16>,
    next_used: Wrapping<u16>,
    indirect: bool,
    errors: RateLimit,
}

impl Queue {
    /// A queue offering at most `max_size` entries (a power of two).
    pub fn new(max_size: u16) -> Queue {
        Queue {
            max_size,
            size: max_size,
            enabled: false,
            desc_table: 0,
            avail_ring: 0,
            used_ring: 0,
            next_avail: Wrapping(0),
            next_used: Wrapping(0),
            indirect: false,
            errors: RateLimit::default(),
        }
    }

    /// Back to the state after device reset: full size, disabled, no rings.
    pub fn reset(&mut self) {
        *self = Queue {
            errors: std::mem::take(&mut self.errors),
            ..Queue::new(self.max_size)
        };
    }

    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Sets the size the driver chose, clamped to the maximum as the C vmd
    /// does. Validity (non-zero power of two) is checked when used.
    pub fn set_size(&mut self, size: u16) {
        if size > self.max_size {
            log::warn!("clamping queue size {size} to {}", self.max_size);
        }
        self.size = size.min(self.max_size);
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn desc_table(&self) -> u64 {
        self.desc_table
    }

    pub fn avail_ring(&self) -> u64 {
        self.avail_ring
    }

    pub fn used_ring(&self) -> u64 {
        self.used_ring
    }

    /// Virtio 1.x: the three ring addresses.
    pub fn set_desc_table(&mut self, addr: u64) {
        self.desc_table = addr;
    }

    pub fn set_avail_ring(&mut self, addr: u64) {
        self.avail_ring = addr;
    }

    pub fn set_used_ring(&mut self, addr: u64) {
        self.used_ring = addr;
    }

    /// Virtio 0.9: the ring lives at `pfn` × 4096 with the maximum size;
    /// PFN 0 tears the queue down.
    pub fn set_legacy_pfn(&mut self, pfn: u32) {
        let base = u64::from(pfn) * VIRTIO_PAGE_SIZE;
        let n = u64::from(self.max_size);
        self.size = self.max_size;
        self.desc_table = base;
        self.avail_ring = base + DESC_SIZE * n;
        self.used_ring = base + align_page(DESC_SIZE * n + 2 * (2 + n));
        self.enabled = pfn != 0;
        if pfn == 0 {
            self.next_avail = Wrapping(0);
            self.next_used = Wrapping(0);
        }
    }

    /// The 0.9 page frame number (desc table address / 4096).
    pub fn legacy_pfn(&self) -> u32 {
        (self.desc_table / VIRTIO_PAGE_SIZE) as u32
    }

    /// Whether VIRTIO_RING_F_INDIRECT_DESC was negotiated.
    pub fn set_indirect(&mut self, indirect: bool) {
        self.indirect = indirect;
    }

    /// Index of the next avail entry we will consume.
    pub fn next_avail(&self) -> u16 {
        self.next_avail.0
    }

    /// Checks that the queue is enabled, sized and laid out in guest memory.
    pub fn check(&self, mem: &GuestMemory) -> Result<(), QueueError> {
        if !self.enabled {
            return Err(QueueError::NotReady);
        }
        if self.size == 0 || !self.size.is_power_of_two() || self.size > self.max_size {
            return Err(QueueError::BadSize(self.size));
        }
        let (d, a, u) = ring_sizes(self.size);
        for (what, addr, len, align) in [
            ("descriptor table", self.desc_table, d, 16),
            ("avail ring", self.avail_ring, a, 2),
            ("used ring", self.used_ring, u, 4),
        ] {
            if addr % align != 0 || !mem.contains(addr, len) {
                return Err(QueueError::BadRing { what, addr });
            }
        }
        Ok(())
    }

    /// True if the queue is usable.
    pub fn is_ready(&self, mem: &GuestMemory) -> bool {
        self.check(mem).is_ok()
    }

    fn avail_idx(&self, mem: &GuestMemory) -> Result<Wrapping<u16>, QueueError> {
        Ok(Wrapping(
            mem.load_u16(self.avail_ring + 2, Ordering::Acquire)?,
        ))
    }

    /// Takes the next available chain, if any.
    ///
    /// `Ok(None)`: nothing to do. `Err(BadChain)`: the chain was malformed;
    /// it has been consumed and must be handed back with
    /// [`Queue::add_used`] (length 0) — [`Queue::pop_valid`] does that.
    /// Other errors leave the queue untouched.
    pub fn pop(&mut self, mem: &GuestMemory) -> Result<Option<Chain>, QueueError> {
        self.check(mem)?;
        let avail = self.avail_idx(mem)?;
        let ahead = avail - self.next_avail;
        if ahead.0 == 0 {
            return Ok(None);
        }
        if ahead.0 > self.size {
            return Err(QueueError::AvailTooFarAhead {
                avail: avail.0,
                next: self.next_avail.0,
                ahead: ahead.0,
                size: self.size,
            });
        }
        // Read the ring entry only after seeing the index that covers it.
        fence_acquire();
        let slot = u64::from(self.next_avail.0 % self.size);
        let head = mem.load_u16(self.avail_ring + 4 + 2 * slot, Ordering::Relaxed)?;
        self.next_avail += 1;
        Chain::parse(mem, self.desc_table, self.size, head, self.indirect)
            .map(Some)
            .map_err(|error| QueueError::BadChain { head, error })
    }

    /// Takes the next well-formed chain. Malformed ones are logged (rate
    /// limited) and returned to the guest with length 0; queue-level
    /// errors are logged and end the batch.
    pub fn pop_valid(&mut self, mem: &GuestMemory, what: &str) -> Option<Chain> {
        loop {
            match self.pop(mem) {
                Ok(chain) => return chain,
                Err(QueueError::BadChain { head, error }) => {
                    self.errors.log(what, &QueueError::BadChain { head, error });
                    if head < self.size {
                        if let Err(e) = self.add_used(mem, head, 0) {
                            self.errors.log(what, &e);
                            return None;
                        }
                    }
                }
                Err(QueueError::NotReady) => return None,
                Err(e) => {
                    self.errors.log(what, &e);
                    return None;
                }
            }
        }
    }

    /// Puts `head` on the used ring with `len` bytes written, then
    /// publishes the new used index.
    pub fn add_used(&mut self, mem: &GuestMemory, head: u16, len: u32) -> Result<(), QueueError> {
        self.check(mem)?;
        let slot = u64::from(self.next_used.0 % self.size);
        let elem = self.used_ring + 4 + 8 * slot;
        mem.store_u32(elem, u32::from(head), Ordering::Relaxed)?;
        mem.store_u32(elem + 4, len, Ordering::Relaxed)?;
        self.next_used += 1;
        // The element must be visible before the index that covers it.
        fence_release();
        mem.store_u16(self.used_ring + 2, self.next_used.0, Ordering::Release)?;
        Ok(())
    }

    /// Whether the driver wants an interrupt for the buffers we just used
    /// (it sets VRING_AVAIL_F_NO_INTERRUPT when polling).
    pub fn needs_interrupt(&self, mem: &GuestMemory) -> bool {
        // Order our used-index store before reading the driver's flags.
        fence_full();
        match mem.load_u16(self.avail_ring, Ordering::Relaxed) {
            Ok(flags) => flags & VRING_AVAIL_F_NO_INTERRUPT == 0,
            Err(_) => true,
        }
    }
}
