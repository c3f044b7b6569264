//! `hullctl exec` and `attach`, and relaying signals and terminal sizes to
//! a process until it exits.

use super::args::ExecArgs;
use super::stdio::{terminal_size, Fifos, RawTerminal};
use super::{container_dir, Ctx, Exit};
use crate::client::Client;
use crate::status;
use hull_api::tasks::{
    DeleteProcessRequest, ExecProcessRequest, KillRequest, ResizePtyRequest, StartRequest,
};
use tokio::signal::unix::{signal, SignalKind};

/// The Any type URL containerd gives an OCI process spec.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

async fn resize(c: &Client, id: &str, exec_id: &str) {
    if let Some((width, height)) = terminal_size() {
        let _ = c
            .tasks()
            .resize_pty(ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            })
            .await;
    }
}

/// Forward signals (without a pty: as docker's sig-proxy) or terminal
/// sizes (with one) to a process until it exits; its exit status.
pub async fn relay_until_exit(
    c: &Client,
    id: &str,
    exec_id: &str,
    tty: bool,
) -> Result<i32, String> {
    let mut relays = Vec::new();
    if tty {
        resize(c, id, exec_id).await;
        if let Ok(mut winch) = signal(SignalKind::window_change()) {
            let (c, id, exec_id) = (c.clone(), id.to_string(), exec_id.to_string());
            relays.push(tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    resize(&c, &id, &exec_id).await;
                }
            }));
        }
    } else {
        for (kind, number) in [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
            (SignalKind::quit(), libc::SIGQUIT),
        ] {
            let Ok(mut s) = signal(kind) else { continue };
            let (c, id, exec_id) = (c.clone(), id.to_string(), exec_id.to_string());
            relays.push(tokio::spawn(async move {
                while s.recv().await.is_some() {
                    let _ = c
                        .tasks()
                        .kill(KillRequest {
                            container_id: id.clone(),
                            exec_id: exec_id.clone(),
                            signal: number as u32,
                            all: false,
                        })
                        .await;
                }
            }));
        }
    }
    let code = super::run::wait(c, id, exec_id).await;
    for r in relays {
        r.abort();
    }
    code
}

fn random_exec_id() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    format!(
        "exec-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The process to exec: the container's own (user, capabilities, env) with
/// the command, terminal, user, cwd and extra env of the exec.
async fn exec_process(
    ctx: &Ctx<'_>,
    container: &hull_api::containers::Container,
    a: &ExecArgs,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let spec: serde_json::Value = container
        .spec
        .as_ref()
        .map(|s| serde_json::from_slice(&s.value))
        .transpose()
        .map_err(|e| format!("container {}: its spec does not parse: {e}", container.id))?
        .unwrap_or_default();
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(args);
    process["terminal"] = serde_json::json!(a.tty);
    if let Some(w) = &a.workdir {
        process["cwd"] = serde_json::json!(w);
    }
    if let Some(u) = &a.user {
        let (uid, gid) = super::show::numeric_user(ctx, container, u).await?;
        process["user"] = serde_json::json!({"uid": uid, "gid": gid});
    }
    let mut env: Vec<String> = process["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    process["env"] = serde_json::json!(env);
    Ok(process)
}

pub async fn exec(ctx: &Ctx<'_>, a: ExecArgs) -> Exit {
    match exec_inner(ctx, &a).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("hullctl: {}", crate::output::safe(&e));
            Ok(super::run::start_failure(&e))
        }
    }
}

async fn exec_inner(ctx: &Ctx<'_>, a: &ExecArgs) -> Result<i32, String> {
    let (name, args) = a
        .container_and_args
        .split_first()
        .ok_or("no container given")?;
    if args.is_empty() {
        return Err("no command given: hullctl exec CONTAINER COMMAND [ARG...]".into());
    }
    let container = super::find(ctx.c, name).await?;
    let process = exec_process(ctx, &container, a, args).await?;
    let exec_id = random_exec_id();
    let base = container_dir(ctx.data_root, ctx.namespace, &container.id);
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let fifos = (!a.detach)
        .then(|| Fifos::new(&base, &exec_id, a.interactive, a.tty))
        .transpose()?;
    let outputs = fifos.as_ref().map(|f| f.copy()).unwrap_or_default();
    let path = |p: Option<String>| p.unwrap_or_default();
    ctx.c
        .tasks()
        .exec(ExecProcessRequest {
            container_id: container.id.clone(),
            stdin: path(fifos.as_ref().map(|f| Fifos::path(&f.stdin))),
            stdout: path(fifos.as_ref().map(|f| f.stdout.display().to_string())),
            stderr: path(fifos.as_ref().map(|f| Fifos::path(&f.stderr))),
            terminal: a.tty,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE_URL.into(),
                value: serde_json::to_vec(&process).map_err(|e| e.to_string())?,
            }),
            exec_id: exec_id.clone(),
        })
        .await
        .map_err(status)?;
    let raw = (a.tty && a.interactive).then(RawTerminal::enter);
    let started = ctx
        .c
        .tasks()
        .start(StartRequest {
            container_id: container.id.clone(),
            exec_id: exec_id.clone(),
        })
        .await
        .map_err(status);
    if let Err(e) = started {
        drop(raw);
        let _ = delete_process(ctx.c, &container.id, &exec_id).await;
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = relay_until_exit(ctx.c, &container.id, &exec_id, a.tty).await;
    drop(raw);
    for t in outputs {
        let _ = t.join();
    }
    let _ = delete_process(ctx.c, &container.id, &exec_id).await;
    code
}

async fn delete_process(c: &Client, id: &str, exec_id: &str) -> Result<(), String> {
    c.tasks()
        .delete_process(DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        })
        .await
        .map(drop)
        .map_err(status)
}

/// Follow a running container's output (its log) until it exits.
pub async fn attach(ctx: &Ctx<'_>, name: &str) -> Exit {
    let container = super::find(ctx.c, name).await?;
    let log = super::run::log_path(ctx, &container.id);
    let follow = super::logs::show_log(
        log,
        super::logs::Show {
            tail: None,
            follow: true,
            timestamps: false,
        },
    );
    tokio::pin!(follow);
    let code = tokio::select! {
        code = relay_until_exit(ctx.c, &container.id, "", false) => code?,
        // The follower ends only on an error.
        r = &mut follow => { r?; return Ok(0) }
    };
    super::logs::drain(follow).await?;
    Ok(code)
}
