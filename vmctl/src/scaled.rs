//! Sizes as vmctl reads and prints them, OpenBSD's scan_scaled(3) and
//! fmt_scaled(3): the same functions vm.conf's parser uses.

pub use vmd::config::values::scan_scaled;

/// A byte count as fmt_scaled prints it: "512M", "64.0M", "1.0G".
pub fn fmt_scaled(n: u64) -> String {
    vmd::config::values::fmt_scaled(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_vmctl_prints_them() {
        assert_eq!(fmt_scaled(512 << 20), "512M");
        assert_eq!(fmt_scaled(64 << 20), "64.0M");
        assert_eq!(fmt_scaled(1 << 30), "1.0G");
        assert_eq!(fmt_scaled(3 << 29), "1.5G");
    }
}
