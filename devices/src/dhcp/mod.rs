//! The DHCP/BOOTP server a `local interface` answers with, as vmd's.
//!
//! There is no lease state: every VM interface has exactly one address,
//! derived from the local prefix, the VM id and the interface index, so the
//! server answers each request from the VM's own MAC with that address, a
//! /31 mask, the host side as router and name server, and an infinite
//! lease. With `boot device net` it also hands out `auto_install` as the
//! boot file and the VM name as the host name.

pub mod packet;

use std::net::Ipv4Addr;

use packet::{build_udp_frame, parse_udp_frame, FrameError, UdpAddressing};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// The fixed part of a BOOTP message, up to the options.
pub const BOOTP_FIXED_LEN: usize = 236;
/// Replies are padded to at least this many bytes, as RFC 951 requires.
pub const BOOTP_MIN_LEN: usize = 300;
const MTU: usize = 1500;
/// Room for options in a reply that must fit one 1500-byte IP packet.
pub const OPTIONS_MAX_LEN: usize = MTU - packet::IP_HDR_LEN - packet::UDP_HDR_LEN - BOOTP_FIXED_LEN;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHER: u8 = 1;

const DHO_PAD: u8 = 0;
const DHO_SUBNET_MASK: u8 = 1;
const DHO_ROUTERS: u8 = 3;
const DHO_DOMAIN_NAME_SERVERS: u8 = 6;
const DHO_HOST_NAME: u8 = 12;
const DHO_DHCP_REQUESTED_ADDRESS: u8 = 50;
const DHO_DHCP_LEASE_TIME: u8 = 51;
const DHO_DHCP_MESSAGE_TYPE: u8 = 53;
const DHO_DHCP_SERVER_IDENTIFIER: u8 = 54;
const DHO_END: u8 = 255;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// The IPv4 range local interfaces draw from (`local prefix`, by default
/// 100.64.0.0/10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPrefix {
    pub addr: Ipv4Addr,
    pub mask: Ipv4Addr,
}

impl Default for LocalPrefix {
    fn default() -> Self {
        LocalPrefix {
            addr: Ipv4Addr::new(100, 64, 0, 0),
            mask: Ipv4Addr::new(255, 192, 0, 0),
        }
    }
}

/// The most interfaces one VM can have addresses for: each takes a /31 of
/// the VM's /24, and the first /31 is skipped.
pub const MAX_LOCAL_INTERFACES: u32 = 0x7f;

/// The address of interface `idx` of VM `vmid`: the host side (`is_vm ==
/// false`) or the guest side. Each VM owns the /24 at `vmid << 8` inside
/// the prefix and each interface a /31 in it. `None` when the VM id or the
/// index does not fit the prefix.
pub fn local_address(prefix: &LocalPrefix, vmid: u32, idx: u32, is_vm: bool) -> Option<Ipv4Addr> {
    if idx >= MAX_LOCAL_INTERFACES {
        return None;
    }
    if vmid > (u32::MAX >> 8) {
        return None;
    }
    let host_part = (vmid << 8) | ((idx + 1) * 2) | u32::from(is_vm);
    let net = u32::from(prefix.addr);
    let mask = u32::from(prefix.mask);
    let addr = host_part | net;
    if addr & mask != net {
        return None;
    }
    Some(Ipv4Addr::from(addr))
}

