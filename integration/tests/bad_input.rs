//! Invalid input: each case fails with a one-line error naming the problem and
//! leaves nothing behind (see `Runtime::create_rejected`).

use std::fs;

use hull_integration::{is_hull, json, skip, Bundle, Runtime};

/// What the error message must mention: `hull` names the object; runc 1.1's
/// messages sometimes do not, so for runc its own wording is expected instead.
fn mention<'a>(hull: &'a str, runc: &'a str) -> &'a str {
    if is_hull() {
        hull
    } else {
        runc
    }
}

/// Creates a container from a bundle prepared by `prepare`; the create must be
/// rejected cleanly with an error mentioning `needle`.
fn rejects(name: &str, needle: &str, prepare: impl FnOnce(&mut Bundle)) {
    let Some(rt) = Runtime::new(name) else { return };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    prepare(&mut bundle);
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning(needle);
}

#[test]
fn missing_config_json() {
    rejects("bad-no-config", "config.json", |b| {
        b.raw_config(None);
    });
}

#[test]
fn malformed_config_json() {
    rejects(
        "bad-malformed",
        mention("config.json", "unexpected EOF"),
        |b| {
            b.raw_config(Some(r#"{ "ociVersion": "1.0.2", "process": "#));
        },
    );
}

#[test]
fn wrongly_typed_field() {
    rejects("bad-type", "hostname", |b| {
        b.set("/hostname", 5);
    });
}

#[test]
fn missing_rootfs() {
    rejects("bad-no-rootfs", "rootfs", |b| {
        fs::remove_dir_all(b.rootfs()).unwrap()
    });
}

#[test]
fn namespace_path_does_not_exist() {
    rejects("bad-ns-path", "/nonexistent/netns", |b| {
        b.namespace("network", Some("/nonexistent/netns"));
    });
}

#[test]
fn namespace_path_of_wrong_type() {
    let Some(rt) = Runtime::new("bad-ns-type") else {
        return;
    };
    let mut bundle = rt.bundle();
    // Exists, but is a network namespace.
    bundle
        .args(&["sleep", "600"])
        .namespace("ipc", Some("/proc/self/ns/net"));
    let out = rt.create_rejected(&bundle, &rt.new_id());
    if is_hull() {
        out.fails_mentioning("/proc/self/ns/net");
    } else {
        skip("runc 1.1 reports a failed setns in several lines, without the path");
    }
}

#[test]
fn empty_args() {
    rejects("bad-empty-args", "args", |b| {
        b.set("/process/args", json!([]));
    });
}

#[test]
fn executable_not_in_path() {
    rejects("bad-no-exe", "executable file not found", |b| {
        b.args(&["no-such-program"]);
    });
}

#[test]
fn future_oci_version() {
    if !is_hull() {
        return skip("runc accepts any ociVersion");
    }
    rejects("bad-oci-version", "ociVersion", |b| {
        b.set("/ociVersion", "2.0.0");
    });
}

/// The kernel reads uid/gid 4294967295 ((uid_t)-1) as "no change": a process
/// asked to run as it would stay root. Ids above 2147483647 are refused.
#[test]
fn user_ids_out_of_range() {
    let cases = [
        (
            "bad-uid",
            "/process/user/uid",
            json!(4294967295u32),
            "process.user.uid 4294967295",
        ),
        (
            "bad-gid",
            "/process/user/gid",
            json!(4294967295u32),
            "process.user.gid 4294967295",
        ),
        (
            "bad-uid-big",
            "/process/user/uid",
            json!(2147483648u32),
            "process.user.uid 2147483648",
        ),
        (
            "bad-additional-gid",
            "/process/user/additionalGids",
            json!([10, 4294967295u32]),
            "process.user.additionalGids[1] 4294967295",
        ),
    ];
    for (name, pointer, value, field) in cases {
        rejects(
            name,
            mention(
                &format!("{field} is out of range (0-2147483647)"),
                "must be in range 0-2147483647",
            ),
            |b| {
                b.args(&["id"]).set(pointer, value);
            },
        );
    }
}

/// uid/gid mappings (of the user namespace and of idmapped mounts) must not
/// reach past 2147483647 on either side.
#[test]
fn id_mappings_out_of_range() {
    if !is_hull() {
        return skip("runc 1.1 leaves mapping ranges to the kernel");
    }
    let user_ns = |b: &mut Bundle, uid_map: serde_json::Value| {
        b.namespace("user", None)
            .set("/linux/uidMappings", uid_map)
            .set(
                "/linux/gidMappings",
                json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
            );
    };
    let cases = [
        (
            json!({ "containerID": 0, "hostID": 4294967295u32, "size": 1 }),
            "linux.uidMappings[0].hostID 4294967295",
        ),
        (
            json!({ "containerID": 4294967295u32, "hostID": 100000, "size": 1 }),
            "linux.uidMappings[0].containerID 4294967295",
        ),
        (
            json!({ "containerID": 2147483647, "hostID": 100000, "size": 2 }),
            "containerID 2147483647 with size 2",
        ),
        (
            json!({ "containerID": 0, "hostID": 2147483600, "size": 65536 }),
            "hostID 2147483600 with size 65536",
        ),
    ];
    for (i, (mapping, says)) in cases.into_iter().enumerate() {
        rejects(&format!("bad-idmap-{i}"), says, |b| {
            user_ns(b, json!([mapping]))
        });
    }
    rejects(
        "bad-mount-idmap",
        "mounts[0].uidMappings[0].hostID 4294967295",
        |b| {
            let mut mounts = b.config["mounts"].as_array().unwrap().clone();
            mounts[0]["uidMappings"] =
                json!([{ "containerID": 0, "hostID": 4294967295u32, "size": 1 }]);
            mounts[0]["gidMappings"] = json!([{ "containerID": 0, "hostID": 0, "size": 1 }]);
            b.set("/mounts", json!(mounts));
        },
    );
}

#[test]
fn invalid_container_ids() {
    let Some(rt) = Runtime::new("bad-ids") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    for id in ["", "a/b", "..", ".", "../escape"] {
        rt.create_rejected(&bundle, id).fails_mentioning("id");
    }
    assert!(
        !rt.root().parent().unwrap().join("escape").exists(),
        "id ../escape escaped --root"
    );
}

/// Ids name directories: 255 characters (a file name's limit) work end to
/// end, also under a --root too long for a socket address below it; longer
/// ids are refused up front, naming the limit, rather than failing half-way
/// with "file name too long".
#[test]
fn long_container_ids() {
    let Some(rt) = Runtime::new(&format!("bad-long-id-{}", "r".repeat(100))) else {
        return;
    };
    assert!(rt.root().as_os_str().len() > 108, "{}", rt.root().display());
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let prefix = format!("long-{}-", std::process::id());
    let longest = format!("{prefix}{}", "a".repeat(255 - prefix.len()));
    rt.track_id(&longest);
    rt.create(&bundle, &longest, &[]).ok();
    rt.start(&longest).ok();
    assert_eq!(rt.status(&longest), "running");
    rt.delete_force(&longest).ok();
    rt.assert_no_cgroups(&longest, "by delete --force");
    for n in [256, 1024] {
        let id = format!("{prefix}{}", "b".repeat(n - prefix.len()));
        let out = rt.create_rejected(&bundle, &id);
        if is_hull() {
            out.fails_mentioning(&format!("has {n} characters, at most 255 are allowed"));
            assert!(
                out.stderr.contains(&id),
                "the error does not name the id:\n{out}"
            );
        } else {
            out.fails_mentioning("file name too long");
        }
    }
}

#[test]
fn duplicate_id() {
    let Some(rt) = Runtime::new("bad-duplicate") else {
        return;
    };
    let mut first = rt.bundle();
    first.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&first, &id, &[]).ok();
    let pid = rt.pid(&id);

    let mut second = rt.bundle();
    second.args(&["sleep", "600"]);
    rt.create_rejected(&second, &id)
        .fails_mentioning(mention(&id, "already exists"));
    // The existing container is untouched.
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["bundle"], first.path().to_str().unwrap());
}

