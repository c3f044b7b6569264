//! OCI hooks: order, the state on their stdin, timeouts and failures.

use std::fs;
use std::path::{Path, PathBuf};

use hull_integration::{is_hull, json, Bundle, Runtime, Value};

/// Hooks in the order the OCI lifecycle runs them.
const ORDER: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook that appends "NAME <state JSON>" as one line to `log`.
///
/// The log's directory is bind-mounted into the container at the same path, so
/// the line lands in the same file whether the hook runs in the runtime's mount
/// namespace or, like startContainer, inside the container.
fn logging_hook(name: &str, log: &Path) -> Value {
    let log = log.display();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s ' {name} >> {log}; cat >> {log}; echo >> {log}")],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    })
}

/// A hook running `script` with /bin/sh, optionally with a timeout in seconds.
fn script_hook(script: &str, timeout: Option<u64>) -> Value {
    let mut hook = json!({ "path": "/bin/sh", "args": ["sh", "-c", script] });
    if let Some(secs) = timeout {
        hook["timeout"] = json!(secs);
    }
    hook
}

/// A bundle with every hook logging to a file in a shared host dir; returns the log path.
fn bundle_with_logging_hooks(rt: &Runtime) -> (Bundle, PathBuf) {
    let log_dir = rt.dir("hook-log");
    let log = log_dir.join("hooks.log");
    let mut bundle = rt.bundle();
    bundle.bind(&log_dir, log_dir.to_str().unwrap(), false);
    for name in ORDER {
        bundle.push(&format!("/hooks/{name}"), logging_hook(name, &log));
    }
    (bundle, log)
}

/// Parses the hook log into (hook name, state) pairs.
fn read_log(log: &Path) -> Vec<(String, Value)> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, state) = line.split_once(' ').unwrap_or((line, ""));
            let state = serde_json::from_str(state)
                .unwrap_or_else(|e| panic!("hook {name} got invalid state ({e}): {line}"));
            (name.to_owned(), state)
        })
        .collect()
}

/// Hook names in the order they appear in the log.
fn logged_names(log: &Path) -> Vec<String> {
    read_log(log).into_iter().map(|(name, _)| name).collect()
}

/// Checks a complete log: every hook exactly once, in lifecycle order.
///
/// runc 1.1 runs poststart hooks during `create` (fixed in runc 1.2), so for
/// runc only the relative order of the other hooks is checked.
fn assert_lifecycle_order(names: &[String]) {
    if is_hull() {
        assert_eq!(names, ORDER);
        return;
    }
    let without_poststart: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "poststart")
        .collect();
    assert_eq!(
        without_poststart,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststop"
        ]
    );
    assert_eq!(
        names.iter().filter(|n| *n == "poststart").count(),
        1,
        "{names:?}"
    );
}

#[test]
fn hooks_run_in_order_with_state() {
    let Some(rt) = Runtime::new("hooks-order") else {
        return;
    };
    let (mut bundle, log) = bundle_with_logging_hooks(&rt);
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();

    rt.create(&bundle, &id, &[]).ok();
    let pid = rt.pid(&id);
    let after_create = logged_names(&log);
    assert_eq!(after_create[..3], ORDER[..3], "after create");
    if is_hull() {
        assert_eq!(
            after_create.len(),
            3,
            "hooks other than create's ran during create: {after_create:?}"
        );
    }

    rt.start(&id).ok();
    assert!(
        logged_names(&log).contains(&"startContainer".to_owned()),
        "after start"
    );

    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();
    let entries = read_log(&log);
    assert_lifecycle_order(&logged_names(&log));

    for (name, state) in &entries {
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
        assert_eq!(
            state["bundle"],
            bundle.path().to_str().unwrap(),
            "{name}: {state}"
        );
        assert!(state["ociVersion"].is_string(), "{name}: {state}");
        match name.as_str() {
            // Run by the runtime: the host pid of the container process.
            "prestart" | "createRuntime" | "poststart" => {
                assert_eq!(state["pid"], pid, "{name}: {state}")
            }
            // Run inside the container: runc reports the pid as seen there (1).
            "createContainer" | "startContainer" => {
                assert!(state["pid"].as_i64() > Some(0), "{name}: {state}")
            }
            _ => {}
        }
        // The status the runtime spec gives each hook (runc 1.1 runs
        // poststart during create and so reports "created" there).
        if is_hull() {
            let want = match name.as_str() {
                "prestart" | "createRuntime" | "createContainer" => "creating",
                "startContainer" => "created",
                "poststart" => "running",
                _ => "stopped",
            };
            assert_eq!(state["status"], want, "{name}: {state}");
        }
    }
}

/// A failing startContainer hook stops the lifecycle: `start` fails and the
/// program never runs (runc 1.1 says `start` succeeded; the spec and hull
/// treat it like any other hook before the program).
#[test]
fn failing_start_container_hook_fails_start() {
    let Some(rt) = Runtime::new("hooks-start-fail") else {
        return;
    };
    if !is_hull() {
        return;
    }
    let marks = rt.dir("start-fail");
    let ran = marks.join("program-ran");
    let mut bundle = rt.bundle();
    bundle.bind(&marks, marks.to_str().unwrap(), false);
    bundle
        .args(&["sh", "-c", &format!("touch {}; sleep 600", ran.display())])
        .push("/hooks/startContainer", script_hook("exit 3", None));
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).failed();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!ran.exists(), "the program ran although its hook failed");
    assert_ne!(rt.status(&id), "running");
    rt.delete_force(&id);
}

