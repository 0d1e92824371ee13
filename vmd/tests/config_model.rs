//! What the parser builds: the typed configuration for each keyword.

use std::net::{Ipv4Addr, Ipv6Addr};

use vmd::config::*;

fn parse_text(text: &str, dir: &std::path::Path) -> Parsed {
    let path = dir.join("vm.conf");
    std::fs::write(&path, text).unwrap();
    let options = ParseOptions {
        path: path.to_string_lossy().into_owned(),
        is_default_path: false,
        macros: vec![("extra".into(), "tap3".into())],
    };
    parse(&options, &mut SystemHost)
}

#[test]
fn keywords_fill_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::write(d.join("raw.img"), b"").unwrap();
    std::fs::write(d.join("q.img"), b"QFI\xfb\0\0\0\x03").unwrap();
    std::fs::write(d.join("bios"), b"").unwrap();
    let d = d.display();
    let text = format!(
        r#"
local prefix 10.20.0.0/16
local inet6 prefix fd00:1::/48
socket owner 1000
agentx context "ctx"
staggered start parallel 3 delay 7
switch "a" {{
	interface veb0
	group grp
	locked lladdr
	rdomain 4
	down
}}
switch "skipped" {{
	interface bridge9
	disable
}}
switch "b" {{
	interface bridge1
}}
vm "base" {{
	boot "{d}/bios"
	boot device cdrom
	cdrom "/x.iso"
	disk "{d}/raw.img"
	disk "{d}/q.img"
	disk "{d}/q.img" format raw
	local interface $extra {{ switch "a"
		lladdr
		locked lladdr fe:e1:ba:d0:00:02
		rdomain 9
		group g
		down }}
	interfaces 3
	memory 1048575K
	owner 12
	allow instance {{ boot, disk
		owner 77 }}
	seves
	disable
}}
vm "base" instance "child" {{
	memory 1048576
}}
"#
    );
    let parsed = parse_text(&text, dir.path());
    assert_eq!(parsed.errors().count(), 0, "{:?}", parsed.diagnostics);
    let config = parsed.config.unwrap();

    let g = &config.globals;
    assert_eq!(
        g.local_prefix,
        Some(Ipv4Prefix {
            addr: Ipv4Addr::new(10, 20, 0, 0),
            len: 16
        })
    );
    assert!(g.local_inet6);
    assert_eq!(
        g.local_prefix6.unwrap().addr,
        "fd00:1::".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(g.local_prefix6.unwrap().len, 48);
    assert_eq!(g.socket_owner, Some((1000, 0)));
    assert_eq!(
        g.agentx,
        Some(Agentx {
            context: Some("ctx".into()),
            path: AGENTX_MASTER_PATH.into()
        })
    );
    assert_eq!(
        g.staggered_start,
        Some(StaggeredStart {
            parallel: 3,
            delay: 7
        })
    );

    assert_eq!(config.switches.len(), 2, "the disabled switch is dropped");
    let a = &config.switches[0];
    assert_eq!((a.id, a.name.as_str(), a.ifname.as_str()), (1, "a", "veb0"));
    assert_eq!(a.group.as_deref(), Some("grp"));
    assert_eq!(a.rdomain, Some(4));
    assert!(a.locked_lladdr && !a.up);
    assert_eq!((config.switches[1].id, config.switches[1].up), (2, true));

    let base = &config.vms[0];
    assert_eq!(base.name, "base");
    assert_eq!(base.parent, None);
    assert_eq!(base.boot.as_deref(), Some(format!("{d}/bios").as_str()));
    assert_eq!(base.boot_device, BootDevice::Cdrom);
    assert_eq!(base.cdrom.as_deref(), Some("/x.iso"));
    let formats: Vec<DiskFormat> = base.disks.iter().map(|d| d.format).collect();
    assert_eq!(
        formats,
        [DiskFormat::Raw, DiskFormat::Qcow2, DiskFormat::Raw]
    );
    assert_eq!(
        base.interfaces.len(),
        3,
        "interfaces 3 pads with plain ones"
    );
    let nic = &base.interfaces[0];
    assert_eq!(nic.ifname.as_deref(), Some("tap3"));
    assert_eq!(nic.switch.as_deref(), Some("a"));
    assert_eq!(nic.lladdr, Some([0xfe, 0xe1, 0xba, 0xd0, 0, 2]));
    assert!(nic.locked && nic.local && !nic.up);
    assert_eq!(nic.rdomain, Some(9));
    assert_eq!(nic.group.as_deref(), Some("g"));
    assert_eq!(base.interfaces[1], InterfaceConfig::default());
    assert_eq!(base.memory, Some(1023 << 20));
    assert_eq!(base.owner, Owner { uid: 12, gid: None });
    let policy = base.allow_instance;
    assert!(policy.boot && policy.disk && !policy.memory && !policy.cdrom);
    assert_eq!(policy.owner, Some(Owner { uid: 77, gid: None }));
    assert!(base.sev && base.seves && base.disabled);

    let child = &config.vms[1];
    assert_eq!(
        (child.name.as_str(), child.parent.as_deref()),
        ("child", Some("base"))
    );
    assert_eq!(child.memory, Some(1 << 20));
    assert!(!child.disabled);
}

#[test]
fn errors_carry_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let parsed = parse_text("\n\nvm \"x\" {\n memory 1\n}\n", dir.path());
    assert!(parsed.config.is_none());
    let errors: Vec<&ConfigError> = parsed.errors().collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 4);
    assert!(errors[0].file.ends_with("vm.conf"));
    assert_eq!(errors[0].kind, ErrorKind::SizeFailed("1".into()));
    assert_eq!(
        parsed.diagnostics[0],
        Diagnostic::Warning("memory size must be at least 1MB".into())
    );
}
