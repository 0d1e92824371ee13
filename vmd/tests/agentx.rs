//! vmd's agentx process against a real AgentX master: Debian's net-snmp
//! snmpd, started by the test on a private UDP port with its master
//! socket in a temporary directory, and walked with snmpwalk. vmd runs two
//! VMs, one running (SeaBIOS with a blank disk waits a minute for a boot
//! device, so it stays up) and one disabled; the walk of VM-MIB
//! (1.3.6.1.2.1.236) must show both as C vmd reports them, follow the
//! running one through pause, unpause and stop, survive the master
//! restarting, and move to another context on reload.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::daemon::{root_and_kvm, start_vmd, status_of, vmctl, wait_for};

const VM_MIB: &str = ".1.3.6.1.2.1.236";

/// A private snmpd acting as AgentX master.
struct Snmpd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for net-snmp's programs: no MIB files (numeric OIDs only)
/// and persistent state kept in the test's directory.
fn snmp_env(cmd: &mut Command, dir: &Path) {
    cmd.env("MIBS", "")
        .env("MIBDIRS", dir.join("no-mibs"))
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"));
}

impl Snmpd {
    /// snmpd on 127.0.0.1 with its master socket at `dir`/master:
    /// community `public` for the default context, `ctx` for context
    /// "vms", `private` may write.
    fn start(dir: &Path) -> Snmpd {
        // A free port: the kernel picks one, snmpd takes it over.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "rocommunity public 127.0.0.1\n\
                 rwcommunity private 127.0.0.1\n\
                 view all included .1\n\
                 rocommunity ctx 127.0.0.1 -V all vms\n\
                 master agentx\n\
                 agentXSocket {}\n\
                 agentXPerms 0777 0755\n",
                dir.join("master").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("persist")).unwrap();
        let mut cmd = Command::new("snmpd");
        snmp_env(&mut cmd, dir);
        let child = cmd
            .args(["-f", "-C", "-c"])
            .arg(&conf)
            .arg("-Lf")
            .arg(dir.join("snmpd.log"))
            .arg(format!("udp:127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("snmpd: .ci/install-deps installs the snmpd package");
        let s = Snmpd {
            child,
            dir: dir.to_path_buf(),
            port,
        };
        wait_for("snmpd's master socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(dir.join("master")).is_ok()
        });
        s
    }

    fn tool(&self, program: &str, community: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(program);
        snmp_env(&mut cmd, &self.dir);
        cmd.args(["-v2c", "-c", community, "-On", "-t", "3", "-r", "1"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (.ci/install-deps installs snmp)"))
    }

    /// `snmpwalk` of vmMIB: (OID below vmMIB, value as snmpwalk prints it).
    fn walk(&self, community: &str) -> Vec<(String, String)> {
        let out = self.tool("snmpwalk", community, &[VM_MIB]);
        assert!(out.status.success(), "snmpwalk: {out:?}");
        parse(&out.stdout)
    }

    /// `snmpget` of instances below vmMIB.
    fn get(&self, oids: &[&str]) -> Vec<(String, String)> {
        let full: Vec<String> = oids.iter().map(|o| format!("{VM_MIB}.{o}")).collect();
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = self.tool("snmpget", "public", &args);
        parse(&out.stdout)
    }
}

fn parse(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(oid, v)| {
            let oid = oid.strip_prefix(VM_MIB).unwrap_or(oid);
            (oid.trim_start_matches('.').to_string(), v.to_string())
        })
        .collect()
}

/// The value of `oid` in a walk.
fn value<'a>(walk: &'a [(String, String)], oid: &str) -> Option<&'a str> {
    walk.iter().find(|(o, _)| o == oid).map(|(_, v)| v.as_str())
}

/// vmTable's column `col` for VM `id`.
fn cell(walk: &[(String, String)], col: u32, id: u32) -> String {
    value(walk, &format!("1.4.1.{col}.{id}"))
        .unwrap_or_else(|| panic!("no vmTable column {col} for vm {id} in {walk:?}"))
        .to_string()
}

/// (vmAdminState, vmOperState, vmCurMem) of VM `id`.
fn state(walk: &[(String, String)], id: u32) -> (String, String, String) {
    (cell(walk, 5, id), cell(walk, 6, id), cell(walk, 13, id))
}

fn int(v: i64) -> String {
    format!("INTEGER: {v}")
}

