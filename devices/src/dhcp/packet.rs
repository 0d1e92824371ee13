//! Ethernet, IPv4 and UDP framing for the DHCP server: just enough to take
//! a broadcast request apart and to build the reply, with every length
//! checked against the frame.

use std::net::Ipv4Addr;

pub const ETHER_HDR_LEN: usize = 14;
pub const ETHERTYPE_IP: u16 = 0x0800;
pub const IP_HDR_LEN: usize = 20;
pub const UDP_HDR_LEN: usize = 8;
const IPPROTO_UDP: u8 = 17;
const IPTOS_LOWDELAY: u8 = 0x10;
const REPLY_TTL: u8 = 16;

/// Why a frame is not a well-formed UDP/IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame shorter than an Ethernet header")]
    ShortEthernet,
    #[error("not IPv4 (ethertype {0:#06x})")]
    NotIpv4(u16),
    #[error("truncated IPv4 header")]
    ShortIp,
    #[error("IP version {0}, not 4")]
    IpVersion(u8),
    #[error("IPv4 header length {0} out of range")]
    IpHeaderLength(usize),
    #[error("IP protocol {0}, not UDP")]
    NotUdp(u8),
    #[error("bad IPv4 header checksum")]
    IpChecksum,
    #[error("IPv4 total length {0} beyond the frame")]
    IpTotalLength(usize),
    #[error("truncated UDP header")]
    ShortUdp,
    #[error("UDP length {0} out of range")]
    UdpLength(usize),
    #[error("bad UDP checksum")]
    UdpChecksum,
}

/// The addressing of one received UDP/IPv4 datagram, and where its
/// payload lies in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFrame<'a> {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP payload, as long as the UDP header says.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The ones'-complement sum of `data` as big-endian 16-bit words, folded
/// into `sum`; an odd trailing byte is the high byte of a last word.
pub fn checksum_add(data: &[u8], mut sum: u32) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The checksum field value for a folded sum.
pub fn checksum_finish(sum: u32) -> u16 {
    !(sum as u16)
}

fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp_header: &[u8], payload: &[u8]) -> u16 {
    let udp_len = (udp_header.len() + payload.len()) as u32;
    let mut sum = checksum_add(&src.octets(), u32::from(IPPROTO_UDP) + udp_len);
    sum = checksum_add(&dst.octets(), sum);
    sum = checksum_add(payload, sum);
    sum = checksum_add(udp_header, sum);
    checksum_finish(sum)
}

/// Takes an Ethernet frame apart down to its UDP payload. Data after the
/// UDP payload (Ethernet padding) is allowed and ignored.
pub fn parse_udp_frame(frame: &[u8]) -> Result<UdpFrame<'_>, FrameError> {
    if frame.len() < ETHER_HDR_LEN {
        return Err(FrameError::ShortEthernet);
    }
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    src_mac.copy_from_slice(&frame[6..12]);
    let ethertype = be16(frame, 12);
    if ethertype != ETHERTYPE_IP {
        return Err(FrameError::NotIpv4(ethertype));
    }

    let ip = &frame[ETHER_HDR_LEN..];
    if ip.len() < IP_HDR_LEN {
        return Err(FrameError::ShortIp);
    }
    let version = ip[0] >> 4;
    if version != 4 {
        return Err(FrameError::IpVersion(version));
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    if ihl < IP_HDR_LEN || ihl > ip.len() {
        return Err(FrameError::IpHeaderLength(ihl));
    }
    if ip[9] != IPPROTO_UDP {
        return Err(FrameError::NotUdp(ip[9]));
    }
    if checksum_finish(checksum_add(&ip[..ihl], 0)) != 0 {
        return Err(FrameError::IpChecksum);
    }
    let total = usize::from(be16(ip, 2));
    if total > ip.len() || total < ihl {
        return Err(FrameError::IpTotalLength(total));
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);

    let udp = &ip[ihl..total];
    if udp.len() < UDP_HDR_LEN {
        return Err(FrameError::ShortUdp);
    }
    let udp_len = usize::from(be16(udp, 4));
    if udp_len < UDP_HDR_LEN || udp_len > udp.len() {
        return Err(FrameError::UdpLength(udp_len));
    }
    let payload = &udp[UDP_HDR_LEN..udp_len];
    let sent_sum = be16(udp, 6);
    if sent_sum != 0 {
        let mut header = [0u8; UDP_HDR_LEN];
        header.copy_from_slice(&udp[..UDP_HDR_LEN]);
        header[6] = 0;
        header[7] = 0;
        let mut want = udp_checksum(src_ip, dst_ip, &header, payload);
        if want == 0 {
            want = 0xffff;
        }
        if want != sent_sum {
            return Err(FrameError::UdpChecksum);
        }
    }
    Ok(UdpFrame {
        dst_mac,
        src_mac,
        src_ip,
        dst_ip,
        src_port: be16(udp, 0),
        dst_port: be16(udp, 2),
        payload,
    })
}

