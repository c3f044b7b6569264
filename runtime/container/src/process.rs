//! The last steps before the container's program runs, shared by the init
//! process and by `exec`: resource limits, priorities, user switch, working
//! directory, environment, the fd sweep, and execve.

use crate::bail;
use crate::error::{Context, Error, Result};
use oci_spec::runtime::{
    IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType, Process,
};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// process.oomScoreAdj is inherited over clone, so the runtime sets it on
/// itself just before cloning (inside a user namespace /proc/self/oom_score_adj
/// belongs to an unmapped owner and cannot be written), then puts its own back.
pub struct OomScoreAdj {
    previous: Option<String>,
}

impl OomScoreAdj {
    pub fn set_for_children(p: &Process) -> Result<OomScoreAdj> {
        let Some(adj) = p.oom_score_adj() else {
            return Ok(OomScoreAdj { previous: None });
        };
        let previous = std::fs::read_to_string("/proc/self/oom_score_adj").ok();
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("setting process.oomScoreAdj {adj}"))?;
        Ok(OomScoreAdj { previous })
    }

    pub fn restore(self) {
        if let Some(prev) = self.previous {
            let _ = std::fs::write("/proc/self/oom_score_adj", prev.trim());
        }
    }
}

/// Settings that need privileges the user switch may drop: rlimits (raising
/// hard limits), I/O priority and scheduler.
pub fn apply_privileged(p: &Process) -> Result<()> {
    for r in p.rlimits().as_deref().unwrap_or_default() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the struct.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()) as _, &lim) } < 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("setting rlimit {} to {}/{}", r.typ(), r.soft(), r.hard()));
        }
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        if !(0..=7).contains(&io.priority()) {
            bail!(
                "process.ioPriority.priority {} is out of range 0-7",
                io.priority()
            );
        }
        let value = (class << 13) | io.priority();
        // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, self, value).
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "setting process.ioPriority");
        }
    }
    if let Some(s) = p.scheduler() {
        set_scheduler(s)?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn set_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let flags = s
        .flags()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .fold(0u64, |acc, f| {
            acc | match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            }
        });
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr(self, attr, 0) reads `size` bytes of attr.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("setting process.scheduler {}", s.policy()));
    }
    Ok(())
}

/// Switch to the process's uid/gid and supplementary groups.
pub fn switch_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    let gid = nix::unistd::Gid::from_raw(u.gid());
    let uid = nix::unistd::Uid::from_raw(u.uid());
    if setgroups_allowed {
        let groups: Vec<nix::unistd::Gid> = u
            .additional_gids()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups).ctx(|| "setting additional groups")?;
    } else if u.additional_gids().as_ref().is_some_and(|g| !g.is_empty()) {
        bail!(
            "process.user.additionalGids cannot be set: setgroups is denied in this user namespace"
        );
    }
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setting gid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setting uid {uid}"))?;
    Ok(())
}

/// process.env with each variable set in turn: a later entry replaces an
/// earlier one of the same name in its place (so `exec --env K=V`, appended,
/// overrides the config's K), as runc's init builds it. Entries are checked
/// by [`check_env`] before the process exists.
pub fn merged_env(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for entry in p.env().as_deref().unwrap_or_default() {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        match index.get(key) {
            Some(&i) => env[i] = entry.clone(),
            None => {
                index.insert(key, env.len());
                env.push(entry.clone());
            }
        }
    }
    env
}

