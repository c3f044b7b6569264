//! The task API spoken directly over ttrpc, without containerd: the shim is
//! started with its `start` action (in a private mount namespace, with a
//! test events server as TTRPC_ADDRESS) and driven with the generated
//! client. Covers what `ctr` 1.6 cannot reach: rootfs mounts (overlay),
//! runc options (BinaryName, Root), Update, Stats, the error codes of bad
//! requests, the v2 service name, event order, and that Delete and
//! Shutdown leave nothing behind.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::api::*;
use containerd_shim_protos::cgroups::metrics::Metrics;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim::oci::Options;
use containerd_shim_protos::ttrpc::{self, context, Code, TtrpcContext};
use containerd_shim_protos::{create_events, Events, TaskClient};
use hull_integration::host::{
    cgroup_dirs_named, remove_cgroup_dir, remove_scratch_dir, scratch_dir, wait_until, ProcessRef,
};
use hull_integration::{json, require_root, runtime_bin, Value};

const NS: &str = "hull-shim-api";

fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-hull-v2"))
}

struct Collector(Arc<Mutex<Vec<String>>>);

impl Events for Collector {
    fn forward(&self, _: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let env = req.envelope.unwrap_or_default();
        assert_eq!(env.namespace, NS);
        let url = env
            .event
            .as_ref()
            .map(|a| a.type_url.clone())
            .unwrap_or_default();
        self.0.lock().unwrap().push(format!("{} {url}", env.topic));
        Ok(Empty::new())
    }
}

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(20).as_nanos() as i64)
}

fn code_of<T: std::fmt::Debug>(r: ttrpc::Result<T>) -> Code {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => s.code(),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// Undoes whatever the test left, also when it fails.
struct Cleanup {
    scratch: PathBuf,
    id: String,
    hull_root: PathBuf,
    shim: Option<ProcessRef>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.shim {
            p.kill();
        }
        let _ = Command::new(runtime_bin())
            .arg("--root")
            .arg(&self.hull_root)
            .args(["delete", "--force", &self.id])
            .output();
        for dir in cgroup_dirs_named(&self.id) {
            let _ = remove_cgroup_dir(&dir);
        }
        for dir in cgroup_dirs_named(NS) {
            let _ = std::fs::remove_dir(dir);
        }
        // The shim's mount namespace dies with it: nothing mounted here
        // is visible on the host.
        if let Err(e) = remove_scratch_dir(&self.scratch) {
            eprintln!("warning: {e}");
        }
    }
}

fn bundle(scratch: &Path, id: &str) -> PathBuf {
    let bundle = scratch.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let template = hull_integration::bundle::template();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(template.join("config.json")).unwrap()).unwrap();
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "echo out-line; echo err-line >&2; exec sleep 600"
    ]);
    config["root"] = json!({"path": "rootfs", "readonly": false});
    config["linux"]["cgroupsPath"] = json!(format!("/{NS}/{id}"));
    // Small enough for an exec to be OOM-killed (swap limited too).
    config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    // The shim logs to `log` in the bundle (a FIFO from containerd; a
    // file here, shown when the test fails).
    std::fs::write(bundle.join("log"), "").unwrap();
    bundle
}

fn options_any(hull_root: &Path) -> Any {
    let mut o = Options::new();
    o.binary_name = runtime_bin().to_string_lossy().into_owned();
    o.root = hull_root.to_string_lossy().into_owned();
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.Options".into();
    any.value = o.write_to_bytes().unwrap();
    any
}

