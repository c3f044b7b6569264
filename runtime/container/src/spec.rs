//! Loading and validating a bundle's config.json before anything is created.
//!
//! Every check that can fail on user input runs here, in the calling process,
//! so a bad config never leaves a state directory, mount or process behind.

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::namespaces::{Kind, Namespaces};
use oci_spec::runtime::{LinuxIdMapping, Process, Spec};
use std::path::{Path, PathBuf};

/// The largest uid or gid hull accepts. The kernel's ids are 32-bit, but
/// (uid_t)-1 = 4294967295 means "leave unchanged" to setresuid/setresgid, so
/// a process asked to run as 4294967295 would silently stay root; like runc,
/// hull refuses everything above i32::MAX.
pub const MAX_ID: u32 = i32::MAX as u32;

/// OCI runtime-spec versions this runtime implements.
pub const OCI_VERSION: &str = "1.2.1";
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    pub spec: Spec,
    pub namespaces: Namespaces,
    /// config.json as read, kept with the container's state.
    pub raw: Vec<u8>,
}

impl Bundle {
    /// Read `<dir>/config.json` and validate it for `create`.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).ctx(|| format!("bundle {}", dir.display()))?;
        let config = dir.join("config.json");
        let text = match std::fs::read(&config) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "bundle {}: config.json not found: run `hull spec` in the bundle directory or pass --bundle",
                dir.display()
            ),
            Err(e) => return Err(Error::io(format!("reading {}", config.display()), e)),
        };
        let spec = parse_spec(&text).map_err(|e| e.context(config.display()))?;
        let spec_root = spec.root().as_ref().ok_or_else(|| {
            Error::msg(format!(
                "{}: \"root\" is missing: set root.path to the container's root filesystem",
                config.display()
            ))
        })?;
        let rootfs = dir.join(spec_root.path());
        if !rootfs.is_dir() {
            bail!(
                "bundle {}: root filesystem {} does not exist or is not a directory: create it or fix root.path in config.json",
                dir.display(),
                rootfs.display()
            );
        }
        let rootfs =
            std::fs::canonicalize(&rootfs).ctx(|| format!("rootfs {}", rootfs.display()))?;
        let namespaces = validate(&spec)?;
        Ok(Bundle {
            dir,
            rootfs,
            spec,
            namespaces,
            raw: text,
        })
    }
}

/// Parse config.json text, with the version checked first so an unsupported
/// major version gets a clear error rather than a field-type error.
pub fn parse_spec(text: &[u8]) -> Result<Spec> {
    /// Just the version, read before the rest so an unsupported major
    /// version gets a clear error rather than a field-type error.
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        #[serde(rename = "ociVersion")]
        version: Option<serde_json::Value>,
    }
    let v: VersionOnly =
        serde_json::from_slice(text).map_err(|e| Error::msg(format!("invalid JSON: {e}")))?;
    match v.version {
        Some(serde_json::Value::String(version)) => check_version(&version)?,
        _ => bail!("\"ociVersion\" is missing or not a string: set it to \"{OCI_VERSION}\""),
    }
    // Errors carry the field's path as well as the line and column.
    let mut de = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Error::msg(format!("field {path:?}: {}", e.into_inner()))
    })
}

/// Accept every 1.x version (1.0.0 ... the current one); refuse other majors.
pub fn check_version(v: &str) -> Result<()> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        bail!("ociVersion {v:?} is not a semantic version: use e.g. \"{OCI_VERSION}\"");
    }
    if parts[0] != "1" {
        bail!("unsupported ociVersion {v:?}: hull implements runtime-spec {OCI_VERSION_MIN} to {OCI_VERSION} (1.x)");
    }
    Ok(())
}

