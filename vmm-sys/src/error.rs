use std::io;

use thiserror::Error;

/// What can go wrong talking to vmm(4).
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    /// The request reached the kernel and failed; `errno` says why.
    #[error("{request} failed: {source}")]
    Ioctl {
        request: &'static str,
        source: io::Error,
    },
    /// This host has no vmm(4); the vmm backend is OpenBSD-only.
    #[error("{request}: vmm(4) is only available on OpenBSD")]
    Unsupported { request: &'static str },
    #[error("vm name {0:?} is longer than {max} bytes or contains NUL", max = crate::consts::VMM_MAX_NAME_LEN - 1)]
    BadName(String),
    #[error("{count} memory ranges given, 1 to {max} allowed", max = crate::consts::VMM_MAX_MEM_RANGES)]
    BadMemRanges { count: usize },
    #[error("{0} vcpus requested, 1 to {max} allowed", max = crate::consts::VMM_MAX_VCPUS_PER_VM)]
    BadVcpuCount(usize),
    /// The set of VMs kept changing between `VMM_IOC_INFO` calls.
    #[error("VMM_IOC_INFO: the number of VMs kept changing")]
    InfoRaced,
    /// `VMM_IOC_INFO` returned a size or count we did not ask for.
    #[error("VMM_IOC_INFO returned an inconsistent size {size} / count {count}")]
    BadInfoReply { size: u64, count: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;