/// The addressing of a datagram to build.
#[derive(Debug, Clone, Copy)]
pub struct UdpAddressing {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Builds an Ethernet/IPv4/UDP frame around `payload`, with both checksums.
/// Returns `None` if the datagram would not fit in an IPv4 packet.
pub fn build_udp_frame(a: &UdpAddressing, payload: &[u8]) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(UDP_HDR_LEN + payload.len()).ok()?;
    let ip_len = u16::try_from(IP_HDR_LEN + usize::from(udp_len)).ok()?;
    let mut frame = Vec::with_capacity(ETHER_HDR_LEN + usize::from(ip_len));
    frame.extend_from_slice(&a.dst_mac);
    frame.extend_from_slice(&a.src_mac);
    frame.extend_from_slice(&ETHERTYPE_IP.to_be_bytes());

    let mut ip = [0u8; IP_HDR_LEN];
    ip[0] = 0x45;
    ip[1] = IPTOS_LOWDELAY;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = REPLY_TTL;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&a.src_ip.octets());
    ip[16..20].copy_from_slice(&a.dst_ip.octets());
    let sum = checksum_finish(checksum_add(&ip, 0));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);

    let mut udp = [0u8; UDP_HDR_LEN];
    udp[0..2].copy_from_slice(&a.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&a.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let mut sum = udp_checksum(a.src_ip, a.dst_ip, &udp, payload);
    if sum == 0 {
        sum = 0xffff;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&udp);
    frame.extend_from_slice(payload);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing() -> UdpAddressing {
        UdpAddressing {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [0xff; 6],
            src_ip: Ipv4Addr::new(0, 0, 0, 0),
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        }
    }

    #[test]
    fn built_frames_parse_back() {
        for len in [0usize, 1, 2, 3, 300, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let frame = build_udp_frame(&addressing(), &payload).unwrap();
            let parsed = parse_udp_frame(&frame).unwrap();
            assert_eq!(parsed.payload, &payload[..]);
            assert_eq!(parsed.src_port, 68);
            assert_eq!(parsed.dst_ip, Ipv4Addr::BROADCAST);
        }
    }

    #[test]
    fn corrupted_frames_are_rejected() {
        let frame = build_udp_frame(&addressing(), b"hello").unwrap();
        let mut bad = frame.clone();
        bad[ETHER_HDR_LEN + 8] ^= 1; // TTL: IP checksum breaks
        assert_eq!(parse_udp_frame(&bad), Err(FrameError::IpChecksum));
        let mut bad = frame.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_udp_frame(&bad), Err(FrameError::UdpChecksum));
        for cut in 0..frame.len() {
            assert!(parse_udp_frame(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn padding_after_the_datagram_is_ignored() {
        let mut frame = build_udp_frame(&addressing(), b"x").unwrap();
        frame.resize(60, 0);
        assert_eq!(parse_udp_frame(&frame).unwrap().payload, b"x");
    }
}
