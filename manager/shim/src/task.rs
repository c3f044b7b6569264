//! The `containerd.task.v2.Task` service (also answered as v3, the same
//! messages under containerd 2's name): each request checked, run, and
//! its error mapped to the status containerd expects.

use std::collections::HashMap;
use std::sync::Arc;

use containerd_shim_protos::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ProcessInfo, ResizePtyRequest, ResumeRequest, ShutdownRequest,
    StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse,
    Status as TaskStatus, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{TaskPaused, TaskResumed};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::ttrpc::{self, MethodHandler, TtrpcContext};
use containerd_shim_protos::{topics, Task};

use crate::error::{Error, Result};
use crate::events::{any, timestamp};
use crate::iocopy::LoopMsg;
use crate::lifecycle::{self, exec_not_found, not_found, status_word};
use crate::metrics;
use crate::state::Shim;
use crate::stdio;

pub struct TaskService {
    shim: Arc<Shim>,
}

/// The service's methods under both names containerd uses:
/// `containerd.task.v2.Task` (containerd 1.x) and `.v3.` (2.x).
pub fn methods(shim: Arc<Shim>) -> HashMap<String, Box<dyn MethodHandler + Send + Sync>> {
    let service = Arc::new(TaskService { shim });
    let mut all = containerd_shim_protos::create_task(service.clone());
    for (path, handler) in containerd_shim_protos::create_task(service) {
        all.insert(
            path.replace("/containerd.task.v3.Task/", "/containerd.task.v2.Task/"),
            handler,
        );
    }
    all
}

fn empty() -> Empty {
    Empty::new()
}

impl TaskService {
    fn runtime_of(&self, id: &str) -> Result<Arc<crate::runtime::Runtime>> {
        let st = self.shim.lock();
        let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(c.runtime.clone())
    }