/// Checks of the config that need no file system access beyond namespace paths.
pub fn validate(spec: &Spec) -> Result<Namespaces> {
    let process = spec.process().as_ref().ok_or_else(|| {
        Error::msg("config.json: \"process\" is missing: a container needs a process to run")
    })?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!(
            "config.json: process.args must not be empty: give the command to run, e.g. [\"sh\"]"
        );
    }
    crate::lsm::check(process)?;
    validate_user(process).map_err(|e| e.context("config.json"))?;
    crate::process::check_env(process.env().as_deref().unwrap_or_default(), "process.env")
        .map_err(|e| e.context("config.json"))?;
    if !process.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd {:?} must be an absolute path",
            process.cwd().display()
        );
    }
    crate::personality::validate(spec).map_err(|e| e.context("config.json"))?;
    crate::mempolicy::validate(spec).map_err(|e| e.context("config.json"))?;
    let linux = spec.linux().as_ref();
    let namespaces = Namespaces::from_spec(
        linux
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default(),
    )?;
    if !namespaces.has(Kind::Mount) {
        // Its mounts are the host's then: masking or remounting paths would
        // change the host's (runc's words).
        let restricts = linux.is_some_and(|l| {
            l.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
                || l.readonly_paths().as_ref().is_some_and(|p| !p.is_empty())
        });
        if restricts {
            bail!("config.json: unable to restrict sys entries without a private MNT namespace: linux.maskedPaths and linux.readonlyPaths need {{\"type\": \"mount\"}} in linux.namespaces");
        }
    }
    crate::netdev::validate(spec, namespaces.is_new(Kind::Net))
        .map_err(|e| e.context("config.json"))?;
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !namespaces.has(Kind::Uts) {
        bail!("config.json: hostname is set but there is no uts namespace: add {{\"type\": \"uts\"}} to linux.namespaces");
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !namespaces.has(Kind::Uts) {
        bail!("config.json: domainname is set but there is no uts namespace: add {{\"type\": \"uts\"}} to linux.namespaces");
    }
    if let Some(linux) = linux {
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if namespaces.is_new(Kind::User) && !maps {
            bail!(
                "config.json: a new user namespace needs linux.uidMappings and linux.gidMappings"
            );
        }
        check_id_mappings("linux.uidMappings", linux.uid_mappings().as_deref())?;
        check_id_mappings("linux.gidMappings", linux.gid_mappings().as_deref())?;
        if maps && !namespaces.is_new(Kind::User) {
            bail!("config.json: linux.uidMappings/gidMappings need a new user namespace: add {{\"type\": \"user\"}} to linux.namespaces");
        }
        if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            if !namespaces.is_new(Kind::Time) {
                bail!("config.json: linux.timeOffsets need a new time namespace: add {{\"type\": \"time\"}} to linux.namespaces");
            }
            for clock in linux
                .time_offsets()
                .as_ref()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if clock != "monotonic" && clock != "boottime" {
                    bail!("config.json: linux.timeOffsets: unknown clock {clock:?}: use \"monotonic\" or \"boottime\"");
                }
            }
        }
        for key in linux
            .sysctl()
            .as_ref()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            check_sysctl(key, &namespaces)?;
        }
    }
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        check_id_mappings(
            &format!("mounts[{i}].uidMappings"),
            m.uid_mappings().as_deref(),
        )?;
        check_id_mappings(
            &format!("mounts[{i}].gidMappings"),
            m.gid_mappings().as_deref(),
        )?;
    }
    Ok(namespaces)
}

/// Check one uid or gid named `field` against [`MAX_ID`].
pub fn check_id(field: &str, id: u32) -> Result<()> {
    if id > MAX_ID {
        bail!("{field} {id} is out of range (0-{MAX_ID})");
    }
    Ok(())
}

/// The ids of a process (the container's own, or one for `exec`).
pub fn validate_user(process: &Process) -> Result<()> {
    let user = process.user();
    check_id("process.user.uid", user.uid())?;
    check_id("process.user.gid", user.gid())?;
    for (i, gid) in user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        check_id(&format!("process.user.additionalGids[{i}]"), *gid)?;
    }
    Ok(())
}

