//! `hullctl run` and `create`: image → snapshot → OCI spec → container
//! record → task, as nerdctl does it against containerd.

use super::args::RunArgs;
use super::network::on_cni;
use super::stdio::{Fifos, RawTerminal};
use super::{container_dir, Ctx, Exit, NAME_LABEL, RESTART_LABEL, RUNTIME, SPEC_TYPE_URL};
use crate::client::Client;
use crate::status;
use hull_api::containers::{container, Container, CreateContainerRequest};
use hull_api::snapshots::{MountsRequest, PrepareSnapshotRequest};
use hull_api::tasks::{CreateTaskRequest, StartRequest, WaitRequest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// docker's exit statuses for what went wrong before the program ran.
pub const EXIT_DAEMON: i32 = 125;
const EXIT_CANNOT_EXEC: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

/// The status `docker run` leaves with when the task could not start.
pub fn start_failure(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("permission denied") {
        EXIT_CANNOT_EXEC
    } else if m.contains("not found") || m.contains("no such file") {
        EXIT_NOT_FOUND
    } else {
        EXIT_DAEMON
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The image for the host's platform: pulled (and unpacked) if absent.
async fn ensure_image(ctx: &Ctx<'_>, image: &str, snapshotter: &str) -> Result<String, String> {
    let name = crate::images::normalise(image)?;
    let present = ctx
        .c
        .images()
        .get(hull_api::images::GetImageRequest { name: name.clone() })
        .await
        .is_ok();
    if !present {
        eprintln!("Unable to find image '{name}' locally");
        let args = crate::PullArgs {
            reference: name.clone(),
            platform: None,
            max_concurrent_downloads: None,
            quiet: false,
            no_unpack: false,
            snapshotter: Some(snapshotter.to_string()),
        };
        crate::pull::pull_quietly(ctx.c, args).await?;
    }
    Ok(name)
}

/// Reads files of the image (for user names) from the container's
/// snapshot directories, topmost first, stopping at whiteouts.
struct SnapshotFiles {
    dirs: Vec<PathBuf>,
}

impl hull_spec::RootfsFiles for SnapshotFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileTypeExt;
        let rel = path.trim_start_matches('/');
        for dir in &self.dirs {
            let p = dir.join(rel);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            // An overlay whiteout: deleted in this layer.
            if meta.file_type().is_char_device() {
                return None;
            }
            if !meta.is_file() || meta.len() > 1 << 20 {
                return None;
            }
            return std::fs::read(&p).ok();
        }
        None
    }
}

fn snapshot_dirs(mounts: &[hull_api::types::Mount]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        if m.r#type == "bind" {
            dirs.push(PathBuf::from(&m.source));
        }
        for o in &m.options {
            if let Some(u) = o.strip_prefix("upperdir=") {
                dirs.insert(0, PathBuf::from(u));
            } else if let Some(l) = o.strip_prefix("lowerdir=") {
                dirs.extend(l.split(':').map(PathBuf::from));
            }
        }
    }
    dirs
}

fn env_with_files(a: &RunArgs) -> Result<Vec<String>, String> {
    let mut env = Vec::new();
    for file in &a.env_file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("--env-file {file}: {e}"))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    env.extend(a.env.iter().cloned());
    // `-e NAME` takes NAME from hullctl's environment (dropped if unset).
    Ok(env
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect())
}

/// Create the container (record and snapshot); returns its id.
pub async fn create_container(ctx: &Ctx<'_>, a: &RunArgs) -> Result<String, String> {
    let (image, args) = a.image_and_args.split_first().ok_or("no image given")?;
    if !["no", "always", "on-failure"].contains(&a.restart.as_str()) {
        return Err(format!(
            "--restart {:?}: use no, always or on-failure",
            a.restart
        ));
    }
    let image_name = ensure_image(ctx, image, &a.snapshotter).await?;
    let (config_digest, top) =
        crate::images::config_and_snapshot(ctx.c, &image_name, &a.snapshotter).await?;
    let config =
        hull_spec::ImageConfig::parse(&crate::images::read_blob(ctx.c, &config_digest).await?)
            .map_err(|e| format!("image {image_name}: {e}"))?;
    let id = random_id();
    let name = match &a.name {
        Some(n) => n.clone(),
        None => format!(
            "{}-{}",
            image_name
                .rsplit('/')
                .next()
                .unwrap_or("c")
                .split([':', '@'])
                .next()
                .unwrap_or("c"),
            &id[..5]
        ),
    };
    let existing = super::list(ctx.c).await?;
    if existing.iter().any(|c| super::name_of(c) == name) {
        return Err(format!(
            "the name {name:?} is in use by another container: remove it or choose another --name"
        ));
    }
    // Under a lease until the container record holds the snapshot.
    let leased = ctx.c.with_lease().await?;
    let result = create_under_lease(
        ctx,
        &leased,
        a,
        &id,
        &name,
        &image_name,
        &top,
        &config,
        args,
    )
    .await;
    leased.release().await;
    result.map(|_| id)
}

