//! Hull's seccomp support: compiles the OCI runtime-spec `linux.seccomp`
//! section to a classic BPF program, and installs it.
//!
//! # Why our own compiler
//!
//! runc gets this from libseccomp, a C library; Hull is pure Rust and links
//! no C. The Rust-native option, the `seccompiler` crate (rust-vmm, 0.5),
//! was built for Firecracker's fixed jails and cannot express an OCI
//! profile:
//! * no NOTIFY action (`SECCOMP_RET_USER_NOTIF`) and no listener fd;
//! * one architecture per filter (x86_64, aarch64 or riscv64 only), so no
//!   compat ABIs — x86 and x32 beside x86_64, ARM beside aarch64 — which
//!   Docker-style profiles list;
//! * a filter has a single match action, while OCI gives every rule its own
//!   action and `errnoRet`, plus `defaultErrnoRet` and TRACE data;
//! * a fixed KILL_PROCESS for foreign architectures, no filter flags beyond
//!   TSYNC, and it always sets `no_new_privs`, which OCI controls separately.
//!
//! Compatibility with runc means compatibility with libseccomp's semantics
//! (rule merging, multiplexed socket/IPC calls, x32 handling). Those are
//! reproduced here and proven by `tests/differential.rs`, which compiles a
//! corpus with both and runs both programs in [`bpf::run`] over the same
//! inputs.
//!
//! Use: [`compile`] at create time (in the parent, where errors are easy to
//! report), [`install`] in the container init right before `execve`.

pub mod arch;
mod asm;
pub mod bpf;
mod compile;
mod install;
mod tables;
mod tree;

use std::fmt;
use std::io;

pub use arch::Arch;
pub use bpf::{Insn, SeccompData};
pub use compile::{compile, compile_for, Compiled, Filter, BAD_ARCH_ACTION};
pub use install::{check_actions, check_flags, install};

// Filter return values (linux/seccomp.h).
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

// seccomp(2) SECCOMP_SET_MODE_FILTER flags.
pub const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
pub const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// Everything that can go wrong compiling or installing a filter.
#[derive(Debug)]
pub enum Error {
    /// This binary's architecture has no syscall tables (use `compile_for`).
    UnsupportedNativeArch,
    /// `defaultAction` is SCMP_ACT_NOTIFY, which neither the kernel nor runc allows.
    NotifyAsDefault,
    /// `errnoRet`/`defaultErrnoRet` on an action that carries no data.
    ErrnoRetNotAllowed(oci_spec::runtime::LinuxSeccompAction),
    /// An argument index outside 0..=5.
    ArgIndex(usize),
    EmptySyscallName,
    /// Rules for one syscall that cannot be combined (libseccomp: EEXIST).
    Conflict { syscall: String, arch: Arch },
    /// The program exceeds the kernel's 4096-instruction limit.
    TooLong(usize),
    UnsupportedFlag(&'static str),
    UnknownFlags(u32),
    UnsupportedAction(&'static str),
    /// TSYNC failed: this thread id could not be synchronised.
    ThreadSync(libc::c_long),
    Install(io::Error),
    Internal(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedNativeArch => {
                write!(f, "seccomp: no syscall tables for {}", std::env::consts::ARCH)
            }
            Error::NotifyAsDefault => {
                f.write_str("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
            }
            Error::ErrnoRetNotAllowed(action) => {
                write!(f, "seccomp: errnoRet is not valid for action {action}")
            }
            Error::ArgIndex(i) => write!(f, "seccomp: argument index {i} out of range 0..=5"),
            Error::EmptySyscallName => f.write_str("seccomp: empty syscall name"),
            Error::Conflict { syscall, arch } => write!(
                f,
                "seccomp: conflicting rules for syscall {syscall} on {arch:?}: \
                 same conditions with different actions"
            ),
            Error::TooLong(n) => {
                write!(f, "seccomp: filter has {n} instructions, the kernel allows 4096")
            }
            Error::UnsupportedFlag(name) => {
                write!(f, "seccomp: the running kernel does not support {name}")
            }
            Error::UnknownFlags(bits) => write!(f, "seccomp: unknown filter flags {bits:#x}"),
            Error::UnsupportedAction(name) => {
                write!(f, "seccomp: the running kernel does not support {name}")
            }
            Error::ThreadSync(tid) => {
                write!(f, "seccomp: TSYNC failed, thread {tid} could not be synchronised")
            }
            Error::Install(e) => write!(f, "seccomp: installing filter: {e}"),
            Error::Internal(what) => write!(f, "seccomp: internal error: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Install(e) => Some(e),
            _ => None,
        }
    }
}
