//! Creating, starting and deleting the init and exec processes of a
//! container: the requests that run `hull create|start|exec|delete`, wire
//! stdio, mount the rootfs, and publish the lifecycle events in the order
//! containerd expects (create → start → exit → delete; exec-added →
//! exec-started → exit).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::api::{CreateTaskRequest, ExecProcessRequest};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskStart,
};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics;

use crate::error::{Error, Result};
use crate::events::{timestamp, Publisher};
use crate::iocopy::{LoopMsg, ProcKey};
use crate::log::{debug, warning};
use crate::mounts;
use crate::oom::OomWatch;
use crate::options::{self, ShimOptions};
use crate::runtime::Runtime;
use crate::state::{Container, Exit, Process, Shim, Status, StdioRequest};
use crate::stdio;

/// How long Delete lets the copy jobs drain what the process wrote.
const IO_DRAIN: Duration = Duration::from_secs(2);

pub fn not_found(id: &str) -> Error {
    Error::NotFound(format!("container {id} not found in this shim"))
}

pub fn exec_not_found(id: &str, exec: &str) -> Error {
    Error::NotFound(format!("exec process {exec:?} not found in container {id}"))
}

/// Container and exec ids become file and cgroup names: refuse what
/// cannot be one (hull would refuse the container id too, less clearly).
fn check_id(what: &str, id: &str) -> Result<()> {
    let ok =
        !id.is_empty() && id.len() <= 1024 && id != "." && id != ".." && !id.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} {id:?} is not valid: use a non-empty name without '/' (at most 1024 bytes)"
        )))
    }
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn console_path(shim: &Shim) -> PathBuf {
    let mut p = shim.socket_path.clone().into_os_string();
    p.push(format!(".{}.pty", unique()));
    PathBuf::from(p)
}

pub fn publish_exit(events: &Publisher, container: &str, p: &Process) {
    let Some(exit) = p.exit else { return };
    let mut e = TaskExit::new();
    e.container_id = container.to_owned();
    e.id = if p.exec_id.is_empty() {
        container.to_owned()
    } else {
        p.exec_id.clone()
    };
    e.pid = p.pid;
    e.exit_status = exit.status;
    e.exited_at = MessageField::some(timestamp(exit.at));
    events.publish(
        topics::TASK_EXIT_EVENT_TOPIC,
        "containerd.events.TaskExit",
        &e,
    );
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Internal(format!("reading the pid file {}: {e}", path.display())))?;
    text.trim().parse().map_err(|_| {
        Error::Internal(format!(
            "pid file {} holds {text:?}, not a pid",
            path.display()
        ))
    })
}

/// Does the container get its own pid namespace (so that its processes
/// die with init)? From the bundle's config.json.
fn has_own_pid_ns(bundle: &Path) -> bool {
    let Ok(text) = std::fs::read(bundle.join("config.json")) else {
        return true;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return true;
    };
    v["linux"]["namespaces"].as_array().is_some_and(|ns| {
        ns.iter()
            .any(|n| n["type"] == "pid" && n["path"].as_str().unwrap_or("").is_empty())
    })
}

