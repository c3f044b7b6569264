//! containerd.services.tasks.v1: the running side of containers, each task
//! served by its shim (containerd's shim v2 API over ttrpc). The shims
//! publish the task events (`/tasks/create`, `/tasks/exit`, ...).

use super::{meta_status, namespace, Shared};
use crate::daemon::Daemon;
use crate::shim::{self, ctx, ttrpc_status};
use crate::tasks::Task;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::{
    any::Any as PbAny, timestamp::Timestamp as PbTime,
};
use containerd_shim_protos::protobuf::MessageField;
use hull_api::containerd::v1::types::{Process, ProcessInfo, Status as ProcStatus};
use hull_api::tasks::tasks_server::Tasks;
use hull_api::tasks::*;
use hull_api::types::{Metric, Mount};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

/// Runtimes hulld answers for: its own, and runc's name, which it
/// replaces (so a client that asks for runc gets hull, as with runc's
/// `BinaryName`).
const RUNTIMES: &[&str] = &[
    "io.containerd.hull.v2",
    "io.containerd.runc.v2",
    "io.containerd.runc.v1",
];

fn pb_any(a: prost_types::Any) -> PbAny {
    let mut out = PbAny::new();
    out.type_url = a.type_url;
    out.value = a.value;
    out
}

fn any_out(a: &PbAny) -> prost_types::Any {
    prost_types::Any {
        type_url: a.type_url.clone(),
        value: a.value.clone(),
    }
}

fn time_out(t: &MessageField<PbTime>) -> Option<prost_types::Timestamp> {
    t.as_ref().map(|t| prost_types::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    })
}

fn mount_in(m: Mount) -> containerd_shim_protos::types::mount::Mount {
    let mut out = containerd_shim_protos::types::mount::Mount::new();
    out.type_ = m.r#type;
    out.source = m.source;
    out.target = m.target;
    out.options = m.options;
    out
}

fn process_out(container: &str, s: api::StateResponse) -> Process {
    Process {
        container_id: container.to_string(),
        // The init process is named after its container, as containerd does.
        id: if s.exec_id.is_empty() {
            container.to_string()
        } else {
            s.exec_id.clone()
        },
        pid: s.pid,
        status: s.status.value(),
        stdin: s.stdin.clone(),
        stdout: s.stdout.clone(),
        stderr: s.stderr.clone(),
        terminal: s.terminal,
        exit_status: s.exit_status,
        exited_at: time_out(&s.exited_at),
    }
}

impl Service {
    fn task(&self, req_ns: &str, id: &str) -> Result<Arc<Task>, Status> {
        self.0.tasks.get(req_ns, id)
    }

    async fn state(&self, ns: &str, id: &str, exec_id: &str) -> Result<Process, Status> {
        let t = self.task(ns, id)?;
        if let Some(dead) = t.dead.get() {
            if !exec_id.is_empty() {
                return Err(Status::not_found(format!(
                    "process {exec_id} of {id}: its shim died"
                )));
            }
            return Ok(Process {
                container_id: id.to_string(),
                id: id.to_string(),
                pid: dead.pid,
                status: ProcStatus::Stopped as i32,
                exit_status: dead.exit_status,
                exited_at: time_out(&dead.exited_at),
                ..Default::default()
            });
        }
        let s = t
            .shim
            .task
            .state(
                ctx(),
                &api::StateRequest {
                    id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("state of {id}"), e))?;
        Ok(process_out(id, s))
    }
}

