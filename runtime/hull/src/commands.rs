//! One function per `hull` command, each a few calls into hull-container.

use crate::cli::{
    CheckpointArgs, Cli, Command, CreateArgs, CriuArgs, ExecArgs, Format, RestoreArgs, RunArgs,
    UpdateArgs,
};
use hull_container::container::{list_ids, owner_of};
use hull_container::error::Context;
use hull_container::forward::{LocalConsole, SignalForwarder};
use hull_container::spec::check_id;
use hull_container::{
    bail, reexec, signal, spec_template, Container, CreateOptions, Error, ExecOptions, Result,
};
use std::io::Write;
use std::path::Path;

/// A failed command: the error and the exit status to leave with.
pub struct Failure {
    pub error: Error,
    pub code: i32,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, code: 1 }
    }
}

pub fn run(cli: Cli) -> std::result::Result<i32, Failure> {
    // create changes the working directory to the bundle: keep the root valid.
    let root = cli.state_root();
    let root = std::path::absolute(&root)
        .map_err(|e| Error::io(format!("--root {}", root.display()), e))?;
    let root = root.as_path();
    // Commands that put a process into a container first re-execute hull from
    // a view of its binary the container cannot write (CVE-2019-5736),
    // before they create anything.
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        reexec::ensure_protected()?;
    }
    let systemd = cli.systemd_cgroup;
    let criu = cli.criu.as_deref();
    match cli.command {
        Command::Checkpoint(args) => checkpoint(root, criu, &args)
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Restore(args) => restore(root, criu, &args, systemd).map_err(Failure::from),
        Command::Create(args) => create(root, &args, false, systemd)
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Run(args) => run_container(root, &args, systemd).map_err(Failure::from),
        Command::Pause { id } => Container::load(root, &id)
            .and_then(|c| c.pause())
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Resume { id } => Container::load(root, &id)
            .and_then(|c| c.resume())
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Update(args) => update(root, &args).map(|_| 0).map_err(Failure::from),
        Command::Events {
            stats,
            interval,
            id,
        } => events(root, &id, stats, &interval)
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Start { id } => Container::load(root, &id)
            .and_then(|c| c.start())
            .map(|_| 0)
            .map_err(Failure::from),
        Command::State { id } => state(root, &id).map(|_| 0).map_err(Failure::from),
        Command::Kill { all, id, signal } => kill(root, &id, &signal, all)
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Delete { force, id } => delete(root, &id, force).map(|_| 0).map_err(Failure::from),
        Command::List { format, quiet } => {
            list(root, format, quiet).map(|_| 0).map_err(Failure::from)
        }
        Command::Spec { bundle, rootless } => spec(bundle.as_deref(), rootless)
            .map(|_| 0)
            .map_err(Failure::from),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(root, &id, format, &ps_args)
            .map(|_| 0)
            .map_err(Failure::from),
        // runc exits 255 when exec fails, so callers can tell it from the program's own status.
        Command::Exec(args) => exec(root, &args).map_err(|error| Failure { error, code: 255 }),
        Command::Features => print_json(&hull_container::features::features(), true)
            .map(|_| 0)
            .map_err(Failure::from),
    }
}