#[allow(clippy::too_many_arguments)]
async fn create_under_lease(
    ctx: &Ctx<'_>,
    c: &Client,
    a: &RunArgs,
    id: &str,
    name: &str,
    image_name: &str,
    top: &str,
    config: &hull_spec::ImageConfig,
    args: &[String],
) -> Result<(), String> {
    let mounts = c
        .snapshots()
        .prepare(PrepareSnapshotRequest {
            snapshotter: a.snapshotter.clone(),
            key: id.to_string(),
            parent: top.to_string(),
            labels: HashMap::new(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .mounts;
    let files = SnapshotFiles {
        dirs: snapshot_dirs(&mounts),
    };
    let network = super::network::choose(a)?;
    let hostname = match (&a.hostname, network.host) {
        (Some(h), _) => h.clone(),
        (None, true) => super::network::host_name().unwrap_or_else(|| id[..12].to_string()),
        (None, false) => id[..12].to_string(),
    };
    let dir = container_dir(ctx.data_root, ctx.namespace, id);
    let options = hull_spec::RunOptions {
        id: id.to_string(),
        namespace: ctx.namespace.to_string(),
        hostname: Some(hostname.clone()),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        args: args.to_vec(),
        env: env_with_files(a)?,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty: a.tty,
        stdin_open: a.interactive,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        memory: a
            .memory
            .as_deref()
            .map(hull_spec::parse_memory)
            .transpose()
            .map_err(|e| e.to_string())?,
        cpus: a
            .cpus
            .as_deref()
            .map(hull_spec::parse_cpus)
            .transpose()
            .map_err(|e| e.to_string())?,
        pids_limit: a.pids_limit,
        volumes: a
            .volumes
            .iter()
            .map(|v| v.parse().map_err(|e: hull_spec::SpecError| e.to_string()))
            .collect::<Result<_, _>>()?,
        tmpfs: a
            .tmpfs
            .iter()
            .map(|v| v.parse().map_err(|e: hull_spec::SpecError| e.to_string()))
            .collect::<Result<_, _>>()?,
        cgroup_parent: a.cgroup_parent.clone(),
        etc_files: super::network::write_etc_files(&dir, &hostname, a, network.host)?,
        network: network.spec.clone(),
        // What "all capabilities" and "all devices" mean here: the ones
        // this host (and so hulld, run by the same root) has.
        host_capabilities: Some(hull_spec::current_capabilities().map_err(|e| e.to_string())?),
        host_devices: if a.privileged {
            hull_spec::host_devices(Path::new("/dev")).map_err(|e| e.to_string())?
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    // docker creates a missing host directory of a bind mount.
    for v in &options.volumes {
        if !v.host.exists() {
            std::fs::create_dir_all(&v.host)
                .map_err(|e| format!("-v {}: creating it: {e}", v.host.display()))?;
        }
    }
    let spec = hull_spec::generate(config, &options, &files).map_err(|e| e.to_string())?;
    let spec_json = serde_json::to_vec(&spec).map_err(|e| format!("encoding the spec: {e}"))?;
    let mut labels: HashMap<String, String> = [
        (NAME_LABEL.to_string(), name.to_string()),
        (RESTART_LABEL.to_string(), a.restart.clone()),
        (
            super::lifecycle::STOP_SIGNAL_LABEL.to_string(),
            config.stop_signal().to_string(),
        ),
    ]
    .into();
    labels.extend(network.labels);
    c.containers()
        .create(CreateContainerRequest {
            container: Some(Container {
                id: id.to_string(),
                labels,
                image: image_name.to_string(),
                runtime: Some(container::Runtime {
                    name: RUNTIME.into(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: SPEC_TYPE_URL.into(),
                    value: spec_json,
                }),
                snapshotter: a.snapshotter.clone(),
                snapshot_key: id.to_string(),
                ..Default::default()
            }),
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn create(ctx: &Ctx<'_>, a: RunArgs) -> Exit {
    let id = create_container(ctx, &a).await?;
    println!("{id}");
    Ok(0)
}

pub async fn run(ctx: &Ctx<'_>, a: RunArgs) -> Exit {
    let id = match create_container(ctx, &a).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("hullctl: {}", crate::output::safe(&e));
            return Ok(EXIT_DAEMON);
        }
    };
    if a.detach {
        return match start_detached(ctx, &id, a.tty, on_cni(&a.network)).await {
            Ok(()) => {
                println!("{id}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("hullctl: {}", crate::output::safe(&e));
                Ok(start_failure(&e))
            }
        };
    }
    let code = run_attached(ctx, &id, a.interactive, a.tty, on_cni(&a.network)).await;
    if a.rm {
        if let Err(e) = super::lifecycle::remove(ctx, &id, true).await {
            eprintln!("hullctl: removing {id}: {}", crate::output::safe(&e));
        }
    }
    Ok(code)
}

/// Where a detached container's output goes (the shim appends to it).
pub fn log_path(ctx: &Ctx<'_>, id: &str) -> PathBuf {
    container_dir(ctx.data_root, ctx.namespace, id).join("container.log")
}

/// `networked`: the container is on a CNI network (its address goes into
/// its /etc/hosts before it starts).
pub async fn start_detached(
    ctx: &Ctx<'_>,
    id: &str,
    tty: bool,
    networked: bool,
) -> Result<(), String> {
    // Records per line (stream and time) for `logs`, not raw bytes.
    let log = format!("file://{}?format=json", log_path(ctx, id).display());
    ctx.c
        .tasks()
        .create(CreateTaskRequest {
            container_id: id.to_string(),
            stdout: log.clone(),
            stderr: log,
            terminal: tty,
            ..Default::default()
        })
        .await
        .map_err(status)?;
    start_task(ctx, id, networked).await?;
    Ok(())
}

/// Start the container's init process (its task was created, and with it
/// its network: its address goes into its /etc/hosts first; asked of hulld
/// only for a container on a CNI network).
async fn start_task(ctx: &Ctx<'_>, id: &str, networked: bool) -> Result<(), String> {
    if networked {
        super::network::record_address(ctx, id).await?;
    }
    let request = StartRequest {
        container_id: id.to_string(),
        exec_id: String::new(),
    };
    ctx.c.tasks().start(request).await.map(drop).map_err(status)
}

/// Start with the terminal attached; the container's exit status.
pub async fn run_attached(ctx: &Ctx<'_>, id: &str, stdin: bool, tty: bool, networked: bool) -> i32 {
    match attached(ctx, id, stdin, tty, networked).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hullctl: {}", crate::output::safe(&e));
            start_failure(&e)
        }
    }
}

async fn attached(
    ctx: &Ctx<'_>,
    id: &str,
    stdin: bool,
    tty: bool,
    networked: bool,
) -> Result<i32, String> {
    let base = container_dir(ctx.data_root, ctx.namespace, id);
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let fifos = Fifos::new(&base, "init", stdin, tty)?;
    let outputs = fifos.copy();
    ctx.c
        .tasks()
        .create(CreateTaskRequest {
            container_id: id.to_string(),
            stdin: Fifos::path(&fifos.stdin),
            stdout: fifos.stdout.display().to_string(),
            stderr: Fifos::path(&fifos.stderr),
            terminal: tty,
            ..Default::default()
        })
        .await
        .map_err(status)?;
    let _raw = (tty && stdin).then(RawTerminal::enter);
    start_task(ctx, id, networked).await?;
    let code = super::exec::relay_until_exit(ctx.c, id, "", tty).await?;
    drop(_raw);
    for t in outputs {
        let _ = t.join();
    }
    Ok(code)
}

/// Wait for a process of `id` (`exec_id` "" for the container's own).
pub async fn wait(c: &Client, id: &str, exec_id: &str) -> Result<i32, String> {
    let w = c
        .tasks()
        .wait(WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(w.exit_status as i32)
}

/// The image files of a container, read from its snapshot's directories.
pub async fn snapshot_files(
    c: &Client,
    container: &Container,
) -> Result<impl hull_spec::RootfsFiles, String> {
    let mounts = c
        .snapshots()
        .mounts(MountsRequest {
            snapshotter: container.snapshotter.clone(),
            key: container.snapshot_key.clone(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .mounts;
    Ok(SnapshotFiles {
        dirs: snapshot_dirs(&mounts),
    })
}
