//! The process section of config.json, checked from inside the container.

use hull_integration::{is_hull, json, skip, Bundle, Runtime};

/// Runs `script` in the bundle and returns its trimmed stdout.
fn output_of(rt: &Runtime, bundle: &mut Bundle, script: &str) -> String {
    bundle.sh(script);
    rt.run_ok(bundle).out().to_owned()
}

#[test]
fn user_group_and_additional_gids() {
    let Some(rt) = Runtime::new("proc-user") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set(
        "/process/user",
        json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 20] }),
    );
    let out = output_of(&rt, &mut bundle, "id -u; id -g; id -G");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "20"], "{out}");
}

#[test]
fn cwd() {
    let Some(rt) = Runtime::new("proc-cwd") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/process/cwd", "/tmp");
    assert_eq!(output_of(&rt, &mut bundle, "pwd"), "/tmp");
}

#[test]
fn cwd_is_created_if_missing() {
    let Some(rt) = Runtime::new("proc-cwd-new") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/process/cwd", "/work/dir");
    assert_eq!(output_of(&rt, &mut bundle, "pwd"), "/work/dir");
}

#[test]
fn env() {
    let Some(rt) = Runtime::new("proc-env") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.env("FOO=bar").env("WITH_SPACES=a b  c");
    assert_eq!(
        output_of(&rt, &mut bundle, "echo \"$FOO|$WITH_SPACES|$PATH\""),
        "bar|a b  c|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
}

#[test]
fn umask() {
    let Some(rt) = Runtime::new("proc-umask") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/process/user/umask", 0o027);
    assert_eq!(output_of(&rt, &mut bundle, "umask"), "0027");
}

#[test]
fn rlimit_nofile() {
    let Some(rt) = Runtime::new("proc-rlimit") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set(
        "/process/rlimits",
        json!([{ "type": "RLIMIT_NOFILE", "soft": 1234, "hard": 2345 }]),
    );
    let out = output_of(&rt, &mut bundle, "grep 'Max open files' /proc/self/limits");
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        fields,
        ["Max", "open", "files", "1234", "2345", "files"],
        "{out}"
    );
}

#[test]
fn no_new_privileges() {
    let Some(rt) = Runtime::new("proc-nnp") else {
        return;
    };
    for (flag, expected) in [(true, "1"), (false, "0")] {
        let mut bundle = rt.bundle();
        bundle.set("/process/noNewPrivileges", flag);
        let out = output_of(&rt, &mut bundle, "grep NoNewPrivs /proc/self/status");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["NoNewPrivs:", expected],
            "noNewPrivileges={flag}"
        );
    }
}

#[test]
fn oom_score_adj() {
    let Some(rt) = Runtime::new("proc-oom") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/process/oomScoreAdj", 500);
    assert_eq!(
        output_of(&rt, &mut bundle, "cat /proc/self/oom_score_adj"),
        "500"
    );
}

#[test]
fn domainname() {
    let Some(rt) = Runtime::new("proc-domain") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 ignores the domainname field");
    }
    let mut bundle = rt.bundle();
    bundle.set("/domainname", "hull.example");
    assert_eq!(
        output_of(&rt, &mut bundle, "cat /proc/sys/kernel/domainname"),
        "hull.example"
    );
}

#[test]
fn sysctl_net_and_ipc() {
    let Some(rt) = Runtime::new("proc-sysctl") else {
        return;
    };
    let mut bundle = rt.bundle();
    // Both namespaces are in the default spec; make that explicit.
    bundle.namespace("network", None).namespace("ipc", None);
    bundle.set(
        "/linux/sysctl",
        json!({ "net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789" }),
    );
    let out = output_of(
        &rt,
        &mut bundle,
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1", "123456789"]);
}

#[test]
fn capabilities_are_limited() {
    let Some(rt) = Runtime::new("proc-caps") else {
        return;
    };
    let mut bundle = rt.bundle();
    let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["bounding", "effective", "permitted"] {
        bundle.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    bundle
        .remove("/process/capabilities/inheritable")
        .remove("/process/capabilities/ambient");
    let out = output_of(
        &rt,
        &mut bundle,
        "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status",
    );
    // CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10: 0x420.
    for line in out.lines() {
        assert!(line.ends_with("0000000000000420"), "{out}");
    }
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn io_priority() {
    let Some(rt) = Runtime::new("proc-ioprio") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 ignores process.ioPriority (new in runc 1.2)");
    }
    let mut bundle = rt.bundle();
    bundle.set(
        "/process/ioPriority",
        json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 }),
    );
    // busybox ionice prints the class of the shell (pid $$), not of itself.
    assert_eq!(output_of(&rt, &mut bundle, "ionice -p $$"), "idle");

    let mut bundle = rt.bundle();
    bundle.set(
        "/process/ioPriority",
        json!({ "class": "IOPRIO_CLASS_BE", "priority": 6 }),
    );
    assert_eq!(
        output_of(&rt, &mut bundle, "ionice -p $$"),
        "best-effort: prio 6"
    );
}

