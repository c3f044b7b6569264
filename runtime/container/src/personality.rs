//! `linux.personality` (runtime-spec 1.2): the execution domain of the
//! container's init, set with personality(2) right before its program runs,
//! as runc does. `LINUX32` makes `uname -m` say i686 on x86_64 (linux32).
//! The spec defines no flags yet; any given are refused, never ignored.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain, Spec};

/// PER_LINUX and PER_LINUX32 from <linux/personality.h>.
const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// The personality(2) argument for the config, checked.
pub fn persona(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if let Some(flag) = p.flags().as_ref().and_then(|f| f.first()) {
        return Err(Error::msg(format!(
            "linux.personality.flags: {flag:?} is not supported (the runtime spec defines no flags)"
        )));
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

/// Check the config's personality (at create, before anything runs).
pub fn validate(spec: &Spec) -> Result<()> {
    match spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        Some(p) => persona(p).map(drop),
        None => Ok(()),
    }
}

/// Set the config's personality for this process (and what it executes).
pub fn apply(spec: &Spec) -> Result<()> {
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else {
        return Ok(());
    };
    let persona = persona(p)?;
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(Error::io(
            format!("setting linux.personality {}", p.domain()),
            std::io::Error::last_os_error(),
        ));
    }
    crate::debug!("init: personality {}", p.domain());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> LinuxPersonality {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn domains_and_flags() {
        assert_eq!(persona(&parse(r#"{"domain":"LINUX"}"#)).unwrap(), 0);
        assert_eq!(persona(&parse(r#"{"domain":"LINUX32"}"#)).unwrap(), 8);
        let err = persona(&parse(
            r#"{"domain":"LINUX","flags":["ADDR_NO_RANDOMIZE"]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("ADDR_NO_RANDOMIZE"), "{err}");
    }
}