/// Every id a mapping covers, on both sides, must be a valid id: a range
/// reaching 4294967295 would map the "no change" value.
fn check_id_mappings(field: &str, maps: Option<&[LinuxIdMapping]>) -> Result<()> {
    for (i, m) in maps.unwrap_or_default().iter().enumerate() {
        let entry = format!("config.json: {field}[{i}]");
        if m.size() == 0 {
            bail!("{entry}.size is 0: a mapping covers at least one id");
        }
        for (side, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            check_id(&format!("{entry}.{side}"), start)?;
            let last = u64::from(start) + u64::from(m.size()) - 1;
            if last > u64::from(MAX_ID) {
                bail!(
                    "{entry}: {side} {start} with size {} ends at {last}, out of range (0-{MAX_ID}): make the range smaller",
                    m.size()
                );
            }
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only in a namespace that is not
/// the runtime's own (the host's): a new one, or one joined by path (podman
/// and the CRI create the network namespace themselves and pass its path).
/// The errors keep runc's words.
fn check_sysctl(key: &str, ns: &Namespaces) -> Result<()> {
    let needs = if key.starts_with("net.") {
        Some(Kind::Net)
    } else if key.starts_with("fs.mqueue.")
        || matches!(
            key,
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        )
    {
        Some(Kind::Ipc)
    } else if matches!(key, "kernel.hostname" | "kernel.domainname") {
        Some(Kind::Uts)
    } else {
        None
    };
    let Some(kind) = needs else {
        bail!("config.json: sysctl {key:?} is not in a separate kernel namespace: setting it would change the host; remove it")
    };
    let host_words = match kind {
        Kind::Net => "not allowed in host network namespace",
        Kind::Ipc => "is not allowed in the hosts ipc namespace",
        _ => "is not in a separate kernel namespace",
    };
    let Some(entry) = ns.get(kind) else {
        bail!(
            "config.json: sysctl {key:?} {host_words}: add {{\"type\": \"{}\"}} to linux.namespaces",
            kind.oci_name()
        )
    };
    if let Some(path) = &entry.path {
        if crate::namespaces::is_runtime_own(path, kind) {
            bail!(
                "config.json: sysctl {key:?} {host_words}: linux.namespaces joins {}, the runtime's own {} namespace; create a new one or join another",
                path.display(),
                kind.oci_name()
            )
        }
    }
    if key.contains("..") || key.contains('/') {
        bail!("config.json: sysctl {key:?} is not a valid name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<Spec> {
        let text = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},"root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"mount"}},{{"type":"uts"}},{{"type":"network"}}]}}{extra}}}"#
        );
        parse_spec(text.as_bytes())
    }

    #[test]
    fn versions() {
        for v in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.3.0"] {
            assert!(check_version(v).is_ok(), "{v}");
        }
        for v in ["2.0.0", "0.9.0", "1", "x", "1.0", ""] {
            assert!(check_version(v).is_err(), "{v}");
        }
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(spec(r#","hostname":5"#).is_err());
        assert!(parse_spec(b"{").is_err());
        assert!(parse_spec(br#"{"ociVersion":"2.0.0"}"#)
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
    }

    #[test]
    fn validation() {
        assert!(validate(&spec("").unwrap()).is_ok());
        let s = spec(r#","hostname":"h""#).unwrap();
        assert!(validate(&s).is_ok());
        let mut s = spec("").unwrap();
        s.process_mut().as_mut().unwrap().set_args(Some(vec![]));
        assert!(validate(&s).unwrap_err().to_string().contains("args"));
    }

    #[test]
    fn ids_above_i32_max_are_refused() {
        let user = |u: &str| {
            let text = format!(
                r#"{{"ociVersion":"1.2.0","process":{{"args":["sh"],"cwd":"/","user":{u}}},
                "linux":{{"namespaces":[{{"type":"mount"}}]}}}}"#
            );
            parse_spec(text.as_bytes())
        };
        for (u, field) in [
            (
                r#"{"uid":4294967295,"gid":0}"#,
                "process.user.uid 4294967295",
            ),
            (
                r#"{"uid":0,"gid":2147483648}"#,
                "process.user.gid 2147483648",
            ),
            (
                r#"{"uid":0,"gid":0,"additionalGids":[1,4294967295]}"#,
                "process.user.additionalGids[1] 4294967295",
            ),
        ] {
            let e = validate(&user(u).unwrap()).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("(0-2147483647)"), "{e}");
        }
        let top = r#"{"uid":2147483647,"gid":2147483647,"additionalGids":[2147483647]}"#;
        assert!(validate(&user(top).unwrap()).is_ok());
    }

    #[test]
    fn id_mappings_stay_in_range() {
        let maps = |m: &str| {
            let text = format!(
                r#"{{"ociVersion":"1.2.0","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
                "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"user"}}],"uidMappings":[{m}],
                "gidMappings":[{{"containerID":0,"hostID":1000,"size":1}}]}}}}"#
            );
            validate(&parse_spec(text.as_bytes()).unwrap())
        };
        assert!(maps(r#"{"containerID":0,"hostID":100000,"size":65536}"#).is_ok());
        assert!(maps(r#"{"containerID":0,"hostID":2147418112,"size":65536}"#).is_ok());
        for (m, says) in [
            (
                r#"{"containerID":0,"hostID":4294967295,"size":1}"#,
                "uidMappings[0].hostID 4294967295",
            ),
            (
                r#"{"containerID":4294967295,"hostID":0,"size":1}"#,
                "uidMappings[0].containerID",
            ),
            (
                r#"{"containerID":2147483647,"hostID":0,"size":2}"#,
                "ends at 2147483648",
            ),
            (
                r#"{"containerID":0,"hostID":2147483647,"size":2}"#,
                "hostID 2147483647 with size 2",
            ),
            (r#"{"containerID":0,"hostID":0,"size":0}"#, "size is 0"),
        ] {
            let e = maps(m).unwrap_err().to_string();
            assert!(e.contains(says), "{m}: {e}");
        }
    }

    #[test]
    fn sysctls_need_their_namespace() {
        let ns = Namespaces::from_spec(&[]).unwrap();
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_err());
        assert!(check_sysctl("kernel.panic", &ns).is_err());
        let text = r#"{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
            "linux":{"namespaces":[{"type":"mount"},{"type":"network"},{"type":"ipc"}]}}"#;
        let s = parse_spec(text.as_bytes()).unwrap();
        let ns = validate(&s).unwrap();
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(check_sysctl("kernel.shmmax", &ns).is_ok());
        assert!(check_sysctl("vm.swappiness", &ns).is_err());
    }

    #[test]
    fn sysctls_in_joined_namespaces() {
        let joined = |path: &str| {
            let text = format!(
                r#"{{"ociVersion":"1.2.0","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
                "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"network","path":"{path}"}},
                {{"type":"ipc","path":"{}"}}]}}}}"#,
                path.replace("net", "ipc")
            );
            validate(&parse_spec(text.as_bytes()).unwrap()).unwrap()
        };
        // This process's own namespaces are "the host's" here.
        let own = joined("/proc/self/ns/net");
        let e = check_sysctl("net.ipv4.ip_forward", &own)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not allowed in host network namespace"), "{e}");
        let e = check_sysctl("kernel.shmmax", &own).unwrap_err().to_string();
        assert!(
            e.contains("is not allowed in the hosts ipc namespace"),
            "{e}"
        );
    }
}
