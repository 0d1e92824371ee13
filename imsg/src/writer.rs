//! The outgoing queue. Each message is one buffer; a message with an fd
//! always starts a new `sendmsg`, so the fd travels with the first byte of
//! its message, as libutil's `msgbuf_write` does.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// How many messages one `sendmsg` gathers at most (IOV_MAX is 1024 on
/// both systems).
const MAX_IOV: usize = 1024;

struct Queued {
    bytes: Vec<u8>,
    /// Bytes already sent.
    sent: usize,
    fd: Option<OwnedFd>,
}

#[derive(Default)]
pub(crate) struct Writer {
    queue: VecDeque<Queued>,
}

impl Writer {
    pub(crate) fn push(&mut self, bytes: Vec<u8>, fd: Option<OwnedFd>) {
        self.queue.push_back(Queued { bytes, sent: 0, fd });
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn write_once(&mut self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let mut iov = Vec::with_capacity(self.queue.len().min(MAX_IOV));
        for (i, q) in self.queue.iter().enumerate() {
            if iov.len() == MAX_IOV || (i > 0 && q.fd.is_some()) {
                break;
            }
            iov.push(IoSlice::new(&q.bytes[q.sent..]));
        }
        if iov.is_empty() {
            return Ok(());
        }
        let fd = self
            .queue
            .front()
            .and_then(|q| q.fd.as_ref())
            .map(|f| f.as_fd());
        let mut n = sys::send(sock, &iov, fd)?;
        // The fd went with the first byte; it is the peer's now.
        if let Some(front) = self.queue.front_mut() {
            if n > 0 {
                front.fd = None;
            }
        }
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let left = front.bytes.len() - front.sent;
            if n >= left {
                n -= left;
                self.queue.pop_front();
            } else {
                front.sent += n;
                n = 0;
            }
        }
        Ok(())
    }
}
