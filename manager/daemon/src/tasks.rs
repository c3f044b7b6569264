//! The tasks hulld runs: one shim per container, found by (namespace,
//! container id). Recovered from the bundles in the state directory when
//! hulld starts, so containers outlive the daemon.
//!
//! Each shim's process is watched (a pidfd on the runtime, no thread): a
//! shim that dies under its task is cleaned up after (`<shim> delete`
//! kills what is left of the container and unmounts its root), the exit
//! is published as containerd does, and the task stays listed as stopped,
//! with the status `delete` reported, until it is deleted.

use crate::shim::{self, Shim, ShimRuntime};
use containerd_shim_protos::api;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;
use tonic::Status;

pub struct Task {
    pub shim: Shim,
    pub bundle: PathBuf,
    /// Set when the shim died under the task: what its cleanup reported.
    pub dead: OnceLock<api::DeleteResponse>,
    /// Set while hulld deletes the task: the shim exits after the delete,
    /// which is no death to clean up after (a restart may already be
    /// making the next task of the container in the same bundle path).
    pub deleting: std::sync::atomic::AtomicBool,
}

impl Task {
    pub fn new(shim: Shim, bundle: PathBuf) -> Task {
        Task {
            shim,
            bundle,
            dead: OnceLock::new(),
            deleting: Default::default(),
        }
    }

    /// The shim, unless it died (then: the error for the caller).
    pub fn live(&self, id: &str) -> Result<&Shim, Status> {
        match self.dead.get() {
            None => Ok(&self.shim),
            Some(_) => Err(Status::not_found(format!(
                "task {id} has exited (its shim died): delete it"
            ))),
        }
    }
}

/// A shim that exited while its task was registered.
pub struct DeadShim {
    pub namespace: String,
    pub id: String,
    pub task: Arc<Task>,
}

pub struct Tasks {
    by_container: Mutex<HashMap<(String, String), Arc<Task>>>,
    dead_tx: mpsc::UnboundedSender<DeadShim>,
    dead_rx: Mutex<Option<mpsc::UnboundedReceiver<DeadShim>>>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (dead_tx, dead_rx) = mpsc::unbounded_channel();
        Tasks {
            by_container: Mutex::default(),
            dead_tx,
            dead_rx: Mutex::new(Some(dead_rx)),
        }
    }
}

