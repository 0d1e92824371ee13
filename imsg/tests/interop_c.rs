//! Interop with OpenBSD's C imsg, both directions. The C peer
//! (tests/cpeer/peer.c, ours) is linked at test time against the imsg.c
//! and imsg-buffer.c of Debian's openbgpd source package, which
//! tests/cpeer/fetch-and-build.sh fetches from bookworm-backports. A
//! machine that cannot fetch it fails this test: it is not skipped.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use imsg::{Error, ImsgBuf, MAX_IMSGSIZE};

fn peer() -> &'static PathBuf {
    static PEER: OnceLock<PathBuf> = OnceLock::new();
    PEER.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("imsg-cpeer");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cpeer/fetch-and-build.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "building the C imsg peer failed (see above)");
        let version = std::fs::read_to_string(out.join("VERSION")).unwrap();
        eprintln!("C imsg peer built from:\n{version}");
        out.join("peer")
    })
}

/// Starts the peer with its end of a socketpair as an inherited fd.
fn spawn(args: &[&str]) -> (UnixStream, Child) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    // SAFETY: dup of a valid fd; the copy has no close-on-exec and is
    // owned below.
    let fd = unsafe { libc::dup(theirs.as_raw_fd()) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    drop(theirs);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("FD", &fd.to_string()))
        .collect();
    let child = Command::new(peer())
        .args(&args)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    drop(owned);
    (ours, child)
}

fn tempfile(tag: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("imsg-interop-{tag}-{}", std::process::id()));
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

#[test]
fn rust_and_c_exchange_every_size_with_and_without_fds() {
    let (sock, mut child) = spawn(&["echo", "FD"]);
    let mut ib = ImsgBuf::new(sock);
    ib.allow_fdpass();
    let sizes = [0usize, 1, 1000, MAX_IMSGSIZE - 16];
    for (i, &size) in sizes.iter().enumerate() {
        for with_fd in [false, true] {
            let payload: Vec<u8> = (0..size).map(|j| (j * 31 + i) as u8).collect();
            let peerid = 0x1000_0000 | (i as u32) << 1 | with_fd as u32;
            let pid = 50_000 + i as u32;
            let mut file = with_fd.then(|| tempfile(&format!("{i}")));
            let fd = file.as_ref().map(|f| f.try_clone().unwrap().into());
            ib.compose(100 + i as u32, peerid, pid, fd, &payload)
                .unwrap();
            ib.flush().unwrap();
            let mut m = ib.read_one().unwrap().expect("C answered");
            assert_eq!(m.hdr.type_, 1100 + i as u32);
            assert_eq!(m.hdr.peerid, peerid, "peerid preserved");
            assert_eq!(m.hdr.pid, pid, "pid preserved");
            assert_eq!(m.data, payload, "payload of {size} bytes");
            match (&mut file, m.take_fd()) {
                (Some(f), Some(back)) => {
                    // C wrote through the fd we sent and passed it back.
                    std::fs::File::from(back).write_all(b"R\n").unwrap();
                    let mut s = String::new();
                    f.rewind().unwrap();
                    f.read_to_string(&mut s).unwrap();
                    assert_eq!(s, "C\nR\n");
                }
                (None, None) => {}
                (f, back) => panic!("fd mismatch: sent {}, got {}", f.is_some(), back.is_some()),
            }
        }
    }
    ib.compose(999, 0, 0, None, b"").unwrap();
    ib.flush().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn c_rejects_an_oversized_message_from_rust() {
    let (sock, mut child) = spawn(&["echo", "FD"]);
    let mut ib = ImsgBuf::new(sock);
    ib.set_maxsize(65535 - 16).unwrap();
    ib.compose(1, 0, 0, None, &vec![0u8; MAX_IMSGSIZE - 15])
        .unwrap();
    ib.flush().unwrap();
    // The peer's imsgbuf_read fails with ERANGE and it exits 3.
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn rust_rejects_an_oversized_message_from_c() {
    let (sock, mut child) = spawn(&["send-big", "FD", "20000"]);
    let mut ib = ImsgBuf::new(sock);
    let err = ib.read_one().unwrap_err();
    assert!(
        matches!(
            err,
            Error::HeaderLength {
                len: 20016,
                max: MAX_IMSGSIZE
            }
        ),
        "{err}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn both_refuse_to_compose_oversized_messages() {
    let st = Command::new(peer())
        .args(["compose-big", &(MAX_IMSGSIZE - 15).to_string()])
        .status()
        .unwrap();
    assert_eq!(
        st.code(),
        Some(4),
        "C's imsg_compose accepted an oversized message"
    );
    let st = Command::new(peer())
        .args(["compose-big", &(MAX_IMSGSIZE - 16).to_string()])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let (a, _b) = UnixStream::pair().unwrap();
    let mut ib = ImsgBuf::new(a);
    assert!(matches!(
        ib.compose(1, 0, 0, None, &vec![0; MAX_IMSGSIZE - 15]),
        Err(Error::TooBig { .. })
    ));
}
