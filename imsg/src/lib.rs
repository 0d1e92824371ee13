//! OpenBSD-compatible imsg: the framing every vmd process speaks.
//!
//! Byte-compatible with libutil's imsg (imsg.c 1.42, imsg-buffer.c, 2025):
//! a 16-byte header in host byte order (`type`, `len` with bit 31 marking
//! a passed fd, `peerid`, `pid`), messages of at most 16384 bytes by
//! default, and at most one fd per message, sent with SCM_RIGHTS on the
//! `sendmsg` that carries the start of that message.
//!
//! Unlike C, the reader treats every inconsistency between the stream and
//! the fds beside it as an error, and a channel that saw an error stays
//! unusable ([`Error::Poisoned`]).

mod error;
mod header;
mod payload;
mod reader;
mod sys;
mod wire;
mod writer;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub use error::{Error, Result};
pub use header::{ImsgHdr, IBUF_READ_SIZE, IMSG_FD_MARK, IMSG_HEADER_SIZE, MAX_IMSGSIZE};
pub use payload::Payload;
pub use reader::Reader;
pub use wire::WireStruct;

use writer::Writer;

/// One received message.
#[derive(Debug)]
pub struct Imsg {
    pub hdr: ImsgHdr,
    pub data: Payload,
    pub fd: Option<OwnedFd>,
}

impl Imsg {
    pub fn type_(&self) -> u32 {
        self.hdr.type_
    }

    /// The payload if it is exactly `len` bytes (C: `imsg_get_data`,
    /// which fails with EBADMSG otherwise).
    pub fn data_exact(&self, len: usize) -> Result<&[u8]> {
        if self.data.len() != len {
            return Err(Error::Payload {
                type_: self.hdr.type_,
                expected: len,
                got: self.data.len(),
            });
        }
        Ok(&self.data)
    }

    /// Decodes the payload as `T`, which must fill it exactly.
    pub fn get<T: WireStruct>(&self) -> Result<T> {
        self.data_exact(T::SIZE).map(T::decode)
    }

    /// Takes the fd that came with the message (C: `imsg_get_fd`).
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fd.take()
    }
}

/// What one read from the socket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Bytes arrived (they may or may not complete a message).
    Data,
    /// The peer closed the connection at a message boundary.
    Eof,
    /// Non-blocking socket with nothing to read.
    WouldBlock,
}

/// An imsg channel over a connected Unix stream socket, which it owns.
pub struct ImsgBuf {
    sock: OwnedFd,
    reader: Reader,
    writer: Writer,
    pid: u32,
    fdpass: bool,
    maxsize: usize,
    poisoned: bool,
}

impl ImsgBuf {
    /// Wraps a connected socket. Fd passing starts disabled, as in C.
    pub fn new(sock: impl Into<OwnedFd>) -> ImsgBuf {
        ImsgBuf {
            sock: sock.into(),
            reader: Reader::new(MAX_IMSGSIZE),
            writer: Writer::new(),
            pid: std::process::id(),
            fdpass: false,
            maxsize: MAX_IMSGSIZE,
            poisoned: false,
        }
    }

    /// Enables sending and receiving fds (C: `imsgbuf_allow_fdpass`).
    pub fn allow_fdpass(&mut self) {
        self.fdpass = true;
    }

    /// Sets the largest payload, not counting the header (C:
    /// `imsgbuf_set_maxsize`).
    pub fn set_maxsize(&mut self, max_payload: u32) -> Result<()> {
        let max = max_payload
            .checked_add(IMSG_HEADER_SIZE as u32)
            .filter(|m| m & IMSG_FD_MARK == 0)
            .ok_or(Error::MaxSize(max_payload))?;
        self.maxsize = max as usize;
        self.reader.maxsize = self.maxsize;
        Ok(())
    }

