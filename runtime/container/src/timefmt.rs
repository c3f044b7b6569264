//! RFC 3339 timestamps as runc prints them (UTC, nanoseconds), without a
//! date crate: the runtime only ever formats "now" in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn split(t: SystemTime) -> (i64, u32, u32, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, da) = civil_from_days(secs.div_euclid(86_400));
    (y, mo, da, secs.rem_euclid(86_400) as u64, d.subsec_nanos())
}

/// `2026-11-28T12:27:47.868646543Z` (Go's RFC3339Nano: trailing zeros trimmed).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (y, mo, d, sod, nanos) = split(t);
    let mut frac = String::new();
    if nanos != 0 {
        frac = format!(".{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
    }
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// `2026-11-28T12:27:47Z`, the time field of runc's log lines.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, sod, _) = split(t);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::new(1_795_869_467, 868_646_543);
        assert_eq!(rfc3339_nano(t), "2026-11-28T12:37:47.868646543Z");
        assert_eq!(rfc3339(t), "2026-11-28T12:37:47Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.5Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
