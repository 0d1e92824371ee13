//! Debian's Linux boots under vmd: SeaBIOS, syslinux and the cloud kernel
//! from vioblk in its own process, then an initramfs that checks the
//! virtio devices, writes to the disk and reads entropy (the guest is
//! built by regress/guest/build-linux.sh from Debian packages).
//!
//! This machine kind's KVM (kvm_pvm) cannot run a Linux kernel: its
//! instruction emulator fails in syslinux and in the kernel. Where
//! /sys/module/kvm_pvm exists the test prints one SKIPPED line; on hosts
//! with hardware VMX/SVM it runs, with long timeouts.

#![cfg(target_os = "linux")]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn debian_linux_boots_from_vioblk_under_vmd() {
    if Path::new("/sys/module/kvm_pvm").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: debian_linux_boots_from_vioblk_under_vmd: /dev/kvm is kvm_pvm, whose \
             instruction emulator cannot run syslinux or a Linux kernel"
        );
        return;
    }
    if common::skip_without_kvm("debian_linux_boots_from_vioblk_under_vmd") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: debian_linux_boots_from_vioblk_under_vmd: vmd needs root"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = common::tempdir();
    let st = Command::new("bash")
        .arg(root.join("regress/guest/build-linux.sh"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "build-linux.sh failed");
    let image = dir.join("linux.img");
    let conf = dir.join("vm.conf");
    std::fs::write(
        &conf,
        format!(
            "vm \"linux\" {{\n\tdisable\n\tmemory 512M\n\tdisk \"{}\"\n}}\n",
            image.display()
        ),
    )
    .unwrap();
    let sock = dir.join("vmd.sock");
    let mut vmd = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .args(["-d", "-f"])
        .arg(&conf)
        .env("VMD_CONTROL_SOCKET", &sock)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let vmctl = Path::new(env!("CARGO_BIN_EXE_vmd")).with_file_name("vmctl");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&vmctl)
        .args(["start", "-c", "linux"])
        .env("VMD_CONTROL_SOCKET", &sock)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = vmd.kill();
    let _ = vmd.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    for m in [
        "LINUX-BOOT-OK",
        "LINUX-VIRTIO 0x0002 virtio_blk",
        "LINUX-VIRTIO 0x0004 virtio_rng",
        "LINUX-BLK-OK",
        "LINUX-RNG-OK",
        "LINUX-DONE",
    ] {
        assert!(text.contains(m), "{m} missing from the console:\n{text}");
    }
}
