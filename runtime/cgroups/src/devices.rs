//! Device access rules (`linux.resources.devices`), shared by the cgroup v1
//! `devices` controller and the cgroup v2 eBPF filter.
//!
//! Semantics (both versions): the container starts with **no** device
//! access (an allow-list, as in runc, whatever the first rule is); rules are
//! applied in order and, for each access kind (read, write, mknod), the
//! **last matching rule wins**. So the usual `[{deny all}, {allow c 1:3
//! rwm}, ...]` works, and so does `[{allow all}, {deny c 1:7 w}]`.
//!
//! Normalisation, done once here:
//! * type absent → `a` (all); `u` (unbuffered char) → `c`; `p` is refused
//!   (FIFOs have no device numbers);
//! * major/minor absent or -1 → wildcard; other negatives are refused;
//! * access absent or empty → `rwm` (so `{"allow": false}` denies all, as
//!   configs written for runc expect); letters other than r, w, m are
//!   refused.
//!
//! The runtime (not this crate) appends [`default_allowed_devices`], as runc
//! does with its `AllowedDevices`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// Access bits, with the kernel's BPF_DEVCG_ACC_* values.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = 7;

/// Device kinds, with the kernel's BPF_DEVCG_DEV_* values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevKind {
    All,
    Block,
    Char,
}

impl DevKind {
    /// BPF_DEVCG_DEV_BLOCK / BPF_DEVCG_DEV_CHAR (None for all).
    pub fn bpf_type(self) -> Option<u32> {
        match self {
            DevKind::All => None,
            DevKind::Block => Some(1),
            DevKind::Char => Some(2),
        }
    }

    fn letter(self) -> char {
        match self {
            DevKind::All => 'a',
            DevKind::Block => 'b',
            DevKind::Char => 'c',
        }
    }
}

/// One validated rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DevKind,
    /// `None` = any.
    pub major: Option<u32>,
    /// `None` = any.
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u8,
}

impl DeviceRule {
    /// Whether the rule covers device (kind, major, minor) — ignoring access.
    pub fn matches(&self, kind: DevKind, major: u32, minor: u32) -> bool {
        (self.kind == DevKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }

    fn is_everything(&self) -> bool {
        self.kind == DevKind::All && self.major.is_none() && self.minor.is_none()
    }
}

/// Validates and normalises the OCI rules (see the module doc).
pub fn normalize(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |f: &str| format!("linux.resources.devices[{i}].{f}");
            let kind = match r.typ() {
                None | Some(LinuxDeviceType::A) => DevKind::All,
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DevKind::Char,
                Some(LinuxDeviceType::B) => DevKind::Block,
                Some(LinuxDeviceType::P) => {
                    return Err(Error::invalid(format!(
                        "{}: \"p\" (FIFO) has no device numbers; use a, b or c",
                        field("type")
                    )))
                }
            };
            let num = |v: Option<i64>, f: &str| -> Result<Option<u32>> {
                match v {
                    None | Some(-1) => Ok(None),
                    Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(Some(n as u32)),
                    Some(n) => Err(Error::invalid(format!(
                        "{}: {n} is not a device number (use -1 or leave it out for any)",
                        field(f)
                    ))),
                }
            };
            let access = match r.access().as_deref() {
                None | Some("") => ACC_ALL,
                Some(a) => {
                    let mut bits = 0;
                    for c in a.chars() {
                        bits |= match c {
                            'r' => ACC_READ,
                            'w' => ACC_WRITE,
                            'm' => ACC_MKNOD,
                            _ => {
                                return Err(Error::invalid(format!(
                                    "{}: {a:?} may only contain r, w and m",
                                    field("access")
                                )))
                            }
                        };
                    }
                    bits
                }
            };
            Ok(DeviceRule {
                allow: r.allow(),
                kind,
                major: num(r.major(), "major")?,
                minor: num(r.minor(), "minor")?,
                access,
            })
        })
        .collect()
}

/// The reference semantics: whether `access` (ACC_* bits, possibly several)
/// to device (kind, major, minor) is allowed. The eBPF program implements
/// exactly this; tests compare the two.
pub fn allowed(rules: &[DeviceRule], kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
    let mut granted = 0u8;
    for r in rules.iter().filter(|r| r.matches(kind, major, minor)) {
        if r.allow {
            granted |= r.access;
        } else {
            granted &= !r.access;
        }
    }
    access & !granted == 0
}

