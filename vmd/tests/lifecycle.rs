//! vmd runs a real guest end to end, driven by vmctl as a user would: a
//! VM from vm.conf starts at launch (SeaBIOS, then the boot-sector guest
//! from vioblk in its own process), `vmctl status` follows it through
//! running, paused and stopped, its console shows the guest's output, the
//! guest's write reaches the disk image, and SIGTERM ends vmd cleanly.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{
    attach, root_and_kvm, start_vmd, start_vmd_with, status_of, text, vmctl, vmctl_command,
    vmctl_path, wait_for, Daemon, Netns, Options,
};
use common::{assert_written_sector, build_guest};

/// A temporary directory with the test kernel built in it (`bsd`, `bsd.gz`).
fn build_kernel() -> std::path::PathBuf {
    let dir = common::tempdir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new("sh")
        .arg(root.join("regress/guest/build-kernel.sh"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "build-kernel.sh failed");
    dir
}

/// `vmctl start -c name`: the console from the first byte until the VM
/// stops.
fn start_on_console(d: &Daemon, name: &str) -> String {
    let out = vmctl_command(d, &["start", "-c", name])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A user for the permission test, created if missing.
fn second_user() -> (u32, u32) {
    const NAME: &str = "vmdtest2";
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, NAME])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                NAME,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

#[test]
fn a_second_user_may_run_only_its_own_vm() {
    if !root_and_kvm("a_second_user_may_run_only_its_own_vm") {
        return;
    }
    let (uid, gid) = second_user();
    let guest = build_guest();
    let mine = guest.dir.join("mine.img");
    let theirs = guest.dir.join("theirs.img");
    std::fs::copy(guest.dir.join("bsdisk.img"), &mine).unwrap();
    std::fs::copy(guest.dir.join("bsdisk.img"), &theirs).unwrap();
    // The guest directory must be reachable for the user's console.
    let d = start_vmd(
        &guest.dir,
        &format!(
            "socket owner vmdtest2\n\
             vm \"mine\" {{\n\tdisable\n\towner vmdtest2\n\tmemory 64M\n\tdisk \"{}\"\n}}\n\
             vm \"theirs\" {{\n\tdisable\n\tmemory 64M\n\tdisk \"{}\"\n}}\n",
            mine.display(),
            theirs.display()
        ),
    );
    let as_user = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
            ])
            .arg(vmctl_path())
            .args(args)
            .env("VMD_CONTROL_SOCKET", &d.sock)
            .output()
            .unwrap()
    };
    // vmctl must reach the binary and the socket as that user.
    let out = as_user(&["status"]);
    assert!(out.status.success(), "status as vmdtest2: {out:?}");
    let out = as_user(&["start", "theirs"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vmctl: start vm command failed: Operation not permitted\n"
    );
    assert_eq!(status_of(&d, "theirs").unwrap()[7], "stopped");
    let out = as_user(&["start", "mine"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with("vmctl: started vm 1 successfully"),
        "{said}"
    );
    let cols = status_of(&d, "mine").unwrap();
    assert_eq!(cols[6], "vmdtest2", "{cols:?}");
    // Root starts theirs; the user may not stop or pause it.
    let out = vmctl(&d, &["start", "theirs"]);
    assert!(out.status.success(), "{out:?}");
    let out = as_user(&["pause", "theirs"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vmctl: pause vm command failed: Operation not permitted\n"
    );
    let out = as_user(&["stop", "-f", "theirs"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stopping vm theirs: failed: Operation not permitted\n"
    );
    let out = as_user(&["stop", "-f", "mine"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stopping vm mine: requested to shutdown vm 1\n"
    );
    let _ = vmctl(&d, &["stop", "-f", "theirs"]);
}

#[test]
fn vmd_boots_the_test_kernel_and_it_shuts_down_through_vmmci() {
    if !root_and_kvm("vmd_boots_the_test_kernel_and_it_shuts_down_through_vmmci") {
        return;
    }
    let dir = build_kernel();
    let kernel = dir.join("bsd.gz");
    let d = start_vmd(
        &dir,
        &format!(
            "vm \"k\" {{\n\tdisable\n\tmemory 64M\n\tboot \"{}\"\n}}\n",
            kernel.display()
        ),
    );
    // start -c: the console from the first byte, until the VM stops.
    let text = start_on_console(&d, "k");
    for m in [
        "KERN-BOOT-OK",
        "KERN-MEMMAP-OK",
        "KERN-PCI 00 0b5d:0666 0600",
        "KERN-RND-OK ",
        "KERN-VMMCI-TIME ",
        "KERN-VMMCI-SHUTDOWN",
    ] {
        assert!(text.contains(m), "{m} missing:\n{text}");
    }
    wait_for("vm k to stop", Duration::from_secs(10), || {
        status_of(&d, "k").is_some_and(|c| c[7] == "stopped")
    });
}

#[test]
fn a_local_interface_gets_a_tap_with_the_host_address() {
    if !root_and_kvm("a_local_interface_gets_a_tap_with_the_host_address") {
        return;
    }
    // vmd runs in a network namespace of its own: its taps live there.
    let Some(ns) = Netns::new("a_local_interface_gets_a_tap_with_the_host_address", "life") else {
        return;
    };
    let guest = build_guest();
    let image = guest.dir.join("bsdisk.img");
    let d = start_vmd_with(
        &guest.dir,
        &format!(
            "vm \"net\" {{\n\tmemory 64M\n\tdisk \"{}\"\n\tlocal interface tap77 {{ locked lladdr }}\n}}\n",
            image.display()
        ),
        Options {
            netns: Some(&ns),
            ..Options::default()
        },
    );
    wait_for("vm net to run", Duration::from_secs(10), || {
        status_of(&d, "net").is_some_and(|c| c[7] == "running")
    });
    // The tap, up, with vmd's host address for vm 1, interface 0.
    let mut shown = String::new();
    wait_for("tap77 to be set up", Duration::from_secs(5), || {
        shown = ns.ip(&["addr", "show", "dev", "tap77"]);
        shown.contains("inet 100.64.1.2/31") && shown.contains(",UP")
    });
    let _ = vmctl(&d, &["stop", "-f", "net"]);
}

#[test]
fn staggered_start_starts_vms_in_batches() {
    if !root_and_kvm("staggered_start_starts_vms_in_batches") {
        return;
    }
    let guest = build_guest();
    let (a, b) = (guest.dir.join("a.img"), guest.dir.join("b.img"));
    std::fs::copy(guest.dir.join("bsdisk.img"), &a).unwrap();
    std::fs::copy(guest.dir.join("bsdisk.img"), &b).unwrap();
    let d = start_vmd(
        &guest.dir,
        &format!(
            "staggered start parallel 1 delay 3\n\
             vm \"a\" {{\n\tmemory 64M\n\tdisk \"{}\"\n}}\n\
             vm \"b\" {{\n\tmemory 64M\n\tdisk \"{}\"\n}}\n",
            a.display(),
            b.display()
        ),
    );
    let t0 = Instant::now();
    wait_for("vm a to run", Duration::from_secs(5), || {
        status_of(&d, "a").is_some_and(|c| c[7] == "running")
    });
    assert_eq!(
        status_of(&d, "b").unwrap()[7],
        "stopped",
        "b started with a"
    );
    wait_for("vm b to run", Duration::from_secs(10), || {
        status_of(&d, "b").is_some_and(|c| c[7] == "running")
    });
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "b started after {waited:?}"
    );
}

#[test]
fn sigterm_stops_running_guests_cleanly() {
    if !root_and_kvm("sigterm_stops_running_guests_cleanly") {
        return;
    }
    let guest = build_guest();
    let image = guest.dir.join("bsdisk.qcow2");
    let mut d = start_vmd(
        &guest.dir,
        &format!(
            "vm \"q\" {{\n\tmemory 512M\n\tdisk \"{}\" format qcow2\n}}\n",
            image.display()
        ),
    );
    let (cols, output) = attach(&d, "q");
    let vm_pid: i32 = cols[1].parse().unwrap();
    // Mid-boot: the guest is writing to its disk around now.
    wait_for("the guest to start", Duration::from_secs(30), || {
        text(&output).contains("BS-STAGE2-OK")
    });
    let status = d.terminate();
    assert!(status.success(), "vmd exited with {status}");
    // SAFETY: signal 0 only checks for the process.
    assert_eq!(
        unsafe { libc::kill(vm_pid, 0) },
        -1,
        "the vm process outlived vmd"
    );
    std::thread::sleep(Duration::from_millis(200));
    let check = Command::new("qemu-img")
        .args(["check", "-f", "qcow2"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "qemu-img check after SIGTERM: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn triple_fault_reboots_the_vm() {
    if !root_and_kvm("triple_fault_reboots_the_vm") {
        return;
    }
    let guest = build_guest();
    let image = guest.dir.join("bsreboot.img");
    let d = start_vmd(
        &guest.dir,
        &format!(
            "vm \"rb\" {{\n\tmemory 512M\n\tdisk \"{}\"\n}}\n",
            image.display()
        ),
    );
    let (cols, output) = attach(&d, "rb");
    let vm_pid = cols[1].clone();
    let console = || text(&output);
    wait_for("the second boot to finish", Duration::from_secs(90), || {
        console().contains("BS-SECOND-BOOT") && console().matches("BS-DONE").count() == 2
    });
    let text = console();
    assert!(text.contains("BS-REBOOT"), "{text}");
    assert_eq!(text.matches("BS-BOOT-OK").count(), 2, "{text}");
    assert_eq!(text.matches("BS-TICKS-OK").count(), 2, "{text}");
    // The same VM, rebooted in a new vm process, then stopped for good.
    wait_for("vm rb to stop", Duration::from_secs(10), || {
        status_of(&d, "rb").is_some_and(|c| c[7] == "stopped")
    });
    assert!(!vm_pid.is_empty());
}

#[test]
fn reload_load_and_reset() {
    if !root_and_kvm("reload_load_and_reset") {
        return;
    }
    let guest = build_guest();
    let img = |n: &str| {
        let p = guest.dir.join(format!("{n}.img"));
        std::fs::copy(guest.dir.join("bsloop.img"), &p).unwrap();
        p.display().to_string()
    };
    let (a, b, c) = (img("a"), img("b"), img("c"));
    let d = start_vmd(
        &guest.dir,
        &format!("vm \"a\" {{\n\tdisable\n\tmemory 64M\n\tdisk \"{a}\"\n}}\n"),
    );
    assert_eq!(status_of(&d, "a").unwrap()[7], "stopped");
    assert!(status_of(&d, "b").is_none());
    // reload: vm.conf now also has b, enabled.
    std::fs::write(
        guest.dir.join("vm.conf"),
        format!(
            "vm \"a\" {{\n\tdisable\n\tmemory 64M\n\tdisk \"{a}\"\n}}\n\
             vm \"b\" {{\n\tmemory 64M\n\tdisk \"{b}\"\n}}\n"
        ),
    )
    .unwrap();
    let out = vmctl(&d, &["reload"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("vm b to run after reload", Duration::from_secs(10), || {
        status_of(&d, "b").is_some_and(|c| c[7] == "running")
    });
    // load: another file adds c.
    let other = guest.dir.join("other.conf");
    std::fs::write(
        &other,
        format!("vm \"c\" {{\n\tmemory 64M\n\tdisk \"{c}\"\n}}\n"),
    )
    .unwrap();
    let out = vmctl(&d, &["load", other.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    wait_for("vm c to run after load", Duration::from_secs(10), || {
        status_of(&d, "c").is_some_and(|c| c[7] == "running")
    });
    // reset vms: everything stops.
    let out = vmctl(&d, &["reset", "vms"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("every vm to stop", Duration::from_secs(10), || {
        ["b", "c"]
            .iter()
            .all(|n| status_of(&d, n).is_some_and(|c| c[7] == "stopped"))
    });
    // A broken file is refused and changes nothing.
    std::fs::write(&other, "vm {\n").unwrap();
    let out = vmctl(&d, &["load", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(status_of(&d, "a").is_some());
}

#[test]
fn a_reboot_loop_is_stopped() {
    if !root_and_kvm("a_reboot_loop_is_stopped") {
        return;
    }
    let guest = build_guest();
    let image = guest.dir.join("bsloop.img");
    let d = start_vmd_with(
        &guest.dir,
        &format!(
            "vm \"loop\" {{\n\tmemory 64M\n\tdisk \"{}\"\n}}\n",
            image.display()
        ),
        Options {
            capture_log: true,
            ..Options::default()
        },
    );
    let (_, output) = attach(&d, "loop");
    // vmd gives up after three restarts in a row that each came within
    // 6 s of the start before: three reboots when every boot is quick,
    // more when a loaded machine makes one boot take longer than that.
    wait_for(
        "vmd to stop the reboot loop",
        Duration::from_secs(90),
        || status_of(&d, "loop").is_some_and(|c| c[7] == "stopped"),
    );
    let text = text(&output);
    let reboots = text.matches("BS-REBOOT").count();
    assert!((3..=8).contains(&reboots), "{reboots} reboots:\n{text}");
    let log = d.log();
    assert!(
        log.contains("loop: vm 1 restarted too quickly, stopping it"),
        "{log}"
    );
}

#[test]
fn vm_from_vm_conf_runs_pauses_and_stops_under_vmd() {
    if !root_and_kvm("vm_from_vm_conf_runs_pauses_and_stops_under_vmd") {
        return;
    }
    let guest = build_guest();
    let image = guest.dir.join("bsdisk.img");
    let d = start_vmd(
        &guest.dir,
        &format!(
            "vm \"bs\" {{\n\tmemory 512M\n\tdisk \"{}\"\n}}\n",
            image.display()
        ),
    );

    // Enabled in vm.conf: it starts by itself; the console is read as
    // vmctl console would attach to it.
    let (cols, output) = attach(&d, "bs");
    assert_eq!(cols[0], "1", "{cols:?}");
    assert_ne!(cols[1], "-", "a running VM has a pid: {cols:?}");
    let vm_pid: i32 = cols[1].parse().unwrap();
    let tty = format!("/dev/pts/{}", cols[5]);
    // The same as JSON, for programs.
    let out = vmctl(&d, &["status", "--json", "bs"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.starts_with(&format!(
            "[{{\"curmem\":536870912,\"id\":1,\"maxmem\":536870912,\"name\":\"bs\",\"owner\":\"root\",\"pid\":{vm_pid},\"state\":\"running\",\"tty\":\"{tty}\",\"vcpus\":1}}]"
        )),
        "{json}"
    );
    let console = || text(&output);

    let out = vmctl(&d, &["pause", "bs"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vmctl: paused vm 1 successfully\n"
    );
    assert_eq!(status_of(&d, "bs").unwrap()[7], "paused");
    let before = console().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        console().len(),
        before,
        "a paused guest printed: {}",
        console()
    );
    let out = vmctl(&d, &["unpause", "bs"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vmctl: unpaused vm 1 successfully\n"
    );
    assert_eq!(status_of(&d, "bs").unwrap()[7], "running");

    wait_for("BS-DONE on the console", Duration::from_secs(60), || {
        console().contains("BS-DONE")
    });
    let text = console();
    for m in [
        "BS-BOOT-OK",
        "BS-WRITE-OK",
        "BS-TICKS-OK",
        &format!("BS-READ-OK sum={}", guest.read_sum),
    ] {
        assert!(text.contains(m), "{m} missing from the console:\n{text}");
    }
    // The guest halts for good: the VM stops and its processes are gone.
    wait_for("vm bs to stop", Duration::from_secs(10), || {
        status_of(&d, "bs").is_some_and(|c| c[7] == "stopped")
    });
    // SAFETY: kill with signal 0 only checks for the process.
    assert_eq!(
        unsafe { libc::kill(vm_pid, 0) },
        -1,
        "the vm process is still there"
    );
    assert_written_sector(&std::fs::read(&image).unwrap(), &guest);

    // Stopping a stopped VM is refused as vmd refuses it (EINVAL).
    let out = vmctl(&d, &["stop", "bs"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stopping vm bs: failed: Invalid argument\n"
    );

    // vmctl start -c: the console shows the guest until the VM stops.
    let out = Command::new(vmctl_path())
        .args(["start", "-c", "bs"])
        .env("VMD_CONTROL_SOCKET", &d.sock)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        shown.contains("BS-BOOT-OK") && shown.contains("BS-DONE"),
        "console showed:\n{shown}"
    );

    // Started again, stopped with -w: the guest has no vmmci driver, so
    // the VM stops at once.
    let out = vmctl(&d, &["start", "bs"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with("vmctl: started vm 1 successfully, tty /dev/"),
        "{said}"
    );
    let out = vmctl(&d, &["stop", "-w", "bs"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stopping vm bs: terminated vm 1\n"
    );
    assert_eq!(status_of(&d, "bs").unwrap()[7], "stopped");

    // A VM made on the command line, forced off (and waited for), is
    // forgotten.
    let mb = guest.dir.join("other.img");
    std::fs::copy(&image, &mb).unwrap();
    let out = vmctl(
        &d,
        &["start", "-m", "64M", "-d", mb.to_str().unwrap(), "adhoc"],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("vmctl: started vm 2 successfully"), "{said}");
    let cols = status_of(&d, "adhoc").unwrap();
    assert_eq!(
        (cols[0].as_str(), cols[3].as_str(), cols[7].as_str()),
        ("2", "64.0M", "running")
    );
    let out = vmctl(&d, &["stop", "-fw", "adhoc"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stopping vm adhoc: terminated vm 2\n"
    );
    assert!(status_of(&d, "adhoc").is_none());
    let out = vmctl(
        &d,
        &[
            "start",
            "-b",
            "/nonexistent-bios",
            "-d",
            mb.to_str().unwrap(),
            "nobios",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    // SIGTERM ends vmd and every process it started.
    let mut d = d;
    let status = d.terminate();
    assert!(status.success(), "vmd exited with {status}");
}

/// The C vmd's CD-ROM path: an ISO from vm.conf, vioscsi in its own
/// process, and SeaBIOS booting it as an El Torito hard-disk emulation.
/// The guest reads its data area from the boot image, a file on the ISO,
/// through SeaBIOS's virtio-scsi driver and the device process, and sums
/// it; the write fails, as it must on a CD.
#[test]
fn seabios_boots_an_iso_through_vioscsi_in_its_own_process() {
    let test = "seabios_boots_an_iso_through_vioscsi_in_its_own_process";
    if !root_and_kvm(test) {
        return;
    }
    let guest = build_guest();
    let iso = guest.dir.join("bs.iso");
    let d = start_vmd(
        &guest.dir,
        &format!(
            "vm \"cd\" {{\n\tdisable\n\tmemory 64M\n\tcdrom \"{}\"\n\tboot device cdrom\n}}\n",
            iso.display()
        ),
    );
    let out = vmctl(&d, &["start", "cd"]);
    assert!(out.status.success(), "{out:?}");
    let (cols, console) = attach(&d, "cd");
    let vm_pid: i32 = cols[1].parse().unwrap();
    // The CD-ROM lives in a child of the vm process, not in it.
    // A child belongs to the thread that spawned it, so ask every thread.
    let device_children = || -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{vm_pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"-X"))
            })
            .collect()
    };
    wait_for(
        "the vioscsi process under the vm process",
        Duration::from_secs(10),
        || !device_children().is_empty(),
    );
    let text = || String::from_utf8_lossy(&console.lock().unwrap()).replace('\r', "");
    wait_for("BS-DONE from the CD", Duration::from_secs(30), || {
        text().contains("BS-DONE")
    });
    let text = text();
    // vmd's PCI order: host bridge, viornd, then the vioscsi CD-ROM.
    for m in [
        "BS-BOOT-OK".to_string(),
        "BS-STAGE2-OK".into(),
        "BS-DRIVE 80".into(),
        "BS-PCI 02 1af4:1048 0100".into(),
        format!("BS-READ-OK sum={}", guest.read_sum),
        "BS-WRITE-FAIL".into(),
        "BS-TICKS-OK".into(),
    ] {
        assert!(text.contains(&m), "{m} missing:\n{text}");
    }
    // The guest ends with cli; hlt, which vmd takes as a shutdown.
    wait_for("vm cd to stop", Duration::from_secs(10), || {
        status_of(&d, "cd").is_some_and(|c| c[7] == "stopped")
    });

    // vmctl start -r: vmd's own errors for a missing ISO and a directory.
    for (iso, msg) in [
        ("/nonexistent.iso", "could not find specified iso image"),
        ("/", "specified iso image is not a regular file"),
    ] {
        let out = vmctl(&d, &["start", "-m", "64M", "-r", iso, "cd2"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(msg), "{iso}: {err}");
    }
}

/// VM instances as vmd makes them: one declared in vm.conf, and others
/// made at run time with `vmctl start -t`. A user named by the parent's
/// `allow instance owner` may make one, with only what the parent allows;
/// anyone else is refused. The instances boot the parent's CD-ROM.
#[test]
fn instances_from_vm_conf_and_vmctl_start_t() {
    let test = "instances_from_vm_conf_and_vmctl_start_t";
    if !root_and_kvm(test) {
        return;
    }
    let (uid2, gid2) = second_user();
    let guest = build_guest();
    let iso = guest.dir.join("bs.iso");
    let d = start_vmd(
        &guest.dir,
        &format!(
            "socket owner vmdtest2\n\
             vm \"base\" {{\n\tdisable\n\tmemory 64M\n\tcdrom \"{}\"\n\
             \tallow instance {{ memory, owner vmdtest2 }}\n}}\n\
             vm \"base\" instance \"fromconf\" {{\n\tdisable\n\tmemory 48M\n}}\n",
            iso.display()
        ),
    );
    let as_user2 = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid2}"),
                &format!("--regid={gid2}"),
                "--clear-groups",
            ])
            .arg(vmctl_path())
            .args(args)
            .env("VMD_CONTROL_SOCKET", &d.sock)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // The vm.conf instance is a VM of its own, with its own memory size.
    let cols = status_of(&d, "fromconf").expect("fromconf in vmctl status");
    assert_eq!(cols[3], "48.0M", "{cols:?}");

    // Root, at run time: start -c shows the guest booting the parent's CD.
    let out = vmctl_command(&d, &["start", "-c", "-t", "base", "-m", "32M", "inst1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("BS-DONE"),
        "inst1 did not boot the CD:\n{text}"
    );
    // A run-time instance is forgotten once it stops, as in vmd.
    wait_for("inst1 to go away", Duration::from_secs(10), || {
        status_of(&d, "inst1").is_none()
    });

    // The allowed user may set the memory, and owns the instance.
    let out = as_user2(&["start", "-t", "base", "-m", "40M", "inst2"]);
    assert!(out.status.success(), "{out:?}");
    let cols = status_of(&d, "inst2").expect("inst2 in vmctl status");
    assert_eq!(cols[6], "vmdtest2", "{cols:?}");
    // Not a disk, which the parent does not allow.
    let disk = guest.dir.join("bsdisk.img");
    let out = as_user2(&["start", "-t", "base", "-d", disk.to_str().unwrap(), "inst3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("start vm command failed: Operation not permitted"),
        "{err}"
    );
    // A name in use, and a parent that does not exist.
    let out = as_user2(&["start", "-t", "base", "fromconf"]);
    assert!(!out.status.success(), "{out:?}");
    let out = as_user2(&["start", "-t", "nosuch", "inst4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid template"), "{err}");
    // Root's own VM is not an instance template for others.
    let out = as_user2(&["start", "-t", "fromconf", "inst5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("start vm command failed: File name too long"),
        "vmd answers ENAMETOOLONG, as the C vmd does: {err}"
    );
}

/// The project's test kernel on a vmd `local interface`, in a network
/// namespace of its own: it gets its address from vmd's DHCP server in the
/// vionet process, resolves the host's end of the tap with ARP and pings it.
#[test]
fn the_test_kernel_pings_the_host_through_vionet() {
    let test = "the_test_kernel_pings_the_host_through_vionet";
    if !root_and_kvm(test) {
        return;
    }
    let Some(ns) = Netns::new(test, "ping") else {
        return;
    };
    let dir = build_kernel();
    let conf = format!(
        "vm \"kping\" {{\n\tdisable\n\tmemory 64M\n\tboot \"{}\"\n\tboot device net\n\tlocal interface tap78\n}}\n",
        dir.join("bsd").display()
    );
    let d = start_vmd_with(
        &dir,
        &conf,
        Options {
            netns: Some(&ns),
            ..Options::default()
        },
    );
    // start -c: the console from the first byte until the kernel shuts
    // itself down through vmmci.
    let text = start_on_console(&d, "kping");
    // vm 1, interface 0: the host has 100.64.1.2/31, the guest .3.
    for m in [
        "KERN-NET-MAC ",
        "KERN-DHCP-OK 100.64.1.3 router 100.64.1.2",
        // `boot device net`: vmd's answer names autoinstall's file, and the
        // VM's name as its host name (vmd leaves out one-letter names).
        "KERN-DHCP-BOOT file=auto_install host=kping",
        "KERN-PING-OK 100.64.1.2 ",
        "KERN-VMMCI-SHUTDOWN",
    ] {
        assert!(text.contains(m), "{m} missing:\n{text}");
    }
    // A network boot hands the kernel the MAC of the NIC it boots from,
    // vmd's fe:e1:bb:d1:xx:xx for the first interface.
    let mac = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("KERN-NET-MAC "))
        .expect("KERN-NET-MAC");
    assert!(mac.starts_with("fe:e1:bb:d1:"), "{mac}");
    assert!(
        text.contains(&format!("KERN-BOOTMAC {mac}")),
        "no KERN-BOOTMAC {mac}:\n{text}"
    );
    // An echo reply with our payload from 100.64.1.2 can only come from
    // the host's stack on tap78: vionet forwards ICMP, it does not answer it.
}
