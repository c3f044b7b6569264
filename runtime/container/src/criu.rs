//! `checkpoint` and `restore` with CRIU, driven through its command line
//! (runc talks to CRIU's RPC service; the options are the same).
//!
//! CRIU is checked before anything is touched: missing, or unable to work
//! on this host (`criu check` fails, e.g. CRIU 3.17 on kernels whose vDSO
//! it does not know), the command fails with CRIU's own reason and the
//! container is left as it was.
//!
//! Checkpoint dumps the init's process tree with the container's bind
//! mounts, devices and masked paths declared external (they are the
//! host's), the freezer cgroup for collecting the processes, and runc's
//! `descriptors.json` (what the init's stdio was) beside the images; unless
//! asked to leave it running, the container is then deleted, as with runc.
//! Restore creates the container's cgroups from the bundle, runs CRIU in
//! them (so the restored processes are the container's), with the rootfs
//! bound in a private mount namespace of its own as CRIU's root, the
//! external mounts mapped back to their sources and the stdio pipes
//! inherited from the caller, and records the restored init.

use crate::bail;
use crate::cgroup::ContainerCgroup;
use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::spec::Bundle;
use crate::state::{self, Record, StateDir, Status};
use oci_spec::runtime::Spec;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// The stdio of the init at checkpoint (runc's file name and format).
const DESCRIPTORS: &str = "descriptors.json";

/// runc's checkpoint/restore options.
#[derive(Debug, Clone, Default)]
pub struct CriuOptions {
    pub image_path: Option<PathBuf>,
    pub work_path: Option<PathBuf>,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub lazy_pages: bool,
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT
    pub page_server: Option<String>,
    pub file_locks: bool,
    pub pre_dump: bool,
    /// soft, full, strict (or ignore)
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces to create empty ("network").
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// A CRIU binary that works on this host.
pub struct Criu {
    path: PathBuf,
}

impl Criu {
    /// Find CRIU (`--criu PATH`, else `criu` in PATH) and check that it can
    /// work here; `what` ("checkpoint", "restore") starts the error.
    pub fn usable(criu: Option<&Path>, what: &str) -> Result<Criu> {
        let path = match criu {
            Some(p) if p.components().count() > 1 => {
                if !p.exists() {
                    bail!(
                        "{what} needs CRIU, and {} does not exist: install criu or fix --criu",
                        p.display()
                    );
                }
                p.to_path_buf()
            }
            _ => {
                let name = criu.unwrap_or(Path::new("criu"));
                find_in_path(name).ok_or_else(|| {
                    Error::msg(format!(
                        "{what} needs CRIU, and {} was not found in PATH: install criu (Debian: apt-get install criu) or pass --criu PATH",
                        name.display()
                    ))
                })?
            }
        };
        let out = Command::new(&path)
            .arg("check")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::io(
                    format!("{what} needs CRIU: running {} check", path.display()),
                    e,
                )
            })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            bail!(
                "{what} needs CRIU, and {} cannot work on this host: `criu check` failed: {}",
                path.display(),
                first_error(&text).unwrap_or("no reason given")
            );
        }
        Ok(Criu { path })
    }

    /// Run CRIU with `args`; on failure the error names the log file and
    /// CRIU's first error in it.
    fn run(&self, action: &str, args: &[OsString], log: &Path, setup: Setup) -> Result<()> {
        crate::debug!("criu {action}: {} {:?}", self.path.display(), args);
        let mut cmd = Command::new(&self.path);
        cmd.args(args).stdin(Stdio::inherit());
        if !setup.cgroup_procs.is_empty() {
            let files: Vec<std::ffi::CString> = setup
                .cgroup_procs
                .iter()
                .filter_map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok())
                .collect();
            // SAFETY: between fork and exec the child only opens and writes
            // files with raw syscalls (no allocation): it moves itself into
            // the container's cgroups, so that CRIU's restored tasks are the
            // container's.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    for f in &files {
                        let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                        libc::close(fd);
                        if n < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let status = cmd
            .status()
            .map_err(|e| Error::io(format!("running {} {action}", self.path.display()), e))?;
        if status.success() {
            return Ok(());
        }
        let logged = std::fs::read_to_string(log).unwrap_or_default();
        bail!(
            "criu {action} failed ({status}): {} (log: {})",
            first_error(&logged).unwrap_or("see the log"),
            log.display()
        )
    }
}

