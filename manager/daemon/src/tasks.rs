//! The tasks hulld runs: one shim per container (runtime
//! `io.containerd.hull.v2`), found by (namespace, container id).

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Default)]
pub struct Tasks {
    by_container: Mutex<BTreeSet<(String, String)>>,
}

impl Tasks {
    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.by_container
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(ns.to_string(), id.to_string()))
    }
}
