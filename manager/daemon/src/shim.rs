//! Shims, as containerd runs them (the shim v2 protocol): `<shim> ... start`
//! in the task's bundle starts a long-lived shim for the container and
//! prints its ttrpc address; hulld then speaks `containerd.task.v2.Task` to
//! it; `<shim> ... delete` cleans up after a shim that is gone. The address
//! is kept in the bundle (`address`), which is how hulld finds its shims
//! again after a restart.
//!
//! hulld never forks a container itself: the shim (a separate process) does,
//! by exec'ing the `hull` runtime.

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::Client;
use containerd_shim_protos::ttrpc::{self, context};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Status;

/// How hulld starts shims.
pub struct ShimRuntime {
    /// The shim binary (containerd-shim-hull-v2).
    pub binary: PathBuf,
    /// hulld's gRPC socket (the shim's `-address`).
    pub grpc_address: PathBuf,
    /// hulld's ttrpc socket, where shims forward their events.
    pub ttrpc_address: PathBuf,
    /// `<state>/tasks`: one bundle per task, `<ns>/<id>`.
    pub tasks_dir: PathBuf,
    /// `<state>/runtime`: the runtime's state root (`hull --root`, below
    /// it one directory per namespace) for tasks whose container names
    /// none, so everything hulld starts lives under its own state.
    pub runtime_root: PathBuf,
}

/// A connection to one shim.
#[derive(Clone)]
pub struct Shim {
    pub task: TaskApi,
    /// Its ttrpc address (`unix:///path`).
    pub address: String,
    /// Its process (0 if it did not say), watched for its death.
    pub pid: u32,
}

/// How long a shim told to shut down may take to go.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

impl Shim {
    /// Ask the shim of task `id` to exit and wait until it is gone (its
    /// process, watched by a pidfd; a shim that did not say its pid: until
    /// its socket no longer answers, as containerd waits for the connection
    /// to close). A task started again at once must get a new shim, not the
    /// one going away (`start` reuses a live shim of the same id), and a
    /// removed container leaves no process behind.
    pub async fn shut_down(&self, id: &str) {
        let request = api::ShutdownRequest {
            id: id.to_string(),
            now: true,
            ..Default::default()
        };
        let _ = self.task.shutdown(ctx(), &request).await;
        let gone = async {
            if self.pid != 0 {
                wait_for_exit(self.pid).await;
                return;
            }
            let path = self.address.trim_start_matches("unix://").to_string();
            while tokio::net::UnixStream::connect(&path).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_WAIT, gone).await.is_err() {
            tracing::warn!("the shim of {id} did not exit within {SHUTDOWN_WAIT:?} of Shutdown");
        }
    }
}

/// The shim task API, under whichever name the shim serves it:
/// `containerd.task.v3.Task` (containerd 2's shims, and hull's) or
/// `containerd.task.v2.Task` (containerd 1.6's, such as its runc shim).
/// The messages are the same; containerd-shim-protos only generates the v3
/// client, so the calls are made here by name.
#[derive(Clone)]
pub struct TaskApi {
    client: Client,
    service: &'static str,
}

macro_rules! task_calls {
    ($($name:ident($method:literal, $req:ty) -> $resp:ty;)*) => {
        impl TaskApi {
            $(
                pub async fn $name(&self, ctx: context::Context, req: &$req) -> ttrpc::Result<$resp> {
                    self.call(ctx, $method, req).await
                }
            )*
        }
    };
}

task_calls! {
    create("Create", api::CreateTaskRequest) -> api::CreateTaskResponse;
    start("Start", api::StartRequest) -> api::StartResponse;
    delete("Delete", api::DeleteRequest) -> api::DeleteResponse;
    state("State", api::StateRequest) -> api::StateResponse;
    kill("Kill", api::KillRequest) -> api::Empty;
    exec("Exec", api::ExecProcessRequest) -> api::Empty;
    resize_pty("ResizePty", api::ResizePtyRequest) -> api::Empty;
    close_io("CloseIO", api::CloseIORequest) -> api::Empty;
    pause("Pause", api::PauseRequest) -> api::Empty;
    resume("Resume", api::ResumeRequest) -> api::Empty;
    pids("Pids", api::PidsRequest) -> api::PidsResponse;
    update("Update", api::UpdateTaskRequest) -> api::Empty;
    stats("Stats", api::StatsRequest) -> api::StatsResponse;
    wait("Wait", api::WaitRequest) -> api::WaitResponse;
    shutdown("Shutdown", api::ShutdownRequest) -> api::Empty;
    connect("Connect", api::ConnectRequest) -> api::ConnectResponse;
}

