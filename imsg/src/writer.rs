//! The outgoing queue: every queued message's bytes back to back in one
//! buffer, so composing allocates nothing once the buffer has grown and one
//! send takes many messages from one contiguous slice. Message
//! boundaries are read back from the headers in the buffer, so queueing a
//! message without an fd touches nothing but the buffer. A message with an
//! fd always starts a new `sendmsg`, so the fd travels with the first byte
//! of its message, as libutil's `msgbuf_write` does.
//!
//! A large message composed while nothing is queued, by a sender that
//! flushed after its previous message (a request and its reply), is first
//! offered to the socket straight from the caller's buffers (a
//! non-blocking `sendmsg`), and only what the socket does not take is
//! queued: copying it would cost more than the batching it would allow. A
//! sender that composes several messages before flushing has them queued:
//! sent one by one, a stream of them cost one system call and one wakeup
//! of the reader each, which made the whole stream slower (16 KiB one-way:
//! 0.53 of a bare socket's rate, against 0.8 queued).
//!
//! Each time another [`WRITE_AHEAD`] bytes have been queued, queueing also
//! makes one non-blocking write, so a sender that queues many messages
//! before flushing does not grow its queue without bound while the peer
//! keeps up. (At 128 KiB the 16 KiB stream ran 10% slower, its reader
//! woken more often; from 256 KiB up to never, the same.)

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::header::{ImsgHdr, IMSG_FD_MARK, IMSG_HEADER_SIZE};
use crate::sys;

/// Sent messages are dropped from the front of the buffer when another
/// is queued once there are this many bytes of them (and they are at least
/// half of it); until then they cost nothing.
const COMPACT_AT: usize = 64 * 1024;

/// Bytes queued since the last write that make queueing write.
const WRITE_AHEAD: usize = 256 * 1024;

/// A queue buffer larger than this is freed once everything in it is
/// sent; smaller ones are kept for the next messages.
const KEEP_AT_MOST: usize = 4 << 20;

/// Payloads from this size on are offered to the socket at compose time.
const SEND_DIRECT_FROM: usize = 4096;

/// Payload parts of a message sent directly (more are queued).
const DIRECT_PARTS: usize = 8;

