//! Namespaces: new ones differ from the host's, joined ones match, and their
//! configuration (hostname, id mappings, time offsets) is visible inside.

use hull_integration::host::{ns_link, wait_until};
use hull_integration::{is_hull, json, ns_links_script, skip, Bundle, Runtime};
use std::process::Command;
use std::time::Duration;

/// The /proc/self/ns links of `kinds` as seen by the bundle's process.
fn container_ns_links(rt: &Runtime, bundle: &mut Bundle, kinds: &[&str]) -> Vec<String> {
    bundle.sh(&ns_links_script(kinds));
    rt.run_ok(bundle)
        .lines()
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn hostname_from_config() {
    let Some(rt) = Runtime::new("ns-hostname") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .hostname("hull-box")
        .sh("hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(rt.run_ok(&bundle).lines(), ["hull-box", "hull-box"]);
}

#[test]
fn new_namespaces_differ_from_host() {
    let Some(rt) = Runtime::new("ns-differ") else {
        return;
    };
    let mut bundle = rt.bundle();
    let kinds = ["pid", "net", "ipc", "uts", "mnt"];
    let inside = container_ns_links(&rt, &mut bundle, &kinds);
    assert_eq!(inside.len(), kinds.len(), "{inside:?}");
    for (kind, link) in kinds.iter().zip(&inside) {
        assert!(
            link.starts_with(&format!("{kind}:[")),
            "unexpected link {link:?}"
        );
        assert_ne!(
            *link,
            ns_link("self", kind),
            "{kind} namespace is the host's"
        );
    }
}

#[test]
fn process_is_pid_1() {
    let Some(rt) = Runtime::new("ns-pid1") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh("echo $$; ps -o pid,comm | wc -l");
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_eq!(lines[0], "1");
    // Header plus sh plus ps (and wc): the host's processes are invisible.
    assert!(lines[1].parse::<u32>().unwrap() <= 4, "{out}");
}

#[test]
fn join_network_namespace_by_path() {
    let Some(rt) = Runtime::new("ns-join-net") else {
        return;
    };
    // A host process in a network namespace of its own.
    let pid = rt
        .spawn_host("unshare", &["--net", "sleep", "600"])
        .to_string();
    let host_net = ns_link("self", "net");
    assert!(
        wait_until(Duration::from_secs(5), || ns_link(&pid, "net") != host_net),
        "unshare --net did not create a namespace"
    );
    let target = ns_link(&pid, "net");

    let mut bundle = rt.bundle();
    bundle.namespace("network", Some(&format!("/proc/{pid}/ns/net")));
    assert_eq!(container_ns_links(&rt, &mut bundle, &["net"]), [target]);
}

#[test]
fn join_another_containers_namespaces() {
    let Some(rt) = Runtime::new("ns-join-container") else {
        return;
    };
    let mut first = rt.bundle();
    let first_id = rt.start_sleeper(&mut first);
    let pid = rt.pid(&first_id).to_string();

    let mut second = rt.bundle();
    for (kind, link) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        second.namespace(kind, Some(&format!("/proc/{pid}/ns/{link}")));
    }
    let expected: Vec<String> = ["net", "ipc", "uts"]
        .iter()
        .map(|k| ns_link(&pid, k))
        .collect();
    assert_eq!(
        container_ns_links(&rt, &mut second, &["net", "ipc", "uts"]),
        expected
    );
}

#[test]
fn user_namespace_mappings() {
    let Some(rt) = Runtime::new("ns-user") else {
        return;
    };
    let mut bundle = rt.bundle();
    let mapping = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    bundle
        .namespace("user", None)
        .set("/linux/uidMappings", mapping.clone())
        .set("/linux/gidMappings", mapping)
        .sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user");
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_eq!(lines[..2], ["0", "0"], "{out}");
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(lines[2]), ["0", "100000", "65536"], "{out}");
    assert_eq!(words(lines[3]), ["0", "100000", "65536"], "{out}");
    assert_ne!(lines[4], ns_link("self", "user"));
}

#[test]
fn user_namespace_host_ids() {
    let Some(rt) = Runtime::new("ns-user-host") else {
        return;
    };
    let mut bundle = rt.bundle();
    let mapping = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    bundle
        .namespace("user", None)
        .set("/linux/uidMappings", mapping.clone())
        .set("/linux/gidMappings", mapping);
    let id = rt.start_sleeper(&mut bundle);
    // Seen from the host, container root is uid/gid 100000.
    let status = std::fs::read_to_string(format!("/proc/{}/status", rt.pid(&id))).unwrap();
    for key in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(
            line.split_whitespace().skip(1).all(|v| v == "100000"),
            "{line}"
        );
    }
}

#[test]
fn cgroup_namespace() {
    let Some(rt) = Runtime::new("ns-cgroup") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .namespace("cgroup", None)
        .sh("readlink /proc/self/ns/cgroup; cat /proc/self/cgroup");
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_ne!(lines[0], ns_link("self", "cgroup"));
    assert!(lines.len() > 1, "{out}");
    // Inside its cgroup namespace the container's own cgroups are the roots.
    for line in &lines[1..] {
        assert!(line.ends_with(":/"), "cgroup path not namespaced: {out}");
    }
}

