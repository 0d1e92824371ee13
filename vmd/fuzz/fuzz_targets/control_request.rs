//! The control socket's request path on hostile bytes: the stream a client
//! sends goes through the imsg decoder, and every message it yields
//! through the request checks, for root and for another user.
#![no_main]

use imsg::Reader;
use libfuzzer_sys::fuzz_target;
use vmd::control::{check_request, Rejected};

fuzz_target!(|data: &[u8]| {
    let Some((&who, stream)) = data.split_first() else {
        return;
    };
    let uid = if who & 1 == 0 { 0 } else { 1000 };
    let mut reader = Reader::new(16384);
    for chunk in stream.chunks(1 + usize::from(who >> 1)) {
        if reader.ingest(chunk, None).is_err() {
            return;
        }
        while let Some(msg) = reader.pop() {
            match check_request(msg.hdr.type_, &msg.data, uid) {
                Ok(c) => {
                    assert_eq!(c.type_, msg.hdr.type_);
                    assert!(c.data.len() <= msg.data.len().max(16384));
                }
                Err(Rejected::Fail(e)) => assert!(e == libc::EPERM || e == libc::EINVAL),
                Err(Rejected::Close) => {}
            }
        }
    }
});
