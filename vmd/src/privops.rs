//! The priv process's requests: `struct vmop_ifreq` as the C vmd lays it
//! out, parsed into typed operations on host interfaces. The operations
//! themselves live in `sys` (ioctls on OpenBSD, `ip` on Linux).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::imsg_types::*;

/// OpenBSD's IF_NAMESIZE and VM_NAME_MAX.
pub const IF_NAMESIZE: usize = 16;
pub const VM_NAME_MAX: usize = 64;
/// `sizeof(struct sockaddr_storage)` on OpenBSD.
pub const SOCKADDR_STORAGE: usize = 256;
/// `struct vmop_ifreq`: id, name[16], value[64], then two 8-aligned
/// sockaddr_storage.
pub const VMOP_IFREQ_SIZE: usize = 88 + 2 * SOCKADDR_STORAGE;
const ADDR_OFF: usize = 88;
const MASK_OFF: usize = 88 + SOCKADDR_STORAGE;
/// Address families as OpenBSD numbers them on the wire.
pub const OPENBSD_AF_INET: u8 = 2;
pub const OPENBSD_AF_INET6: u8 = 24;

/// A host-interface request from the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivOp {
    /// Set the interface description.
    Describe {
        ifname: String,
        descr: String,
    },
    /// Make sure a switch (bridge) interface exists.
    Exists {
        ifname: String,
    },
    /// Add `member` to the switch `bridge`.
    AddMember {
        bridge: String,
        member: String,
    },
    Up {
        ifname: String,
    },
    Down {
        ifname: String,
    },
    /// Put the interface in an interface group.
    Group {
        ifname: String,
        group: String,
    },
    /// Set the interface's routing domain.
    Rdomain {
        ifname: String,
        rdomain: u32,
    },
    /// Give the interface an address with a prefix length.
    Address {
        ifname: String,
        addr: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrivOpError {
    #[error("priv: request {type_} has {got} bytes, expected {expected}")]
    Size {
        type_: u32,
        got: usize,
        expected: usize,
    },
    #[error("priv: unknown request {0}")]
    Unknown(u32),
    #[error("priv: invalid interface name {0:?}")]
    Name(String),
    #[error("priv: invalid address in request {0}")]
    Address(u32),
}

/// A NUL-terminated string from a fixed-size field.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Interface names go to `ip` as arguments: only what an interface name
/// can contain, never an option.
fn ifname(b: &[u8]) -> Result<String, PrivOpError> {
    let n = cstr(b);
    let ok = !n.is_empty()
        && !n.starts_with('-')
        && n.len() < IF_NAMESIZE
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(n)
    } else {
        Err(PrivOpError::Name(n))
    }
}

/// Reads an OpenBSD sockaddr (sa_len, sa_family, ...) into an address.
fn sockaddr(b: &[u8]) -> Option<IpAddr> {
    match b[1] {
        OPENBSD_AF_INET => Some(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))),
        OPENBSD_AF_INET6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn prefix_len(mask: IpAddr) -> Option<u8> {
    let (bits, total) = match mask {
        IpAddr::V4(m) => (u128::from(u32::from(m)) << 96, 32),
        IpAddr::V6(m) => (u128::from(m), 128),
    };
    let ones = bits.leading_ones();
    // A mask is contiguous ones.
    (bits.checked_shl(ones).unwrap_or(0) == 0 && ones <= total).then_some(ones as u8)
}

