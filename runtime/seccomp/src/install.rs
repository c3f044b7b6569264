//! Loading a compiled filter into the kernel.
//!
//! Flags and actions the running kernel does not know are refused up front
//! with an error naming them, rather than silently dropped: a profile that
//! asks for TSYNC or NOTIFY relies on it, and the kernel's own answer
//! (a bare EINVAL for the whole call) would not say which part is missing.
//!
//! This does not set `no_new_privs`: OCI keeps that in
//! `process.noNewPrivileges`, and without it the caller needs
//! CAP_SYS_ADMIN in its user namespace, exactly as with runc.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::bpf::{Insn, BPF_K, BPF_RET};
use crate::{
    Error, Filter, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE, SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
/// Lets TSYNC and NEW_LISTENER be combined (Linux 5.7+).
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: u32 = 16;
/// The action part of a filter's return value.
const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;

const FLAG_NAMES: [(u32, &str); 5] = [
    (SECCOMP_FILTER_FLAG_TSYNC, "SECCOMP_FILTER_FLAG_TSYNC"),
    (SECCOMP_FILTER_FLAG_LOG, "SECCOMP_FILTER_FLAG_LOG"),
    (
        SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ),
    (
        SECCOMP_FILTER_FLAG_NEW_LISTENER,
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    ),
    (
        SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ),
];

const ACTION_NAMES: [(u32, &str); 8] = [
    (SECCOMP_RET_KILL_PROCESS, "SCMP_ACT_KILL_PROCESS"),
    (SECCOMP_RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD"),
    (SECCOMP_RET_TRAP, "SCMP_ACT_TRAP"),
    (SECCOMP_RET_ERRNO, "SCMP_ACT_ERRNO"),
    (SECCOMP_RET_USER_NOTIF, "SCMP_ACT_NOTIFY"),
    (SECCOMP_RET_TRACE, "SCMP_ACT_TRACE"),
    (SECCOMP_RET_LOG, "SCMP_ACT_LOG"),
    (crate::SECCOMP_RET_ALLOW, "SCMP_ACT_ALLOW"),
];

/// Installs `filter` on the calling thread (all threads with TSYNC).
/// Returns the notification listener when the filter uses NOTIFY.
///
/// Call it as late as possible before `execve`: every syscall after it is
/// filtered, including the runtime's own.
pub fn install(filter: &Filter) -> Result<Option<OwnedFd>, Error> {
    let mut flags = filter.flags;
    if filter.needs_listener {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    check_flags(flags)?;
    check_actions(&filter.program)?;
    if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 && flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    let rc = set_mode_filter(flags, &filter.program)?;
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        let fd = i32::try_from(rc).map_err(|_| Error::Internal("listener fd out of range"))?;
        // SAFETY: on success with NEW_LISTENER the kernel returns a fresh
        // file descriptor that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if rc > 0 {
        return Err(Error::ThreadSync(rc));
    }
    Ok(None)
}

/// Fails with the name of the first requested flag the kernel rejects.
pub fn check_flags(flags: u32) -> Result<(), Error> {
    for (bit, name) in FLAG_NAMES {
        if flags & bit != 0 && !flag_supported(bit) {
            return Err(Error::UnsupportedFlag(name));
        }
    }
    let known = FLAG_NAMES.iter().fold(0, |acc, (bit, _)| acc | bit);
    match flags & !known {
        0 => Ok(()),
        unknown => Err(Error::UnknownFlags(unknown)),
    }
}

/// Fails with the name of the first action in `program` the kernel lacks.
pub fn check_actions(program: &[Insn]) -> Result<(), Error> {
    let mut seen: Vec<u32> = Vec::new();
    for insn in program {
        if insn.code != BPF_RET | BPF_K {
            continue;
        }
        let action = insn.k & SECCOMP_RET_ACTION_FULL;
        if seen.contains(&action) {
            continue;
        }
        seen.push(action);
        if !action_available(action) {
            let name = ACTION_NAMES
                .iter()
                .find(|(a, _)| *a == action)
                .map_or("unknown action", |(_, n)| n);
            return Err(Error::UnsupportedAction(name));
        }
    }
    Ok(())
}

/// A flag is known when the kernel gets past flag validation and only then
/// trips over the deliberately missing program (EFAULT).
fn flag_supported(flag: u32) -> bool {
    // SAFETY: a null program pointer is never dereferenced by us; the
    // kernel validates it and fails with EFAULT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flag),
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

fn action_available(action: u32) -> bool {
    // SAFETY: the kernel reads one u32 through a pointer to a live local.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    rc == 0
}

fn set_mode_filter(flags: u32, program: &[Insn]) -> Result<libc::c_long, Error> {
    let len = u16::try_from(program.len()).map_err(|_| Error::TooLong(program.len()))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel copies the program and never writes through this.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, whose `Insn` has the layout of
    // `struct sock_filter` (repr(C): u16, u8, u8, u32); both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(Error::Install(io::Error::last_os_error()));
    }
    Ok(rc)
}