#[test]
fn time_namespace_offsets() {
    let Some(rt) = Runtime::new("ns-time") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 has no time namespace support");
    }
    let mut bundle = rt.bundle();
    bundle
        .namespace("time", None)
        .set(
            "/linux/timeOffsets",
            json!({ "monotonic": { "secs": 86400, "nanosecs": 0 }, "boottime": { "secs": 172800, "nanosecs": 5 } }),
        )
        .sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime");
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_ne!(lines[0], ns_link("self", "time"));
    let offsets: Vec<Vec<&str>> = lines[1..3]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(offsets.contains(&vec!["monotonic", "86400", "0"]), "{out}");
    assert!(offsets.contains(&vec!["boottime", "172800", "5"]), "{out}");
    // /proc/uptime is boot-time based: shifted by two days.
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: f64 = lines[3].parse().unwrap();
    assert!(
        inside >= host_uptime + 172800.0 - 60.0,
        "uptime {inside} vs host {host_uptime}"
    );
}

/// A new network namespace has a working loopback: servers and clients in
/// the container can talk over 127.0.0.1 (runc brings `lo` up too).
#[test]
fn new_network_namespace_has_loopback_up() {
    let Some(rt) = Runtime::new("ns-loopback") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh(
        "ip -o link show lo | grep -q 'UP' && echo lo-up; \
         nc -l -p 7777 > /dev/shm/got & sleep 0.2; echo ping | nc -w 1 127.0.0.1 7777; wait; cat /dev/shm/got",
    );
    assert_eq!(rt.run_ok(&bundle).lines(), ["lo-up", "ping"]);
}

/// A named network namespace made with `ip netns add` (as podman and the
/// CRI make one and pass its path), deleted on drop.
struct NamedNetns {
    name: String,
}

impl NamedNetns {
    fn new(label: &str) -> NamedNetns {
        let name = format!("hull-it-{label}-{}", std::process::id());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add (install iproute2)");
        assert!(status.success(), "ip netns add {name} failed");
        NamedNetns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `cat FILE` run inside the namespace from the host.
    fn read(&self, file: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat", file])
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "ip netns exec {} cat {file} failed",
            self.name
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let ok = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            panic!("ip netns del {} failed", self.name);
        }
    }
}

/// Network sysctls in a network namespace joined by path are set there
/// (Debian's podman adds net.ipv4.ping_group_range to every run); the host's
/// own values do not change.
#[test]
fn sysctls_in_a_joined_network_namespace() {
    let Some(rt) = Runtime::new("ns-netns-sysctl") else {
        return;
    };
    let netns = NamedNetns::new("sysctl");
    let host_range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut bundle = rt.bundle();
    bundle
        .namespace("network", Some(&netns.path()))
        .set(
            "/linux/sysctl",
            json!({ "net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_forward": "1" }),
        )
        .sh("cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_forward");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["0\t2147483647", "1"], "{out}");
    assert_eq!(netns.read("/proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
        host_range
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
}

/// Joining the runtime's own (the host's) network or ipc namespace by path
/// gives no place for namespaced sysctls: refused, with runc's words.
#[test]
fn sysctls_in_the_host_s_namespaces_are_refused() {
    let Some(rt) = Runtime::new("ns-host-sysctl") else {
        return;
    };
    let me = std::process::id();
    let mut bundle = rt.bundle();
    bundle
        .namespace("network", Some(&format!("/proc/{me}/ns/net")))
        .set("/linux/sysctl", json!({ "net.ipv4.ip_forward": "1" }));
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning("not allowed in host network namespace");
    if !hull_integration::is_hull() {
        // runc 1.1 accepts any ipc namespace entry, joined or not.
        return;
    }
    let mut bundle = rt.bundle();
    bundle
        .namespace("ipc", Some(&format!("/proc/{me}/ns/ipc")))
        .set("/linux/sysctl", json!({ "kernel.shmmax": "4096" }));
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning("is not allowed in the hosts ipc namespace");
}

/// A network namespace made by a test (`ip netns add`), deleted on drop.
struct TestNetns(String);

impl TestNetns {
    fn new(name: &str) -> TestNetns {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        TestNetns(name.to_string())
    }

    fn ip(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// linux.netDevices: a veth end of the runtime's network namespace (one
/// the test made, hull runs in it) moves into the container, renamed;
/// when the container's namespace goes, the pair goes with it. A device
/// that does not exist is named in the error.
#[test]
fn net_devices_move_into_the_container() {
    use std::os::unix::process::CommandExt;
    let Some(rt) = Runtime::new("ns-netdev") else {
        return;
    };
    let ns = TestNetns::new(&format!("hullnd{}", std::process::id()));
    let made = ns.ip(&["link", "add", "hv0", "type", "veth", "peer", "name", "hv1"]);
    assert!(made.status.success(), "{made:?}");
    let netns_path = std::ffi::CString::new(format!("/run/netns/{}", ns.0)).unwrap();
    let in_test_netns = move |cmd: &mut Command| {
        let path = netns_path.clone();
        // SAFETY: open and setns are async-signal-safe; the path was
        // allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    };
    let mut bundle = rt.bundle();
    bundle.set("/linux/netDevices", json!({ "hv0": { "name": "eth7" } }));
    bundle.sh("ls /sys/class/net; cat /sys/class/net/eth7/type");
    let out = rt.run_with(&bundle, &rt.new_id(), &[], in_test_netns.clone());
    out.ok();
    assert_eq!(out.lines(), ["eth7", "lo", "1"], "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || !ns
            .ip(&["link", "show", "hv1"])
            .status
            .success()),
        "the veth pair went with the container's network namespace"
    );
    let mut missing = rt.bundle();
    missing.set("/linux/netDevices", json!({ "nosuchdev0": {} }));
    missing.sh("true");
    rt.run_with(&missing, &rt.new_id(), &[], in_test_netns)
        .fails_mentioning("nosuchdev0");
}