/// The environment for execve: [`merged_env`], plus HOME from /etc/passwd
/// when unset.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env = merged_env(p);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(p.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Every environment entry must be KEY=VALUE with a non-empty KEY and no
/// NUL byte; `what` names the list in errors ("process.env", "--env").
pub fn check_env(entries: &[String], what: &str) -> Result<()> {
    for entry in entries {
        match entry.split_once('=') {
            None => bail!(
                "invalid environment variable {entry:?} in {what}: missing '=' (use KEY=VALUE)"
            ),
            Some(("", _)) => {
                bail!("invalid environment variable {entry:?} in {what}: the name is empty")
            }
            Some(_) if entry.contains('\0') => {
                bail!("invalid environment variable {entry:?} in {what}: it contains a NUL byte")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn home_of(uid: u32) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // The image's /etc/passwd could be a FIFO or a device meant to hang or
    // flood the runtime: read only a regular file, and only so much of it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/etc/passwd")
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut passwd = String::new();
    file.take(4 << 20).read_to_string(&mut passwd).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Find the program the way a shell would: `args[0]` as a path if it has a
/// slash, otherwise in the PATH of the container's environment.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        if is_exec(Path::new(name)) {
            return Ok(PathBuf::from(name));
        }
        let why = if Path::new(name).exists() {
            "permission denied"
        } else {
            "no such file or directory"
        };
        bail!("exec: {name:?}: {why}");
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if is_exec(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("exec: {name:?}: executable file not found in $PATH")
}

fn cstrings<S: AsRef<str>>(items: &[S]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_ref())
                .map_err(|_| Error::msg(format!("{:?} contains a NUL byte", s.as_ref())))
        })
        .collect()
}

/// Close every fd the caller leaked to hull (not stdio, not the `preserve`
/// fds after it), before hull opens any of its own. Marking them
/// close-on-exec is not enough: until execve they stay usable for path
/// lookups such as a cwd of /proc/self/fd/N (CVE-2024-21626).
pub fn close_inherited_fds(preserve: i32) -> Result<()> {
    // SAFETY: close_range on fds this process has not opened itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "closing inherited file descriptors");
    }
    Ok(())
}

/// The number of fds after stdio that socket activation passes on.
pub fn listen_fds() -> i32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(0)
}

/// Mark every fd from `3 + preserve` upwards close-on-exec, so nothing but
/// stdio and the preserved fds reaches the container (CVE-2024-21626).
pub fn close_fds_on_exec(preserve: i32) -> Result<()> {
    for fd in 3..3 + preserve {
        // SAFETY: F_SETFD on a number; errors for closed fds are ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with the CLOEXEC flag only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "marking inherited fds close-on-exec");
    }
    Ok(())
}

/// The container's program, resolved and ready for execve.
pub struct Program {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// Everything between "inside the container's namespaces and root" and
/// execve, shared by init and exec: limits and priorities, capabilities
/// around the user switch, umask and cwd, no_new_privs, and the program's
/// lookup in the container's PATH.
///
/// The seccomp filter is not loaded here: the caller loads it right before
/// execve, so that nothing of the runtime's own (waiting for `start`,
/// hooks, the fd sweep) runs under the container's profile. Without
/// no_new_privs loading it needs CAP_SYS_ADMIN, which `keep_sys_admin`
/// keeps (effective and permitted) until then; execve drops it.
pub fn prepare(p: &Process, keep_sys_admin: bool) -> Result<Program> {
    apply_privileged(p)?;
    let capabilities = crate::capabilities::CapabilityPlan::from_process(p)?;
    // Without a capabilities section a switch to another root keeps all.
    let to_non_root = p.user().uid() != 0;
    match &capabilities {
        Some(c) => c.before_user_switch()?,
        None if keep_sys_admin && to_non_root => crate::capabilities::keep_across_user_switch()?,
        None => {}
    }
    crate::debug!(
        "switching to uid {} gid {} (additional gids {:?}); capabilities {}",
        p.user().uid(),
        p.user().gid(),
        p.user().additional_gids().as_deref().unwrap_or_default(),
        if capabilities.is_some() {
            "from the config"
        } else {
            "kept"
        }
    );
    switch_user(p, setgroups_allowed())?;
    match &capabilities {
        Some(c) => c.after_user_switch(keep_sys_admin)?,
        None if keep_sys_admin && to_non_root => crate::capabilities::keep_sys_admin_only()?,
        None => {}
    }
    umask_and_cwd(p)?;
    if p.no_new_privileges().unwrap_or(false) {
        set_no_new_privs()?;
    }
    let env = environment(p);
    let args = p.args().clone().unwrap_or_default();
    let Some(name) = args.first() else {
        bail!("process.args is empty: nothing to run");
    };
    let exe = find_executable(name, &env)?;
    crate::lsm::apply_on_exec(p)?;
    Ok(Program { exe, args, env })
}

/// Whether loading the seccomp filter needs CAP_SYS_ADMIN (no no_new_privs).
pub fn seccomp_needs_sys_admin(p: &Process, has_seccomp: bool) -> bool {
    has_seccomp && !p.no_new_privileges().unwrap_or(false)
}

/// Whether this process may call setgroups (not in a rootless user namespace).
fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

/// Replace this process with the container's program. Returns only on error.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let Ok(cpath) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return Error::msg("executable path contains a NUL byte");
    };
    let (argv, envp) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    default_signals();
    let err = nix::unistd::execve(&cpath, &argv, &envp).unwrap_err();
    Error::sys(format!("exec: {:?}", args[0]), err)
}