/// Write the bundle of `container`: its spec as config.json, and the
/// mount point of its root filesystem.
fn write_bundle(
    d: &Daemon,
    ns: &str,
    container: &hull_metadata::Container,
    netns: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, Status> {
    let spec = container.spec.as_ref().ok_or_else(|| {
        Status::failed_precondition(format!(
            "container {} has no OCI spec: create it with one",
            container.id
        ))
    })?;
    let bundle = d.shims.bundle(ns, &container.id);
    let io = |what: &str, e: std::io::Error| {
        Status::internal(format!("{what} {}: {e}", bundle.display()))
    };
    std::fs::create_dir_all(bundle.join("rootfs")).map_err(|e| io("creating", e))?;
    let tmp = bundle.join(".config.json.tmp");
    let value = match netns {
        Some(path) => crate::network::join_netns(&spec.value, path)
            .map_err(|e| Status::invalid_argument(format!("container {}: {e}", container.id)))?,
        None => spec.value.clone(),
    };
    std::fs::write(&tmp, &value).map_err(|e| io("writing the spec into", e))?;
    std::fs::rename(&tmp, bundle.join("config.json"))
        .map_err(|e| io("writing the spec into", e))?;
    Ok(bundle)
}

/// The mounts of a container's snapshot (for a task created without
/// rootfs mounts, as containerd fills them in).
pub async fn rootfs_mounts(
    d: &Daemon,
    ns: &str,
    c: &hull_metadata::Container,
) -> Result<Vec<containerd_shim_protos::types::mount::Mount>, String> {
    if c.snapshot_key.is_empty() {
        return Ok(Vec::new());
    }
    let sn = d
        .snapshotters
        .get(&c.snapshotter)
        .map_err(|e| e.message().to_string())?;
    let (ns, key) = (ns.to_string(), c.snapshot_key.clone());
    let mounts = tokio::task::spawn_blocking(move || sn.mounts(&ns, &key))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(super::snapshots::mounts_out(mounts)
        .into_iter()
        .map(mount_in)
        .collect())
}

/// What a task is created with.
pub struct NewTask {
    pub rootfs: Vec<containerd_shim_protos::types::mount::Mount>,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub options: Option<prost_types::Any>,
}

/// Start a shim for `container` and create its task; returns the pid.
pub async fn create_task(
    d: &Daemon,
    ns: &str,
    container: &hull_metadata::Container,
    new: NewTask,
) -> Result<u32, Status> {
    if !RUNTIMES.contains(&container.runtime.name.as_str()) {
        return Err(Status::failed_precondition(format!(
            "container {}: runtime {:?} is not one hulld runs ({})",
            container.id,
            container.runtime.name,
            RUNTIMES.join(", ")
        )));
    }
    if d.tasks.has_task(ns, &container.id) {
        return Err(Status::already_exists(format!(
            "task for container {} already exists",
            container.id
        )));
    }
    // Detaches again unless kept: also when the client goes away and
    // this future is dropped halfway.
    let creating = d.network.begin(ns, &container.id)?;
    let live = |owner: &str| {
        owner
            .split_once('/')
            .is_some_and(|(ns, id)| d.tasks.has_task(ns, id))
    };
    let attached = tokio::task::block_in_place(|| {
        d.network
            .attach(ns, container, &|owner| owner_name(d, owner), &live)
    })?;
    let netns = attached.as_ref().map(|(path, _)| path.as_path());
    let created = start_shim_and_create(d, ns, container, new, netns).await;
    if created.is_ok() {
        creating.keep();
        if let Some((_, att)) = &attached {
            crate::network::record_ips(&d.meta, ns, &container.id, &att.ips());
        }
    }
    created
}

/// "name (id…)" of the container `namespace/id`, for messages.
fn owner_name(d: &Daemon, owner: &str) -> String {
    let Some((ns, id)) = owner.split_once('/') else {
        return owner.to_string();
    };
    let short = &id[..id.len().min(12)];
    match d
        .meta
        .container(ns, id)
        .ok()
        .and_then(|c| c.labels.get(hull_network::labels::NAME).cloned())
    {
        Some(name) => format!("{name} ({short})"),
        None => short.to_string(),
    }
}

async fn start_shim_and_create(
    d: &Daemon,
    ns: &str,
    container: &hull_metadata::Container,
    new: NewTask,
    netns: Option<&std::path::Path>,
) -> Result<u32, Status> {
    let bundle = write_bundle(d, ns, container, netns)?;
    let shim = d.shims.start(ns, &container.id, &bundle).await?;
    let options = new
        .options
        .or(container
            .runtime
            .options
            .clone()
            .map(super::containers::any_out))
        .or_else(|| d.shims.default_options());
    let request = api::CreateTaskRequest {
        id: container.id.clone(),
        bundle: bundle.display().to_string(),
        rootfs: new.rootfs,
        terminal: new.terminal,
        stdin: new.stdin,
        stdout: new.stdout,
        stderr: new.stderr,
        options: options.map(pb_any).into(),
        ..Default::default()
    };
    let created = match shim.task.create(ctx(), &request).await {
        Ok(c) => c,
        Err(e) => {
            let status = ttrpc_status(&format!("creating task {}", container.id), e);
            shim.shut_down(&container.id).await;
            let _ = d.shims.delete(ns, &container.id).await;
            return Err(status);
        }
    };
    d.tasks.insert(ns, &container.id, Task::new(shim, bundle));
    Ok(created.pid)
}

/// Delete a container's task: the shim deletes the process and unmounts
/// the root filesystem, then exits; the bundle goes.
pub async fn delete_task(d: &Daemon, ns: &str, id: &str) -> Result<api::DeleteResponse, Status> {
    let t = d.tasks.get(ns, id)?;
    if let Some(dead) = t.dead.get() {
        // Its shim died and was cleaned up after: only the record is left.
        d.tasks.remove(ns, id);
        return Ok(dead.clone());
    }
    use std::sync::atomic::Ordering;
    t.deleting.store(true, Ordering::SeqCst);
    let deleted = t
        .shim
        .task
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            t.deleting.store(false, Ordering::SeqCst);
            ttrpc_status(&format!("deleting task {id}"), e)
        })?;
    // Detached while the task is still registered, so that a new task of
    // the container cannot be created (and attached) in between.
    tokio::task::block_in_place(|| d.network.detach(ns, id));
    // Unregistered first: the shim's exit below is expected.
    d.tasks.remove(ns, id);
    t.shim.shut_down(id).await;
    shim::remove_bundle(&t.bundle);
    Ok(deleted)
}