/// What Create leaves behind until it succeeds: undone on drop.
struct CreateGuard<'a> {
    shim: &'a Arc<Shim>,
    runtime: &'a Runtime,
    id: &'a str,
    rootfs: Option<PathBuf>,
    files: Vec<PathBuf>,
    created: bool,
    done: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.created {
            let cmd = self.runtime.command(["delete", "--force", self.id]);
            if let Err(f) = self.runtime.run(self.shim, cmd, None, true) {
                debug!(
                    "cleaning up after a failed create of {}: {}",
                    self.id, f.message
                );
            }
        }
        if let Some(r) = &self.rootfs {
            mounts::unmount_all(r);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

pub fn create(shim: &Arc<Shim>, req: &CreateTaskRequest) -> Result<u32> {
    let id = req.id.as_str();
    check_id("container id", id)?;
    if !req.checkpoint.is_empty() {
        return Err(Error::Unimplemented(format!(
            "container {id}: restoring from a checkpoint is not supported by hull (no CRIU)"
        )));
    }
    if shim.lock().containers.contains_key(id) {
        return Err(Error::AlreadyExists(format!(
            "container {id} already exists in this shim"
        )));
    }
    let bundle = PathBuf::from(&req.bundle);
    if !bundle.is_absolute() || !bundle.join("config.json").is_file() {
        return Err(Error::InvalidArgument(format!(
            "container {id}: bundle {:?} must be an absolute directory holding config.json",
            req.bundle
        )));
    }
    let opts = ShimOptions::from_any(req.options.as_ref())?;
    let runtime = Arc::new(Runtime::new(
        &opts.binary_name,
        &opts.root,
        &shim.namespace,
        &bundle,
        opts.systemd_cgroup,
    ));
    let mut guard = CreateGuard {
        shim,
        runtime: &runtime,
        id,
        rootfs: None,
        files: Vec::new(),
        created: false,
        done: false,
    };
    if !req.rootfs.is_empty() {
        let rootfs = bundle.join("rootfs");
        if let Err(e) = std::fs::create_dir(&rootfs) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(Error::Internal(format!(
                    "creating {}: {e}",
                    rootfs.display()
                )));
            }
        }
        mounts::mount_all(&req.rootfs, &rootfs)?;
        guard.rootfs = Some(rootfs);
    }
    options::save(
        &bundle,
        &runtime.binary,
        &runtime.root,
        runtime.systemd_cgroup,
    )?;
    guard.files.push(bundle.join(options::BUNDLE_FILE));
    guard.files.push(runtime.log.clone());
    let pid_file = bundle.join("init.pid");
    guard.files.push(pid_file.clone());

    let stdio_req = StdioRequest {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    };
    let key = ProcKey {
        container: id.to_owned(),
        exec: String::new(),
    };
    let (child, pending) = stdio::prepare(&key, &stdio_req, &console_path(shim))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "create".into(),
        "--bundle".into(),
        bundle.clone().into(),
        "--pid-file".into(),
        pid_file.clone().into(),
    ];
    if let Some(p) = pending.console_path() {
        args.push("--console-socket".into());
        args.push(p.into());
    }
    if opts.no_pivot_root {
        args.push("--no-pivot".into());
    }
    if opts.no_new_keyring {
        args.push("--no-new-keyring".into());
    }
    args.push(id.into());
    let mut cmd = runtime.command(args);
    cmd.stdin(child.stdin)
        .stdout(child.stdout)
        .stderr(child.stderr);
    let mark = shim.lock().exits.mark();
    // From here a failure may have left hull state behind.
    guard.created = true;
    runtime.run(shim, cmd, None, false).map_err(|f| {
        f.into_error(&format!(
            "creating container {id} with {}",
            runtime.binary.display()
        ))
    })?;
    let pid = read_pid(&pid_file)?;
    let wired = pending.wire()?;

    let mut init = Process::new("", stdio_req);
    init.pid = pid;
    init.console = wired.console;
    init.stdin_keepalive = wired.stdin_keepalive;
    init.open_outputs = wired.jobs.iter().filter(|j| j.output).count();
    let container = Container {
        id: id.to_owned(),
        bundle: bundle.clone(),
        runtime: runtime.clone(),
        mounted_rootfs: guard.rootfs.take(),
        init,
        execs: Default::default(),
        paused: false,
        kill_all_on_exit: !has_own_pid_ns(&bundle),
        files: std::mem::take(&mut guard.files),
    };
    guard.done = true;
    {
        let mut st = shim.lock();
        let early = st.exits.take_after(pid as i32, mark);
        publish_create(&shim.events, req, pid);
        let c = st.containers.entry(id.to_owned()).or_insert(container);
        if let Some(exit) = early {
            c.init.exit = Some(exit);
            c.init.status = Status::Stopped;
            publish_exit(&shim.events, id, &c.init);
        }
    }
    shim.changed.notify_all();
    for job in wired.jobs {
        shim.io.send(LoopMsg::Copy(job));
    }
    match OomWatch::new(id, pid) {
        Ok(w) => {
            debug!(
                "container {id}: watching OOM kills in {}",
                w.counter_file.display()
            );
            shim.io.send(LoopMsg::Oom(w))
        }
        Err(e) => debug!("container {id}: no OOM events: {e}"),
    }
    Ok(pid)
}

