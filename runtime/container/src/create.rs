//! `create` from the runtime's side, once the config is validated: clone the
//! init into its namespaces, put it into its cgroups, answer its requests
//! (uid/gid maps, hooks) until it waits for `start`, and record the container.
//!
//! Crash safety: a `create` killed at any point (SIGKILL from a timeout, the
//! OOM killer) must leave nothing that `delete` cannot find and remove:
//! * the state record is written as soon as the init exists and before the
//!   cgroups do ("creating": the creator's pid, the init's, the cgroup
//!   paths), and again when the init changes (after an intermediate fork);
//! * the init waits for the runtime at every step and exits when the
//!   runtime's end of the channel closes, also after it is ready: it waits
//!   for `start` only once the final record is written (`Committed`); while
//!   it sets the container up it also carries PR_SET_PDEATHSIG (SIGKILL), so
//!   that it dies with the runtime even in a hook or a slow mount;
//! * hooks run by the runtime die with it (see [`crate::hooks`]).

use crate::bail;
use crate::cgroup::ContainerCgroup;
use crate::channel::{Channel, ToChild, ToParent};
use crate::clone::{clone_process, wait_fd_readable, ForChildren};
use crate::container::CreateOptions;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Point};
use crate::hostmounts::HostRootfs;
use crate::init::{self, InitContext};
use crate::namespaces::{self, Kind};
use crate::rootfs;
use crate::spec::Bundle;
use crate::startsock::listen_in_dir;
use crate::state::{self, hook_state, ProcessId, Record, StateDir, Status};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

/// What `create` prepares on the host side before the state directory exists
/// (so failures there leave nothing behind).
pub(crate) struct HostSide {
    pub console_socket: Option<OwnedFd>,
    pub cgroup: ContainerCgroup,
    /// What /sys/fs/cgroup shows inside, if the config mounts it.
    pub cgroup_binds: Vec<rootfs::CgroupBind>,
    pub seccomp: Option<crate::seccomp::Seccomp>,
    /// Without a mount namespace: what the rootfs was on before create.
    pub host_rootfs: Option<HostRootfs>,
}

/// What `create` has started so far, to undo it on failure.
#[derive(Default)]
pub(crate) struct Spawned {
    /// The container's cgroups, once created.
    pub cgroup: Option<ContainerCgroup>,
    /// Our direct child (init, or the intermediate process).
    child: Option<i32>,
    /// The container's init when it is not our direct child.
    init: Option<i32>,
    /// Mounts made in the host's mount namespace (no mount namespace).
    pub host_rootfs: Option<HostRootfs>,
}

impl Spawned {
    /// Kill what was started and remove the state directory. Errors here are
    /// logged, never returned: the caller reports the original failure.
    pub fn abort(&self, dir: &StateDir) {
        for pid in [self.init, self.child].into_iter().flatten() {
            let fd = hooks::pidfd_open(pid).ok();
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            if Some(pid) == self.child {
                let _ = waitpid(Pid::from_raw(pid), None);
            } else if let Some(fd) = fd {
                wait_fd_readable(&fd, Duration::from_secs(10));
            }
        }
        if let Some(h) = &self.host_rootfs {
            if let Err(e) = h.unmount() {
                crate::log::warn(format!("cleanup after failed create: {e}"));
            }
        }
        if let Some(cg) = &self.cgroup {
            // Anything the init started (a createContainer hook) goes too;
            // the cgroups were checked to be unused before create.
            let _ = cg.manager().kill_all(Signal::SIGKILL);
            if let Err(e) = cg.destroy() {
                crate::log::warn(format!("cleanup after failed create: {e}"));
            }
        }
        if let Err(e) = dir.remove() {
            crate::log::warn(format!("cleanup after failed create: {e}"));
        }
    }
}

