//! config.json's mounts: the filesystems every container gets (as
//! containerd's default spec without /run, as nerdctl), the /etc files of
//! the network setup, then `-v` and `--tmpfs`.

use crate::{RunOptions, SpecError};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;

/// docker's and nerdctl's /dev/shm size.
pub(crate) const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// docker's `--tmpfs` defaults; the user's options override them.
const TMPFS_DEFAULTS: [&str; 3] = ["noexec", "nosuid", "nodev"];

/// One entry of config.json's `mounts`.
struct MountEntry {
    destination: String,
    typ: &'static str,
    source: String,
    options: Vec<String>,
}

impl MountEntry {
    fn new(destination: &str, typ: &'static str, source: &str, options: &[&str]) -> MountEntry {
        MountEntry {
            destination: destination.to_string(),
            typ,
            source: source.to_string(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "destination": self.destination,
            "type": self.typ,
            "source": self.source,
            "options": self.options,
        })
    }
}

/// All mounts, in the order the runtime performs them.
pub(crate) fn mounts(opts: &RunOptions) -> Result<Vec<Value>, SpecError> {
    // tmpfs reads size=0 as "no limit", the opposite of what 0 would ask for.
    if opts.shm_size == Some(0) {
        return Err(SpecError::invalid(
            "--shm-size",
            "0",
            "must be more than 0: give a size such as 64m",
        ));
    }
    let user = user_mounts(opts)?;
    let replaced: HashSet<&str> = user.iter().map(|m| m.destination.as_str()).collect();
    // A mount the user gives replaces the default at the same place, and a
    // user /dev replaces everything the defaults put under /dev (nerdctl).
    let mut all: Vec<MountEntry> = default_mounts(opts)
        .into_iter()
        .filter(|m| {
            let under_user_dev = replaced.contains("/dev") && m.destination.starts_with("/dev/");
            !replaced.contains(m.destination.as_str()) && !under_user_dev
        })
        .collect();
    all.extend(user);
    // Parents before children (docker and nerdctl sort by depth); stable, so
    // the order above holds between mounts of the same depth.
    all.sort_by_key(|m| m.destination.matches('/').count());
    Ok(all.iter().map(MountEntry::to_json).collect())
}

fn default_mounts(opts: &RunOptions) -> Vec<MountEntry> {
    let shm_size = format!(
        "size={}",
        size_option(opts.shm_size.unwrap_or(DEFAULT_SHM_SIZE))
    );
    // --privileged makes /sys and the cgroup tree writable (docker, containerd).
    let rw = if opts.privileged { "rw" } else { "ro" };
    vec![
        MountEntry::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        MountEntry::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        MountEntry::new(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
        MountEntry::new(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        MountEntry::new("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", rw]),
        MountEntry::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", rw],
        ),
    ]
}

