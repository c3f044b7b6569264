//! The container side of `create`: what the cloned child does, from entering
//! its namespaces to waiting for `start` and exec'ing the user's program.
//!
//! The child is a clone of the runtime process (same memory, no re-exec: the
//! runtime already runs from a sealed memfd), so it reads its instructions
//! from [`InitContext`] directly and only talks to the parent for the steps
//! that need it: uid/gid maps, createRuntime hooks, and "ready".

use crate::channel::{Channel, Parent, ToChild, ToParent};
use crate::console;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Point};
use crate::namespaces::Kind;
use crate::process;
use crate::rootfs;
use crate::spec::Bundle;
use crate::state::{hook_state, Status};
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Everything the init process needs, prepared by the runtime before clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub plan: rootfs::Plan,
    /// The clone already created every new namespace; otherwise the child
    /// joins namespaces by path and unshares the rest itself.
    pub created_by_clone: bool,
    /// Namespaces to join by path (not pid/time, which the parent handles), in order.
    pub joins: Vec<(Kind, OwnedFd)>,
    pub console_socket: Option<OwnedFd>,
    /// Listening socket `start` connects to.
    pub start_listener: OwnedFd,
    /// Number of fds after stdio passed to the program.
    pub preserve_fds: i32,
    /// Give the container a session keyring of its own (not the caller's).
    pub new_keyring: bool,
    pub seccomp: Option<crate::seccomp::Seccomp>,
    /// The runtime's pid, to tell whether it died before the child armed
    /// its parent-death signal.
    pub runtime_pid: i32,
}

/// Entry point of the cloned child. Never returns.
pub fn child_main(ctx: &InitContext, ch: &Channel) -> ! {
    if let Err(e) = die_with_runtime(ctx.runtime_pid).and_then(|()| run(ctx, &Parent::new(ch))) {
        let _ = ch.send(&ToParent::Failed(e.to_string()));
    }
    // SAFETY: leaving the cloned child without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

/// While the init sets the container up, the runtime's child dies with the
/// runtime (PR_SET_PDEATHSIG), so a killed `create` leaves no init behind
/// even while the init is busy (a hook, a slow mount) rather than waiting on
/// the channel, whose EOF also ends it. The kernel clears the setting
/// whenever the process's credentials change, so it is armed again after the
/// change to the user namespace's root. Only for the runtime's direct child:
/// after an intermediate fork the parent is the intermediate process, which
/// exits.
fn die_with_runtime(runtime_pid: i32) -> Result<()> {
    // SAFETY: prctl on ourselves.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "setting the parent-death signal");
    }
    // The runtime may have died before the signal was armed. (In a new pid
    // namespace the parent reads as 0 and this cannot be told; the channel's
    // EOF ends the child at its next step then.)
    let parent = nix::unistd::getppid().as_raw();
    if parent != 0 && parent != runtime_pid {
        return Err(Error::msg(
            "the runtime exited while the container was created",
        ));
    }
    Ok(())
}

/// Disarm the parent-death signal before the program's own setup: the
/// container's seccomp filter may deny prctl from then on, and the signal
/// (unless a user switch clears it) would otherwise outlast `create`. What
/// follows only waits on the channel, whose EOF ends the init just as well.
fn stop_dying_with_runtime() -> Result<()> {
    // SAFETY: prctl on ourselves.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "clearing the parent-death signal");
    }
    Ok(())
}

/// The end of `create`: the runtime has saved the container's final record.
/// Until then the init must not wait for `start` (a runtime that died before
/// saving it would leave an init nobody finds); EOF here ends it instead.
fn wait_for_hand_off(ch: &Parent) -> Result<()> {
    match ch.expect("create to finish")? {
        ToChild::Committed => Ok(()),
        other => Err(Error::msg(format!(
            "unexpected message {other:?} while waiting for create to finish"
        ))),
    }
}

