//! vionet in its own process (vmd -X fd -t n), as the vm process runs it,
//! on a real tap in a network namespace this test creates. The test is
//! the guest: it brings the device up through its registers (over the
//! device channel), moves frames between the virtqueues and a second tap
//! where busybox udhcpc runs, and checks that
//! - udhcpc gets exactly the lease vmd gives a local interface, from the
//!   DHCP server inside the device process;
//! - the guest's frames reach the host tap, a spoofed source MAC does not
//!   (locked lladdr);
//! - frames the host sends out of the tap arrive in the guest's RX queue.
//!
//! Needs root, /dev/net/tun, ip and busybox; prints one SKIPPED line
//! otherwise. Nothing outside the namespace is touched.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::irq::{Irq, NoIrq};
use devices::memory::GuestMemory;

use vm::abi::vmop::{VMIFF_LOCAL, VMIFF_LOCKED, VMIFF_UP};
use vm::abi::LocalPrefix;
use vm::device_proc::{self, launch, LaunchSpec};
use vm::memory_layout;

#[path = "common/vionet_guest.rs"]
mod vionet_guest;

use vionet_guest::*;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} is not installed (.ci/install-deps installs it)"
            ));
        }
    }
    None
}

fn tap_rx_packets(ns: &str, ifname: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "-o", "link", "show", ifname])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "... RX: bytes packets errors ... \    123 4 0 ..."
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "RX:").expect("RX counters");
    let labels = words[at + 1..]
        .iter()
        .take_while(|w| !w.starts_with('\\'))
        .count();
    words[at + 1 + labels + 1 + 1].parse().unwrap()
}

#[test]
fn vionet_process_serves_dhcp_and_moves_frames_through_a_tap() {
    if let Some(why) = skip_reason() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: vionet_process_serves_dhcp_and_moves_frames_through_a_tap: {why}"
        );
        return;
    }
    let pid = std::process::id();
    let ns = Netns(format!("vmdt-vio-{pid}"));
    run(&["ip", "netns", "add", &ns.0]);
    // No IPv6 chatter (router solicitations, MLD) to blur frame counts.
    for key in ["all", "default"] {
        run(&[
            "ip",
            "netns",
            "exec",
            &ns.0,
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
        ]);
    }
    let (vtap_name, gtap_name) = (format!("vt{}", pid % 100000), format!("gt{}", pid % 100000));
    let vtap = open_tap(&vtap_name);
    let gtap = open_tap(&gtap_name);
    for t in [&vtap_name, &gtap_name] {
        run(&["ip", "link", "set", t, "netns", &ns.0]);
    }
    run(&[
        "ip",
        "-n",
        &ns.0,
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        &vtap_name,
    ]);
    run(&["ip", "-n", &ns.0, "link", "set", &vtap_name, "up"]);
    let mac_text = MAC
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    run(&[
        "ip", "-n", &ns.0, "link", "set", &gtap_name, "address", &mac_text, "up",
    ]);

    // The vm process's side: memory, the VM's parameters, the device.
    let map = memory_layout::memory_map(16 << 20).unwrap();
    let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
    let mut vmd_vm = device_proc::describe_vm("net", &map, &[]).unwrap();
    vmd_vm.vm_vmid = 1;
    vmd_vm.vm_params.vmc_nnics = 1;
    vmd_vm.vm_params.vmc_macs[0] = MAC;
    vmd_vm.vm_params.vmc_ifflags[0] = VMIFF_UP | VMIFF_LOCKED | VMIFF_LOCAL;
    let prefix = LocalPrefix::vmd_default();
    let dev = device_proc::vionet_dev(0, vtap.as_raw_fd(), &vmd_vm, &prefix);
    let process = launch(LaunchSpec {
        exe: Path::new(env!("CARGO_BIN_EXE_vmd")),
        dev,
        vm: &vmd_vm,
        mem: &mem,
        data_fds: vec![vtap.as_raw_fd()],
        vmm_fd: -1,
        debug: true,
        verbose: 0,
    })
    .unwrap();
    drop(vtap);
    let irq: Irq = Arc::new(NoIrq);
    let (regs, handle) = process
        .attach(irq, Arc::new(|why| panic!("{why}")))
        .unwrap();
    let guest = Arc::new(Mutex::new(Guest {
        regs,
        mem: mem.clone(),
        rx: Ring::new(0x1_0000),
        tx: Ring::new(0x2_0000),
        tx_next: 0,
    }));
    guest.lock().unwrap().bring_up();

    // The guest's network stack is udhcpc on the second tap: a thread
    // carries its frames to the TX queue and RX frames back to it.
    let stop = Arc::new(AtomicBool::new(false));
    let from_host = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let bridge = {
        let guest = guest.clone();
        let stop = stop.clone();
        let from_host = from_host.clone();
        let mut g_r = gtap.try_clone().unwrap();
        let mut g_w = gtap;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd: g_r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 20) } > 0 {
                    if let Ok(n) = g_r.read(&mut buf) {
                        guest.lock().unwrap().send(&buf[..n]);
                    }
                }
                for f in guest.lock().unwrap().receive() {
                    // DHCP answers (UDP from port 67) go to udhcpc; the
                    // rest is what the host sent.
                    let dhcp =
                        f.len() > 37 && f[12..14] == [8, 0] && f[23] == 17 && f[34..36] == [0, 67];
                    if dhcp {
                        let _ = g_w.write_all(&f);
                    } else {
                        from_host.lock().unwrap().push(f);
                    }
                }
            }
        })
    };

    let dir = std::env::temp_dir().join(format!("vmdt-vio-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    let lease = dir.join("lease");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            lease.display()
        ),
    )
    .unwrap();
    run(&["chmod", "+x", script.to_str().unwrap()]);
    let status = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &ns.0, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5",
            "-T", "1", "-i", &gtap_name, "-s",
        ])
        .arg(&script)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "udhcpc got no lease through the vionet process"
    );
    let env = std::fs::read_to_string(&lease).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    // vmd's lease for vm 1, interface 0: 100.64.1.3/31, router and DNS
    // the host side 100.64.1.2.
    assert_eq!(get("ip"), "100.64.1.3");
    assert_eq!(get("subnet"), "255.255.255.254");
    assert_eq!(get("router"), "100.64.1.2");
    assert_eq!(get("dns"), "100.64.1.2");

    // Guest to host: a frame from the VM's MAC reaches the tap; one with
    // another source does not.
    let frame = |src: [u8; 6]| {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(&[0x5a; 46]);
        f
    };
    let before = tap_rx_packets(&ns.0, &vtap_name);
    guest.lock().unwrap().send(&frame(MAC));
    guest.lock().unwrap().send(&frame([0x02, 0, 0, 0, 0, 0x66]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tap_rx_packets(&ns.0, &vtap_name),
        before + 1,
        "locked lladdr: exactly one frame gets through"
    );

    // Host to guest: the host's ARP for 192.0.2.2 leaves through the tap.
    let arping = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "busybox", "arping", "-c", "1", "-w", "1",
        ])
        .args(["-I", &vtap_name, "192.0.2.2"])
        .output();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let arp = from_host
            .lock()
            .unwrap()
            .iter()
            .any(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[38..42] == [192, 0, 2, 2]);
        if arp {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host's ARP request never reached the guest: got {:?}; arping: {arping:?}",
            from_host
                .lock()
                .unwrap()
                .iter()
                .map(|f| f.len())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    stop.store(true, Ordering::Relaxed);
    bridge.join().unwrap();
    handle.shutdown(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
}
