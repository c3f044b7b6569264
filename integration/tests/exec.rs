//! `exec`: additional processes inside a running container.

use std::fs;

use hull_integration::host::{ns_link, pid_alive};
use hull_integration::{json, ns_links_script, Runtime};

/// A runtime handle plus one running container to exec into.
fn running_container(name: &str) -> Option<(Runtime, String)> {
    let rt = Runtime::new(name)?;
    let mut bundle = rt.bundle();
    bundle.env("FROM_CONFIG=yes");
    let id = rt.start_sleeper(&mut bundle);
    Some((rt, id))
}

#[test]
fn exec_joins_container_namespaces() {
    let Some((rt, id)) = running_container("exec-ns") else {
        return;
    };
    let init = rt.pid(&id).to_string();
    let kinds = ["pid", "net", "ipc", "uts", "mnt"];
    let out = rt.exec(&id, &[], &["sh", "-c", &ns_links_script(&kinds)]);
    let expected: Vec<String> = kinds.iter().map(|k| ns_link(&init, k)).collect();
    assert_eq!(out.ok().lines(), expected);
}

#[test]
fn exec_env_and_cwd() {
    let Some((rt, id)) = running_container("exec-env") else {
        return;
    };
    let out = rt.exec(
        &id,
        &["-e", "FOO=bar", "--cwd", "/tmp"],
        &["sh", "-c", "echo $FOO $FROM_CONFIG; pwd"],
    );
    // The process gets the config's env plus the extra variables.
    assert_eq!(out.ok().lines(), ["bar yes", "/tmp"]);
}

/// `exec --env K=V` overrides K from process.env (one K, the command
/// line's value, where the config had it), and a variable listed twice in
/// process.env is set once, to its last value: the environment is built by
/// setting each variable in turn, as runc does.
#[test]
fn exec_env_overrides_the_config() {
    let Some(rt) = Runtime::new("exec-env-override") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .env("FOO=from-config")
        .env("TWICE=first")
        .env("TWICE=second");
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.exec(&id, &["--env", "FOO=from-cli", "--env", "NEW=x"], &["env"]);
    let lines = out.ok().lines();
    let vars: Vec<&str> = lines.iter().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        vars,
        ["PATH", "TERM", "FOO", "TWICE", "NEW", "HOME"],
        "{out}"
    );
    assert!(lines.contains(&"FOO=from-cli"), "{out}");
    assert!(lines.contains(&"TWICE=second"), "{out}");

    // The container's own process: the same rule.
    let mut bundle = rt.bundle();
    bundle.env("TWICE=first").env("TWICE=second").args(&["env"]);
    let out = rt.run_ok(&bundle);
    let twice: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("TWICE="))
        .collect();
    assert_eq!(twice, ["TWICE=second"], "{out}");
}

/// An environment entry without '=' is refused, not passed on.
#[test]
fn env_entry_without_equals_is_refused() {
    let Some(rt) = Runtime::new("env-no-equals") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.env("NOEQUALS").args(&["env"]);
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    assert_eq!(out.code(), 1, "{out}");
    assert!(out.stderr.contains("NOEQUALS"), "{out}");
    assert!(!out.stdout.contains("NOEQUALS"), "{out}");

    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.exec(&id, &["--env", "ALSO_NO_EQUALS"], &["env"]);
    assert_eq!(out.code(), 255, "{out}");
    assert!(out.stderr.contains("ALSO_NO_EQUALS"), "{out}");
}

#[test]
fn exec_user_and_additional_gids() {
    let Some((rt, id)) = running_container("exec-user") else {
        return;
    };
    let out = rt.exec(
        &id,
        &["-u", "1000:1000", "--additional-gids", "10"],
        &["sh", "-c", "id -u; id -g; id -G"],
    );
    let lines = out.ok().lines();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000"], "{out}");
}

/// `exec` refuses ids the kernel would read as "no change" (4294967295) or
/// that are above 2147483647, from the flags and from a process file alike,
/// instead of running the process as root.
#[test]
fn exec_user_ids_out_of_range() {
    let Some((rt, id)) = running_container("exec-user-range") else {
        return;
    };
    let hull = hull_integration::is_hull();
    let cases: [(&[&str], &str); 4] = [
        (&["-u", "4294967295"], "--user uid 4294967295"),
        (&["-u", "0:4294967295"], "--user gid 4294967295"),
        (&["-u", "2147483648:0"], "--user uid 2147483648"),
        (
            &["--additional-gids", "4294967295"],
            "--additional-gids 4294967295",
        ),
    ];
    for (flags, field) in cases {
        let out = rt.exec(&id, flags, &["id", "-u"]);
        let says = if hull {
            format!("{field} is out of range (0-2147483647)")
        } else {
            "must be in range 0-2147483647".into()
        };
        out.fails_mentioning(&says);
        assert_eq!(out.code(), 255, "{out}");
    }
    let process = json!({
        "args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"],
        "user": { "uid": 4294967295u32, "gid": 0 },
    });
    let path = rt.dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = rt.exec(&id, &["--process", path.to_str().unwrap()], &[]);
    out.fails_mentioning(if hull {
        "process.user.uid 4294967295 is out of range (0-2147483647)"
    } else {
        "must be in range 0-2147483647"
    });
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn exec_exit_code_propagates() {
    let Some((rt, id)) = running_container("exec-code") else {
        return;
    };
    let out = rt.exec(&id, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.code(), 7, "{out}");
    // The container is unaffected.
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn exec_detached_with_pid_file() {
    let Some((rt, id)) = running_container("exec-detach") else {
        return;
    };
    let pid_file = rt.dir("pid").join("exec.pid");
    rt.exec(
        &id,
        &["-d", "--pid-file", pid_file.to_str().unwrap()],
        &["sleep", "600"],
    )
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file holds a pid");
    rt.track_pid(pid);
    assert!(pid_alive(pid));
    // The detached process lives in the container's pid namespace.
    assert_eq!(
        ns_link(&pid.to_string(), "pid"),
        ns_link(&rt.pid(&id).to_string(), "pid")
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
}

#[test]
fn exec_process_json() {
    let Some((rt, id)) = running_container("exec-process") else {
        return;
    };
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": ["sh", "-c", "echo $FOO; id -u; pwd"],
        "env": ["PATH=/bin", "FOO=from-json"],
        "cwd": "/tmp"
    });
    let path = rt.dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = rt.exec(&id, &["--process", path.to_str().unwrap()], &[]);
    assert_eq!(out.ok().lines(), ["from-json", "1000", "/tmp"]);
}

