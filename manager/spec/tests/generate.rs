//! The generated config.json, option by option and in the combinations
//! users rely on, checked as the JSON the runtime reads.

mod common;

use common::*;
use hull_spec::{
    parse_cpus, parse_memory, EtcFiles, Network, SpecError, ALL_CAPABILITIES, DEFAULT_CAPABILITIES,
    MASKED_PATHS, READONLY_PATHS,
};
use serde_json::json;
use std::path::PathBuf;

#[test]
fn defaults_are_nerdctls() {
    let c = config(&busybox(), &opts());
    assert_eq!(c["ociVersion"], "1.2.1");
    assert_eq!(c["root"], json!({"path": "rootfs", "readonly": false}));
    assert_eq!(c["hostname"], "0123456789ab");
    let p = &c["process"];
    assert_eq!(p["args"], json!(["sh"]));
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["terminal"], false);
    assert_eq!(
        p["user"],
        json!({"uid": 0, "gid": 0, "additionalGids": [0, 10]})
    );
    assert_eq!(
        p["env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=0123456789ab"
        ])
    );
    assert_eq!(p["noNewPrivileges"], false);
    assert!(
        p.get("rlimits").is_none(),
        "rlimits are inherited: {}",
        p["rlimits"]
    );
    let mut default_caps: Vec<String> =
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    default_caps.sort();
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(sorted(&p["capabilities"][set]), default_caps, "{set}");
    }
    assert!(p["capabilities"].get("inheritable").is_none());
    assert!(p["capabilities"].get("ambient").is_none());

    let l = &c["linux"];
    assert_eq!(
        l["namespaces"],
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}])
    );
    assert_eq!(l["cgroupsPath"], "/hull/default/0123456789abcdef0123");
    assert_eq!(l["maskedPaths"], json!(MASKED_PATHS));
    assert_eq!(l["readonlyPaths"], json!(READONLY_PATHS));
    assert_eq!(l["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    let devices = l["resources"]["devices"].as_array().unwrap();
    assert_eq!(devices[0], json!({"allow": false, "access": "rwm"}));
    assert!(devices
        .contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})));
    assert!(l["resources"].get("memory").is_none());
    assert!(l.get("devices").is_none() && l.get("sysctl").is_none());
    assert!(c.get("annotations").is_none());

    assert_eq!(
        destinations(&c),
        [
            "/proc",
            "/dev",
            "/sys",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys/fs/cgroup"
        ]
    );
    assert_eq!(
        mount(&c, "/dev/shm").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])
    );
    assert_eq!(
        mount(&c, "/sys").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "ro"])
    );
    assert_eq!(mount(&c, "/sys/fs/cgroup").unwrap()["type"], "cgroup");
    assert!(
        mount(&c, "/run").is_none(),
        "nerdctl removes containerd's /run tmpfs"
    );
}

#[test]
fn entrypoint_cmd_and_args() {
    let img = image(&["/docker-entrypoint.sh"], &["nginx", "-g", "daemon off;"]);
    let args = |o: &hull_spec::RunOptions| config(&img, o)["process"]["args"].clone();
    let mut o = opts();
    assert_eq!(
        args(&o),
        json!(["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
    );
    o.args = strings(&["nginx", "-t"]);
    assert_eq!(args(&o), json!(["/docker-entrypoint.sh", "nginx", "-t"]));
    o.entrypoint = Some(strings(&["/bin/sh", "-c"]));
    assert_eq!(args(&o), json!(["/bin/sh", "-c", "nginx", "-t"]));
    o.args.clear();
    assert_eq!(
        args(&o),
        json!(["/bin/sh", "-c"]),
        "--entrypoint drops the image's Cmd"
    );
    o.entrypoint = Some(strings(&[""]));
    assert_eq!(try_config(&img, &o), Err(SpecError::NoCommand));
    assert_eq!(
        try_config(&image(&[], &[]), &opts()),
        Err(SpecError::NoCommand)
    );
    let e = try_config(&image(&[], &[]), &opts())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("no command specified"), "{e}");
}

#[test]
fn env_order_and_overrides() {
    let mut o = opts();
    o.tty = true;
    o.hostname = Some("web".into());
    o.env = strings(&["LANG=en_US.UTF-8", "EXTRA=1", "EXTRA=2", "PATH=/custom"]);
    let c = config(&image(&[], &["sh"]), &o);
    assert_eq!(
        c["process"]["env"],
        json!([
            "PATH=/custom",
            "LANG=en_US.UTF-8",
            "HOSTNAME=web",
            "TERM=xterm",
            "EXTRA=2"
        ])
    );
    assert_eq!(c["process"]["terminal"], true);
    // `-e NAME` for a name unset in the caller's environment removes it.
    o.env = strings(&["LANG"]);
    o.tty = false;
    let c = config(&image(&[], &["sh"]), &o);
    assert_eq!(
        c["process"]["env"],
        json!(["PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web"])
    );
    o.env = strings(&["=oops"]);
    let e = try_config(&image(&[], &["sh"]), &o)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "--env \"=oops\": empty variable name: use NAME=VALUE");
}

