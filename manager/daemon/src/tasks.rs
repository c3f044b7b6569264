//! The tasks hulld runs: one shim per container (runtime
//! `io.containerd.hull.v2`), found by (namespace, container id).

use std::collections::HashMap;
use std::sync::Mutex;

/// What hulld knows of one running task.
pub struct Task {
    /// The shim's ttrpc socket.
    pub address: String,
    pub pid: u32,
}

#[derive(Default)]
pub struct Tasks {
    by_container: Mutex<HashMap<(String, String), Task>>,
}

impl Tasks {
    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.by_container
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(ns.to_string(), id.to_string()))
    }
}
