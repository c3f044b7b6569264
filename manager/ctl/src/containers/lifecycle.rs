//! Starting, stopping, signalling, pausing, waiting for and removing
//! containers. A stopped container keeps its record and snapshot; the exit
//! status of its last run is kept in its labels (containerd deletes the
//! task, which held it).

use super::args::{KillArgs, RmArgs, StartArgs, StopArgs};
use super::{container_dir, Ctx, Exit};
use crate::client::Client;
use crate::status;
use hull_api::containers::{Container, DeleteContainerRequest, UpdateContainerRequest};
use hull_api::snapshots::RemoveSnapshotRequest;
use hull_api::tasks::{
    DeleteTaskRequest, GetRequest, KillRequest, PauseTaskRequest, ResumeTaskRequest,
};
use std::time::Duration;

/// Labels with how the last run ended.
pub const EXIT_CODE_LABEL: &str = "hull/exit-code";
pub const FINISHED_LABEL: &str = "hull/finished-at";
/// The image's stop signal, recorded at create.
pub const STOP_SIGNAL_LABEL: &str = "hull/stop-signal";
/// Set by `stop`, cleared by `start`: hulld's restart monitor leaves a
/// container stopped on purpose alone.
pub const STOPPED_LABEL: &str = "hull/explicitly-stopped";

/// Set (`Some`) or remove (`None`) one label of a container.
async fn set_label(c: &Client, id: &str, key: &str, value: Option<&str>) -> Result<(), String> {
    let labels = value
        .map(|v| [(key.to_string(), v.to_string())].into())
        .unwrap_or_default();
    c.containers()
        .update(UpdateContainerRequest {
            container: Some(Container {
                id: id.to_string(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![format!("labels.{key}")],
            }),
        })
        .await
        .map(drop)
        .map_err(status)
}

/// The task's status ("running", "paused", "stopped", "created"), or None
/// without a task.
pub async fn task_status(c: &Client, id: &str) -> Option<(String, u32, i32)> {
    let p = c
        .tasks()
        .get(GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        })
        .await
        .ok()?
        .into_inner()
        .process?;
    let status = match p.status {
        1 => "created",
        2 => "running",
        3 => "stopped",
        4 | 5 => "paused",
        _ => "unknown",
    };
    Some((status.to_string(), p.pid, p.exit_status as i32))
}

/// Delete the container's task (after it stopped) and keep its exit
/// status in the container's labels.
pub async fn delete_task(c: &Client, container: &Container) -> Result<Option<i32>, String> {
    let deleted = match c
        .tasks()
        .delete(DeleteTaskRequest {
            container_id: container.id.clone(),
        })
        .await
    {
        Ok(d) => d.into_inner(),
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(None),
        Err(e) => return Err(status(e)),
    };
    let code = deleted.exit_status as i32;
    let mut labels = container.labels.clone();
    labels.insert(EXIT_CODE_LABEL.into(), code.to_string());
    labels.insert(
        FINISHED_LABEL.into(),
        deleted
            .exited_at
            .map(|t| t.seconds)
            .unwrap_or(0)
            .to_string(),
    );
    let update = Container {
        id: container.id.clone(),
        labels,
        ..Default::default()
    };
    c.containers()
        .update(UpdateContainerRequest {
            container: Some(update),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    format!("labels.{EXIT_CODE_LABEL}"),
                    format!("labels.{FINISHED_LABEL}"),
                ],
            }),
        })
        .await
        .map_err(status)?;
    Ok(Some(code))
}

pub async fn start(ctx: &Ctx<'_>, a: StartArgs) -> Exit {
    let mut code = 0;
    for name in &a.containers {
        let container = super::find(ctx.c, name).await?;
        match task_status(ctx.c, &container.id).await {
            Some((s, _, _)) if s == "running" || s == "paused" => {
                return Err(format!("container {name} is already running"));
            }
            Some(_) => {
                delete_task(ctx.c, &container).await?;
            }
            None => {}
        }
        set_label(ctx.c, &container.id, STOPPED_LABEL, None).await?;
        let networked = super::network::labels_on_cni(&container.labels);
        if a.attach {
            code = super::run::run_attached(ctx, &container.id, false, false, networked).await;
        } else {
            super::run::start_detached(ctx, &container.id, false, networked).await?;
            println!("{name}");
        }
    }
    Ok(code)
}

/// Parse a signal name (KILL, SIGKILL, kill) or number.
pub fn signal_number(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => {
            return Err(format!(
                "unknown signal {s:?}: use a name such as TERM or a number"
            ))
        }
    };
    Ok(n as u32)
}

