//! A private vmd for end-to-end tests: started on a temporary control
//! socket (optionally inside a network namespace of the test's own, and
//! with its log captured), driven with the real vmctl, and killed when
//! the test is done.

use std::io::Read;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::skip_without_kvm;

pub struct Daemon {
    pub child: Child,
    pub sock: PathBuf,
    /// vmd -d's stderr, when it was captured.
    log: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// What vmd and its processes logged so far (`Options::capture_log`).
    pub fn log(&self) -> String {
        text(self.log.as_ref().expect("vmd's log was not captured"))
    }

    /// SIGTERM, then vmd's exit status; panics if vmd takes over 10 s.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the vmd we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut self.child, Duration::from_secs(10)).expect("vmd did not exit on SIGTERM")
    }
}

/// The exit status of `child`, or None if it still runs after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes `pid`'s main thread started (vm processes start their
/// device processes there).
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Everything `r` yields, collected by a thread until it ends.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    out
}

/// How to run vmd besides `-d -f vm.conf`.
#[derive(Default)]
pub struct Options<'a> {
    /// Run vmd in this network namespace.
    pub netns: Option<&'a Netns>,
    /// Keep vmd's stderr for `Daemon::log` (it still goes nowhere else).
    pub capture_log: bool,
}

pub fn vmctl_path() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_vmd")).with_file_name("vmctl");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// vmctl against the test's vmd, not yet run.
pub fn vmctl_command(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new(vmctl_path());
    c.args(args).env("VMD_CONTROL_SOCKET", &d.sock);
    c
}

pub fn vmctl(d: &Daemon, args: &[&str]) -> Output {
    vmctl_command(d, args).output().unwrap()
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The status line of VM `name`, split into columns.
pub fn status_of(d: &Daemon, name: &str) -> Option<Vec<String>> {
    let out = vmctl(d, &["status", name]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.last().map(String::as_str) == Some(name))
}

/// Whether `vmctl status` shows VM `name` in `state`.
pub fn is_in_state(d: &Daemon, name: &str, state: &str) -> bool {
    status_of(d, name).is_some_and(|c| c[7] == state)
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a private vmd on `conf` (written to `dir`/vm.conf).
pub fn start_vmd(dir: &Path, conf: &str) -> Daemon {
    start_vmd_with(dir, conf, Options::default())
}

/// Starts a private vmd and waits until its control socket answers.
pub fn start_vmd_with(dir: &Path, conf: &str, opts: Options<'_>) -> Daemon {
    let d = spawn_vmd(dir, conf, opts);
    wait_for("the control socket", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&d.sock).is_ok()
    });
    d
}

/// Starts a private vmd without waiting for it.
pub fn spawn_vmd(dir: &Path, conf: &str, opts: Options<'_>) -> Daemon {
    let path = dir.join("vm.conf");
    std::fs::write(&path, conf).unwrap();
    let sock = dir.join("vmd.sock");
    let mut cmd = match opts.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.0])
                .arg(env!("CARGO_BIN_EXE_vmd"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_vmd")),
    };
    cmd.args(["-d", "-f"])
        .arg(&path)
        .env("VMD_CONTROL_SOCKET", &sock);
    if opts.capture_log {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    let log = child.stderr.take().map(collect);
    Daemon { child, sock, log }
}

/// Collects what VM `name` prints on its console, from the moment it runs.
pub fn attach(d: &Daemon, name: &str) -> (Vec<String>, Arc<Mutex<Vec<u8>>>) {
    let mut cols = Vec::new();
    wait_for("the vm to run", Duration::from_secs(10), || {
        cols = status_of(d, name).unwrap_or_default();
        cols.get(7).map(String::as_str) == Some("running")
    });
    let tty = format!("/dev/pts/{}", cols[5]);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&tty)
        .unwrap_or_else(|e| panic!("{tty}: {e}"));
    (cols, collect(f))
}

/// The console text collected by `attach`.
pub fn text(output: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&output.lock().unwrap()).into_owned()
}

pub fn root_and_kvm(test: &str) -> bool {
    if skip_without_kvm(test) {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: vmd needs root");
        return false;
    }
    true
}

/// A network namespace the test creates and deletes again.
pub struct Netns(pub String);

impl Netns {
    /// A new namespace, or a SKIPPED line and None where taps cannot be
    /// made.
    pub fn new(test: &str, tag: &str) -> Option<Netns> {
        if !Path::new("/dev/net/tun").exists() {
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: no /dev/net/tun");
            return None;
        }
        let name = format!("vmdt-{tag}-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "ip netns add: {out:?}");
        Some(Netns(name))
    }

    /// `ip -n <ns> args...`; panics if ip fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command run inside the namespace (with its own /sys).
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
