//! `struct local_prefix` (vmd.h): the IPv4 and IPv6 prefixes that
//! `local interface` addresses are drawn from.

use vmm_sys::wire_struct;

wire_struct! {
    /// Addresses are in network byte order, as `struct in_addr` and
    /// `struct in6_addr` hold them. Alignment 4 comes from the 32-bit
    /// members of those C types.
    #[repr(C, align(4))]
    pub struct LocalPrefix = "local_prefix" {
        pub lp_in: [u8; 4],
        pub lp_mask: [u8; 4],
        pub lp_in6: [u8; 16],
        pub lp_mask6: [u8; 16],
    }
}

impl LocalPrefix {
    /// vmd's defaults: 100.64.0.0/10 (RFC 6598) and fd00::/8.
    pub fn vmd_default() -> Self {
        let mut lp_in6 = [0u8; 16];
        lp_in6[0] = 0xfd;
        let mut lp_mask6 = [0u8; 16];
        lp_mask6[0] = 0xff;
        Self {
            lp_in: [100, 64, 0, 0],
            lp_mask: [255, 192, 0, 0],
            lp_in6,
            lp_mask6,
        }
    }
}
