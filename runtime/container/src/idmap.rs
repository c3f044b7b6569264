//! Idmapped bind mounts (runtime-spec 1.2: `mounts[].uidMappings` and
//! `gidMappings`, the `idmap` and `ridmap` options): the source tree is
//! cloned detached (open_tree), given the ownership mapping of a user
//! namespace made for it (mount_setattr MOUNT_ATTR_IDMAP), then moved onto
//! the destination. The mappings are written to that namespace as the spec
//! says ("containerID hostID size"), so an owner on disk is read as a
//! containerID and shown as its hostID through the mount; a file created
//! through it by hostID is written to disk as containerID, and an owner
//! outside the mapping cannot create files there (EOVERFLOW), as in runc.
//!
//! The mapping's user namespace comes from a short-lived child that only
//! unshares one: hull writes its uid_map and gid_map, keeps a handle on the
//! namespace, and kills it. Without mappings on the mount, `idmap` uses the
//! container's own (linux.uidMappings/gidMappings). `ridmap` maps the whole
//! tree below the source, `idmap` the top mount only.
//!
//! The trees are made by the runtime's parent process before the container's
//! init exists, in the host's user and mount namespaces (mount_setattr with
//! MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the source's filesystem, which
//! an init in a user namespace of its own lacks), and the init inherits
//! them and only moves them into place, as runc does.

use crate::error::{Context, Error, Result};
use crate::mountopts::MountOptions;
use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// The container's own id mappings, for `idmap` without mappings of its
/// own.
#[derive(Debug, Clone, Default)]
pub struct ContainerMaps {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

/// What an idmapped bind mount needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
    pub recursive: bool,
}