fn publish_create(events: &Publisher, req: &CreateTaskRequest, pid: u32) {
    let mut e = TaskCreate::new();
    e.container_id = req.id.clone();
    e.bundle = req.bundle.clone();
    e.rootfs = req.rootfs.clone();
    let mut io = TaskIO::new();
    io.stdin = req.stdin.clone();
    io.stdout = req.stdout.clone();
    io.stderr = req.stderr.clone();
    io.terminal = req.terminal;
    e.io = MessageField::some(io);
    e.checkpoint = req.checkpoint.clone();
    e.pid = pid;
    events.publish(
        topics::TASK_CREATE_EVENT_TOPIC,
        "containerd.events.TaskCreate",
        &e,
    );
}

pub fn start(shim: &Arc<Shim>, id: &str, exec_id: &str) -> Result<u32> {
    if !exec_id.is_empty() {
        return start_exec(shim, id, exec_id);
    }
    let runtime = {
        let mut st = shim.lock();
        let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if c.init.status != Status::Created || c.init.starting {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}: only a created container can be started",
                status_word(c, &c.init)
            )));
        }
        c.init.starting = true;
        c.runtime.clone()
    };
    let result = runtime.run(shim, runtime.command(["start", id]), None, true);
    let mut st = shim.lock();
    let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
    c.init.starting = false;
    if let Err(f) = result {
        publish_exit(&shim.events, id, &c.init);
        return Err(f.into_error(&format!("starting container {id}")));
    }
    if c.init.exit.is_none() {
        c.init.status = Status::Running;
    }
    let mut e = TaskStart::new();
    e.container_id = id.to_owned();
    e.pid = c.init.pid;
    shim.events.publish(
        topics::TASK_START_EVENT_TOPIC,
        "containerd.events.TaskStart",
        &e,
    );
    publish_exit(&shim.events, id, &c.init);
    Ok(c.init.pid)
}

pub fn status_word(c: &Container, p: &Process) -> &'static str {
    match (p.status, p.exec_id.is_empty() && c.paused) {
        (Status::Stopped, _) => "stopped",
        (_, true) => "paused",
        (Status::Created, _) => "created",
        (Status::Running, _) => "running",
    }
}

pub fn exec(shim: &Shim, req: &ExecProcessRequest) -> Result<()> {
    let (id, eid) = (req.id.as_str(), req.exec_id.as_str());
    check_id("exec id", eid)?;
    let spec = req
        .spec
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    let is_process =
        serde_json::from_slice::<serde_json::Value>(&spec).is_ok_and(|v| v.is_object());
    if !is_process {
        return Err(Error::InvalidArgument(format!(
            "exec {eid} in container {id}: the process spec must be a runtime-spec Process as JSON"
        )));
    }
    let mut st = shim.lock();
    let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
    if c.init.exit.is_some() {
        return Err(Error::FailedPrecondition(format!(
            "container {id} has stopped: cannot exec {eid} in it"
        )));
    }
    if c.execs.contains_key(eid) {
        return Err(Error::AlreadyExists(format!(
            "exec {eid} already exists in container {id}: pick another exec id"
        )));
    }
    let mut p = Process::new(
        eid,
        StdioRequest {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        },
    );
    p.spec = spec;
    c.execs.insert(eid.to_owned(), p);
    let mut e = TaskExecAdded::new();
    e.container_id = id.to_owned();
    e.exec_id = eid.to_owned();
    shim.events.publish(
        topics::TASK_EXEC_ADDED_EVENT_TOPIC,
        "containerd.events.TaskExecAdded",
        &e,
    );
    Ok(())
}