#[test]
fn snmp_walks_of_vm_mib_follow_the_vms() {
    if !root_and_kvm("snmp_walks_of_vm_mib_follow_the_vms") {
        return;
    }
    // agentx runs as nobody: the master's socket lives in a directory it
    // can reach (the test's target directory may not be).
    let tmp = tempfile::Builder::new()
        .prefix("vmd-agentx")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // No boot signature: SeaBIOS waits a minute for a boot device, so the
    // VM runs until stopped.
    let blank = dir.join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let snmpd = Snmpd::start(dir);
    let vms = format!(
        "vm \"run\" {{\n\tmemory 64M\n\tdisk \"{b}\"\n}}\n\
         vm \"off\" {{\n\tdisable\n\tmemory 128M\n\tdisk \"{b}\"\n}}\n",
        b = blank.display()
    );
    let master = dir.join("master");
    let d = start_vmd(dir, &format!("agentx path \"{}\"\n{vms}", master.display()));
    wait_for("vm run to run", Duration::from_secs(10), || {
        status_of(&d, "run").is_some_and(|c| c[7] == "running")
    });
    // The subagent registers right after vmd starts; the walk retries
    // until vmMIB is there.
    let mut walk = Vec::new();
    wait_for("vmMIB in the walk", Duration::from_secs(10), || {
        walk = snmpd.walk("public");
        value(&walk, "1.2.0").is_some()
    });

    // The hypervisor scalars and vmNumber.
    let release =
        String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    assert_eq!(value(&walk, "1.1.1.0"), Some("STRING: \"Linux KVM\""));
    assert_eq!(
        value(&walk, "1.1.2.0"),
        Some(format!("STRING: \"{}\"", release.trim()).as_str())
    );
    assert_eq!(value(&walk, "1.1.3.0"), Some("OID: .0.0"));
    assert_eq!(value(&walk, "1.2.0"), Some(int(2).as_str()));
    // Exactly C vmd's objects: 3 scalars, vmNumber, 14 columns per VM.
    assert_eq!(walk.len(), 4 + 14 * 2, "{walk:#?}");
    assert!(
        walk.iter().all(|(o, _)| !o.starts_with("1.3.")),
        "no vmTableLastChange"
    );

    // vm.conf's order gives the ids: run is 1, off is 2.
    assert_eq!(cell(&walk, 2, 1), "STRING: \"run\"");
    assert_eq!(cell(&walk, 2, 2), "STRING: \"off\"");
    for id in [1, 2] {
        assert_eq!(cell(&walk, 3, id), "\"\"", "vmUUID");
        assert_eq!(cell(&walk, 4, id), "\"\"", "vmOSType");
        assert_eq!(cell(&walk, 8, id), int(1), "vmPersistent");
        for col in 9..=11 {
            assert_eq!(cell(&walk, col, id), int(1), "cpus");
        }
        assert_eq!(cell(&walk, 12, id), int(1048576), "vmMemUnit");
        assert_eq!(cell(&walk, 14, id), int(-1), "vmMinMem");
    }
    // Running: admin running (1), oper running (4), all its memory in use.
    assert_eq!(state(&walk, 1), (int(1), int(4), int(64)));
    assert_eq!(cell(&walk, 7, 1), int(2), "vmAutoStart enabled");
    assert_eq!(cell(&walk, 15, 1), int(64), "vmMaxMem");
    // Disabled: shut down (4, 11), no memory used, autostart disabled.
    assert_eq!(state(&walk, 2), (int(4), int(11), int(0)));
    assert_eq!(cell(&walk, 7, 2), int(3), "vmAutoStart disabled");
    assert_eq!(cell(&walk, 15, 2), int(128), "vmMaxMem");

    // Get: instances, a missing row, objects vmd does not serve.
    let got = snmpd.get(&["1.4.1.2.1", "1.4.1.2.9", "1.3.0", "1.4.1.1.1"]);
    assert_eq!(got[0].1, "STRING: \"run\"");
    assert!(got[1].1.starts_with("No Such Instance"), "{got:?}");
    assert!(got[2].1.starts_with("No Such Object"), "{got:?}");
    assert!(got[3].1.starts_with("No Such Object"), "{got:?}");
    // GetBulk through the master gives the same walk.
    let bulk = parse(&snmpd.tool("snmpbulkwalk", "public", &[VM_MIB]).stdout);
    assert_eq!(bulk, walk);
    // Sets are refused by the subagent.
    let set = snmpd.tool(
        "snmpset",
        "private",
        &[&format!("{VM_MIB}.1.4.1.2.1"), "s", "renamed"],
    );
    assert!(!set.status.success());
    assert!(
        String::from_utf8_lossy(&set.stderr).contains("notWritable"),
        "{set:?}"
    );

    // State changes show in the next walk.
    let out = vmctl(&d, &["pause", "run"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(&snmpd.walk("public"), 1), (int(3), int(8), int(64)));
    let out = vmctl(&d, &["unpause", "run"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(&snmpd.walk("public"), 1), (int(1), int(4), int(64)));
    let out = vmctl(&d, &["stop", "-f", "run"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("vm run to stop", Duration::from_secs(10), || {
        status_of(&d, "run").is_some_and(|c| c[7] == "stopped")
    });
    assert_eq!(state(&snmpd.walk("public"), 1), (int(4), int(11), int(0)));

    // The master restarts: the subagent connects again (within its 3 s
    // retry) and serves the same view.
    drop(snmpd);
    let snmpd = Snmpd::start(dir);
    wait_for(
        "vmMIB after the master restarted",
        Duration::from_secs(10),
        || value(&snmpd.walk("public"), "1.2.0").is_some(),
    );

    // A reload moves the subagent to context "vms".
    std::fs::write(
        dir.join("vm.conf"),
        format!(
            "agentx context \"vms\" path \"{}\"\n{vms}",
            master.display()
        ),
    )
    .unwrap();
    let out = vmctl(&d, &["reload"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("vmMIB in context vms", Duration::from_secs(10), || {
        value(&snmpd.walk("ctx"), "1.2.0").is_some()
    });
    let walk = snmpd.walk("public");
    assert!(
        value(&walk, "1.2.0").is_none(),
        "still in the default context: {walk:?}"
    );
    assert_eq!(cell(&snmpd.walk("ctx"), 2, 2), "STRING: \"off\"");
}
