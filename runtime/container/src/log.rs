//! runc-compatible logging: `--log FILE`, `--log-format text|json`, `--debug`.
//!
//! containerd reads the last `"level":"error"` line of the log file and shows
//! its `msg` to users, so the JSON shape matches runc's logrus output exactly.
//! The runtime is single-threaded; the sink is a plain global.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Sink {
    /// The `--log` file.
    fd: Option<OwnedFd>,
    /// With `--debug` and no log file: a copy of stderr taken at start, so
    /// the init's lines keep going to the runtime's stderr after the
    /// container's terminal replaces its fd 2.
    stderr: Option<OwnedFd>,
    format: Format,
    min: Level,
    /// After [`close`]: the process is about to become the container's
    /// program, whose stderr is not the runtime's log.
    closed: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    fd: None,
    stderr: None,
    format: Format::Text,
    min: Level::Info,
    closed: false,
});

/// Send log lines to `path` (appending) or to stderr when `None`.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let fd = match path {
        Some(p) => Some(OwnedFd::from(
            OpenOptions::new().create(true).append(true).open(p)?,
        )),
        None => None,
    };
    let stderr = match (&fd, debug) {
        (None, true) => {
            // SAFETY: fcntl on fd 2; F_DUPFD_CLOEXEC returns a new descriptor.
            let copy = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
            // SAFETY: `copy` is that new descriptor, owned by nothing else.
            (copy >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(copy) })
        }
        _ => None,
    };
    let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    *s = Sink {
        fd,
        stderr,
        format,
        min: if debug { Level::Debug } else { Level::Info },
        closed: false,
    };
    Ok(())
}

/// Whether log lines go to a file (then errors are also printed plainly on stderr).
pub fn has_file() -> bool {
    SINK.lock().map(|s| s.fd.is_some()).unwrap_or(false)
}

/// Render one line in the configured format.
pub fn render(format: Format, level: Level, msg: &str, now: SystemTime) -> String {
    let time = crate::timefmt::rfc3339(now);
    match format {
        Format::Json => {
            let v = serde_json::json!({"level": level.as_str(), "msg": msg, "time": time});
            format!("{v}\n")
        }
        Format::Text => {
            let quoted = serde_json::to_string(msg).unwrap_or_default();
            format!("time=\"{time}\" level={} msg={quoted}\n", level.as_str())
        }
    }
}

pub fn log(level: Level, msg: &str) {
    let s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if level < s.min || s.closed {
        return;
    }
    let line = render(s.format, level, msg, SystemTime::now());
    let fd =
        s.fd.as_ref()
            .or(s.stderr.as_ref())
            .map(|f| f.as_raw_fd())
            .unwrap_or(2);
    // One write(2) per line so concurrent writers (init and parent) never interleave.
    let _ = nix::unistd::write(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        line.as_bytes(),
    );
}

/// Close the log file and stop logging (before exec'ing the container
/// process: its stderr must not get the runtime's lines either).
pub fn close() {
    if let Ok(mut s) = SINK.lock() {
        s.fd = None;
        s.stderr = None;
        s.closed = true;
    }
}

pub fn debug(msg: impl AsRef<str>) {
    log(Level::Debug, msg.as_ref());
}

/// Whether `--debug` is on (so callers can skip formatting otherwise).
pub fn debug_enabled() -> bool {
    SINK.lock()
        .map(|s| s.min <= Level::Debug && !s.closed)
        .unwrap_or(false)
}
pub fn warn(msg: impl AsRef<str>) {
    log(Level::Warning, msg.as_ref());
}
pub fn error(msg: impl AsRef<str>) {
    log(Level::Error, msg.as_ref());
}

/// A `--debug` line, formatted only when debug logging is on:
/// `debug!("joining {kind} namespace {}", path.display())`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::debug_enabled() {
            $crate::log::debug(format!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_lines_match_runc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_869_467);
        let line = render(
            Format::Json,
            Level::Error,
            "container \"x\" does not exist",
            t,
        );
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"container \\\"x\\\" does not exist\",\"time\":\"2026-11-28T12:37:47Z\"}\n"
        );
        let text = render(Format::Text, Level::Warning, "hook failed", t);
        assert_eq!(
            text,
            "time=\"2026-11-28T12:37:47Z\" level=warning msg=\"hook failed\"\n"
        );
    }
}