/// tmpfs's size option: kibibytes when exact (as containerd writes it), else bytes.
fn size_option(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{}k", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// /etc files, volumes and tmpfs. A volume or tmpfs on an /etc file's path
/// replaces it (the user's wins, as in docker); two user mounts on one path
/// are an error.
fn user_mounts(opts: &RunOptions) -> Result<Vec<MountEntry>, SpecError> {
    let mut out = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for v in &opts.volumes {
        let destination = clean_destination(&v.container)
            .map_err(|p| SpecError::invalid("--volume", &v.container, p))?;
        if !v.host.is_absolute() {
            return Err(SpecError::invalid(
                "--volume",
                v.host.display().to_string(),
                "the host path must be absolute",
            ));
        }
        if !taken.insert(destination.clone()) {
            return Err(duplicate("--volume", &destination));
        }
        let mut options = vec!["rbind".to_string()];
        if v.read_only {
            options.push("ro".into());
        }
        options.push("rprivate".into());
        out.push(MountEntry {
            destination,
            typ: "bind",
            source: v.host.display().to_string(),
            options,
        });
    }
    for t in &opts.tmpfs {
        let destination =
            clean_destination(&t.path).map_err(|p| SpecError::invalid("--tmpfs", &t.path, p))?;
        if !taken.insert(destination.clone()) {
            return Err(duplicate("--tmpfs", &destination));
        }
        let options = merge_tmpfs_options(&t.options)
            .map_err(|p| SpecError::invalid("--tmpfs", t.options.join(","), p))?;
        out.push(MountEntry {
            destination,
            typ: "tmpfs",
            source: "tmpfs".into(),
            options,
        });
    }
    let etc = [
        ("/etc/hosts", &opts.etc_files.hosts),
        ("/etc/hostname", &opts.etc_files.hostname),
        ("/etc/resolv.conf", &opts.etc_files.resolv_conf),
    ];
    for (destination, source) in etc {
        let Some(source) = source else { continue };
        if taken.contains(destination) {
            continue;
        }
        check_host_file(destination, source)?;
        out.push(MountEntry::new(
            destination,
            "bind",
            &source.display().to_string(),
            &["bind", "rprivate"],
        ));
    }
    Ok(out)
}

fn duplicate(what: &'static str, destination: &str) -> SpecError {
    SpecError::invalid(
        what,
        destination,
        "duplicate mount point: another -v or --tmpfs already mounts there; give each path once",
    )
}

fn check_host_file(destination: &str, source: &Path) -> Result<(), SpecError> {
    if source.is_absolute() {
        return Ok(());
    }
    Err(SpecError::invalid(
        "etc file",
        source.display().to_string(),
        format!("the host file for {destination} must be an absolute path"),
    ))
}

/// A container path as docker accepts it: absolute, cleaned ("//", "." and
/// ".." resolved lexically), not "/" itself.
pub(crate) fn clean_destination(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "the container path {path:?} must be absolute (start with /)"
        ));
    }
    if path.contains('\0') {
        return Err("the container path contains a NUL byte".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the container path cannot be \"/\": mount on a directory below it".into());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The options a flag sets, grouped by what they control: of two options in
/// one group the later wins (`exec` after the default `noexec`).
const TMPFS_FLAG_GROUPS: &[&[&str]] = &[
    &["ro", "rw"],
    &["exec", "noexec"],
    &["suid", "nosuid"],
    &["dev", "nodev"],
    &["sync", "async"],
    &["dirsync"],
    &["atime", "noatime"],
    &["diratime", "nodiratime"],
    &["relatime", "norelatime"],
    &["strictatime", "nostrictatime"],
    &["mand", "nomand"],
    &[
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
    ],
];

/// tmpfs's own `key=value` options.
const TMPFS_DATA_KEYS: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// docker's defaults followed by the user's options, each setting kept once
/// (the last one given), in the order of their last appearance.
pub(crate) fn merge_tmpfs_options(user: &[String]) -> Result<Vec<String>, String> {
    let all: Vec<&str> = TMPFS_DEFAULTS
        .iter()
        .copied()
        .chain(user.iter().map(String::as_str))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut kept: Vec<&str> = Vec::new();
    for opt in all.iter().rev() {
        if *opt == "defaults" {
            continue;
        }
        let key = if let Some(group) = TMPFS_FLAG_GROUPS.iter().find(|g| g.contains(opt)) {
            group[0].to_string()
        } else if let Some((k, v)) = opt.split_once('=') {
            if !TMPFS_DATA_KEYS.contains(&k) || v.is_empty() {
                return Err(unknown_tmpfs_option(opt));
            }
            format!("{k}=")
        } else {
            return Err(unknown_tmpfs_option(opt));
        };
        if seen.insert(key) {
            kept.push(opt);
        }
    }
    Ok(kept.into_iter().rev().map(String::from).collect())
}

fn unknown_tmpfs_option(opt: &str) -> String {
    format!(
        "unknown tmpfs option {opt:?}: use mount flags (ro, rw, exec, noexec, suid, nosuid, dev, nodev, ...) \
         or KEY=VALUE with KEY one of {}",
        TMPFS_DATA_KEYS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clean_destination_is_lexical() {
        assert_eq!(clean_destination("/a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(clean_destination("/a/../b").unwrap(), "/b");
        assert_eq!(clean_destination("/../../etc").unwrap(), "/etc");
        assert!(clean_destination("/..").is_err());
        assert!(clean_destination("a").is_err());
        assert!(clean_destination("/a\0").is_err());
    }

    #[test]
    fn tmpfs_options_merge_like_docker() {
        assert_eq!(
            merge_tmpfs_options(&[]).unwrap(),
            ["noexec", "nosuid", "nodev"]
        );
        assert_eq!(
            merge_tmpfs_options(&strings(&["exec", "size=64m", "size=1g", "mode=1777"])).unwrap(),
            ["nosuid", "nodev", "exec", "size=1g", "mode=1777"]
        );
        assert_eq!(
            merge_tmpfs_options(&strings(&["defaults", "ro", "rw", "suid"])).unwrap(),
            ["noexec", "nodev", "rw", "suid"]
        );
        for bad in ["bogus", "size=", "colour=red", ""] {
            let e = merge_tmpfs_options(&strings(&[bad])).unwrap_err();
            assert!(
                e.starts_with(&format!("unknown tmpfs option {bad:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn size_option_prefers_kibibytes() {
        assert_eq!(size_option(64 << 20), "65536k");
        assert_eq!(size_option(1000), "1000");
    }
}
