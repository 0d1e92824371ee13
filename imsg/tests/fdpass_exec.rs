//! An fd passed across a real fork+exec: the child is this test binary run
//! again, finds its end of the socket through an environment variable,
//! receives a file's fd over imsg, writes through it, and answers.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;

use imsg::ImsgBuf;

const CHILD_ENV: &str = "IMSG_FDPASS_CHILD_FD";

/// The child's side. Run as a test so the harness can exec it; in a normal
/// run (no environment variable) it does nothing.
#[test]
fn child_side() {
    let Ok(fd) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fd: i32 = fd.parse().unwrap();
    // SAFETY: the parent passed us this inherited socket and nothing else
    // in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ib = ImsgBuf::new(sock);
    ib.allow_fdpass();
    let mut m = ib.read_one().unwrap().expect("a message with an fd");
    assert_eq!(m.hdr.type_, 1);
    let mut f = std::fs::File::from(m.take_fd().expect("the fd"));
    f.write_all(b"written by the child").unwrap();
    // Send a pipe back the other way.
    let (mut rd, wr) = std::io::pipe().unwrap();
    ib.compose(2, 0, 0, Some(OwnedFd::from(wr)), b"pipe")
        .unwrap();
    ib.flush().unwrap();
    let mut s = String::new();
    rd.read_to_string(&mut s).unwrap();
    assert_eq!(s, "parent wrote");
    ib.compose(3, 0, 0, None, b"done").unwrap();
    ib.flush().unwrap();
}

#[test]
fn fd_crosses_fork_and_exec() {
    let (parent, child) = UnixStream::pair().unwrap();
    // The child's end must survive exec: clear close-on-exec on a dup.
    // SAFETY: dup of a valid fd; the result is owned below.
    let inherit = unsafe { libc::dup(child.as_raw_fd()) };
    assert!(inherit >= 0);
    // SAFETY: inherit is a fresh fd we own.
    let inherit_owned = unsafe { OwnedFd::from_raw_fd(inherit) };
    drop(child);
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_side", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, inherit.to_string())
        .spawn()
        .unwrap();
    drop(inherit_owned);

    let path = std::env::temp_dir().join(format!("imsg-exec-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();

    let mut ib = ImsgBuf::new(parent);
    ib.allow_fdpass();
    ib.compose(1, 0, 0, Some(file.try_clone().unwrap().into()), b"file")
        .unwrap();
    ib.flush().unwrap();
    let mut m = ib.read_one().unwrap().expect("pipe from child");
    assert_eq!(m.hdr.type_, 2);
    let mut pipe = std::fs::File::from(m.take_fd().expect("pipe fd"));
    pipe.write_all(b"parent wrote").unwrap();
    drop(pipe);
    let done = ib.read_one().unwrap().expect("done");
    assert_eq!(done.hdr.type_, 3);
    assert!(proc.wait().unwrap().success(), "child failed");
    let mut s = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "written by the child");
}