async fn signal(c: &Client, id: &str, signal: u32) -> Result<(), String> {
    c.tasks()
        .kill(KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all: false,
        })
        .await
        .map(drop)
        .map_err(status)
}

/// Stop a running container: its stop signal, then SIGKILL after
/// `timeout`; the task is deleted, the container stays.
pub async fn stop_one(c: &Client, container: &Container, timeout: Duration) -> Result<(), String> {
    let Some((state, _, _)) = task_status(c, &container.id).await else {
        return Ok(());
    };
    if state == "running" || state == "paused" {
        if state == "paused" {
            let _ = c
                .tasks()
                .resume(ResumeTaskRequest {
                    container_id: container.id.clone(),
                })
                .await;
        }
        let sig = container
            .labels
            .get(STOP_SIGNAL_LABEL)
            .map(String::as_str)
            .unwrap_or("SIGTERM");
        signal(c, &container.id, signal_number(sig)?).await?;
        let waited = tokio::time::timeout(timeout, super::run::wait(c, &container.id, "")).await;
        if waited.is_err() {
            signal(c, &container.id, libc::SIGKILL as u32).await?;
            super::run::wait(c, &container.id, "").await?;
        }
    }
    delete_task(c, container).await?;
    Ok(())
}

pub async fn stop(ctx: &Ctx<'_>, a: StopArgs) -> Exit {
    for name in &a.containers {
        let container = super::find(ctx.c, name).await?;
        set_label(ctx.c, &container.id, STOPPED_LABEL, Some("true")).await?;
        stop_one(ctx.c, &container, Duration::from_secs(a.time)).await?;
        println!("{name}");
    }
    Ok(0)
}

pub async fn kill(ctx: &Ctx<'_>, a: KillArgs) -> Exit {
    let n = signal_number(&a.signal)?;
    for name in &a.containers {
        let container = super::find(ctx.c, name).await?;
        match task_status(ctx.c, &container.id).await {
            Some((s, _, _)) if s == "running" || s == "paused" => {
                signal(ctx.c, &container.id, n).await?
            }
            _ => return Err(format!("container {name} is not running")),
        }
        println!("{name}");
    }
    Ok(0)
}

/// Remove a container: its task (killed first with `force`), record,
/// snapshot and files.
pub async fn remove(ctx: &Ctx<'_>, id: &str, force: bool) -> Result<(), String> {
    let container = super::find(ctx.c, id).await?;
    if let Some((state, _, _)) = task_status(ctx.c, &container.id).await {
        if state == "running" || state == "paused" {
            if !force {
                return Err(format!(
                    "container {} is running: stop it first, or remove it with -f",
                    super::name_of(&container)
                ));
            }
            stop_one(ctx.c, &container, Duration::ZERO).await?;
        }
        delete_task(ctx.c, &container).await?;
    }
    ctx.c
        .containers()
        .delete(DeleteContainerRequest {
            id: container.id.clone(),
        })
        .await
        .map_err(status)?;
    if !container.snapshot_key.is_empty() {
        let removed = ctx
            .c
            .snapshots()
            .remove(RemoveSnapshotRequest {
                snapshotter: container.snapshotter.clone(),
                key: container.snapshot_key.clone(),
            })
            .await;
        // The collector may have taken it with the record already.
        if let Err(e) = removed {
            if e.code() != tonic::Code::NotFound {
                return Err(status(e));
            }
        }
    }
    let dir = container_dir(ctx.data_root, ctx.namespace, &container.id);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(format!("removing {}: {e}", dir.display()));
        }
    }
    Ok(())
}

pub async fn rm(ctx: &Ctx<'_>, a: RmArgs) -> Exit {
    let mut failed = false;
    for name in &a.containers {
        match remove(ctx, name, a.force).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("hullctl: {}", crate::output::safe(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn pause(ctx: &Ctx<'_>, names: &[String], pause: bool) -> Exit {
    for name in names {
        let container = super::find(ctx.c, name).await?;
        let id = container.id.clone();
        let r = if pause {
            ctx.c
                .tasks()
                .pause(PauseTaskRequest { container_id: id })
                .await
        } else {
            ctx.c
                .tasks()
                .resume(ResumeTaskRequest { container_id: id })
                .await
        };
        r.map_err(status)?;
        println!("{name}");
    }
    Ok(0)
}

pub async fn wait(ctx: &Ctx<'_>, names: &[String]) -> Exit {
    for name in names {
        let container = super::find(ctx.c, name).await?;
        let last = match task_status(ctx.c, &container.id).await {
            Some(_) => super::run::wait(ctx.c, &container.id, "").await?,
            None => container
                .labels
                .get(EXIT_CODE_LABEL)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("container {name} has not run"))?,
        };
        println!("{last}");
    }
    Ok(0)
}