/// Whether `name` is a valid host name for DHCP option 12: dot-separated
/// labels of letters, digits and inner hyphens.
pub fn hostname_ok(name: &str) -> bool {
    let b = name.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            continue;
        }
        let label_start = i == 0 || b[i - 1] == b'.';
        let label_end = i + 1 == b.len() || b[i + 1] == b'.';
        let ok = if label_start || label_end {
            c.is_ascii_alphanumeric()
        } else {
            c.is_ascii_alphanumeric() || c == b'-'
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Why a frame from the guest got no DHCP answer. None of these is an
/// error of the host: the frame is simply not a request this server takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("frame length {0} out of range for BOOTP")]
    Length(usize),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("not addressed to the broadcast or host MAC")]
    Destination,
    #[error("source MAC is not the VM's")]
    SourceMac,
    #[error("not from port 68 to port 67")]
    Ports,
    #[error("truncated BOOTP message")]
    ShortBootp,
    #[error("not a BOOTREQUEST for the VM's Ethernet address")]
    NotOurRequest,
    #[error("relayed, renewing or boot-file request (unsupported)")]
    Unsupported,
    #[error("no address for vm id {vmid} interface {idx} in the local prefix")]
    NoAddress { vmid: u32, idx: u32 },
    #[error("host name does not fit in the reply")]
    HostnameTooLong,
}

/// A parsed BOOTP/DHCP request: only what the server looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub htype: u8,
    pub hlen: u8,
    pub xid: [u8; 4],
    pub chaddr: [u8; 6],
    /// Option 53, if the message carried one (else plain BOOTP).
    pub message_type: Option<u8>,
    /// Option 50.
    pub requested_address: Option<Ipv4Addr>,
}

/// One VM interface's DHCP server.
#[derive(Debug, Clone)]
pub struct DhcpServer {
    /// The guest's MAC.
    pub mac: [u8; 6],
    /// The MAC of the host side, which unicast requests may be sent to.
    pub host_mac: [u8; 6],
    pub prefix: LocalPrefix,
    pub vmid: u32,
    pub idx: u32,
    /// `boot device net`: answer with `auto_install` and this host name.
    pub netboot_hostname: Option<String>,
    pub netboot: bool,
}

impl DhcpServer {
    /// The guest's address.
    pub fn client_address(&self) -> Option<Ipv4Addr> {
        local_address(&self.prefix, self.vmid, self.idx, true)
    }

    /// The host side's address: server, router and name server.
    pub fn server_address(&self) -> Option<Ipv4Addr> {
        local_address(&self.prefix, self.vmid, self.idx, false)
    }

    /// Parses `frame` as a DHCP/BOOTP request from this VM.
    pub fn parse_request(&self, frame: &[u8]) -> Result<Request, Ignored> {
        if frame.len() < BOOTP_MIN_LEN + packet::ETHER_HDR_LEN
            || frame.len() > MTU + packet::ETHER_HDR_LEN
        {
            return Err(Ignored::Length(frame.len()));
        }
        let udp = parse_udp_frame(frame)?;
        if udp.dst_mac != [0xff; 6] && udp.dst_mac != self.host_mac {
            return Err(Ignored::Destination);
        }
        if udp.src_mac != self.mac {
            return Err(Ignored::SourceMac);
        }
        if udp.src_port != CLIENT_PORT || udp.dst_port != SERVER_PORT {
            return Err(Ignored::Ports);
        }
        let msg = udp.payload;
        if msg.len() < BOOTP_FIXED_LEN {
            return Err(Ignored::ShortBootp);
        }
        let (op, htype, hlen, hops) = (msg[0], msg[1], msg[2], msg[3]);
        let chaddr = &msg[28..34];
        if op != BOOTREQUEST || htype != HTYPE_ETHER || hlen != 6 || chaddr != self.mac {
            return Err(Ignored::NotOurRequest);
        }
        let ciaddr = &msg[12..16];
        let file_first = msg[108];
        if ciaddr != [0; 4] || file_first != 0 || hops != 0 {
            return Err(Ignored::Unsupported);
        }
        let mut req = Request {
            htype,
            hlen,
            xid: [msg[4], msg[5], msg[6], msg[7]],
            chaddr: self.mac,
            message_type: None,
            requested_address: None,
        };
        let opts = &msg[BOOTP_FIXED_LEN..];
        // Fewer bytes than the cookie plus one option means plain BOOTP.
        if opts.len() > COOKIE.len() + 3 && opts.len() < OPTIONS_MAX_LEN && opts[..4] == COOKIE {
            parse_options(&opts[4..], &mut req);
        }
        Ok(req)
    }

