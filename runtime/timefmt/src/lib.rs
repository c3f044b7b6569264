//! RFC 3339 timestamps in UTC, formatted and parsed without a date crate.
//!
//! Hull only ever needs UTC instants: "now" in runc's log lines and state,
//! the time of each line in hull-shim's json logs, lease expiry labels. A
//! calendar crate (chrono, time) would bring time zones and a large API for
//! a few lines of arithmetic, and the runtime keeps its binary small.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Civil date (year, month, day) from days since 1970-01-01, proleptic
/// Gregorian (Howard Hinnant's days-to-civil algorithm).
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

/// Days since 1970-01-01 from a civil date: the inverse of
/// [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS` and the nanoseconds of an instant (before the
/// epoch counts as the epoch).
fn date_time(t: SystemTime) -> (String, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, da) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let text = format!(
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    (text, d.subsec_nanos())
}

/// `2026-11-28T12:27:47.868646543Z`: Go's RFC3339Nano, as runc's state and
/// docker's json-file logs print it (trailing zeros of the fraction
/// trimmed, no fraction on a whole second).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (date_time, nanos) = date_time(t);
    if nanos == 0 {
        return format!("{date_time}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{date_time}.{}Z", frac.trim_end_matches('0'))
}

/// An RFC3339Nano UTC time with its fraction padded to nine digits
/// (`...:47.5Z` → `...:47.500000000Z`): docker's "RFC3339NanoFixed", how
/// `logs --timestamps` shows times so that they line up. Anything not in
/// that form is returned as it is.
pub fn nano_fixed(time: &str) -> String {
    let Some(body) = time.strip_suffix('Z') else {
        return time.to_string();
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return time.to_string();
    }
    format!("{whole}.{frac:0<9}Z")
}

/// `2026-11-28T12:27:47Z`: whole seconds, the time field of runc's log
/// lines and containerd's lease expiry labels.
pub fn rfc3339(t: SystemTime) -> String {
    format!("{}Z", date_time(t).0)
}

/// Seconds since the epoch as [`rfc3339`].
pub fn rfc3339_secs(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `2026-12-03T09:00:00Z`, `...00.123+01:00` → seconds since the epoch
/// (the fraction dropped); `None` for anything else or before the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, rest) = s.trim().split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (time, offset) = rest.split_at(rest.find(['Z', 'z', '+', '-'])?);
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: i64 = t.next()?.split('.').next()?.parse().ok()?;
    let offset_secs = match offset.as_bytes().first()? {
        b'Z' | b'z' => 0,
        sign => {
            let (oh, om) = offset[1..].split_once(':')?;
            let v = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, day);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::new(1_795_869_467, 868_646_543);
        assert_eq!(rfc3339_nano(t), "2026-11-28T12:37:47.868646543Z");
        assert_eq!(rfc3339(t), "2026-11-28T12:37:47Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.5Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(1_796_288_400), "2026-12-03T09:00:00Z");
        assert_eq!(
            nano_fixed("2000-02-29T00:00:00.5Z"),
            "2000-02-29T00:00:00.500000000Z"
        );
        assert_eq!(
            nano_fixed("1970-01-01T00:00:00Z"),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(nano_fixed("x.1234567890Z"), "x.1234567890Z");
        assert_eq!(
            nano_fixed("2026-12-03T10:00:00+01:00"),
            "2026-12-03T10:00:00+01:00"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-12-03T09:00:00Z"), Some(1_796_288_400));
        assert_eq!(
            parse_rfc3339("2026-12-03T10:00:00.123456+01:00"),
            Some(1_796_288_400)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-03T10:00:00Z"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        for secs in [0, 951_782_400, 4_102_444_800, 1_796_309_101] {
            assert_eq!(parse_rfc3339(&rfc3339_secs(secs)), Some(secs));
        }
    }
}