/// What CRIU's process does before exec.
#[derive(Default)]
struct Setup {
    /// `cgroup.procs` files to move itself into.
    cgroup_procs: Vec<PathBuf>,
}

fn find_in_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The message of CRIU's first "Error (file:line): message" line.
fn first_error(text: &str) -> Option<&str> {
    text.lines()
        .filter_map(|l| l.split_once("Error (").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once("): ").map(|(_, msg)| msg.trim()))
        .find(|msg| !msg.is_empty() && !msg.starts_with("exited, status"))
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
}

fn flag(args: &mut Vec<OsString>, on: bool, name: &str) {
    if on {
        args.push(name.into());
    }
}

fn pair(args: &mut Vec<OsString>, name: &str, value: impl Into<OsString>) {
    args.push(name.into());
    args.push(value.into());
}

/// The options dump and restore share.
fn common_args(args: &mut Vec<OsString>, opts: &CriuOptions) -> Result<()> {
    flag(args, opts.shell_job, "--shell-job");
    flag(args, opts.tcp_established, "--tcp-established");
    flag(args, opts.ext_unix_sk, "--ext-unix-sk");
    flag(args, opts.file_locks, "--file-locks");
    flag(args, opts.auto_dedup, "--auto-dedup");
    flag(args, opts.lazy_pages, "--lazy-pages");
    for ns in &opts.empty_ns {
        match ns.as_str() {
            "network" | "net" => pair(args, "--empty-ns", "net"),
            other => bail!("--empty-ns {other:?}: only \"network\" can be created empty"),
        }
    }
    match opts.manage_cgroups_mode.as_deref() {
        None => {}
        Some(m @ ("soft" | "full" | "strict" | "ignore")) => {
            args.push(format!("--manage-cgroups={m}").into())
        }
        Some(other) => bail!("invalid --manage-cgroups-mode {other:?}: use soft, full or strict"),
    }
    Ok(())
}

/// Mount points of the container that are the host's (bind mounts, devices,
/// masked files): CRIU dumps them as external, keyed by their destination.
fn external_mounts(spec: &Spec) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if bind {
            if let Some(src) = m.source() {
                out.push((m.destination().clone(), src.clone()));
            }
        }
    }
    let linux = spec.linux().as_ref();
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        out.push((d.path().clone(), d.path().clone()));
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        // Files are masked with a bind of /dev/null (directories with a tmpfs).
        out.push((PathBuf::from(p), PathBuf::from("/dev/null")));
    }
    out
}

/// `criu dump` (or pre-dump) arguments for the container whose init is `pid`.
pub fn dump_args(
    spec: &Spec,
    rootfs: &Path,
    pid: i32,
    freezer: Option<&Path>,
    images: &Path,
    work: &Path,
    opts: &CriuOptions,
) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> = vec![if opts.pre_dump { "pre-dump" } else { "dump" }.into()];
    pair(&mut args, "--tree", pid.to_string());
    pair(&mut args, "--images-dir", images);
    pair(&mut args, "--work-dir", work);
    pair(&mut args, "--log-file", "dump.log");
    args.push("-v4".into());
    pair(&mut args, "--root", rootfs);
    args.push("--manage-cgroups".into());
    flag(
        &mut args,
        opts.leave_running || opts.pre_dump,
        "--leave-running",
    );
    if let Some(f) = freezer {
        pair(&mut args, "--freeze-cgroup", f);
    }
    common_args(&mut args, opts)?;
    if let Some(parent) = &opts.parent_path {
        pair(&mut args, "--prev-images-dir", parent);
        args.push("--track-mem".into());
    }
    if opts.pre_dump && opts.parent_path.is_none() {
        args.push("--track-mem".into());
    }
    if let Some(ps) = &opts.page_server {
        let (addr, port) = ps
            .rsplit_once(':')
            .ok_or_else(|| Error::msg(format!("--page-server {ps:?}: use ADDRESS:PORT")))?;
        args.push("--page-server".into());
        pair(&mut args, "--address", addr);
        pair(&mut args, "--port", port);
    }
    if let Some(fd) = opts.status_fd {
        pair(&mut args, "--status-fd", fd.to_string());
    }
    if !opts.pre_dump {
        for (dest, _) in external_mounts(spec) {
            let d = dest.display();
            pair(&mut args, "--external", format!("mnt[{d}]:{d}"));
        }
    }
    Ok(args)
}

