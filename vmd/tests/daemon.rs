//! vmd as a daemon: the privilege-separated processes start, the control
//! socket answers a status request the way vmctl sends it, garbage on the
//! socket is refused without harm, and SIGTERM stops everything.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use imsg::{ImsgBuf, ImsgHdr};

const GET_INFO_VM_REQUEST: u32 = 18;
const GET_INFO_VM_END_DATA: u32 = 20;
const TERMINATE_VM_REQUEST: u32 = 15;
const TERMINATE_VM_RESPONSE: u32 = 16;
const CTL_OK: u32 = 0;
const CTL_FAIL: u32 = 1;
const CTL_VERBOSE: u32 = 2;

struct Daemon {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn skip() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } != 0).then_some("vmd needs root to start its processes")
}

fn start(tag: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("vmd-daemon-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vmd.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("-d")
        .env("VMD_CONTROL_SOCKET", &sock)
        .spawn()
        .unwrap();
    let d = Daemon { child, dir, sock };
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&d.sock).is_err() {
        assert!(Instant::now() < deadline, "control socket never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    d
}

fn connect(sock: &Path) -> ImsgBuf {
    ImsgBuf::new(UnixStream::connect(sock).unwrap())
}

/// The four children, once the parent has started them all (the control
/// socket can appear before the last one is running).
fn all_children(pid: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = children_of(pid);
        if kids.len() >= 4 || Instant::now() > deadline {
            return kids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn status_request_is_answered_and_garbage_is_refused() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: status_request_is_answered_and_garbage_is_refused: {why}"
        );
        return;
    }
    let mut d = start("status");
    assert_eq!(
        all_children(d.child.id()).len(),
        4,
        "control, priv, vmm, agentx"
    );

    // vmctl status: a request with no payload, answered with the end of
    // the (empty) list.
    let mut c = connect(&d.sock);
    c.compose(GET_INFO_VM_REQUEST, 0, 0, None, &[]).unwrap();
    c.flush().unwrap();
    let m = c.read_one().unwrap().expect("an answer");
    assert_eq!(m.hdr.type_, GET_INFO_VM_END_DATA);

    // A request with the wrong payload size: IMSG_CTL_FAIL and closed.
    let mut bad = connect(&d.sock);
    bad.compose(TERMINATE_VM_REQUEST, 0, 0, None, &[1, 2, 3])
        .unwrap();
    bad.flush().unwrap();
    let m = bad.read_one().unwrap().expect("a refusal");
    assert_eq!(m.hdr.type_, CTL_FAIL);
    assert_eq!(m.get::<i32>().unwrap(), libc::EINVAL);
    assert!(bad.read_one().unwrap().is_none(), "connection closed");

    // Stopping an unknown VM by id: ENOENT, as vmd answers.
    let mut vid = vec![0u8; 76];
    vid[0..4].copy_from_slice(&7u32.to_ne_bytes());
    c.compose(TERMINATE_VM_REQUEST, 0, 0, None, &vid).unwrap();
    c.flush().unwrap();
    let m = c.read_one().unwrap().unwrap();
    assert_eq!(m.hdr.type_, TERMINATE_VM_RESPONSE);
    assert_eq!(
        i32::from_ne_bytes(m.data[0..4].try_into().unwrap()),
        libc::ENOENT
    );

    // Garbage: random bytes, a truncated header, a huge length.
    for junk in [
        (0..200u32)
            .map(|i| (i * 37 % 251) as u8)
            .collect::<Vec<u8>>(),
        vec![1, 2, 3],
        ImsgHdr {
            type_: 18,
            len: 0x7fff_ffff,
            peerid: 0,
            pid: 0,
        }
        .to_bytes(false)
        .to_vec(),
        ImsgHdr {
            type_: 999,
            len: 16,
            peerid: 0,
            pid: 0,
        }
        .to_bytes(false)
        .to_vec(),
    ] {
        let mut s = UnixStream::connect(&d.sock).unwrap();
        s.write_all(&junk).unwrap();
        // The end of the stream makes a truncated message detectable.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        // vmd closes the connection (possibly after an IMSG_CTL_FAIL).
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => panic!("connection not closed after {junk:?}: {e}"),
            }
        }
    }
    // A root-only request from root works; vmd is still up and answering.
    c.compose(CTL_VERBOSE, 0, 0, None, &1i32.to_ne_bytes())
        .unwrap();
    c.compose(GET_INFO_VM_REQUEST, 0, 0, None, &[]).unwrap();
    c.flush().unwrap();
    assert_eq!(c.read_one().unwrap().unwrap().hdr.type_, CTL_OK);
    assert_eq!(
        c.read_one().unwrap().unwrap().hdr.type_,
        GET_INFO_VM_END_DATA
    );
    assert!(d.child.try_wait().unwrap().is_none(), "vmd still running");
}

#[test]
fn sigterm_stops_every_process() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: sigterm_stops_every_process: {why}"
        );
        return;
    }
    let mut d = start("term");
    let kids = all_children(d.child.id());
    assert_eq!(kids.len(), 4);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "vmd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    for k in kids {
        assert!(
            !Path::new(&format!("/proc/{k}")).exists(),
            "child {k} survived"
        );
    }
}

#[test]
fn killing_a_child_stops_the_daemon() {
    if let Some(why) = skip() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: killing_a_child_stops_the_daemon: {why}"
        );
        return;
    }
    let mut d = start("lost");
    let kids = all_children(d.child.id());
    // SAFETY: signalling a process we started.
    unsafe { libc::kill(kids[0] as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "vmd kept running without a child"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