/// Start the container's init and drive it until it waits for `start`;
/// returns the final record, already saved.
pub(crate) fn spawn_init(
    id: &str,
    dir: &StateDir,
    bundle: &Bundle,
    opts: &CreateOptions,
    host_side: HostSide,
    spawned: &mut Spawned,
) -> Result<Record> {
    let HostSide {
        console_socket,
        cgroup,
        cgroup_binds,
        mut seccomp,
        host_rootfs,
    } = host_side;
    // The runtime hands the init's NOTIFY listener to the agent: it knows
    // the init's host pid, and a create killed meanwhile leaves an init
    // that only waits on the channel, whose EOF ends it.
    let agent = seccomp.as_mut().and_then(|s| s.take_agent());
    let ns = &bundle.namespaces;
    let start_listener = listen_in_dir(&dir.dir, state::START_SOCKET)?;
    let mut joins: Vec<(Kind, OwnedFd)> = Vec::new();
    for e in ns.joins() {
        let path = e.path.as_ref().expect("joins have paths");
        joins.push((e.kind, namespaces::open_ns(path, e.kind)?));
    }
    // Joining any namespace but pid/time by path means the child must join
    // before it creates the rest (a new user namespace would otherwise lack
    // the privileges to join host-owned namespaces).
    let created_by_clone = joins.iter().all(|(k, _)| k.affects_children_only());
    let mut for_children = ForChildren::enter(&joins)?;
    if ns.is_new(Kind::Time) {
        for_children.new_time_ns(&time_offsets(&bundle.spec))?;
    }
    let child_joins: Vec<(Kind, OwnedFd)> = joins
        .into_iter()
        .filter(|(k, _)| !k.affects_children_only())
        .collect();
    let ctx = InitContext {
        id,
        bundle,
        plan: rootfs::Plan {
            rootfs: bundle.rootfs.clone(),
            in_new_userns: ns.is_new(Kind::User),
            new_cgroupns: ns.is_new(Kind::Cgroup),
            no_pivot: opts.no_pivot,
            cgroups: cgroup_binds,
            host_mount_ns: host_rootfs.is_some(),
            idmapped: crate::idmap::prepare_all(
                bundle.spec.mounts().as_deref().unwrap_or_default(),
                &crate::idmap::ContainerMaps {
                    uid: linux_maps(&bundle.spec, true),
                    gid: linux_maps(&bundle.spec, false),
                },
                &bundle.dir,
            )?,
        },
        created_by_clone,
        joins: child_joins,
        console_socket,
        start_listener,
        preserve_fds: opts.preserve_fds,
        new_keyring: !opts.no_new_keyring,
        seccomp,
        runtime_pid: std::process::id() as i32,
    };
    // The cgroup namespace is created by the child once it is in its cgroup.
    let flags = if created_by_clone {
        (ns.new_flags() - Kind::Time.flag() - Kind::Cgroup.flag()).bits()
    } else {
        0
    };
    if opts.foreground {
        // SAFETY: prctl on ourselves.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    crate::debug!(
        "create {id}: bundle {}, rootfs {}, namespaces {}",
        bundle.dir.display(),
        bundle.rootfs.display(),
        ns.describe()
    );
    let (parent_ch, child_ch) = Channel::pair()?;
    crate::process::set_non_dumpable()?;
    nix::unistd::chdir(&bundle.dir).ctx(|| format!("chdir to bundle {}", bundle.dir.display()))?;
    let process = bundle
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("no process"))?;
    let oom = crate::process::OomScoreAdj::set_for_children(process)?;
    // SAFETY: the runtime is single-threaded; the child runs init code and exits.
    let child = unsafe { clone_process(flags) };
    if child == Ok(0) {
        drop(parent_ch);
        init::child_main(&ctx, &child_ch);
    }
    oom.restore();
    for_children.restore()?;
    let child = child.map_err(|e| Error::sys("creating the container process (clone)", e))?;
    drop(child_ch);
    drop(ctx);
    spawned.child = Some(child);
    crate::debug!("create {id}: cloned the container's process {child}");

    // From here on a killed create leaves a record that names the init and
    // the cgroups (created just below), for `delete` to clean up from.
    // Recorded before the init mounts anything, and kept for abort.
    spawned.host_rootfs = host_rootfs.clone();
    let mut record = creating_record(id, bundle, child, &cgroup, host_rootfs)?;
    dir.save_config(&bundle.raw)?;
    dir.save(&record)?;
    // Limits are in force before the child does anything of the container's.
    // Registered first: a limit that fails leaves directories abort must remove.
    let cgroup = spawned.cgroup.insert(cgroup);
    crate::debug!(
        "create {id}: cgroups {}",
        serde_json::to_string(&cgroup.paths()).unwrap_or_default()
    );
    match cgroup.create_with_limits(&bundle.spec) {
        Ok(()) => cgroup.apply(child)?,
        Err(e) if rootless_without_limits(&bundle.spec) => {
            // As runc's rootless mode: no cgroup when none can be made
            // and the config asks for no limits.
            crate::debug!("create {id}: running without cgroups (rootless): {e}");
            let _ = cgroup.destroy();
            spawned.cgroup = None;
            record.cgroup = None;
            dir.save(&record)?;
        }
        Err(e) => return Err(e),
    }
    crate::netdev::move_into(&bundle.spec, child)?;
    parent_ch.send(&ToChild::CgroupJoined)?;
    let session = InitSession {
        ch: &parent_ch,
        id,
        dir,
        bundle,
        agent,
    };
    session.until_ready(&mut record, spawned)?;
    crate::debug!("create {id}: init {} is ready", record.pid);
    record.init_start_time = state::process_start_time(record.pid)
        .ok_or_else(|| Error::msg("container init exited right after it was ready"))?;
    record.hooks = bundle.spec.hooks().clone();
    record.creator = None;
    dir.save(&record)?;
    session.hand_off()?;
    Ok(record)
}

