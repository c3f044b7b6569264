//! Typed messages between the runtime (parent) and the container's init or
//! exec'd process, over a SOCK_SEQPACKET socketpair: one datagram per message,
//! so no framing is needed, and EOF tells that the peer exited or exec'd
//! (both ends are close-on-exec).

use crate::error::{Context, Error, Result};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

/// Messages from the child to the runtime.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// A new user namespace exists: write its uid/gid maps, then reply `IdsMapped`.
    MapIds,
    /// The process that will become the container's init (after an
    /// intermediate fork for a pid namespace).
    InitPid(i32),
    /// Mounts are prepared: run prestart/createRuntime hooks, then reply `HooksDone`.
    RunHooks,
    /// The container waits for `start` (or the exec'd process is about to exec).
    Ready,
    /// Setting up failed; the child exits after sending this.
    Failed(String),
}

/// Messages from the runtime to the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    IdsMapped,
    HooksDone,
}

pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: (parent end, child end).
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ctx(|| "creating the runtime/init socketpair")?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<()> {
        let data =
            serde_json::to_vec(msg).map_err(|e| Error::msg(format!("encoding message: {e}")))?;
        socket::send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .ctx(|| "sending to the container process")?;
        Ok(())
    }

    /// Receive one message; `None` when the peer closed its end.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.ctx(|| "receiving from the container process")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::msg(format!("bad message from the container process: {e}")))
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}
