//! What the parent asks the priv process to do to host interfaces, as
//! vmd's priv.c: a switch's bridge interface when the configuration
//! brings the switch in (vm_priv_brconfig), and a VM's taps when it
//! starts (vm_priv_ifconfig). Each request is an imsg type and a
//! `struct vmop_ifreq`.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::model::SwitchConfig;
use crate::imsg_types::*;
use crate::privops::encode_ifreq;
use crate::vms::Iface;

/// One request for the priv process.
pub type HostOp = (u32, Vec<u8>);

/// A switch from the configuration and whether its bridge has been set
/// up (`sw_running`).
#[derive(Clone, Debug)]
pub struct Switch {
    pub config: SwitchConfig,
    pub running: bool,
}

/// The bridge of a switch: it must exist (priv ends vmd if it does not),
/// then its routing domain, its description and its state.
pub fn switch_ops(sw: &SwitchConfig) -> Vec<HostOp> {
    let rdomain = sw.rdomain.unwrap_or(0);
    if rdomain != 0 {
        log::debug!(
            "vm_priv_brconfig: interface {} rdomain {rdomain}",
            sw.ifname
        );
    }
    let descr = format!("switch{}-{}", sw.id, sw.name);
    log::debug!(
        "vm_priv_brconfig: interface {} description {descr}",
        sw.ifname
    );
    vec![
        (
            IMSG_VMDOP_PRIV_IFEXISTS,
            encode_ifreq(0, &sw.ifname, "", None),
        ),
        (
            IMSG_VMDOP_PRIV_IFRDOMAIN,
            encode_ifreq(rdomain, &sw.ifname, "", None),
        ),
        (
            IMSG_VMDOP_PRIV_IFDESCR,
            encode_ifreq(0, &sw.ifname, &descr, None),
        ),
        (
            if sw.up {
                IMSG_VMDOP_PRIV_IFUP
            } else {
                IMSG_VMDOP_PRIV_IFDOWN
            },
            encode_ifreq(0, &sw.ifname, "", None),
        ),
    ]
}

/// Interface `idx` of VM `vmid` on tap `tap`: its description, its
/// switch (looked up now, so a switch removed by `vmctl reset switches`
/// is not joined), routing domain, groups, state and, for a local
/// interface, the host's address.
pub fn iface_ops(
    vmid: u32,
    vm_name: &str,
    idx: usize,
    tap: &str,
    iface: &Iface,
    switches: &[Switch],
    host_addr: Option<Ipv4Addr>,
) -> Vec<HostOp> {
    let mut ops = Vec::new();
    let descr = format!("vm{vmid}-if{idx}-{vm_name}");
    log::debug!("vm_priv_ifconfig: interface {tap} description {descr}");
    ops.push((
        IMSG_VMDOP_PRIV_IFDESCR,
        encode_ifreq(vmid, tap, &descr, None),
    ));
    let sw = iface
        .switch
        .as_deref()
        .and_then(|name| switches.iter().find(|s| s.config.name == name));
    if let (None, Some(name)) = (sw, &iface.switch) {
        log::warn!("switch \"{name}\" not found");
    }
    if let Some(sw) = sw {
        log::debug!(
            "vm_priv_ifconfig: switch \"{}\" interface {} add {tap}",
            sw.config.name,
            sw.config.ifname
        );
        ops.push((
            IMSG_VMDOP_PRIV_IFADD,
            encode_ifreq(vmid, &sw.config.ifname, tap, None),
        ));
    }
    let rdomain = iface
        .rdomain
        .or_else(|| sw.and_then(|s| s.config.rdomain))
        .unwrap_or(0);
    if rdomain != 0 {
        log::debug!("vm_priv_ifconfig: interface {tap} rdomain {rdomain}");
    }
    ops.push((
        IMSG_VMDOP_PRIV_IFRDOMAIN,
        encode_ifreq(rdomain, tap, "", None),
    ));
    let groups = [
        iface.group.as_deref(),
        sw.and_then(|s| s.config.group.as_deref()),
    ];
    for group in groups.into_iter().flatten() {
        log::debug!("vm_priv_ifconfig: interface {tap} group {group}");
        ops.push((
            IMSG_VMDOP_PRIV_IFGROUP,
            encode_ifreq(vmid, tap, group, None),
        ));
    }
    ops.push((
        if iface.up {
            IMSG_VMDOP_PRIV_IFUP
        } else {
            IMSG_VMDOP_PRIV_IFDOWN
        },
        encode_ifreq(vmid, tap, "", None),
    ));
    if let Some(host) = host_addr {
        log::debug!("vm_priv_ifconfig: interface {tap} address {host}/31");
        let mask = IpAddr::from(Ipv4Addr::new(255, 255, 255, 254));
        ops.push((
            IMSG_VMDOP_PRIV_IFADDR,
            encode_ifreq(vmid, tap, "", Some((host.into(), mask))),
        ));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privops::{parse, PrivOp};

    fn parsed(ops: &[HostOp]) -> Vec<PrivOp> {
        ops.iter().map(|(t, r)| parse(*t, r).unwrap()).collect()
    }

    fn switch(name: &str, ifname: &str) -> Switch {
        Switch {
            config: SwitchConfig {
                id: 2,
                name: name.into(),
                ifname: ifname.into(),
                group: Some("vmsw".into()),
                rdomain: None,
                locked_lladdr: false,
                up: true,
            },
            running: false,
        }
    }

    #[test]
    fn a_switch_bridge_is_checked_described_and_brought_up() {
        let ops = parsed(&switch_ops(&switch("uplink", "bridge0").config));
        assert_eq!(
            ops,
            [
                PrivOp::Exists {
                    ifname: "bridge0".into()
                },
                PrivOp::Rdomain {
                    ifname: "bridge0".into(),
                    rdomain: 0
                },
                PrivOp::Describe {
                    ifname: "bridge0".into(),
                    descr: "switch2-uplink".into()
                },
                PrivOp::Up {
                    ifname: "bridge0".into()
                },
            ]
        );
    }

    #[test]
    fn a_tap_joins_its_switch_only_while_the_switch_is_known() {
        let iface = Iface {
            switch: Some("uplink".into()),
            up: true,
            ..Iface::default()
        };
        let switches = [switch("uplink", "bridge0")];
        let ops = parsed(&iface_ops(3, "web", 0, "tap5", &iface, &switches, None));
        assert_eq!(
            ops,
            [
                PrivOp::Describe {
                    ifname: "tap5".into(),
                    descr: "vm3-if0-web".into()
                },
                PrivOp::AddMember {
                    bridge: "bridge0".into(),
                    member: "tap5".into()
                },
                PrivOp::Rdomain {
                    ifname: "tap5".into(),
                    rdomain: 0
                },
                PrivOp::Group {
                    ifname: "tap5".into(),
                    group: "vmsw".into()
                },
                PrivOp::Up {
                    ifname: "tap5".into()
                },
            ]
        );
        // After `vmctl reset switches`: no switch, no membership.
        let ops = parsed(&iface_ops(3, "web", 0, "tap5", &iface, &[], None));
        assert!(!ops.iter().any(|o| matches!(o, PrivOp::AddMember { .. })));
        assert!(ops.contains(&PrivOp::Up {
            ifname: "tap5".into()
        }));
    }
}