/// `checkpoint`: dump the container; then delete it unless it is left
/// running (or only pre-dumped).
pub fn checkpoint(c: &Container, criu: Option<&Path>, opts: &CriuOptions) -> Result<()> {
    match c.status() {
        Status::Running | Status::Paused => {}
        s => bail!(
            "cannot checkpoint container {:?}: {} (it is {s})",
            c.id(),
            crate::runc_errors::NOT_RUNNING
        ),
    }
    let criu = Criu::usable(criu, "checkpoint")?;
    let images = absolute_dir(opts.image_path.as_deref(), "checkpoint")?;
    let work = match &opts.work_path {
        Some(w) => absolute_dir(Some(w), "")?,
        None => images.clone(),
    };
    let spec = c.config()?;
    let pid = c.record.pid;
    if !opts.pre_dump {
        let fds: Vec<String> = (0..3)
            .map(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "/dev/null".into())
            })
            .collect();
        let json = serde_json::to_vec(&fds).unwrap_or_default();
        state::write_atomic(&images.join(DESCRIPTORS), &json)?;
    }
    let freezer = c.cgroup().map(|cg| cg.manager().path().to_path_buf());
    let args = dump_args(
        &spec,
        &c.record.rootfs,
        pid,
        freezer.as_deref(),
        &images,
        &work,
        opts,
    )?;
    criu.run(
        if opts.pre_dump { "pre-dump" } else { "dump" },
        &args,
        &work.join("dump.log"),
        Setup::default(),
    )
    .map_err(|e| e.context(format!("checkpointing container {:?}", c.id())))?;
    if !opts.leave_running && !opts.pre_dump {
        // CRIU killed the dumped processes: the container is gone.
        c.delete(true)?;
    }
    Ok(())
}

/// `dir` made absolute and created (mode 0700, existing is fine); `default`
/// (relative to the working directory) when not given.
fn absolute_dir(dir: Option<&Path>, default: &str) -> Result<PathBuf> {
    let dir = dir.unwrap_or(Path::new(default));
    let dir = std::path::absolute(dir).ctx(|| format!("path {}", dir.display()))?;
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(Error::io(format!("creating {}", dir.display()), e)),
    }
}

/// Options of `restore` besides CRIU's.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc's flag: CRIU restores the mount namespace itself.
    pub no_pivot: bool,
    pub systemd_cgroup: bool,
}

/// `criu restore` arguments.
pub fn restore_args(
    spec: &Spec,
    root: &Path,
    images: &Path,
    work: &Path,
    pidfile: &Path,
    stdio: &[String],
    opts: &CriuOptions,
) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> = vec!["restore".into()];
    pair(&mut args, "--images-dir", images);
    pair(&mut args, "--work-dir", work);
    pair(&mut args, "--log-file", "restore.log");
    args.push("-v4".into());
    pair(&mut args, "--root", root);
    args.push("--restore-detached".into());
    pair(&mut args, "--pidfile", pidfile);
    args.push("--evasive-devices".into());
    // CRIU is started in the container's cgroups: its tasks stay there,
    // with the bundle's limits, unless a mode is asked for.
    if opts.manage_cgroups_mode.is_none() {
        args.push("--manage-cgroups=ignore".into());
    }
    common_args(&mut args, opts)?;
    for (dest, src) in external_mounts(spec) {
        pair(
            &mut args,
            "--external",
            format!("mnt[{}]:{}", dest.display(), src.display()),
        );
    }
    for (fd, what) in stdio.iter().enumerate() {
        if what.contains("pipe:") {
            pair(&mut args, "--inherit-fd", format!("fd[{fd}]:{what}"));
        }
    }
    if let Some(p) = &opts.lsm_profile {
        pair(&mut args, "--lsm-profile", p);
    }
    if let Some(ctx) = &opts.lsm_mount_context {
        pair(&mut args, "--lsm-mount-context", ctx);
    }
    if let Some(fd) = opts.status_fd {
        pair(&mut args, "--status-fd", fd.to_string());
    }
    Ok(args)
}