fn access_string(bits: u8) -> String {
    let mut s = String::new();
    if bits & ACC_READ != 0 {
        s.push('r');
    }
    if bits & ACC_WRITE != 0 {
        s.push('w');
    }
    if bits & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The v1 writes for `rules`: ("devices.deny", "a") first, so the cgroup
/// starts from an empty allow-list, then one line per rule to
/// `devices.allow` or `devices.deny`, in order.
///
/// A type-`a` rule with a specific major or minor is written as a `c` and a
/// `b` line: the kernel treats any line starting with `a` as "all devices",
/// which would turn a narrow allow into allow-everything.
pub(crate) fn v1_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut out = vec![("devices.deny", "a".to_string())];
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        if r.is_everything() && r.access == ACC_ALL {
            out.push((file, "a".to_string()));
            continue;
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        let kinds: &[DevKind] = if r.kind == DevKind::All {
            &[DevKind::Char, DevKind::Block]
        } else {
            std::slice::from_ref(&r.kind)
        };
        for k in kinds {
            out.push((
                file,
                format!(
                    "{} {}:{} {}",
                    k.letter(),
                    n(r.major),
                    n(r.minor),
                    access_string(r.access)
                ),
            ));
        }
    }
    out
}

/// The devices runc always allows (its `AllowedDevices`), to be appended by
/// the runtime after the config's own rules:
/// mknod of any char and block device; /dev/null, /dev/random, /dev/full,
/// /dev/tty, /dev/zero, /dev/urandom; /dev/pts/* (136:*); /dev/ptmx (5:2);
/// and /dev/net/tun (10:200), which runc dropped in 1.2.0-rc1 and restored
/// because orchestrators relied on it.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

#[cfg(test)]
pub(crate) fn oci(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalisation() {
        let r = normalize(&oci(json!([
            {"allow": false},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": true, "type": "u", "major": -1, "access": "m"},
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": ""}
        ])))
        .unwrap();
        assert_eq!(
            r[0],
            DeviceRule {
                allow: false,
                kind: DevKind::All,
                major: None,
                minor: None,
                access: ACC_ALL
            }
        );
        assert_eq!(r[1].access, ACC_READ | ACC_WRITE);
        assert_eq!(r[2].kind, DevKind::Char);
        assert_eq!(r[2].major, None);
        assert_eq!(r[3].access, ACC_ALL);
        for bad in [
            json!([{"allow": true, "type": "p"}]),
            json!([{"allow": true, "major": -2}]),
            json!([{"allow": true, "minor": 5000000000i64}]),
            json!([{"allow": true, "access": "rwx"}]),
        ] {
            assert!(normalize(&oci(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_match_wins_per_access() {
        let r = normalize(&oci(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ])))
        .unwrap();
        assert!(allowed(&r, DevKind::Char, 1, 3, ACC_READ));
        assert!(!allowed(&r, DevKind::Char, 1, 3, ACC_WRITE));
        assert!(!allowed(&r, DevKind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(allowed(&r, DevKind::Char, 1, 3, ACC_MKNOD));
        assert!(allowed(&r, DevKind::Char, 136, 7, ACC_READ | ACC_WRITE));
        assert!(!allowed(&r, DevKind::Block, 136, 7, ACC_READ));
        assert!(!allowed(&r, DevKind::Char, 1, 5, ACC_READ));
        // No rules: nothing is allowed.
        assert!(!allowed(&[], DevKind::Char, 1, 3, ACC_READ));
    }

    #[test]
    fn v1_lines() {
        let r = normalize(&oci(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "major": 10, "access": "mr"},
            {"allow": true, "type": "a"},
            {"allow": false, "type": "b", "minor": 2, "access": "w"}
        ])))
        .unwrap();
        assert_eq!(
            v1_writes(&r),
            vec![
                ("devices.deny", "a".to_string()),
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c 1:3 rwm".to_string()),
                ("devices.allow", "c 10:* rm".to_string()),
                ("devices.allow", "b 10:* rm".to_string()),
                ("devices.allow", "a".to_string()),
                ("devices.deny", "b *:2 w".to_string()),
            ]
        );
    }

    #[test]
    fn defaults_are_runcs() {
        let d = normalize(&default_allowed_devices()).unwrap();
        assert_eq!(d.len(), 11);
        assert!(allowed(&d, DevKind::Char, 1, 3, ACC_ALL));
        assert!(allowed(&d, DevKind::Char, 136, 42, ACC_READ | ACC_WRITE));
        assert!(allowed(&d, DevKind::Block, 8, 0, ACC_MKNOD));
        assert!(!allowed(&d, DevKind::Block, 8, 0, ACC_READ));
        assert!(!allowed(&d, DevKind::Char, 4, 1, ACC_WRITE));
    }
}
