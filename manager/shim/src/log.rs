//! The shim's own log: logfmt lines on stderr, which the long-running shim
//! points at the `log` FIFO containerd reads in the bundle (containerd copies
//! them into its own log). Writes never block: a full FIFO drops the line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

pub fn write(level: &str, msg: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!(
        "time={}.{:06} level={level} msg={:?} runtime=io.containerd.hull.v2\n",
        now.as_secs(),
        now.subsec_micros(),
        msg
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write("info", &format!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write("warning", &format!($($arg)*)) };
}
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::debug_enabled() {
            $crate::log::write("debug", &format!($($arg)*))
        }
    };
}
pub(crate) use {debug, info, warning};