fn start_exec(shim: &Arc<Shim>, id: &str, eid: &str) -> Result<u32> {
    let (runtime, bundle, stdio_req, spec) = {
        let mut st = shim.lock();
        let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if c.init.exit.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "container {id} has stopped: cannot start exec {eid}"
            )));
        }
        let (runtime, bundle) = (c.runtime.clone(), c.bundle.clone());
        let p = c
            .execs
            .get_mut(eid)
            .ok_or_else(|| exec_not_found(id, eid))?;
        if p.status != Status::Created || p.starting {
            return Err(Error::FailedPrecondition(format!(
                "exec {eid} in container {id} was already started"
            )));
        }
        p.starting = true;
        (runtime, bundle, p.stdio.clone(), p.spec.clone())
    };
    let result = run_exec(shim, &runtime, &bundle, id, eid, &stdio_req, &spec);
    let mut st = shim.lock();
    let early = match &result {
        Ok((pid, _, mark)) => st.exits.take_after(*pid as i32, *mark),
        Err(_) => None,
    };
    let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
    let p = c
        .execs
        .get_mut(eid)
        .ok_or_else(|| exec_not_found(id, eid))?;
    p.starting = false;
    let (pid, wired, _) = result?;
    p.pid = pid;
    p.status = Status::Running;
    p.console = wired.console;
    p.stdin_keepalive = if p.stdin_closed {
        None
    } else {
        wired.stdin_keepalive
    };
    p.open_outputs = wired.jobs.iter().filter(|j| j.output).count();
    if let Some(exit) = early {
        p.exit = Some(exit);
        p.status = Status::Stopped;
    }
    let mut e = TaskExecStarted::new();
    e.container_id = id.to_owned();
    e.exec_id = eid.to_owned();
    e.pid = pid;
    shim.events.publish(
        topics::TASK_EXEC_STARTED_EVENT_TOPIC,
        "containerd.events.TaskExecStarted",
        &e,
    );
    publish_exit(&shim.events, id, p);
    drop(st);
    shim.changed.notify_all();
    for job in wired.jobs {
        shim.io.send(LoopMsg::Copy(job));
    }
    Ok(pid)
}

/// `hull exec --process FILE --detach --pid-file FILE`: returns the pid,
/// the wired stdio and the exit-log mark taken before the exec ran.
fn run_exec(
    shim: &Arc<Shim>,
    runtime: &Runtime,
    bundle: &Path,
    id: &str,
    eid: &str,
    stdio_req: &StdioRequest,
    spec: &[u8],
) -> Result<(u32, stdio::WiredStdio, u64)> {
    let key = ProcKey {
        container: id.to_owned(),
        exec: eid.to_owned(),
    };
    let (child, pending) = stdio::prepare(&key, stdio_req, &console_path(shim))?;
    let n = unique();
    let spec_file = bundle.join(format!(".exec-{n}.json"));
    let pid_file = bundle.join(format!(".exec-{n}.pid"));
    std::fs::write(&spec_file, spec)
        .map_err(|e| Error::Internal(format!("writing {}: {e}", spec_file.display())))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "exec".into(),
        "--process".into(),
        spec_file.clone().into(),
        "--detach".into(),
        "--pid-file".into(),
        pid_file.clone().into(),
    ];
    if let Some(p) = pending.console_path() {
        args.push("--console-socket".into());
        args.push(p.into());
    }
    args.push(id.into());
    let mut cmd = runtime.command(args);
    cmd.stdin(child.stdin)
        .stdout(child.stdout)
        .stderr(child.stderr);
    let mark = shim.lock().exits.mark();
    let result = runtime.run(shim, cmd, None, false);
    let _ = std::fs::remove_file(&spec_file);
    let pid = result
        .map_err(|f| f.into_error(&format!("starting exec {eid} in container {id}")))
        .and_then(|_| read_pid(&pid_file));
    let _ = std::fs::remove_file(&pid_file);
    let pid = pid?;
    Ok((pid, pending.wire()?, mark))
}

