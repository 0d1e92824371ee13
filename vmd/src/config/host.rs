//! What the parser asks of the host system: files, paths, users and groups.
//!
//! The parser never touches the system directly, so tests and the fuzzer can
//! run it against an in-memory host.

use std::ffi::CString;
use std::io;

pub trait Host {
    /// Reads a configuration or include file whole.
    fn read_file(&mut self, path: &str) -> io::Result<Vec<u8>>;
    /// realpath(3): the absolute path with no symlinks; the file must exist.
    fn realpath(&mut self, path: &str) -> io::Result<String>;
    /// Up to `len` bytes from the start of a file, to guess a disk format.
    fn read_head(&mut self, path: &str, len: usize) -> Option<Vec<u8>>;
    fn user_id(&mut self, name: &str) -> Option<u32>;
    fn group_id(&mut self, name: &str) -> Option<u32>;
}

/// The real system.
#[derive(Debug, Default)]
pub struct SystemHost;

/// Most bytes vmd reads from a config file; anything bigger is refused
/// rather than read into memory.
const MAX_CONFIG_FILE: u64 = 64 * 1024 * 1024;

impl Host for SystemHost {
    fn read_file(&mut self, path: &str) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let file = std::fs::File::open(path)?;
        let mut data = Vec::new();
        file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut data)?;
        if data.len() as u64 > MAX_CONFIG_FILE {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        Ok(data)
    }

    fn realpath(&mut self, path: &str) -> io::Result<String> {
        let resolved = std::fs::canonicalize(path)?;
        Ok(resolved.to_string_lossy().into_owned())
    }

    fn read_head(&mut self, path: &str, len: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let file = std::fs::File::open(path).ok()?;
        let mut data = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut data).ok()?;
        Some(data)
    }

    fn user_id(&mut self, name: &str) -> Option<u32> {
        let name = CString::new(name).ok()?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: passwd is plain old data; an all-zero value is valid.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and buf's length is
        // passed along; getpwnam_r writes only inside pw and buf.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc == 0 && !result.is_null()).then_some(pw.pw_uid)
    }

    fn group_id(&mut self, name: &str) -> Option<u32> {
        let name = CString::new(name).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: group is plain old data; an all-zero value is valid.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwnam_r above.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut gr,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc == 0 && !result.is_null()).then_some(gr.gr_gid)
    }
}

/// strerror(3) wording for an I/O error, without Rust's "(os error N)".
pub fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