#[test]
fn run_runs_all_hooks() {
    let Some(rt) = Runtime::new("hooks-run") else {
        return;
    };
    let (mut bundle, log) = bundle_with_logging_hooks(&rt);
    bundle.sh("echo container ran");
    assert_eq!(rt.run_ok(&bundle).out(), "container ran");
    assert_lifecycle_order(&logged_names(&log));
}

#[test]
fn hook_timeout_fails_create() {
    let Some(rt) = Runtime::new("hooks-timeout") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]).push(
        "/hooks/createRuntime",
        script_hook("exec sleep 30", Some(1)),
    );
    let started = std::time::Instant::now();
    rt.create_rejected(&bundle, &rt.new_id());
    assert!(
        started.elapsed().as_secs() < 20,
        "create waited for the hook instead of timing out"
    );
}

#[test]
fn failing_prestart_hook_fails_create() {
    let Some(rt) = Runtime::new("hooks-prestart-fail") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .args(&["sleep", "600"])
        .push("/hooks/prestart", script_hook("exit 1", None));
    rt.create_rejected(&bundle, &rt.new_id());
}

#[test]
fn failing_poststop_hook_is_only_a_warning() {
    let Some(rt) = Runtime::new("hooks-poststop-fail") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .args(&["true"])
        .push("/hooks/poststop", script_hook("exit 1", None));
    let id = rt.start_until_stopped(&bundle);
    rt.delete(&id).ok();
    assert!(!rt.root().join(&id).exists(), "state dir left behind");
}

/// A hook that copies the environment it was started with to `DIR/NAME.env`
/// (busybox's cp, on the host and in the rootfs alike: no shell adds
/// variables); `env` as given.
fn env_dumping_hook(name: &str, dir: &Path, env: Option<&[&str]>) -> Value {
    let dest = format!("{}/{name}.env", dir.display());
    let mut hook = json!({
        "path": "/bin/busybox",
        "args": ["busybox", "cp", "/proc/self/environ", dest],
    });
    if let Some(env) = env {
        hook["env"] = json!(env);
    }
    hook
}

/// The variables of a dump, sorted.
fn dumped_env(dir: &Path, name: &str) -> Vec<String> {
    let path = dir.join(format!("{name}.env"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{name} hook did not run (or failed): {}: {e}",
            path.display()
        )
    });
    let mut vars: Vec<String> = text
        .split('\0')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars
}

/// Runs a container whose hooks (all six points) dump their environment,
/// with CALLER_VAR in the runtime's own environment; returns the dump dir.
fn run_with_env_dumping_hooks(rt: &Runtime, env: Option<&[&str]>) -> PathBuf {
    let dir = rt.dir("hook-env");
    let mut bundle = rt.bundle();
    bundle
        .bind(&dir, dir.to_str().unwrap(), false)
        .env("CONTAINER_VAR=from-process-env")
        .args(&["true"]);
    for name in ORDER {
        bundle.push(&format!("/hooks/{name}"), env_dumping_hook(name, &dir, env));
    }
    bundle.save();
    let id = rt.new_id();
    let with_caller_env = |c: &mut std::process::Command| {
        c.env("CALLER_VAR", "from-the-runtime-caller");
    };
    let path = bundle.path().to_str().unwrap().to_owned();
    rt.cmd_with(&["create", "--bundle", &path, &id], with_caller_env)
        .ok();
    rt.cmd_with(&["start", &id], with_caller_env).ok();
    rt.wait_for_status(&id, "stopped");
    rt.cmd_with(&["delete", &id], with_caller_env).ok();
    dir
}

/// A hook without `env` gets the environment runc gives it: the runtime's
/// own (its caller's) for the hooks the runtime runs (prestart,
/// createRuntime, poststart, poststop); the container process's for those
/// run in the container: process.env for createContainer, and process.env
/// with HOME (the program's environment) for startContainer.
#[test]
fn hooks_without_env_get_runc_s_environment() {
    let Some(rt) = Runtime::new("hooks-env-default") else {
        return;
    };
    let dir = run_with_env_dumping_hooks(&rt, None);
    let caller = "CALLER_VAR=from-the-runtime-caller".to_string();
    let container = "CONTAINER_VAR=from-process-env".to_string();
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        let env = dumped_env(&dir, name);
        assert!(env.contains(&caller), "{name}: {env:?}");
        assert!(!env.contains(&container), "{name}: {env:?}");
    }
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let mut expected = vec![
        container.clone(),
        path.to_string(),
        "TERM=xterm".to_string(),
    ];
    expected.sort();
    assert_eq!(dumped_env(&dir, "createContainer"), expected);
    expected.push("HOME=/root".to_string());
    expected.sort();
    assert_eq!(dumped_env(&dir, "startContainer"), expected);
}

/// A hook with `env` gets exactly that environment, at every point.
#[test]
fn hooks_with_env_get_exactly_it() {
    let Some(rt) = Runtime::new("hooks-env-given") else {
        return;
    };
    let given = ["PATH=/usr/bin:/bin", "HOOK_VAR=given"];
    let dir = run_with_env_dumping_hooks(&rt, Some(&given));
    let mut expected: Vec<String> = given.iter().map(|s| s.to_string()).collect();
    expected.sort();
    for name in ORDER {
        assert_eq!(dumped_env(&dir, name), expected, "{name}");
    }
}
