//! The long-running shim process: serves the task API on the socket the
//! `start` action handed it (fd 3), reaps every child (it is their
//! subreaper), records exits, runs the stdio copy jobs and OOM watches, and
//! exits once containerd asked it to shut down and it has no containers.
//!
//! Threads: this main loop (poll over a signalfd, a wake-up eventfd, the
//! copy jobs and OOM watches), the sync ttrpc server's listener and reaper
//! plus, per client connection, a reader, a writer, a dispatcher and 2..3
//! workers (a blocked Wait holds one), and the event publisher.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::Server;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::args::Flags;
use crate::bootstrap;
use crate::events::Publisher;
use crate::iocopy::{Copier, LoopHandle, LoopMsg, Step};
use crate::lifecycle::publish_exit;
use crate::log::{info, warning};
use crate::oom::{OomEvent, OomWatch};
use crate::state::{Exit, Shim, State, Status};
use crate::task;

/// The listening socket the `start` action passes.
const LISTENER_FD: i32 = 3;

pub fn serve(flags: &Flags) -> i32 {
    let bundle = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    redirect_stderr_to_log_fifo(&bundle);
    crate::log::set_debug(flags.debug);
    match run(flags, &bundle) {
        Ok(()) => 0,
        Err(e) => {
            warning!("shim for {} exiting: {e}", flags.id);
            1
        }
    }
}

fn run(flags: &Flags, bundle: &Path) -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot become a subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    // One malloc arena: the request threads are idle almost always, and a
    // glibc arena per thread would cost more than the rest of the shim.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // Signals are read from a signalfd by the main loop: block them before
    // any thread exists, so every thread inherits the mask.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    check_listener()?;

    let (io, rx) = LoopHandle::new().map_err(|e| format!("eventfd: {e}"))?;
    let socket_path = bootstrap::socket_path(&flags.namespace, &flags.id, &flags.address);
    // Bound by `start` for this shim just before: whose file it is at exit.
    let socket_ino = {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&socket_path)
            .map(|m| m.ino())
            .ok()
    };
    let shim = Arc::new(Shim {
        namespace: flags.namespace.clone(),
        socket_path: socket_path.clone(),
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        events: Publisher::start(
            &flags.namespace,
            &std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        ),
        io,
    });
    // min 1 < default 2 < max 3 idle workers per connection: a Wait
    // blocks one, and the pool grows when none is left idle.
    let mut server = Server::new()
        .add_listener(LISTENER_FD)
        .map_err(|e| format!("using the listening socket (fd 3): {e}"))?
        .register_service(task::methods(shim.clone()))
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3);
    server
        .start()
        .map_err(|e| format!("starting the ttrpc server: {e}"))?;
    info!("shim for {} serving on {}", flags.id, socket_path.display());
    let _ = std::fs::write(bundle.join("shim.pid"), std::process::id().to_string());

    main_loop(&shim, &sfd, &rx);

    info!("shim for {} exiting", flags.id);
    // The socket and bundle files go first: a client waiting for this shim
    // to be gone (hulld's Delete) sees it at once, and a new shim started
    // for the same id meanwhile keeps its own files.
    remove_own_files(&socket_path, socket_ino, bundle);
    // A moment for the reply to Shutdown to reach the client (containerd
    // and hulld also accept the connection closing instead).
    std::thread::sleep(Duration::from_millis(5));
    shim.events.close(Duration::from_secs(3));
    Ok(())
}

/// Remove the socket (if the path is still the one `start` bound for this
/// shim), the bundle's address file and pid file (if they still name it).
fn remove_own_files(socket_path: &Path, socket_ino: Option<u64>, bundle: &Path) {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::symlink_metadata(socket_path).map(|m| m.ino()).ok();
    if ino.is_some() && ino == socket_ino {
        let _ = std::fs::remove_file(socket_path);
    }
    let pid_file = bundle.join("shim.pid");
    if std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string())
    {
        let _ = std::fs::remove_file(bundle.join("address"));
        let _ = std::fs::remove_file(&pid_file);
    }
}

/// fd 3 must be the listening socket from `start`; it must not leak into
/// the runtime's children either.
fn check_listener() -> Result<(), String> {
    // SAFETY: fcntl on an fd number; failure is reported.
    let ok = unsafe { libc::fcntl(LISTENER_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == 0;
    let is_socket = std::fs::metadata(format!("/proc/self/fd/{LISTENER_FD}"))
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    if ok && is_socket {
        Ok(())
    } else {
        Err("fd 3 is not a listening socket: run the shim through its `start` action".into())
    }
}

/// containerd reads the shim's log from a FIFO named `log` in the bundle.
/// Without a reader (or FIFO) the log goes to /dev/null.
fn redirect_stderr_to_log_fifo(bundle: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let target = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(bundle.join("log"))
        .or_else(|_| std::fs::OpenOptions::new().write(true).open("/dev/null"));
    if let Ok(f) = target {
        // SAFETY: dup2 onto stderr of an fd we own.
        unsafe { libc::dup2(f.as_raw_fd(), 2) };
    }
}

fn main_loop(shim: &Arc<Shim>, sfd: &SignalFd, rx: &Receiver<LoopMsg>) {
    let mut copier = Copier::default();
    let mut ooms: Vec<OomWatch> = Vec::new();
    let mut shutdown = false;
    loop {
        let ready = wait_ready(sfd, shim.io.wake_fd(), &ooms, &copier);
        if ready[0] {
            // Output before the exit it precedes.
            copier.drain_outputs();
            shutdown |= handle_signals(shim, sfd);
        }
        // Indices in `ready` follow the lists as polled: watches and jobs
        // are added and cancelled only after they are served.
        let jobs_base = 2 + ooms.len();
        for i in (0..ooms.len()).rev() {
            let event = if ready.get(2 + i).copied().unwrap_or(false) {
                ooms[i].on_readable()
            } else if ooms[i].recheck_until.is_some() {
                ooms[i].recheck()
            } else {
                continue;
            };
            match event {
                OomEvent::Killed => {
                    let mut e = TaskOOM::new();
                    e.container_id = ooms[i].container.clone();
                    shim.events.publish(
                        topics::TASK_OOM_EVENT_TOPIC,
                        "containerd.events.TaskOOM",
                        &e,
                    );
                }
                OomEvent::Gone => {
                    ooms.swap_remove(i);
                }
                OomEvent::Nothing => {}
            }
        }
        run_copies(shim, &mut copier, &ready[jobs_base.min(ready.len())..]);
        if ready[1] {
            shim.io.drain_wake();
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    LoopMsg::Copy(job) => copier.jobs.push(job),
                    LoopMsg::Cancel(key) => copier.jobs.retain(|j| j.key != key),
                    LoopMsg::Oom(w) => ooms.push(w),
                    LoopMsg::Unwatch(id) => ooms.retain(|w| w.container != id),
                    LoopMsg::Shutdown => shutdown = true,
                }
            }
        }
        if shutdown && shim.lock().containers.is_empty() {
            return;
        }
    }
}