impl Tasks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Task>>> {
        self.by_container.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.map().contains_key(&(ns.to_string(), id.to_string()))
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Arc<Task>, Status> {
        self.map()
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no task for container {id} in namespace {ns:?}: start one first"
                ))
            })
    }

    /// Register a task and watch its shim.
    pub fn insert(&self, ns: &str, id: &str, task: Task) {
        let task = Arc::new(task);
        self.map()
            .insert((ns.to_string(), id.to_string()), task.clone());
        if task.shim.pid == 0 {
            return;
        }
        let dead_tx = self.dead_tx.clone();
        let dead = DeadShim {
            namespace: ns.to_string(),
            id: id.to_string(),
            task,
        };
        tokio::spawn(async move {
            shim::wait_for_exit(dead.task.shim.pid).await;
            let _ = dead_tx.send(dead);
        });
    }

    pub fn remove(&self, ns: &str, id: &str) {
        self.map().remove(&(ns.to_string(), id.to_string()));
    }

    /// Whether `task` is (still) the registered task of ns/id: a shim that
    /// exits after its task was deleted is no news.
    pub fn is_current(&self, ns: &str, id: &str, task: &Arc<Task>) -> bool {
        self.map()
            .get(&(ns.to_string(), id.to_string()))
            .is_some_and(|t| Arc::ptr_eq(t, task))
    }

    /// The shims that died, for the one monitor that handles them.
    pub fn take_dead_shims(&self) -> Option<mpsc::UnboundedReceiver<DeadShim>> {
        self.dead_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Every task of `ns`, by container id.
    pub fn list(&self, ns: &str) -> Vec<(String, Arc<Task>)> {
        let mut out: Vec<(String, Arc<Task>)> = self
            .map()
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|((_, id), t)| (id.clone(), t.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every task, as (namespace, container id, task), sorted.
    pub fn all(&self) -> Vec<(String, String, Arc<Task>)> {
        let mut out: Vec<_> = self
            .map()
            .iter()
            .map(|((ns, id), t)| (ns.clone(), id.clone(), t.clone()))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Find the shims of tasks started before this daemon (their bundles
    /// hold their addresses) and reconnect; clean up after shims that are
    /// gone.
    pub async fn recover(&self, runtime: &ShimRuntime) {
        let Ok(namespaces) = std::fs::read_dir(&runtime.tasks_dir) else {
            return;
        };
        for ns_dir in namespaces.filter_map(|e| e.ok()) {
            let ns = ns_dir.file_name().to_string_lossy().into_owned();
            let Ok(bundles) = std::fs::read_dir(ns_dir.path()) else {
                continue;
            };
            for b in bundles.filter_map(|e| e.ok()) {
                let id = b.file_name().to_string_lossy().into_owned();
                self.recover_one(runtime, &ns, &id, b.path()).await;
            }
        }
    }

    async fn recover_one(&self, runtime: &ShimRuntime, ns: &str, id: &str, bundle: PathBuf) {
        let address = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
        let alive = match shim::connect(address.trim()).await {
            Ok(s) => {
                let state = s
                    .task
                    .state(
                        shim::ctx(),
                        &api::StateRequest {
                            id: id.to_string(),
                            ..Default::default()
                        },
                    )
                    .await;
                state.ok().map(|st| (s, st.pid))
            }
            Err(_) => None,
        };
        match alive {
            Some((shim, pid)) => {
                tracing::info!("task {ns}/{id}: reconnected to its shim (pid {pid})");
                if let Err(e) = shim::forward_shim_log(ns, id, &bundle) {
                    tracing::warn!("task {ns}/{id}: its shim's log: {}", e.message());
                }
                self.insert(ns, id, Task::new(shim, bundle));
            }
            None => {
                tracing::info!("task {ns}/{id}: its shim is gone; cleaning up");
                if let Err(e) = runtime.delete(ns, id).await {
                    tracing::warn!("cleaning up task {ns}/{id}: {}", e.message());
                }
            }
        }
    }
}

/// Handle shims that die under their tasks, for the daemon's life: clean
/// up with `<shim> delete`, keep what it reported as the task's exit, and
/// publish /tasks/exit and /tasks/delete as containerd does for a dead
/// shim.
pub fn spawn_monitor(daemon: Arc<crate::daemon::Daemon>) {
    let Some(mut dead) = daemon.tasks.take_dead_shims() else {
        return;
    };
    tokio::spawn(async move {
        while let Some(d) = dead.recv().await {
            let daemon = daemon.clone();
            tokio::spawn(async move { shim_died(&daemon, d).await });
        }
    });
}

async fn shim_died(daemon: &crate::daemon::Daemon, d: DeadShim) {
    let (ns, id) = (d.namespace.as_str(), d.id.as_str());
    let deleting = d.task.deleting.load(std::sync::atomic::Ordering::SeqCst);
    if deleting || !daemon.tasks.is_current(ns, id, &d.task) {
        return;
    }
    tracing::warn!(
        "task {ns}/{id}: its shim (pid {}) died; cleaning up",
        d.task.shim.pid
    );
    let deleted = match daemon.shims.delete(ns, id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("task {ns}/{id}: cleanup after its shim: {}", e.message());
            api::DeleteResponse::default()
        }
    };
    tokio::task::block_in_place(|| daemon.network.detach(ns, id));
    // Killed with its shim unless the cleanup found a real status.
    let mut exit = deleted.clone();
    if exit.exited_at.is_none() {
        exit.exit_status = 128 + libc::SIGKILL as u32;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut t = containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp::new();
        t.seconds = now.as_secs() as i64;
        t.nanos = now.subsec_nanos() as i32;
        exit.exited_at = Some(t).into();
    }
    let _ = d.task.dead.set(exit.clone());
    let exited_at = exit.exited_at.as_ref().map(|t| prost_types::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    });
    use hull_api::containerd::events as ev;
    let task_exit = ev::TaskExit {
        container_id: id.to_string(),
        id: id.to_string(),
        pid: exit.pid,
        exit_status: exit.exit_status,
        exited_at,
    };
    daemon.events.publish(
        ns,
        "/tasks/exit",
        crate::events::any("TaskExit", &task_exit),
    );
    let task_delete = ev::TaskDelete {
        container_id: id.to_string(),
        pid: exit.pid,
        exit_status: exit.exit_status,
        exited_at,
        id: String::new(),
    };
    daemon.events.publish(
        ns,
        "/tasks/delete",
        crate::events::any("TaskDelete", &task_delete),
    );
}
