//! The restart monitor: containers labelled `hull/restart` = `always` (or
//! `on-failure`, after a non-zero exit) get a new task when theirs exits,
//! with the same stdio, unless they were stopped on purpose
//! (`hull/explicitly-stopped`, set by `hullctl stop`). Like containerd's
//! restart monitor plugin, with hullctl's labels.

use crate::daemon::Daemon;
use crate::services::tasks;
use crate::shim::ctx;
use containerd_shim_protos::api;
use std::sync::Arc;
use std::time::Duration;

pub const RESTART_LABEL: &str = "hull/restart";
pub const STOPPED_LABEL: &str = "hull/explicitly-stopped";

/// Watch task exits for the daemon's life.
pub fn spawn(daemon: Arc<Daemon>) {
    let d = daemon.clone();
    daemon.events.each_init_exit(move |ns, exit| {
        let d = d.clone();
        async move {
            if let Err(e) = restart(&d, &ns, &exit.container_id, exit.exit_status).await {
                tracing::warn!("restarting {ns}/{}: {e}", exit.container_id);
            }
        }
    });
}

async fn restart(d: &Daemon, ns: &str, id: &str, status: u32) -> Result<(), String> {
    let Ok(container) = d.meta.container(ns, id) else {
        return Ok(());
    };
    let policy = container.labels.get(RESTART_LABEL).map(String::as_str);
    let wanted = match policy {
        Some("always") => true,
        Some("on-failure") => status != 0,
        _ => false,
    };
    if !wanted || container.labels.contains_key(STOPPED_LABEL) {
        return Ok(());
    }
    let task = d.tasks.get(ns, id).map_err(|e| e.message().to_string())?;
    let state = task
        .shim
        .task
        .state(
            ctx(),
            &api::StateRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    // docker waits a little before a restart, so a crash loop cannot spin.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tracing::info!("restarting {ns}/{id} (exit status {status}, policy {policy:?})");
    tasks::delete_task(d, ns, id)
        .await
        .map_err(|e| e.message().to_string())?;
    let new = tasks::NewTask {
        rootfs: tasks::rootfs_mounts(d, ns, &container).await?,
        stdin: state.stdin.clone(),
        stdout: state.stdout.clone(),
        stderr: state.stderr.clone(),
        terminal: state.terminal,
        options: None,
    };
    tasks::create_task(d, ns, &container, new)
        .await
        .map_err(|e| e.message().to_string())?;
    let task = d.tasks.get(ns, id).map_err(|e| e.message().to_string())?;
    task.shim
        .task
        .start(
            ctx(),
            &api::StartRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
