//! Disk images for the vioblk and vioscsi device children: raw files and
//! qcow2 (versions 2 and 3, with backing chains), plus image creation as
//! `vmctl create` does it.
//!
//! Every image is reached through [`DiskImage`]: positional reads and writes
//! (plain or vectored), `flush` and `size`. A request that reaches past the
//! end of the disk is an error, never a short transfer. Images are untrusted
//! input: a malformed qcow2 file gives a [`DiskError`] naming the file and the
//! problem; it never panics the process.

mod backend;
mod create;
mod iov;
mod qcow2;
mod raw;

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::path::{Path, PathBuf};

pub use backend::DiskBackend;
pub use create::{
    convert_image, create_qcow2, create_raw, ConvertError, ConvertStep, QCOW2_CREATE_CLUSTER_BITS,
};
pub use qcow2::{Qcow2Image, MAX_CHAIN_DEPTH};
pub use raw::RawImage;

/// A disk image format, as vm.conf and vmctl name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl ImageFormat {
    /// The format of the file at `path`, from its first bytes: "QFI\xfb" is
    /// qcow2, anything else is raw (as vmd does).
    pub fn detect(path: &Path) -> Result<ImageFormat> {
        let file = File::open(path).map_err(|e| DiskError::io(path, e))?;
        Self::detect_file(&file).map_err(|e| DiskError::io(path, e))
    }

    pub(crate) fn detect_file(file: &File) -> io::Result<ImageFormat> {
        let mut magic = [0u8; 4];
        let n = sys::read_at_most(file, &mut magic, 0)?;
        Ok(if n == 4 && magic == qcow2::MAGIC {
            ImageFormat::Qcow2
        } else {
            ImageFormat::Raw
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// Everything that can go wrong with a disk image. Each variant names the
/// file it is about.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: request at offset {offset} length {len} is past the end of the disk ({size} bytes)")]
    OutOfRange {
        path: PathBuf,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{path}: image is read-only")]
    ReadOnly { path: PathBuf },
    #[error("{path}: not a qcow2 image: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: unsupported qcow2 feature: {feature}")]
    Unsupported { path: PathBuf, feature: String },
    #[error("{path}: qcow2 image is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: qcow2 image is marked corrupt; refusing to write (check it with qemu-img check)"
    )]
    MarkedCorrupt { path: PathBuf },
    #[error("{path}: backing chain: {reason}")]
    Backing { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Create { path: PathBuf, reason: String },
}

impl DiskError {
    pub(crate) fn io(path: &Path, source: io::Error) -> DiskError {
        DiskError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, DiskError>;

/// A disk as the block devices see it: an array of `size()` bytes.
pub trait DiskImage: Send {
    /// The virtual size of the disk in bytes.
    fn size(&self) -> u64;

    /// Whether writes are refused.
    fn read_only(&self) -> bool;

    /// Fills all of `bufs`, in order, from the disk starting at `offset`.
    fn read_vectored_at(&mut self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<()>;

    /// Writes all of `bufs`, in order, to the disk starting at `offset`.
    fn write_vectored_at(&mut self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()>;

    /// Makes every write completed before this call durable.
    fn flush(&mut self) -> Result<()>;

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_vectored_at(&mut [IoSliceMut::new(buf)], offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_vectored_at(&[IoSlice::new(buf)], offset)
    }
}

/// Opens the image at `path`. A qcow2 image opens its backing chain too
/// (always read-only).
pub fn open_image(path: &Path, format: ImageFormat, read_only: bool) -> Result<Box<dyn DiskImage>> {
    Ok(match format {
        ImageFormat::Raw => Box::new(RawImage::open(path, read_only)?),
        ImageFormat::Qcow2 => Box::new(Qcow2Image::open(path, read_only)?),
    })
}

/// Opens an image from files already open: the image, then (for qcow2) its
/// backing chain in order, as the vm process passes them to a vioblk child.
/// `name` is the image's path, for messages and backing names.
pub fn open_image_files(
    files: Vec<File>,
    name: &Path,
    format: ImageFormat,
    read_only: bool,
) -> Result<Box<dyn DiskImage>> {
    Ok(match format {
        ImageFormat::Raw => {
            let Some(file) = files.into_iter().next() else {
                return Err(DiskError::Backing {
                    path: name.to_path_buf(),
                    reason: "no file".into(),
                });
            };
            Box::new(RawImage::from_file(file, name, read_only)?)
        }
        ImageFormat::Qcow2 => Box::new(Qcow2Image::open_files(files, name, read_only)?),
    })
}

/// Checks that `[offset, offset + len)` lies inside a disk of `size` bytes.
pub(crate) fn check_range(path: &Path, offset: u64, len: u64, size: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DiskError::OutOfRange {
            path: path.to_path_buf(),
            offset,
            len,
            size,
        }),
    }
}

pub(crate) mod sys {
    //! Positional file I/O on top of std's `FileExt` (pread/pwrite on every
    //! Unix) and `sync_data` (fdatasync where the host has it, else fsync).
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// before end of file.
    pub fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Reads `buf.len()` bytes at `offset`; bytes past end of file read as
    /// zeros (a qcow2 file may end inside its last cluster).
    pub fn read_zero_fill(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let n = read_at_most(file, buf, offset)?;
        buf[n..].fill(0);
        Ok(())
    }

    pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }

    pub fn sync_data(file: &File) -> io::Result<()> {
        file.sync_data()
    }
}
