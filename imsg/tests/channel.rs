//! ImsgBuf over real socketpairs: round trips, fd passing, limits, and
//! every kind of bad input a peer can send.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use imsg::{Error, ImsgBuf, ImsgHdr, ReadStatus, IMSG_FD_MARK, MAX_IMSGSIZE};

fn pair() -> (ImsgBuf, ImsgBuf) {
    let (a, b) = UnixStream::pair().unwrap();
    (ImsgBuf::new(a), ImsgBuf::new(b))
}

fn raw_pair() -> (UnixStream, ImsgBuf) {
    let (a, b) = UnixStream::pair().unwrap();
    (a, ImsgBuf::new(b))
}

fn header(type_: u32, len: u32, fd: bool) -> Vec<u8> {
    ImsgHdr {
        type_,
        len,
        peerid: 1,
        pid: 2,
    }
    .to_bytes(fd)
    .to_vec()
}

fn tempfile() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "imsg-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

/// Sends raw bytes with one fd attached, bypassing ImsgBuf's checks.
fn send_raw_with_fd(sock: &UnixStream, bytes: &[u8], fd: Option<&std::fs::File>) {
    use std::os::fd::AsRawFd;
    let mut cbuf = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: test-only sendmsg over buffers that live for the call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(f) = fd {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), f.as_raw_fd());
        }
        assert_eq!(
            libc::sendmsg(sock.as_raw_fd(), &msg, 0),
            bytes.len() as isize
        );
    }
}

#[test]
fn payload_sizes_round_trip_with_ids_preserved() {
    let (mut a, mut b) = pair();
    for (i, size) in [0usize, 1, 1000, MAX_IMSGSIZE - 16].into_iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        a.compose(10 + i as u32, 0xabcd_0000 + i as u32, 4242, None, &payload)
            .unwrap();
        a.flush().unwrap();
        let m = b.read_one().unwrap().unwrap();
        assert_eq!(m.hdr.type_, 10 + i as u32);
        assert_eq!(m.hdr.len as usize, 16 + size);
        assert_eq!(m.hdr.peerid, 0xabcd_0000 + i as u32);
        assert_eq!(m.hdr.pid, 4242);
        assert_eq!(m.data, payload);
        assert!(m.fd.is_none());
    }
    // pid 0 means our own pid, as in C.
    a.compose(1, 0, 0, None, b"").unwrap();
    a.flush().unwrap();
    assert_eq!(b.read_one().unwrap().unwrap().hdr.pid, std::process::id());
    drop(a);
    assert!(b.read_one().unwrap().is_none(), "clean EOF");
}

#[test]
fn fds_pass_and_work() {
    let (mut a, mut b) = pair();
    a.allow_fdpass();
    b.allow_fdpass();
    for i in 0..3 {
        let mut f = tempfile();
        a.compose(5, i, 0, Some(f.try_clone().unwrap().into()), b"fd")
            .unwrap();
        a.compose(6, i, 0, None, b"nofd").unwrap();
        a.flush().unwrap();
        let mut m = b.read_one().unwrap().unwrap();
        let fd: OwnedFd = m.take_fd().expect("fd arrives");
        let mut g = std::fs::File::from(fd);
        g.write_all(b"through the socket").unwrap();
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through the socket");
        assert!(b.read_one().unwrap().unwrap().fd.is_none());
    }
}

#[test]
fn forward_drops_the_fd() {
    let (mut a, mut b) = pair();
    let (mut c, mut d) = pair();
    a.allow_fdpass();
    b.allow_fdpass();
    c.allow_fdpass();
    d.allow_fdpass();
    a.compose(9, 3, 77, Some(tempfile().into()), b"payload")
        .unwrap();
    a.flush().unwrap();
    let m = b.read_one().unwrap().unwrap();
    assert!(m.fd.is_some());
    c.forward(&m).unwrap();
    c.flush().unwrap();
    let f = d.read_one().unwrap().unwrap();
    assert_eq!((f.hdr.type_, f.hdr.peerid, f.hdr.pid), (9, 3, 77));
    assert_eq!(f.data, b"payload");
    assert!(f.fd.is_none());
}

#[test]
fn limits_and_exact_payloads() {
    let (mut a, mut b) = pair();
    assert!(matches!(
        a.compose(1, 0, 0, None, &vec![0; MAX_IMSGSIZE - 15]),
        Err(Error::TooBig { .. })
    ));
    assert!(matches!(
        a.compose(1, 0, 0, Some(tempfile().into()), b""),
        Err(Error::FdPassingDisabled)
    ));
    // Both errors leave the channel usable.
    a.compose(1, 0, 0, None, &7u32.to_ne_bytes()).unwrap();
    a.flush().unwrap();
    let m = b.read_one().unwrap().unwrap();
    assert_eq!(m.get::<u32>().unwrap(), 7);
    assert!(matches!(
        m.get::<u64>(),
        Err(Error::Payload {
            expected: 8,
            got: 4,
            ..
        })
    ));
    assert!(m.data_exact(4).is_ok());

    assert!(a.set_maxsize(u32::MAX - 15).is_err());
    a.set_maxsize(65535 - 16).unwrap();
    b.set_maxsize(65535 - 16).unwrap();
    a.compose(2, 0, 0, None, &vec![1; 40000]).unwrap();
    a.flush().unwrap();
    assert_eq!(b.read_one().unwrap().unwrap().data.len(), 40000);
}

