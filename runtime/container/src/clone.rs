//! Process creation primitives of the runtime: a fork-like clone(2), the
//! "for children only" namespaces (pid, time) entered around it, and waiting
//! for a process that is not our child.

use crate::error::{Context, Result};
use crate::namespaces::{self, Kind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// Enter "for children only" namespaces (pid, time) in the runtime itself
/// before cloning, and restore its own afterwards so later children (hooks)
/// run in the runtime's namespaces.
pub(crate) struct ForChildren {
    saved: Vec<(Kind, OwnedFd)>,
}

impl ForChildren {
    pub(crate) fn enter(joins: &[(Kind, OwnedFd)]) -> Result<ForChildren> {
        let mut saved = Vec::new();
        for (kind, fd) in joins.iter().filter(|(k, _)| k.affects_children_only()) {
            let own = namespaces::open_ns(
                Path::new(&format!("/proc/self/ns/{}", kind.proc_name())),
                *kind,
            )?;
            crate::debug!(
                "joining the {} namespace for the container's process",
                kind.oci_name()
            );
            namespaces::enter(fd, *kind)?;
            saved.push((*kind, own));
        }
        Ok(ForChildren { saved })
    }

    pub(crate) fn new_time_ns(&mut self, offsets: &[(String, i64, u32)]) -> Result<()> {
        let own = namespaces::open_ns(Path::new("/proc/self/ns/time"), Kind::Time)?;
        nix::sched::unshare(Kind::Time.flag()).ctx(|| "creating the time namespace")?;
        self.saved.push((Kind::Time, own));
        let text: String = offsets
            .iter()
            .map(|(clock, s, ns)| format!("{clock} {s} {ns}\n"))
            .collect();
        if !text.is_empty() {
            std::fs::write("/proc/self/timens_offsets", text)
                .ctx(|| "writing linux.timeOffsets")?;
        }
        Ok(())
    }

    pub(crate) fn restore(self) -> Result<()> {
        for (kind, fd) in &self.saved {
            namespaces::enter(fd, *kind).ctx(|| "restoring the runtime's own namespace")?;
        }
        Ok(())
    }
}

/// fork-like clone(2): returns 0 in the child, the child's pid in the parent.
///
/// # Safety
/// The caller must be single-threaded; the child must exec or _exit.
pub(crate) unsafe fn clone_process(flags: libc::c_int) -> Result<i32, nix::errno::Errno> {
    let r = libc::syscall(
        libc::SYS_clone,
        (flags | libc::SIGCHLD) as libc::c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    );
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(r as i32)
    }
}

pub(crate) fn wait_fd_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(p.as_mut_ptr(), 1, timeout.as_millis() as i32) > 0 }
}
