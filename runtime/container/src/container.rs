//! The runtime side of every lifecycle command: `Container::create`, `start`,
//! `kill`, `delete`, `exec`, and state queries.
//!
//! Process model: the runtime (already running from a sealed memfd copy)
//! clones the container's init directly into its new namespaces. Only when a
//! namespace is joined by path while a new pid namespace is wanted does the
//! child fork once more, because the kernel puts only *children* into a pid
//! namespace. Runtime and init talk over a SOCK_SEQPACKET pair with typed
//! messages ([`crate::channel`]); [`crate::create`] holds that side of
//! `create`. `create` returns once init is ready; init then blocks on a unix
//! socket in the state directory until `start` connects.

use crate::bail;
use crate::cgroup::ContainerCgroup;
use crate::channel::{Channel, ToChild, ToParent};
use crate::clone::{clone_process, wait_fd_readable, ForChildren};
use crate::create::{spawn_init, HostSide, Spawned};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Point};
use crate::namespaces::{self, Kind};
use crate::runc_errors;
use crate::spec::Bundle;
use crate::startsock::connect_in_dir;
use crate::state::{self, hook_state, OciState, Record, StateDir, Status};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name` for systemd.
    pub systemd_cgroup: bool,
    /// The caller waits for the container (foreground `run`): become a child
    /// subreaper so the init is ours to reap even after an intermediate fork.
    pub foreground: bool,
}

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: i32,
    /// `--cgroup`: sub-cgroups of the container's to run the process in.
    pub cgroup: Vec<crate::cgroup::SubCgroup>,
}

/// A container known to the runtime: its state directory and record.
pub struct Container {
    pub dir: StateDir,
    pub record: Record,
    /// Opened on first use (reading the host's cgroup layout costs a few
    /// /proc reads), then shared by status, kill and delete.
    cgroup: std::cell::OnceCell<Option<ContainerCgroup>>,
}

/// Make a path absolute against the caller's working directory (before the
/// runtime changes its own).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx(|| format!("path {}", p.display()))
}

impl Container {
    fn new(dir: StateDir, record: Record) -> Container {
        Container {
            dir,
            record,
            cgroup: std::cell::OnceCell::new(),
        }
    }

    /// Load an existing container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = StateDir::new(root, id)?;
        let record = dir.load(id)?;
        Ok(Container::new(dir, record))
    }

    /// The config the container was created from.
    pub fn config(&self) -> Result<Spec> {
        self.dir.load_config()
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn status(&self) -> Status {
        let status = self.record.status(&self.dir);
        let frozen = || {
            self.cgroup()
                .and_then(|c| c.manager().state().ok())
                .is_some_and(|s| s == hull_cgroups::FreezerState::Frozen)
        };
        // A frozen container is paused whether or not it was started, as
        // runc reports it.
        if matches!(status, Status::Running | Status::Created) && frozen() {
            return Status::Paused;
        }
        status
    }

    /// The container's cgroups (containers from before cgroups have none).
    pub fn cgroup(&self) -> Option<&ContainerCgroup> {
        self.cgroup
            .get_or_init(|| {
                let paths = self.record.cgroup.as_ref()?;
                ContainerCgroup::open(paths)
                    .map_err(|e| crate::log::warn(format!("container {:?}: {e}", self.id())))
                    .ok()
            })
            .as_ref()
    }

    /// `pause`: freeze every process of the container.
    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Running | Status::Created => {}
            s => bail!(
                "cannot pause container {:?}: {} (it is {s})",
                self.id(),
                runc_errors::NOT_RUNNING
            ),
        }
        let cg = self.cgroup().ok_or_else(|| {
            Error::msg(format!(
                "container {:?} has no cgroups to freeze",
                self.id()
            ))
        })?;
        cg.manager()
            .freeze()
            .map_err(|e| Error::msg(format!("pausing container {:?}: {e}", self.id())))
    }

    /// `resume`: thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            bail!(
                "cannot resume container {:?}: {} (it is {status})",
                self.id(),
                runc_errors::NOT_PAUSED
            );
        }
        let cg = self
            .cgroup()
            .ok_or_else(|| Error::msg(format!("container {:?} has no cgroups", self.id())))?;
        cg.manager()
            .thaw()
            .map_err(|e| Error::msg(format!("resuming container {:?}: {e}", self.id())))
    }

    /// `update`: change the resource limits of a live container.
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        if self.status() == Status::Stopped {
            bail!(
                "cannot update container {:?}: {} (it has stopped)",
                self.id(),
                runc_errors::NOT_RUNNING
            );
        }
        let cg = self
            .cgroup()
            .ok_or_else(|| Error::msg(format!("container {:?} has no cgroups", self.id())))?;
        cg.set(resources)
    }

    pub fn oci_state(&self) -> OciState {
        self.record.oci_state(self.status(), String::new())
    }

    /// Create a container from a bundle; on return its init waits for `start`.
    /// On failure nothing is left behind: no state directory, process or pid file.
    pub fn create(root: &Path, id: &str, opts: &CreateOptions) -> Result<Container> {
        let dir = StateDir::new(root, id)?;
        // Checked again when the directory is made; this early check gives
        // runc's error before the cgroups (likely the existing container's)
        // are looked at.
        if dir.dir.exists() {
            return Err(state::already_exists(id));
        }
        let bundle = Bundle::load(&opts.bundle)?;
        let process = bundle
            .spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::msg("no process"))?;
        let terminal = process.terminal().unwrap_or(false);
        if terminal && opts.console_socket.is_none() {
            bail!("process.terminal is true in config.json: pass --console-socket to receive the terminal, or set terminal to false");
        }
        if !terminal && opts.console_socket.is_some() {
            bail!("--console-socket was given but process.terminal is false in config.json: set it to true or drop the flag");
        }
        let pid_file = opts.pid_file.as_deref().map(absolute).transpose()?;
        let console_socket = opts
            .console_socket
            .as_deref()
            .map(|p| crate::fdpass::connect(p, "console socket"))
            .transpose()?;
        let wants_cgroup_mount = bundle
            .spec
            .mounts()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")));
        let cgroup = ContainerCgroup::plan(&bundle.spec, id, opts.systemd_cgroup)?;
        cgroup.check_unused()?;
        let host_side = HostSide {
            console_socket,
            cgroup_binds: if wants_cgroup_mount {
                cgroup.binds()
            } else {
                Vec::new()
            },
            cgroup,
            seccomp: crate::seccomp::Seccomp::prepare(&bundle.spec)?,
            host_rootfs: if bundle.namespaces.has(Kind::Mount) {
                None
            } else {
                Some(crate::hostmounts::HostRootfs::before_create(
                    &bundle.rootfs,
                )?)
            },
        };
        dir.create(root, id)?;
        let mut spawned = Spawned::default();
        match spawn_init(id, &dir, &bundle, opts, host_side, &mut spawned) {
            Ok(record) => {
                if let Some(p) = &pid_file {
                    if let Err(e) = state::write_atomic(p, record.pid.to_string().as_bytes()) {
                        spawned.abort(&dir);
                        return Err(e);
                    }
                }
                // Hand over the cgroups already open: start and delete need them.
                let container = Container::new(dir, record);
                let _ = container.cgroup.set(spawned.cgroup.take());
                Ok(container)
            }
            Err(e) => {
                spawned.abort(&dir);
                Err(e)
            }
        }
    }

    /// Let the created container run its program.
    pub fn start(&self) -> Result<()> {
        // Concurrent starts take turns: one starts the container, the
        // others then find it running (or stopped) and say so, as runc does,
        // instead of finding the init's socket gone mid-way.
        let _turn = self.dir.lock()?;
        match self.status() {
            Status::Created => {}
            Status::Stopped => bail!(
                "cannot start a container that has stopped ({:?}): delete it and create it again",
                self.id()
            ),
            Status::Running => {
                bail!("cannot start an already running container {:?}", self.id())
            }
            Status::Paused => bail!(
                "cannot start a container in the paused state ({:?}): resume it (and start it if it was never started)",
                self.id()
            ),
            Status::Creating => bail!("container {:?} is still being created", self.id()),
        }
        crate::debug!("start {}: signalling init {}", self.id(), self.record.pid);
        let conn = connect_in_dir(&self.dir.dir, state::START_SOCKET)?;
        nix::unistd::write(&conn, b"s").ctx(|| format!("starting container {:?}", self.id()))?;
        let mut reason = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(conn.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => reason.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waiting for the container to start", e)),
            }
        }
        let _ = std::fs::remove_file(self.dir.start_socket());
        if !reason.is_empty() {
            bail!(
                "container {:?} failed to start: {}",
                self.id(),
                String::from_utf8_lossy(&reason)
            );
        }
        self.run_hooks_after_create(Point::Poststart, Status::Running);
        Ok(())
    }

    /// poststart and poststop hooks: by the runtime spec a failure there is
    /// only a warning, and the lifecycle goes on.
    fn run_hooks_after_create(&self, point: Point, status: Status) {
        let Some(h) = self.record.hooks.as_ref() else {
            return;
        };
        let list = match point {
            Point::Poststart => h.poststart(),
            _ => h.poststop(),
        };
        if let Some(list) = list.as_ref() {
            if let Err(e) = hooks::run_all(point, list, &self.hook_state(status), None) {
                crate::log::warn(e.to_string());
            }
        }
    }

    fn hook_state(&self, status: Status) -> String {
        hook_state(
            self.id(),
            status,
            self.record.pid,
            &self.record.bundle,
            &self.record.annotations,
        )
    }

    /// Send a signal to the init process, or to every process with `all`.
    /// Signal 0 only checks that the init is alive. As with runc: a stopped
    /// container fails with runc's "container not running" (which
    /// containerd reads as "already exited"), except with `all`, which has
    /// nothing left to signal and succeeds; SIGKILL thaws a paused container,
    /// whose frozen processes would otherwise not die until resumed.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        let sig = Signal::try_from(signal).ok();
        crate::debug!(
            "kill {}: signal {signal} to {} ({status})",
            self.id(),
            if all {
                "every process".to_string()
            } else {
                format!("init {}", self.record.pid)
            }
        );
        if all {
            return self.kill_all(status, signal, sig);
        }
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            bail!(
                "cannot signal container {:?}: {} (it is {status})",
                self.id(),
                runc_errors::NOT_RUNNING
            );
        }
        let pid = self.record.pid;
        match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
            Ok(()) => {}
            Err(nix::errno::Errno::ESRCH) => bail!(
                "cannot signal container {:?}: {} (its init {pid} has exited)",
                self.id(),
                runc_errors::NOT_RUNNING
            ),
            Err(e) => {
                return Err(Error::sys(
                    format!("sending signal {signal} to pid {pid}"),
                    e,
                ))
            }
        }
        if status == Status::Paused && sig == Some(Signal::SIGKILL) {
            if let Some(cg) = self.cgroup() {
                cg.manager().thaw().map_err(|e| {
                    Error::msg(format!("thawing killed container {:?}: {e}", self.id()))
                })?;
            }
        }
        Ok(())
    }

    /// `kill --all`: every process in the container's cgroups (without
    /// cgroups, in its pid namespace).
    fn kill_all(&self, status: Status, signal: i32, sig: Option<Signal>) -> Result<()> {
        if let (Some(cg), Some(sig)) = (self.cgroup(), sig) {
            return match cg.manager().kill_all(sig) {
                Ok(()) => Ok(()),
                // Its cgroups may be gone already: nothing to signal.
                Err(_) if status == Status::Stopped => Ok(()),
                Err(e) => Err(Error::msg(format!(
                    "signalling container {:?}: {e}",
                    self.id()
                ))),
            };
        }
        for pid in self.pids() {
            match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    return Err(Error::sys(
                        format!("sending signal {signal} to pid {pid}"),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// Processes of the container: those in its cgroup; without cgroups,
    /// every process in its pid namespace, or just init when it shares the
    /// host's.
    pub fn pids(&self) -> Vec<i32> {
        if let Some(pids) = self.cgroup().and_then(|c| c.manager().pids().ok()) {
            return pids;
        }
        let init = self.record.pid;
        if !self.record.init_alive() {
            return Vec::new();
        }
        let has_own_pidns = namespaces::ns_inode(init, Kind::Pid)
            != namespaces::ns_inode(std::process::id() as i32, Kind::Pid);
        if !has_own_pidns {
            return vec![init];
        }
        let target = namespaces::ns_inode(init, Kind::Pid);
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| namespaces::ns_inode(*p, Kind::Pid) == target)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Remove the container. A running or paused one, or one still being
    /// created, is refused unless `force`, which kills it first (and the
    /// `create` still at work on it).
    pub fn delete(&self, force: bool) -> Result<()> {
        let status = self.status();
        match status {
            Status::Stopped | Status::Created => {}
            s @ (Status::Running | Status::Paused | Status::Creating) => {
                if !force {
                    bail!(
                        "cannot delete container {} that is not stopped: {s}",
                        self.id()
                    );
                }
            }
        }
        if status == Status::Creating {
            self.stop_creator();
            // The creator may have moved on since this record was read (an
            // init after an intermediate fork): act on what it left.
            let record = self.dir.load(self.id())?;
            return Container::new(self.dir.clone(), record).remove_everything();
        }
        self.remove_everything()
    }

    /// Kill the init if it is still alive (a half-created container's may
    /// be), then remove cgroups and state.
    fn remove_everything(&self) -> Result<()> {
        self.kill_and_wait()?;
        self.destroy()
    }

    /// SIGKILL the `create` still working on this container and wait for it.
    /// Its init and hooks die with it.
    fn stop_creator(&self) {
        let Some(creator) = self.record.creator else {
            return;
        };
        // Opened before the liveness check, so the pidfd is the creator's.
        let pidfd = hooks::pidfd_open(creator.pid).ok();
        if !creator.alive() {
            return;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(creator.pid), Signal::SIGKILL);
        if let Some(fd) = pidfd {
            wait_fd_readable(&fd, Duration::from_secs(10));
        }
    }

    fn kill_and_wait(&self) -> Result<()> {
        let pidfd = hooks::pidfd_open(self.record.pid).ok();
        if !self.record.init_alive() {
            return Ok(());
        }
        // Every process of the cgroup (or, without one, of the pid namespace,
        // whose init's death kills the rest).
        // Each killed process is waited for, not just the init: one still
        // exiting (e.g. an init forked by a create killed before it was
        // recorded) would otherwise look like another container's process
        // in the cgroup, which is then left in place.
        let mut killed: Vec<OwnedFd> = Vec::new();
        match self.cgroup() {
            Some(cg) => {
                killed.extend(
                    cg.processes()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| hooks::pidfd_open(p).ok()),
                );
                if let Err(e) = cg.manager().kill_all(Signal::SIGKILL) {
                    crate::log::warn(format!("killing container {:?}: {e}", self.id()));
                }
            }
            None => {
                for pid in self.pids() {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for fd in pidfd.iter().chain(&killed) {
            wait_fd_readable(
                fd,
                deadline.saturating_duration_since(std::time::Instant::now()),
            );
        }
        // The init may be our child (foreground run): reap it.
        let _ = waitpid(
            Pid::from_raw(self.record.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        Ok(())
    }

    /// Remove the cgroups, run poststop hooks (failures are warnings) and
    /// remove the state. The init is dead by now.
    fn destroy(&self) -> Result<()> {
        crate::debug!("delete {}: removing cgroups and state", self.id());
        if let Some(h) = &self.record.host_rootfs {
            h.unmount()
                .map_err(|e| e.context(format!("deleting container {:?}", self.id())))?;
        }
        if let Some(cg) = self.cgroup() {
            self.remove_cgroups(cg)?;
        }
        self.run_hooks_after_create(Point::Poststop, Status::Stopped);
        self.dir.remove()
    }

    /// Without a pid namespace of its own, processes the container started
    /// can outlive its init: they are killed with the cgroups. With one, the
    /// kernel kills them with the init, so a process in the cgroups that is
    /// in another pid namespace belongs to someone else (a container created
    /// into the cgroups after this one's processes were gone, e.g. after a
    /// killed create): it is left alone, and so are the cgroups.
    fn remove_cgroups(&self, cg: &ContainerCgroup) -> Result<()> {
        if !self.has_own_pid_namespace() {
            let _ = cg.manager().kill_all(Signal::SIGKILL);
            return cg.destroy();
        }
        let own = self.init_pid_namespace();
        let list_others = || -> Vec<i32> {
            cg.processes()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| namespaces::ns_inode(*p, Kind::Pid).is_some_and(|ns| Some(ns) != own))
                .collect()
        };
        let mut others = list_others();
        if !others.is_empty() && self.record.creator.is_some() {
            // A create killed after forking the init into its pid namespace,
            // before recording it, leaves that init for a moment: it exits by
            // itself once it sees the runtime gone. Another container's
            // processes do not.
            let fds: Vec<OwnedFd> = others
                .iter()
                .filter_map(|p| hooks::pidfd_open(*p).ok())
                .collect();
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            for fd in &fds {
                wait_fd_readable(
                    fd,
                    deadline.saturating_duration_since(std::time::Instant::now()),
                );
            }
            others = list_others();
        }
        if let Some(first) = others.first() {
            crate::log::warn(format!(
                "container {:?}: its cgroup {} holds {} process(es) of another container \
                 (pid {first}...): left in place",
                self.id(),
                cg.manager().path().display(),
                others.len(),
            ));
            return Ok(());
        }
        cg.destroy()
    }

    /// Whether the container was created with a new pid namespace.
    fn has_own_pid_namespace(&self) -> bool {
        let Ok(spec) = self.config() else {
            return false;
        };
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|list| {
                list.iter().any(|ns| {
                    ns.typ() == oci_spec::runtime::LinuxNamespaceType::Pid
                        && ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
                })
            })
    }

    /// The pid namespace of the init, while the init (alive, exiting or a
    /// zombie) still exists. Once it is reaped, so is every other process
    /// of its namespace.
    fn init_pid_namespace(&self) -> Option<u64> {
        let pid = self.record.pid;
        let is_init =
            || pid > 0 && state::stat_start_time(pid) == Some(self.record.init_start_time);
        if !is_init() {
            return None;
        }
        let ns = namespaces::ns_inode(pid, Kind::Pid)?;
        // Read again: the pid was not recycled in between.
        is_init().then_some(ns)
    }

    /// Run a new process inside the container. Returns its host pid. In a
    /// paused container the process starts frozen (it runs on resume).
    pub fn exec(&self, opts: &ExecOptions) -> Result<i32> {
        let paused = match self.status() {
            Status::Created | Status::Running => false,
            Status::Paused => true,
            _ => bail!("cannot exec in a stopped container {:?}", self.id()),
        };
        let terminal = opts.process.terminal().unwrap_or(false);
        if terminal && opts.console_socket.is_none() {
            bail!("a terminal was requested (-t): pass --console-socket to receive it");
        }
        crate::lsm::check(&opts.process)?;
        crate::spec::validate_user(&opts.process)?;
        crate::process::check_env(
            opts.process.env().as_deref().unwrap_or_default(),
            "the process's environment",
        )?;
        let pid_file = opts.pid_file.as_deref().map(absolute).transpose()?;
        let sub_cgroup = if opts.cgroup.is_empty() {
            None
        } else {
            let cg = self.cgroup().ok_or_else(|| {
                Error::msg(format!(
                    "--cgroup: container {:?} has no cgroups",
                    self.id()
                ))
            })?;
            Some(cg.sub_cgroups(&opts.cgroup)?)
        };
        let console_socket = opts
            .console_socket
            .as_deref()
            .map(|p| crate::fdpass::connect(p, "console socket"))
            .transpose()?;
        let init = self.record.pid;
        let self_pid = std::process::id() as i32;
        let mut joins: Vec<(Kind, OwnedFd)> = Vec::new();
        for kind in Kind::JOIN_ORDER {
            if namespaces::ns_inode(init, kind) == namespaces::ns_inode(self_pid, kind) {
                continue;
            }
            let path = PathBuf::from(format!("/proc/{init}/ns/{}", kind.proc_name()));
            joins.push((kind, namespaces::open_ns(&path, kind)?));
        }
        // Without a mount namespace of its own the container is its init's
        // chroot: the process goes there too.
        let root = if self.record.host_rootfs.is_none() {
            None
        } else {
            let path = format!("/proc/{init}/root");
            let fd = nix::fcntl::open(
                path.as_str(),
                nix::fcntl::OFlag::O_RDONLY
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ctx(|| format!("opening the container's root {path}"))?;
            // SAFETY: open returned a new descriptor we own.
            Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
        };
        if !self.record.init_alive() {
            bail!("cannot exec in a stopped container {:?}", self.id());
        }
        crate::debug!(
            "exec in {}: joining the {} namespaces of init {init}",
            self.id(),
            joins
                .iter()
                .map(|(k, _)| k.oci_name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // The container's own seccomp profile applies to exec'd processes too.
        let seccomp = crate::seccomp::Seccomp::prepare(&self.config()?)?;
        let (parent_ch, child_ch) = Channel::pair()?;
        crate::process::set_non_dumpable()?;
        // Unprivileged (rootless), hull may join the container's pid and
        // time namespaces only from inside its user namespace: the child
        // joins them there and forks the process that runs the program,
        // which hull adopts as a subreaper (the kernel requires this fork).
        let fork_inside = !nix::unistd::geteuid().is_root()
            && joins.iter().any(|(k, _)| *k == Kind::User)
            && joins.iter().any(|(k, _)| k.affects_children_only());
        if fork_inside {
            // SAFETY: prctl on ourselves.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        let for_children = if fork_inside {
            ForChildren::enter(&[])?
        } else {
            ForChildren::enter(&joins)?
        };
        let oom = crate::process::OomScoreAdj::set_for_children(&opts.process)?;
        let needs_host_pid = seccomp.as_ref().is_some_and(|s| s.has_listener());
        let child_ctx = ExecChild {
            container: self,
            joins,
            root,
            opts,
            console_socket,
            seccomp,
            fork_inside,
        };
        // SAFETY: single-threaded runtime; the child only runs our code until exec.
        let child = unsafe { clone_process(0) };
        if child == Ok(0) {
            drop(parent_ch);
            child_ctx.main(&child_ch);
        }
        oom.restore();
        for_children.restore()?;
        let child = child.ctx(|| "clone for exec")?;
        drop(child_ch);
        drop(child_ctx);
        if let Some(cg) = sub_cgroup.as_ref().or(self.cgroup()) {
            crate::debug!(
                "exec in {}: process {child} joins {}",
                self.id(),
                cg.manager().path().display()
            );
            cg.apply(child)?;
        }
        parent_ch.send(&ToChild::CgroupJoined)?;
        let child = if fork_inside {
            match parent_ch.recv::<ToParent>()? {
                Some(ToParent::InitPid(p)) => {
                    // The intermediate exits once it has said so.
                    let _ = waitpid(Pid::from_raw(child), None);
                    p
                }
                Some(ToParent::Failed(msg)) => {
                    let _ = waitpid(Pid::from_raw(child), None);
                    bail!("exec failed: unable to start container process: {msg}");
                }
                other => bail!("exec: unexpected message {other:?}"),
            }
        } else {
            child
        };
        if needs_host_pid {
            parent_ch.send(&ToChild::HostPid(child))?;
        }
        // In a paused container the child is frozen as soon as it joins the
        // cgroup: its outcome is known only after resume, so don't wait.
        let outcome = if paused {
            None
        } else {
            parent_ch.recv::<ToParent>()?
        };
        match outcome {
            None => {}
            Some(ToParent::Failed(msg)) => {
                let _ = waitpid(Pid::from_raw(child), None);
                bail!("exec failed: unable to start container process: {msg}");
            }
            Some(other) => bail!("exec: unexpected message {other:?}"),
        }
        if let Some(p) = &pid_file {
            state::write_atomic(p, child.to_string().as_bytes())?;
        }
        Ok(child)
    }
}

/// What the exec'd process needs, prepared by the runtime before clone.
struct ExecChild<'a> {
    container: &'a Container,
    joins: Vec<(Kind, OwnedFd)>,
    /// The init's root, for a container without a mount namespace.
    root: Option<OwnedFd>,
    opts: &'a ExecOptions,
    console_socket: Option<OwnedFd>,
    seccomp: Option<crate::seccomp::Seccomp>,
    /// Join the pid and time namespaces here and fork (rootless).
    fork_inside: bool,
}

impl ExecChild<'_> {
    /// The exec'd process: enter the container's namespaces, set up and exec.
    fn main(&self, ch: &Channel) -> ! {
        if let Err(e) = self.run(&crate::channel::Parent::new(ch)) {
            let _ = ch.send(&ToParent::Failed(e.to_string()));
        }
        // SAFETY: leave the cloned child without running the parent's destructors.
        unsafe { libc::_exit(255) }
    }

    fn run(&self, parent: &crate::channel::Parent) -> Result<()> {
        parent.expect("its cgroup")?;
        for (kind, fd) in self
            .joins
            .iter()
            .filter(|(k, _)| !k.affects_children_only())
        {
            crate::debug!("exec: joining the {} namespace", kind.oci_name());
            namespaces::enter(fd, *kind)?;
        }
        if self.fork_inside {
            self.fork_into_pid_namespace(parent)?;
        }
        if let Some(root) = &self.root {
            crate::debug!("exec: chroot into the container's root (no mount namespace)");
            nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "fchdir to the container's root")?;
            nix::unistd::chroot(".").ctx(|| "chroot into the container's root")?;
            nix::unistd::chdir("/").ctx(|| "chdir /")?;
        }
        let p = &self.opts.process;
        if p.terminal().unwrap_or(false) {
            let sock = self
                .console_socket
                .as_ref()
                .ok_or_else(|| Error::msg("no console socket"))?;
            crate::console::attach_terminal(p, sock, false)?;
        }
        let keep_sys_admin = crate::process::seccomp_needs_sys_admin(p, self.seccomp.is_some());
        let program = crate::process::prepare(p, keep_sys_admin)?;
        crate::process::close_fds_on_exec(self.opts.preserve_fds)?;
        if self.seccomp.is_some() {
            crate::debug!("exec: loading the seccomp filter");
        }
        crate::debug!("exec: exec {} {:?}", program.exe.display(), program.args);
        crate::log::close();
        // The filter goes in last: nothing of hull's own runs under it.
        if let Some(sc) = &self.seccomp {
            let host_pid = if sc.has_listener() {
                parent.host_pid()?
            } else {
                0
            };
            sc.install(host_pid, &self.container.hook_state(Status::Running))?;
        }
        Err(crate::process::exec(
            &program.exe,
            &program.args,
            &program.env,
        ))
    }

    /// Join the pid and time namespaces (from inside the user namespace)
    /// and fork; returns in the new process only, after the runtime was
    /// told its pid. The intermediate exits.
    fn fork_into_pid_namespace(&self, parent: &crate::channel::Parent) -> Result<()> {
        for (kind, fd) in self.joins.iter().filter(|(k, _)| k.affects_children_only()) {
            crate::debug!("exec: joining the {} namespace", kind.oci_name());
            namespaces::enter(fd, *kind)?;
        }
        // SAFETY: single-threaded process; the child continues the setup.
        match unsafe { nix::unistd::fork() }.ctx(|| "forking into the pid namespace")? {
            nix::unistd::ForkResult::Parent { child } => {
                parent.send(&ToParent::InitPid(child.as_raw()))?;
                // SAFETY: the intermediate process is done.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Child => Ok(()),
        }
    }
}

/// Ids of every container under `root` (directories with a state file).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", root.display()), e)),
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join(state::STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// User name owning a path (for `list`'s OWNER column), or the uid as text.
pub fn owner_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return String::new();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}