    /// The largest message, header included.
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        Ok(sys::set_nonblocking(self.sock.as_fd(), on)?)
    }

    fn check(&self) -> Result<()> {
        if self.poisoned {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Marks the channel dead if `r` failed in a way that desynchronises
    /// the stream.
    fn poison_on_err<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let recoverable = matches!(
                e,
                Error::Payload { .. } | Error::TooBig { .. } | Error::FdPassingDisabled
            ) || matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock);
            if !recoverable {
                self.poisoned = true;
            }
        }
        r
    }

    /// Queues a message (C: `imsg_compose`). A `pid` of 0 means this
    /// process's pid.
    #[inline]
    pub fn compose(
        &mut self,
        type_: u32,
        peerid: u32,
        pid: u32,
        fd: Option<OwnedFd>,
        data: &[u8],
    ) -> Result<()> {
        self.composev(type_, peerid, pid, fd, &[data])
    }

    /// Queues a message whose payload is the concatenation of `parts` (C:
    /// `imsg_composev`).
    #[inline]
    pub fn composev(
        &mut self,
        type_: u32,
        peerid: u32,
        pid: u32,
        fd: Option<OwnedFd>,
        parts: &[&[u8]],
    ) -> Result<()> {
        self.check()?;
        if fd.is_some() && !self.fdpass {
            return Err(Error::FdPassingDisabled);
        }
        let len = IMSG_HEADER_SIZE + parts.iter().map(|p| p.len()).sum::<usize>();
        if len > self.maxsize {
            return Err(Error::TooBig {
                len,
                max: self.maxsize,
            });
        }
        let hdr = ImsgHdr {
            type_,
            len: len as u32,
            peerid,
            pid: if pid == 0 { self.pid } else { pid },
        };
        self.writer.send_or_push(self.sock.as_fd(), &hdr, parts, fd);
        Ok(())
    }

    /// Queues a message whose payload is one typed struct.
    pub fn compose_struct<T: WireStruct>(
        &mut self,
        type_: u32,
        peerid: u32,
        pid: u32,
        fd: Option<OwnedFd>,
        value: &T,
    ) -> Result<()> {
        self.compose(type_, peerid, pid, fd, &value.to_bytes())
    }

    /// Queues a copy of `msg` with its header values; its fd is not
    /// passed on (C: `imsg_forward`).
    pub fn forward(&mut self, msg: &Imsg) -> Result<()> {
        self.compose(msg.hdr.type_, msg.hdr.peerid, msg.hdr.pid, None, &msg.data)
    }

    /// Messages queued and not yet completely written.
    pub fn queue_len(&self) -> usize {
        self.writer.len()
    }

    /// One `sendmsg` of as much of the queue as the socket takes (C:
    /// `imsgbuf_write`). A full socket is not an error.
    pub fn write(&mut self) -> Result<()> {
        self.check()?;
        let r = match self
            .writer
            .write_once(self.sock.as_fd(), sys::SendMode::Wait)
        {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r.map_err(Error::from),
        };
        if self.writer.len() == 0 {
            self.writer.flushed();
        }
        self.poison_on_err(r)
    }

    /// Writes until the queue is empty, waiting for the socket when it is
    /// full (C: `imsgbuf_flush`).
    pub fn flush(&mut self) -> Result<()> {
        while self.queue_len() > 0 {
            self.check()?;
            match self
                .writer
                .write_once(self.sock.as_fd(), sys::SendMode::Wait)
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let r = sys::wait(self.sock.as_fd(), true).map_err(Error::from);
                    self.poison_on_err(r)?;
                }
                Err(e) => return self.poison_on_err(Err(e.into())),
            }
        }
        self.writer.flushed();
        Ok(())
    }

    /// One `recvmsg` (C: `imsgbuf_read`). Complete messages are then
    /// available from [`ImsgBuf::get`].
    pub fn read(&mut self) -> Result<ReadStatus> {
        self.check()?;
        let r = self.read_inner();
        self.poison_on_err(r)
    }

    fn read_inner(&mut self) -> Result<ReadStatus> {
        let spare = self.reader.spare_mut();
        let got = match sys::recv(self.sock.as_fd(), spare, self.fdpass) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::WouldBlock),
            Err(e) => return Err(e.into()),
        };
        // Without fd passing no control buffer is offered and the kernel
        // discards any fd (as C's readv does); a marked message then shows
        // up as missing its fd.
        if (self.fdpass && got.ctrunc) || got.fds.len() > 1 {
            return Err(Error::TooManyFds);
        }
        if got.len == 0 && got.fds.is_empty() {
            self.reader.eof()?;
            return Ok(ReadStatus::Eof);
        }
        let fd = got.fds.into_iter().next();
        self.reader.commit(got.len, fd)?;
        Ok(ReadStatus::Data)
    }

    /// The next complete message, if one is buffered (C: `imsg_get`).
    #[inline]
    pub fn get(&mut self) -> Result<Option<Imsg>> {
        self.check()?;
        Ok(self.reader.pop())
    }

    /// The next message: a buffered one if there is one, else reads until
    /// one is complete. `Ok(None)` is a clean EOF. On a non-blocking socket
    /// it waits for data.
    #[inline(always)]
    pub fn read_one(&mut self) -> Result<Option<Imsg>> {
        self.check()?;
        loop {
            if let Some(m) = self.reader.pop() {
                return Ok(Some(m));
            }
            match self.read()? {
                ReadStatus::Data => {}
                ReadStatus::Eof => return Ok(None),
                ReadStatus::WouldBlock => {
                    let r = sys::wait(self.sock.as_fd(), false).map_err(Error::from);
                    self.poison_on_err(r)?;
                }
            }
        }
    }
}

impl AsFd for ImsgBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for ImsgBuf {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// Registers the socket with mio. Set the channel non-blocking first; then
/// on a readable event call [`ImsgBuf::read`] until it says `WouldBlock`,
/// and on a writable event [`ImsgBuf::write`].
impl mio::event::Source for ImsgBuf {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.sock.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.sock.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.sock.as_raw_fd()).deregister(registry)
    }
}