#[test]
fn task_api_over_ttrpc_without_containerd() {
    if !require_root() {
        return;
    }
    let scratch = scratch_dir("shim-api");
    let id = format!("api-{}", std::process::id());
    let mut cleanup = Cleanup {
        scratch: scratch.clone(),
        id: id.clone(),
        hull_root: scratch.join("hull-root"),
        shim: None,
    };
    let bundle = bundle(&scratch, &id);
    let (lower, upper, work) = (
        scratch.join("lower"),
        scratch.join("upper"),
        scratch.join("work"),
    );
    for d in [&upper, &work] {
        std::fs::create_dir(d).unwrap();
    }
    symlink(hull_integration::bundle::template().join("rootfs"), &lower).unwrap();

    // containerd's side: an events server.
    let topics = Arc::new(Mutex::new(Vec::new()));
    let events_sock = scratch.join("events.sock");
    let mut events = ttrpc::Server::new()
        .bind(&format!("unix://{}", events_sock.display()))
        .unwrap()
        .register_service(create_events(Arc::new(Collector(topics.clone()))));
    events.start().unwrap();

    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(shim_bin())
        .args(["-namespace", NS, "-id", &id, "-debug", "-address"])
        .arg(scratch.join("containerd.sock"))
        .arg("start")
        .current_dir(&bundle)
        .env("HULL_SHIM_SOCKET_DIR", scratch.join("s"))
        .env("TTRPC_ADDRESS", &events_sock)
        .output()
        .unwrap();
    let address = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && address.starts_with("unix://"),
        "start: {out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("address")).unwrap(),
        address
    );
    let client = ttrpc::Client::connect(&address).unwrap();
    let task = TaskClient::new(client.clone());

    // containerd 1.6's service name answers too.
    let mut raw = ttrpc::Request::new();
    raw.service = "containerd.task.v2.Task".into();
    raw.method = "Connect".into();
    raw.payload = ConnectRequest::new().write_to_bytes().unwrap();
    raw.timeout_nano = 5_000_000_000;
    let resp = client.request(raw).expect("v2 Connect");
    let shim_pid = ConnectResponse::parse_from_bytes(&resp.payload)
        .unwrap()
        .shim_pid;
    cleanup.shim = ProcessRef::capture(shim_pid as i32);

    // Create with an overlay rootfs and the runc options, output to a file.
    let log = scratch.join("out.log");
    let mut create = CreateTaskRequest::new();
    create.id = id.clone();
    create.bundle = bundle.to_string_lossy().into_owned();
    let mut m = Mount::new();
    m.type_ = "overlay".into();
    m.source = "overlay".into();
    m.options = vec![
        format!("lowerdir={}", lower.display()),
        format!("upperdir={}", upper.display()),
        format!("workdir={}", work.display()),
    ];
    create.rootfs = vec![m];
    create.stdout = format!("file://{}", log.display());
    create.stderr = create.stdout.clone();
    create.options = MessageField::some(options_any(&cleanup.hull_root));
    let pid = task.create(ctx(), &create).expect("create").pid;
    assert!(pid > 0);
    assert_eq!(code_of(task.create(ctx(), &create)), Code::ALREADY_EXISTS);
    let mountinfo =
        || std::fs::read_to_string(format!("/proc/{shim_pid}/mountinfo")).unwrap_or_default();
    let rootfs = bundle.join("rootfs").to_string_lossy().into_owned();
    assert!(
        mountinfo().contains(&format!(" {rootfs} ")),
        "rootfs not mounted"
    );

    let mut start = StartRequest::new();
    start.id = id.clone();
    assert_eq!(task.start(ctx(), &start).expect("start").pid, pid);
    assert_eq!(
        code_of(task.start(ctx(), &start)),
        Code::FAILED_PRECONDITION
    );
    let mut state = StateRequest::new();
    state.id = id.clone();
    assert_eq!(
        task.state(ctx(), &state).unwrap().status.enum_value(),
        Ok(Status::RUNNING)
    );
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("out-line") && t.contains("err-line"))
    }));

    // Update, then Stats shows the new limit.
    let mut update = UpdateTaskRequest::new();
    update.id = id.clone();
    let mut res = Any::new();
    res.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into();
    res.value = br#"{"memory":{"limit":67108864,"swap":67108864}}"#.to_vec();
    update.resources = MessageField::some(res);
    task.update(ctx(), &update).expect("update");
    let mut stats = StatsRequest::new();
    stats.id = id.clone();
    let any = task.stats(ctx(), &stats).expect("stats").stats.unwrap();
    if any.type_url == "io.containerd.cgroups.v1.Metrics" {
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.memory.usage.limit, 67108864);
        assert!(m.pids.current >= 1);
    } else {
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    }

    // Bad requests: the right codes, no panic.
    let mut cp = CheckpointTaskRequest::new();
    cp.id = id.clone();
    assert_eq!(code_of(task.checkpoint(ctx(), &cp)), Code::UNIMPLEMENTED);
    let mut bad_state = StateRequest::new();
    bad_state.id = "nope".into();
    assert_eq!(code_of(task.state(ctx(), &bad_state)), Code::NOT_FOUND);
    let mut kill = KillRequest::new();
    kill.id = id.clone();
    kill.signal = 999;
    assert_eq!(code_of(task.kill(ctx(), &kill)), Code::INVALID_ARGUMENT);
    let mut bad_exec = ExecProcessRequest::new();
    bad_exec.id = id.clone();
    bad_exec.exec_id = "x".into();
    assert_eq!(code_of(task.exec(ctx(), &bad_exec)), Code::INVALID_ARGUMENT);
    let mut del = DeleteRequest::new();
    del.id = id.clone();
    assert_eq!(code_of(task.delete(ctx(), &del)), Code::FAILED_PRECONDITION);

    // Execs: exit status through Wait and Delete; one OOM-killed.
    let run_exec = |exec_id: &str, script: &str| -> u32 {
        let mut exec = ExecProcessRequest::new();
        exec.id = id.clone();
        exec.exec_id = exec_id.into();
        let mut spec = Any::new();
        spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        spec.value = json!({"args": ["sh", "-c", script], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}})
            .to_string()
            .into_bytes();
        exec.spec = MessageField::some(spec);
        task.exec(ctx(), &exec).expect("exec");
        let mut start_exec = StartRequest::new();
        start_exec.id = id.clone();
        start_exec.exec_id = exec_id.into();
        task.start(ctx(), &start_exec).expect("start exec");
        let mut wait = WaitRequest::new();
        wait.id = id.clone();
        wait.exec_id = exec_id.into();
        let status = task.wait(ctx(), &wait).expect("wait exec").exit_status;
        let mut del_exec = DeleteRequest::new();
        del_exec.id = id.clone();
        del_exec.exec_id = exec_id.into();
        assert_eq!(
            task.delete(ctx(), &del_exec)
                .expect("delete exec")
                .exit_status,
            status
        );
        status
    };
    assert_eq!(run_exec("e1", "exit 7"), 7);
    // 64 MiB limit: a 200 MB string in a shell variable does not fit.
    assert_eq!(
        run_exec(
            "oom",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}"
        ),
        137
    );
    assert!(
        wait_until(Duration::from_secs(5), || topics
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.starts_with("/tasks/oom "))),
        "no /tasks/oom event: {:?}\nshim log:\n{}",
        topics.lock().unwrap(),
        std::fs::read_to_string(bundle.join("log")).unwrap_or_default()
    );

    // Kill, wait, delete: status 137, rootfs unmounted, files removed.
    kill.signal = 9;
    task.kill(ctx(), &kill).expect("kill");
    let mut wait_init = WaitRequest::new();
    wait_init.id = id.clone();
    assert_eq!(task.wait(ctx(), &wait_init).expect("wait").exit_status, 137);
    assert_eq!(task.delete(ctx(), &del).expect("delete").exit_status, 137);
    assert!(
        !mountinfo().contains(&format!(" {rootfs} ")),
        "rootfs still mounted"
    );
    for f in ["hull-shim.json", "init.pid", "log.json"] {
        assert!(!bundle.join(f).exists(), "{f} left in the bundle");
    }
    assert!(
        cgroup_dirs_named(&id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs_named(&id)
    );

    // Shutdown: the shim exits and removes its socket and files.
    task.shutdown(ctx(), &ShutdownRequest::new())
        .expect("shutdown");
    let shim = cleanup.shim.expect("shim process");
    assert!(
        wait_until(Duration::from_secs(5), || !shim.is_alive()),
        "shim still running"
    );
    let socket = PathBuf::from(address.trim_start_matches("unix://"));
    assert!(!socket.exists() && !bundle.join("address").exists());

    events.shutdown();
    let topics: Vec<String> = topics
        .lock()
        .unwrap()
        .iter()
        .filter(|t| !t.starts_with("/tasks/oom "))
        .cloned()
        .collect();
    let want = [
        "/tasks/create containerd.events.TaskCreate",
        "/tasks/start containerd.events.TaskStart",
        "/tasks/exec-added containerd.events.TaskExecAdded",
        "/tasks/exec-started containerd.events.TaskExecStarted",
        "/tasks/exit containerd.events.TaskExit",
        "/tasks/exec-added containerd.events.TaskExecAdded",
        "/tasks/exec-started containerd.events.TaskExecStarted",
        "/tasks/exit containerd.events.TaskExit",
        "/tasks/exit containerd.events.TaskExit",
        "/tasks/delete containerd.events.TaskDelete",
    ];
    assert_eq!(topics, want);
}
