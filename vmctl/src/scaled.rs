//! Human-readable sizes as OpenBSD's scan_scaled(3) and fmt_scaled(3) read
//! and write them: "512M", "1.5G", "20G".

const UNITS: &[u8] = b"BKMGTPE";

/// Parses a number with an optional fraction and unit (B, K, M, G, T, P, E,
/// either case).
pub fn scan_scaled(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let i = UNITS
                .iter()
                .position(|&u| u == c.to_ascii_uppercase() as u8)?;
            (&s[..s.len() - 1], 1u128 << (10 * i))
        }
        _ => (s, 1u128),
    };
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole
        .chars()
        .chain(frac.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac = &frac[..frac.len().min(18)];
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let value = whole
        .checked_mul(mult)?
        .checked_add(frac_value * mult / 10u128.pow(frac.len() as u32))?;
    u64::try_from(value).ok()
}

/// Formats a byte count in at most 4 characters plus unit, as fmt_scaled.
pub fn fmt_scaled(n: u64) -> String {
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{n}B");
    }
    let div = 1u64 << (10 * unit);
    let mut whole = n / div;
    // Tenths, rounded.
    let mut tenths = ((n % div) as u128 * 10 + u128::from(div) / 2) / u128::from(div);
    if tenths >= 10 {
        whole += 1;
        tenths = 0;
    }
    let c = UNITS[unit] as char;
    if whole >= 100 || tenths == 0 {
        if whole >= 100 && tenths >= 5 {
            whole += 1;
        }
        format!("{whole}{c}")
    } else {
        format!("{whole}.{tenths}{c}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan() {
        assert_eq!(scan_scaled("512M"), Some(512 << 20));
        assert_eq!(scan_scaled("1.5G"), Some(3 << 29));
        assert_eq!(scan_scaled("20g"), Some(20 << 30));
        assert_eq!(scan_scaled("4096"), Some(4096));
        assert_eq!(scan_scaled("x"), None);
        assert_eq!(scan_scaled("1Q"), None);
        assert_eq!(scan_scaled("99999E"), None);
    }

    #[test]
    fn fmt() {
        assert_eq!(fmt_scaled(512), "512B");
        assert_eq!(fmt_scaled(512 << 20), "512M");
        assert_eq!(fmt_scaled(1 << 30), "1.0G".replace(".0", ""));
        assert_eq!(fmt_scaled(3 << 29), "1.5G");
    }
}
