//! Signal names and numbers as `kill` accepts them: `KILL`, `SIGKILL`, `9`,
//! and real-time signals (`RTMIN+3`).

use crate::{bail, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parse a signal given by name (with or without `SIG`) or number. 0 is
/// "no signal": `kill ID 0` checks that the container's init is alive.
pub fn parse(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if n >= 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        bail!(
            "unknown signal {s:?}: use a name like KILL or TERM, or a number from 0 to {}",
            libc::SIGRTMAX()
        );
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off = if rest.is_empty() {
            Some(0)
        } else {
            rest.strip_prefix('+').and_then(|n| n.parse::<i32>().ok())
        };
        if let Some(off) = off.filter(|o| libc::SIGRTMIN() + o <= libc::SIGRTMAX()) {
            return Ok(libc::SIGRTMIN() + off);
        }
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off = if rest.is_empty() {
            Some(0)
        } else {
            rest.strip_prefix('-').and_then(|n| n.parse::<i32>().ok())
        };
        if let Some(off) = off.filter(|o| libc::SIGRTMAX() - o >= libc::SIGRTMIN()) {
            return Ok(libc::SIGRTMAX() - off);
        }
    }
    if let Ok(sig) = Signal::from_str(&format!("SIG{name}")) {
        return Ok(sig as i32);
    }
    bail!("unknown signal {s:?}: use a name like KILL or TERM, or a number (see `kill -l`)")
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("HUP").unwrap(), 1);
        assert_eq!(parse("RTMIN").unwrap(), libc::SIGRTMIN());
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
    }

    #[test]
    fn rejects_unknown() {
        for s in ["", "FOO", "SIGFOO", "-1", "65", "RTMIN+99", "9x"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