/// `restore`: the container `id` from the bundle and the images; returns
/// the restored init's pid.
pub fn restore(
    root: &Path,
    id: &str,
    criu: Option<&Path>,
    opts: &CriuOptions,
    ropts: &RestoreOptions,
) -> Result<i32> {
    let dir = StateDir::new(root, id)?;
    if dir.dir.exists() {
        return Err(state::already_exists(id));
    }
    if ropts.console_socket.is_some() {
        bail!("restore --console-socket: hull cannot restore a container with a terminal yet");
    }
    let bundle = Bundle::load(&ropts.bundle)?;
    let criu = Criu::usable(criu, "restore")?;
    let images = absolute_dir(opts.image_path.as_deref(), "checkpoint")?;
    let work = match &opts.work_path {
        Some(w) => absolute_dir(Some(w), "")?,
        None => images.clone(),
    };
    let stdio: Vec<String> = std::fs::read(images.join(DESCRIPTORS))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let cgroup = ContainerCgroup::plan(&bundle.spec, id, ropts.systemd_cgroup)?;
    cgroup.check_unused()?;
    dir.create(root, id)?;
    let pidfile = work.join(format!("restore-{id}.pid"));
    let _ = std::fs::remove_file(&pidfile);
    let restored = (|| -> Result<i32> {
        cgroup.create_with_limits(&bundle.spec)?;
        let args = restore_args(
            &bundle.spec,
            &bundle.rootfs,
            &images,
            &work,
            &pidfile,
            &stdio,
            opts,
        )?;
        in_private_mount_ns(&bundle.rootfs)?;
        criu.run(
            "restore",
            &args,
            &work.join("restore.log"),
            Setup {
                cgroup_procs: cgroup_procs(&cgroup),
            },
        )?;
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ctx(|| format!("reading CRIU's pid file {}", pidfile.display()))?
            .trim()
            .parse()
            .map_err(|_| {
                Error::msg(format!(
                    "CRIU's pid file {} holds no pid",
                    pidfile.display()
                ))
            })?;
        let record = Record {
            id: id.to_string(),
            pid,
            init_start_time: state::process_start_time(pid)
                .ok_or_else(|| Error::msg(format!("the restored init {pid} exited at once")))?,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: crate::timefmt::rfc3339_nano(SystemTime::now()),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            hooks: bundle.spec.hooks().clone(),
            cgroup: Some(cgroup.paths()),
            creator: None,
            host_rootfs: None,
        };
        dir.save_config(&bundle.raw)?;
        dir.save(&record)?;
        if let Some(p) = &ropts.pid_file {
            let p = std::path::absolute(p).ctx(|| format!("--pid-file {}", p.display()))?;
            state::write_atomic(&p, pid.to_string().as_bytes())?;
        }
        Ok(pid)
    })();
    if restored.is_err() {
        let _ = cgroup.manager().kill_all(nix::sys::signal::Signal::SIGKILL);
        if let Err(e) = cgroup.destroy() {
            crate::log::warn(format!("cleanup after failed restore: {e}"));
        }
        if let Err(e) = dir.remove() {
            crate::log::warn(format!("cleanup after failed restore: {e}"));
        }
    }
    restored.map_err(|e| e.context(format!("restoring container {id:?}")))
}