    fn state(&self, req: &StateRequest) -> Result<StateResponse> {
        let st = self.shim.lock();
        let c = st
            .containers
            .get(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let p = c
            .process(&req.exec_id)
            .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?;
        let mut r = StateResponse::new();
        r.id = req.id.clone();
        r.exec_id = req.exec_id.clone();
        r.bundle = c.bundle.to_string_lossy().into_owned();
        r.pid = p.pid;
        r.status = match status_word(c, p) {
            "stopped" => TaskStatus::STOPPED,
            "paused" => TaskStatus::PAUSED,
            "created" => TaskStatus::CREATED,
            _ => TaskStatus::RUNNING,
        }
        .into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        if let Some(exit) = p.exit {
            r.exit_status = exit.status;
            r.exited_at = MessageField::some(timestamp(exit.at));
        }
        Ok(r)
    }

    fn kill(&self, req: &KillRequest) -> Result<()> {
        let (id, eid) = (req.id.as_str(), req.exec_id.as_str());
        let signal = i32::try_from(req.signal)
            .ok()
            .filter(|s| (1..=64).contains(s))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "signal {} is not a valid signal number",
                    req.signal
                ))
            })?;
        let runtime = {
            let st = self.shim.lock();
            let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
            let p = c.process(eid).ok_or_else(|| exec_not_found(id, eid))?;
            if !eid.is_empty() {
                if p.exit.is_some() {
                    return Err(Error::NotFound(format!(
                        "exec {eid} in container {id}: process already finished"
                    )));
                }
                if p.pid == 0 {
                    return Err(Error::FailedPrecondition(format!(
                        "exec {eid} in container {id} has not been started"
                    )));
                }
                // SAFETY: kill(2) on a pid the shim reaps itself: it cannot
                // have been reused while its exit is unrecorded.
                if unsafe { libc::kill(p.pid as i32, signal) } != 0 {
                    return Err(Error::NotFound(format!(
                        "signalling exec {eid} (pid {}): {}",
                        p.pid,
                        std::io::Error::last_os_error()
                    )));
                }
                return Ok(());
            }
            if p.exit.is_some() && !req.all {
                return Err(Error::NotFound(format!(
                    "container {id}: process already finished"
                )));
            }
            c.runtime.clone()
        };
        let mut args = vec!["kill".to_owned()];
        if req.all {
            args.push("--all".into());
        }
        args.push(id.to_owned());
        args.push(signal.to_string());
        runtime
            .run(&self.shim, runtime.command(&args), None, true)
            .map_err(|f| {
                if f.message.contains("not running")
                    || f.message.contains("does not exist")
                    || f.message.contains("stopped")
                {
                    Error::NotFound(format!("signalling container {id}: {}", f.message))
                } else {
                    f.into_error(&format!("signalling container {id}"))
                }
            })?;
        Ok(())
    }

    fn pids(&self, id: &str) -> Result<PidsResponse> {
        let runtime = self.runtime_of(id)?;
        let out = runtime
            .run(
                &self.shim,
                runtime.command(["ps", "--format", "json", id]),
                None,
                true,
            )
            .map_err(|f| f.into_error(&format!("listing the processes of container {id}")))?;
        let pids: Vec<u32> = serde_json::from_slice(&out).map_err(|e| {
            Error::Internal(format!(
                "`{} ps --format json {id}` printed no pid list: {e}",
                runtime.binary.display()
            ))
        })?;
        let execs: HashMap<u32, String> = {
            let st = self.shim.lock();
            st.containers
                .get(id)
                .map(|c| {
                    c.execs
                        .values()
                        .filter(|p| p.pid != 0)
                        .map(|p| (p.pid, p.exec_id.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut r = PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid;
            if let Some(eid) = execs.get(&pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = eid.clone();
                info.info = MessageField::some(any("containerd.runc.v1.ProcessDetails", &d));
            }
            r.processes.push(info);
        }
        Ok(r)
    }

    fn pause_resume(&self, id: &str, pause: bool) -> Result<()> {
        let runtime = self.runtime_of(id)?;
        let verb = if pause { "pause" } else { "resume" };
        runtime
            .run(&self.shim, runtime.command([verb, id]), None, true)
            .map_err(|f| f.into_error(&format!("{verb} container {id}")))?;
        let mut st = self.shim.lock();
        if let Some(c) = st.containers.get_mut(id) {
            c.paused = pause;
        }
        if pause {
            let mut e = TaskPaused::new();
            e.container_id = id.to_owned();
            self.shim.events.publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                "containerd.events.TaskPaused",
                &e,
            );
        } else {
            let mut e = TaskResumed::new();
            e.container_id = id.to_owned();
            self.shim.events.publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                "containerd.events.TaskResumed",
                &e,
            );
        }
        Ok(())
    }

    fn update(&self, req: &UpdateTaskRequest) -> Result<()> {
        let id = req.id.as_str();
        let runtime = self.runtime_of(id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(resources)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return Err(Error::InvalidArgument(format!(
                "update of container {id}: resources must be runtime-spec LinuxResources as JSON"
            )));
        }
        runtime
            .run(
                &self.shim,
                runtime.command(["update", "--resources", "-", id]),
                Some(resources),
                true,
            )
            .map_err(|f| f.into_error(&format!("updating the resources of container {id}")))?;
        Ok(())
    }

    fn stats(&self, id: &str) -> Result<StatsResponse> {
        let runtime = self.runtime_of(id)?;
        let out = runtime
            .run(
                &self.shim,
                runtime.command(["events", "--stats", id]),
                None,
                true,
            )
            .map_err(|f| f.into_error(&format!("reading the statistics of container {id}")))?;
        let stats = metrics::from_stats_json(&out, metrics::unified_host()).map_err(|e| {
            Error::Internal(format!(
                "`{} events --stats {id}` output: {e}",
                runtime.binary.display()
            ))
        })?;
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(stats);
        Ok(r)
    }

    fn wait(&self, id: &str, eid: &str) -> Result<WaitResponse> {
        let mut st = self.shim.lock();
        loop {
            let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
            let p = c.process(eid).ok_or_else(|| exec_not_found(id, eid))?;
            if let Some(exit) = p.exit {
                let mut r = WaitResponse::new();
                r.exit_status = exit.status;
                r.exited_at = MessageField::some(timestamp(exit.at));
                return Ok(r);
            }
            st = self
                .shim
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn resize_pty(&self, req: &ResizePtyRequest) -> Result<()> {
        let console = {
            let st = self.shim.lock();
            let c = st
                .containers
                .get(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            let p = c
                .process(&req.exec_id)
                .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?;
            p.console.clone().ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "process {:?} of container {} has no terminal",
                    req.exec_id, req.id
                ))
            })?
        };
        stdio::resize(&console, req.width, req.height)
    }

    fn close_io(&self, req: &CloseIORequest) -> Result<()> {
        let mut st = self.shim.lock();
        let c = st
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let p = c
            .process_mut(&req.exec_id)
            .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?;
        if req.stdin {
            p.stdin_keepalive = None;
            p.stdin_closed = true;
        }
        Ok(())
    }

    fn connect(&self, req: &ConnectRequest) -> ConnectResponse {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self
            .shim
            .lock()
            .containers
            .get(&req.id)
            .map(|c| c.init.pid)
            .unwrap_or(0);
        r
    }
}

