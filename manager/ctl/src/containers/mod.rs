//! The nerdctl-shaped container commands (`run`, `ps`, `logs`, `exec`,
//! `stop`, `rm`, ...), as a client of containerd's Containers and Tasks
//! services on hulld: a container is a record with the OCI spec hullctl
//! generates from the image (hull-spec), a snapshot on top of the image's
//! layers, and a task run by the shim.
//!
//! Files hullctl keeps per container (hostname, hosts, resolv.conf, the log
//! of a detached container) live under `--data-root`
//! (`/var/lib/hullctl/<namespace>/<id>`), as nerdctl keeps its own.

pub mod args;
mod exec;
mod lifecycle;
mod logs;
pub mod network;
mod run;
mod show;
mod stdio;

pub use args::ContainerCmd;

use crate::client::Client;
use crate::output::Format;
use crate::status;
use hull_api::containers::{Container, GetContainerRequest, ListContainersRequest};
use std::path::{Path, PathBuf};

/// Label with a container's name (names are unique per namespace).
pub const NAME_LABEL: &str = hull_network::labels::NAME;
/// Label with the restart policy ("no", "always", "on-failure").
pub const RESTART_LABEL: &str = "hull/restart";
/// The Any type URL containerd gives an OCI runtime spec.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The runtime hulld runs containers with.
pub const RUNTIME: &str = "io.containerd.hull.v2";

/// How a command ended: the exit status to leave with.
pub type Exit = Result<i32, String>;

/// Where hullctl keeps a container's files.
pub fn container_dir(data_root: &Path, ns: &str, id: &str) -> PathBuf {
    data_root.join(ns).join(id)
}

pub fn name_of(c: &Container) -> String {
    c.labels
        .get(NAME_LABEL)
        .cloned()
        .unwrap_or_else(|| c.id.clone())
}

/// Every container of the namespace.
pub async fn list(c: &Client) -> Result<Vec<Container>, String> {
    let mut list = c
        .containers()
        .list(ListContainersRequest::default())
        .await
        .map_err(status)?
        .into_inner()
        .containers;
    list.sort_by(|a, b| {
        a.created_at
            .map(|t| t.seconds)
            .cmp(&b.created_at.map(|t| t.seconds))
    });
    Ok(list)
}

/// A container by name, full id, or unique id prefix (as docker).
pub async fn find(c: &Client, name_or_id: &str) -> Result<Container, String> {
    if let Ok(found) = c
        .containers()
        .get(GetContainerRequest {
            id: name_or_id.to_string(),
        })
        .await
    {
        if let Some(container) = found.into_inner().container {
            return Ok(container);
        }
    }
    let all = list(c).await?;
    if let Some(by_name) = all.iter().find(|x| name_of(x) == name_or_id) {
        return Ok(by_name.clone());
    }
    let prefixed: Vec<&Container> = all
        .iter()
        .filter(|x| x.id.starts_with(name_or_id))
        .collect();
    match prefixed.as_slice() {
        [one] if !name_or_id.is_empty() => Ok((*one).clone()),
        [] | [_] => Err(format!("no such container: {name_or_id}")),
        many => Err(format!(
            "{name_or_id} matches {} containers: give more of the id",
            many.len()
        )),
    }
}

pub async fn dispatch(
    c: &Client,
    cmd: ContainerCmd,
    format: Format,
    data_root: &Path,
    namespace: &str,
) -> Exit {
    let ctx = Ctx {
        c,
        format,
        data_root,
        namespace,
    };
    match cmd {
        ContainerCmd::Run(a) => run::run(&ctx, *a).await,
        ContainerCmd::Create(a) => run::create(&ctx, *a).await,
        ContainerCmd::Start(a) => lifecycle::start(&ctx, a).await,
        ContainerCmd::Stop(a) => lifecycle::stop(&ctx, a).await,
        ContainerCmd::Kill(a) => lifecycle::kill(&ctx, a).await,
        ContainerCmd::Rm(a) => lifecycle::rm(&ctx, a).await,
        ContainerCmd::Pause { containers } => lifecycle::pause(&ctx, &containers, true).await,
        ContainerCmd::Unpause { containers } => lifecycle::pause(&ctx, &containers, false).await,
        ContainerCmd::Wait { containers } => lifecycle::wait(&ctx, &containers).await,
        ContainerCmd::Ps(a) => show::ps(&ctx, a).await,
        ContainerCmd::Logs(a) => logs::logs(&ctx, a).await,
        ContainerCmd::Inspect { containers } => show::inspect(&ctx, &containers).await,
        ContainerCmd::Top { container } => show::top(&ctx, &container).await,
        ContainerCmd::Stats(a) => show::stats(&ctx, a).await,
        ContainerCmd::Exec(a) => exec::exec(&ctx, a).await,
        ContainerCmd::Attach { container } => exec::attach(&ctx, &container).await,
        ContainerCmd::Port { container } => network::port(&ctx, &container).await,
    }
}

/// What every container command works with.
pub struct Ctx<'a> {
    pub c: &'a Client,
    pub format: Format,
    pub data_root: &'a Path,
    pub namespace: &'a str,
}
