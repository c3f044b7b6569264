//! What the shim knows: its containers and their processes, the exits the
//! reaper collected, and the condition variable every waiter sleeps on.
//!
//! One mutex guards it all. It is never held while `hull` runs: the main
//! loop takes it to record exits, and `hull` commands are waited for
//! through those exits.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::events::Publisher;
use crate::iocopy::LoopHandle;
use crate::runtime::Runtime;

/// How long an exit nobody claimed is kept: long enough for the request
/// that started the process to read its pid file and claim it.
const UNCLAIMED_EXIT_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal number.
    pub status: u32,
    pub at: SystemTime,
}

/// Exits of children that are not (yet) known container processes: `hull`
/// commands, and processes that exited before their pid file was read.
/// Entries carry a sequence number so a waiter only accepts an exit that
/// happened after it spawned its child (pids are reused).
#[derive(Default)]
pub struct ExitLog {
    seq: u64,
    entries: HashMap<i32, (u64, Exit, Instant)>,
}

impl ExitLog {
    /// The current sequence number: exits recorded from now on are newer.
    pub fn mark(&self) -> u64 {
        self.seq
    }

    pub fn record(&mut self, pid: i32, exit: Exit) {
        self.seq += 1;
        let now = Instant::now();
        self.entries
            .retain(|_, (_, _, t)| now.duration_since(*t) < UNCLAIMED_EXIT_TTL);
        self.entries.insert(pid, (self.seq, exit, now));
    }

    /// Removes and returns the exit of `pid` if it happened after `mark`.
    pub fn take_after(&mut self, pid: i32, mark: u64) -> Option<Exit> {
        match self.entries.get(&pid) {
            Some((seq, exit, _)) if *seq > mark => {
                let exit = *exit;
                self.entries.remove(&pid);
                Some(exit)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// The stdio a client asked for, as it asked (reported back by State).
#[derive(Debug, Clone, Default)]
pub struct StdioRequest {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The init process (exec id "") or an exec process of a container.
pub struct Process {
    pub exec_id: String,
    /// 0 until started (execs) or created (init).
    pub pid: u32,
    pub status: Status,
    pub exit: Option<Exit>,
    /// `hull start` / `hull exec` is running: an exit seen meanwhile is
    /// published after TaskStart / TaskExecStarted, never before.
    pub starting: bool,
    pub stdio: StdioRequest,
    /// The pty master of a terminal process (ResizePty).
    pub console: Option<Arc<OwnedFd>>,
    /// Our own writer on the client's stdin FIFO: the container sees EOF
    /// only after CloseIO drops it (and the client closed its end).
    pub stdin_keepalive: Option<OwnedFd>,
    pub stdin_closed: bool,
    /// Output copy jobs of this process still running in the main loop.
    pub open_outputs: usize,
    /// Exec processes: the runtime-spec Process JSON.
    pub spec: Vec<u8>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioRequest) -> Self {
        Process {
            exec_id: exec_id.to_owned(),
            pid: 0,
            status: Status::Created,
            exit: None,
            starting: false,
            stdio,
            console: None,
            stdin_keepalive: None,
            stdin_closed: false,
            open_outputs: 0,
            spec: Vec::new(),
        }
    }
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Arc<Runtime>,
    /// bundle/rootfs when the shim mounted the request's rootfs there.
    pub mounted_rootfs: Option<PathBuf>,
    pub init: Process,
    pub execs: BTreeMap<String, Process>,
    pub paused: bool,
    /// The container shares a pid namespace: its other processes do not
    /// die with init, so the shim kills them (as containerd's runc shim).
    pub kill_all_on_exit: bool,
    /// Files the shim made for this container, removed on delete.
    pub files: Vec<PathBuf>,
}

impl Container {
    pub fn process(&self, exec_id: &str) -> Option<&Process> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }

    pub fn process_mut(&mut self, exec_id: &str) -> Option<&mut Process> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id)
        }
    }
}

#[derive(Default)]
pub struct State {
    pub containers: BTreeMap<String, Container>,
    pub exits: ExitLog,
}

impl State {
    /// The live (not yet exited) container process with this pid.
    pub fn live_process(&mut self, pid: i32) -> Option<(&mut Container, String)> {
        if pid <= 0 {
            return None;
        }
        let pid = pid as u32;
        for c in self.containers.values_mut() {
            let exec = if c.init.pid == pid && c.init.exit.is_none() {
                Some(String::new())
            } else {
                c.execs
                    .values()
                    .find(|p| p.pid == pid && p.exit.is_none())
                    .map(|p| p.exec_id.clone())
            };
            if let Some(exec) = exec {
                return Some((c, exec));
            }
        }
        None
    }
}

/// Everything the request handlers and the main loop share.
pub struct Shim {
    pub namespace: String,
    /// The shim's own socket; console sockets are made beside it.
    pub socket_path: PathBuf,
    pub state: Mutex<State>,
    /// Signalled on every exit recorded and every copy job finished.
    pub changed: Condvar,
    pub events: Publisher,
    pub io: LoopHandle,
}

impl Shim {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A handler that panicked must not take the shim down with it: the
        // state is plain data, still consistent between statements.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the exit of a child the caller spawned after `mark`.
    pub fn wait_child(&self, pid: i32, mark: u64) -> Exit {
        let mut st = self.lock();
        loop {
            if let Some(exit) = st.exits.take_after(pid, mark) {
                return exit;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits up to `timeout` for `cond` to hold over the state.
    pub fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&mut State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if cond(&mut st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