/// The signal state a program expects at start: nothing blocked, SIGPIPE
/// at its default (Rust's runtime ignores it in hull itself, and execve
/// keeps ignored signals ignored), and the C library's internal signals
/// (32 and 33 in glibc) at theirs: glibc's posix_spawn, which a threaded
/// shim uses to run hull, leaves them ignored. Other ignored signals are
/// the caller's choice and pass on, as in runc.
fn default_signals() {
    unblock_signals();
    // SAFETY: SIG_DFL installs no handler; nothing runs between this and
    // execve that relies on SIGPIPE being ignored.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    // The kernel's struct sigaction (x86_64 and arm64 both have a
    // restorer field); libc's sigaction() refuses its internal signals.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::c_ulong,
        flags: libc::c_ulong,
        restorer: libc::c_ulong,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL as libc::c_ulong,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 32..libc::SIGRTMIN() {
        // SAFETY: rt_sigaction with a valid struct and no old action.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Unblock every signal. A shim that reads its signals from a signalfd
/// runs hull with them blocked (posix_spawn keeps the mask, and so does
/// execve): they are not hull's to keep blocked, nor its hooks' or the
/// container's.
pub fn unblock_signals() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Apply process.user.umask (default 022) and process.cwd.
pub fn umask_and_cwd(p: &Process) -> Result<()> {
    let mask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    nix::unistd::chdir(p.cwd()).ctx(|| format!("chdir to process.cwd {}", p.cwd().display()))?;
    // A cwd reached through a magic link (/proc/self/fd/N) can lie outside
    // the container's root; the kernel then reports it unreachable.
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        _ => Err(Error::msg(format!(
            "process.cwd {} is outside the container's root filesystem",
            p.cwd().display()
        ))),
    }
}

/// Make this process (and what it clones) non-dumpable until execve: a
/// process already inside the container must not ptrace or open /proc/PID/
/// files of the runtime's child while it still holds host resources
/// (CVE-2016-9962). execve of the container's program resets it.
/// PR_SET_DUMPABLE for this process.
pub fn set_dumpable(dumpable: bool) -> Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0 or 1).
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "changing whether hull is dumpable");
    }
    Ok(())
}

pub fn set_non_dumpable() -> Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0).
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "making the runtime non-dumpable");
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "setting no_new_privs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).is_ok());
        let e = find_executable("no-such-program-hull", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "exec: \"no-such-program-hull\": executable file not found in $PATH"
        );
        assert!(find_executable("/nonexistent/x", &env).is_err());
    }

    #[test]
    fn later_env_entries_replace_earlier_ones_in_place() {
        let mut p = Process::default();
        p.set_env(Some(
            ["A=1", "B=2", "A=3", "HOME=/h", "C=", "B=4"]
                .map(String::from)
                .to_vec(),
        ));
        assert_eq!(environment(&p), ["A=3", "B=4", "HOME=/h", "C="]);
    }

    #[test]
    fn env_entries_need_a_name_and_equals() {
        let ok = ["A=1", "B=", "C==x"].map(String::from);
        assert!(check_env(&ok, "process.env").is_ok());
        for bad in ["NOEQ", "=x"] {
            let e = check_env(&[bad.to_string()], "--env")
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) && e.contains("--env"), "{e}");
        }
    }
}