fn run(ctx: &InitContext, ch: &Parent) -> Result<()> {
    let ns = &ctx.bundle.namespaces;
    // Whether this process is the runtime's child (no intermediate fork).
    let mut direct = true;
    ch.expect("its cgroup")?;
    if !ctx.created_by_clone {
        for (kind, fd) in &ctx.joins {
            crate::debug!("init: joining the {} namespace", kind.oci_name());
            crate::namespaces::enter(fd, *kind)?;
        }
        crate::debug!("init: creating namespaces {:?}", ns.new_flags());
        if ns.is_new(Kind::User) {
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "creating the user namespace")?;
        }
    }
    if ns.is_new(Kind::User) {
        // An unprivileged runtime (rootless) can write this process's maps
        // only while its /proc files are its own: dumpable for that long.
        // Nothing of the container runs yet that could take advantage.
        let rootless = !nix::unistd::geteuid().is_root();
        if rootless {
            process::set_dumpable(true)?;
        }
        ch.send(&ToParent::MapIds)?;
        ch.expect("uid/gid maps")?;
        if rootless {
            process::set_dumpable(false)?;
        }
        become_userns_root()?;
        die_with_runtime(ctx.runtime_pid)?;
    }
    if !ctx.created_by_clone {
        let rest = ns.new_flags()
            - CloneFlags::CLONE_NEWUSER
            - CloneFlags::CLONE_NEWPID
            - Kind::Time.flag();
        nix::sched::unshare(rest).ctx(|| "creating the container's namespaces")?;
        if ns.is_new(Kind::Pid) {
            // unshare(CLONE_NEWPID) only moves children: the kernel needs one fork here.
            nix::sched::unshare(CloneFlags::CLONE_NEWPID).ctx(|| "creating the pid namespace")?;
            fork_into_pid_namespace(ch)?;
            direct = false;
        }
    }
    if ctx.created_by_clone && ns.is_new(Kind::Cgroup) {
        // Rooted at the container's cgroup, which this process is in now.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "creating the cgroup namespace")?;
    }
    init_container(ctx, ch, direct)
}

/// Fork the process that becomes the init, in the new pid namespace; returns
/// in the init only. The intermediate process stays until the runtime has
/// recorded the init's pid: until then the state names the intermediate, and
/// a `delete` after a killed create kills the container's cgroup (the init
/// with it) only while the recorded process lives. The init waits for the
/// intermediate's word that it was recorded; without it (the runtime died)
/// it exits.
fn fork_into_pid_namespace(ch: &Parent) -> Result<()> {
    let (recorded_r, recorded_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "creating a pipe")?;
    // SAFETY: single-threaded process; the child continues the setup.
    match unsafe { nix::unistd::fork() }.ctx(|| "forking into the pid namespace")? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(recorded_r);
            ch.send(&ToParent::InitPid(child.as_raw()))?;
            match ch.expect("the runtime to record the init's pid")? {
                ToChild::InitRecorded => {
                    let _ = nix::unistd::write(&recorded_w, b"r");
                }
                other => {
                    return Err(Error::msg(format!(
                        "unexpected message {other:?} while waiting for the init to be recorded"
                    )))
                }
            }
            // SAFETY: the intermediate process is done.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Child => {
            drop(recorded_w);
            let mut b = [0u8; 1];
            loop {
                match nix::unistd::read(recorded_r.as_raw_fd(), &mut b) {
                    Ok(1) => return Ok(()),
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => {
                        return Err(Error::msg(
                            "the runtime went away before it recorded the container's init",
                        ))
                    }
                }
            }
        }
    }
}

/// Act as root of the new user namespace (uid/gid 0 must be mapped).
fn become_userns_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "becoming gid 0 in the user namespace (map container gid 0)")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "becoming uid 0 in the user namespace (map container uid 0)")
}

