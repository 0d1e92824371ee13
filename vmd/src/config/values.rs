//! Values inside vm.conf that have their own syntax: scaled sizes, local
//! prefixes and MAC addresses. Wording of failures follows OpenBSD libc.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::lexer::strtonum_range;
use super::model::{Ipv4Prefix, Ipv6Prefix};

const SCALE_CHARS: &[u8; 7] = b"BKMGTPE";
const MAX_DIGITS: usize = SCALE_CHARS.len() * 3;

/// Why [`scan_scaled`] refused its input, as errno would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// EINVAL
    Invalid,
    /// ERANGE
    Range,
}

impl ScanError {
    pub fn strerror(self) -> &'static str {
        match self {
            ScanError::Invalid => "Invalid argument",
            ScanError::Range => "Result too large",
        }
    }
}

/// scan_scaled(3): "1.5G", "512M", "1048576" and so on, powers of 1024.
pub fn scan_scaled(text: &str) -> Result<i64, ScanError> {
    let bytes = text.as_bytes();
    let mut p = 0;
    while p < bytes.len() && (bytes[p].is_ascii_whitespace() || bytes[p] == 0x0b) {
        p += 1;
    }
    let mut sign = 0i64;
    while p < bytes.len() && (bytes[p] == b'-' || bytes[p] == b'+') {
        if sign != 0 {
            return Err(ScanError::Invalid);
        }
        sign = if bytes[p] == b'-' { -1 } else { 1 };
        p += 1;
    }
    let (mut whole, mut fpart) = (0i64, 0i64);
    let (mut ndigits, mut fract_digits) = (0usize, 0usize);
    while p < bytes.len() && (bytes[p].is_ascii_digit() || bytes[p] == b'.') {
        let c = bytes[p];
        p += 1;
        if c == b'.' {
            if fract_digits > 0 {
                return Err(ScanError::Invalid);
            }
            fract_digits = 1;
            continue;
        }
        let digit = i64::from(c - b'0');
        if fract_digits > 0 {
            if fract_digits >= MAX_DIGITS - 1 {
                continue;
            }
            fract_digits += 1;
            fpart = fpart
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit))
                .ok_or(ScanError::Range)?;
        } else {
            ndigits += 1;
            if ndigits >= MAX_DIGITS {
                return Err(ScanError::Range);
            }
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit))
                .ok_or(ScanError::Range)?;
        }
    }
    if sign != 0 {
        whole *= sign;
    }
    let Some(&unit) = bytes.get(p) else {
        return Ok(whole);
    };
    let Some(index) = SCALE_CHARS
        .iter()
        .position(|&s| unit.to_ascii_uppercase() == s)
    else {
        return Err(ScanError::Invalid);
    };
    if bytes.get(p + 1).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Err(ScanError::Invalid);
    }
    let scale = 1i64 << (10 * index);
    whole = whole.checked_mul(scale).ok_or(ScanError::Range)?;
    while fpart >= i64::MAX / scale {
        fpart /= 10;
        fract_digits -= 1;
    }
    fpart *= scale;
    for _ in 1..fract_digits {
        fpart /= 10;
    }
    Ok(if sign == -1 {
        whole - fpart
    } else {
        whole + fpart
    })
}

/// fmt_scaled(3): a size in at most four characters plus unit, as
/// OpenBSD's vmd and vmctl print it: "0B", "999B", "1.0K", "32.5M", "512M".
/// Below 100 units there is always one decimal; at 100 and above the
/// number is rounded to a whole.
pub fn fmt_scaled(value: i64) -> String {
    if value == i64::MIN {
        return String::new();
    }
    let abs = value.unsigned_abs();
    let scale = |i: usize| 1u64 << (10 * i);
    let Some(unit) = (0..SCALE_CHARS.len()).find(|&i| abs / 1024 < scale(i)) else {
        // Too big to format: fmt_scaled fails and callers keep "-".
        return "-".to_string();
    };
    let mut number = value / scale(unit) as i64;
    let fract = if unit == 0 {
        0
    } else {
        (abs % scale(unit)) / scale(unit - 1)
    };
    let mut tenths = (10 * fract + 512) / 1024;
    if tenths >= 10 {
        number += if number >= 0 { 1 } else { -1 };
        tenths = 0;
    }
    let c = SCALE_CHARS[unit] as char;
    if number == 0 {
        "0B".to_string()
    } else if unit == 0 || !(-99..=99).contains(&number) {
        if tenths >= 5 {
            number += if number >= 0 { 1 } else { -1 };
        }
        format!("{number}{c}")
    } else {
        format!("{number}.{tenths}{c}")
    }
}

/// What went wrong in a guest memory size, in the C vmd's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// log_warn("invalid memory size: %s") with errno's text.
    Unparsable {
        text: String,
        reason: &'static str,
    },
    TooSmall,
    TooLarge,
}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeError::Unparsable { text, reason } => {
                write!(f, "invalid memory size: {text}: {reason}")
            }
            SizeError::TooSmall => f.write_str("memory size must be at least 1MB"),
            SizeError::TooLarge => write!(
                f,
                "memory size too large (limit is {})",
                fmt_scaled(super::model::VMM_MAX_VM_MEM_SIZE)
            ),
        }
    }
}

/// Checks a guest memory size and rounds it down to the MiB.
pub fn memory_size(value: i64) -> Result<u64, SizeError> {
    use super::model::{VMM_MAX_VM_MEM_SIZE, VM_MIN_MEMORY};
    if value < VM_MIN_MEMORY {
        return Err(SizeError::TooSmall);
    }
    if value > VMM_MAX_VM_MEM_SIZE {
        return Err(SizeError::TooLarge);
    }
    let mib = 1024 * 1024;
    Ok((value / mib * mib) as u64)
}

