//! Creating images as `vmctl create` does: an empty raw file, an empty
//! qcow2 v3 image with 64 KiB clusters (optionally on top of a backing
//! image), or a copy of an existing image in either format.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::qcow2::{Qcow2Image, MAGIC};
use super::{open_image, sys, DiskError, DiskImage, ImageFormat, Result};

pub const QCOW2_CREATE_CLUSTER_BITS: u32 = 16;
const HEADER_LEN: usize = 104;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Conversion copies this much at a time (a multiple of every cluster size).
const CONVERT_CHUNK: u64 = 2 << 20;
const MIB: u64 = 1 << 20;

fn create_err(path: &Path, reason: impl Into<String>) -> DiskError {
    DiskError::Create {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Creates a new file, refusing to overwrite one, readable by its owner only.
fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DiskError::io(path, e))
}

/// Runs `fill` on a freshly created file; removes the file if it fails.
fn create_with(path: &Path, fill: impl FnOnce(&File) -> Result<()>) -> Result<()> {
    let file = create_new(path)?;
    let result =
        fill(&file).and_then(|_| sys::sync_data(&file).map_err(|e| DiskError::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Creates an empty (sparse) raw image of `size` bytes.
pub fn create_raw(path: &Path, size: u64) -> Result<()> {
    if size == 0 {
        return Err(create_err(path, "missing disk size"));
    }
    create_with(path, |f| {
        f.set_len(size).map_err(|e| DiskError::io(path, e))
    })
}

/// Creates an empty qcow2 v3 image with 64 KiB clusters. With a backing
/// image, `size` 0 means "the backing image's size", and any other size must
/// match it, as in vmctl. The backing name is stored as given; a relative one
/// is resolved against the new image's directory, as qemu does.
pub fn create_qcow2(path: &Path, size: u64, backing: Option<&Path>) -> Result<()> {
    let mut size = size;
    if let Some(base) = backing {
        let resolved = if base.is_absolute() {
            base.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).join(base)
        };
        if ImageFormat::detect(&resolved)? != ImageFormat::Qcow2 {
            return Err(create_err(&resolved, "base image is not a qcow2 file"));
        }
        let base_size = Qcow2Image::open(&resolved, true)?.size();
        if size == 0 {
            size = base_size;
        } else if size != base_size {
            return Err(create_err(path, "base size does not match requested size"));
        }
    }
    if size == 0 {
        return Err(create_err(path, "missing disk size"));
    }
    let image = qcow2_layout(size, backing)
        .ok_or_else(|| create_err(path, format!("disk size {size} too large")))?;
    create_with(path, |f| {
        sys::write_all_at(f, &image, 0).map_err(|e| DiskError::io(path, e))
    })
}

/// The bytes of an empty qcow2 image: header (with the backing format
/// extension and name), refcount table, one refcount block, L1 table.
fn qcow2_layout(size: u64, backing: Option<&Path>) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let bits = QCOW2_CREATE_CLUSTER_BITS;
    let cs = 1u64 << bits;
    let l1_coverage = (cs / 8) * cs;
    let l1_size = size.div_ceil(l1_coverage);
    let l1_clusters = (l1_size * 8).div_ceil(cs);
    let (rc_table_cluster, rc_block_cluster, l1_cluster) = (1u64, 2u64, 3u64);
    let clusters = l1_cluster + l1_clusters;
    if clusters > cs / 2 || l1_size > u64::from(u32::MAX) {
        return None;
    }
    let mut image = vec![0u8; (clusters * cs) as usize];
    let put32 = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let put64 = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_be_bytes());

    let h = &mut image[..cs as usize];
    h[0..4].copy_from_slice(&MAGIC);
    put32(h, 4, 3);
    put32(h, 20, bits);
    put64(h, 24, size);
    put32(h, 36, l1_size as u32);
    put64(h, 40, l1_cluster * cs);
    put64(h, 48, rc_table_cluster * cs);
    put32(h, 56, 1);
    put32(h, 96, 4); // refcount order: 16-bit refcounts
    put32(h, 100, HEADER_LEN as u32);
    let mut at = HEADER_LEN;
    if let Some(base) = backing {
        let name = base.as_os_str().as_bytes();
        if name.len() > 1023 {
            return None;
        }
        let format = b"qcow2";
        put32(h, at, EXT_BACKING_FORMAT);
        put32(h, at + 4, format.len() as u32);
        h[at + 8..at + 8 + format.len()].copy_from_slice(format);
        at += 8 + format.len().div_ceil(8) * 8;
        at += 8; // end of extensions (type 0, length 0)
        put64(h, 8, at as u64);
        put32(h, 16, name.len() as u32);
        h[at..at + name.len()].copy_from_slice(name);
    }

    let table = (rc_table_cluster * cs) as usize;
    put64(&mut image, table, rc_block_cluster * cs);
    let block = (rc_block_cluster * cs) as usize;
    for c in 0..clusters as usize {
        image[block + 2 * c..block + 2 * c + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    Some(image)
}

/// The step of a conversion that failed; the messages are vmctl's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertStep {
    OpenSource,
    SizeTooSmall,
    CreateDestination,
    OpenDestination,
    ReadSource,
    WriteDestination,
}

impl ConvertStep {
    pub fn message(self) -> &'static str {
        match self {
            ConvertStep::OpenSource => "failed to open source image file",
            ConvertStep::SizeTooSmall => "size cannot be smaller than input disk size",
            ConvertStep::CreateDestination => "failed to create destination image file",
            ConvertStep::OpenDestination => "failed to open destination image file",
            ConvertStep::ReadSource => "failed to read from source",
            ConvertStep::WriteDestination => "failed to write to destination",
        }
    }
}

