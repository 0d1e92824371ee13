//! Property: however a stream of messages is cut into writes and reads,
//! every message comes out intact and in order.

use std::io::Write;
use std::os::unix::net::UnixStream;

use imsg::{ImsgBuf, ImsgHdr, IMSG_HEADER_SIZE};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Msg {
    type_: u32,
    peerid: u32,
    pid: u32,
    data: Vec<u8>,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        any::<u32>(),
        any::<u32>(),
        1u32..,
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..64),
            1 => proptest::collection::vec(any::<u8>(), 0..16368),
        ],
    )
        .prop_map(|(type_, peerid, pid, data)| Msg {
            type_,
            peerid,
            pid,
            data,
        })
}

fn encode(msgs: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let hdr = ImsgHdr {
            type_: m.type_,
            len: (IMSG_HEADER_SIZE + m.data.len()) as u32,
            peerid: m.peerid,
            pid: m.pid,
        };
        out.extend_from_slice(&hdr.to_bytes(false));
        out.extend_from_slice(&m.data);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Raw writes split at random points; ImsgBuf reads.
    #[test]
    fn random_write_splits(msgs in proptest::collection::vec(msg(), 1..40),
                           cuts in proptest::collection::vec(1usize..5000, 1..50)) {
        let stream = encode(&msgs);
        let (mut w, r) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut at = 0;
            let mut i = 0;
            while at < stream.len() {
                let n = cuts[i % cuts.len()].min(stream.len() - at);
                w.write_all(&stream[at..at + n]).unwrap();
                at += n;
                i += 1;
            }
        });
        let mut r = ImsgBuf::new(r);
        for m in &msgs {
            let got = r.read_one().unwrap().expect("message before EOF");
            prop_assert_eq!(got.hdr.type_, m.type_);
            prop_assert_eq!(got.hdr.peerid, m.peerid);
            prop_assert_eq!(got.hdr.pid, m.pid);
            prop_assert_eq!(&got.data, &m.data);
        }
        writer.join().unwrap();
        prop_assert!(r.read_one().unwrap().is_none());
    }

    /// ImsgBuf writes through a small socket buffer in non-blocking mode,
    /// so partial sendmsgs happen; a reader with a tiny receive buffer
    /// reads in small pieces.
    #[test]
    fn imsgbuf_to_imsgbuf(msgs in proptest::collection::vec(msg(), 1..40)) {
        let (w, r) = UnixStream::pair().unwrap();
        set_buf(&w, libc::SO_SNDBUF, 4096);
        set_buf(&r, libc::SO_RCVBUF, 4096);
        let expect = msgs.clone();
        let writer = std::thread::spawn(move || {
            let mut w = ImsgBuf::new(w);
            w.set_nonblocking(true).unwrap();
            for m in &msgs {
                w.compose(m.type_, m.peerid, m.pid, None, &m.data).unwrap();
                w.write().unwrap();
            }
            w.flush().unwrap();
        });
        let mut r = ImsgBuf::new(r);
        for m in &expect {
            let got = r.read_one().unwrap().expect("message before EOF");
            prop_assert_eq!(got.hdr.type_, m.type_);
            prop_assert_eq!(&got.data, &m.data);
        }
        writer.join().unwrap();
        prop_assert!(r.read_one().unwrap().is_none());
    }

    /// As above with an fd on some messages, flushed in random batches:
    /// each fd arrives with its own message (the file it names holds that
    /// message's index).
    #[test]
    fn fds_stay_with_their_messages(
        msgs in proptest::collection::vec((msg(), any::<bool>(), 1usize..6), 1..30)
    ) {
        let (w, r) = UnixStream::pair().unwrap();
        set_buf(&w, libc::SO_SNDBUF, 4096);
        set_buf(&r, libc::SO_RCVBUF, 4096);
        let expect: Vec<(Msg, bool)> = msgs.iter().map(|(m, fd, _)| (m.clone(), *fd)).collect();
        let writer = std::thread::spawn(move || {
            let mut w = ImsgBuf::new(w);
            w.allow_fdpass();
            w.set_nonblocking(true).unwrap();
            for (i, (m, with_fd, batch)) in msgs.iter().enumerate() {
                let fd = with_fd.then(|| index_file(i).into());
                w.compose(m.type_, m.peerid, m.pid, fd, &m.data).unwrap();
                if i % batch == 0 {
                    w.write().unwrap();
                }
            }
            w.flush().unwrap();
        });
        let mut r = ImsgBuf::new(r);
        r.allow_fdpass();
        for (i, (m, with_fd)) in expect.iter().enumerate() {
            let got = r.read_one().unwrap().expect("message before EOF");
            prop_assert_eq!(got.hdr.type_, m.type_);
            prop_assert_eq!(&got.data, &m.data);
            prop_assert_eq!(got.fd.is_some(), *with_fd, "fd of message {}", i);
            if let Some(fd) = got.fd {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).unwrap();
                prop_assert_eq!(text, i.to_string());
            }
        }
        writer.join().unwrap();
        prop_assert!(r.read_one().unwrap().is_none());
    }
}

/// An unlinked file holding `i`, open for reading from its start.
fn index_file(i: usize) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("imsg-fd-{}-{i}", std::process::id()));
    std::fs::write(&path, i.to_string()).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

fn set_buf(s: &UnixStream, opt: libc::c_int, size: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt with a valid int option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// A writer that queues faster than its socket drains, with fds on some
/// messages: the queue runs far past the point where sent messages are
/// dropped from its front, and every message still comes out in order
/// with its own fd.
#[test]
fn a_long_backlog_keeps_order_and_fds() {
    let (w, r) = UnixStream::pair().unwrap();
    set_buf(&w, libc::SO_SNDBUF, 4096);
    set_buf(&r, libc::SO_RCVBUF, 4096);
    let mut w = ImsgBuf::new(w);
    let mut r = ImsgBuf::new(r);
    for ib in [&mut w, &mut r] {
        ib.allow_fdpass();
        ib.set_nonblocking(true).unwrap();
    }
    let total = 600;
    let payload = |i: usize| vec![i as u8; 700 + (i * 37) % 1500];
    let (mut sent, mut got) = (0, 0);
    let drain = |r: &mut ImsgBuf, got: &mut usize| {
        while r.read().unwrap() == imsg::ReadStatus::Data {
            while let Some(m) = r.get().unwrap() {
                assert_eq!(m.hdr.type_ as usize, *got);
                assert_eq!(m.data, payload(*got));
                assert_eq!(m.fd.is_some(), *got % 5 == 0, "fd of message {got}");
                if let Some(fd) = m.fd {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).unwrap();
                    assert_eq!(text, got.to_string());
                }
                *got += 1;
            }
        }
    };
    while got < total {
        // More messages queued than one write takes: the backlog grows.
        for _ in 0..6 {
            if sent < total {
                let fd = (sent % 5 == 0).then(|| index_file(sent).into());
                w.compose(sent as u32, 0, 0, fd, &payload(sent)).unwrap();
                sent += 1;
            }
        }
        w.write().unwrap();
        drain(&mut r, &mut got);
    }
    assert_eq!(w.queue_len(), 0);
}
