//! Containers from images, end to end: hullctl run/exec/logs/ps/stop/rm/
//! kill/pause/wait with docker's exit codes, volumes, a terminal, the
//! restart policy, containers outliving hulld, ctr 1.6 driving hulld's
//! tasks, and many containers at once leaving nothing behind. hulld runs
//! tasks through hull-shim (the one built beside it); one test through
//! containerd's runc shim. The
//! test image's busybox has few applet links; its shell runs the others
//! (`sh -c 'exec sleep 300'`).

use hull_integration::host::wait_until;
use hull_integration::manager::{have_registry, Auth, Hulld, Registry, RUNC_SHIM_CONFIG};
use std::time::Duration;

fn setup() -> Option<(Registry, Hulld, String)> {
    setup_with("")
}

fn setup_with(config: &str) -> Option<(Registry, Hulld, String)> {
    if !hull_integration::require_root() || !have_registry() {
        return None;
    }
    let reg = Registry::start(Auth::None);
    let image = reg.push("small", "run/app:latest");
    let d = Hulld::start(config);
    Some((reg, d, image))
}

fn id_of(d: &Hulld, name: &str) -> String {
    let out = d.ctl(&["--format", "json", "ps", "-a"]).ok();
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"] == name)
        .map(|c| c["ID"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no container {name}: {list}"))
}

/// `hullctl run -d --name NAME IMAGE sh -c SCRIPT`: the container's id.
fn run_detached(d: &Hulld, name: &str, image: &str, script: &str) -> String {
    let out = d.ctl(&["run", "-d", "--name", name, image, "sh", "-c", script]);
    out.ok().stdout.trim().to_string()
}

/// `ctr events` against the daemon, its lines going to `file`.
fn ctr_events(d: &Hulld, file: &std::path::Path) -> std::process::Child {
    std::process::Command::new("ctr")
        .arg("--address")
        .arg(&d.socket)
        .arg("events")
        .stdout(std::fs::File::create(file).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn run_in_the_foreground_with_docker_exit_codes() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    foreground_runs(&d, &image);
}

#[test]
fn containerds_runc_shim_runs_hull_for_hulld_too() {
    let Some((_reg, d, image)) = setup_with(RUNC_SHIM_CONFIG) else {
        return;
    };
    foreground_runs(&d, &image);
    let id = d
        .ctl(&["run", "-d", &image, "sh", "-c", "exec sleep 300"])
        .ok()
        .stdout;
    let id = id.trim().to_string();
    assert_eq!(d.ctl(&["exec", &id, "echo", "hi"]).ok().stdout, "hi\n");
    d.ctl(&["rm", "-f", &id]).ok();
    let ids = [id];
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

/// Foreground runs: output, exit codes, options, nothing left by --rm.
fn foreground_runs(d: &Hulld, image: &str) {
    let out = d.ctl(&[
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.ends_with("err\n"), "{out:?}");
    let missing = d.ctl(&["run", "--rm", image, "no-such-program"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    let env = d
        .ctl(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hi",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "--hostname",
            "box",
            image,
            "sh",
            "-c",
            "echo $GREETING $(id -u):$(id -g) $(pwd) $(hostname)",
        ])
        .ok();
    assert_eq!(env.stdout, "hi 1000:1000 /tmp box\n");
    let ro = d.ctl(&["run", "--rm", "--read-only", image, "touch", "/x"]);
    assert_ne!(ro.code, 0, "a read-only root: {ro:?}");
    // --rm left nothing: no containers, snapshots of containers, files.
    assert!(d.ctl(&["ps", "-a", "-q"]).ok().stdout.is_empty());
    assert!(d.leftovers(&[]).is_empty(), "{:?}", d.leftovers(&[]));
}

#[test]
fn a_detached_container_through_its_lifecycle() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let id = run_detached(&d, "web", &image, "echo started; exec sleep 300");
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.ctl(&["ps"]).ok().stdout;
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    assert!(wait_until(Duration::from_secs(10), || d
        .ctl(&["logs", "web"])
        .stdout
        == "started\n"));
    // Each line on the stream it was written to, with its time on request,
    // the last N lines with --tail.
    d.ctl(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo to-err > /proc/1/fd/2; printf no-newline > /proc/1/fd/1",
    ])
    .ok();
    let logs = d.ctl(&["logs", "web"]).ok();
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("started\n", "to-err\n"),
        "an unfinished line waits for its end: {logs:?}"
    );
    let stamped = d.ctl(&["logs", "--timestamps", "--tail", "1", "web"]).ok();
    let (time, text) = stamped.stderr.split_once(' ').unwrap_or_default();
    assert_eq!(text, "to-err\n", "{stamped:?}");
    assert!(
        time.len() == 30 && time.starts_with("20") && time.ends_with('Z'),
        "{stamped:?}"
    );
    let exec = d.ctl(&["exec", "web", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(
        (exec.code, exec.stdout.as_str()),
        (4, "in-exec\n"),
        "{exec:?}"
    );
    let top = d.ctl(&["top", "web"]).ok().stdout;
    assert!(top.contains("sleep 300"), "{top}");
    d.ctl(&["pause", "web"]).ok();
    assert!(d.ctl(&["ps"]).ok().stdout.contains("Paused"));
    d.ctl(&["unpause", "web"]).ok();
    let stats = d.ctl(&["stats", "--no-stream", "web"]).ok().stdout;
    assert!(stats.contains(&id[..12]), "{stats}");
    d.ctl(&["stop", "-t", "2", "web"]).ok();
    let all = d.ctl(&["ps", "-a"]).ok().stdout;
    assert!(
        all.contains("Exited (143)") || all.contains("Exited (137)"),
        "{all}"
    );
    assert!(!d.ctl(&["ps"]).ok().stdout.contains("web"));
    // Started again, killed, waited for.
    d.ctl(&["start", "web"]).ok();
    assert!(d.ctl(&["ps"]).ok().stdout.contains("Up"));
    d.ctl(&["kill", "-s", "KILL", "web"]).ok();
    assert_eq!(d.ctl(&["wait", "web"]).ok().stdout.trim(), "137");
    let refused = d.ctl(&["run", "--name", "web", &image, "true"]);
    assert_eq!(refused.code, 125, "names are unique: {refused:?}");
    d.ctl(&["rm", "-f", &id[..8]]).ok();
    assert!(d.ctl(&["ps", "-a", "-q"]).ok().stdout.is_empty());
    assert!(
        d.leftovers(std::slice::from_ref(&id)).is_empty(),
        "{:?}",
        d.leftovers(&[id])
    );
}

/// The `run` options docker users reach for, seen from inside the
/// container and in its cgroup: an env file, another entrypoint,
/// capabilities dropped and added, --privileged, memory and pids limits;
/// then inspect, attach, and 126 for a program that cannot be executed.
#[test]
fn run_options_reach_the_container() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let env_file = d.dir.join("env.list");
    std::fs::write(&env_file, "# docker's format\nA=1\n\nB=two words\n").unwrap();
    let env = d.ctl(&[
        "run",
        "--rm",
        "--env-file",
        env_file.to_str().unwrap(),
        "--entrypoint",
        "/bin/echo",
        &image,
        "from-entrypoint",
    ]);
    assert_eq!(env.ok().stdout, "from-entrypoint\n");
    let env = d.ctl(&[
        "run",
        "--rm",
        "--env-file",
        env_file.to_str().unwrap(),
        &image,
        "sh",
        "-c",
        "echo \"$A|$B\"",
    ]);
    assert_eq!(env.ok().stdout, "1|two words\n");
    let cap_eff = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        // Shell builtins only: the test image has few programs.
        let script =
            "while read -r k v; do [ $k = CapEff: ] && echo $v; done < /proc/self/status; exit 0";
        args.extend([image.as_str(), "sh", "-c", script]);
        d.ctl(&args).ok().stdout.trim().to_string()
    };
    // CAP_CHOWN is bit 0, CAP_NET_ADMIN bit 12.
    assert_eq!(
        cap_eff(&["--cap-drop", "ALL", "--cap-add", "CHOWN"]),
        "0000000000000001"
    );
    let default = u64::from_str_radix(&cap_eff(&[]), 16).unwrap();
    assert_eq!(
        default & (1 << 12),
        0,
        "NET_ADMIN is not a default capability"
    );
    let added = u64::from_str_radix(&cap_eff(&["--cap-add", "NET_ADMIN"]), 16).unwrap();
    assert_eq!(added, default | 1 << 12);
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_eff = host.lines().find(|l| l.starts_with("CapEff")).unwrap();
    assert_eq!(
        cap_eff(&["--privileged"]),
        host_eff.split_whitespace().nth(1).unwrap()
    );

    let id = d
        .ctl(&[
            "run",
            "-d",
            "--name",
            "limited",
            "--memory",
            "64m",
            "--pids-limit",
            "20",
            &image,
            "sh",
            "-c",
            "echo first; sleep 1; echo second; exit 5",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let inspect = d.ctl(&["inspect", "limited"]).ok().stdout;
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let c = &inspect[0];
    assert_eq!(
        (c["Id"].as_str(), c["Name"].as_str()),
        (Some(id.as_str()), Some("limited"))
    );
    assert_eq!(c["Image"], image.as_str());
    assert_eq!(c["State"]["Status"], "running", "{c}");
    let cgroup = c["Spec"]["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    let read =
        |file: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{file}")).unwrap_or_default();
    assert_eq!(read(&format!("pids/{cgroup}/pids.max")).trim(), "20");
    assert_eq!(
        read(&format!("memory/{cgroup}/memory.limit_in_bytes")).trim(),
        (64u64 << 20).to_string()
    );
    // attach follows the output to the end and answers the exit status.
    let attached = d.ctl(&["attach", "limited"]);
    assert_eq!(attached.code, 5, "{attached:?}");
    assert!(attached.stdout.ends_with("second\n"), "{attached:?}");
    d.ctl(&["rm", "limited"]).ok();

    let not_executable = d.ctl(&["run", "--rm", &image, "/etc/passwd"]);
    assert_eq!(not_executable.code, 126, "{not_executable:?}");
    let ids = [id];
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

/// `[metrics] address` serves Prometheus text with each running task's
/// cgroup figures and hulld's request counters; `[log] level` takes effect.
#[test]
fn a_running_daemon_serves_metrics_and_logs_at_its_level() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n[log]\nlevel = \"debug\"\n");
    let Some((_reg, d, image)) = setup_with(&config) else {
        return;
    };
    let id = d
        .ctl(&[
            "run",
            "-d",
            "--memory",
            "32m",
            &image,
            "sh",
            "-c",
            "exec sleep 300",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut conn, b"GET /v1/metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut conn, &mut text).unwrap();
    assert!(
        text.starts_with("HTTP/1.") && text.contains(" 200 "),
        "{text}"
    );
    let task = format!("{{namespace=\"default\",container_id=\"{id}\"}}");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{task} ")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} for the task: {text}"))
    };
    assert_eq!(value("container_memory_limit_bytes"), 32 << 20);
    assert!(value("container_pids_current") >= 1);
    assert!(value("container_memory_usage_bytes") > 0);
    assert!(
        text.contains(
            "hulld_grpc_requests_total{method=\"containerd.services.tasks.v1.Tasks/Create\"}"
        ),
        "{text}"
    );
    assert!(
        d.log().contains("DEBUG"),
        "no debug line at level debug: {}",
        d.log()
    );
    d.ctl(&["rm", "-f", &id]).ok();
    let ids = [id];
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

#[test]
fn volumes_and_tmpfs() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let host = d.dir.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from the host\n").unwrap();
    let vol = format!("{}:/data", host.display());
    let out = d
        .ctl(&[
            "run",
            "--rm",
            "-v",
            &vol,
            &image,
            "sh",
            "-c",
            "cat /data/in; echo written > /data/out",
        ])
        .ok();
    assert_eq!(out.stdout, "from the host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "written\n"
    );
    let ro = format!("{}:/data:ro", host.display());
    assert_ne!(
        d.ctl(&["run", "--rm", "-v", &ro, &image, "touch", "/data/x"])
            .code,
        0
    );
    let tmpfs = d
        .ctl(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            &image,
            "sh",
            "-c",
            "echo ok > /scratch/f && cat /scratch/f",
        ])
        .ok();
    assert_eq!(tmpfs.stdout, "ok\n");
}

#[test]
fn a_terminal_behaves_like_dockers() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    // `script` gives hullctl a pseudo-terminal, as a user's shell would.
    let cmd = format!(
        "{} --address {} run -it --rm {image} sh -c 'tty; exit 5'",
        hull_integration::manager::manager_bin("hullctl").display(),
        d.socket.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HULLCTL_DATA_ROOT", d.dir.join("hullctl"))
        .env("HULLCTL_CGROUP_PARENT", &d.cgroup_parent)
        .env("HULLCTL_NETWORK", "none")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(d.leftovers(&[]).is_empty(), "{:?}", d.leftovers(&[]));
}

/// `run -it` from a real terminal: the container's terminal has the
/// user's size and follows a resize, ^C interrupts the foreground program
/// only, ^D ends the shell and the run with its status.
#[test]
fn an_interactive_shell_follows_the_users_terminal() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let size = |rows, cols| nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(24, 80)), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = std::process::Command::new(hull_integration::manager::manager_bin("hullctl"));
    cmd.arg("--address")
        .arg(&d.socket)
        .args(["run", "-it", "--rm", &image, "sh"])
        .env("HULLCTL_DATA_ROOT", d.dir.join("hullctl"))
        .env("HULLCTL_CGROUP_PARENT", &d.cgroup_parent)
        .env("HULLCTL_NETWORK", "none")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: only async-signal-safe calls between fork and exec: a new
    // session whose controlling terminal is the pty, as a login shell has.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let master = Arc::new(std::fs::File::from(pty.master));
    let screen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (master, screen) = (master.clone(), screen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            // Ends with EIO once the last slave fd is closed.
            while let Ok(n @ 1..) = (&*master).read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                screen.lock().unwrap().push_str(&text);
            }
        })
    };
    let type_in = |text: &str| {
        use std::io::Write;
        (&*master).write_all(text.as_bytes()).unwrap();
    };
    let shows = |what: &str| {
        let seen = wait_until(Duration::from_secs(15), || {
            screen.lock().unwrap().contains(what)
        });
        assert!(seen, "{what:?} never appeared:\n{}", screen.lock().unwrap());
    };
    // As a user would: type once the shell's prompt is there.
    shows("# ");
    type_in("stty size\r");
    shows("24 80");
    // SAFETY: TIOCSWINSZ on the pty master this test owns.
    let resized = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size(40, 100)) };
    assert_eq!(resized, 0);
    // hullctl passes the SIGWINCH on; the shell may see the old size once.
    let followed = wait_until(Duration::from_secs(15), || {
        type_in("stty size\r");
        std::thread::sleep(Duration::from_millis(200));
        screen.lock().unwrap().contains("40 100")
    });
    assert!(followed, "{}", screen.lock().unwrap());
    type_in("sleep 100\r");
    std::thread::sleep(Duration::from_millis(500));
    type_in("\x03");
    type_in("echo back-$((6*7))\r");
    shows("back-42");
    type_in("\x04");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(15), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        screen.lock().unwrap()
    );
    drop(master);
    let _ = reader.join();
    assert!(d.ctl(&["ps", "-a", "-q"]).ok().stdout.is_empty());
}

