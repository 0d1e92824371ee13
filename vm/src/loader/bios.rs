//! A BIOS image, as vmd's loadfile_bios: the image ends at 1 MiB and a
//! second copy ends at 4 GiB; the vcpu starts in real mode at F000:FFF0
//! (vmd's flat 16-bit state: CS base 0xF0000).

use devices::memory::{GuestMemory, MemoryError};

use crate::memory_layout::{GB, MB};

/// Smallest image: it must at least hold the reset vector.
pub const MIN_BIOS_SIZE: usize = 16;
/// Largest image: it must fit below 1 MiB (and in the 2 MiB window
/// below 4 GiB).
pub const MAX_BIOS_SIZE: usize = MB as usize;

/// Where the vcpu starts.
pub const RESET_SEGMENT: u16 = 0xf000;
pub const RESET_IP: u16 = 0xfff0;

#[derive(Debug, thiserror::Error)]
pub enum BiosError {
    #[error("BIOS image of {0} bytes: must be {MIN_BIOS_SIZE} bytes to 1 MiB")]
    Size(usize),
    #[error("BIOS image does not fit guest memory: {0}")]
    Memory(#[from] MemoryError),
}

/// Copies `image` to its two places in guest memory.
pub fn load_bios(mem: &GuestMemory, image: &[u8]) -> Result<(), BiosError> {
    if !(MIN_BIOS_SIZE..=MAX_BIOS_SIZE).contains(&image.len()) {
        return Err(BiosError::Size(image.len()));
    }
    let len = image.len() as u64;
    mem.write(MB - len, image)?;
    mem.write(4 * GB - len, image)?;
    Ok(())
}