    /// Answers one frame the guest sent, or says why it is not for us.
    pub fn handle_frame(&self, frame: &[u8]) -> Result<Vec<u8>, Ignored> {
        let req = self.parse_request(frame)?;
        self.reply(&req)
    }

    /// Builds the reply frame for a parsed request.
    pub fn reply(&self, req: &Request) -> Result<Vec<u8>, Ignored> {
        let no_address = Ignored::NoAddress {
            vmid: self.vmid,
            idx: self.idx,
        };
        let client = self.client_address().ok_or(no_address.clone())?;
        let server = self.server_address().ok_or(no_address)?;

        let mut msg = vec![0u8; BOOTP_FIXED_LEN];
        msg[0] = BOOTREPLY;
        msg[1] = req.htype;
        msg[2] = req.hlen;
        msg[4..8].copy_from_slice(&req.xid);
        msg[16..20].copy_from_slice(&client.octets());
        msg[20..24].copy_from_slice(&server.octets());
        msg[28..34].copy_from_slice(&self.mac);
        let mut hostname = None;
        if self.netboot {
            let file = b"auto_install";
            msg[108..108 + file.len()].copy_from_slice(file);
            hostname = self.netboot_hostname.as_deref().filter(|h| hostname_ok(h));
        }

        let mut opts = COOKIE.to_vec();
        if let Some(t) = req.message_type {
            let answer = match MessageType::from_u8(t) {
                Some(MessageType::Discover) => MessageType::Offer,
                Some(MessageType::Request) if req.requested_address.is_none_or(|a| a == client) => {
                    MessageType::Ack
                }
                _ => MessageType::Nak,
            };
            opts.extend_from_slice(&[DHO_DHCP_MESSAGE_TYPE, 1, answer as u8]);
            opts.extend_from_slice(&[DHO_DHCP_LEASE_TIME, 4, 0xff, 0xff, 0xff, 0xff]);
            push_addr(&mut opts, DHO_DHCP_SERVER_IDENTIFIER, server);
        }
        push_addr(
            &mut opts,
            DHO_SUBNET_MASK,
            Ipv4Addr::new(255, 255, 255, 254),
        );
        push_addr(&mut opts, DHO_ROUTERS, server);
        push_addr(&mut opts, DHO_DOMAIN_NAME_SERVERS, server);
        // As vmd: a one-character name is not worth sending.
        if let Some(name) = hostname.filter(|h| h.len() > 1) {
            if opts.len() + 2 + name.len() + 1 > OPTIONS_MAX_LEN || name.len() > 255 {
                return Err(Ignored::HostnameTooLong);
            }
            opts.extend_from_slice(&[DHO_HOST_NAME, name.len() as u8]);
            opts.extend_from_slice(name.as_bytes());
        }
        opts.push(DHO_END);
        msg.extend_from_slice(&opts);
        if msg.len() < BOOTP_MIN_LEN {
            msg.resize(BOOTP_MIN_LEN, 0);
        }

        let mut server_mac = self.mac;
        server_mac[5] = server_mac[5].wrapping_add(1);
        let addressing = UdpAddressing {
            src_mac: server_mac,
            dst_mac: self.mac,
            src_ip: server,
            dst_ip: client,
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
        };
        // The reply is at most 236 + 1236 bytes, which always fits.
        build_udp_frame(&addressing, &msg).ok_or(Ignored::HostnameTooLong)
    }
}

fn push_addr(opts: &mut Vec<u8>, code: u8, addr: Ipv4Addr) {
    opts.extend_from_slice(&[code, 4]);
    opts.extend_from_slice(&addr.octets());
}

