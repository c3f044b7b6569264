//! The rootfs mounts of a CreateTaskRequest (a snapshotter's overlay or
//! bind mounts), mounted at BUNDLE/rootfs in order, as containerd's shim
//! does, and unmounted on delete. Options are split as containerd's
//! `mount.Mount`: known flag words become mount flags, the rest is data.

use std::path::Path;

use containerd_shim_protos::api::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// (word, flags to clear, flags to set)
const FLAG_WORDS: &[(&str, MsFlags, MsFlags)] = &[
    ("async", MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
    ("atime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("bind", MsFlags::empty(), MsFlags::MS_BIND),
    ("defaults", MsFlags::empty(), MsFlags::empty()),
    ("dev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("diratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("dirsync", MsFlags::empty(), MsFlags::MS_DIRSYNC),
    ("exec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("mand", MsFlags::empty(), MsFlags::MS_MANDLOCK),
    ("noatime", MsFlags::empty(), MsFlags::MS_NOATIME),
    ("nodev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("nodiratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("noexec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("nomand", MsFlags::MS_MANDLOCK, MsFlags::empty()),
    ("norelatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("nostrictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nosuid", MsFlags::empty(), MsFlags::MS_NOSUID),
    (
        "rbind",
        MsFlags::empty(),
        MsFlags::MS_BIND.union(MsFlags::MS_REC),
    ),
    ("relatime", MsFlags::empty(), MsFlags::MS_RELATIME),
    ("remount", MsFlags::empty(), MsFlags::MS_REMOUNT),
    ("ro", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("rw", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("strictatime", MsFlags::empty(), MsFlags::MS_STRICTATIME),
    ("suid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("sync", MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
];

/// Splits mount options into flags and the data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match FLAG_WORDS.iter().find(|(w, _, _)| w == o) {
            Some((_, clear, set)) => {
                flags.remove(*clear);
                flags.insert(*set);
            }
            None => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

/// Mounts `mounts` on `target` in order; on failure unmounts what it
/// mounted and says which mount failed.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            unmount_all(target);
            return Err(Error::Internal(format!(
                "mounting rootfs mount {} of {} (type {:?}, source {:?}) on {}: {e}",
                i + 1,
                mounts.len(),
                m.type_,
                m.source,
                target.display()
            )));
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> std::result::Result<(), String> {
    let (flags, data) = parse_options(&m.options);
    // Page-size limit of mount(2)'s data (a long overlay lowerdir list).
    if data.len() >= 4096 {
        return Err(format!(
            "mount options are {} bytes, over the kernel's 4095: use fewer layers",
            data.len()
        ));
    }
    let fstype = if flags.contains(MsFlags::MS_BIND) {
        None
    } else {
        Some(m.type_.as_str())
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    let base = flags & !(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT);
    mount(
        Some(m.source.as_str()),
        target,
        fstype,
        base | (flags & MsFlags::MS_RDONLY),
        data,
    )
    .map_err(|e| e.to_string())?;
    // A bind mount ignores MS_RDONLY (and the other per-mount flags) until
    // it is remounted.
    if flags.contains(MsFlags::MS_BIND) && !(flags - MsFlags::MS_BIND - MsFlags::MS_REC).is_empty()
    {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            (flags - MsFlags::MS_REC) | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(|e| format!("remounting bind mount with its flags: {e}"))?;
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (lazily if busy).
pub fn unmount_all(target: &Path) {
    for _ in 0..64 {
        match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EBUSY) => {
                let _ = umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
            }
            // EINVAL: nothing (more) is mounted there; ENOENT: no target.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "nosuid", "lowerdir=/a:/b", "upperdir=/u", "rw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
        let (flags, data) = parse_options(&["rbind".into(), "ro".into()]);
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert!(data.is_empty());
    }
}