fn print_json(v: &impl serde::Serialize, pretty: bool) -> Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(|e| Error::msg(format!("encoding JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").ctx(|| "writing to stdout")
}

fn create_options(args: &CreateArgs, foreground: bool, systemd_cgroup: bool) -> CreateOptions {
    CreateOptions {
        bundle: args.bundle.clone(),
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        systemd_cgroup,
        foreground,
    }
}

fn create(root: &Path, args: &CreateArgs, foreground: bool, systemd: bool) -> Result<Container> {
    if args.preserve_fds < 0 {
        bail!("--preserve-fds must not be negative");
    }
    Container::create(root, &args.id, &create_options(args, foreground, systemd))
}

fn run_container(root: &Path, args: &RunArgs, systemd: bool) -> Result<i32> {
    // A foreground container with a terminal and no --console-socket gets
    // its PTY relayed to hull's own stdio, as with runc.
    let mut create_args = args.create.clone();
    let local_console = if !args.detach
        && create_args.console_socket.is_none()
        && wants_terminal(&create_args.bundle)
    {
        let lc = LocalConsole::new()?;
        create_args.console_socket = Some(lc.path());
        Some(lc)
    } else {
        None
    };
    let c = create(root, &create_args, !args.detach, systemd)?;
    if args.detach {
        c.start()?;
        return Ok(0);
    }
    let signals = SignalForwarder::new()?;
    let started = c
        .start()
        .and_then(|()| local_console.as_ref().map(|lc| lc.receive()).transpose());
    let master = match started {
        Ok(m) => m,
        Err(e) => {
            if let Err(cleanup) = c.delete(true) {
                hull_container::log::warn(format!("cleanup after failed start: {cleanup}"));
            }
            return Err(e);
        }
    };
    drop(local_console);
    let code = signals.wait(c.record.pid, master.as_ref())?;
    if !args.keep {
        c.delete(true)?;
    }
    Ok(code)
}

fn criu_options(a: &CriuArgs) -> hull_container::criu::CriuOptions {
    hull_container::criu::CriuOptions {
        image_path: a.image_path.clone(),
        work_path: a.work_path.clone(),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        lazy_pages: a.lazy_pages,
        manage_cgroups_mode: a.manage_cgroups_mode.clone(),
        empty_ns: a.empty_ns.clone(),
        auto_dedup: a.auto_dedup,
        ..Default::default()
    }
}

fn checkpoint(root: &Path, criu: Option<&Path>, args: &CheckpointArgs) -> Result<()> {
    let c = Container::load(root, &args.id)?;
    let opts = hull_container::criu::CriuOptions {
        parent_path: args.parent_path.clone(),
        leave_running: args.leave_running,
        status_fd: (args.status_fd >= 0).then_some(args.status_fd),
        page_server: args.page_server.clone(),
        pre_dump: args.pre_dump,
        ..criu_options(&args.criu)
    };
    hull_container::criu::checkpoint(&c, criu, &opts)
}

/// `restore`: in the foreground (without --detach) it waits for the
/// restored container like `run`, and deletes it when it exits.
fn restore(root: &Path, criu: Option<&Path>, args: &RestoreArgs, systemd: bool) -> Result<i32> {
    let opts = hull_container::criu::CriuOptions {
        lsm_profile: args.lsm_profile.clone(),
        lsm_mount_context: args.lsm_mount_context.clone(),
        ..criu_options(&args.criu)
    };
    let ropts = hull_container::criu::RestoreOptions {
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        systemd_cgroup: systemd,
    };
    if !args.detach && !args.no_subreaper {
        // CRIU's restored init is reparented to us when CRIU exits.
        // SAFETY: prctl on ourselves.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let pid = hull_container::criu::restore(root, &args.id, criu, &opts, &ropts)?;
    if args.detach {
        return Ok(0);
    }
    let code = SignalForwarder::new()?.wait(pid, None)?;
    Container::load(root, &args.id)?.delete(true)?;
    Ok(code)
}

/// Whether the bundle's process asks for a terminal (errors surface in create).
fn wants_terminal(bundle: &Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| v["process"]["terminal"].as_bool())
        .unwrap_or(false)
}

fn state(root: &Path, id: &str) -> Result<()> {
    print_json(&Container::load(root, id)?.oci_state(), true)
}

fn kill(root: &Path, id: &str, sig: &str, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    c.kill(signal::parse(sig)?, all)
}

fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    match Container::load(root, id) {
        Ok(c) => c.delete(force),
        Err(e) => {
            // A create that died before writing its state leaves only the
            // directory: --force cleans it up, as runc does.
            let dir = hull_container::state::StateDir::new(root, id)?;
            if force {
                dir.remove()?;
                return Ok(());
            }
            Err(e)
        }
    }
}

