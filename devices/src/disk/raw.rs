//! Raw disk images: the file is the disk.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, IoSliceMut};
use std::path::{Path, PathBuf};

use super::{check_range, iov, sys, DiskError, DiskImage, Result};

pub struct RawImage {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
}

impl RawImage {
    pub fn open(path: &Path, read_only: bool) -> Result<RawImage> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| DiskError::io(path, e))?;
        Self::from_file(file, path, read_only)
    }

    /// A raw image on a file already open (`path` names it in messages).
    pub fn from_file(file: File, path: &Path, read_only: bool) -> Result<RawImage> {
        let size = file.metadata().map_err(|e| DiskError::io(path, e))?.len();
        Ok(RawImage {
            file,
            path: path.to_path_buf(),
            size,
            read_only,
        })
    }

    fn err(&self, e: std::io::Error) -> DiskError {
        DiskError::io(&self.path, e)
    }
}

impl DiskImage for RawImage {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_vectored_at(&mut self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<()> {
        check_range(&self.path, offset, iov::len_mut(bufs), self.size)?;
        let mut pos = offset;
        for buf in bufs.iter_mut() {
            // The range check makes a short read a real error (the file
            // shrank under us), so insist on every byte.
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, pos)
                .map_err(|e| self.err(e))?;
            pos += buf.len() as u64;
        }
        Ok(())
    }

    fn write_vectored_at(&mut self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        if self.read_only {
            return Err(DiskError::ReadOnly {
                path: self.path.clone(),
            });
        }
        check_range(&self.path, offset, iov::len(bufs), self.size)?;
        let mut pos = offset;
        for buf in bufs {
            sys::write_all_at(&self.file, buf, pos).map_err(|e| self.err(e))?;
            pos += buf.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        sys::sync_data(&self.file).map_err(|e| self.err(e))
    }
}
