//! The outgoing queue: every queued message's bytes back to back in one
//! buffer, so composing allocates nothing once the buffer has grown and one
//! `sendmsg` takes many messages from one contiguous slice. A message with
//! an fd always starts a new `sendmsg`, so the fd travels with the first
//! byte of its message, as libutil's `msgbuf_write` does.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::header::ImsgHdr;
use crate::sys;

/// Sent bytes are dropped from the front of the buffer once there are
/// this many of them (and they are more than half of it); until then
/// they cost nothing.
const COMPACT_AT: usize = 64 * 1024;

struct Queued {
    /// Where the message ends in `buf`.
    end: usize,
    fd: Option<OwnedFd>,
}

#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    sent: usize,
    queue: VecDeque<Queued>,
    /// Queued messages that still carry an fd.
    with_fd: usize,
}

impl Writer {
    /// Queues one message: its header, then the payload parts.
    #[inline]
    pub(crate) fn push(&mut self, hdr: &ImsgHdr, parts: &[&[u8]], fd: Option<OwnedFd>) {
        self.buf.reserve(hdr.len as usize);
        hdr.append_to(fd.is_some(), &mut self.buf);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.with_fd += usize::from(fd.is_some());
        self.queue.push_back(Queued {
            end: self.buf.len(),
            fd,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Where the next message with an fd (after the first queued one)
    /// starts: this `sendmsg` must stop there.
    fn next_fd_start(&self) -> usize {
        if self.with_fd == 0 {
            return self.buf.len();
        }
        let mut start = self.queue.front().map_or(self.sent, |q| q.end);
        for q in self.queue.iter().skip(1) {
            if q.fd.is_some() {
                return start;
            }
            start = q.end;
        }
        self.buf.len()
    }

    pub(crate) fn write_once(&mut self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let end = self.next_fd_start();
        if end <= self.sent {
            return Ok(());
        }
        let iov = [IoSlice::new(&self.buf[self.sent..end])];
        let fd = self
            .queue
            .front()
            .and_then(|q| q.fd.as_ref())
            .map(|f| f.as_fd());
        let n = sys::send(sock, &iov, fd)?;
        if n > 0 {
            // The fd went with the first byte; it is the peer's now.
            if let Some(front) = self.queue.front_mut() {
                if front.fd.take().is_some() {
                    self.with_fd -= 1;
                }
            }
        }
        self.sent += n;
        while self.queue.front().is_some_and(|q| q.end <= self.sent) {
            self.queue.pop_front();
        }
        if self.queue.is_empty() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent >= COMPACT_AT && self.sent * 2 >= self.buf.len() {
            self.buf.drain(..self.sent);
            for q in &mut self.queue {
                q.end -= self.sent;
            }
            self.sent = 0;
        }
        Ok(())
    }
}