#[tonic::async_trait]
impl Tasks for Service {
    async fn create(
        &self,
        req: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        if r.checkpoint.is_some() {
            return Err(Status::unimplemented(
                "hulld does not restore tasks from checkpoints",
            ));
        }
        let container = self
            .0
            .meta
            .container(&ns, &r.container_id)
            .map_err(meta_status)?;
        let rootfs = if r.rootfs.is_empty() {
            rootfs_mounts(&self.0, &ns, &container)
                .await
                .map_err(Status::internal)?
        } else {
            r.rootfs.into_iter().map(mount_in).collect()
        };
        let new = NewTask {
            rootfs,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            terminal: r.terminal,
            options: r.options,
        };
        let pid = create_task(&self.0, &ns, &container, new).await?;
        Ok(Response::new(CreateTaskResponse {
            container_id: container.id,
            pid,
        }))
    }

    async fn start(&self, req: Request<StartRequest>) -> Result<Response<StartResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        let started = t
            .live(&r.container_id)?
            .task
            .start(
                ctx(),
                &api::StartRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("starting {}", r.container_id), e))?;
        Ok(Response::new(StartResponse { pid: started.pid }))
    }

    async fn delete(
        &self,
        req: Request<DeleteTaskRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let deleted = delete_task(&self.0, &ns, &id).await?;
        Ok(Response::new(DeleteResponse {
            id,
            pid: deleted.pid,
            exit_status: deleted.exit_status,
            exited_at: time_out(&deleted.exited_at),
        }))
    }

    async fn delete_process(
        &self,
        req: Request<DeleteProcessRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        let deleted = t
            .live(&r.container_id)?
            .task
            .delete(
                ctx(),
                &api::DeleteRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("deleting process {}", r.exec_id), e))?;
        Ok(Response::new(DeleteResponse {
            id: r.exec_id,
            pid: deleted.pid,
            exit_status: deleted.exit_status,
            exited_at: time_out(&deleted.exited_at),
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let process = self.state(&ns, &r.container_id, &r.exec_id).await?;
        Ok(Response::new(GetResponse {
            process: Some(process),
        }))
    }

    async fn list(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let ns = namespace(&req)?;
        let filters = super::filters::Filters::parse(&[req.into_inner().filter])?;
        let mut tasks = Vec::new();
        for (id, _) in self.0.tasks.list(&ns) {
            match self.state(&ns, &id, "").await {
                Ok(p) => {
                    let status = format!(
                        "{:?}",
                        ProcStatus::try_from(p.status).unwrap_or(ProcStatus::Unknown)
                    )
                    .to_lowercase();
                    let keep = filters.matches(|f| {
                        super::filters::lookup(
                            f,
                            &[("id", &id), ("status", &status)],
                            &Default::default(),
                        )
                    });
                    if keep {
                        tasks.push(p);
                    }
                }
                Err(e) => tracing::warn!("task {ns}/{id}: {}", e.message()),
            }
        }
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        t.live(&r.container_id)?
            .task
            .kill(
                ctx(),
                &api::KillRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id,
                    signal: r.signal,
                    all: r.all,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("signalling {}", r.container_id), e))?;
        Ok(Response::new(()))
    }

    async fn exec(&self, req: Request<ExecProcessRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        if r.exec_id.is_empty() {
            return Err(Status::invalid_argument("an exec id is required"));
        }
        let t = self.task(&ns, &r.container_id)?;
        t.live(&r.container_id)?
            .task
            .exec(
                ctx(),
                &api::ExecProcessRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id,
                    terminal: r.terminal,
                    stdin: r.stdin,
                    stdout: r.stdout,
                    stderr: r.stderr,
                    spec: r.spec.map(pb_any).into(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("exec in {}", r.container_id), e))?;
        Ok(Response::new(()))
    }

    async fn resize_pty(&self, req: Request<ResizePtyRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        t.live(&r.container_id)?
            .task
            .resize_pty(
                ctx(),
                &api::ResizePtyRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id,
                    width: r.width,
                    height: r.height,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                ttrpc_status(&format!("resizing the terminal of {}", r.container_id), e)
            })?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, req: Request<CloseIoRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        t.live(&r.container_id)?
            .task
            .close_io(
                ctx(),
                &api::CloseIORequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id,
                    stdin: r.stdin,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("closing stdin of {}", r.container_id), e))?;
        Ok(Response::new(()))
    }

    async fn pause(&self, req: Request<PauseTaskRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.task(&ns, &id)?;
        t.live(&id)?
            .task
            .pause(
                ctx(),
                &api::PauseRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("pausing {id}"), e))?;
        Ok(Response::new(()))
    }

    async fn resume(&self, req: Request<ResumeTaskRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.task(&ns, &id)?;
        t.live(&id)?
            .task
            .resume(
                ctx(),
                &api::ResumeRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("resuming {id}"), e))?;
        Ok(Response::new(()))
    }

    async fn list_pids(
        &self,
        req: Request<ListPidsRequest>,
    ) -> Result<Response<ListPidsResponse>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.task(&ns, &id)?;
        let pids = t
            .live(&id)?
            .task
            .pids(
                ctx(),
                &api::PidsRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("listing the processes of {id}"), e))?;
        Ok(Response::new(ListPidsResponse {
            processes: pids
                .processes
                .iter()
                .map(|p| ProcessInfo {
                    pid: p.pid,
                    info: p.info.as_ref().map(any_out),
                })
                .collect(),
        }))
    }

    async fn checkpoint(
        &self,
        _req: Request<CheckpointTaskRequest>,
    ) -> Result<Response<CheckpointTaskResponse>, Status> {
        Err(Status::unimplemented(
            "hulld does not implement containerd.services.tasks.v1.Tasks/Checkpoint",
        ))
    }

    async fn update(&self, req: Request<UpdateTaskRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        t.live(&r.container_id)?
            .task
            .update(
                ctx(),
                &api::UpdateTaskRequest {
                    id: r.container_id.clone(),
                    resources: r.resources.map(pb_any).into(),
                    annotations: r.annotations,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ttrpc_status(&format!("updating {}", r.container_id), e))?;
        Ok(Response::new(()))
    }

    async fn metrics(
        &self,
        req: Request<MetricsRequest>,
    ) -> Result<Response<MetricsResponse>, Status> {
        let ns = namespace(&req)?;
        let filters = super::filters::Filters::parse(&req.into_inner().filters)?;
        let mut metrics = Vec::new();
        for (id, t) in self.0.tasks.list(&ns) {
            if !filters.matches(|f| super::filters::lookup(f, &[("id", &id)], &Default::default()))
            {
                continue;
            }
            if t.dead.get().is_some() {
                continue;
            }
            let stats = t
                .shim
                .task
                .stats(
                    ctx(),
                    &api::StatsRequest {
                        id: id.clone(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| ttrpc_status(&format!("metrics of {id}"), e))?;
            metrics.push(Metric {
                timestamp: super::timestamp(super::now()),
                id,
                data: stats.stats.as_ref().map(any_out),
            });
        }
        Ok(Response::new(MetricsResponse { metrics }))
    }

    async fn wait(&self, req: Request<WaitRequest>) -> Result<Response<WaitResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.task(&ns, &r.container_id)?;
        if let Some(dead) = dead_exit(&t, &r.exec_id) {
            return Ok(Response::new(dead));
        }
        let waited = t
            .shim
            .task
            .wait(
                ctx(),
                &api::WaitRequest {
                    id: r.container_id.clone(),
                    exec_id: r.exec_id.clone(),
                    ..Default::default()
                },
            )
            .await;
        let waited = match waited {
            Ok(w) => w,
            Err(e) => {
                // The shim died while we waited: its cleanup reports the
                // exit (the monitor may still be at it).
                let shim_gone = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    crate::shim::wait_for_exit(t.shim.pid),
                );
                if t.shim.pid != 0 && shim_gone.await.is_ok() {
                    for _ in 0..100 {
                        if let Some(dead) = dead_exit(&t, &r.exec_id) {
                            return Ok(Response::new(dead));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                return Err(ttrpc_status(&format!("waiting for {}", r.container_id), e));
            }
        };
        Ok(Response::new(WaitResponse {
            exit_status: waited.exit_status,
            exited_at: time_out(&waited.exited_at),
        }))
    }
}

/// The exit of a task whose shim died, as Wait answers it.
fn dead_exit(t: &Task, exec_id: &str) -> Option<WaitResponse> {
    let dead = t.dead.get()?;
    (exec_id.is_empty()).then(|| WaitResponse {
        exit_status: dead.exit_status,
        exited_at: time_out(&dead.exited_at),
    })
}