/// linux.timeOffsets as (clock, seconds, nanoseconds).
fn time_offsets(spec: &Spec) -> Vec<(String, i64, u32)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.secs().unwrap_or(0), v.nanosecs().unwrap_or(0)))
        .collect()
}

/// The record of a container still being created by this process. It has no
/// hooks: a create that never finished runs no poststop hooks at delete.
fn creating_record(
    id: &str,
    bundle: &Bundle,
    init: i32,
    cgroup: &ContainerCgroup,
    host_rootfs: Option<HostRootfs>,
) -> Result<Record> {
    let creator = ProcessId::current()
        .ok_or_else(|| Error::msg("reading this process's start time from /proc/self/stat"))?;
    Ok(Record {
        id: id.to_string(),
        pid: init,
        // 0 if the child is already gone: it then never counts as alive.
        init_start_time: state::process_start_time(init).unwrap_or(0),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::timefmt::rfc3339_nano(SystemTime::now()),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        hooks: None,
        cgroup: Some(cgroup.paths()),
        creator: Some(creator),
        host_rootfs,
    })
}

/// The runtime's side of the conversation with a starting init.
struct InitSession<'a> {
    ch: &'a Channel,
    id: &'a str,
    dir: &'a StateDir,
    bundle: &'a Bundle,
    agent: Option<crate::seccomp::Agent>,
}

impl InitSession<'_> {
    /// Answer the init's requests until it waits for `start`. `record.pid`
    /// follows the init through an intermediate fork, on disk too.
    fn until_ready(&self, record: &mut Record, spawned: &mut Spawned) -> Result<()> {
        let child = record.pid;
        loop {
            let (msg, fd) = match self.ch.recv_with_fd::<ToParent>()? {
                Some((msg, fd)) => (Some(msg), fd),
                None => (None, None),
            };
            match msg {
                Some(ToParent::MapIds) => {
                    crate::debug!("create {}: writing uid/gid maps of {child}", self.id);
                    write_id_maps(child, &self.bundle.spec)?;
                    self.ch.send(&ToChild::IdsMapped)?;
                }
                Some(ToParent::InitPid(p)) => {
                    crate::debug!(
                        "create {}: init is {p}, forked into the new pid namespace",
                        self.id
                    );
                    spawned.init = Some(p);
                    record.pid = p;
                    record.init_start_time = state::process_start_time(p).unwrap_or(0);
                    self.dir.save(record)?;
                    // The intermediate process waits for this, then exits.
                    self.ch.send(&ToChild::InitRecorded)?;
                    let _ = waitpid(Pid::from_raw(child), None);
                    spawned.child = None;
                }
                Some(ToParent::RunHooks) => {
                    self.run_create_hooks(record.pid)?;
                    self.ch.send(&ToChild::HooksDone)?;
                }
                Some(ToParent::Ready) => return self.hand_off_listener(record.pid, fd),
                Some(ToParent::Failed(msg)) => return Err(Error::msg(msg)),
                None => bail!("container init {} before it was ready", exit_reason(child)),
            }
        }
    }

    /// With a NOTIFY filter, the init loaded it and sent its listener with
    /// `Ready`: the agent gets it now, during create, as with runc. A
    /// failure fails create (and kills the init).
    fn hand_off_listener(&self, init_pid: i32, fd: Option<OwnedFd>) -> Result<()> {
        let Some(agent) = &self.agent else {
            return Ok(());
        };
        let fd = fd.ok_or_else(|| {
            Error::msg(
                "the container's init sent no seccomp listener for linux.seccomp.listenerPath",
            )
        })?;
        let annotations = self.bundle.spec.annotations().clone().unwrap_or_default();
        let state = hook_state(
            self.id,
            Status::Creating,
            init_pid,
            &self.bundle.dir,
            &annotations,
        );
        crate::log::debug(format!(
            "seccomp: handing the listener of init {init_pid} to the agent"
        ));
        agent.hand_off(&fd, init_pid, &state)
    }

    /// prestart and createRuntime hooks, in the runtime's namespaces.
    fn run_create_hooks(&self, init_pid: i32) -> Result<()> {
        let annotations = self.bundle.spec.annotations().clone().unwrap_or_default();
        let st = hook_state(
            self.id,
            Status::Creating,
            init_pid,
            &self.bundle.dir,
            &annotations,
        );
        let h = self
            .bundle
            .spec
            .hooks()
            .as_ref()
            .expect("init asks only when hooks exist");
        #[allow(deprecated)]
        let prestart = h.prestart().as_deref().unwrap_or_default();
        hooks::run_all(Point::Prestart, prestart, &st, None)?;
        hooks::run_all(
            Point::CreateRuntime,
            h.create_runtime().as_deref().unwrap_or_default(),
            &st,
            None,
        )
    }

    /// The final record is saved: let the init wait for `start`.
    fn hand_off(&self) -> Result<()> {
        self.ch.send(&ToChild::Committed)
    }
}