fn list(root: &Path, format: Format, quiet: bool) -> Result<()> {
    let mut states = Vec::new();
    for id in list_ids(root)? {
        let Ok(c) = Container::load(root, &id) else {
            continue;
        };
        let mut st = c.oci_state();
        st.owner = owner_of(&c.dir.dir);
        states.push(st);
    }
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s.id).ctx(|| "writing to stdout")?;
        }
        return Ok(());
    }
    if format == Format::Json {
        drop(out);
        return print_json(&states, false);
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for s in &states {
        rows.push(vec![
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    write!(out, "{}", table(&rows)).ctx(|| "writing to stdout")
}

/// Columns like Go's tabwriter(minwidth 12, padding 3) as runc uses it; the
/// last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        s.push('\n');
    }
    s
}

fn spec(bundle: Option<&Path>, rootless: bool) -> Result<()> {
    let dir = bundle.unwrap_or(Path::new("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!(
            "{} exists: remove it first or use another --bundle",
            path.display()
        );
    }
    let text = spec_template::to_pretty(&spec_template::default_spec(rootless));
    std::fs::write(&path, text).ctx(|| format!("writing {}", path.display()))
}

fn ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let c = Container::load(root, id)?;
    let pids = c.pids();
    if format == Format::Json {
        return print_json(&pids, false);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "running ps(1) (is procps installed?)")?;
    if !out.status.success() {
        bail!(
            "ps {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::msg("ps output has no PID column: include pid in the ps format"))?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{header}").ctx(|| "writing to stdout")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(w, "{line}").ctx(|| "writing to stdout")?;
        }
    }
    Ok(())
}

/// The process for `exec`: from --process, or the container's own process
/// with the command and flags applied, as runc builds it.
fn exec_process(c: &Container, args: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    let container_process = c.config()?.process().clone().ok_or_else(|| {
        Error::msg(format!(
            "container {:?} has no process in its config",
            c.id()
        ))
    })?;
    let mut p = match &args.process {
        Some(file) => {
            let text =
                std::fs::read(file).ctx(|| format!("reading process file {}", file.display()))?;
            let mut p: oci_spec::runtime::Process = serde_json::from_slice(&text).map_err(|e| {
                Error::msg(format!(
                    "process file {}: invalid process JSON: {e}",
                    file.display()
                ))
            })?;
            // What the file leaves out comes from the container, as with runc:
            // an exec'd process never gets more privileges than the container's.
            if p.capabilities().is_none() {
                p.set_capabilities(container_process.capabilities().clone());
            }
            if p.no_new_privileges().is_none() {
                p.set_no_new_privileges(container_process.no_new_privileges());
            }
            p
        }
        None => {
            if args.command.is_empty() {
                bail!(
                    "exec needs a command: hull exec [options] <container-id> <command> [args...]"
                );
            }
            let mut p = container_process;
            p.set_args(Some(args.command.clone()));
            p.set_terminal(Some(false));
            p
        }
    };
    if args.tty {
        p.set_terminal(Some(true));
    }
    if !args.env.is_empty() {
        hull_container::process::check_env(&args.env, "--env")?;
        // Appended: a later entry replaces an earlier one of the same name,
        // so the command line wins over process.env.
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(args.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid.unwrap_or(0));
    }
    if !args.additional_gids.is_empty() {
        for gid in &args.additional_gids {
            check_id("--additional-gids", *gid)?;
        }
        p.user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &args.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !args.cap.is_empty() {
        add_capabilities(&mut p, &args.cap)?;
    }
    Ok(p)
}

/// `exec --cap`: add to the bounding, effective and permitted sets. Never to
/// inheritable or ambient (CVE-2022-29162: a program exec'd from the process
/// must not gain them through file capabilities).
fn add_capabilities(p: &mut oci_spec::runtime::Process, names: &[String]) -> Result<()> {
    use oci_spec::runtime::{Capabilities, Capability};
    // Not LinuxCapabilities::default(): that fills inheritable and ambient.
    let mut caps = p
        .capabilities()
        .clone()
        .unwrap_or_else(|| serde_json::from_str("{}").unwrap_or_default());
    let add = |set: &Option<Capabilities>, cap: Capability| {
        let mut set = set.clone().unwrap_or_default();
        set.insert(cap);
        Some(set)
    };
    for name in names {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let cap: Capability =
            serde_json::from_value(serde_json::Value::String(full)).map_err(|_| {
                Error::msg(format!(
                    "unknown capability {name:?} for --cap: use a name like CAP_NET_ADMIN"
                ))
            })?;
        caps.set_bounding(add(caps.bounding(), cap));
        caps.set_effective(add(caps.effective(), cap));
        caps.set_permitted(add(caps.permitted(), cap));
    }
    p.set_capabilities(Some(caps));
    Ok(())
}

fn parse_user(u: &str) -> Result<(u32, Option<u32>)> {
    let bad = || {
        Error::msg(format!(
            "invalid --user {u:?}: use UID or UID:GID (numbers)"
        ))
    };
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid = uid.parse::<u32>().map_err(|_| bad())?;
    check_id("--user uid", uid)?;
    let gid = gid
        .map(|g| g.parse::<u32>().map_err(|_| bad()))
        .transpose()?;
    if let Some(gid) = gid {
        check_id("--user gid", gid)?;
    }
    Ok((uid, gid))
}

fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    if args.preserve_fds < 0 {
        bail!("--preserve-fds must not be negative");
    }
    let c = Container::load(root, &args.id)?;
    if c.status() == hull_container::state::Status::Paused && !args.ignore_paused {
        bail!(
            "cannot exec in a paused container {:?}: resume it or pass --ignore-paused",
            args.id
        );
    }
    let cgroup = hull_container::cgroup::SubCgroup::parse_args(&args.cgroup)?;
    let process = exec_process(&c, args)?;
    let opts = ExecOptions {
        cgroup,
        process,
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        detach: args.detach,
        preserve_fds: args.preserve_fds,
    };
    let pid = c.exec(&opts)?;
    if args.detach {
        return Ok(0);
    }
    SignalForwarder::new()?.wait(pid, None)
}