impl TaskApi {
    async fn call<Req: Message, Resp: Message>(
        &self,
        ctx: context::Context,
        method: &str,
        req: &Req,
    ) -> ttrpc::Result<Resp> {
        let payload = req
            .write_to_bytes()
            .map_err(|e| ttrpc::Error::Others(format!("encoding a {method} request: {e}")))?;
        let mut request = ttrpc::proto::Request::new();
        request.service = self.service.to_string();
        request.method = method.to_string();
        request.timeout_nano = ctx.timeout_nano;
        request.payload = payload;
        let response = self.client.request(request).await?;
        Resp::parse_from_bytes(&response.payload)
            .map_err(|e| ttrpc::Error::Others(format!("decoding a {method} response: {e}")))
    }

    /// Ask the shim which task API it serves; also returns its pid.
    async fn negotiate(client: Client) -> ttrpc::Result<(TaskApi, u32)> {
        let mut api = TaskApi {
            client,
            service: "containerd.task.v3.Task",
        };
        match api.connect(ctx(), &api::ConnectRequest::new()).await {
            Err(ttrpc::Error::RpcStatus(s))
                if s.code.value() == ttrpc::Code::UNIMPLEMENTED as i32 =>
            {
                api.service = "containerd.task.v2.Task";
                let c = api.connect(ctx(), &api::ConnectRequest::new()).await?;
                Ok((api, c.shim_pid))
            }
            Err(e) => Err(e),
            Ok(c) => Ok((api, c.shim_pid)),
        }
    }
}

