//! More of vmd and vmctl end to end, each against a real vmd on a
//! temporary control socket with real guests: `vmctl wait`, a vm process
//! that dies by a signal, `vmctl stop -f` freeing the devices at once,
//! images from `vmctl create` booted under vmd, switch membership of a
//! VM's tap in a network namespace, and `vmctl log verbose|brief`
//! reaching the vm and device processes.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::build_guest;
use common::daemon::{
    attach, children_of, is_in_state, root_and_kvm, spawn_vmd, start_vmd, start_vmd_with,
    status_of, stderr_of, text, vmctl, vmctl_command, vmctl_path, wait_exit, wait_for, Netns,
    Options,
};

/// A copy of one of the guest's images under a new name.
fn image(dir: &Path, from: &str, to: &str) -> PathBuf {
    let p = dir.join(to);
    std::fs::copy(dir.join(from), &p).unwrap();
    p
}

/// A vm.conf block for a 64M VM on `disk`, with `extra` lines.
fn vm_block(name: &str, disk: &Path, extra: &str) -> String {
    format!(
        "vm \"{name}\" {{\n\tmemory 64M\n\tdisk \"{}\"\n{extra}}}\n",
        disk.display()
    )
}

/// A `vmctl wait` started in the background.
fn spawn_wait(d: &common::daemon::Daemon, id: &str) -> Child {
    vmctl_command(d, &["wait", id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for the process.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn vmctl_wait_returns_when_the_vm_stops() {
    if !root_and_kvm("vmctl_wait_returns_when_the_vm_stops") {
        return;
    }
    let guest = build_guest();
    let disk = image(&guest.dir, "bsidle.img", "w.img");
    let d = start_vmd(&guest.dir, &vm_block("w", &disk, ""));
    let (_, console) = attach(&d, "w");
    wait_for("the guest to idle", Duration::from_secs(30), || {
        text(&console).contains("BS-IDLE")
    });

    // Two clients wait, by name and by id; neither returns while the VM
    // runs.
    let mut by_name = spawn_wait(&d, "w");
    let mut by_id = spawn_wait(&d, "1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(by_name.try_wait().unwrap().is_none(), "wait w returned");
    assert!(by_id.try_wait().unwrap().is_none(), "wait 1 returned");
    assert!(is_in_state(&d, "w", "running"));

    // Another vmctl stops it; without -w it does not wait, as vmctl.
    let out = vmctl(&d, &["stop", "-f", "w"]);
    assert_eq!(
        stderr_of(&out),
        "stopping vm w: requested to shutdown vm 1\n"
    );
    assert!(out.status.success());
    let t0 = Instant::now();
    for (child, said) in [
        (&mut by_name, "waiting for vm w: terminated vm 1\n"),
        (&mut by_id, "waiting for vm: terminated vm 1\n"),
    ] {
        let status = wait_exit(child, Duration::from_secs(10)).expect("vmctl wait still waits");
        assert_eq!(status.code(), Some(0));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(err, said);
    }
    println!("vmctl wait returned {:?} after the stop", t0.elapsed());
    assert!(is_in_state(&d, "w", "stopped"));

    // A stopped VM cannot be waited for, nor an unknown one.
    let out = vmctl(&d, &["wait", "w"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_of(&out),
        "waiting for vm w: failed: Invalid argument\n"
    );
    let out = vmctl(&d, &["wait", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "waiting for vm nope: vm not found\n");

    // A waiting client that goes away leaves nothing behind: the next
    // connections (which may get its descriptor number) see only their
    // own answers, and the VM's stop reaches the client still waiting.
    let out = vmctl(&d, &["start", "w"]);
    assert!(out.status.success(), "{out:?}");
    let mut gone = spawn_wait(&d, "w");
    let mut stays = spawn_wait(&d, "w");
    std::thread::sleep(Duration::from_millis(300));
    gone.kill().unwrap();
    let _ = gone.wait();
    assert!(status_of(&d, "w").is_some());
    let out = vmctl(&d, &["stop", "-w", "w"]);
    assert_eq!(stderr_of(&out), "stopping vm w: terminated vm 1\n");
    let status = wait_exit(&mut stays, Duration::from_secs(10)).expect("wait still waits");
    assert!(status.success());
    assert_eq!(
        stderr_of(&finished(stays)),
        "waiting for vm w: terminated vm 1\n"
    );
}

#[test]
fn a_killed_vm_process_stops_only_its_vm() {
    if !root_and_kvm("a_killed_vm_process_stops_only_its_vm") {
        return;
    }
    let guest = build_guest();
    let (a, b) = (
        image(&guest.dir, "bsidle.img", "a.img"),
        image(&guest.dir, "bsidle.img", "b.img"),
    );
    let mut d = start_vmd(
        &guest.dir,
        &format!("{}{}", vm_block("a", &a, ""), vm_block("b", &b, "")),
    );
    let (a_cols, a_console) = attach(&d, "a");
    let (b_cols, b_console) = attach(&d, "b");
    wait_for("both guests to idle", Duration::from_secs(30), || {
        text(&a_console).contains("BS-IDLE") && text(&b_console).contains("BS-IDLE")
    });
    let a_pid: i32 = a_cols[1].parse().unwrap();
    // a's vioblk process, which must not outlive it.
    let devices = children_of(a_pid);
    assert_eq!(devices.len(), 1, "a's device processes: {devices:?}");

    // SAFETY: SIGKILL to the vm process vmd started for a.
    assert_eq!(unsafe { libc::kill(a_pid, libc::SIGKILL) }, 0);
    wait_for("vm a to stop", Duration::from_secs(10), || {
        is_in_state(&d, "a", "stopped")
    });
    let cols = status_of(&d, "a").unwrap();
    assert_eq!((cols[1].as_str(), cols[5].as_str()), ("-", "-"), "{cols:?}");
    wait_for("a's device process to exit", Duration::from_secs(5), || {
        !devices.iter().any(|&p| alive(p))
    });
    // Not restarted: a death by signal is not a reboot.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(is_in_state(&d, "a", "stopped"));

    // vmd and b run on, undisturbed.
    assert!(d.child.try_wait().unwrap().is_none(), "vmd exited");
    let cols = status_of(&d, "b").unwrap();
    assert_eq!(
        (cols[1].as_str(), cols[7].as_str()),
        (b_cols[1].as_str(), "running")
    );
    let out = vmctl(&d, &["pause", "b"]);
    assert_eq!(stderr_of(&out), "vmctl: paused vm 2 successfully\n");
    let out = vmctl(&d, &["unpause", "b"]);
    assert_eq!(stderr_of(&out), "vmctl: unpaused vm 2 successfully\n");

    // a starts again with the same id.
    let out = vmctl(&d, &["start", "a"]);
    assert!(
        stderr_of(&out).starts_with("vmctl: started vm 1 successfully"),
        "{out:?}"
    );
    assert!(is_in_state(&d, "a", "running"));
}

/// `vmctl stop -f` as vmd's terminate_vm: the vm process gets SIGTERM and
/// shuts its device processes down before it exits, so when `stop -fw`
/// returns they are gone, the disk is closed and the tap free: the VM
/// starts again at once, every time.
#[test]
fn a_forced_stop_frees_the_vms_devices_before_it_is_reported() {
    const TEST: &str = "a_forced_stop_frees_the_vms_devices_before_it_is_reported";
    if !root_and_kvm(TEST) {
        return;
    }
    let Some(ns) = Netns::new(TEST, "fs") else {
        return;
    };
    let guest = build_guest();
    let a = image(&guest.dir, "bsidle.img", "a.img");
    let conf = vm_block("a", &a, "\tinterface tap62\n");
    let d = start_vmd_with(
        &guest.dir,
        &conf,
        Options {
            netns: Some(&ns),
            capture_log: true,
        },
    );
    for round in 0..3 {
        wait_for("vm a to run", Duration::from_secs(10), || {
            is_in_state(&d, "a", "running")
        });
        let pid: i32 = status_of(&d, "a").unwrap()[1].parse().unwrap();
        // vioblk and vionet, launched once the vm process is up.
        wait_for("a's two device processes", Duration::from_secs(10), || {
            children_of(pid).len() == 2
        });
        let devices = children_of(pid);
        assert_eq!(
            devices.len(),
            2,
            "round {round}: vioblk and vionet: {devices:?}"
        );
        let out = vmctl(&d, &["stop", "-fw", "a"]);
        assert!(out.status.success(), "round {round}: {out:?}");
        assert!(
            !devices.iter().any(|&p| alive(p)),
            "round {round}: device processes outlived the reported stop"
        );
        assert!(!alive(pid), "round {round}: the vm process is still there");
        let out = vmctl(&d, &["start", "a"]);
        assert!(
            stderr_of(&out).starts_with("vmctl: started vm 1 successfully"),
            "round {round}: {out:?}"
        );
    }
    assert!(
        d.log().contains("a: terminated by signal 15"),
        "the vm process did not take SIGTERM:\n{}",
        d.log()
    );
}

#[test]
fn log_verbose_reaches_the_vm_and_device_processes() {
    if !root_and_kvm("log_verbose_reaches_the_vm_and_device_processes") {
        return;
    }
    let guest = build_guest();
    let disk = image(&guest.dir, "bsidle.img", "v.img");
    let d = start_vmd_with(
        &guest.dir,
        &vm_block("v", &disk, ""),
        Options {
            capture_log: true,
            ..Options::default()
        },
    );
    let (cols, console) = attach(&d, "v");
    wait_for("the guest to idle", Duration::from_secs(30), || {
        text(&console).contains("BS-IDLE")
    });
    let vm_pid: i32 = cols[1].parse().unwrap();
    let vioblk = children_of(vm_pid);
    assert_eq!(vioblk.len(), 1, "{vioblk:?}");
    let ok = |args: &[&str]| {
        let out = vmctl(&d, args);
        assert!(out.status.success(), "vmctl {args:?}: {out:?}");
    };

    // Brief (vmd -d without -v): no debug messages from anyone.
    ok(&["pause", "v"]);
    ok(&["unpause", "v"]);
    ok(&["status", "v"]);
    std::thread::sleep(Duration::from_millis(300));
    let log = d.log();
    assert!(!log.contains("pausing"), "{log}");
    assert!(!log.contains("vmd_dispatch_vmm: "), "{log}");

    ok(&["log", "verbose"]);
    // vmd's own: the parent describes the VMs it lists.
    ok(&["status", "v"]);
    wait_for("the parent's debug message", Duration::from_secs(5), || {
        d.log()
            .contains("vmd_dispatch_vmm: running vm: 1, vm_state: 0x1")
    });
    // The vioblk process, told by the running vm process.
    ok(&["pause", "v"]);
    ok(&["unpause", "v"]);
    wait_for("vioblk's debug messages", Duration::from_secs(5), || {
        let log = d.log();
        log.contains("pausing") && log.contains("unpausing")
    });
    // The vm process itself, as it stops its device process, and vmm.
    let out = vmctl(&d, &["stop", "-w", "v"]);
    assert_eq!(stderr_of(&out), "stopping vm v: terminated vm 1\n");
    wait_for(
        "the vm process's debug message",
        Duration::from_secs(5),
        || {
            d.log()
                .contains(&format!("vioblk0: device process {} is stopped", vioblk[0]))
                && d.log().contains("v: vm 1 exited with status 0")
        },
    );

    // Brief again: a VM started now logs no debug messages, and vmd's
    // own stop too.
    ok(&["log", "brief"]);
    let seen = d.log().matches("pausing").count();
    ok(&["start", "v"]);
    wait_for("vm v to run", Duration::from_secs(10), || {
        is_in_state(&d, "v", "running")
    });
    ok(&["pause", "v"]);
    ok(&["unpause", "v"]);
    std::thread::sleep(Duration::from_millis(300));
    let log = d.log();
    assert_eq!(log.matches("pausing").count(), seen, "{log}");
    assert_eq!(
        log.matches("vmd_dispatch_vmm: running vm:").count(),
        1,
        "{log}"
    );
}

/// The flags of `dev` in `ns` (UP, LOWER_UP, ...) and its alias.
fn link(ns: &Netns, dev: &str) -> (Vec<String>, Option<String>) {
    let shown = ns.ip(&["link", "show", "dev", dev]);
    let flags = shown
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(f, _)| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let alias = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("alias "))
        .map(str::to_string);
    (flags, alias)
}

/// The bridge `tap` is a port of, from its /sys/class/net/<tap>/master
/// as seen inside `ns`.
fn master(ns: &Netns, tap: &str) -> Option<String> {
    let out = ns.exec("readlink", &[&format!("/sys/class/net/{tap}/master")]);
    out.status.success().then(|| {
        let target = String::from_utf8_lossy(&out.stdout);
        target.trim().rsplit('/').next().unwrap_or("").to_string()
    })
}

#[test]
fn a_switch_member_joins_the_bridge_until_switches_are_reset() {
    const TEST: &str = "a_switch_member_joins_the_bridge_until_switches_are_reset";
    if !root_and_kvm(TEST) {
        return;
    }
    let Some(ns) = Netns::new(TEST, "sw") else {
        return;
    };
    ns.ip(&["link", "add", "bridge0", "type", "bridge"]);
    let guest = build_guest();
    let (a, b) = (
        image(&guest.dir, "bsidle.img", "a.img"),
        image(&guest.dir, "bsidle.img", "b.img"),
    );
    let conf = format!(
        "switch \"sw\" {{\n\tinterface bridge0\n}}\n{}{}",
        vm_block("a", &a, "\tinterface tap60 { switch \"sw\" }\n"),
        vm_block("b", &b, "\tdisable\n\tinterface tap61 { switch \"sw\" }\n"),
    );
    let in_ns = || Options {
        netns: Some(&ns),
        capture_log: true,
    };
    let d = start_vmd_with(&guest.dir, &conf, in_ns());
    wait_for("vm a to run", Duration::from_secs(10), || {
        is_in_state(&d, "a", "running")
    });
    // vmd set up the switch's bridge and put a's tap in it.
    wait_for("tap60 to join bridge0", Duration::from_secs(5), || {
        master(&ns, "tap60").as_deref() == Some("bridge0")
    });
    let (flags, alias) = link(&ns, "bridge0");
    assert!(flags.iter().any(|f| f == "UP"), "bridge0: {flags:?}");
    assert_eq!(alias.as_deref(), Some("switch1-sw"));
    let (flags, alias) = link(&ns, "tap60");
    assert!(flags.iter().any(|f| f == "UP"), "tap60: {flags:?}");
    assert_eq!(alias.as_deref(), Some("vm1-if0-a"));

    // reset switches: vmd forgets them; a's tap stays where it is, and b,
    // started now, joins nothing.
    let out = vmctl(&d, &["reset", "switches"]);
    assert!(out.status.success(), "{out:?}");
    let out = vmctl(&d, &["start", "b"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("tap61 to be set up", Duration::from_secs(5), || {
        d.log().contains("switch \"sw\" not found")
            && link(&ns, "tap61").0.iter().any(|f| f == "UP")
    });
    assert_eq!(master(&ns, "tap61"), None);
    assert_eq!(master(&ns, "tap60").as_deref(), Some("bridge0"));

    // reload brings the switch back and sets its bridge up again; b, which
    // ran through the reload, joins it when it starts again.
    ns.ip(&["link", "set", "dev", "bridge0", "down"]);
    let out = vmctl(&d, &["reload"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("bridge0 to be up again", Duration::from_secs(5), || {
        link(&ns, "bridge0").0.iter().any(|f| f == "UP")
    });
    assert_eq!(master(&ns, "tap61"), None);
    let out = vmctl(&d, &["stop", "-fw", "b"]);
    assert!(out.status.success(), "{out:?}");
    let out = vmctl(&d, &["start", "b"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("tap61 to join bridge0", Duration::from_secs(5), || {
        master(&ns, "tap61").as_deref() == Some("bridge0")
    });
    // vmctl start -n: a VM made on the command line joins it too.
    let c = image(&guest.dir, "bsidle.img", "c.img");
    let out = vmctl(
        &d,
        &[
            "start",
            "-m",
            "64M",
            "-d",
            c.to_str().unwrap(),
            "-n",
            "sw",
            "c",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    wait_for("c's tap to join bridge0", Duration::from_secs(5), || {
        ns.ip(&["-o", "link", "show", "master", "bridge0"])
            .lines()
            .count()
            == 3
    });
    drop(d);

    // A switch whose bridge does not exist ends vmd, as in vmd.
    let dir = common::tempdir();
    let mut d = spawn_vmd(&dir, "switch \"gone\" {\n\tinterface bridge9\n}\n", in_ns());
    let status = wait_exit(&mut d.child, Duration::from_secs(10)).expect("vmd still runs");
    let log = d.log();
    assert!(
        log.contains("priv: priv_dispatch_parent: bridge \"bridge9\" does not exist"),
        "{status}: {log}"
    );
}

/// `vmctl create` with `args`; panics unless it succeeds.
fn vmctl_create(args: &[&str]) {
    let out = Command::new(vmctl_path())
        .arg("create")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "vmctl create {args:?}: {out:?}");
}

#[test]
fn images_from_vmctl_create_boot_under_vmd() {
    if !root_and_kvm("images_from_vmctl_create_boot_under_vmd") {
        return;
    }
    let guest = build_guest();
    let at = |n: &str| guest.dir.join(n).to_str().unwrap().to_string();
    // The guest's raw disk converted to qcow2, an image on top of that,
    // and an empty second disk.
    vmctl_create(&["-i", &at("bsdisk.img"), &at("conv.qcow2")]);
    vmctl_create(&["-b", &at("conv.qcow2"), &at("top.qcow2")]);
    vmctl_create(&["-s", "8M", &at("extra.raw")]);
    let d = start_vmd(
        &guest.dir,
        &format!(
            "vm \"c\" {{\n\tmemory 64M\n\tdisk \"{}\" format qcow2\n\tdisk \"{}\"\n}}\n",
            at("top.qcow2"),
            at("extra.raw")
        ),
    );
    let (_, console) = attach(&d, "c");
    wait_for("the guest to finish", Duration::from_secs(60), || {
        text(&console).contains("BS-DONE")
    });
    let shown = text(&console);
    for m in [
        "BS-BOOT-OK",
        &format!("BS-READ-OK sum={}", guest.read_sum),
        "BS-WRITE-OK",
    ] {
        assert!(shown.contains(m), "{m} missing:\n{shown}");
    }
    wait_for("vm c to stop", Duration::from_secs(10), || {
        is_in_state(&d, "c", "stopped")
    });
    // The write went to the top image, the base is as converted.
    for image in ["top.qcow2", "conv.qcow2"] {
        let out = Command::new("qemu-img")
            .args(["check", &at(image)])
            .output()
            .unwrap();
        assert!(out.status.success(), "qemu-img check {image}: {out:?}");
    }
    let same = |a: &str, b: &str| {
        Command::new("qemu-img")
            .args(["compare", &at(a), &at(b)])
            .status()
            .unwrap()
            .success()
    };
    assert!(same("bsdisk.img", "conv.qcow2"), "the base image changed");
    assert!(
        !same("bsdisk.img", "top.qcow2"),
        "the guest's write is missing"
    );
    vmctl_create(&["-i", &at("top.qcow2"), &at("after.raw")]);
    common::assert_written_sector(&std::fs::read(at("after.raw")).unwrap(), &guest);
}
