//! Any frame a guest sends to a local interface goes through the DHCP
//! server's parser; whatever it is, the server must not panic, and every
//! reply it builds must parse back as a well-formed UDP datagram to the VM.
//!
//! Half the inputs are whole frames; the other half are BOOTP payloads
//! wrapped in valid Ethernet/IP/UDP headers, so the fuzzer gets past the
//! checksums into the BOOTP and option parsing.
#![no_main]

use devices::dhcp::packet::{build_udp_frame, parse_udp_frame, UdpAddressing};
use devices::dhcp::{DhcpServer, LocalPrefix};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let server = DhcpServer {
        mac: [0xfe, 0xe1, 0xba, 0xd0, 0, 1],
        host_mac: [0xfe, 0xe1, 0xba, 0xd0, 0, 2],
        prefix: LocalPrefix::default(),
        vmid: 1,
        idx: 0,
        netboot_hostname: Some("fuzz".into()),
        netboot: mode & 2 != 0,
    };
    let frame = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut payload = rest.to_vec();
        // Seed the fixed BOOTP fields the server insists on.
        if payload.len() >= 34 {
            payload[0] = 1;
            payload[1] = 1;
            payload[2] = 6;
            payload[28..34].copy_from_slice(&server.mac);
        }
        let addressing = UdpAddressing {
            src_mac: server.mac,
            dst_mac: [0xff; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        };
        match build_udp_frame(&addressing, &payload) {
            Some(f) => f,
            None => return,
        }
    };
    if let Ok(reply) = server.handle_frame(&frame) {
        let parsed = parse_udp_frame(&reply).expect("our reply must parse");
        assert_eq!(parsed.dst_mac, server.mac);
        assert!(parsed.payload.len() >= devices::dhcp::BOOTP_MIN_LEN);
    }
});