#[test]
fn workdir_from_option_or_image() {
    let mut img = busybox();
    img.working_dir = "/srv/app".into();
    let mut o = opts();
    assert_eq!(config(&img, &o)["process"]["cwd"], "/srv/app");
    o.workdir = Some("/tmp".into());
    assert_eq!(config(&img, &o)["process"]["cwd"], "/tmp");
    o.workdir = Some("relative".into());
    assert!(try_config(&img, &o)
        .unwrap_err()
        .to_string()
        .starts_with("--workdir \"relative\""));
}

#[test]
fn user_resolution() {
    let user = |img_user: &str, opt: Option<&str>, add: &[&str]| {
        let mut img = busybox();
        img.user = img_user.into();
        let mut o = opts();
        o.user = opt.map(String::from);
        o.group_add = strings(add);
        try_config(&img, &o).map(|c| c["process"]["user"].clone())
    };
    assert_eq!(
        user("", Some("app"), &[]).unwrap(),
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 44, 50]})
    );
    assert_eq!(
        user("app", None, &[]).unwrap(),
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 44, 50]})
    );
    assert_eq!(user("app", Some("daemon"), &[]).unwrap()["uid"], 1);
    assert_eq!(
        user("", Some("app:video"), &[]).unwrap(),
        json!({"uid": 1000, "gid": 44, "additionalGids": [44, 50]})
    );
    assert_eq!(
        user("", Some("1234:5678"), &[]).unwrap(),
        json!({"uid": 1234, "gid": 5678, "additionalGids": [5678]})
    );
    assert_eq!(
        user("", Some("1234"), &[]).unwrap(),
        json!({"uid": 1234, "gid": 0, "additionalGids": [0]})
    );
    assert_eq!(
        user("", Some("nobody"), &["staff", "4000"]).unwrap(),
        json!({"uid": 65534, "gid": 65534, "additionalGids": [65534, 50, 4000]})
    );

    let e = user("", Some("ghost"), &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("--user \"ghost\": no user \"ghost\" in the image's /etc/passwd"),
        "{e}"
    );
    let e = user("ghost", None, &[]).unwrap_err().to_string();
    assert!(e.starts_with("the image's USER \"ghost\": no user"), "{e}");
    let e = user("", Some("app:ghosts"), &[]).unwrap_err().to_string();
    assert!(
        e.contains("no group \"ghosts\" in the image's /etc/group"),
        "{e}"
    );
    let e = user("", Some("4294967295"), &[]).unwrap_err().to_string();
    assert!(e.contains("out of range (0-2147483647)"), "{e}");
    let e = user("", None, &["ghosts"]).unwrap_err().to_string();
    assert!(e.starts_with("--group-add \"ghosts\""), "{e}");
}