type R<T> = ttrpc::Result<T>;

impl Task for TaskService {
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> R<StateResponse> {
        Ok(TaskService::state(self, &req)?)
    }

    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> R<CreateTaskResponse> {
        let mut r = CreateTaskResponse::new();
        r.pid = lifecycle::create(&self.shim, &req)?;
        Ok(r)
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> R<StartResponse> {
        let mut r = StartResponse::new();
        r.pid = lifecycle::start(&self.shim, &req.id, &req.exec_id)?;
        Ok(r)
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> R<DeleteResponse> {
        let d = lifecycle::delete(&self.shim, &req.id, &req.exec_id)?;
        let mut r = DeleteResponse::new();
        r.pid = d.pid;
        if let Some(exit) = d.exit {
            r.exit_status = exit.status;
            r.exited_at = MessageField::some(timestamp(exit.at));
        }
        Ok(r)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> R<PidsResponse> {
        Ok(TaskService::pids(self, &req.id)?)
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> R<Empty> {
        self.pause_resume(&req.id, true)?;
        Ok(empty())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> R<Empty> {
        self.pause_resume(&req.id, false)?;
        Ok(empty())
    }

    fn checkpoint(
        &self,
        _: &TtrpcContext,
        req: containerd_shim_protos::api::CheckpointTaskRequest,
    ) -> R<Empty> {
        Err(Error::Unimplemented(format!(
            "checkpoint of container {}: hull does not support checkpoint/restore (no CRIU integration)",
            req.id
        ))
        .into())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> R<Empty> {
        TaskService::kill(self, &req)?;
        Ok(empty())
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> R<Empty> {
        lifecycle::exec(&self.shim, &req)?;
        Ok(empty())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> R<Empty> {
        TaskService::resize_pty(self, &req)?;
        Ok(empty())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> R<Empty> {
        TaskService::close_io(self, &req)?;
        Ok(empty())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> R<Empty> {
        TaskService::update(self, &req)?;
        Ok(empty())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> R<WaitResponse> {
        Ok(TaskService::wait(self, &req.id, &req.exec_id)?)
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> R<StatsResponse> {
        Ok(TaskService::stats(self, &req.id)?)
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> R<ConnectResponse> {
        Ok(TaskService::connect(self, &req))
    }

    fn shutdown(&self, _: &TtrpcContext, _req: ShutdownRequest) -> R<Empty> {
        // As containerd's runc shim: a shim with containers stays.
        if self.shim.lock().containers.is_empty() {
            self.shim.io.send(LoopMsg::Shutdown);
        }
        Ok(empty())
    }
}