/// The `cgroup.procs` files of the container's cgroups, every hierarchy.
fn cgroup_procs(cg: &ContainerCgroup) -> Vec<PathBuf> {
    let paths = cg.paths();
    paths
        .v1
        .values()
        .chain(paths.unified.as_ref())
        .map(|d| d.join("cgroup.procs"))
        .collect()
}

/// Give this process a private mount namespace with the rootfs bound onto
/// itself (CRIU's --root must be a mount point); nothing reaches the host's.
fn in_private_mount_ns(rootfs: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "creating a mount namespace for CRIU")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "making / a recursive slave for CRIU")?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind-mounting rootfs {} for CRIU", rootfs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        let text = r#"{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
            "mounts":[{"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","rw"]},
                      {"destination":"/proc","type":"proc","source":"proc"}],
            "linux":{"namespaces":[{"type":"mount"}],"maskedPaths":["/proc/kcore"],
                     "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#;
        crate::spec::parse_spec(text.as_bytes()).unwrap()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dump_declares_the_host_s_mounts_external() {
        let opts = CriuOptions {
            tcp_established: true,
            manage_cgroups_mode: Some("full".into()),
            ..Default::default()
        };
        let args = dump_args(
            &spec(),
            Path::new("/b/rootfs"),
            42,
            Some(Path::new("/sys/fs/cgroup/freezer/c")),
            Path::new("/img"),
            Path::new("/work"),
            &opts,
        )
        .unwrap();
        let a = strings(&args);
        assert_eq!(a[..3], ["dump", "--tree", "42"]);
        for want in [
            "--tcp-established",
            "--manage-cgroups=full",
            "mnt[/data]:/data",
            "mnt[/dev/fuse]:/dev/fuse",
            "mnt[/proc/kcore]:/proc/kcore",
            "/sys/fs/cgroup/freezer/c",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        assert!(!a.iter().any(|x| x == "--leave-running"), "{a:?}");
        assert!(!a.iter().any(|x| x.contains("mnt[/proc]")), "{a:?}");
    }

    #[test]
    fn pre_dump_tracks_memory_and_leaves_running() {
        let opts = CriuOptions {
            pre_dump: true,
            page_server: Some("10.0.0.1:27".into()),
            ..Default::default()
        };
        let a = strings(
            &dump_args(
                &spec(),
                Path::new("/r"),
                1,
                None,
                Path::new("/i"),
                Path::new("/w"),
                &opts,
            )
            .unwrap(),
        );
        assert_eq!(a[0], "pre-dump");
        for want in [
            "--leave-running",
            "--track-mem",
            "--page-server",
            "10.0.0.1",
            "27",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        let bad = CriuOptions {
            page_server: Some("nocolon".into()),
            ..Default::default()
        };
        assert!(dump_args(
            &spec(),
            Path::new("/r"),
            1,
            None,
            Path::new("/i"),
            Path::new("/w"),
            &bad
        )
        .is_err());
    }

    #[test]
    fn restore_maps_mounts_back_and_inherits_stdio_pipes() {
        let stdio = [
            "/dev/null".to_string(),
            "pipe:[7]".into(),
            "pipe:[8]".into(),
        ];
        let a = strings(
            &restore_args(
                &spec(),
                Path::new("/b/rootfs"),
                Path::new("/img"),
                Path::new("/work"),
                Path::new("/work/p"),
                &stdio,
                &CriuOptions::default(),
            )
            .unwrap(),
        );
        for want in [
            "restore",
            "--restore-detached",
            "mnt[/data]:/srv/data",
            "mnt[/proc/kcore]:/dev/null",
            "fd[1]:pipe:[7]",
            "fd[2]:pipe:[8]",
            "--manage-cgroups=ignore",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("fd[0]")), "{a:?}");
    }

    #[test]
    fn criu_errors_are_read_from_its_output() {
        let text = "Error (criu/util.c:642): exited, status=1\n\
                    Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
                    Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed";
        assert_eq!(
            first_error(text),
            Some("vdso: Unexpected rt vDSO area bounds")
        );
        assert_eq!(first_error("something else\n"), Some("something else"));
    }
}