#[test]
fn exec_in_stopped_container_fails() {
    let Some(rt) = Runtime::new("exec-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.start_until_stopped(&bundle);
    rt.exec(&id, &[], &["true"]).failed();
}

/// `exec --cap` adds a capability to the bounding, effective and permitted
/// sets of that one process, never to inheritable or ambient.
#[test]
fn exec_cap_adds_a_capability() {
    let Some((rt, id)) = running_container("exec-cap") else {
        return;
    };
    if !hull_integration::is_hull() {
        return hull_integration::skip("runc 1.1 also adds --cap to the ambient set");
    }
    let caps = |flags: &[&str]| -> Vec<u64> {
        let out = rt.exec(
            &id,
            flags,
            &[
                "sh",
                "-c",
                "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
            ],
        );
        out.ok()
            .lines()
            .iter()
            .map(|l| {
                u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap_or(0)
            })
            .collect()
    };
    const SYS_ADMIN: u64 = 1 << 21;
    let plain = caps(&[]);
    let added = caps(&["--cap", "CAP_SYS_ADMIN"]);
    // Order in /proc/self/status: CapInh, CapPrm, CapEff, CapBnd, CapAmb.
    assert_eq!(
        plain[1] & SYS_ADMIN,
        0,
        "container config grants CAP_SYS_ADMIN already"
    );
    for (i, set) in ["permitted", "effective", "bounding"].iter().enumerate() {
        assert_ne!(
            added[i + 1] & SYS_ADMIN,
            0,
            "--cap missing from {set}: {added:x?}"
        );
    }
    assert_eq!(added[0], 0, "inheritable must stay empty: {added:x?}");
    assert_eq!(added[4], 0, "ambient must stay empty: {added:x?}");
    rt.exec(&id, &["--cap", "CAP_NOT_A_THING"], &["true"])
        .fails_mentioning("CAP_NOT_A_THING");
}

/// The host directories of process `pid`'s cgroups, one per line of
/// /proc/PID/cgroup (every v1 hierarchy and the unified one).
fn cgroup_dirs_of(pid: i32) -> Vec<std::path::PathBuf> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let list = l.split(':').nth(1)?;
            let controller = list.split(',').next().unwrap_or("");
            hull_integration::host::cgroup_dir(pid, controller)
        })
        .collect()
}

/// `exec --cgroup [controller[,controller]:]path` runs the process in an
/// existing sub-cgroup of the container's, as runc does; paths leaving the
/// container's cgroup are refused with runc's words.
#[test]
fn exec_into_a_sub_cgroup() {
    let Some((rt, id)) = running_container("exec-cgroup") else {
        return;
    };
    let init = rt.pid(&id);
    let dirs = cgroup_dirs_of(init);
    assert!(!dirs.is_empty(), "no cgroups for the init {init}");
    // Below the container's own cgroups (removed with them by delete).
    for d in &dirs {
        fs::create_dir(d.join("sub")).unwrap();
        // A v1 cpuset cgroup starts with no CPUs: give it the container's.
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = fs::read_to_string(d.join(file)) {
                fs::write(d.join("sub").join(file), v.trim()).unwrap();
            }
        }
    }
    let own = |text: &str, controller: &str| -> String {
        text.lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == controller))
            })
            .unwrap_or_else(|| panic!("no {controller} line in:\n{text}"))
            .to_owned()
    };
    let out = rt.exec(
        &id,
        &["--cgroup", "memory,pids:sub"],
        &["cat", "/proc/self/cgroup"],
    );
    let text = out.ok().stdout.clone();
    assert!(own(&text, "memory").ends_with("/sub"), "{out}");
    assert!(own(&text, "pids").ends_with("/sub"), "{out}");
    assert!(!own(&text, "freezer").ends_with("/sub"), "{out}");

    let out = rt.exec(&id, &["--cgroup", "sub"], &["cat", "/proc/self/cgroup"]);
    for line in out.ok().lines() {
        assert!(line.ends_with("/sub"), "every hierarchy: {line}\n{out}");
    }

    for (arg, says) in [
        ("../elsewhere", "../elsewhere is not a sub cgroup path"),
        ("memory:../..", "../.. is not a sub cgroup path"),
        ("nosuch:sub", "unknown controller nosuch"),
        ("a:b:c", "invalid --cgroup argument: a:b:c"),
        ("memory:missing", "missing"),
    ] {
        let out = rt.exec(&id, &["--cgroup", arg], &["true"]);
        assert_eq!(out.code(), 255, "{out}");
        out.fails_mentioning(says);
    }
    let out = rt.exec(&id, &["--cgroup", "a", "--cgroup", "b"], &["true"]);
    out.fails_mentioning("invalid --cgroup argument: a (missing <controller>: prefix)");
    rt.delete_force(&id).ok();
}
