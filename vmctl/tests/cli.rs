//! vmctl as a user runs it: image creation checked with qemu-img, the
//! command-line errors of the C vmctl, and requests against a real vmd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn vmctl(args: &[&str], sock: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmctl"));
    c.args(args);
    if let Some(s) = sock {
        c.env("VMD_CONTROL_SOCKET", s);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vmctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn qemu_img(args: &[&str]) -> String {
    let o = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img");
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn create_makes_images_qemu_img_accepts() {
    let d = tmpdir("create");
    let raw = d.join("disk.raw");
    let o = vmctl(&["create", "-s", "64M", raw.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "vmctl: raw imagefile created\n");
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 64 << 20);

    let q = d.join("disk.qcow2");
    let o = vmctl(&["create", "-s", "1G", q.to_str().unwrap()], None);
    assert_eq!(stderr(&o), "vmctl: qcow2 imagefile created\n");
    qemu_img(&["check", q.to_str().unwrap()]);
    let info = qemu_img(&["info", "--output=json", q.to_str().unwrap()]);
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    assert!(info.contains("\"virtual-size\": 1073741824"), "{info}");

    // A derived image on a base.
    let child = d.join("child.qcow2");
    let o = vmctl(
        &["create", "-b", q.to_str().unwrap(), child.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    qemu_img(&["check", child.to_str().unwrap()]);
    let info = qemu_img(&["info", "--output=json", child.to_str().unwrap()]);
    assert!(info.contains("backing-filename"), "{info}");

    // Conversion of a raw image with data into qcow2.
    std::fs::write(d.join("seed"), vec![0xabu8; 1 << 20]).unwrap();
    let src = d.join("src.raw");
    let o = vmctl(&["create", "-s", "8M", src.to_str().unwrap()], None);
    assert!(o.status.success());
    let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xab; 4096], 3 << 20).unwrap();
    let conv = d.join("conv.qcow2");
    let o = vmctl(
        &[
            "create",
            "-i",
            src.to_str().unwrap(),
            conv.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    qemu_img(&["check", conv.to_str().unwrap()]);
    let cmp = Command::new("qemu-img")
        .args([
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            src.to_str().unwrap(),
            conv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn command_line_errors_match_vmctl() {
    let o = vmctl(&[], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "usage:\tvmctl [-v] command [arg ...]\n");
    let o = vmctl(&["s"], None);
    assert_eq!(
        stderr(&o),
        "ambiguous argument: s\nusage:\tvmctl [-v] command [arg ...]\n"
    );
    let o = vmctl(&["frobnicate"], None);
    assert_eq!(
        stderr(&o),
        "unknown argument: frobnicate\nusage:\tvmctl [-v] command [arg ...]\n"
    );
    let o = vmctl(&["create", "/tmp/x.img"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "could not create /tmp/x.img: missing size argument\nusage:\tvmctl [-v] create [-b base | -i disk] [-s size] disk\n"
    );
    let o = vmctl(&["create", "-s", "100K", "/tmp/x.img"], None);
    assert_eq!(stderr(&o), "vmctl: disk size must be at least 1MB\n");
    let o = vmctl(&["stop"], None);
    assert_eq!(stderr(&o), "usage:\tvmctl [-v] stop [-fw] [id | -a]\n");
    let o = vmctl(&["status"], Some(Path::new("/nonexistent/vmd.sock")));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "vmctl: connect: /nonexistent/vmd.sock: No such file or directory\n"
    );
}

struct Daemon(Child, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// The vmd binary is built next to ours.
fn vmd_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vmctl")).with_file_name("vmd")
}

#[test]
fn requests_against_a_running_vmd() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: requests_against_a_running_vmd: vmd needs root");
        return;
    }
    let vmd = vmd_binary();
    if !vmd.exists() {
        let st = Command::new("cargo")
            .args(["build", "-q", "-p", "vmd"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let d = tmpdir("vmd");
    let sock = d.join("vmd.sock");
    let child = Command::new(&vmd)
        .arg("-d")
        .env("VMD_CONTROL_SOCKET", &sock)
        .spawn()
        .unwrap();
    let _daemon = Daemon(child, d.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "vmd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = Some(sock.as_path());

    // No VMs: the header alone, and exit status 1 as the C vmctl.
    let o = vmctl(&["status"], s);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME\n"
    );
    assert_eq!(o.status.code(), Some(1));

    let o = vmctl(&["stop", "7"], s);
    assert_eq!(stderr(&o), "stopping vm: vm not found\n");
    assert_eq!(o.status.code(), Some(1));
    let o = vmctl(&["stop", "web"], s);
    assert_eq!(stderr(&o), "stopping vm web: vm not found\n");
    let o = vmctl(&["stop", "-a"], s);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vmctl(&["wait", "web"], s);
    assert_eq!(stderr(&o), "waiting for vm web: vm not found\n");
    let o = vmctl(&["pause", "web"], s);
    assert_eq!(
        stderr(&o),
        "vmctl: pause vm command failed: No such file or directory\n"
    );
    let o = vmctl(&["unpause", "3"], s);
    assert_eq!(
        stderr(&o),
        "vmctl: unpause vm command failed: No such file or directory\n"
    );
    let o = vmctl(&["log", "verbose"], s);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vmctl(&["log", "brief"], s);
    assert!(o.status.success(), "{}", stderr(&o));
}
