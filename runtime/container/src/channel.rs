//! Typed messages between the runtime (parent) and the container's init or
//! exec'd process, over a SOCK_SEQPACKET socketpair: one datagram per message,
//! so no framing is needed, and EOF tells that the peer exited or exec'd
//! (both ends are close-on-exec).

use crate::error::{Context, Error, Result};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
    /// The container waits for `start` (or the exec'd process is about to
    /// exec). With a seccomp NOTIFY filter the init's listener fd comes with
    /// it (SCM_RIGHTS), for the runtime to hand to the agent.
    Ready,
    /// Setting up failed; the child exits after sending this.
    Failed(String),
}

/// Messages from the runtime to the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The child is in the container's cgroups: it may go on.
    CgroupJoined,
    IdsMapped,
    HooksDone,
    /// The init's pid (after `InitPid`) is in the state record: the
    /// intermediate process may exit and let the init go on.
    InitRecorded,
    /// The container's final record is saved: the init may wait for `start`.
    Committed,
    /// The child's pid in the runtime's pid namespace (for the seccomp
    /// agent), sent only when the child needs it.
    HostPid(i32),
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

    /// Send a message with a file descriptor attached.
    pub fn send_with_fd<T: Serialize>(&self, msg: &T, fd: &OwnedFd) -> Result<()> {
        let data =
            serde_json::to_vec(msg).map_err(|e| Error::msg(format!("encoding message: {e}")))?;
        let fds = [fd.as_raw_fd()];
        socket::sendmsg::<socket::UnixAddr>(
            self.fd.as_raw_fd(),
            &[std::io::IoSlice::new(&data)],
            &[socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(|| "sending to the runtime")?;
        Ok(())
    }

    /// Receive one message and the file descriptor sent with it, if any;
    /// `None` when the peer closed its end.
    pub fn recv_with_fd<T: DeserializeOwned>(&self) -> Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fd) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            match socket::recvmsg::<socket::UnixAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("receiving from the container process", e)),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().ctx(|| "reading control messages")? {
                        if let socket::ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the kernel installed these for us;
                                // any beyond the first are closed on drop.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::msg(format!("bad message from the container process: {e}")))?;
        Ok(Some((msg, fd)))
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

/// The child's view of the runtime: replies it waits for, and the host pid,
/// which can arrive before any of them.
pub struct Parent<'a> {
    ch: &'a Channel,
    host_pid: std::cell::Cell<Option<i32>>,
}

impl<'a> Parent<'a> {
    pub fn new(ch: &'a Channel) -> Self {
        Parent {
            ch,
            host_pid: std::cell::Cell::new(None),
        }
    }

    pub fn send(&self, msg: &ToParent) -> Result<()> {
        self.ch.send(msg)
    }

    pub fn send_with_fd(&self, msg: &ToParent, fd: &OwnedFd) -> Result<()> {
        self.ch.send_with_fd(msg, fd)
    }

    /// The next reply other than `HostPid`.
    pub fn expect(&self, what: &str) -> Result<ToChild> {
        loop {
            match self.ch.recv::<ToChild>()? {
                Some(ToChild::HostPid(p)) => self.host_pid.set(Some(p)),
                Some(m) => return Ok(m),
                None => {
                    return Err(Error::msg(format!(
                        "the runtime went away while the container waited for {what}"
                    )))
                }
            }
        }
    }

    pub fn host_pid(&self) -> Result<i32> {
        if let Some(p) = self.host_pid.get() {
            return Ok(p);
        }
        match self.ch.recv::<ToChild>()? {
            Some(ToChild::HostPid(p)) => {
                self.host_pid.set(Some(p));
                Ok(p)
            }
            Some(m) => Err(Error::msg(format!(
                "unexpected message {m:?} while waiting for the host pid"
            ))),
            None => Err(Error::msg(
                "the runtime went away while the container waited for its host pid",
            )),
        }
    }
}
