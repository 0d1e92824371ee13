//! viornd: the virtio entropy device. Every writable buffer the driver
//! posts is filled with bytes from the host's random number generator.
//!
//! Unlike the C vmd, which serves one buffer per notification and stops
//! the process on a request over 64 KiB, every available chain is served
//! and a request is filled up to 64 KiB; readable buffers are never
//! written.

use super::queue::Queue;
use super::{VirtioDevice, DEVICE_ENTROPY, VIRTIO_F_VERSION_1};
use crate::memory::GuestMemory;
use crate::sys::fill_random;

/// Queue size vmd gives viornd.
pub const VIORND_QUEUE_SIZE_DEFAULT: u16 = 64;
/// Most bytes handed out per request (MAXPHYS in vmd).
pub const VIORND_MAX_REQUEST: usize = 64 * 1024;

/// The entropy device model.
pub struct Rnd {
    buf: Vec<u8>,
}

impl Default for Rnd {
    fn default() -> Self {
        Rnd::new()
    }
}

impl Rnd {
    pub fn new() -> Rnd {
        Rnd { buf: Vec::new() }
    }
}

impl VirtioDevice for Rnd {
    fn device_type(&self) -> u16 {
        DEVICE_ENTROPY
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[VIORND_QUEUE_SIZE_DEFAULT]
    }

    fn queue_notify(&mut self, _index: u16, queue: &mut Queue, mem: &GuestMemory) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_valid(mem, "viornd") {
            let want = chain.writable_len().min(VIORND_MAX_REQUEST as u64) as usize;
            self.buf.resize(want, 0);
            fill_random(&mut self.buf);
            let written = match chain.writer(mem).write_all(&self.buf) {
                Ok(()) => want as u32,
                Err(e) => {
                    log::warn!("viornd: can't write random data: {e}");
                    0
                }
            };
            if let Err(e) = queue.add_used(mem, chain.head(), written) {
                log::warn!("viornd: {e}");
                break;
            }
            used = true;
        }
        used
    }
}
