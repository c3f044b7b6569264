//! The capabilities a container gets: docker's default set adjusted by
//! `--cap-add` / `--cap-drop`, or all of them with `--privileged`.

use crate::SpecError;

/// Every capability Linux defines, in kernel order (CAP_CHOWN = 0 ...
/// CAP_CHECKPOINT_RESTORE = 40). `--privileged` and `--cap-add ALL` grant all
/// of them; a runtime drops the ones the running kernel does not know
/// (hull and runc both do), so listing newer ones is harmless.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's (and containerd's) default set: 14 capabilities.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// One `--cap-add`/`--cap-drop` value: a capability, or every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CapName {
    All,
    One(&'static str),
}

/// `net_admin`, `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` are one
/// name, as in docker; `all` in any case is every capability.
fn normalize(flag: &'static str, name: &str) -> Result<CapName, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(CapName::All);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL_CAPABILITIES
        .iter()
        .find(|c| **c == full)
        .map(|c| CapName::One(c))
        .ok_or_else(|| {
            SpecError::invalid(
                flag,
                name,
                format!(
                    "unknown capability {full:?}: use a name from capabilities(7) with or \
                     without CAP_ (e.g. NET_ADMIN), or ALL"
                ),
            )
        })
}

/// The capabilities this process holds (CapEff of /proc/self/status), for
/// [`crate::RunOptions::host_capabilities`]: what `--privileged` and
/// `--cap-add ALL` can grant is what the manager itself holds (nerdctl's
/// rule), since a runtime cannot give a container more than it has.
/// Capabilities newer than [`ALL_CAPABILITIES`] are left out.
pub fn current_capabilities() -> Result<Vec<String>, SpecError> {
    let path = "/proc/self/status";
    let fail = |problem: String| SpecError::Host {
        path: path.to_string(),
        problem,
    };
    let status = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let caps = capabilities_from_status(&status)
        .ok_or_else(|| fail("no readable CapEff line: is /proc mounted?".into()))?;
    Ok(caps.into_iter().map(String::from).collect())
}

fn capabilities_from_status(status: &str) -> Option<Vec<&'static str>> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(
        ALL_CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1u64 << bit) != 0)
            .map(|(_, c)| *c)
            .collect(),
    )
}

/// The container's capabilities, in kernel order. `all` is what "every
/// capability" means here (`--privileged`, `--cap-add ALL`): the caller's
/// [`crate::RunOptions::host_capabilities`], else [`ALL_CAPABILITIES`].
///
/// nerdctl's order of operations, which differs from docker's only when one
/// name is both added and dropped: `--cap-drop ALL` empties the set, then
/// `--cap-add` adds (ALL: every capability), then the other `--cap-drop`
/// names are removed. So `--cap-add X --cap-drop X` leaves X out, and
/// `--cap-add ALL --cap-drop ALL` keeps all.
pub(crate) fn resolve(
    privileged: bool,
    add: &[String],
    drop: &[String],
    host: Option<&[String]>,
) -> Result<Vec<&'static str>, SpecError> {
    let add = add
        .iter()
        .map(|n| normalize("--cap-add", n))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = drop
        .iter()
        .map(|n| normalize("--cap-drop", n))
        .collect::<Result<Vec<_>, _>>()?;
    let all = expand_host(host)?;
    if privileged {
        return Ok(in_kernel_order(&all));
    }
    let mut set: Vec<&'static str> = if drop.contains(&CapName::All) {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.to_vec()
    };
    for a in &add {
        match a {
            CapName::All => set = all.clone(),
            CapName::One(c) => set.push(c),
        }
    }
    set.retain(|c| !drop.contains(&CapName::One(c)));
    Ok(in_kernel_order(&set))
}

/// The caller's "all capabilities" as names of [`ALL_CAPABILITIES`].
fn expand_host(host: Option<&[String]>) -> Result<Vec<&'static str>, SpecError> {
    let Some(names) = host else {
        return Ok(ALL_CAPABILITIES.to_vec());
    };
    let mut out = Vec::new();
    for name in names {
        match normalize("host capability", name)? {
            CapName::All => out.extend(ALL_CAPABILITIES),
            CapName::One(c) => out.push(c),
        }
    }
    Ok(out)
}

