//! linux.seccomp in the runtime: compiled by the runtime before the
//! container's process exists (a bad profile fails `create` cleanly, with
//! nothing left behind), installed by the container's process as late as it
//! can, and for SCMP_ACT_NOTIFY the listener fd handed to the agent at
//! `listenerPath`, as the runtime spec defines.

use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use std::os::fd::OwnedFd;

/// A compiled filter, plus where its notification listener goes.
pub struct Seccomp {
    filter: hull_seccomp::Filter,
    listener: Option<Listener>,
}

struct Listener {
    /// Connected by the runtime: the path is the host's, not the container's.
    socket: OwnedFd,
    metadata: String,
}

fn seccomp_error(e: hull_seccomp::Error) -> Error {
    // hull-seccomp's messages start with "seccomp: ".
    Error::msg(format!("config.json: linux.{e}"))
}

impl Seccomp {
    /// Compile the container's profile; `None` when it has none.
    pub fn prepare(spec: &Spec) -> Result<Option<Seccomp>> {
        let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
            return Ok(None);
        };
        let compiled = hull_seccomp::compile(profile).map_err(seccomp_error)?;
        if !compiled.skipped_syscalls.is_empty() {
            crate::log::debug(format!(
                "seccomp: syscalls unknown on every architecture, skipped: {}",
                compiled.skipped_syscalls.join(", ")
            ));
        }
        hull_seccomp::check_flags(compiled.filter.flags).map_err(seccomp_error)?;
        let listener = if compiled.filter.needs_listener {
            let path = profile.listener_path().as_ref().ok_or_else(|| {
                Error::msg("linux.seccomp uses SCMP_ACT_NOTIFY but has no listenerPath: set it to the seccomp agent's unix socket")
            })?;
            Some(Listener {
                socket: crate::fdpass::connect(
                    path,
                    "seccomp agent socket (linux.seccomp.listenerPath)",
                )?,
                metadata: profile.listener_metadata().clone().unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(Some(Seccomp {
            filter: compiled.filter,
            listener,
        }))
    }

    /// Whether the listener needs the process's host pid (sent by the runtime).
    pub fn needs_host_pid(&self) -> bool {
        self.listener.is_some()
    }

    /// Load the filter into this process; with NOTIFY, send the listener fd
    /// and the container process state (`state` is the container's state JSON).
    pub fn install(&self, host_pid: i32, state: &str) -> Result<()> {
        let fd = hull_seccomp::install(&self.filter).map_err(seccomp_error)?;
        if let (Some(fd), Some(l)) = (fd, &self.listener) {
            let state: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
            let msg = serde_json::json!({
                "ociVersion": crate::spec::OCI_VERSION,
                "fds": ["seccompFd"],
                "pid": host_pid,
                "metadata": l.metadata,
                "state": state,
            });
            crate::fdpass::send_fd(&l.socket, &fd, &msg.to_string())
                .map_err(|e| e.context("handing the seccomp listener to listenerPath"))?;
        }
        Ok(())
    }
}
