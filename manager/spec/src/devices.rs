//! Devices: the device cgroup rules every container gets, and the host's
//! device nodes that `--privileged` passes through.

use crate::SpecError;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// linux.resources.devices: deny everything, then allow the devices every
/// container has (containerd's default set, which nerdctl uses). The
/// runtime adds its own defaults after these, as runc does.
pub(crate) fn cgroup_rules(privileged: bool) -> Vec<Value> {
    if privileged {
        return vec![json!({"allow": true, "access": "rwm"})];
    }
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    let allow = |major: i64, minor: Option<i64>| {
        let mut r = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
        if let Some(minor) = minor {
            r["minor"] = json!(minor);
        }
        r
    };
    rules.extend([
        allow(1, Some(3)), // /dev/null
        allow(1, Some(8)), // /dev/random
        allow(1, Some(7)), // /dev/full
        allow(5, Some(0)), // /dev/tty
        allow(1, Some(5)), // /dev/zero
        allow(1, Some(9)), // /dev/urandom
        allow(5, Some(1)), // /dev/console
        allow(136, None),  // /dev/pts/*
        allow(5, Some(2)), // /dev/ptmx
    ]);
    rules
}

/// Directories of /dev that hold no device nodes of the host's own, or are
/// mounts the container gets anyway (as containerd skips them).
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// How deep /dev is walked; symlinks are never followed, so this only
/// bounds a pathological tree.
const MAX_DEPTH: usize = 8;

/// The character and block devices under `dir` (normally `/dev`), for
/// [`crate::RunOptions::host_devices`] of a `--privileged` container, as
/// docker and nerdctl give it all of the host's devices. `/dev/console` is
/// left out: the runtime sets it up for the container's terminal.
pub fn host_devices(dir: &Path) -> Result<Vec<LinuxDevice>, SpecError> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out)?;
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<LinuxDevice>) -> Result<(), SpecError> {
    let fail = |e: std::io::Error| SpecError::Host {
        path: dir.display().to_string(),
        problem: format!(
            "{e}: pass the host's device directory (normally /dev), readable by this process"
        ),
    };
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let path = entry.path();
        // Not following symlinks: lstat.
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Devices come and go (hotplug); a vanished entry is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = name.to_str().is_some_and(|n| SKIPPED_DIRS.contains(&n));
            if !skip && depth < MAX_DEPTH {
                walk(&path, depth + 1, out)?;
            }
            continue;
        }
        if name == "console" && depth == 0 {
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        let (major, minor) = split_dev(meta.rdev());
        let mut dev = LinuxDevice::default();
        dev.set_path(path);
        dev.set_typ(typ);
        dev.set_major(major);
        dev.set_minor(minor);
        dev.set_file_mode(Some(meta.mode() & 0o7777));
        dev.set_uid(Some(meta.uid()));
        dev.set_gid(Some(meta.gid()));
        out.push(dev);
    }
    Ok(())
}

/// glibc's major()/minor() for a 64-bit dev_t.
fn split_dev(dev: u64) -> (i64, i64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as i64, minor as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(split_dev(0x0103), (1, 3));
        assert_eq!(split_dev(0x8800), (136, 0));
        // glibc's makedev(): minor 65536 uses the high bits.
        let makedev = |major: u64, minor: u64| {
            ((major & 0xfff) << 8)
                | ((major & !0xfff) << 32)
                | (minor & 0xff)
                | ((minor & !0xff) << 12)
        };
        let dev = makedev(259, 65536);
        assert_eq!(split_dev(dev), (259, 65536));
    }

    #[test]
    fn host_devices_lists_dev_null() {
        let devs = host_devices(Path::new("/dev")).unwrap();
        let null = devs
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null");
        assert_eq!(
            (null.typ(), null.major(), null.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert!(!devs.iter().any(|d| d.path().starts_with("/dev/pts")));
        assert!(!devs.iter().any(|d| d.path() == Path::new("/dev/console")));
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let e = host_devices(Path::new("/nonexistent-dev"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading /nonexistent-dev on the host: "),
            "{e}"
        );
    }
}