#[test]
fn capabilities_and_their_seccomp_rules() {
    let caps = |add: &[&str], drop: &[&str]| {
        let mut o = opts();
        o.cap_add = strings(add);
        o.cap_drop = strings(drop);
        let c = config(&busybox(), &o);
        (
            sorted(&c["process"]["capabilities"]["bounding"]),
            allowed_syscalls(&c),
        )
    };
    let (base, base_calls) = caps(&[], &[]);
    assert_eq!(base.len(), 14);
    assert!(!base_calls.contains(&"mount".into()));
    assert!(
        base_calls.contains(&"ptrace".into()),
        "the profile allows ptrace for everyone"
    );
    assert!(!base_calls.contains(&"process_vm_readv".into()));

    let (c, calls) = caps(&["sys_admin", "CAP_SYS_PTRACE"], &["NET_RAW"]);
    assert!(c.contains(&"CAP_SYS_ADMIN".into()) && c.contains(&"CAP_SYS_PTRACE".into()));
    assert!(!c.contains(&"CAP_NET_RAW".into()));
    assert_eq!(c.len(), 15);
    assert!(calls.contains(&"mount".into()) && calls.contains(&"setns".into()));
    assert!(calls.contains(&"process_vm_readv".into()));

    let (c, calls) = caps(&["ALL"], &["SYS_MODULE"]);
    assert_eq!(c.len(), 40);
    assert!(
        !calls.contains(&"init_module".into()),
        "no CAP_SYS_MODULE, no module rules"
    );
    assert!(calls.contains(&"settimeofday".into()));

    let (c, calls) = caps(&["NET_BIND_SERVICE"], &["all"]);
    assert_eq!(c, ["CAP_NET_BIND_SERVICE"]);
    assert!(
        !calls.contains(&"chroot".into()),
        "CAP_SYS_CHROOT's rule is gone with the cap"
    );
    assert!(
        caps(&[], &[]).1.contains(&"chroot".into()),
        "the default set has CAP_SYS_CHROOT"
    );

    let mut o = opts();
    o.cap_add = strings(&["CAP_TELEPORT"]);
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.starts_with("--cap-add \"CAP_TELEPORT\": unknown capability"),
        "{e}"
    );
}

#[test]
fn privileged_is_dockers() {
    let mut o = opts();
    o.privileged = true;
    o.cap_drop = strings(&["ALL"]);
    o.host_devices = hull_spec::host_devices(std::path::Path::new("/dev")).unwrap();
    let c = config(&busybox(), &o);
    let mut all: Vec<String> = ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(sorted(&c["process"]["capabilities"]["effective"]), all);
    let l = &c["linux"];
    assert!(l.get("seccomp").is_none());
    assert!(l.get("maskedPaths").is_none() && l.get("readonlyPaths").is_none());
    assert_eq!(
        l["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    assert!(l["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["path"] == "/dev/null"));
    assert_eq!(
        mount(&c, "/sys").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "rw"])
    );
    assert_eq!(
        mount(&c, "/sys/fs/cgroup").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "rw"])
    );
    assert!(c["process"].get("apparmorProfile").is_none());
    assert_eq!(c["process"]["noNewPrivileges"], false);

    // "All" is what the manager holds when it says so (nerdctl's rule).
    o.host_capabilities = Some(strings(&["CAP_KILL", "CAP_CHOWN"]));
    let c = config(&busybox(), &o);
    assert_eq!(
        sorted(&c["process"]["capabilities"]["bounding"]),
        ["CAP_CHOWN", "CAP_KILL"]
    );
    o.privileged = false;
    o.cap_drop.clear();
    o.cap_add = strings(&["ALL"]);
    let c = config(&busybox(), &o);
    assert_eq!(
        sorted(&c["process"]["capabilities"]["bounding"]),
        ["CAP_CHOWN", "CAP_KILL"]
    );
    assert!(
        c["linux"]["seccomp"].is_object(),
        "--cap-add ALL is not --privileged"
    );
}

