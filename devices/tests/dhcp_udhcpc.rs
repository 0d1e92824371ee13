//! A real DHCP client against our DHCP server: busybox `udhcpc` runs on a
//! tap inside a network namespace this test creates, and the test answers
//! the frames it reads from the tap with `DhcpServer`. The lease udhcpc
//! reports must be exactly the one vmd gives.
//!
//! Needs root, /dev/net/tun, `ip` and busybox; without them it prints one
//! SKIPPED line. Nothing outside the namespace is touched: the tap is
//! created, moved into the namespace at once, and dies with it.

#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use devices::dhcp::{DhcpServer, LocalPrefix};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x400454ca;

fn open_tap(name: &str) -> File {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    // struct ifreq: 16 bytes of name, then the flags.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is
    // large enough to hold; the fd is a valid open /dev/net/tun.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    tun
}

fn run(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "busybox"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!(
                "{tool} not installed (.ci/install-deps installs it)"
            ));
        }
    }
    None
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs udhcpc against `server` and returns the variables its script saw.
fn lease_from_udhcpc(tag: &str, server: DhcpServer) -> HashMap<String, String> {
    let ns = Netns(format!("vmdt-dhcp-{tag}-{}", std::process::id()));
    let ifname = format!("vmdt{}{}", &tag[..1], std::process::id() % 100000);
    run(&["ip", "netns", "add", &ns.0]);
    let tap = open_tap(&ifname);
    run(&["ip", "link", "set", &ifname, "netns", &ns.0]);
    let mac = server
        .mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    run(&[
        "ip", "-n", &ns.0, "link", "set", &ifname, "address", &mac, "up",
    ]);

    let dir = std::env::temp_dir().join(format!("vmdt-dhcp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    let out = dir.join("lease");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    run(&["chmod", "+x", script.to_str().unwrap()]);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let responder = {
        let stop = stop.clone();
        let answered = answered.clone();
        let mut tap_r = tap.try_clone().unwrap();
        let mut tap_w = tap;
        std::thread::spawn(move || {
            // Non-blocking reads with a short poll so the thread can stop.
            let fd = tap_r.as_raw_fd();
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut pfd, 1, 100) };
                if n <= 0 {
                    continue;
                }
                let Ok(len) = tap_r.read(&mut buf) else { break };
                if let Ok(reply) = server.handle_frame(&buf[..len]) {
                    tap_w.write_all(&reply).unwrap();
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let status = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &ns.0, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5",
            "-T", "1", "-i", &ifname, "-s",
        ])
        .arg(&script)
        .status()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    responder.join().unwrap();
    assert!(
        status.success(),
        "udhcpc got no lease ({} replies sent)",
        answered.load(Ordering::Relaxed)
    );
    let env = std::fs::read_to_string(&out).expect("udhcpc bound but left no lease");
    let _ = std::fs::remove_dir_all(&dir);
    env.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn server(netboot: bool) -> DhcpServer {
    DhcpServer {
        mac: [0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x34],
        host_mac: [0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x35],
        prefix: LocalPrefix::default(),
        vmid: 5,
        idx: 1,
        netboot_hostname: Some("web1".into()),
        netboot,
    }
}

#[test]
fn udhcpc_gets_vmds_lease() {
    if let Some(why) = skip_reason() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: udhcpc_gets_vmds_lease: {why}");
        return;
    }
    let lease = lease_from_udhcpc("plain", server(false));
    // vmid 5, interface 1: host 100.64.5.4, guest 100.64.5.5, a /31.
    assert_eq!(lease["ip"], "100.64.5.5");
    assert_eq!(lease["subnet"], "255.255.255.254");
    assert_eq!(lease["router"].trim(), "100.64.5.4");
    assert_eq!(lease["dns"].trim(), "100.64.5.4");
    assert_eq!(lease["serverid"], "100.64.5.4");
    assert_eq!(lease["lease"], "4294967295");
    assert!(!lease.contains_key("boot_file"));
    assert!(!lease.contains_key("hostname"));
}

#[test]
fn udhcpc_netboot_gets_auto_install_and_hostname() {
    if let Some(why) = skip_reason() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: udhcpc_netboot_gets_auto_install_and_hostname: {why}"
        );
        return;
    }
    let lease = lease_from_udhcpc("netboot", server(true));
    assert_eq!(lease["ip"], "100.64.5.5");
    assert_eq!(lease["boot_file"], "auto_install");
    assert_eq!(lease["hostname"], "web1");
}