#[test]
fn scheduler_policy() {
    let Some(rt) = Runtime::new("proc-sched") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 ignores process.scheduler (new in runc 1.2)");
    }
    let mut bundle = rt.bundle();
    bundle.set("/process/scheduler", json!({ "policy": "SCHED_BATCH" }));
    // Field 41 of /proc/PID/stat is the policy: SCHED_BATCH is 3 (SCHED_OTHER 0).
    // awk reads its own stat; the policy is inherited from the container process.
    assert_eq!(
        output_of(&rt, &mut bundle, "awk '{ print $41 }' /proc/self/stat"),
        "3"
    );
}

/// The program starts with no signal blocked and SIGPIPE at its default,
/// whatever the caller blocked (a shim reading its signals from a
/// signalfd) and whatever the runtime itself ignores (Rust ignores
/// SIGPIPE): a shell started with SIGINT blocked never sees ^C.
#[test]
fn signals_start_unblocked_and_sigpipe_at_its_default() {
    use std::os::unix::process::CommandExt;
    let Some(rt) = Runtime::new("proc-signals") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh("grep -E '^Sig(Blk|Ign)' /proc/self/status");
    let id = rt.new_id();
    let out = rt.run_with(&bundle, &id, &[], |cmd| {
        // SAFETY: sigprocmask and signal are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for s in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
                    libc::sigaddset(&mut set, s);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    out.ok();
    let field = |name: &str| {
        let line = out
            .out()
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {}", out.out()));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(field("SigBlk:"), 0, "{}", out.out());
    assert_eq!(
        field("SigIgn:") & (1 << (libc::SIGPIPE - 1)),
        0,
        "{}",
        out.out()
    );
}

/// linux.personality LINUX32: the 32-bit execution domain (linux32).
#[test]
fn personality_linux32() {
    let Some(rt) = Runtime::new("proc-personality") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/linux/personality", json!({ "domain": "LINUX32" }));
    let machine = output_of(&rt, &mut bundle, "uname -m");
    let expected = match std::env::consts::ARCH {
        "x86_64" => "i686",
        "aarch64" => "armv8l",
        other => other,
    };
    assert_eq!(machine, expected);
    bundle.set(
        "/linux/personality",
        json!({ "domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"] }),
    );
    bundle.sh("true");
    rt.run(&bundle, &rt.new_id(), &[])
        .fails_mentioning("linux.personality.flags");
}

/// linux.memoryPolicy: the init's NUMA policy, seen in its numa_maps;
/// nodes that are not online are refused at create, naming the field.
#[test]
fn memory_policy_binds_to_nodes() {
    let Some(rt) = Runtime::new("proc-mempolicy") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set(
        "/linux/memoryPolicy",
        json!({ "mode": "MPOL_INTERLEAVE", "nodes": "0" }),
    );
    let maps = output_of(&rt, &mut bundle, "cat /proc/self/numa_maps");
    assert!(maps.contains(" interleave:0 "), "{maps}");
    bundle.set(
        "/linux/memoryPolicy",
        json!({ "mode": "MPOL_BIND", "nodes": "1000" }),
    );
    bundle.sh("true");
    rt.run(&bundle, &rt.new_id(), &[])
        .fails_mentioning("linux.memoryPolicy");
    bundle.set("/linux/memoryPolicy", json!({ "mode": "MPOL_BIND" }));
    rt.run(&bundle, &rt.new_id(), &[])
        .fails_mentioning("needs nodes");
}
