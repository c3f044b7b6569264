//! linux.seccomp in the runtime: compiled by the runtime before the
//! container's process exists (a bad profile fails `create` cleanly, with
//! nothing left behind), installed by the container's process as late as it
//! can, and for SCMP_ACT_NOTIFY the listener fd handed to the agent at
//! `listenerPath`, as the runtime spec defines.
//!
//! When the filter goes in: right before execve (after `start`, the
//! startContainer hooks and the fd sweep), so nothing of hull's own runs
//! under it; with a NOTIFY listener at the end of `create` instead, because
//! the agent must have the listener before `start` (runc sends it during
//! create, and agents wait for it before they call start). The agent socket
//! is connected before the container's process exists, so an agent that
//! never accepts blocks `create` before anything is left to clean up.

use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use std::os::fd::OwnedFd;

/// A compiled filter, plus where its notification listener goes.
pub struct Seccomp {
    filter: hull_seccomp::Filter,
    agent: Option<Agent>,
}

/// The seccomp agent at `listenerPath`.
pub struct Agent {
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
        crate::debug!(
            "seccomp: profile compiled to {} BPF instructions (default action {}, listener: {})",
            compiled.filter.program.len(),
            serde_json::to_value(profile.default_action()).unwrap_or_default(),
            compiled.filter.needs_listener
        );
        if !compiled.skipped_syscalls.is_empty() {
            crate::log::debug(format!(
                "seccomp: syscalls unknown on every architecture, skipped: {}",
                compiled.skipped_syscalls.join(", ")
            ));
        }
        hull_seccomp::check_flags(compiled.filter.flags).map_err(seccomp_error)?;
        let agent = if compiled.filter.needs_listener {
            let path = profile.listener_path().as_ref().ok_or_else(|| {
                Error::msg("linux.seccomp uses SCMP_ACT_NOTIFY but has no listenerPath: set it to the seccomp agent's unix socket")
            })?;
            Some(Agent {
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
            agent,
        }))
    }

    /// Whether the filter has a NOTIFY listener for an agent.
    pub fn has_listener(&self) -> bool {
        self.filter.needs_listener
    }

    /// The agent, for the runtime to hand the init's listener to.
    pub fn take_agent(&mut self) -> Option<Agent> {
        self.agent.take()
    }

    /// Load the filter into this process; the listener fd with NOTIFY.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        hull_seccomp::install(&self.filter).map_err(seccomp_error)
    }

    /// Load the filter and, with NOTIFY, hand the listener to the agent
    /// (`state` is the container's state JSON, `host_pid` this process's).
    pub fn install(&self, host_pid: i32, state: &str) -> Result<()> {
        let fd = self.load()?;
        if let (Some(fd), Some(agent)) = (fd, &self.agent) {
            agent.hand_off(&fd, host_pid, state)?;
        }
        Ok(())
    }
}

impl Agent {
    /// Send the listener fd with the container process state, as the
    /// runtime spec defines the message.
    pub fn hand_off(&self, listener: &OwnedFd, host_pid: i32, state: &str) -> Result<()> {
        let state: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
        let msg = serde_json::json!({
            "ociVersion": crate::spec::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": host_pid,
            "metadata": self.metadata,
            "state": state,
        });
        crate::debug!("seccomp: handing the listener of process {host_pid} to the agent");
        crate::fdpass::send_fd(&self.socket, listener, &msg.to_string())
            .map_err(|e| e.context("handing the seccomp listener to listenerPath"))
    }
}