pub(crate) struct Writer {
    /// The queue is `buf[..end]`; the rest is room, already initialized,
    /// so queueing a message is two copies and no length bookkeeping.
    buf: Vec<u8>,
    end: usize,
    /// Bytes of `buf` already sent.
    sent: usize,
    /// Where the first message not completely sent starts.
    first: usize,
    /// Messages from `first` on.
    queued: usize,
    /// The fds still to send, by where their message starts in `buf`.
    fds: VecDeque<(usize, OwnedFd)>,
    /// Queueing writes once `buf` reaches this length: [`WRITE_AHEAD`]
    /// bytes past its length at the last write.
    write_at: usize,
    /// A message was composed since the queue was last flushed empty.
    composed_since_flush: bool,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer {
            buf: Vec::new(),
            end: 0,
            sent: 0,
            first: 0,
            queued: 0,
            fds: VecDeque::new(),
            write_at: WRITE_AHEAD,
            composed_since_flush: false,
        }
    }

    /// Queues one message, or sends it at once if it is large, nothing is
    /// queued before it and the queue was flushed after the last message.
    #[inline]
    pub(crate) fn send_or_push(
        &mut self,
        sock: BorrowedFd<'_>,
        hdr: &ImsgHdr,
        parts: &[&[u8]],
        fd: Option<OwnedFd>,
    ) {
        let payload = hdr.len as usize - IMSG_HEADER_SIZE;
        let direct = self.queued == 0 && !self.composed_since_flush;
        self.composed_since_flush = true;
        if direct && payload >= SEND_DIRECT_FROM && parts.len() <= DIRECT_PARTS {
            self.send_direct(sock, hdr, parts, fd);
        } else {
            self.push(hdr, parts, fd);
            if self.end >= self.write_at {
                self.write_ahead(sock);
            }
        }
    }

    /// One non-blocking write of the queue. If the socket does not take
    /// the queue, the next try waits until another [`WRITE_AHEAD`] bytes
    /// are queued.
    #[cold]
    fn write_ahead(&mut self, sock: BorrowedFd<'_>) {
        // An error other than a full socket is reported by the next write
        // or flush, which meets it again.
        if self.write_once(sock, sys::SendMode::DontWait).is_err() {
            self.write_at = self.end + WRITE_AHEAD;
        }
    }

    /// Kept out of line: the small-message path inlines into callers.
    #[inline(never)]
    fn send_direct(
        &mut self,
        sock: BorrowedFd<'_>,
        hdr: &ImsgHdr,
        parts: &[&[u8]],
        fd: Option<OwnedFd>,
    ) {
        let head = hdr.to_bytes(fd.is_some());
        let mut iov = [IoSlice::new(&[]); DIRECT_PARTS + 1];
        iov[0] = IoSlice::new(&head);
        for (slot, p) in iov[1..].iter_mut().zip(parts) {
            *slot = IoSlice::new(p);
        }
        let sent = sys::send(
            sock,
            &iov[..=parts.len()],
            fd.as_ref().map(|f| f.as_fd()),
            sys::SendMode::DontWait,
        );
        match sent {
            Ok(n) if n == hdr.len as usize => {}
            Ok(n) if n > 0 => {
                // The fd went with the first byte; the rest waits its
                // turn, with the mark still in any header bytes not sent.
                self.append(hdr, parts, fd.is_some());
                self.sent = n;
            }
            // A full socket, or an error that the next write reports.
            _ => self.push(hdr, parts, fd),
        }
    }

    /// Queues one message: its header, then the payload parts.
    #[inline]
    fn push(&mut self, hdr: &ImsgHdr, parts: &[&[u8]], fd: Option<OwnedFd>) {
        if let Some(fd) = fd {
            self.fds.push_back((self.end, fd));
            self.append(hdr, parts, true);
        } else {
            self.append(hdr, parts, false);
        }
    }

    /// Appends one message's bytes; `marked` sets the fd mark in its header.
    #[inline]
    fn append(&mut self, hdr: &ImsgHdr, parts: &[&[u8]], marked: bool) {
        if self.first >= COMPACT_AT && self.first * 2 >= self.end {
            self.compact();
        }
        let len = hdr.len as usize;
        if self.buf.len() - self.end < len {
            self.grow(len);
        }
        let at = self.end;
        self.end += len;
        let (head, mut rest) = self.buf[at..self.end].split_at_mut(IMSG_HEADER_SIZE);
        hdr.write_to(marked, head);
        for p in parts {
            let (dst, tail) = rest.split_at_mut(p.len());
            dst.copy_from_slice(p);
            rest = tail;
        }
        self.queued += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    /// Notes that the sender flushed: the queue is empty.
    pub(crate) fn flushed(&mut self) {
        debug_assert_eq!(self.queued, 0);
        self.composed_since_flush = false;
    }

    /// The length of the queued message that starts at `at`.
    fn message_len(&self, at: usize) -> usize {
        let raw = self.buf[at + 4..at + 8]
            .first_chunk()
            .copied()
            .unwrap_or_default();
        (u32::from_ne_bytes(raw) & !IMSG_FD_MARK) as usize
    }

    /// One send of the queue's front, up to the next message with an fd.
    pub(crate) fn write_once(
        &mut self,
        sock: BorrowedFd<'_>,
        mode: sys::SendMode,
    ) -> io::Result<()> {
        if self.sent == self.end {
            return Ok(());
        }
        // This sendmsg carries the fd of the message it starts, if that
        // one has one, and stops where the next fd's message starts.
        let (fd, end) = match self.fds.front() {
            Some((at, fd)) if *at == self.sent => (
                Some(fd.as_fd()),
                self.fds.get(1).map_or(self.end, |(at, _)| *at),
            ),
            Some((at, _)) => (None, *at),
            None => (None, self.end),
        };
        let iov = [IoSlice::new(&self.buf[self.sent..end])];
        let n = sys::send(sock, &iov, fd, mode)?;
        if n > 0 && fd.is_some() {
            // The fd went with the first byte; it is the peer's now.
            self.fds.pop_front();
        }
        self.sent += n;
        if self.sent == self.end {
            self.end = 0;
            self.sent = 0;
            self.first = 0;
            self.queued = 0;
            self.write_at = WRITE_AHEAD;
            if self.buf.len() > KEEP_AT_MOST {
                // A burst is over: its memory goes back.
                self.buf = Vec::new();
            }
            return Ok(());
        }
        self.write_at = self.end + WRITE_AHEAD;
        while self.queued > 0 {
            let len = self.message_len(self.first);
            if self.first + len > self.sent {
                break;
            }
            self.first += len;
            self.queued -= 1;
        }
        Ok(())
    }

    /// Makes room for `len` more bytes, at least doubling the buffer.
    #[cold]
    fn grow(&mut self, len: usize) {
        let size = (self.end + len).max(self.buf.len() * 2);
        self.buf.resize(size, 0);
    }

    /// Drops the completely sent messages from the front of the buffer,
    /// when they are at least half of it: the bytes moved are then never
    /// more than the bytes sent since the last move. Done when a message
    /// is queued and never while flushing, where nothing would be gained
    /// by moving what is about to be sent anyway.
    #[cold]
    fn compact(&mut self) {
        let gone = self.first;
        self.buf.copy_within(gone..self.end, 0);
        self.end -= gone;
        for (at, _) in &mut self.fds {
            *at -= gone;
        }
        self.sent -= gone;
        self.write_at = self.write_at.saturating_sub(gone);
        self.first = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_burst_gives_its_memory_back() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut reader = crate::ImsgBuf::new(b);
        let drain = std::thread::spawn(move || {
            let mut n = 0;
            while reader.read_one().unwrap().is_some() {
                n += 1;
            }
            n
        });
        let mut w = Writer::new();
        let payload = vec![7u8; 16000];
        let hdr = ImsgHdr {
            type_: 1,
            len: (IMSG_HEADER_SIZE + payload.len()) as u32,
            peerid: 0,
            pid: 0,
        };
        // Far more than the socket holds, queued before any is sent.
        for _ in 0..600 {
            w.append(&hdr, &[&payload], false);
        }
        assert!(w.buf.len() > KEEP_AT_MOST);
        while w.len() > 0 {
            w.write_once(a.as_fd(), sys::SendMode::Wait).unwrap();
        }
        assert_eq!(w.buf.len(), 0);
        // An ordinary batch keeps its buffer for the next one.
        for _ in 0..10 {
            w.append(&hdr, &[&payload], false);
        }
        while w.len() > 0 {
            w.write_once(a.as_fd(), sys::SendMode::Wait).unwrap();
        }
        assert!(w.buf.len() >= 10 * hdr.len as usize);
        drop(a);
        assert_eq!(drain.join().unwrap(), 610);
    }
}