/// Walks the options after the cookie, picking out the message type and
/// the requested address. A truncated option ends the walk.
fn parse_options(mut opts: &[u8], req: &mut Request) {
    while let [code, rest @ ..] = opts {
        match *code {
            DHO_END => break,
            DHO_PAD => {
                opts = rest;
                continue;
            }
            _ => {}
        }
        let Some((&len, body)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len);
        if body.len() < len {
            break;
        }
        let value = &body[..len];
        match (*code, value) {
            (DHO_DHCP_MESSAGE_TYPE, [t]) => req.message_type = Some(*t),
            (DHO_DHCP_REQUESTED_ADDRESS, [a, b, c, d]) => {
                req.requested_address = Some(Ipv4Addr::new(*a, *b, *c, *d))
            }
            _ => {}
        }
        opts = &body[len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x01];

    fn server() -> DhcpServer {
        DhcpServer {
            mac: MAC,
            host_mac: [0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x02],
            prefix: LocalPrefix::default(),
            vmid: 3,
            idx: 0,
            netboot_hostname: Some("web1".into()),
            netboot: false,
        }
    }

    fn request(kind: Option<MessageType>, requested: Option<Ipv4Addr>) -> Vec<u8> {
        let mut msg = vec![0u8; BOOTP_FIXED_LEN];
        msg[0] = BOOTREQUEST;
        msg[1] = HTYPE_ETHER;
        msg[2] = 6;
        msg[4..8].copy_from_slice(&[1, 2, 3, 4]);
        msg[28..34].copy_from_slice(&MAC);
        msg.extend_from_slice(&COOKIE);
        if let Some(k) = kind {
            msg.extend_from_slice(&[DHO_PAD, DHO_DHCP_MESSAGE_TYPE, 1, k as u8]);
        }
        if let Some(a) = requested {
            push_addr(&mut msg, DHO_DHCP_REQUESTED_ADDRESS, a);
        }
        msg.push(DHO_END);
        msg.resize(BOOTP_MIN_LEN, 0);
        build_udp_frame(
            &UdpAddressing {
                src_mac: MAC,
                dst_mac: [0xff; 6],
                src_ip: Ipv4Addr::UNSPECIFIED,
                dst_ip: Ipv4Addr::BROADCAST,
                src_port: CLIENT_PORT,
                dst_port: SERVER_PORT,
            },
            &msg,
        )
        .unwrap()
    }

    /// Returns (yiaddr, siaddr, file, options as (code, value) pairs).
    fn decode_reply(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, String, Vec<(u8, Vec<u8>)>) {
        let udp = parse_udp_frame(frame).unwrap();
        assert_eq!(udp.dst_mac, MAC);
        assert_eq!((udp.src_port, udp.dst_port), (67, 68));
        let m = udp.payload;
        assert!(m.len() >= BOOTP_MIN_LEN);
        assert_eq!(m[0], BOOTREPLY);
        assert_eq!(&m[4..8], &[1, 2, 3, 4]);
        let y = Ipv4Addr::new(m[16], m[17], m[18], m[19]);
        let s = Ipv4Addr::new(m[20], m[21], m[22], m[23]);
        let file: String = m[108..236]
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as char)
            .collect();
        assert_eq!(&m[236..240], &COOKIE);
        let mut opts = Vec::new();
        let mut o = &m[240..];
        while let [code, len, rest @ ..] = o {
            if *code == DHO_END {
                break;
            }
            let len = *len as usize;
            opts.push((*code, rest[..len].to_vec()));
            o = &rest[len..];
        }
        (y, s, file, opts)
    }

    #[test]
    fn addresses_follow_vmd_numbering() {
        let p = LocalPrefix::default();
        assert_eq!(
            local_address(&p, 1, 0, false),
            Some(Ipv4Addr::new(100, 64, 1, 2))
        );
        assert_eq!(
            local_address(&p, 1, 0, true),
            Some(Ipv4Addr::new(100, 64, 1, 3))
        );
        assert_eq!(
            local_address(&p, 7, 2, true),
            Some(Ipv4Addr::new(100, 64, 7, 7))
        );
        assert_eq!(local_address(&p, 1, 0x7f, true), None);
        // A VM id beyond the /10 leaves the prefix. The host part is OR'ed
        // in as vmd does, so an id whose bits match the prefix aliases.
        assert_eq!(local_address(&p, 1 << 15, 0, true), None);
        assert_eq!(
            local_address(&p, 1 << 14, 0, true),
            Some(Ipv4Addr::new(100, 64, 0, 3))
        );
        assert_eq!(local_address(&p, u32::MAX, 0, true), None);
    }

    #[test]
    fn discover_gets_offer_and_request_gets_ack() {
        let s = server();
        let (y, si, file, opts) = decode_reply(
            &s.handle_frame(&request(Some(MessageType::Discover), None))
                .unwrap(),
        );
        assert_eq!(y, Ipv4Addr::new(100, 64, 3, 3));
        assert_eq!(si, Ipv4Addr::new(100, 64, 3, 2));
        assert_eq!(file, "");
        let host = vec![100, 64, 3, 2];
        assert_eq!(
            opts,
            vec![
                (DHO_DHCP_MESSAGE_TYPE, vec![2]),
                (DHO_DHCP_LEASE_TIME, vec![0xff; 4]),
                (DHO_DHCP_SERVER_IDENTIFIER, host.clone()),
                (DHO_SUBNET_MASK, vec![255, 255, 255, 254]),
                (DHO_ROUTERS, host.clone()),
                (DHO_DOMAIN_NAME_SERVERS, host),
            ]
        );
        let ack = s
            .handle_frame(&request(Some(MessageType::Request), Some(y)))
            .unwrap();
        assert_eq!(decode_reply(&ack).3[0], (DHO_DHCP_MESSAGE_TYPE, vec![5]));
        let nak = s
            .handle_frame(&request(
                Some(MessageType::Request),
                Some(Ipv4Addr::new(10, 0, 0, 1)),
            ))
            .unwrap();
        assert_eq!(decode_reply(&nak).3[0], (DHO_DHCP_MESSAGE_TYPE, vec![6]));
    }

    #[test]
    fn bootp_gets_plain_reply_and_netboot_gets_file_and_name() {
        let mut s = server();
        s.netboot = true;
        let (_, _, file, opts) = decode_reply(&s.handle_frame(&request(None, None)).unwrap());
        assert_eq!(file, "auto_install");
        assert_eq!(opts[0].0, DHO_SUBNET_MASK);
        assert_eq!(opts.last().unwrap(), &(DHO_HOST_NAME, b"web1".to_vec()));
        s.netboot_hostname = Some("bad_name".into());
        let (_, _, _, opts) = decode_reply(&s.handle_frame(&request(None, None)).unwrap());
        assert!(opts.iter().all(|(c, _)| *c != DHO_HOST_NAME));
    }

    #[test]
    fn foreign_and_malformed_frames_are_ignored() {
        let s = server();
        let good = request(Some(MessageType::Discover), None);
        let mut spoofed = good.clone();
        spoofed[11] ^= 1;
        assert_eq!(s.handle_frame(&spoofed), Err(Ignored::SourceMac));
        for cut in 0..good.len() {
            assert!(s.handle_frame(&good[..cut]).is_err());
        }
        // A truncated option in the middle stops the walk without reading past it.
        let mut req = Request {
            htype: 1,
            hlen: 6,
            xid: [0; 4],
            chaddr: MAC,
            message_type: None,
            requested_address: None,
        };
        parse_options(&[DHO_DHCP_MESSAGE_TYPE, 1, 1, 50, 200, 1], &mut req);
        assert_eq!(req.message_type, Some(1));
        assert_eq!(req.requested_address, None);
    }

    #[test]
    fn hostnames() {
        for ok in ["a", "web1", "a-b.example", "x1.y2"] {
            assert!(hostname_ok(ok), "{ok}");
        }
        for bad in ["-a", "a-", "a_b", "a..b-", "é"] {
            assert!(!hostname_ok(bad), "{bad}");
        }
    }
}
