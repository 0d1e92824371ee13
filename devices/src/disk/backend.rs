//! A disk image as the block device's backend: the glue between the
//! image formats and virtio-blk, so neither knows about the other.

use std::io;

use super::DiskImage;
use crate::virtio::blk::BlockBackend;

pub struct DiskBackend(Box<dyn DiskImage>);

impl DiskBackend {
    pub fn new(image: Box<dyn DiskImage>) -> DiskBackend {
        DiskBackend(image)
    }
}

/// Image errors already name the file and what went wrong; keep that text.
fn io_err(e: super::DiskError) -> io::Error {
    io::Error::other(e.to_string())
}

impl BlockBackend for DiskBackend {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_at(buf, offset).map_err(io_err)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_at(buf, offset).map_err(io_err)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(io_err)
    }
}
