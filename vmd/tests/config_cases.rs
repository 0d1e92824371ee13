//! The project's own vm.conf cases: every keyword and every error message,
//! run through the real `vmd -n` binary. Each case is written to
//! `vm.conf` in a scratch directory that also holds `disk0.img` (raw),
//! `disk1.img` (qcow2 magic), `kernel` and `inc.conf`, and the complete
//! stderr is compared, "vmd: " prefixes included.

use std::process::Command;

struct Run {
    ok: bool,
    stderr: String,
}

fn vmd_n(conf: &[u8], extra_args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vm.conf"), conf).unwrap();
    std::fs::write(dir.path().join("disk0.img"), b"").unwrap();
    std::fs::write(dir.path().join("disk1.img"), b"QFI\xfb\0\0\0\x03").unwrap();
    std::fs::write(dir.path().join("kernel"), b"").unwrap();
    std::fs::write(
        dir.path().join("inc.conf"),
        "# included\nvm \"inc\" {\n memory nope\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .current_dir(dir.path())
        .args(extra_args)
        .args(["-n", "-f", "vm.conf"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    Run {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check(name: &str, conf: &str, want: &str) {
    let run = vmd_n(conf.as_bytes(), &[]);
    assert_eq!(run.stderr, want, "case {name}");
    assert_eq!(
        run.ok,
        want.ends_with("configuration OK\n"),
        "exit status of case {name}"
    );
}

#[test]
fn every_keyword_parses() {
    let conf = r#"# every keyword vm.conf knows
ramdisk = "kernel"
mem="1G"
local prefix 100.64.0.0/10
local inet6
local inet6 prefix fd00::/8
socket owner root
agentx context "vmd" path "/var/agentx/master"
staggered start parallel 2 delay 30
switch "uplink" {
	interface bridge0
	group uplinks
	locked lladdr
	rdomain 1
	down
	up
	enable
}
switch "off" {
	interface veb1
	disable
}
vm "one" {
	boot $ramdisk
	boot device disk
	cdrom "install.iso"
	disk "disk0.img" format raw
	disk disk1.img
	disk "disk0.img" format "QCOW2"
	interface tap0 {
		switch "uplink"
		group vms
		locked lladdr fe:e1:ba:d0:00:01
		rdomain 0
		down
	}
	interface switch "uplink" lladdr 00:11:22:33:44:55, up
	local interface
	interfaces 3
	memory $mem
	owner 0
	allow instance {
		boot, memory
		interface
		disk, cdrom, instance,
		owner root
	}
	sev
	seves
	disable
	enable
}
vm "one" instance "two" {
	memory 2097152
	owner root:root
	allow instance boot
}
vm "three" \
    { boot device net }
vm "four" { boot device cdrom }
"#;
    check("every-keyword", conf, "configuration OK\n");
}

#[test]
fn every_error_message() {
    let long = |n: usize| "a".repeat(n);
    let cases: Vec<(&str, String, String)> = vec![
        (
            "syntax",
            "foo bar\n".into(),
            "vmd: vm.conf:1: syntax error\n".into(),
        ),
        (
            "string-too-long",
            format!("{}\n", long(8096)),
            "vmd: vm.conf:1: string too long\nvmd: vm.conf:1: syntax error\n".into(),
        ),
        (
            "macro-not-defined",
            "vm $nope\n".into(),
            "vmd: vm.conf:1: macro 'nope' not defined\nvmd: vm.conf:1: syntax error\n".into(),
        ),
        (
            "invalid-number",
            "staggered start parallel 99999999999999999999 delay 1\n".into(),
            "vmd: vm.conf:1: \"99999999999999999999\" invalid number: too large\n\
             vmd: vm.conf:1: syntax error\n"
                .into(),
        ),
        (
            "eof-in-quoted-string",
            "\nvm \"x\n".into(),
            "vmd: vm.conf:2: reached end of file while parsing quoted string\n\
             vmd: vm.conf:2: syntax error\n"
                .into(),
        ),
        (
            "include-failed",
            "include \"/nonexistent/vm.conf\"\n".into(),
            "vmd: vm.conf:1: failed to include file /nonexistent/vm.conf\n".into(),
        ),
        (
            "macro-name-whitespace",
            "\"a b\" = \"c\"\n".into(),
            "vmd: vm.conf:1: macro name cannot contain whitespace\n".into(),
        ),
        (
            "local-inet6-prefix",
            "local inet6 prefix fd00::1/64\n".into(),
            "vmd: vm.conf:1: invalid local inet6 prefix: bad mask\n".into(),
        ),
        (
            "local-prefix",
            "local prefix 10.0.0.0/24\n".into(),
            "vmd: vm.conf:1: invalid local prefix: too large\n".into(),
        ),
        (
            "agentx-context",
            format!("agentx context \"{}\"\n", long(33)),
            "vmd: vm.conf:1: agentx context too large\n".into(),
        ),
        (
            "agentx-path-long",
            format!("agentx path \"/{}\"\n", long(103)),
            "vmd: vm.conf:1: agentx path too large\n".into(),
        ),
        (
            "agentx-path-relative",
            "agentx path \"agentx.sock\"\n".into(),
            "vmd: vm.conf:1: agentx path is not absolute\n".into(),
        ),
        (
            "switch-missing-interface",
            "switch \"x\" {\n group sw\n}\n".into(),
            "vmd: vm.conf:3: switch \"x\" is missing interface name\n".into(),
        ),
        (
            "invalid-group",
            "switch \"x\" {\n interface bridge0\n group foo1\n}\n".into(),
            "vmd: vm.conf:3: invalid group name: foo1\n".into(),
        ),
        (
            "invalid-switch-interface",
            "switch \"x\" {\n interface tap0\n}\n".into(),
            "vmd: vm.conf:2: invalid switch interface: tap0\n".into(),
        ),
        (
            "switch-interface-too-long",
            "switch \"x\" {\n interface bridge0000000000\n}\n".into(),
            "vmd: vm.conf:2: switch interface too long: bridge0000000000\n".into(),
        ),
        (
            "invalid-rdomain",
            "switch \"x\" {\n interface bridge0\n rdomain 256\n}\n".into(),
            "vmd: vm.conf:3: invalid rdomain: 256\n".into(),
        ),
        (
            "parent-name-too-long",
            format!("vm \"{}\" instance \"x\" {{\n memory 1G\n}}\n", long(64)),
            format!("vmd: vm.conf:1: vm {} name too long\n", long(64)),
        ),
        (
            "vm-name-too-long",
            format!("vm \"{}\" {{\n memory 1G\n}}\n", long(64)),
            "vmd: vm.conf:1: vm name too long\n".into(),
        ),
        (
            "disk-missing",
            "vm \"x\" {\n disk \"nope.img\"\n}\n".into(),
            "vmd: disk nope.img: No such file or directory\n\
             vmd: vm.conf:2: failed to parse disks: nope.img\n"
                .into(),
        ),
        (
            "too-many-interfaces",
            "vm \"x\" {\n interface\n interface\n interface\n interface\n interface\n}\n".into(),
            "vmd: vm.conf:6: too many interfaces: 5\n".into(),
        ),
        (
            "too-many-interfaces-count",
            "vm \"x\" {\n interfaces 5\n}\n".into(),
            "vmd: vm.conf:2: too many interfaces: 5\n".into(),
        ),
        (
            "invalid-interface",
            "vm \"x\" {\n interface em0\n}\n".into(),
            "vmd: vm.conf:2: invalid interface: em0\n".into(),
        ),
        (
            "interface-name-too-long",
            "vm \"x\" {\n interface tap000000000000000\n}\n".into(),
            "vmd: vm.conf:2: interface name too long: tap000000000000000\n".into(),
        ),
        (
            "kernel-twice",
            "vm \"x\" {\n boot kernel\n boot kernel\n}\n".into(),
            "vmd: vm.conf:3: kernel specified more than once\n".into(),
        ),
        (
            "kernel-not-found",
            "vm \"x\" {\n boot \"/nonexistent/bsd\"\n}\n".into(),
            "vmd: vm.conf:2: kernel path not found: No such file or directory\n".into(),
        ),
        (
            "cdrom-twice",
            "vm \"x\" {\n cdrom a.iso\n cdrom b.iso\n}\n".into(),
            "vmd: vm.conf:3: cdrom specified more than once\n".into(),
        ),
        (
            "cdrom-too-long",
            format!("vm \"x\" {{\n cdrom \"{}\"\n}}\n", long(1024)),
            "vmd: vm.conf:2: cdrom name too long\n".into(),
        ),
        (
            "interfaces-twice",
            "vm \"x\" {\n interfaces 1\n interfaces 2\n}\n".into(),
            "vmd: vm.conf:3: interfaces specified more than once\n".into(),
        ),
        (
            "memory-twice",
            "vm \"x\" {\n memory 1G\n memory 2097152\n}\n".into(),
            "vmd: vm.conf:3: memory specified more than once\n".into(),
        ),
        (
            "memory-with-unit-twice",
            "vm \"x\" {\n memory 1G\n memory 2G\n}\n".into(),
            "vmd: vm.conf:3: argument specified more than once\n".into(),
        ),
        (
            "memory-unparsable",
            "vm \"x\" {\n memory 1X\n}\n".into(),
            "vmd: invalid memory size: 1X: Invalid argument\n\
             vmd: vm.conf:2: failed to parse size: 1X\n"
                .into(),
        ),
        (
            "memory-too-large",
            "vm \"x\" {\n memory 129G\n}\n".into(),
            "vmd: memory size too large (limit is 128G)\n\
             vmd: vm.conf:2: failed to parse size: 129G\n"
                .into(),
        ),
        (
            "unknown-user",
            "vm \"x\" {\n owner nosuchuser_vmdrs\n}\n".into(),
            "vmd: vm.conf:2: failed to get user: nosuchuser_vmdrs\n".into(),
        ),
        (
            "unknown-group",
            "vm \"x\" {\n owner :nosuchgroup_vmdrs\n}\n".into(),
            "vmd: vm.conf:2: failed to get group: nosuchgroup_vmdrs\n".into(),
        ),
        (
            "unknown-disk-format",
            "vm \"x\" {\n disk disk0.img format vmdk\n}\n".into(),
            "vmd: vm.conf:2: unrecognized disk format vmdk\n".into(),
        ),
        (
            "switch-name-too-long",
            format!(
                "vm \"x\" {{\n interface {{ switch \"{}\" }}\n}}\n",
                long(64)
            ),
            format!("vmd: vm.conf:2: switch name too long: {}\n", long(64)),
        ),
        (
            // The C format string ends in a newline: an empty line follows.
            "invalid-address",
            "vm \"x\" {\n interface { lladdr foo }\n}\n".into(),
            "vmd: vm.conf:2: invalid address: foo\n\n".into(),
        ),
    ];
    let mut failed = Vec::new();
    for (name, conf, want) in &cases {
        let run = vmd_n(conf.as_bytes(), &[]);
        if run.stderr != *want || run.ok {
            failed.push(format!(
                "{name}: ok={} want:\n{want}got:\n{}",
                run.ok, run.stderr
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn syntax_errors_stay_quiet_until_three_tokens_are_accepted() {
    // As in yacc: the second line fails before three tokens were accepted.
    check("quiet", "foo\nbar\n", "vmd: vm.conf:1: syntax error\n");
    check(
        "loud-again",
        "foo\n\n\nbar\n",
        "vmd: vm.conf:1: syntax error\nvmd: vm.conf:4: syntax error\n",
    );
    // After an error inside a block, its other lines fail quietly.
    check(
        "rest-of-block",
        "vm \"x\" {\n disk nope.img\n memory 1G\n}\nvm \"y\" {\n memory 1G\n}\n",
        "vmd: disk nope.img: No such file or directory\n\
         vmd: vm.conf:2: failed to parse disks: nope.img\n",
    );
}

#[test]
fn grammar_corners() {
    // Empty blocks are not allowed.
    check(
        "empty-vm",
        "vm \"x\" {\n}\n",
        "vmd: vm.conf:2: syntax error\n",
    );
    check(
        "empty-switch",
        "switch \"x\" { }\n",
        "vmd: vm.conf:1: syntax error\n",
    );
    // A second option needs its own line before the closing brace.
    check(
        "two-options-one-line",
        "vm \"x\" {\n memory 1G\n disable }\n",
        "vmd: vm.conf:3: syntax error\n",
    );
    // The removed keywords.
    check(
        "kernel",
        "vm \"x\" {\n kernel kernel\n}\n",
        "vmd: vm.conf:2: syntax error\n",
    );
    check(
        "size",
        "vm \"x\" {\n size 1G\n}\n",
        "vmd: vm.conf:2: syntax error\n",
    );
    // Numbers are not macro values; strings are.
    check("number-macro", "a = 1\n", "vmd: vm.conf:1: syntax error\n");
    // Last line without a newline, comments and continuation lines.
    check(
        "no-final-newline",
        "# c\nvm \"x\" { memory \\\n 1G } # trailing",
        "configuration OK\n",
    );
    // Adjacent strings join.
    check(
        "joined",
        "vm \"o\" \"ne\" { memory 1G }\n",
        "configuration OK\n",
    );
    // A NUL byte ends the input for yacc.
    let run = vmd_n(b"vm \"x\" { memory 1G }\n\0garbage {\n", &[]);
    assert_eq!(run.stderr, "configuration OK\n");
    // Errors in an included file name that file and its own lines.
    check(
        "include",
        "include \"inc.conf\"\nvm \"y\" { memory 1G }\n",
        "vmd: invalid memory size: nope: Invalid argument\n\
         vmd: inc.conf:3: failed to parse size: nope\n",
    );
    check(
        "unused-macro",
        "a = \"1\"\nvm \"x\" { memory 1G }\n",
        "warning: macro 'a' not used\nconfiguration OK\n",
    );
}

#[test]
fn command_line() {
    // -D defines a macro that the file cannot override.
    let run = vmd_n(b"m = \"1X\"\nvm \"x\" { memory $m }\n", &["-D", "m=2G"]);
    assert_eq!(run.stderr, "configuration OK\n");
    assert!(run.ok);
    let run = vmd_n(b"vm \"x\" { memory 1G }\n", &["-D", "nomacro"]);
    assert_eq!(
        run.stderr,
        "vmd: could not parse macro definition nomacro\nconfiguration OK\n"
    );

    let vmd = env!("CARGO_BIN_EXE_vmd");
    let usage = "usage: vmd [-dnv] [-D macro=value] [-f file]\n";
    let out = Command::new(vmd).arg("-x").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("vmd: unknown option -- x\n{usage}")
    );
    let out = Command::new(vmd).args(["-n", "extra"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), usage);
    let out = Command::new(vmd).args(["-n", "-f"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("vmd: option requires an argument -- f\n{usage}")
    );

    // A missing file is reported but is no error, as in vmd.
    let out = Command::new(vmd)
        .args(["-n", "-f", "/nonexistent/vm.conf"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vmd: failed to open /nonexistent/vm.conf: No such file or directory\nconfiguration OK\n"
    );

    // The vm and device roles refuse an fd they were not given; an
    // unknown process name is refused.
    let out = Command::new(vmd).args(["-d", "-V", "99"]).output().unwrap();
    assert_eq!(out.status.code(), Some(libc::EBADF));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fd 99 is not open"));
    let out = Command::new(vmd)
        .args(["-d", "-X", "99", "-t", "d"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(libc::EBADF));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fd 99 is not open"));
    let out = Command::new(vmd).args(["-P", "bogus"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid process name: bogus"));
}