/// Wait (without a thread) until process `pid` has exited, through a
/// pidfd; at once if it is already gone.
pub async fn wait_for_exit(pid: u32) {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return; // ESRCH: gone already.
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the fd, so it stays open until it is
    // deregistered (when the AsyncFd drops).
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    match registered {
        // A pidfd becomes readable when its process exits.
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        Err(e) => {
            tracing::warn!("cannot watch shim pid {pid}: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// A ttrpc call's context: no deadline (containerd's default too; Wait
/// blocks until the process exits).
pub fn ctx() -> context::Context {
    context::with_timeout(0)
}

pub fn ttrpc_status(what: &str, e: containerd_shim_protos::ttrpc::Error) -> Status {
    use containerd_shim_protos::ttrpc::Error as E;
    match e {
        E::RpcStatus(s) => {
            let code = tonic::Code::from_i32(s.code.value());
            crate::services::status(code, format!("{what}: {}", s.message))
        }
        other => Status::unavailable(format!("{what}: the shim did not answer: {other}")),
    }
}

/// containerd's runc shim options (`containerd.runc.v1.Options`), the part
/// hulld sets: which runtime binary the shim runs, and its state root.
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    #[prost(string, tag = "6")]
    binary_name: String,
    #[prost(string, tag = "7")]
    root: String,
}

impl ShimRuntime {
    /// Options for a task whose container names none: run `hull` (the one
    /// beside hulld, if there is one) with its state below hulld's. Both hull-shim and containerd's
    /// runc shim read them.
    pub fn default_options(&self) -> Option<prost_types::Any> {
        use prost::Message as _;
        let beside = std::env::current_exe().ok()?.parent()?.join("hull");
        let binary_name = if beside.exists() {
            beside.display().to_string()
        } else {
            "hull".to_string()
        };
        Some(prost_types::Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: RuncOptions {
                binary_name,
                root: self.runtime_root.display().to_string(),
            }
            .encode_to_vec(),
        })
    }

    pub fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.tasks_dir.join(ns).join(id)
    }

    /// The environment a shim runs with: hulld's own directory first on
    /// PATH, so a `hull` installed beside hulld is the runtime it uses.
    fn command(&self, ns: &str, id: &str, bundle: &Path, action: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.args(["-namespace", ns, "-address"])
            .arg(&self.grpc_address)
            .arg("-publish-binary")
            .arg(std::env::current_exe().unwrap_or_else(|_| "hulld".into()))
            .args(["-id", id, "-bundle"])
            .arg(bundle)
            .arg(action)
            .current_dir(bundle)
            .env("TTRPC_ADDRESS", &self.ttrpc_address)
            .env("GRPC_ADDRESS", &self.grpc_address)
            .env("NAMESPACE", ns);
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir];
            dirs.extend(std::env::split_paths(&path));
            if let Ok(joined) = std::env::join_paths(dirs) {
                cmd.env("PATH", joined);
            }
        }
        cmd
    }

    /// Start (or find) the shim of task `id` and connect to it.
    pub async fn start(&self, ns: &str, id: &str, bundle: &Path) -> Result<Shim, Status> {
        forward_shim_log(ns, id, bundle)?;
        let mut cmd = self.command(ns, id, bundle, "start");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Status::internal(format!("starting the shim: {e}")))?
            .map_err(|e| {
                Status::failed_precondition(format!(
                    "cannot run the shim {}: {e}: install containerd-shim-hull-v2 or set runtime.shim in hulld's config",
                    self.binary.display()
                ))
            })?;
        if !out.status.success() {
            return Err(Status::internal(format!(
                "the shim for {id} did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::fs::write(bundle.join("address"), &address)
            .map_err(|e| Status::internal(format!("recording the shim address of {id}: {e}")))?;
        connect(&address).await
    }

    /// Clean up after the shim of task `id` (gone, or no longer wanted):
    /// `<shim> delete`, then the bundle.
    pub async fn delete(&self, ns: &str, id: &str) -> Result<api::DeleteResponse, Status> {
        let bundle = self.bundle(ns, id);
        let mut cmd = self.command(ns, id, &bundle, "delete");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Status::internal(format!("cleaning up the shim: {e}")))?;
        let response = match out {
            Ok(o) if o.status.success() => {
                use containerd_shim_protos::protobuf::Message;
                api::DeleteResponse::parse_from_bytes(&o.stdout).unwrap_or_default()
            }
            Ok(o) => {
                tracing::warn!(
                    "shim delete of {ns}/{id}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                api::DeleteResponse::default()
            }
            Err(e) => {
                tracing::warn!("shim delete of {ns}/{id}: {e}");
                api::DeleteResponse::default()
            }
        };
        remove_bundle(&bundle);
        Ok(response)
    }
}

/// The `log` FIFO in the bundle, where shims write their own log (as
/// containerd provides it): read by a task on hulld's runtime (no thread
/// per shim) into hulld's log until the shim closes it. Called again for a
/// shim found after a restart: its write end still leads to this FIFO.
pub fn forward_shim_log(ns: &str, id: &str, bundle: &Path) -> Result<(), Status> {
    use std::os::unix::ffi::OsStrExt;
    let path = bundle.join("log");
    if !path.exists() {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Status::internal("bundle path with a NUL byte"))?;
        // SAFETY: a valid C string; mkfifo has no other preconditions.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(Status::internal(format!(
                "creating {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
    }
    // Opening the read end never blocks; reads wait for the shim to open
    // its end and end when it closes it.
    let fifo = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(&path)
        .map_err(|e| Status::internal(format!("opening {}: {e}", path.display())))?;
    let name = format!("{ns}/{id}");
    tokio::spawn(copy_log_lines(fifo, name));
    Ok(())
}

/// Longest shim log line kept whole; longer ones are cut (a shim cannot
/// make hulld buffer without bound).
const MAX_SHIM_LOG_LINE: usize = 16 * 1024;

async fn copy_log_lines(fifo: tokio::net::unix::pipe::Receiver, name: String) {
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(fifo);
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (take, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_SHIM_LOG_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        if end || line.len() >= MAX_SHIM_LOG_LINE {
            let text = String::from_utf8_lossy(&line);
            tracing::info!(target: "shim", "{name}: {}", text.trim_end());
            line.clear();
            if !end {
                // Drop the rest of an overlong line.
                skip_to_newline(&mut reader).await;
            }
        }
    }
    if !line.is_empty() {
        tracing::info!(target: "shim", "{name}: {}", String::from_utf8_lossy(&line).trim_end());
    }
}

async fn skip_to_newline(reader: &mut tokio::io::BufReader<tokio::net::unix::pipe::Receiver>) {
    use tokio::io::AsyncBufReadExt;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(buf) => buf,
        };
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return;
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Connect to a shim's ttrpc address (`unix:///path`).
pub async fn connect(address: &str) -> Result<Shim, Status> {
    let client = tokio::time::timeout(Duration::from_secs(10), Client::connect(address))
        .await
        .map_err(|_| Status::unavailable(format!("shim {address} did not answer in 10 s")))?
        .map_err(|e| Status::unavailable(format!("cannot connect to shim {address}: {e}")))?;
    let (task, pid) = TaskApi::negotiate(client)
        .await
        .map_err(|e| ttrpc_status(&format!("shim {address}"), e))?;
    Ok(Shim {
        task,
        address: address.to_string(),
        pid,
    })
}

/// Remove a task's bundle (its rootfs mount point must be unmounted: the
/// shim does that; a still-mounted rootfs is left, not removed through).
pub fn remove_bundle(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    if rootfs.exists() {
        if let Err(e) = std::fs::remove_dir(&rootfs) {
            tracing::warn!("{}: {e} (still mounted?); left in place", rootfs.display());
            return;
        }
    }
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", bundle.display());
        }
    }
}
