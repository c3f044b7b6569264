//! Harness for hull's black-box integration tests.
//!
//! The tests drive any runc-compatible binary named by `HULL_BIN` (default:
//! `<target dir>/debug/hull` of this workspace) and check, from inside the
//! container, what a user would check. Each test owns a [`Runtime`] with a
//! private `--root` and scratch directory; dropping it deletes the test's
//! containers and files even when the test panics.
//!
//! Run as root, after building the runtime:
//!
//! ```text
//! cargo build -p hull && cargo test -p hull-integration
//! HULL_BIN=/usr/sbin/runc cargo test -p hull-integration   # validate the tests against runc
//! ```
//!
//! Checks where hull deliberately differs from runc 1.1 (stricter validation,
//! newer spec features, spec-conformant hook order) are gated with [`is_hull`].
//!
//! ```no_run
//! use hull_integration::Runtime;
//!
//! let Some(rt) = Runtime::new("example") else { return };
//! let mut bundle = rt.bundle();
//! bundle.sh("echo hello");
//! assert_eq!(rt.run_ok(&bundle).out(), "hello");
//! ```

pub mod bundle;
pub mod host;
pub mod hostile;
pub mod manager;
pub mod runtime;

use std::path::PathBuf;

pub use bundle::Bundle;
pub use runtime::{Output, Runtime};
pub use serde_json::{json, Value};

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace dir")
        .to_owned()
}

/// The runtime under test: `$HULL_BIN`, else `hull` in the cargo target dir
/// (`$CARGO_TARGET_DIR` if set, else `<workspace>/target`), debug profile.
pub fn runtime_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HULL_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace_dir().join(t))
        .unwrap_or_else(|| workspace_dir().join("target"));
    target.join("debug/hull")
}

/// False when the runtime under test is runc (`HULL_BIN` ends with "runc"):
/// used to gate checks of behaviour where hull is deliberately stricter than,
/// or ahead of, the runc release the tests are validated against.
pub fn is_hull() -> bool {
    !runtime_bin().to_string_lossy().ends_with("runc")
}

/// True when running as root. Otherwise: panics under CI (`CI` set), because a
/// silently skipped privileged suite is a broken suite there; elsewhere prints a
/// skip line and returns false.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("privileged test skipped in CI: the integration tests must run as root");
    }
    eprintln!("SKIP: integration test needs root");
    false
}

/// Prints a skip line for a check that does not apply to the runtime under test.
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason} (runtime: {})", runtime_bin().display());
}

/// Shell script printing `readlink /proc/self/ns/KIND` for each kind, one per line.
pub fn ns_links_script(kinds: &[&str]) -> String {
    kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect::<Vec<_>>()
        .join("; ")
}
