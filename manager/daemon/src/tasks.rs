//! The tasks hulld runs: one shim per container, found by (namespace,
//! container id). Recovered from the bundles in the state directory when
//! hulld starts, so containers outlive the daemon.

use crate::shim::{self, Shim, ShimRuntime};
use containerd_shim_protos::api;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tonic::Status;

pub struct Task {
    pub shim: Shim,
    pub bundle: PathBuf,
}

#[derive(Default)]
pub struct Tasks {
    by_container: Mutex<HashMap<(String, String), Arc<Task>>>,
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

    pub fn insert(&self, ns: &str, id: &str, task: Task) {
        self.map()
            .insert((ns.to_string(), id.to_string()), Arc::new(task));
    }

    pub fn remove(&self, ns: &str, id: &str) {
        self.map().remove(&(ns.to_string(), id.to_string()));
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
                self.insert(ns, id, Task { shim, bundle });
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