fn init_container(ctx: &InitContext, ch: &Parent, direct: bool) -> Result<()> {
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("no process"))?;
    // Devices and mount points get exactly the modes the config asks for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("setting hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        // SAFETY: setdomainname reads len bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } < 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("setting domainname {d:?}"));
        }
    }
    if ctx.new_keyring {
        join_new_session_keyring(ctx.id)?;
    }
    if ctx.bundle.namespaces.is_new(Kind::Net) {
        bring_loopback_up()?;
    }
    crate::debug!("init: preparing the root filesystem");
    rootfs::prepare(spec, &ctx.plan)?;
    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if runtime_hooks {
        ch.send(&ToParent::RunHooks)?;
        ch.expect("createRuntime hooks")?;
    }
    let pid = nix::unistd::getpid().as_raw();
    let annotations = spec.annotations().clone().unwrap_or_default();
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        let state = hook_state(ctx.id, Status::Creating, pid, &ctx.bundle.dir, &annotations);
        // Without their own env: process.env, as the container's process has
        // it at this point (runc sets HOME later, with the user).
        hooks::run_all(
            Point::CreateContainer,
            list,
            &state,
            Some(&process::merged_env(process)),
        )?;
    }
    rootfs::enter(&ctx.plan.rootfs, ctx.plan.no_pivot, ctx.plan.host_mount_ns)?;
    if process.terminal().unwrap_or(false) {
        setup_terminal(ctx, process)?;
    }
    rootfs::apply_sysctl(spec)?;
    rootfs::finalize(spec)?;
    crate::personality::apply(spec)?;
    crate::mempolicy::apply(spec)?;
    if direct {
        stop_dying_with_runtime()?;
    }
    let keep_sys_admin = process::seccomp_needs_sys_admin(process, ctx.seccomp.is_some());
    let program = process::prepare(process, keep_sys_admin)?;
    crate::debug!(
        "init: will exec {} {:?}; waiting for start",
        program.exe.display(),
        program.args
    );
    let preserve = ctx.preserve_fds + process::listen_fds();
    match ctx.seccomp.as_ref().filter(|sc| sc.has_listener()) {
        Some(sc) => {
            // The agent needs the listener before `start`: the filter goes
            // in now, after everything of hull's own but waiting for start
            // (and the startContainer hooks).
            process::close_fds_on_exec(preserve)?;
            crate::debug!("init: loading the seccomp filter now (its listener goes to the agent)");
            crate::log::close();
            let listener = sc
                .load()?
                .ok_or_else(|| Error::msg("the seccomp filter gave no listener"))?;
            ch.send_with_fd(&ToParent::Ready, &listener)?;
        }
        None => ch.send(&ToParent::Ready)?,
    }
    wait_for_hand_off(ch)?;

    let conn = wait_for_start(&ctx.start_listener)?;
    crate::debug!("init: start received");
    let report = |e: Error| -> Result<()> {
        let _ = nix::unistd::write(&conn, e.to_string().as_bytes());
        Err(e)
    };
    if let Some(list) = hooks.and_then(|h| h.start_container().as_ref()) {
        let state = hook_state(ctx.id, Status::Created, pid, &ctx.bundle.dir, &annotations);
        if let Err(e) = hooks::run_all(Point::StartContainer, list, &state, Some(&program.env)) {
            return report(e);
        }
    }
    // The filter goes in last: nothing of hull's own runs under it (with a
    // listener it is in already, after the same sweep).
    if !ctx.seccomp.as_ref().is_some_and(|sc| sc.has_listener()) {
        if let Err(e) = process::close_fds_on_exec(preserve) {
            return report(e);
        }
        if ctx.seccomp.is_some() {
            crate::debug!("init: loading the seccomp filter");
        }
        crate::debug!("init: exec {}", program.exe.display());
        crate::log::close();
        if let Some(Err(e)) = ctx.seccomp.as_ref().map(|sc| sc.load()) {
            return report(e);
        }
    }
    // On success the start connection closes with exec (it is close-on-exec):
    // `start` reads EOF. On failure it reads the reason.
    report(process::exec(&program.exe, &program.args, &program.env))
}

/// A new network namespace starts with `lo` down; programs expect 127.0.0.1
/// to work (runc brings it up too).
fn bring_loopback_up() -> Result<()> {
    // SAFETY: a plain datagram socket used only for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "creating a socket to configure lo");
    }
    // SAFETY: we own the new descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "reading the flags of lo");
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "bringing up lo");
        }
    }
    Ok(())
}

/// A fresh session keyring, so the container cannot read the caller's keys.
fn join_new_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: keyctl reads the NUL-terminated name.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) } < 0 {
        let e = std::io::Error::last_os_error();
        // Kernels without keyrings, or a user namespace that may not create
        // one: the container then shares the session keyring, as with runc.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::EACCES | libc::EPERM | libc::EDQUOT)
        ) {
            return Err(e)
                .ctx(|| "creating the container's session keyring (--no-new-keyring skips it)");
        }
        crate::log::debug(format!("no session keyring of its own: {e}"));
    }
    Ok(())
}

fn setup_terminal(ctx: &InitContext, process: &oci_spec::runtime::Process) -> Result<()> {
    let sock = ctx
        .console_socket
        .as_ref()
        .ok_or_else(|| Error::msg("process.terminal is true but no --console-socket was given"))?;
    console::attach_terminal(process, sock, true)
}

/// Block until `start` connects and sends its byte.
fn wait_for_start(listener: &OwnedFd) -> Result<OwnedFd> {
    loop {
        // SAFETY: accept4 on our listening socket; new fd is close-on-exec.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).ctx(|| "waiting for `start`");
        }
        // SAFETY: accept4 returned a new descriptor.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut b = [0u8; 1];
        if matches!(nix::unistd::read(conn.as_raw_fd(), &mut b), Ok(1)) {
            return Ok(conn);
        }
    }
}
