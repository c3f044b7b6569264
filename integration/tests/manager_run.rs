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
    let id = d
        .ctl(&[
            "run",
            "-d",
            "--name",
            "web",
            &image,
            "sh",
            "-c",
            "echo started; exec sleep 300",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.ctl(&["ps"]).ok().stdout;
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    assert!(wait_until(Duration::from_secs(10), || d
        .ctl(&["logs", "web"])
        .stdout
        == "started\n"));
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
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
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
    for name in ["a", "b", "c"] {
        d.ctl(&[
            "run",
            "-d",
            "--name",
            name,
            &image,
            "sh",
            "-c",
            "exec sleep 300",
        ])
        .ok();
    }
    d.ctl(&[
        "run",
        "-d",
        "--name",
        "quitter",
        &image,
        "sh",
        "-c",
        "sleep 2; exit 9",
    ])
    .ok();
    d.stop_with(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    d.spawn();
    let ps = d.ctl(&["ps"]).ok().stdout;
    for name in ["a", "b", "c"] {
        assert!(ps.contains(name), "{name} is managed again: {ps}");
    }
    // The exit that happened while hulld was down, with its real status.
    assert_eq!(d.ctl(&["wait", "quitter"]).ok().stdout.trim(), "9");
    assert_eq!(
        d.ctl(&["exec", "b", "echo", "still here"]).ok().stdout,
        "still here\n"
    );
    let ids: Vec<String> = ["a", "b", "c", "quitter"]
        .iter()
        .map(|n| id_of(&d, n))
        .collect();
    for name in ["a", "b", "c", "quitter"] {
        d.ctl(&["rm", "-f", name]).ok();
    }
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