/// The idmap of mount `m`, if it asks for one.
pub fn plan(
    m: &Mount,
    opts: &MountOptions,
    container: Option<&ContainerMaps>,
) -> Result<Option<Idmap>> {
    let dest = m.destination().display();
    let (uid, gid) = (m.uid_mappings().as_ref(), m.gid_mappings().as_ref());
    if uid.is_none() && gid.is_none() && opts.idmap.is_none() {
        return Ok(None);
    }
    if !opts.is_bind() {
        return Err(Error::msg(format!(
            "mount on {dest}: idmapped mounts (idmap, ridmap, uidMappings) are for bind mounts, not {:?}",
            m.typ().as_deref().unwrap_or("")
        )));
    }
    let (uid, gid) = match (uid, gid) {
        (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => (u.clone(), g.clone()),
        (None, None) => match container {
            Some(c) if !c.uid.is_empty() && !c.gid.is_empty() => (c.uid.clone(), c.gid.clone()),
            _ => {
                return Err(Error::msg(format!(
                    "mount on {dest}: \"idmap\" needs mappings: set the mount's uidMappings and gidMappings"
                )))
            }
        },
        _ => {
            return Err(Error::msg(format!(
                "mount on {dest}: uidMappings and gidMappings go together: give both, each non-empty"
            )))
        }
    };
    Ok(Some(Idmap {
        uid,
        gid,
        recursive: opts.idmap.unwrap_or(false),
    }))
}

/// "containerID hostID size" lines, as /proc/PID/uid_map takes them.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these mappings: a handle on /proc/PID/ns/user of a
/// child that unshared one and waits, its maps written from here (the
/// opener of uid_map must be privileged over the new namespace, so the
/// child cannot write them itself).
fn userns(map: &Idmap) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    let (done_r, done_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    // SAFETY: the init is single-threaded; the child only calls unshare,
    // write, read and _exit.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork for the idmap user namespace")? {
        nix::unistd::ForkResult::Child => {
            drop((ready_r, done_w));
            // Its pid as /proc (the host's, before pivot_root) knows it:
            // hull's init is pid 1 of a new pid namespace, its child 2.
            let reply = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
                Ok(()) => std::fs::read_link("/proc/self")
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            let _ = std::fs::File::from(ready_w).write_all(reply.as_bytes());
            let _ = std::fs::File::from(done_r).read(&mut [0u8]);
            // SAFETY: leave without running anything of the parent's.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop((ready_w, done_r));
            let result = (|| {
                let mut reply = String::new();
                std::fs::File::from(ready_r)
                    .take(32)
                    .read_to_string(&mut reply)
                    .ctx(|| "waiting for the idmap user namespace")?;
                let Ok(pid) = reply.parse::<u32>() else {
                    return Err(Error::msg(
                        "unshare(CLONE_NEWUSER) failed for the idmap (are user namespaces allowed?)",
                    ));
                };
                let proc = format!("/proc/{pid}");
                std::fs::write(format!("{proc}/uid_map"), map_text(&map.uid))
                    .ctx(|| "writing the mount's uidMappings")?;
                std::fs::write(format!("{proc}/gid_map"), map_text(&map.gid))
                    .ctx(|| "writing the mount's gidMappings")?;
                let ns = std::fs::File::open(format!("{proc}/ns/user"))
                    .ctx(|| "opening the idmap user namespace")?;
                Ok(OwnedFd::from(ns))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// The idmapped tree of every mount that asks for one, by mount index:
/// made here, in the runtime's parent process, for the init to attach.
/// Relative sources are taken from `bundle`.
pub fn prepare_all(
    mounts: &[Mount],
    container: &ContainerMaps,
    bundle: &Path,
) -> Result<Vec<Option<Arc<OwnedFd>>>> {
    let mut trees = Vec::with_capacity(mounts.len());
    for m in mounts {
        let opts = crate::mountopts::parse(m.options().as_deref().unwrap_or_default());
        let tree = match plan(m, &opts, Some(container))? {
            None => None,
            Some(map) => {
                let source = m.source().as_deref().ok_or_else(|| {
                    Error::msg(format!(
                        "mount on {}: an idmapped bind mount needs a source",
                        m.destination().display()
                    ))
                })?;
                let source = bundle.join(source);
                let tree = detached_tree(&source, &map).map_err(|e| {
                    e.context(format!("idmapped bind mount of {}", source.display()))
                })?;
                Some(Arc::new(tree))
            }
        };
        trees.push(tree);
    }
    Ok(trees)
}

/// A detached copy of the tree at `source` with `map`'s ownership mapping.
fn detached_tree(source: &Path, map: &Idmap) -> Result<OwnedFd> {
    let path = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::msg("NUL in a mount source"))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if map.recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree with a NUL-terminated path; returns an fd or -1.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if tree < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "open_tree");
    }
    // SAFETY: a new fd we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let ns = userns(map)?;
    crate::rootfs::mount_setattr_userns(&tree, map.recursive, MOUNT_ATTR_IDMAP, 0, ns.as_raw_fd() as u64)
        .map_err(|e| {
            e.context("giving the mount its id mapping (does the source's filesystem support idmapped mounts?)")
        })?;
    Ok(tree)
}

/// Move a tree from [`prepare_all`] onto `target` (an O_PATH fd of the
/// destination in the container's root).
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    // SAFETY: move_mount between two fds we hold, empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "move_mount onto the destination");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(json: &str) -> (Mount, MountOptions) {
        let m: Mount = serde_json::from_str(json).unwrap();
        let opts = crate::mountopts::parse(m.options().as_deref().unwrap_or_default());
        (m, opts)
    }

    #[test]
    fn plans_from_the_mount_or_the_container() {
        let (m, o) = mount(
            r#"{"destination":"/d","type":"bind","source":"/s","options":["rbind","ridmap"],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
                "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
        );
        let p = plan(&m, &o, None).unwrap().unwrap();
        assert!(p.recursive);
        assert_eq!(map_text(&p.uid), "0 1000 1\n");
        let (m, o) =
            mount(r#"{"destination":"/d","type":"bind","source":"/s","options":["bind"]}"#);
        assert_eq!(plan(&m, &o, None).unwrap(), None);
        let (m, o) =
            mount(r#"{"destination":"/d","type":"bind","source":"/s","options":["bind","idmap"]}"#);
        let err = plan(&m, &o, None).unwrap_err().to_string();
        assert!(err.contains("needs mappings"), "{err}");
        let (m, o) = mount(
            r#"{"destination":"/d","type":"bind","source":"/s","options":["bind"],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
        );
        let err = plan(&m, &o, None).unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
    }
}
