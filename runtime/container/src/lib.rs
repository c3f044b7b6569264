//! hull-container: the library behind the `hull` OCI runtime.
//!
//! The modules follow the life of a container: [`spec`] loads and validates
//! config.json, [`container`] drives create/start/kill/delete/exec from the
//! runtime's side, [`init`] is the container's side until the user program
//! runs, with [`namespaces`], [`rootfs`] (mounts, /dev, pivot_root),
//! [`process`] (user, limits, exec), [`console`], and [`hooks`].
//! [`state`] is what lives on disk between commands.

pub mod capabilities;
pub mod cgroup;
pub mod channel;
mod clone;
pub mod console;
pub mod container;
mod create;
pub mod criu;
pub mod error;
pub mod fdpass;
pub mod features;
pub mod forward;
mod fscontext;
pub mod hooks;
pub mod hostmounts;
pub mod id;
pub mod idmap;
pub mod init;
pub mod inroot;
pub mod log;
pub mod lsm;
pub mod mempolicy;
pub mod mountopts;
pub mod namespaces;
pub mod netdev;
pub mod personality;
pub mod process;
pub mod reexec;
pub mod rootfs;
pub mod runc_errors;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod spec_template;
mod startsock;
pub mod state;
pub use hull_timefmt as timefmt;
pub mod tmpcopyup;

pub use container::{Container, CreateOptions, ExecOptions};
pub use error::{Error, Result};