fn expect_error(raw: &[u8], fd: Option<&std::fs::File>, fdpass: bool) -> Error {
    let (s, mut b) = raw_pair();
    if fdpass {
        b.allow_fdpass();
    }
    send_raw_with_fd(&s, raw, fd);
    drop(s);
    let err = loop {
        match b.read_one() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error for {raw:?}"),
            Err(e) => break e,
        }
    };
    // The channel stays dead.
    assert!(matches!(b.read_one(), Err(Error::Poisoned)));
    assert!(matches!(
        b.compose(1, 0, 0, None, b""),
        Err(Error::Poisoned)
    ));
    err
}

#[test]
fn bad_input_is_named_and_poisons() {
    let e = expect_error(&header(1, 15, false), None, false);
    assert!(matches!(e, Error::HeaderLength { len: 15, .. }), "{e}");
    let e = expect_error(&header(1, 16385, false), None, false);
    assert!(matches!(e, Error::HeaderLength { len: 16385, .. }), "{e}");
    let e = expect_error(&header(1, !IMSG_FD_MARK, false), None, false);
    assert!(matches!(e, Error::HeaderLength { .. }), "{e}");
    let mut trunc = header(1, 20, false);
    trunc.extend_from_slice(b"ab");
    let e = expect_error(&trunc, None, false);
    assert!(matches!(e, Error::Truncated { buffered: 18 }), "{e}");
    let e = expect_error(&header(1, 16, true), None, true);
    assert!(matches!(e, Error::MissingFd { type_: 1 }), "{e}");
    // Without fd passing, a marked message has lost its fd.
    let f = tempfile();
    let e = expect_error(&header(1, 16, true), Some(&f), false);
    assert!(matches!(e, Error::MissingFd { type_: 1 }), "{e}");
    // An fd that no marked message claims.
    let e = expect_error(&header(2, 16, false), Some(&f), true);
    assert!(matches!(e, Error::TooManyFds), "{e}");
    // Two fds for one message: the header arrives in two sendmsgs, each
    // with an fd.
    let (s, mut b) = raw_pair();
    b.allow_fdpass();
    let h = header(3, 16, true);
    send_raw_with_fd(&s, &h[..8], Some(&f));
    send_raw_with_fd(&s, &h[8..], Some(&f));
    drop(s);
    let mut saw = None;
    for _ in 0..4 {
        match b.read_one() {
            Ok(Some(m)) => assert!(m.fd.is_some()),
            Ok(None) => break,
            Err(e) => {
                saw = Some(e);
                break;
            }
        }
    }
    assert!(matches!(saw, Some(Error::TooManyFds)), "{saw:?}");
    // The message before a bad one is delivered; nothing partial after it.
    let mut two = header(4, 16, false);
    two.extend(header(5, 10, false));
    let (s, mut b) = raw_pair();
    send_raw_with_fd(&s, &two, None);
    assert!(b.read().is_err());
    assert!(matches!(b.get(), Err(Error::Poisoned)));
}

#[test]
fn nonblocking_with_mio() {
    use mio::{Events, Interest, Poll, Token};
    let (mut a, mut b) = pair();
    b.set_nonblocking(true).unwrap();
    assert_eq!(b.read().unwrap(), ReadStatus::WouldBlock);
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut b, Token(1), Interest::READABLE)
        .unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..500u32 {
            a.compose(i, i, 0, None, &i.to_ne_bytes()).unwrap();
            if i % 50 == 0 {
                a.flush().unwrap();
            }
        }
        a.flush().unwrap();
    });
    let mut events = Events::with_capacity(8);
    let mut next = 0u32;
    let mut eof = false;
    while !eof {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))
            .unwrap();
        assert!(!events.is_empty(), "timed out at message {next}");
        loop {
            match b.read().unwrap() {
                ReadStatus::Data => {}
                ReadStatus::WouldBlock => break,
                ReadStatus::Eof => {
                    eof = true;
                    break;
                }
            }
            while let Some(m) = b.get().unwrap() {
                assert_eq!(m.hdr.type_, next);
                assert_eq!(m.get::<u32>().unwrap(), next);
                next += 1;
            }
        }
    }
    sender.join().unwrap();
    assert_eq!(next, 500);
}
