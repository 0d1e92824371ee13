//! The priv process's host-network operations on Linux, run for real in a
//! network namespace this test creates and deletes: a switch (bridge), a
//! tap added to it, a description, an address, link state.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use vmd::privops::PrivOp;
use vmd::sys::{open_tap, priv_op};

const CHILD_ENV: &str = "VMD_PRIVOPS_CHILD";

fn ip_out(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs inside the namespace (re-executed by the test below).
#[test]
fn child_side() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let s = |x: &str| x.to_string();
    // Switch interfaces are the administrator's; vmd only checks them.
    let e = priv_op(&PrivOp::Exists {
        ifname: s("bridge7"),
    })
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(Command::new("ip")
        .args(["link", "add", "name", "bridge7", "type", "bridge"])
        .status()
        .unwrap()
        .success());
    priv_op(&PrivOp::Exists {
        ifname: s("bridge7"),
    })
    .unwrap();

    let (_tap, name) = open_tap("tap7").unwrap();
    assert_eq!(name, "tap7");
    priv_op(&PrivOp::AddMember {
        bridge: s("bridge7"),
        member: s("tap7"),
    })
    .unwrap();
    priv_op(&PrivOp::Describe {
        ifname: s("tap7"),
        descr: s("vm1-if0-web"),
    })
    .unwrap();
    priv_op(&PrivOp::Up {
        ifname: s("bridge7"),
    })
    .unwrap();
    priv_op(&PrivOp::Up { ifname: s("tap7") }).unwrap();
    priv_op(&PrivOp::Address {
        ifname: s("tap7"),
        addr: IpAddr::V4(Ipv4Addr::new(100, 64, 1, 2)),
        prefix: 31,
    })
    .unwrap();
    let link = ip_out(&["-o", "link", "show", "dev", "tap7"]);
    assert!(link.contains("master bridge7"), "{link}");
    assert!(link.contains("alias vm1-if0-web"), "{link}");
    let addr = ip_out(&["-o", "addr", "show", "dev", "tap7"]);
    assert!(addr.contains("100.64.1.2/31"), "{addr}");
    // No Linux counterpart: refused with a reason, nothing changed.
    let e = priv_op(&PrivOp::Group {
        ifname: s("tap7"),
        group: s("vms"),
    })
    .unwrap_err();
    assert!(e.to_string().contains("not supported on Linux"), "{e}");
    priv_op(&PrivOp::Down { ifname: s("tap7") }).unwrap();
    let link = ip_out(&["-o", "link", "show", "dev", "tap7"]);
    assert!(!link.contains(",UP"), "{link}");
    println!("PRIVOPS-CHILD-OK");
}

#[test]
fn priv_operations_in_a_network_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/net/tun").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: priv_operations_in_a_network_namespace: needs root and /dev/net/tun"
        );
        return;
    }
    let ns = format!("vmdt-priv-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_side", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("PRIVOPS-CHILD-OK"),
        "{text}"
    );
}