#[test]
fn kill_with_unknown_signal() {
    let Some(rt) = Runtime::new("bad-signal") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    rt.kill(&id, "SIGNOTASIGNAL")
        .fails_mentioning("SIGNOTASIGNAL");
    rt.kill(&id, "NOPE").fails_mentioning("NOPE");
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn start_nonexistent_container() {
    let Some(rt) = Runtime::new("bad-start-missing") else {
        return;
    };
    let id = rt.new_id();
    rt.start(&id)
        .fails_mentioning(mention(&id, "does not exist"));
    assert!(
        rt.root_entries().is_empty(),
        "left in root: {:?}",
        rt.root_entries()
    );
}

#[test]
fn start_running_container() {
    let Some(rt) = Runtime::new("bad-start-running") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);
    rt.start(&id).fails_mentioning("running");
    assert_eq!(rt.status(&id), "running");
    assert_eq!(rt.pid(&id), pid);
}

#[test]
fn start_stopped_container() {
    let Some(rt) = Runtime::new("bad-start-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.start_until_stopped(&bundle);
    // runc's words, which clients match.
    rt.start(&id)
        .fails_mentioning("cannot start a container that has stopped");
    assert_eq!(rt.status(&id), "stopped");
}

#[test]
fn commands_on_unknown_container() {
    let Some(rt) = Runtime::new("bad-unknown") else {
        return;
    };
    let id = rt.new_id();
    for args in [
        vec!["state", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
        vec!["exec", &id, "true"],
    ] {
        rt.cmd(&args)
            .fails_mentioning(mention(&id, "does not exist"));
    }
}

/// An LSM label the host cannot apply is refused up front: running the
/// container unconfined would silently drop what the config asked for.
#[test]
fn lsm_label_without_lsm_on_host() {
    let host_has = |path: &str| std::path::Path::new(path).exists();
    if host_has("/sys/kernel/security/apparmor") || host_has("/sys/fs/selinux/enforce") {
        return hull_integration::skip("this host runs AppArmor or SELinux");
    }
    if !hull_integration::is_hull() {
        return hull_integration::skip("runc 1.1 ignores labels for LSMs the host lacks");
    }
    rejects("bad-apparmor", "AppArmor", |b| {
        b.set("/process/apparmorProfile", "hull-test-profile");
    });
    rejects("bad-selinux", "SELinux", |b| {
        b.set("/process/selinuxLabel", "system_u:system_r:container_t:s0");
    });
}

/// The words of runc 1.1's errors that containerd and podman match ("does
/// not exist" means gone, "container not running" means already exited,
/// ...): every one of them appears in the runtime's message in the same
/// situation, whatever else hull says.
#[test]
fn runc_error_words() {
    let Some(rt) = Runtime::new("bad-runc-words") else {
        return;
    };
    let missing = rt.new_id();
    for args in [
        vec!["state", &missing],
        vec!["kill", &missing],
        vec!["kill", &missing, "0"],
        vec!["delete", &missing],
        vec!["start", &missing],
        vec!["pause", &missing],
        vec!["resume", &missing],
        vec!["ps", &missing],
        vec!["events", "--stats", &missing],
        vec!["update", "--memory", "10m", &missing],
    ] {
        let out = rt.cmd(&args);
        assert_eq!(out.code(), 1, "{out}");
        out.fails_mentioning("container does not exist");
    }
    let out = rt.exec(&missing, &[], &["true"]);
    assert_eq!(out.code(), 255, "{out}");
    out.fails_mentioning("container does not exist");

    let mut bundle = rt.bundle();
    rt.create_rejected(&bundle, "bad/id")
        .fails_mentioning("invalid container ID format");

    // Running, then paused.
    let running = rt.start_sleeper(&mut bundle);
    rt.create_rejected(&rt.bundle(), &running)
        .fails_mentioning("container with given ID already exists");
    rt.start(&running)
        .fails_mentioning("cannot start an already running container");
    rt.cmd(&["resume", &running])
        .fails_mentioning("container not paused");
    rt.delete(&running).fails_mentioning(&format!(
        "cannot delete container {running} that is not stopped: running"
    ));
    rt.cmd(&["pause", &running]).ok();
    rt.start(&running)
        .fails_mentioning("cannot start a container in the paused state");
    rt.cmd(&["pause", &running])
        .fails_mentioning("container not running");
    let out = rt.exec(&running, &[], &["true"]);
    assert_eq!(out.code(), 255, "{out}");
    out.fails_mentioning("cannot exec in a paused container");
    rt.delete_force(&running).ok();

    // Stopped.
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let stopped = rt.start_until_stopped(&bundle);
    for args in [
        vec!["kill", &stopped, "KILL"],
        vec!["pause", &stopped],
        vec!["update", "--memory", "10m", &stopped],
    ] {
        rt.cmd(&args).fails_mentioning("container not running");
    }
    rt.cmd(&["resume", &stopped])
        .fails_mentioning("container not paused");
    rt.start(&stopped)
        .fails_mentioning("cannot start a container that has stopped");
    let out = rt.exec(&stopped, &[], &["true"]);
    assert_eq!(out.code(), 255, "{out}");
    out.fails_mentioning("cannot exec in a stopped container");
    rt.cmd(&["events", "--stats", &stopped])
        .fails_mentioning(&format!("container with id {stopped} is not running"));
}

/// /proc and /sys must be real directories in the image: runc's words.
#[test]
fn symlinked_proc_or_sys_in_the_image() {
    for (dir, fstype) in [("proc", "proc"), ("sys", "sysfs")] {
        let Some(rt) = Runtime::new(&format!("bad-symlinked-{dir}")) else {
            return;
        };
        let mut bundle = rt.bundle();
        bundle.args(&["true"]);
        let path = bundle.rootfs().join(dir);
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink("/tmp", &path).unwrap();
        let out = rt.create_rejected(&bundle, &rt.new_id());
        // Quoted again in the text log line: filesystem \"proc\" must ...
        out.fails_mentioning("must be mounted on ordinary directory");
        assert!(
            out.stderr.contains(&format!("filesystem \\\"{fstype}\\\"")),
            "{out}"
        );
    }
}