/// A failed conversion: the step, and what went wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", step.message())]
pub struct ConvertError {
    pub step: ConvertStep,
    #[source]
    pub source: DiskError,
}

/// Copies the image at `input` (raw or qcow2, detected) into a new image at
/// `output`, as `vmctl create -i`: the new disk is `size` bytes (default: the
/// input's size, never smaller), rounded up to a whole MiB as vmctl does.
/// Zero ranges are left sparse. `progress` is called with (bytes done, bytes
/// total) after every chunk. Returns the size of the new disk. A new image
/// whose copy fails is removed again.
pub fn convert_image(
    input: &Path,
    output: &Path,
    format: ImageFormat,
    size: Option<u64>,
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<u64, ConvertError> {
    let at = |step: ConvertStep| move |source: DiskError| ConvertError { step, source };
    let mut src = ImageFormat::detect(input)
        .and_then(|f| open_image(input, f, true))
        .map_err(at(ConvertStep::OpenSource))?;
    let in_size = src.size();
    let size = size.unwrap_or(in_size);
    if size < in_size {
        return Err(at(ConvertStep::SizeTooSmall)(create_err(
            output,
            format!("{size} bytes for {in_size}"),
        )));
    }
    let size = size.div_ceil(MIB) * MIB;
    match format {
        ImageFormat::Raw => create_raw(output, size),
        ImageFormat::Qcow2 => create_qcow2(output, size, None),
    }
    .map_err(at(ConvertStep::CreateDestination))?;
    let mut copy = || -> std::result::Result<(), ConvertError> {
        let mut dst =
            open_image(output, format, false).map_err(at(ConvertStep::OpenDestination))?;
        let mut buf = vec![0u8; CONVERT_CHUNK as usize];
        let mut done = 0u64;
        progress(0, in_size);
        while done < in_size {
            let len = CONVERT_CHUNK.min(in_size - done) as usize;
            src.read_at(&mut buf[..len], done)
                .map_err(at(ConvertStep::ReadSource))?;
            if buf[..len].iter().any(|&b| b != 0) {
                dst.write_at(&buf[..len], done)
                    .map_err(at(ConvertStep::WriteDestination))?;
            }
            done += len as u64;
            progress(done, in_size);
        }
        dst.flush().map_err(at(ConvertStep::WriteDestination))
    };
    let result = copy();
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    result.map(|_| size)
}
