//! Reassembly of messages from the byte stream and the fds that arrive
//! beside it. The socket side receives straight into the reader's buffer
//! ([`Reader::spare_mut`], then [`Reader::commit`] with the fd that came
//! with those bytes); [`Reader::ingest`] does the same from a slice.
//!
//! Headers are checked as soon as they arrive, so a bad one is reported by
//! the read that brought it, as C's `imsgbuf_read` does; payloads stay in
//! the buffer until [`Reader::pop`] hands them out as shared slices of it,
//! without a copy or an allocation; the next read gets a fresh buffer if
//! a payload is still held then (see [`Payload`]).
//!
//! A sender attaches an fd to the `sendmsg` whose data begins with the
//! header of the message the fd belongs to. The receiving kernel may still
//! hand it out with a read that starts earlier (Linux merges a segment
//! without fds with the next one that has them), so an fd that arrives
//! with a chunk belongs to the first header with the fd mark that starts
//! at or after the chunk's first byte; unmarked messages before it are
//! not its owners, as in C, where fds wait in a queue for marked messages.
//! A marked header with no fd that could be its own is an error.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::header::{ImsgHdr, IBUF_READ_SIZE, IMSG_HEADER_SIZE};
use crate::{Imsg, Payload};

/// A read into less room than this, after some of the buffer was taken,
/// starts the buffer over instead: a default-size message fits.
const MIN_READ: usize = 16 * 1024;

/// The smallest fresh buffer taken while payloads hold the last one.
const HELD_REFILL_MIN: usize = 1024;

/// A buffer grown past this for a large message (a raised maxsize) is
/// given back once that message is out of it.
const KEEP_AT_MOST: usize = 1 << 20;

/// The pure stream decoder behind [`crate::ImsgBuf`]; public so it can be
/// fuzzed and reused over other transports.
pub struct Reader {
    /// Largest accepted message, header included.
    pub(crate) maxsize: usize,
    /// Received bytes: `buf[pos..parsed]` holds complete messages,
    /// `buf[parsed..end]` the start of the next one. Shared with the
    /// payloads handed out from it.
    buf: Arc<Vec<u8>>,
    pos: usize,
    parsed: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Stream offset at which `buf` took its first byte.
    buf_from: u64,
    /// The fds of complete messages, by the stream offset of their header.
    ready_fds: VecDeque<(u64, OwnedFd)>,
    /// The length of the message at `parsed` once its header is in and
    /// checked (0 before), and its fd.
    head_len: usize,
    head_fd: Option<OwnedFd>,
    /// Messages copied out of the buffer to make room for a read before
    /// they were popped.
    taken: VecDeque<Imsg>,
    /// An fd not yet matched to a header, and the stream offset of the
    /// chunk it arrived with.
    pending_fd: Option<(OwnedFd, u64)>,
    failed: bool,
}

impl Reader {
    pub fn new(maxsize: usize) -> Reader {
        Reader {
            maxsize,
            buf: Arc::new(vec![0; IBUF_READ_SIZE]),
            pos: 0,
            parsed: 0,
            end: 0,
            base: 0,
            buf_from: 0,
            ready_fds: VecDeque::new(),
            head_len: 0,
            head_fd: None,
            taken: VecDeque::new(),
            pending_fd: None,
            failed: false,
        }
    }