/// How our child ended, for an error message (it may not have yet).
fn exit_reason(child: i32) -> String {
    match waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
        Ok(WaitStatus::Exited(_, c)) => format!("exited with status {c}"),
        _ => "exited".into(),
    }
}

/// Run unprivileged, with no resource limits in the config (devices
/// aside: a user namespace cannot make device nodes anyway).
fn rootless_without_limits(spec: &Spec) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return true;
    };
    let mut limits = r.clone();
    limits.set_devices(None);
    limits == oci_spec::runtime::LinuxResources::default()
}

/// linux.uidMappings (`uid`) or linux.gidMappings.
fn linux_maps(spec: &Spec, uid: bool) -> Vec<LinuxIdMapping> {
    let linux = spec.linux().as_ref();
    let maps = if uid {
        linux.and_then(|l| l.uid_mappings().as_ref())
    } else {
        linux.and_then(|l| l.gid_mappings().as_ref())
    };
    maps.cloned().unwrap_or_default()
}

/// Whether an unprivileged runtime needs newuidmap/newgidmap for these
/// maps: anything but its own id, once, needs ranges from /etc/subuid and
/// /etc/subgid, which only those setuid helpers may grant.
fn needs_id_helpers(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> bool {
    let own = |maps: &[LinuxIdMapping], id: u32| matches!(maps, [m] if m.host_id() == id && m.size() == 1);
    let (euid, egid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let only_own = own(uid, euid.as_raw()) && own(gid, egid.as_raw());
    !euid.is_root() && !only_own
}

/// `newuidmap PID c h s ...` (or newgidmap).
fn run_id_helper(helper: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::msg(format!(
            "running {helper} for the rootless container's id mappings: {e} (install Debian's uidmap package)"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{helper} refused the id mappings: {} (are they within this user's ranges in /etc/subuid and /etc/subgid?)",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Write /proc/PID/{uid_map,gid_map} from the config.
fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let (uid, gid) = (linux_maps(spec, true), linux_maps(spec, false));
    if needs_id_helpers(&uid, &gid) {
        run_id_helper("newuidmap", pid, &uid)?;
        return run_id_helper("newgidmap", pid, &gid);
    }
    if !nix::unistd::geteuid().is_root() {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .ctx(|| "denying setgroups for a rootless user namespace")?;
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), crate::idmap::map_text(&uid))
        .ctx(|| "writing linux.uidMappings")?;
    std::fs::write(format!("/proc/{pid}/gid_map"), crate::idmap::map_text(&gid))
        .ctx(|| "writing linux.gidMappings")?;
    Ok(())
}