#[test]
fn restart_on_failure_until_stopped() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    d.ctl(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure",
        &image,
        "sh",
        "-c",
        "echo run; sleep 0.3; exit 1",
    ])
    .ok();
    let restarted = wait_until(Duration::from_secs(30), || {
        d.ctl(&["logs", "flaky"]).stdout.matches("run").count() >= 3
    });
    assert!(restarted, "{}", d.log());
    d.ctl(&["stop", "-t", "1", "flaky"]).ok();
    let runs = d.ctl(&["logs", "flaky"]).ok().stdout.matches("run").count();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.ctl(&["logs", "flaky"]).ok().stdout.matches("run").count(),
        runs,
        "stopped stays stopped"
    );
    d.ctl(&["rm", "flaky"]).ok();
}

#[test]
fn containers_outlive_a_killed_hulld() {
    let Some((_reg, mut d, image)) = setup() else {
        return;
    };
    let names = ["a", "b", "c", "d", "e"];
    for name in names {
        let script = format!("echo from-{name}; exec sleep 300");
        run_detached(&d, name, &image, &script);
    }
    run_detached(&d, "quitter", &image, "sleep 2; exit 9");
    d.stop_with(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    d.spawn();
    let ps = d.ctl(&["ps"]).ok().stdout;
    for name in names {
        assert!(ps.contains(name), "{name} is managed again: {ps}");
    }
    // The exit that happened while hulld was down, with its real status.
    assert_eq!(d.ctl(&["wait", "quitter"]).ok().stdout.trim(), "9");
    assert_eq!(
        d.ctl(&["exec", "b", "echo", "still here"]).ok().stdout,
        "still here\n"
    );
    // Output written before and after the restart, in one log.
    d.ctl(&["exec", "e", "sh", "-c", "echo again > /proc/1/fd/1"])
        .ok();
    let logs = d.ctl(&["logs", "e"]).ok();
    assert_eq!(logs.stdout, "from-e\nagain\n", "{logs:?}");
    d.ctl(&["stop", "-t", "1", "d"]).ok();
    assert_eq!(d.ctl(&["wait", "d"]).ok().stdout.trim(), "137");
    let all: Vec<&str> = names.iter().copied().chain(["quitter"]).collect();
    let ids: Vec<String> = all.iter().map(|n| id_of(&d, n)).collect();
    for name in all {
        d.ctl(&["rm", "-f", name]).ok();
    }
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

/// A shim killed under its container: the task ends as killed (137),
/// waiters and event subscribers hear of it, and removing it leaves
/// nothing (the cleanup killed the container and unmounted its root).
#[test]
fn a_container_whose_shim_dies_is_reported_exited() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let id = run_detached(&d, "orphan", &image, "exec sleep 300");
    let events_file = d.dir.join("events.txt");
    let mut events = ctr_events(&d, &events_file);
    let waiter = d.spawn_ctl(&["wait", "orphan"]);
    std::thread::sleep(Duration::from_millis(500));
    let shim = d.shim_pid(&id).expect("the container's shim");
    // SAFETY: killing the shim this test's daemon started, by PID.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    let waited = hull_integration::manager::Out::wait(waiter).ok();
    assert_eq!(waited.stdout.trim(), "137", "{waited:?}\n{}", d.log());
    let ps = d.ctl(&["ps", "-a"]).ok().stdout;
    assert!(ps.contains("Exited (137)"), "{ps}");
    let exited = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&events_file).is_ok_and(|e| e.contains("/tasks/exit"))
    });
    let _ = events.kill();
    let _ = events.wait();
    let seen = std::fs::read_to_string(&events_file).unwrap_or_default();
    assert!(exited && seen.contains(&id), "{seen}");
    // Nothing of the container runs once the cleanup is done.
    assert!(
        wait_until(Duration::from_secs(10), || d.task_processes().is_empty()),
        "{:?}",
        d.task_processes()
    );
    let rm = d.ctl(&["rm", "orphan"]);
    assert_eq!(rm.code, 0, "{rm:?}");
    let ids = [id];
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

