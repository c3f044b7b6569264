//! Conversions from the OCI (cgroup v1 shaped) resource values to cgroup v2
//! files, matching runc so a container gets the same limits under either
//! runtime.

use crate::error::{Error, Result};

/// `cpu.shares` (2..262144, default 1024) → `cpu.weight` (1..10000, default
/// 100), with runc's linear mapping `1 + ((shares - 2) * 9999) / 262142`.
/// 0 means unset (`None`); values outside the v1 range are clamped first.
///
/// (Newer runc releases switched to a log-quadratic curve that maps the
/// default 1024 to 100 exactly; the linear one maps it to 39.)
pub fn cpu_shares_to_weight(shares: u64) -> Option<u64> {
    if shares == 0 {
        return None;
    }
    let s = shares.clamp(2, 262_144);
    Some(1 + ((s - 2) * 9999) / 262_142)
}

/// blkio weight (10..1000) → `io.weight` (1..10000):
/// `1 + (weight - 10) * 9999 / 990`. 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u16) -> Option<u64> {
    if weight == 0 {
        return None;
    }
    let w = u64::from(weight.clamp(10, 1000));
    Some(1 + (w - 10) * 9999 / 990)
}

/// OCI `memory.swap` is memory+swap (v1's `memsw`); v2's `memory.swap.max`
/// is swap alone. Returns the string for `memory.swap.max`, or `None` to
/// leave it alone:
/// * swap unset/0 and limit -1 → "max" (memory unlimited means swap too);
/// * swap -1 → "max";
/// * swap unset/0 → `None`;
/// * otherwise swap - limit, which needs a positive limit and swap ≥ limit
///   (equal → "0", i.e. no swap).
pub fn memory_swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<String>> {
    let s = swap.unwrap_or(0);
    let l = limit.unwrap_or(0);
    if s == -1 || (s == 0 && l == -1) {
        return Ok(Some("max".into()));
    }
    if s == 0 {
        return Ok(None);
    }
    if s < -1 {
        return Err(Error::invalid(format!(
            "linux.resources.memory.swap {s} is negative (use -1 for unlimited)"
        )));
    }
    if l == 0 || l == -1 {
        return Err(Error::invalid(format!(
            "linux.resources.memory.swap {s} needs a memory limit (linux.resources.memory.limit): \
             swap is memory+swap"
        )));
    }
    if l < -1 {
        return Err(Error::invalid(format!(
            "linux.resources.memory.limit {l} is negative (use -1 for unlimited)"
        )));
    }
    if s < l {
        return Err(Error::invalid(format!(
            "linux.resources.memory.swap {s} is less than memory.limit {l}: swap is memory+swap \
             and must be at least the limit"
        )));
    }
    Ok(Some((s - l).to_string()))
}

/// A v2 ".max"-style value: -1 (and any negative) → "max".
pub fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Checks an OCI hugepage size ("2MB", "1GB", "64KB") so it can be spliced
/// into a file name (`hugetlb.2MB.max`).
pub fn check_page_size(ps: &str) -> Result<()> {
    let digits = ps.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &ps[digits.len()..];
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB" | "TB" | "PB");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "linux.resources.hugepageLimits pageSize {ps:?} is not of the form <number><KB|MB|GB|TB|PB>, e.g. 2MB"
        )))
    }
}

/// "hugepages-2048kB" (a /sys/kernel/mm/hugepages entry) → "2MB".
pub fn page_size_name(kb: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    let mut v = kb;
    let mut i = 0;
    while v >= 1024 && v.is_multiple_of(1024) && i + 1 < UNITS.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        assert_eq!(cpu_shares_to_weight(0), None);
        assert_eq!(cpu_shares_to_weight(1), Some(1));
        assert_eq!(cpu_shares_to_weight(2), Some(1));
        assert_eq!(cpu_shares_to_weight(1024), Some(39));
        assert_eq!(cpu_shares_to_weight(262_144), Some(10000));
        assert_eq!(cpu_shares_to_weight(u64::MAX), Some(10000));
    }

    #[test]
    fn blkio_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), None);
        assert_eq!(blkio_weight_to_io_weight(10), Some(1));
        assert_eq!(blkio_weight_to_io_weight(500), Some(4950));
        assert_eq!(blkio_weight_to_io_weight(1000), Some(10000));
    }

    #[test]
    fn swap() {
        let s = |sw, l| memory_swap_to_v2(sw, l);
        assert_eq!(s(None, None).unwrap(), None);
        assert_eq!(s(None, Some(-1)).unwrap().as_deref(), Some("max"));
        assert_eq!(s(Some(-1), Some(100)).unwrap().as_deref(), Some("max"));
        assert_eq!(s(Some(300), Some(100)).unwrap().as_deref(), Some("200"));
        assert_eq!(s(Some(100), Some(100)).unwrap().as_deref(), Some("0"));
        assert_eq!(s(Some(0), Some(100)).unwrap(), None);
        assert!(s(Some(50), Some(100)).is_err());
        assert!(s(Some(50), None).is_err());
        assert!(s(Some(50), Some(-1)).is_err());
        assert!(s(Some(-5), Some(100)).is_err());
    }

    #[test]
    fn page_sizes() {
        assert!(check_page_size("2MB").is_ok());
        assert!(check_page_size("1GB").is_ok());
        assert!(check_page_size("64KB").is_ok());
        for bad in ["", "MB", "2mb", "2MB/../x", "2 MB", "-2MB", "2XB"] {
            assert!(check_page_size(bad).is_err(), "{bad}");
        }
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(1536), "1536KB");
    }
}
