//! The imsg reader against arbitrary streams: the input is cut into chunks
//! (some carrying an fd) by a small prefix language, then fed to the
//! decoder, with messages popped after some chunks and left in the buffer
//! across others. It must never panic, never hand out a message whose
//! length disagrees with its header, and stop for good after an error.
#![no_main]

use imsg::{Reader, IMSG_HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    // Maximum sizes up to one beyond the 65535-byte read buffer.
    let maxsize = [16usize, 64, 1024, 16384, 65535, 100_000][usize::from(sel & 7) % 6];
    let scale = [1usize, 16, 256, 2048][usize::from(sel >> 3 & 3)];
    let mut r = Reader::new(maxsize);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let mut bytes_in = 0usize;
    let mut bytes_out = 0usize;
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = (usize::from(ctl & 0x3f) * scale).min(tail.len());
        let fd = (ctl & 0x80 != 0).then(|| devnull.try_clone().unwrap().into());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if r.ingest(chunk, fd).is_err() {
            assert!(r.ingest(b"", None).is_err(), "a failed reader accepted more");
            return;
        }
        bytes_in += chunk.len();
        if ctl & 0x40 != 0 {
            while let Some(m) = r.pop() {
                assert_eq!(m.hdr.len as usize, IMSG_HEADER_SIZE + m.data.len());
                assert!(m.hdr.len as usize <= maxsize);
                bytes_out += m.hdr.len as usize;
            }
        }
    }
    while let Some(m) = r.pop() {
        bytes_out += m.hdr.len as usize;
    }
    match r.eof() {
        Ok(()) => assert_eq!(bytes_in, bytes_out, "bytes lost at a clean EOF"),
        Err(_) => assert!(bytes_out <= bytes_in),
    }
});