/// Writes an address as an OpenBSD sockaddr into `out`.
pub fn encode_sockaddr(addr: IpAddr, out: &mut [u8]) {
    match addr {
        IpAddr::V4(a) => {
            out[0] = 16;
            out[1] = OPENBSD_AF_INET;
            out[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out[0] = 28;
            out[1] = OPENBSD_AF_INET6;
            out[8..24].copy_from_slice(&a.octets());
        }
    }
}

/// Builds a `struct vmop_ifreq`.
pub fn encode_ifreq(id: u32, name: &str, value: &str, addr: Option<(IpAddr, IpAddr)>) -> Vec<u8> {
    let mut v = vec![0u8; VMOP_IFREQ_SIZE];
    v[0..4].copy_from_slice(&id.to_ne_bytes());
    let n = name.len().min(IF_NAMESIZE - 1);
    v[4..4 + n].copy_from_slice(&name.as_bytes()[..n]);
    let n = value.len().min(VM_NAME_MAX - 1);
    v[20..20 + n].copy_from_slice(&value.as_bytes()[..n]);
    if let Some((a, m)) = addr {
        encode_sockaddr(a, &mut v[ADDR_OFF..MASK_OFF]);
        encode_sockaddr(m, &mut v[MASK_OFF..]);
    }
    v
}

/// Parses one request from the parent.
pub fn parse(type_: u32, data: &[u8]) -> Result<PrivOp, PrivOpError> {
    if !matches!(
        type_,
        IMSG_VMDOP_PRIV_IFDESCR
            | IMSG_VMDOP_PRIV_IFADD
            | IMSG_VMDOP_PRIV_IFEXISTS
            | IMSG_VMDOP_PRIV_IFUP
            | IMSG_VMDOP_PRIV_IFDOWN
            | IMSG_VMDOP_PRIV_IFGROUP
            | IMSG_VMDOP_PRIV_IFADDR
            | IMSG_VMDOP_PRIV_IFADDR6
            | IMSG_VMDOP_PRIV_IFRDOMAIN
    ) {
        return Err(PrivOpError::Unknown(type_));
    }
    if data.len() != VMOP_IFREQ_SIZE {
        return Err(PrivOpError::Size {
            type_,
            got: data.len(),
            expected: VMOP_IFREQ_SIZE,
        });
    }
    let id = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
    let name = ifname(&data[4..20])?;
    let value = &data[20..84];
    Ok(match type_ {
        IMSG_VMDOP_PRIV_IFDESCR => PrivOp::Describe {
            ifname: name,
            descr: cstr(value),
        },
        IMSG_VMDOP_PRIV_IFEXISTS => PrivOp::Exists { ifname: name },
        IMSG_VMDOP_PRIV_IFADD => PrivOp::AddMember {
            bridge: name,
            member: ifname(value)?,
        },
        IMSG_VMDOP_PRIV_IFUP => PrivOp::Up { ifname: name },
        IMSG_VMDOP_PRIV_IFDOWN => PrivOp::Down { ifname: name },
        IMSG_VMDOP_PRIV_IFGROUP => PrivOp::Group {
            ifname: name,
            group: ifname(value)?,
        },
        IMSG_VMDOP_PRIV_IFRDOMAIN => PrivOp::Rdomain {
            ifname: name,
            rdomain: id,
        },
        _ => {
            let addr = sockaddr(&data[ADDR_OFF..MASK_OFF]).ok_or(PrivOpError::Address(type_))?;
            let mask = sockaddr(&data[MASK_OFF..]).ok_or(PrivOpError::Address(type_))?;
            if addr.is_ipv4() != (type_ == IMSG_VMDOP_PRIV_IFADDR)
                || addr.is_ipv4() != mask.is_ipv4()
            {
                return Err(PrivOpError::Address(type_));
            }
            PrivOp::Address {
                ifname: name,
                addr,
                prefix: prefix_len(mask).ok_or(PrivOpError::Address(type_))?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = encode_ifreq(0, "tap3", "vm web", None);
        assert_eq!(
            parse(IMSG_VMDOP_PRIV_IFDESCR, &r),
            Ok(PrivOp::Describe {
                ifname: "tap3".into(),
                descr: "vm web".into()
            })
        );
        let a = IpAddr::V4(Ipv4Addr::new(100, 64, 1, 2));
        let m = IpAddr::V4(Ipv4Addr::new(255, 255, 255, 254));
        let r = encode_ifreq(0, "tap3", "", Some((a, m)));
        assert_eq!(
            parse(IMSG_VMDOP_PRIV_IFADDR, &r),
            Ok(PrivOp::Address {
                ifname: "tap3".into(),
                addr: a,
                prefix: 31
            })
        );
        // A v4 address in a v6 request, a hole in the mask.
        assert!(parse(IMSG_VMDOP_PRIV_IFADDR6, &r).is_err());
        let r = encode_ifreq(
            0,
            "tap3",
            "",
            Some((a, IpAddr::V4(Ipv4Addr::new(255, 0, 255, 0)))),
        );
        assert_eq!(
            parse(IMSG_VMDOP_PRIV_IFADDR, &r),
            Err(PrivOpError::Address(IMSG_VMDOP_PRIV_IFADDR))
        );
    }

    #[test]
    fn hostile_requests_are_refused() {
        assert!(matches!(
            parse(IMSG_VMDOP_PRIV_IFUP, &[0; 10]),
            Err(PrivOpError::Size { .. })
        ));
        assert_eq!(parse(999, &[]), Err(PrivOpError::Unknown(999)));
        for bad in ["", "-rf", "a b", "x;reboot"] {
            let r = encode_ifreq(0, bad, "", None);
            assert!(parse(IMSG_VMDOP_PRIV_IFUP, &r).is_err(), "{bad:?}");
        }
        // A name field with no terminating NUL.
        let mut r = encode_ifreq(0, "", "", None);
        r[4..20].fill(b'a');
        assert!(parse(IMSG_VMDOP_PRIV_IFUP, &r).is_err());
        let r = encode_ifreq(0, "veb0", "--help", None);
        assert!(parse(IMSG_VMDOP_PRIV_IFADD, &r).is_err());
    }
}