    /// Room for the next read, never empty. A read goes after what is
    /// buffered, so reading again before taking the messages, as an event
    /// loop does, costs nothing. The buffer starts over when the room left
    /// is small and some of it was taken, when it is full, when it is
    /// smaller than the full read size or than the message being
    /// assembled needs, when it grew for a large message that is gone, or
    /// when a payload handed out still holds it (see [`Reader::restart`]).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let room = self.buf.len() - self.end;
        let cramped = room == 0 || (room < MIN_READ && self.pos > 0);
        let needed = (self.parsed + self.head_len).max(IBUF_READ_SIZE);
        let misfit = self.buf.len() < needed || self.buf.len() > needed.max(KEEP_AT_MOST);
        if cramped || misfit || Arc::strong_count(&self.buf) > 1 {
            self.restart();
        }
        // Only this reader clones the buffer and all its clones were just
        // checked for, so this never copies it.
        let buf = Arc::make_mut(&mut self.buf);
        &mut buf[self.end..]
    }

    /// Hands the complete messages still buffered to the pop queue (their
    /// payloads share the old buffer) and moves the unfinished one to the
    /// front of a buffer of its own: the same one if nothing holds it, a
    /// fresh one otherwise, large enough for the whole message when a
    /// raised maxsize makes it larger than the read buffer.
    ///
    /// A fresh buffer replacing a held one is sized by what the held one
    /// received, twice that but at least [`HELD_REFILL_MIN`]: a caller
    /// that keeps every message of a slow stream would otherwise keep a
    /// 64 KiB buffer alive per read. It grows back to the full read size
    /// at the first start-over that finds it free.
    #[cold]
    fn restart(&mut self) {
        while let Some(m) = self.take_ready() {
            self.taken.push_back(m);
        }
        let keep = self.end - self.pos;
        let full = IBUF_READ_SIZE.max(self.head_len);
        let fits = (full..=full.max(KEEP_AT_MOST)).contains(&self.buf.len());
        if Arc::strong_count(&self.buf) == 1 && fits {
            Arc::make_mut(&mut self.buf).copy_within(self.pos..self.end, 0);
        } else {
            let size = if Arc::strong_count(&self.buf) == 1 {
                full
            } else {
                let received = self.base + self.end as u64 - self.buf_from;
                let refill = usize::try_from(received.saturating_mul(2)).unwrap_or(usize::MAX);
                refill
                    .clamp(HELD_REFILL_MIN, IBUF_READ_SIZE)
                    .max(self.head_len)
                    .max(keep + 1)
            };
            let mut fresh = vec![0; size];
            fresh[..keep].copy_from_slice(&self.buf[self.pos..self.end]);
            self.buf = Arc::new(fresh);
            self.buf_from = self.base + self.pos as u64;
        }
        self.shift_to_front();
    }

    /// Accounts for the bytes from `pos` on having moved to the front.
    fn shift_to_front(&mut self) {
        self.base += self.pos as u64;
        self.parsed -= self.pos;
        self.end -= self.pos;
        self.pos = 0;
    }

    /// Accounts for `n` bytes just written into [`Reader::spare_mut`] and
    /// the fd that came with them. On error nothing of the offending
    /// message is handed out, and the reader stays failed.
    pub fn commit(&mut self, n: usize, fd: Option<OwnedFd>) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let r = self.commit_inner(n, fd);
        self.failed = r.is_err();
        r
    }

    fn commit_inner(&mut self, n: usize, fd: Option<OwnedFd>) -> Result<()> {
        if let Some(fd) = fd {
            if self.pending_fd.is_some() {
                return Err(Error::TooManyFds);
            }
            self.pending_fd = Some((fd, self.base + self.end as u64));
        }
        self.end = (self.end + n).min(self.buf.len());
        loop {
            if self.head_len == 0 {
                self.skip_plain_messages();
                let Some(&raw) = self.buf[self.parsed..self.end].first_chunk() else {
                    return Ok(());
                };
                self.check_header(&raw)?;
            }
            if self.end - self.parsed < self.head_len {
                return Ok(());
            }
            if let Some(fd) = self.head_fd.take() {
                self.ready_fds
                    .push_back((self.base + self.parsed as u64, fd));
            }
            self.parsed += self.head_len;
            self.head_len = 0;
        }
    }

    /// Steps over the complete, well-formed messages without an fd mark
    /// from `parsed` on, the common case, in a few instructions each;
    /// anything else is left to the general path. A marked length is at
    /// least 2^31, more than any maxsize, so it stops the scan too.
    #[inline(always)]
    fn skip_plain_messages(&mut self) {
        let plain = IMSG_HEADER_SIZE..=self.maxsize;
        let bytes = &self.buf[self.parsed..self.end];
        let mut at = 0;
        while let Some(raw) = bytes[at..].first_chunk::<IMSG_HEADER_SIZE>() {
            let len = u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
            if !plain.contains(&len) || len > bytes.len() - at {
                break;
            }
            at += len;
        }
        self.parsed += at;
    }

    /// Checks the header at `parsed` and finds its fd.
    fn check_header(&mut self, raw: &[u8; IMSG_HEADER_SIZE]) -> Result<()> {
        let (hdr, marked) = ImsgHdr::from_bytes(raw);
        let len = hdr.len as usize;
        if !(IMSG_HEADER_SIZE..=self.maxsize).contains(&len) {
            return Err(Error::HeaderLength {
                len: hdr.len,
                max: self.maxsize,
            });
        }
        if marked {
            let start = self.base + self.parsed as u64;
            match self.pending_fd.take() {
                Some((fd, at)) if at <= start => self.head_fd = Some(fd),
                other => {
                    self.pending_fd = other;
                    return Err(Error::MissingFd { type_: hdr.type_ });
                }
            }
        }
        self.head_len = len;
        Ok(())
    }

    /// Takes in one chunk of the stream and the fd that came with it.
    /// Complete messages become available through [`Reader::pop`].
    pub fn ingest(&mut self, mut chunk: &[u8], mut fd: Option<OwnedFd>) -> Result<()> {
        loop {
            let spare = self.spare_mut();
            let n = spare.len().min(chunk.len());
            spare[..n].copy_from_slice(&chunk[..n]);
            self.commit(n, fd.take())?;
            chunk = &chunk[n..];
            if chunk.is_empty() {
                return Ok(());
            }
        }
    }

    /// The first complete message still in the buffer. The
    /// bookkeeping comes first: once a part of the message that must be
    /// dropped exists, nothing may panic before it is handed out, or an
    /// unwinding build keeps every part in memory for the cleanup and
    /// copies the message from slot to slot (64-byte messages: 95 ns
    /// against 71 ns per message read).
    #[inline(always)]
    fn take_ready(&mut self) -> Option<Imsg> {
        if self.pos >= self.parsed {
            return None;
        }
        let start = self.pos;
        let raw = self.buf.get(start..)?.first_chunk()?;
        let (hdr, _) = ImsgHdr::from_bytes(raw);
        // Checked when the header came in: 16 <= len, and the message
        // ends within the buffer, so none of this wraps.
        let at = self.base.wrapping_add(start as u64);
        let from = start.wrapping_add(IMSG_HEADER_SIZE);
        let len = (hdr.len as usize).wrapping_sub(IMSG_HEADER_SIZE);
        self.pos = from.wrapping_add(len);
        if self.pos == self.end {
            self.base += self.end as u64;
            self.pos = 0;
            self.parsed = 0;
            self.end = 0;
        }
        let data = Payload::shared(&self.buf, from, len);
        let fd = match self.ready_fds.front() {
            Some(&(owner, _)) if owner == at => self.ready_fds.pop_front().map(|(_, fd)| fd),
            _ => None,
        };
        Some(Imsg { hdr, data, fd })
    }

    /// Forced inline, with `take_ready` and `ImsgBuf::read_one`: left to
    /// the compiler, the message was moved through each call's return
    /// slot (when it was 128 bytes, about 20 ns of a 64-byte message's
    /// 130).
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Imsg> {
        if !self.taken.is_empty() {
            return self.taken.pop_front();
        }
        self.take_ready()
    }

    /// Checks that the stream may end here.
    pub fn eof(&mut self) -> Result<()> {
        let buffered = self.end - self.parsed;
        if buffered > 0 {
            return Err(Error::Truncated { buffered });
        }
        if self.pending_fd.take().is_some() {
            return Err(Error::TooManyFds);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::IMSG_FD_MARK;

    fn frame(type_: u32, payload: &[u8], fd: bool) -> Vec<u8> {
        let hdr = ImsgHdr {
            type_,
            len: (IMSG_HEADER_SIZE + payload.len()) as u32,
            peerid: 9,
            pid: 42,
        };
        let mut v = hdr.to_bytes(fd).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn byte_by_byte_reassembly() {
        let mut stream = frame(1, b"hello", false);
        stream.extend(frame(2, b"", false));
        let mut r = Reader::new(16384);
        for b in &stream {
            r.ingest(std::slice::from_ref(b), None).unwrap();
        }
        let a = r.pop().unwrap();
        assert_eq!((a.hdr.type_, a.hdr.peerid, a.hdr.pid), (1, 9, 42));
        assert_eq!(a.data, b"hello");
        assert_eq!(r.pop().unwrap().data, b"");
        assert!(r.pop().is_none());
        r.eof().unwrap();
    }

    #[test]
    fn header_length_limits() {
        let mut r = Reader::new(16384);
        let mut bad = frame(1, b"", false);
        bad[4..8].copy_from_slice(&15u32.to_ne_bytes());
        assert!(matches!(
            r.ingest(&bad, None),
            Err(Error::HeaderLength { len: 15, .. })
        ));
        let mut r = Reader::new(16384);
        bad[4..8].copy_from_slice(&16385u32.to_ne_bytes());
        assert!(matches!(
            r.ingest(&bad, None),
            Err(Error::HeaderLength { len: 16385, .. })
        ));
        // The fd mark is not part of the length.
        let mut r = Reader::new(16384);
        bad[4..8].copy_from_slice(&(16 | IMSG_FD_MARK).to_ne_bytes());
        assert!(matches!(r.ingest(&bad, None), Err(Error::MissingFd { .. })));
    }

    #[test]
    fn truncated_at_eof() {
        let f = frame(1, b"abc", false);
        for cut in 1..f.len() {
            let mut r = Reader::new(16384);
            r.ingest(&f[..cut], None).unwrap();
            assert!(r.pop().is_none());
            assert!(matches!(r.eof(), Err(Error::Truncated { buffered }) if buffered == cut));
        }
    }

    #[test]
    fn fds_match_their_messages() {
        let mut r = Reader::new(16384);
        let mut stream = frame(1, b"x", false);
        r.ingest(&stream, None).unwrap();
        stream = frame(2, b"yy", true);
        r.ingest(&stream, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
        r.eof().unwrap();
    }

    #[test]
    fn fd_arriving_mid_header_belongs_to_the_next_header() {
        // The fd comes with a chunk that finishes the previous message.
        let first = frame(1, b"abcd", false);
        let second = frame(2, b"", true);
        let mut r = Reader::new(16384);
        r.ingest(&first[..10], None).unwrap();
        let mut rest = first[10..].to_vec();
        rest.extend_from_slice(&second);
        // Offset of the fd's chunk is 10, the fd-marked header starts at 20.
        r.ingest(&rest, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
    }

    #[test]
    fn fd_passes_over_unmarked_messages() {
        // Linux may return an fd with a read that starts at an earlier,
        // unmarked message: the fd belongs to the next marked one.
        let mut bytes = frame(1, b"count", false);
        bytes.extend_from_slice(&frame(2, b"range", true));
        let mut r = Reader::new(16384);
        r.ingest(&bytes, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
        r.eof().unwrap();
    }

    #[test]
    fn fd_protocol_violations() {
        // Mark without fd.
        let mut r = Reader::new(16384);
        assert!(matches!(
            r.ingest(&frame(3, b"", true), None),
            Err(Error::MissingFd { type_: 3 })
        ));
        // Fd with an unmarked message and none after it to claim it.
        let mut r = Reader::new(16384);
        r.ingest(&frame(4, b"", false), Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(matches!(r.eof(), Err(Error::TooManyFds)));
        // Two fds before any header consumed one.
        let mut r = Reader::new(16384);
        r.ingest(&[], Some(devnull())).unwrap();
        assert!(matches!(
            r.ingest(&[], Some(devnull())),
            Err(Error::TooManyFds)
        ));
        // An fd with no message at all.
        let mut r = Reader::new(16384);
        r.ingest(&[], Some(devnull())).unwrap();
        assert!(matches!(r.eof(), Err(Error::TooManyFds)));
    }

    #[test]
    fn unpopped_messages_survive_later_reads() {
        // Two complete messages, one with an fd, and half a header stay in
        // the buffer while the rest of the stream arrives.
        let mut stream = frame(1, b"one", true);
        stream.extend(frame(2, b"two", false));
        let cut = stream.len() + 5;
        stream.extend(frame(3, b"three", false));
        let mut r = Reader::new(16384);
        r.ingest(&stream[..cut], Some(devnull())).unwrap();
        r.ingest(&stream[cut..], None).unwrap();
        let got: Vec<(u32, Vec<u8>, bool)> = std::iter::from_fn(|| r.pop())
            .map(|m| (m.hdr.type_, m.data.into_vec(), m.fd.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, b"one".to_vec(), true),
                (2, b"two".to_vec(), false),
                (3, b"three".to_vec(), false)
            ]
        );
        r.eof().unwrap();
    }

    #[test]
    fn many_reads_through_the_buffer_keep_order() {
        // More than the read buffer holds, in odd-sized chunks, popped
        // only now and then.
        let mut stream = Vec::new();
        for i in 0..3000u32 {
            stream.extend(frame(i, &vec![i as u8; (i % 97) as usize], false));
        }
        let mut r = Reader::new(16384);
        let mut next = 0u32;
        for (n, chunk) in stream.chunks(4093).enumerate() {
            r.ingest(chunk, None).unwrap();
            if n % 3 == 0 {
                while let Some(m) = r.pop() {
                    assert_eq!(m.hdr.type_, next);
                    assert_eq!(m.data, vec![next as u8; (next % 97) as usize]);
                    next += 1;
                }
            }
        }
        while let Some(m) = r.pop() {
            assert_eq!(m.hdr.type_, next);
            next += 1;
        }
        assert_eq!(next, 3000);
        r.eof().unwrap();
    }

    #[test]
    fn message_larger_than_the_read_buffer() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = frame(7, b"small", false);
        stream.extend(frame(8, &payload, true));
        stream.extend(frame(9, b"", false));
        let mut r = Reader::new(IMSG_HEADER_SIZE + payload.len());
        let mut fd = Some(devnull());
        for chunk in stream.chunks(7000) {
            r.ingest(chunk, fd.take()).unwrap();
        }
        assert_eq!(r.pop().unwrap().data, b"small");
        let big = r.pop().unwrap();
        assert_eq!((big.hdr.type_, big.fd.is_some()), (8, true));
        assert_eq!(big.data, payload);
        assert_eq!(r.pop().unwrap().hdr.type_, 9);
        r.eof().unwrap();
    }

    #[test]
    fn held_payloads_survive_later_reads() {
        let big = |i: u32| vec![i as u8; 1000 + i as usize * 300];
        let mut stream = Vec::new();
        for i in 0..40u32 {
            stream.extend(frame(i, &big(i), false));
        }
        let mut r = Reader::new(16384);
        // The first message and the start of the second arrive; the first
        // is held while the rest of the stream is read, over and over
        // through the buffer, with every other message held too.
        let cut = frame(0, &big(0), false).len() + 100;
        r.ingest(&stream[..cut], None).unwrap();
        let first = r.pop().unwrap();
        assert!(r.pop().is_none());
        let mut held = vec![first];
        for chunk in stream[cut..].chunks(30_000) {
            r.ingest(chunk, None).unwrap();
            while let Some(m) = r.pop() {
                if m.hdr.type_ % 2 == 0 {
                    held.push(m);
                } else {
                    assert_eq!(m.data, big(m.hdr.type_));
                }
            }
        }
        assert_eq!(held.len(), 20);
        for m in held {
            assert_eq!(m.data, big(m.hdr.type_), "message {}", m.hdr.type_);
        }
        r.eof().unwrap();
    }

    #[test]
    fn holding_every_message_of_a_slow_stream_keeps_little_memory() {
        let mut r = Reader::new(16384);
        let mut held = Vec::new();
        for i in 0..200u32 {
            // One 40-byte message per read, every one kept.
            r.ingest(&frame(i, &[i as u8; 24], false), None).unwrap();
            held.push(r.pop().unwrap());
        }
        // Each read after the first went to a fresh buffer (the last one
        // was held), sized by what the held one received. (A buffer that
        // several payloads share counts once per payload here.)
        let pinned: usize = held
            .iter()
            .filter_map(|m| m.data.shared_buffer())
            .map(|b| b.len())
            .sum();
        assert!(
            pinned <= 200 * HELD_REFILL_MIN + IBUF_READ_SIZE,
            "{pinned} bytes held for 200 messages of 40"
        );
        for (i, m) in held.iter().enumerate() {
            assert_eq!(m.data, [i as u8; 24]);
        }
        // Once nothing is held, the buffer grows back to the full size.
        drop(held);
        for i in 0..3000u32 {
            r.ingest(&frame(i, &[1; 24], false), None).unwrap();
            assert!(r.pop().is_some());
        }
        assert_eq!(r.buf.len(), IBUF_READ_SIZE);
    }

    #[test]
    fn a_buffer_grown_for_a_huge_message_is_given_back() {
        let huge = vec![3u8; 3 << 20];
        let mut r = Reader::new(IMSG_HEADER_SIZE + huge.len());
        for chunk in frame(1, &huge, false).chunks(60_000) {
            r.ingest(chunk, None).unwrap();
        }
        assert!(r.buf.len() >= huge.len());
        assert_eq!(r.pop().unwrap().data, huge);
        r.ingest(&frame(2, b"next", false), None).unwrap();
        assert_eq!(r.buf.len(), IBUF_READ_SIZE);
        assert_eq!(r.pop().unwrap().data, b"next");
    }

    #[test]
    fn a_failed_reader_stays_failed() {
        let mut r = Reader::new(16384);
        let mut bad = frame(1, b"", false);
        bad[4..8].copy_from_slice(&3u32.to_ne_bytes());
        assert!(r.ingest(&bad, None).is_err());
        assert!(matches!(
            r.ingest(&frame(2, b"", false), None),
            Err(Error::Poisoned)
        ));
    }
}
