use std::io;

/// Everything that can go wrong on an imsg channel. After any error but
/// [`Error::Payload`], [`Error::TooBig`] and [`Error::FdPassingDisabled`]
/// the buffer is unusable, as in C: the stream can no longer be trusted to
/// be in sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("imsg: {0}")]
    Io(#[from] io::Error),
    #[error("imsg: header length {len} out of range (16..={max})")]
    HeaderLength { len: u32, max: usize },
    #[error("imsg: stream truncated at EOF inside a message ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error("imsg: message of type {type_} has the fd mark but no fd was received")]
    MissingFd { type_: u32 },
    #[error("imsg: more fds received than messages that carry one")]
    TooManyFds,
    #[error("imsg: fd passing is not enabled on this channel")]
    FdPassingDisabled,
    #[error("imsg: message of {len} bytes exceeds the maximum of {max}")]
    TooBig { len: usize, max: usize },
    #[error("imsg: payload of type {type_} is {got} bytes, expected {expected}")]
    Payload {
        type_: u32,
        expected: usize,
        got: usize,
    },
    #[error("imsg: channel unusable after an earlier error")]
    Poisoned,
    #[error("imsg: maximum size {0} out of range")]
    MaxSize(u32),
}

pub type Result<T> = std::result::Result<T, Error>;
