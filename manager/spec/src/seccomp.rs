//! The project's default seccomp profile (seccomp-profiles/default.json)
//! plus the rules seccomp-profiles/default-capabilities.json gates on each
//! capability the container holds.

use crate::SpecError;
use oci_spec::runtime::{LinuxSeccomp, LinuxSyscall};
use std::collections::BTreeMap;

const DEFAULT_PROFILE: &str = include_str!("../../../seccomp-profiles/default.json");
const CAPABILITY_RULES: &str = include_str!("../../../seccomp-profiles/default-capabilities.json");

/// The profile for a container whose bounding set is `capabilities`: the
/// bounding set is what any process in it can ever hold (a setuid binary
/// regains it when noNewPrivileges is false), so every one of them gets its
/// rules, as seccomp-profiles/README.md prescribes.
pub(crate) fn profile(capabilities: &[&str]) -> Result<LinuxSeccomp, SpecError> {
    let mut profile: LinuxSeccomp = serde_json::from_str(DEFAULT_PROFILE)
        .map_err(|e| SpecError::Internal(format!("seccomp-profiles/default.json: {e}")))?;
    let rules: BTreeMap<String, Vec<LinuxSyscall>> = serde_json::from_str(CAPABILITY_RULES)
        .map_err(|e| {
            SpecError::Internal(format!("seccomp-profiles/default-capabilities.json: {e}"))
        })?;
    let mut syscalls = profile.syscalls().clone().unwrap_or_default();
    for cap in capabilities {
        if let Some(extra) = rules.get(*cap) {
            syscalls.extend(extra.iter().cloned());
        }
    }
    profile.set_syscalls(Some(syscalls));
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn base_profile_blocks_mount_until_sys_admin() {
        let base = profile(&[]).unwrap();
        assert!(!names(&base).contains(&"mount".to_string()));
        let admin = profile(&["CAP_SYS_ADMIN"]).unwrap();
        assert!(names(&admin).contains(&"mount".to_string()));
        assert_eq!(
            admin.syscalls().as_ref().unwrap().len(),
            base.syscalls().as_ref().unwrap().len() + 1
        );
    }

    #[test]
    fn every_gated_capability_is_a_known_name() {
        let rules: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(CAPABILITY_RULES).unwrap();
        for cap in rules.keys() {
            assert!(
                crate::capabilities::ALL_CAPABILITIES.contains(&cap.as_str()),
                "{cap}"
            );
        }
    }
}
