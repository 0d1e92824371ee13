//! The one place that makes system calls. Only OpenBSD has vmm(4); on every
//! other host each request fails with [`crate::Error::Unsupported`], so the
//! rest of the crate is the same everywhere.

#[cfg(target_os = "openbsd")]
mod openbsd;
#[cfg(target_os = "openbsd")]
pub(crate) use openbsd::ioctl;

#[cfg(not(target_os = "openbsd"))]
mod unsupported;
#[cfg(not(target_os = "openbsd"))]
pub(crate) use unsupported::ioctl;