/// `set` without repeats, in kernel order (stable output, readable diffs).
fn in_kernel_order(set: &[&'static str]) -> Vec<&'static str> {
    ALL_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| set.contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(add: &[&str], drop: &[&str]) -> Vec<&'static str> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        resolve(false, &s(add), &s(drop), None).unwrap()
    }

    #[test]
    fn default_set_is_dockers_fourteen() {
        let got = caps(&[], &[]);
        assert_eq!(got.len(), 14);
        for c in DEFAULT_CAPABILITIES {
            assert!(got.contains(&c), "{c}");
        }
    }

    #[test]
    fn names_in_any_spelling() {
        for name in [
            "NET_ADMIN",
            "net_admin",
            "CAP_NET_ADMIN",
            "cap_net_admin",
            "Net_Admin",
        ] {
            assert!(caps(&[name], &[]).contains(&"CAP_NET_ADMIN"), "{name}");
        }
        assert!(!caps(&[], &["chown"]).contains(&"CAP_CHOWN"));
    }

    #[test]
    fn all_rules() {
        assert_eq!(caps(&["ALL"], &[]), ALL_CAPABILITIES.to_vec());
        assert_eq!(caps(&[], &["all"]), Vec::<&str>::new());
        assert_eq!(caps(&["NET_ADMIN"], &["ALL"]), ["CAP_NET_ADMIN"]);
        let most = caps(&["all"], &["SYS_ADMIN"]);
        assert_eq!(most.len(), 40);
        assert!(!most.contains(&"CAP_SYS_ADMIN"));
        assert_eq!(caps(&["ALL"], &["ALL"]).len(), 41);
        // nerdctl: the drop comes after the add.
        assert!(!caps(&["SYS_TIME"], &["SYS_TIME"]).contains(&"CAP_SYS_TIME"));
    }

    #[test]
    fn privileged_is_everything() {
        let s = vec!["CHOWN".to_string()];
        assert_eq!(
            resolve(true, &[], &s, None).unwrap(),
            ALL_CAPABILITIES.to_vec()
        );
    }

    #[test]
    fn all_means_what_the_host_holds() {
        let host: Vec<String> = vec!["CAP_KILL".into(), "chown".into(), "CAP_SYS_ADMIN".into()];
        assert_eq!(
            resolve(true, &[], &[], Some(&host)).unwrap(),
            ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]
        );
        let all = vec!["ALL".to_string()];
        let got = resolve(false, &all, &["KILL".into()], Some(&host)).unwrap();
        assert_eq!(got, ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        // Named capabilities are granted as asked, held by the host or not.
        let got = resolve(false, &["NET_ADMIN".into()], &[], Some(&host)).unwrap();
        assert!(got.contains(&"CAP_NET_ADMIN"));
        let bad = vec!["CAP_NOPE".to_string()];
        assert!(resolve(true, &[], &[], Some(&bad)).is_err());
    }

    #[test]
    fn current_capabilities_from_status() {
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\nCapBnd:\t0\n";
        let caps = capabilities_from_status(status).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE"));
        assert_eq!(
            capabilities_from_status("CapEff:\t0000000000000021\n").unwrap(),
            ["CAP_CHOWN", "CAP_KILL"]
        );
        assert_eq!(capabilities_from_status("nothing"), None);
        assert!(current_capabilities().is_ok());
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(false, &["CAP_FLY".into()], &[], None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--cap-add \"CAP_FLY\": unknown capability \"CAP_FLY\": use a name from \
             capabilities(7) with or without CAP_ (e.g. NET_ADMIN), or ALL"
        );
        let e = resolve(true, &[], &["".into()], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--cap-drop \"\": unknown capability \"CAP_\""),
            "{e}"
        );
    }
}