/// Like [`memory_size`], for a size written with a unit.
pub fn memory_size_str(text: &str) -> Result<u64, SizeError> {
    let value = scan_scaled(text).map_err(|e| SizeError::Unparsable {
        text: text.to_string(),
        reason: e.strerror(),
    })?;
    memory_size(value)
}

fn split_prefix_len(text: &str, min: i64, max: i64, default: u8) -> Result<(&str, u8), String> {
    match text.rfind('/') {
        Some(at) => {
            let len = strtonum_range(&text[at + 1..], min, max)?;
            Ok((&text[..at], len as u8))
        }
        None => Ok((text, default)),
    }
}

/// inet_net_pton(3) for AF_INET without a length: "10", "10.1", "10.1.2.3".
fn inet_net_v4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    for (slot, part) in octets.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// `local prefix`: an IPv4 network of length 1 to 16 (default /16), so
/// that vmd has 16 bits left for VM and interface numbers.
pub fn parse_prefix4(text: &str) -> Result<Ipv4Prefix, String> {
    let (addr_text, len) = split_prefix_len(text, 1, 16, 16)?;
    let addr = match addr_text.parse::<Ipv4Addr>() {
        Ok(a) => a,
        Err(_) => inet_net_v4(addr_text).ok_or("invalid format")?,
    };
    if u32::from(addr) & mask4(len) != u32::from(addr) {
        return Err("bad mask".to_string());
    }
    Ok(Ipv4Prefix { addr, len })
}

/// `local inet6 prefix`: an IPv6 network of length 0 to 64 (default /64).
pub fn parse_prefix6(text: &str) -> Result<Ipv6Prefix, String> {
    let (addr_text, len) = split_prefix_len(text, 0, 64, 64)?;
    let addr: Ipv6Addr = addr_text
        .parse()
        .map_err(|_| "no address associated with name".to_string())?;
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    if u128::from(addr) & mask != u128::from(addr) {
        return Err("bad mask".to_string());
    }
    Ok(Ipv6Prefix { addr, len })
}

/// ether_aton(3): six colon-separated hex bytes.
pub fn ether_aton(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(&parts) {
        if !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digits = part.trim_start_matches('0');
        if digits.len() > 2 {
            return None;
        }
        *slot = if digits.is_empty() {
            0
        } else {
            u8::from_str_radix(digits, 16).ok()?
        };
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_sizes() {
        assert_eq!(scan_scaled("1G"), Ok(1 << 30));
        assert_eq!(scan_scaled("1048575K"), Ok(1048575 * 1024));
        assert_eq!(scan_scaled("1.5M"), Ok(3 << 19));
        assert_eq!(scan_scaled("12"), Ok(12));
        assert_eq!(scan_scaled("1Gx"), Err(ScanError::Invalid));
        assert_eq!(scan_scaled("1Q"), Err(ScanError::Invalid));
        assert_eq!(scan_scaled("9E"), Err(ScanError::Range));
        assert_eq!(scan_scaled("1..2"), Err(ScanError::Invalid));
    }

    #[test]
    fn memory_rounds_down_to_mib() {
        assert_eq!(memory_size_str("1048575K"), Ok(1023 << 20));
        assert_eq!(memory_size(1048576), Ok(1 << 20));
        assert_eq!(memory_size(1048575), Err(SizeError::TooSmall));
        assert_eq!(
            memory_size_str("129G").unwrap_err().to_string(),
            "memory size too large (limit is 128G)"
        );
    }

    #[test]
    fn scaled_output() {
        assert_eq!(fmt_scaled(128 << 30), "128G");
        assert_eq!(fmt_scaled(1023 << 20), "1023M");
        assert_eq!(fmt_scaled(512 << 20), "512M");
        assert_eq!(fmt_scaled(1 << 30), "1.0G");
        assert_eq!(fmt_scaled(3 << 19), "1.5M");
        assert_eq!(fmt_scaled(32 << 20), "32.0M");
        assert_eq!(fmt_scaled(512), "512B");
        assert_eq!(fmt_scaled(1023), "1023B");
        assert_eq!(fmt_scaled(1024), "1.0K");
        assert_eq!(fmt_scaled(0), "0B");
        // Just under 100M rounds up to 100 and so loses its decimal.
        assert_eq!(fmt_scaled((100 << 20) - 1), "100M");
    }

    #[test]
    fn prefixes() {
        let p = parse_prefix4("100.64.0.0/10").unwrap();
        assert_eq!((p.addr, p.len), (Ipv4Addr::new(100, 64, 0, 0), 10));
        assert_eq!(parse_prefix4("10/8").unwrap().len, 8);
        assert_eq!(parse_prefix4("10.0.0.1/16").unwrap_err(), "bad mask");
        assert_eq!(parse_prefix4("10.0.0.0/24").unwrap_err(), "too large");
        assert_eq!(parse_prefix4("foo").unwrap_err(), "invalid format");
        assert_eq!(parse_prefix6("fd00::/8").unwrap().len, 8);
        assert_eq!(parse_prefix6("fd00::1/64").unwrap_err(), "bad mask");
        assert_eq!(parse_prefix6("fd00::/65").unwrap_err(), "too large");
    }

    #[test]
    fn macs() {
        assert_eq!(
            ether_aton("fe:e1:ba:d0:0:1"),
            Some([0xfe, 0xe1, 0xba, 0xd0, 0, 1])
        );
        assert_eq!(ether_aton("fe:e1:ba:d0:00"), None);
        assert_eq!(ether_aton("fe:e1:ba:d0:00:1ff"), None);
    }
}