/// Polls everything the loop watches; returns which are ready, in the
/// order: signalfd, wake-up, OOM watches, copy jobs.
fn wait_ready(
    sfd: &SignalFd,
    wake: BorrowedFd<'_>,
    ooms: &[OomWatch],
    copier: &Copier,
) -> Vec<bool> {
    let mut fds = Vec::with_capacity(2 + ooms.len() + copier.jobs.len());
    fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
    fds.push(PollFd::new(wake, PollFlags::POLLIN));
    for w in ooms {
        fds.push(PollFd::new(w.fd(), PollFlags::POLLIN));
    }
    for j in &copier.jobs {
        let (fd, events) = j.interest();
        fds.push(PollFd::new(fd, events));
    }
    // A watch waiting for its kill counter: look again in 50 ms.
    let timeout = if ooms.iter().any(|w| w.recheck_until.is_some()) {
        PollTimeout::from(50u8)
    } else {
        PollTimeout::NONE
    };
    match poll(&mut fds, timeout) {
        Ok(_) => fds.iter().map(|f| f.any().unwrap_or(false)).collect(),
        // EINTR: nothing is ready; the caller polls again.
        Err(_) => vec![false; fds.len()],
    }
}

fn run_copies(shim: &Arc<Shim>, copier: &mut Copier, ready: &[bool]) {
    // The ready list describes the jobs as they were when polled: new
    // jobs were appended after them, so indices below ready.len() hold.
    let mut finished = Vec::new();
    for i in (0..ready.len().min(copier.jobs.len())).rev() {
        if ready[i] {
            if let Step::Done = copier.step(i) {
                let job = copier.jobs.swap_remove(i);
                if job.output {
                    finished.push(job.key);
                }
            }
        }
    }
    copier.trim();
    if finished.is_empty() {
        return;
    }
    let mut st = shim.lock();
    for key in finished {
        if let Some(p) = st
            .containers
            .get_mut(&key.container)
            .and_then(|c| c.process_mut(&key.exec))
        {
            p.open_outputs = p.open_outputs.saturating_sub(1);
        }
    }
    drop(st);
    shim.changed.notify_all();
}

/// Reads the pending signals: reaps on SIGCHLD; returns true on
/// SIGTERM/SIGINT (exit once no container is left).
fn handle_signals(shim: &Arc<Shim>, sfd: &SignalFd) -> bool {
    let mut terminate = false;
    while let Ok(Some(info)) = sfd.read_signal() {
        if info.ssi_signo == Signal::SIGTERM as u32 || info.ssi_signo == Signal::SIGINT as u32 {
            info!(
                "signal {} received: exiting once no container is left",
                info.ssi_signo
            );
            terminate = true;
        }
    }
    reap(shim);
    terminate
}

fn reap(shim: &Arc<Shim>) {
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code as u32),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as u32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(e) => {
                warning!("waitpid: {e}");
                return;
            }
        };
        record_exit(
            shim,
            pid,
            Exit {
                status,
                at: SystemTime::now(),
            },
        );
    }
}

fn record_exit(shim: &Arc<Shim>, pid: i32, exit: Exit) {
    let mut st = shim.lock();
    let mut kill_all = None;
    if let Some((c, exec)) = st.live_process(pid) {
        let id = c.id.clone();
        if exec.is_empty() && c.kill_all_on_exit {
            kill_all = Some(c.runtime.clone());
        }
        if let Some(p) = c.process_mut(&exec) {
            p.exit = Some(exit);
            p.status = Status::Stopped;
            // An exit during start is published by start, after TaskStart.
            if !p.starting {
                publish_exit(&shim.events, &id, p);
            }
        }
        if let Some(runtime) = kill_all {
            let shim = shim.clone();
            // The container shares a pid namespace: its other processes
            // outlive init unless killed. Not from this thread: the kill's
            // own exit is reaped here.
            std::thread::spawn(move || {
                let cmd = runtime.command(["kill", "--all", &id, "KILL"]);
                if let Err(f) = runtime.run(&shim, cmd, None, true) {
                    warning!("killing the remaining processes of {id}: {}", f.message);
                }
            });
        }
    } else {
        st.exits.record(pid, exit);
    }
    drop(st);
    shim.changed.notify_all();
}