#[test]
fn volumes_tmpfs_and_etc_files() {
    let mut o = opts();
    o.volumes = vec![
        "/srv/data:/data:ro".parse().unwrap(),
        "/srv/logs:/var/log/app".parse().unwrap(),
        "/srv/shm:/dev/shm".parse().unwrap(),
    ];
    o.tmpfs = vec![
        "/run".parse().unwrap(),
        "/cache:size=64m,exec".parse().unwrap(),
    ];
    o.etc_files = EtcFiles {
        hosts: Some("/var/lib/hull/c1/hosts".into()),
        hostname: Some("/var/lib/hull/c1/hostname".into()),
        resolv_conf: Some("/var/lib/hull/c1/resolv.conf".into()),
    };
    let c = config(&busybox(), &o);
    assert_eq!(
        mount(&c, "/data").unwrap(),
        &json!({"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "rprivate"]})
    );
    assert_eq!(
        mount(&c, "/var/log/app").unwrap()["options"],
        json!(["rbind", "rprivate"])
    );
    // A -v on /dev/shm replaces the default shm mount.
    assert_eq!(mount(&c, "/dev/shm").unwrap()["source"], "/srv/shm");
    assert_eq!(
        mount(&c, "/run").unwrap(),
        &json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "nosuid", "nodev"]})
    );
    assert_eq!(
        mount(&c, "/cache").unwrap()["options"],
        json!(["nosuid", "nodev", "size=64m", "exec"])
    );
    assert_eq!(
        mount(&c, "/etc/resolv.conf").unwrap(),
        &json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/hull/c1/resolv.conf", "options": ["bind", "rprivate"]})
    );
    assert!(mount(&c, "/etc/hosts").is_some() && mount(&c, "/etc/hostname").is_some());
    // Parents before children: depth order, stable within a depth.
    let d = destinations(&c);
    let depth = |p: &String| p.matches('/').count();
    assert!(d.windows(2).all(|w| depth(&w[0]) <= depth(&w[1])), "{d:?}");
    assert_eq!(d.iter().filter(|x| *x == "/dev/shm").count(), 1);

    // A user's volume on /etc/hosts wins over the network's file.
    o.volumes.push("/my/hosts:/etc/hosts:ro".parse().unwrap());
    let c = config(&busybox(), &o);
    assert_eq!(mount(&c, "/etc/hosts").unwrap()["source"], "/my/hosts");

    o.tmpfs.push("/data".parse().unwrap());
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.starts_with("--tmpfs \"/data\": duplicate mount point"),
        "{e}"
    );
}

#[test]
fn user_dev_mount_replaces_everything_under_dev() {
    let mut o = opts();
    o.volumes = vec!["/dev:/dev".parse().unwrap()];
    let c = config(&busybox(), &o);
    assert_eq!(
        destinations(&c),
        ["/proc", "/sys", "/dev", "/sys/fs/cgroup"]
    );
}

#[test]
fn resources_memory_cpus_pids_shm() {
    let mut o = opts();
    o.memory = Some(parse_memory("256m").unwrap());
    o.cpus = Some(parse_cpus("1.5").unwrap());
    o.pids_limit = Some(100);
    o.shm_size = Some(parse_memory("1g").unwrap());
    let c = config(&busybox(), &o);
    let r = &c["linux"]["resources"];
    assert_eq!(
        r["memory"],
        json!({"limit": 268435456i64, "swap": 536870912i64})
    );
    assert_eq!(r["cpu"], json!({"quota": 150000, "period": 100000}));
    assert_eq!(r["pids"], json!({"limit": 100}));
    assert_eq!(
        mount(&c, "/dev/shm").unwrap()["options"][4],
        "size=1048576k"
    );

    o.cpus = Some(0.29);
    o.memory_swap = Some(-1);
    let c = config(&busybox(), &o);
    assert_eq!(
        c["linux"]["resources"]["cpu"]["quota"], 29000,
        "rounded, not truncated"
    );
    assert_eq!(c["linux"]["resources"]["memory"]["swap"], -1);

    // 0 means "no limit" for each, as docker.
    o.memory = Some(0);
    o.memory_swap = None;
    o.cpus = Some(0.0);
    o.pids_limit = Some(-1);
    let c = config(&busybox(), &o);
    let r = c["linux"]["resources"].as_object().unwrap();
    assert_eq!(r.keys().collect::<Vec<_>>(), ["devices"]);

    o.shm_size = Some(0);
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.starts_with("--shm-size \"0\": must be more than 0"),
        "{e}"
    );
    o.shm_size = None;
    o.pids_limit = Some(-5);
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.starts_with("--pids-limit \"-5\": must be a positive"),
        "{e}"
    );
    o.pids_limit = None;
    o.cpus = Some(-1.0);
    assert!(try_config(&busybox(), &o)
        .unwrap_err()
        .to_string()
        .starts_with("--cpus"));
}