/// `events`: a `stats` JSON line (once with --stats, else every interval),
/// and an `oom` line each time the OOM killer hit the container.
fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<()> {
    let interval = crate::resources::parse_interval(interval)?;
    let c = Container::load(root, id)?;
    if c.status() == hull_container::state::Status::Stopped {
        // runc's words.
        bail!("container with id {id} is not running");
    }
    let cg = c
        .cgroup()
        .ok_or_else(|| Error::msg(format!("container {id:?} has no cgroups")))?;
    let stats_line = || -> Result<serde_json::Value> {
        let stats = cg
            .manager()
            .stats()
            .map_err(|e| Error::msg(format!("reading stats of container {id:?}: {e}")))?;
        Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
    };
    if once {
        return print_json(&stats_line()?, false);
    }
    let mut ooms = cg.manager().oom_events().unwrap_or(0);
    loop {
        let stopped = c.status() == hull_container::state::Status::Stopped;
        // Read OOM kills even when the container just stopped: the OOM kill
        // of its init is what stopped it.
        let now = cg.manager().oom_events().unwrap_or(ooms);
        for _ in ooms..now {
            print_json(&serde_json::json!({"type": "oom", "id": id}), false)?;
        }
        ooms = now;
        if stopped {
            return Ok(());
        }
        print_json(&stats_line()?, false)?;
        std::thread::sleep(interval);
    }
}

fn update(root: &Path, args: &UpdateArgs) -> Result<()> {
    let resources = crate::resources::from_update_args(args)?;
    Container::load(root, &args.id)?.update(&resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_runc_layout() {
        let rows = vec![
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec(),
            [
                "t1",
                "4438",
                "created",
                "/tmp/rb",
                "2026-11-28T12:27:47.868646543Z",
                "root",
            ]
            .map(String::from)
            .to_vec(),
        ];
        assert_eq!(
            table(&rows),
            "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n\
             t1          4438        created     /tmp/rb     2026-11-28T12:27:47.868646543Z   root\n"
        );
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("bob").is_err());
        assert!(parse_user("1:x").is_err());
        assert!(parse_user("4294967295").is_err());
        assert!(parse_user("0:2147483648").is_err());
        assert_eq!(parse_user("2147483647").unwrap(), (2147483647, None));
    }
}
