//! Sizes and CPU counts as docker's command line writes them.

use crate::SpecError;

/// Parse a size as docker's `--memory`, `--memory-swap` and `--shm-size`
/// take it: a decimal number with an optional binary unit `b`, `k`, `m`,
/// `g`, `t` or `p` (case-insensitive, optionally followed by `b` or `ib`:
/// `256m`, `1.5G`, `512MiB`, `100kb`, `4096`). `k` is 1024 bytes, as docker's.
/// Fractions are truncated to whole bytes.
pub fn parse_memory(s: &str) -> Result<u64, SpecError> {
    const HINT: &str = "use a number with an optional unit b, k, m, g or t (e.g. 256m or 1.5g)";
    let err = |problem: String| SpecError::invalid("size", s, format!("{problem}: {HINT}"));
    let text = s.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(err("no number".into()));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(err(format!("{number:?} is not a number")));
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let (letter, suffix) = match unit.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => (Some(c), &unit[1..]),
        _ => (None, unit.as_str()),
    };
    let suffix_ok = match letter {
        Some(_) => matches!(suffix, "" | "b" | "i" | "ib"),
        None => matches!(suffix, "" | "b"),
    };
    if !suffix_ok {
        return Err(err(format!("unknown unit {unit:?}")));
    }
    let shift = match letter {
        None => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        _ => 50,
    };
    let too_large = || err("too large".into());
    // Whole bytes from the integer part, then the fraction scaled exactly:
    // integer arithmetic, so "0.5g" is exactly 536870912.
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_shl(shift).ok_or_else(too_large)?;
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().map_err(|_| too_large())?;
        let denominator = 10u128.pow(fraction.len() as u32);
        bytes += (numerator << shift) / denominator;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Parse `--cpus`: a positive decimal number of CPUs (`1.5`, `0.25`, `2`).
/// `0` means no limit, as in docker.
pub fn parse_cpus(s: &str) -> Result<f64, SpecError> {
    let text = s.trim();
    let value: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .ok_or_else(|| {
            SpecError::invalid(
                "--cpus",
                s,
                "not a number of CPUs: use a decimal number such as 0.5 or 2",
            )
        })?;
    check_cpus(value)?;
    Ok(value)
}

/// The smallest CFS quota the kernel accepts is 1 ms per period; with
/// docker's 100 ms period that is 0.01 CPU.
pub(crate) fn check_cpus(cpus: f64) -> Result<(), SpecError> {
    if !cpus.is_finite() || cpus < 0.0 {
        return Err(SpecError::invalid(
            "--cpus",
            cpus.to_string(),
            "must be a positive number of CPUs (0 for no limit)",
        ));
    }
    if cpus != 0.0 && cpus < 0.01 {
        return Err(SpecError::invalid(
            "--cpus",
            cpus.to_string(),
            "below the kernel's minimum of 0.01 CPU (1 ms per 100 ms period): use 0.01 or more",
        ));
    }
    // A quota that does not fit i64 microseconds is nonsense (2^63 us).
    if cpus > 1e12 {
        return Err(SpecError::invalid(
            "--cpus",
            cpus.to_string(),
            "too large: give at most the number of CPUs of the host",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_binary_and_case_insensitive() {
        for (text, bytes) in [
            ("0", 0),
            ("512", 512),
            ("100b", 100),
            ("1k", 1024),
            ("1K", 1024),
            ("1kb", 1024),
            ("1KiB", 1024),
            ("256m", 256 << 20),
            ("256M", 256 << 20),
            ("256 MB", 256 << 20),
            ("1g", 1 << 30),
            ("1.5g", 3 << 29),
            ("0.5G", 1 << 29),
            ("2t", 2 << 40),
            ("1.0009765625k", 1025),
            (" 64m ", 64 << 20),
        ] {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn memory_errors_name_the_value_and_the_fix() {
        for bad in [
            "", "m", "-1", "1x", "1.2.3m", "1.m", ".5m", "1mm", "1ib", "1kbi", "1e3",
        ] {
            let e = parse_memory(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("size {bad:?}: ")), "{e}");
            assert!(e.contains("e.g. 256m"), "{e}");
        }
        let e = parse_memory("99999999999999999999p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        assert!(parse_memory("16384p").is_err());
    }

    #[test]
    fn cpus_parse_and_bounds() {
        assert_eq!(parse_cpus("1.5"), Ok(1.5));
        assert_eq!(parse_cpus("2"), Ok(2.0));
        assert_eq!(parse_cpus("0"), Ok(0.0));
        assert_eq!(parse_cpus("0.01"), Ok(0.01));
        for bad in ["", "-1", "abc", "NaN", "inf", "1e3", "0.001"] {
            let e = parse_cpus(bad).unwrap_err().to_string();
            assert!(e.starts_with("--cpus "), "{e}");
        }
    }
}