pub struct Deleted {
    pub pid: u32,
    pub exit: Option<Exit>,
}

pub fn delete(shim: &Arc<Shim>, id: &str, eid: &str) -> Result<Deleted> {
    if !eid.is_empty() {
        return delete_exec(shim, id, eid);
    }
    let runtime = {
        let st = shim.lock();
        let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
        if c.init.starting || (c.init.status == Status::Running && c.init.exit.is_none()) {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}: kill it before deleting it",
                status_word(c, &c.init)
            )));
        }
        c.runtime.clone()
    };
    if let Err(f) = runtime.run(shim, runtime.command(["delete", "--force", id]), None, true) {
        // Gone already (deleted by hand, or a crashed create) is fine.
        if !f.message.contains("does not exist") && !f.message.contains("not found") {
            return Err(f.into_error(&format!("deleting container {id}")));
        }
    }
    // A created container's init was killed by the delete: let its exit
    // and its last output arrive.
    shim.wait_until(IO_DRAIN, |st| {
        st.containers.get(id).is_none_or(|c| {
            c.init.exit.is_some()
                && c.init.open_outputs == 0
                && c.execs.values().all(|p| p.open_outputs == 0)
        })
    });
    let c = shim
        .lock()
        .containers
        .remove(id)
        .ok_or_else(|| not_found(id))?;
    shim.changed.notify_all();
    for exec in std::iter::once(String::new()).chain(c.execs.keys().cloned()) {
        shim.io.send(LoopMsg::Cancel(ProcKey {
            container: id.to_owned(),
            exec,
        }));
    }
    shim.io.send(LoopMsg::Unwatch(id.to_owned()));
    if let Some(rootfs) = &c.mounted_rootfs {
        mounts::unmount_all(rootfs);
    }
    for f in &c.files {
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warning!("container {id}: removing {}: {e}", f.display());
            }
        }
    }
    let mut e = TaskDelete::new();
    e.container_id = id.to_owned();
    e.id = id.to_owned();
    e.pid = c.init.pid;
    if let Some(exit) = c.init.exit {
        e.exit_status = exit.status;
        e.exited_at = MessageField::some(timestamp(exit.at));
    }
    shim.events.publish(
        topics::TASK_DELETE_EVENT_TOPIC,
        "containerd.events.TaskDelete",
        &e,
    );
    shim.io.send(LoopMsg::Shutdown);
    Ok(Deleted {
        pid: c.init.pid,
        exit: c.init.exit,
    })
}

fn delete_exec(shim: &Arc<Shim>, id: &str, eid: &str) -> Result<Deleted> {
    {
        let st = shim.lock();
        let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
        let p = c.execs.get(eid).ok_or_else(|| exec_not_found(id, eid))?;
        if p.starting || (p.status == Status::Running && p.exit.is_none()) {
            return Err(Error::FailedPrecondition(format!(
                "exec {eid} in container {id} is running: kill it before deleting it"
            )));
        }
    }
    shim.wait_until(IO_DRAIN, |st| {
        st.containers
            .get(id)
            .and_then(|c| c.execs.get(eid))
            .is_none_or(|p| p.open_outputs == 0)
    });
    let p = {
        let mut st = shim.lock();
        let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        c.execs.remove(eid).ok_or_else(|| exec_not_found(id, eid))?
    };
    shim.io.send(LoopMsg::Cancel(ProcKey {
        container: id.to_owned(),
        exec: eid.to_owned(),
    }));
    Ok(Deleted {
        pid: p.pid,
        exit: p.exit,
    })
}
