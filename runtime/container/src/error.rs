//! One error type for the runtime library.
//!
//! Every error carries a sentence naming the object and what failed, so the
//! CLI can print it as-is on one line (and containerd can show it to users).

use std::fmt;

/// The runtime's error: a message that already names the object, plus the
/// underlying OS error when there was one.
#[derive(Debug)]
pub struct Error {
    msg: String,
    errno: Option<i32>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a complete message and no OS cause.
    pub fn msg(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            errno: None,
        }
    }

    /// An error caused by a failed system call.
    pub fn sys(what: impl fmt::Display, errno: nix::errno::Errno) -> Self {
        Error {
            msg: format!("{what}: {}", errno.desc().to_lowercase()),
            errno: Some(errno as i32),
        }
    }

    /// An I/O error with a description of what was being done.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        let errno = err.raw_os_error();
        let text = match errno {
            Some(e) => nix::errno::Errno::from_raw(e).desc().to_lowercase(),
            None => err.to_string(),
        };
        Error {
            msg: format!("{what}: {text}"),
            errno,
        }
    }

    /// The OS error number behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// Prefix the message with more context ("creating container x: ...").
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            msg: format!("{what}: {}", self.msg),
            errno: self.errno,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Attach a description to OS-level failures.
pub trait Context<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

/// Build an [`Error`] from a format string: `bail!("container {id} ...")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error::msg(format!($($arg)*))) };
}