#[test]
fn read_only_rootfs() {
    let mut o = opts();
    o.read_only = true;
    o.etc_files.resolv_conf = Some("/run/hull/resolv.conf".into());
    let c = config(&busybox(), &o);
    assert_eq!(c["root"]["readonly"], true);
    // nerdctl keeps the /etc files writable even then.
    assert_eq!(
        mount(&c, "/etc/resolv.conf").unwrap()["options"],
        json!(["bind", "rprivate"])
    );
}

#[test]
fn network_modes() {
    let netns = |c: &serde_json::Value| {
        c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .cloned()
    };
    let mut o = opts();
    assert_eq!(
        netns(&config(&busybox(), &o)),
        Some(json!({"type": "network"}))
    );
    o.network = Network::Path(PathBuf::from("/var/run/netns/cni-1234"));
    assert_eq!(
        netns(&config(&busybox(), &o)),
        Some(json!({"type": "network", "path": "/var/run/netns/cni-1234"}))
    );
    o.network = Network::Host;
    let c = config(&busybox(), &o);
    assert_eq!(netns(&c), None);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        c["hostname"],
        host.trim(),
        "docker: host network, host name"
    );
    o.hostname = Some("mine".into());
    assert_eq!(config(&busybox(), &o)["hostname"], "mine");
    o.network = Network::Path("netns".into());
    assert!(try_config(&busybox(), &o)
        .unwrap_err()
        .to_string()
        .starts_with("--network \"netns\""));
}

#[test]
fn security_opts_and_cgroupns() {
    let mut o = opts();
    o.no_new_privileges = true;
    o.seccomp_unconfined = true;
    o.cgroupns_private = true;
    let c = config(&busybox(), &o);
    assert_eq!(c["process"]["noNewPrivileges"], true);
    assert!(c["linux"].get("seccomp").is_none());
    assert!(
        c["linux"]["maskedPaths"].is_array(),
        "unconfined seccomp keeps masked paths"
    );
    assert_eq!(
        c["linux"]["namespaces"].as_array().unwrap().last().unwrap(),
        &json!({"type": "cgroup"})
    );
}

#[test]
fn sysctls_annotations_ulimits() {
    let mut o = opts();
    o.sysctls.insert("net.core.somaxconn".into(), "1024".into());
    o.annotations
        .insert("org.example/owner".into(), "team-a".into());
    o.ulimits = vec![
        "nofile=1024:4096".parse().unwrap(),
        "nproc=64".parse().unwrap(),
        "nofile=2048".parse().unwrap(),
    ];
    let c = config(&busybox(), &o);
    assert_eq!(c["linux"]["sysctl"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(c["annotations"], json!({"org.example/owner": "team-a"}));
    assert_eq!(
        c["process"]["rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 2048},
            {"type": "RLIMIT_NPROC", "hard": 64, "soft": 64}
        ])
    );
    o.sysctls.insert("kernel.pid_max".into(), "1".into());
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.starts_with("--sysctl \"kernel.pid_max=1\": not a namespaced sysctl"),
        "{e}"
    );
}

#[test]
fn only_linux_images() {
    let mut img = busybox();
    img.os = "windows".into();
    let e = try_config(&img, &opts()).unwrap_err().to_string();
    assert_eq!(
        e,
        "image config: the image is for \"windows\", not linux: pull the linux variant (--platform linux/ARCH)"
    );
    img.os = String::new();
    assert!(
        try_config(&img, &opts()).is_ok(),
        "no os given: assume linux"
    );
}

#[test]
fn identifiers_and_paths_are_checked() {
    let mut o = opts();
    o.id = "../x".into();
    assert!(try_config(&busybox(), &o)
        .unwrap_err()
        .to_string()
        .starts_with("container id \"../x\""));
    let mut o = opts();
    o.namespace = String::new();
    assert!(try_config(&busybox(), &o)
        .unwrap_err()
        .to_string()
        .starts_with("namespace \"\""));
    let mut o = opts();
    o.etc_files.hosts = Some("hosts".into());
    let e = try_config(&busybox(), &o).unwrap_err().to_string();
    assert!(
        e.contains("the host file for /etc/hosts must be an absolute path"),
        "{e}"
    );
    let mut o = opts();
    o.cgroup_parent = String::new();
    assert_eq!(
        config(&busybox(), &o)["linux"]["cgroupsPath"],
        "/default/0123456789abcdef0123"
    );
}