/// `ctr events` on hulld hears what changed, under containerd's topics:
/// images created, updated and deleted (pulls included), containers and
/// their tasks through their lives.
#[test]
fn ctr_events_report_images_and_containers() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let events_file = d.dir.join("events-all.txt");
    let mut events = ctr_events(&d, &events_file);
    std::thread::sleep(Duration::from_millis(300));
    d.ctl(&["pull", "-q", &image]).ok();
    d.ctl(&["pull", "-q", &image]).ok();
    let id = run_detached(&d, "ev", &image, "exec sleep 300");
    d.ctl(&["rm", "-f", "ev"]).ok();
    d.ctl(&["images", "rm", &image]).ok();
    let topics = [
        "/images/create",
        "/images/update",
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
        "/images/delete",
    ];
    let seen_all = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&events_file).is_ok_and(|e| e.contains("/images/delete"))
    });
    let _ = events.kill();
    let _ = events.wait();
    let seen = std::fs::read_to_string(&events_file).unwrap_or_default();
    assert!(seen_all, "{seen}");
    let order: Vec<usize> = topics
        .iter()
        .map(|t| {
            seen.lines()
                .position(|l| l.split_whitespace().any(|w| w == *t))
                .unwrap_or_else(|| panic!("no {t} event: {seen}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{topics:?} out of order: {seen}"
    );
    assert!(seen.contains(&id), "{seen}");
    // ctr decoded the image events (containerd's type names): their name.
    let created = seen.lines().find(|l| l.contains("/images/create")).unwrap();
    assert!(
        created.contains(&format!("\"name\":\"{image}\"")),
        "{created}"
    );
    let ids = [id];
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
}

#[test]
fn many_containers_at_once_leave_nothing_behind() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    let n = 50;
    let started: Vec<_> = (0..n)
        .map(|i| {
            d.spawn_ctl(&[
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                &image,
                "sh",
                "-c",
                "exec sleep 300",
            ])
        })
        .collect();
    let ids: Vec<String> = started
        .into_iter()
        .map(|child| {
            hull_integration::manager::Out::wait(child)
                .ok()
                .stdout
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(d.ctl(&["ps", "-q"]).ok().stdout.lines().count(), n);
    let removing: Vec<_> = ids
        .iter()
        .map(|id| d.spawn_ctl(&["rm", "-f", id]))
        .collect();
    for child in removing {
        hull_integration::manager::Out::wait(child).ok();
    }
    assert!(d.ctl(&["ps", "-a", "-q"]).ok().stdout.is_empty());
    assert!(d.leftovers(&ids).is_empty(), "{:?}", d.leftovers(&ids));
    // Only the image's own snapshot is left.
    let snapshots = d.ctl(&["snapshots", "ls"]).ok().stdout;
    assert_eq!(snapshots.lines().count(), 2, "{snapshots}");
}

#[test]
fn ctr_runs_tasks_on_hulld() {
    let Some((_reg, d, image)) = setup() else {
        return;
    };
    // A namespace of this test's own: ctr puts its containers' cgroups at
    // /<namespace>/<id>, which the daemon's cleanup removes.
    let ns = d.cgroup_parent.clone();
    let ctr = |args: &[&str]| d.ctr(&[&["-n", ns.as_str()], args].concat());
    ctr(&["images", "pull", "--plain-http", &image]).ok();
    let hull = hull_integration::runtime_bin();
    let hull = hull.to_str().unwrap();
    let fg = ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        hull,
        &image,
        "fg",
        "sh",
        "-c",
        "echo hello-ctr; exit 6",
    ]);
    assert_eq!((fg.code, fg.stdout.as_str()), (6, "hello-ctr\n"), "{fg:?}");
    ctr(&[
        "run",
        "-d",
        "--runc-binary",
        hull,
        &image,
        "bg",
        "sh",
        "-c",
        "exec sleep 300",
    ])
    .ok();
    let tasks = ctr(&["tasks", "ls"]).ok().stdout;
    assert!(tasks.contains("bg") && tasks.contains("RUNNING"), "{tasks}");
    assert_eq!(ctr(&["tasks", "ps", "bg"]).ok().stdout.lines().count(), 2);
    let exec = ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "bg",
        "sh",
        "-c",
        "echo in; exit 2",
    ]);
    assert_eq!((exec.code, exec.stdout.as_str()), (2, "in\n"), "{exec:?}");
    let metrics = ctr(&["tasks", "metrics", "bg"]).ok().stdout;
    assert!(
        metrics.contains("memory") || metrics.contains("pids"),
        "{metrics}"
    );
    ctr(&["tasks", "pause", "bg"]).ok();
    assert!(ctr(&["tasks", "ls"]).ok().stdout.contains("PAUSED"));
    ctr(&["tasks", "resume", "bg"]).ok();
    let info = ctr(&["containers", "info", "bg"]).ok().stdout;
    assert!(info.contains("\"Snapshotter\": \"overlayfs\""), "{info}");
    ctr(&["tasks", "kill", "-s", "KILL", "bg"]).ok();
    assert!(wait_until(Duration::from_secs(10), || ctr(&[
        "tasks", "ls"
    ])
    .stdout
    .contains("STOPPED")));
    ctr(&["tasks", "rm", "bg"]).ok();
    ctr(&["containers", "rm", "bg"]).ok();
    assert_eq!(ctr(&["containers", "ls", "-q"]).ok().stdout, "");
    assert!(d.leftovers(&["fg".into(), "bg".into()]).is_empty());
}
