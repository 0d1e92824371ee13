//! vmctl as a user runs it: image creation checked with qemu-img, the
//! command-line errors of the C vmctl, and requests against a real vmd.

use std::io::Write as _;
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

/// `qemu-img info`'s JSON for `image`.
fn info(image: &Path) -> String {
    qemu_img(&["info", "--output=json", image.to_str().unwrap()])
}

/// Fails unless `qemu-img compare` finds the images' contents equal.
fn assert_same(a: &Path, b: &Path) {
    qemu_img(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
}

/// `vmctl create` with `args` and the image path last: its exit status
/// and what it said.
fn create(args: &[&str], image: &Path) -> (Option<i32>, String) {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    all.push(image.to_str().unwrap());
    let o = vmctl(&all, None);
    (o.status.code(), stderr(&o))
}

#[test]
fn create_sizes_bases_conversions_and_refusals_as_vmctl() {
    let d = tmpdir("create2");
    let at = |n: &str| d.join(n);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();

    // -s: raw and qcow2, rounded down to megabytes as vmctl says.
    let (code, said) = create(&["-s", "2500K"], &at("r.raw"));
    assert_eq!(code, Some(0));
    assert_eq!(
        said,
        "vmctl: disk size rounded to 2.0M\nvmctl: raw imagefile created\n"
    );
    let i = info(&at("r.raw"));
    assert!(i.contains("\"format\": \"raw\""), "{i}");
    assert!(i.contains("\"virtual-size\": 2097152"), "{i}");
    let (code, _) = create(&["-s", "3G"], &at("q.qcow2"));
    assert_eq!(code, Some(0));
    qemu_img(&["check", &s(&at("q.qcow2"))]);
    assert!(info(&at("q.qcow2")).contains("\"virtual-size\": 3221225472"));

    // -i: a 1.5 MiB raw image with data becomes a 2 MiB qcow2 image.
    let data: Vec<u8> = (0..3 << 19).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(at("src.raw"), &data).unwrap();
    let (code, said) = create(&["-i", &s(&at("src.raw"))], &at("c.qcow2"));
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        said,
        "vmctl: destination size rounded to 2 megabytes\nvmctl: qcow2 imagefile created\n"
    );
    qemu_img(&["check", &s(&at("c.qcow2"))]);
    assert!(info(&at("c.qcow2")).contains("\"virtual-size\": 2097152"));
    assert_same(&at("src.raw"), &at("c.qcow2"));

    // -b: an image on that base, of its size, showing its data.
    let (code, said) = create(&["-b", &s(&at("c.qcow2"))], &at("top.qcow2"));
    assert_eq!(
        (code, said.as_str()),
        (Some(0), "vmctl: qcow2 imagefile created\n")
    );
    qemu_img(&["check", &s(&at("top.qcow2"))]);
    let i = info(&at("top.qcow2"));
    assert!(i.contains("\"virtual-size\": 2097152"), "{i}");
    assert!(i.contains("\"backing-filename-format\": \"qcow2\""), "{i}");
    assert_same(&at("src.raw"), &at("top.qcow2"));

    // -i from qcow2 with a backing chain, to a bigger raw image.
    let (code, said) = create(&["-i", &s(&at("top.qcow2")), "-s", "4M"], &at("flat.raw"));
    assert_eq!(
        (code, said.as_str()),
        (Some(0), "vmctl: raw imagefile created\n")
    );
    assert!(info(&at("flat.raw")).contains("\"virtual-size\": 4194304"));
    assert_same(&at("top.qcow2"), &at("flat.raw"));

    // What vmctl refuses, in its words; nothing is left behind.
    for (args, image, want) in [
        (
            "-s 1M",
            "r.raw",
            "create imagefile operation failed: File exists",
        ),
        (
            "-s 1M",
            "q.qcow2",
            "create imagefile operation failed: File exists",
        ),
        ("-s 1X", "x.raw", "invalid disk size: 1X: Invalid argument"),
        (
            "-i nonexistent.raw",
            "x.qcow2",
            "failed to open source image file",
        ),
        (
            "-i {src} -s 1M",
            "x.qcow2",
            "size cannot be smaller than input disk size",
        ),
        (
            "-i {src}",
            "r.raw",
            "failed to create destination image file",
        ),
        (
            "-b nonexistent.qcow2",
            "x.qcow2",
            "failure to read base image header",
        ),
        ("-b {raw}", "x.qcow2", "base image is not a qcow2 file"),
        (
            "-b {base} -s 8M",
            "x.qcow2",
            "base size does not match requested size",
        ),
        (
            "-b {base}",
            "x.raw",
            "base images require qcow2 disk format",
        ),
        (
            "-b {base} -i {src}",
            "x.qcow2",
            "conflicting -b and -i arguments",
        ),
    ] {
        let args: Vec<String> = args
            .split(' ')
            .map(|a| match a {
                "{src}" => s(&at("src.raw")),
                "{raw}" => s(&at("r.raw")),
                "{base}" => s(&at("c.qcow2")),
                a => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, said) = create(&args, &at(image));
        assert_eq!(
            (code, said),
            (Some(1), format!("vmctl: {want}\n")),
            "{args:?} {image}"
        );
    }
    assert!(!at("x.qcow2").exists() && !at("x.raw").exists());
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
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: requests_against_a_running_vmd: vmd needs root"
        );
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
