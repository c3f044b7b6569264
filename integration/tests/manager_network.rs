//! Container networking with the real CNI plugins (Debian's
//! containernetworking-plugins): every test makes its own network
//! namespace and runs hulld inside it, so the bridge, the veths, the
//! firewall rules and the containers all live there; nothing touches the
//! machine's own interfaces. The image comes from an archive (hulld in the
//! test's namespace cannot reach the host's loopback registry).

use hull_integration::host::{wait_until, ScratchDir};
use hull_integration::manager::{images_dir, Hulld, Out};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const IMAGE: &str = "example.com/net/small:v1";

/// A network namespace of the test's (`/run/netns/<name>`), loopback up;
/// deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new() -> TestNetns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hull-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ))
        .ok();
        TestNetns { name }
    }

    /// A shell command run in the namespace (network only).
    fn sh(&self, script: &str) -> Out {
        Out::wait(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .args(["sh", "-c", script])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// The firewall rules of the namespace, without counters.
    fn rules(&self) -> String {
        let out = self.sh("iptables-save").ok().stdout;
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.split_once(" [") {
                Some((chain, _)) if l.starts_with(':') => chain.to_string(),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Network interfaces in the namespace.
    fn links(&self) -> Vec<String> {
        let out = self.sh("ip -o link show").ok().stdout;
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn sh(script: &str) -> Out {
    Out::wait(
        Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn have_plugins() -> bool {
    let ok =
        std::path::Path::new("/usr/lib/cni/bridge").exists() && sh("command -v iptables").code == 0;
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "containernetworking-plugins or iptables missing in CI: add them to hack/deps.sh"
        );
        eprintln!("SKIP: apt-get install containernetworking-plugins iptables");
    }
    ok
}

/// hulld in a new network namespace, with the small test image imported.
fn setup() -> Option<(TestNetns, Hulld)> {
    setup_with("")
}

/// [`setup`] with more of hulld's config.
fn setup_with(extra_config: &str) -> Option<(TestNetns, Hulld)> {
    if !hull_integration::require_root() || !have_plugins() {
        return None;
    }
    let netns = TestNetns::new();
    let d = Hulld::start_in_netns(&netns.name, extra_config);
    let tar = d.dir.join("small.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        images_dir().join("small").display(),
        tar.display()
    ))
    .ok();
    d.ctl(&[
        "images",
        "import",
        "--name",
        IMAGE,
        &tar.display().to_string(),
    ])
    .ok();
    Some((netns, d))
}

fn ip_of(d: &Hulld, name: &str) -> String {
    let out = d.ctl(&["inspect", name]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v[0]["Labels"]["hull/network.ips"]
        .as_str()
        .unwrap_or_else(|| panic!("no address: {}", out.stdout))
        .to_string()
}

/// The addresses host-local holds for the default network.
fn leased_ips(d: &Hulld) -> Vec<String> {
    let dir = d.root().join("cni/networks/bridge");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}

fn netns_files(d: &Hulld) -> usize {
    sh(&format!(
        "find {} -type f 2>/dev/null | wc -l",
        d.dir.join("state/netns").display()
    ))
    .ok()
    .stdout
    .trim()
    .parse()
    .unwrap()
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-hull > /www/index.html && exec busybox httpd -f -p 80 -h /www";

#[test]
fn containers_on_the_default_bridge_talk_and_publish_ports() {
    let Some((netns, d)) = setup() else {
        return;
    };
    d.ctl(&[
        "run", "-d", "--name", "web", "-p", "18080:80", IMAGE, "sh", "-c", HTTPD,
    ])
    .ok();
    let web_ip = ip_of(&d, "web");
    assert!(web_ip.starts_with("10.4.0."), "{web_ip}");
    // From the test's namespace: the published port on loopback and on
    // the bridge's address.
    let fetch = |url: &str| netns.sh(&format!("curl -s --max-time 5 {url}"));
    let up = wait_until(Duration::from_secs(10), || {
        fetch("http://127.0.0.1:18080/")
            .stdout
            .contains("hello-from-hull")
    });
    assert!(up, "{:?}\n{}", fetch("http://127.0.0.1:18080/"), d.log());
    assert!(fetch("http://10.4.0.1:18080/")
        .stdout
        .contains("hello-from-hull"));
    // Container to container, by address.
    let out = d
        .ctl(&[
            "run",
            "--rm",
            IMAGE,
            "busybox",
            "wget",
            "-qO-",
            &format!("http://{web_ip}/"),
        ])
        .ok();
    assert!(out.stdout.contains("hello-from-hull"), "{out:?}");
    // Not from a container of another network (docker isolates them).
    d.ctl(&["network", "create", "other", "--subnet", "10.8.0.0/24"])
        .ok();
    let url = format!("http://{web_ip}/");
    // (busybox's own `wget -T` crashes in Debian's static build; the
    // timeout's TERM would not stop wget as the namespace's init: sh
    // stays init, as the command is not its last.)
    let script = format!("busybox timeout 3 busybox wget -qO- {url}; exit $?");
    let wget = |network: &str| {
        d.ctl(&[
            "run",
            "--rm",
            "--network",
            network,
            IMAGE,
            "sh",
            "-c",
            &script,
        ])
    };
    let out = wget("other");
    assert!(
        out.code != 0 && !out.stdout.contains("hello-from-hull"),
        "{out:?}"
    );
    assert!(wget("bridge").stdout.contains("hello-from-hull"));
    assert_eq!(
        d.ctl(&["port", "web"]).ok().stdout.trim(),
        "80/tcp -> 0.0.0.0:18080"
    );
    let ps = d.ctl(&["ps"]).ok().stdout;
    assert!(
        ps.contains("PORTS") && ps.contains("0.0.0.0:18080->80/tcp"),
        "{ps}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ctl(&["inspect", "web"]).ok().stdout).unwrap();
    assert_eq!(inspect[0]["NetworkSettings"]["IPAddress"], web_ip.as_str());
    // Its own name resolves to its address.
    let hosts = d.ctl(&["exec", "web", "cat", "/etc/hosts"]).ok().stdout;
    assert!(hosts.contains(&format!("{web_ip}\t")), "{hosts}");

    // UDP: a server in the container (the host's python3 through a
    // read-only bind of /), a client in the test's namespace.
    let server = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53)); d, a = s.recvfrom(100); s.sendto(b'pong:' + d, a)";
    d.ctl(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "15353:53/udp",
        "-v",
        "/:/host:ro",
        IMAGE,
        "busybox",
        "chroot",
        "/host",
        "python3",
        "-c",
        server,
    ])
    .ok();
    let client = "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1)\nfor _ in range(20):\n    s.sendto(b'ping', ('127.0.0.1', 15353))\n    try:\n        print(s.recvfrom(100)[0].decode()); break\n    except OSError:\n        time.sleep(0.3)\n";
    let reply = netns.sh(&format!("python3 -c \"{client}\""));
    assert!(reply.stdout.contains("pong:ping"), "{reply:?}");
    d.ctl(&["rm", "-f", "web", "udp"]).ok();
}

#[test]
fn none_has_only_loopback_and_host_sees_the_namespaces_interfaces() {
    let Some((netns, d)) = setup() else {
        return;
    };
    netns
        .sh("ip link add hulltest0 type veth peer name hulltest1")
        .ok();
    let none = d
        .ctl(&[
            "run",
            "--rm",
            "--network",
            "none",
            IMAGE,
            "cat",
            "/proc/net/dev",
        ])
        .ok()
        .stdout;
    let names: Vec<&str> = none
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{none}");
    let host = d
        .ctl(&[
            "run",
            "--rm",
            "--network",
            "host",
            IMAGE,
            "cat",
            "/proc/net/dev",
        ])
        .ok()
        .stdout;
    assert!(host.contains("hulltest0"), "{host}");
    assert!(leased_ips(&d).is_empty(), "no address for none or host");
}

#[test]
fn removal_releases_addresses_rules_and_namespaces_also_in_a_loop() {
    let Some((netns, d)) = setup() else {
        return;
    };
    // The bridge and portmap's shared chains stay after the first
    // container that published a port (as with containerd).
    d.ctl(&["run", "--rm", "-p", "29999:80", IMAGE, "true"])
        .ok();
    let rules = netns.rules();
    let links = netns.links();
    assert!(links.contains(&"hull0".to_string()), "{links:?}");
    for i in 0..50 {
        let name = format!("c{i}");
        let port = (20000 + i).to_string();
        d.ctl(&[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &format!("{port}:80"),
            IMAGE,
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
        if i == 0 {
            assert_eq!(leased_ips(&d).len(), 1);
            assert_ne!(netns.rules(), rules, "the port's rules are in place");
        }
        d.ctl(&["rm", "-f", &name]).ok();
    }
    assert!(leased_ips(&d).is_empty(), "{:?}", leased_ips(&d));
    assert_eq!(netns.rules(), rules, "every portmap rule went");
    // The veths go with their namespaces, in the kernel's background work.
    let gone = wait_until(Duration::from_secs(20), || netns.links() == links);
    assert!(gone, "no veth left: {:?} vs {links:?}", netns.links());
    assert_eq!(netns_files(&d), 0);
}

#[test]
fn a_killed_hulld_leaks_nothing_once_its_containers_are_removed() {
    let Some((netns, mut d)) = setup() else {
        return;
    };
    d.ctl(&["run", "--rm", "-p", "29999:80", IMAGE, "true"])
        .ok();
    let (rules, links) = (netns.rules(), netns.links());
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        d.ctl(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{}:80", 21000 + i),
            IMAGE,
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
    }
    assert_eq!(leased_ips(&d).len(), 3);
    d.stop_with(libc::SIGKILL);
    d.spawn();
    d.ctl(&["rm", "-f", "a", "b", "c"]).ok();
    assert!(leased_ips(&d).is_empty(), "{:?}", leased_ips(&d));
    assert_eq!(netns.rules(), rules);
    assert!(
        wait_until(Duration::from_secs(20), || netns.links() == links),
        "{:?}",
        netns.links()
    );
    assert_eq!(netns_files(&d), 0);

    // A task whose shim died while hulld was away (its container killed
    // with it by the cleanup on restart): the restart detaches it.
    d.ctl(&[
        "run", "-d", "--name", "orphan", "-p", "21100:80", IMAGE, "busybox", "sleep", "60",
    ])
    .ok();
    let id = serde_json::from_str::<serde_json::Value>(&d.ctl(&["inspect", "orphan"]).ok().stdout)
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let shim = d.shim_pid(&id).expect("the shim of the container");
    d.stop_with(libc::SIGKILL);
    // SAFETY: killing the shim this test's daemon started, by its PID.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    d.spawn();
    let cleaned = wait_until(Duration::from_secs(10), || leased_ips(&d).is_empty());
    assert!(cleaned, "{:?}\n{}", leased_ips(&d), d.log());
    assert_eq!(netns.rules(), rules);
    assert_eq!(netns_files(&d), 0);
    d.ctl(&["rm", "-f", "orphan"]).ok();
}

#[test]
fn an_exited_container_frees_its_port_and_address_until_started_again() {
    let Some((netns, mut d)) = setup() else {
        return;
    };
    // portmap's shared chains stay after the first published port.
    d.ctl(&["run", "--rm", "-p", "29999:80", IMAGE, "true"])
        .ok();
    let rules = netns.rules();
    d.ctl(&[
        "run", "-d", "--name", "brief", "-p", "18090:80", IMAGE, "busybox", "sleep", "600",
    ])
    .ok();
    assert_eq!(leased_ips(&d).len(), 1, "running, it holds an address");
    let err = d
        .ctl(&["run", "--rm", "-p", "18090:80", IMAGE, "true"])
        .fails();
    assert!(
        err.stderr.contains("already published by container brief"),
        "{err:?}"
    );

    d.ctl(&["kill", "-s", "KILL", "brief"]).ok();
    // Exited (not removed): as with docker, its port, address and rules
    // are free at once, and it shows no address. Its namespace goes last,
    // after every plugin's DEL.
    let freed = wait_until(Duration::from_secs(20), || netns_files(&d) == 0);
    assert!(
        freed,
        "the exited container still has its network namespace"
    );
    assert!(leased_ips(&d).is_empty(), "{:?}", leased_ips(&d));
    assert_eq!(netns.rules(), rules, "its portmap rules went at its exit");
    let address = || {
        let out = d.ctl(&["inspect", "brief"]).ok().stdout;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["NetworkSettings"]["IPAddress"].clone()
    };
    // The record is updated right after the namespace went.
    assert!(
        wait_until(Duration::from_secs(5), || address() == ""),
        "{}",
        address()
    );
    d.ctl(&["run", "--rm", "-p", "18090:80", IMAGE, "true"])
        .ok();

    // Started again, it gets a network again; removed, it leaves nothing.
    d.ctl(&["start", "brief"]).ok();
    assert!(!ip_of(&d, "brief").is_empty());
    assert_eq!(leased_ips(&d).len(), 1);
    d.ctl(&["rm", "-f", "brief"]).ok();
    assert!(leased_ips(&d).is_empty(), "{:?}", leased_ips(&d));
    assert_eq!(netns.rules(), rules);
    assert_eq!(netns_files(&d), 0);

    // One that exits while hulld is away gives its network up when hulld
    // is back.
    d.ctl(&[
        "run", "-d", "--name", "away", "-p", "18091:80", IMAGE, "busybox", "sleep", "600",
    ])
    .ok();
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ctl(&["inspect", "away"]).ok().stdout).unwrap();
    let pid = inspect[0]["State"]["Pid"]
        .as_i64()
        .expect("a running task's pid") as i32;
    d.stop_with(libc::SIGKILL);
    // SAFETY: killing the container this test started, by its PID.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    d.spawn();
    let freed = wait_until(Duration::from_secs(20), || netns_files(&d) == 0);
    assert!(
        freed,
        "the container that exited meanwhile keeps its network"
    );
    assert!(leased_ips(&d).is_empty(), "{:?}", leased_ips(&d));
    assert_eq!(netns.rules(), rules);
    let ps = d.ctl(&["ps", "-a"]).ok().stdout;
    assert!(ps.contains("away"), "the container itself stays: {ps}");
    d.ctl(&["rm", "-f", "away"]).ok();
}

/// A CNI plugin of the test's: records the config it gets per command
/// (`seen-add.json`, ...) next to itself and passes the previous result on.
const RECORDER: &str = r#"#!/usr/bin/env python3
import json, os, sys
command = os.environ.get("CNI_COMMAND", "")
if command == "VERSION":
    json.dump({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}, sys.stdout)
    sys.exit(0)
conf = json.load(sys.stdin)
with open(os.path.join(os.path.dirname(sys.argv[0]), "seen-%s.json" % command.lower()), "w") as f:
    json.dump(conf, f)
if command == "ADD":
    json.dump(conf.get("prevResult", {}), sys.stdout)
"#;

#[test]
fn bandwidth_limits_and_dns_settings_reach_the_plugins() {
    use std::os::unix::fs::PermissionsExt;
    let cni = ScratchDir::new("cni");
    let (net_d, bin) = (cni.join("net.d"), cni.join("bin"));
    std::fs::create_dir_all(&net_d).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let recorder = bin.join("hull-test-recorder");
    std::fs::write(&recorder, RECORDER).unwrap();
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shaped = serde_json::json!({
        "cniVersion": "1.0.0", "name": "shaped", "plugins": [
            {"type": "bridge", "bridge": "hull9", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": cni.join("ipam")}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}},
            {"type": "hull-test-recorder", "capabilities": {"dns": true}}
        ]
    });
    std::fs::write(net_d.join("20-shaped.conflist"), shaped.to_string()).unwrap();
    let config = format!(
        "[network]\nconfig_dir = \"{}\"\nplugin_dirs = [\"/usr/lib/cni\", \"{}\"]\n",
        net_d.display(),
        bin.display()
    );
    let Some((netns, d)) = setup_with(&config) else {
        return;
    };

    // The default network has no bandwidth plugin: said, not ignored.
    let err = d
        .ctl(&["run", "--rm", "--egress-bandwidth", "1M", IMAGE, "true"])
        .fails();
    assert!(
        err.stderr.contains("cannot limit bandwidth")
            && err.stderr.contains("\"bandwidth\" capability"),
        "{err:?}"
    );

    d.ctl(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--network",
        "shaped",
        "--ingress-bandwidth",
        "1M",
        "--egress-bandwidth",
        "2M",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "a.lan",
        "--dns-option",
        "ndots:2",
        IMAGE,
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    // The bandwidth plugin's token buckets: to the container on its host
    // veth, from it on an ifb device of its own.
    let qdiscs = netns.sh("tc qdisc show").ok().stdout;
    assert!(
        qdiscs.contains("rate 1Mbit") && qdiscs.contains("rate 2Mbit"),
        "{qdiscs}"
    );
    assert!(netns.links().iter().any(|l| l.starts_with("bwp")));
    let seen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bin.join("seen-add.json")).unwrap()).unwrap();
    assert_eq!(
        seen["runtimeConfig"],
        serde_json::json!({"dns": {"servers": ["192.0.2.53"], "searches": ["a.lan"],
                                    "options": ["ndots:2"]}}),
        "the recorder gets dns, and only what it declared"
    );
    let resolv = d
        .ctl(&["exec", "slow", "cat", "/etc/resolv.conf"])
        .ok()
        .stdout;
    assert!(
        resolv.contains("nameserver 192.0.2.53\n")
            && resolv.contains("search a.lan\n")
            && resolv.contains("options ndots:2\n"),
        "{resolv}"
    );

    d.ctl(&["rm", "-f", "slow"]).ok();
    assert!(!netns.links().iter().any(|l| l.starts_with("bwp")));
    let qdiscs = netns.sh("tc qdisc show").ok().stdout;
    assert!(!qdiscs.contains("rate 1Mbit"), "{qdiscs}");
}

#[test]
fn a_dual_stack_network_gives_an_ipv6_address_too() {
    let Some((netns, d)) = setup() else {
        return;
    };
    let create = |args: &[&str]| {
        let mut all = vec!["network", "create"];
        all.extend_from_slice(args);
        d.ctl(&all)
    };
    let err = create(&["v6", "--subnet", "10.6.0.0/24", "--subnet", "fd00:6::/64"]).fails();
    assert!(err.stderr.contains("needs --ipv6"), "{err:?}");
    let err = create(&["v6", "--subnet", "10.6.0.0/24", "--ipv6"]).fails();
    assert!(err.stderr.contains("IPv6 --subnet"), "{err:?}");
    let err = create(&[
        "v6",
        "--subnet",
        "10.6.0.0/24",
        "--subnet",
        "fd00:6::9/64",
        "--ipv6",
    ])
    .fails();
    assert!(err.stderr.contains("the network is fd00:6::/64"), "{err:?}");
    create(&[
        "dual",
        "--subnet",
        "10.6.0.0/24",
        "--subnet",
        "fd00:6::/64",
        "--ipv6",
    ])
    .ok();
    let err = create(&[
        "clash",
        "--subnet",
        "10.7.0.0/24",
        "--subnet",
        "fd00:6::/96",
        "--ipv6",
    ])
    .fails();
    assert!(
        err.stderr
            .contains("overlaps fd00:6::/64 of network \"dual\""),
        "{err:?}"
    );

    d.ctl(&[
        "run",
        "-d",
        "--name",
        "six",
        "--network",
        "dual",
        IMAGE,
        "sh",
        "-c",
        HTTPD,
    ])
    .ok();
    let ips = ip_of(&d, "six");
    let v6 = ips
        .split(',')
        .find(|a| a.starts_with("fd00:6::"))
        .unwrap_or_else(|| panic!("no IPv6 address among {ips}"))
        .to_string();
    let inside = d
        .ctl(&["exec", "six", "busybox", "ip", "-6", "addr", "show", "eth0"])
        .ok()
        .stdout;
    assert!(inside.contains(&format!("{v6}/64")), "{inside}");
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ctl(&["inspect", "six"]).ok().stdout).unwrap();
    assert_eq!(
        inspect[0]["NetworkSettings"]["GlobalIPv6Address"],
        v6.as_str()
    );
    assert!(inspect[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .starts_with("10.6.0."));
    // Its web server answers over IPv6 from the test's namespace, through
    // the bridge (once the addresses are past duplicate detection).
    let url = format!("http://[{v6}]:80/");
    let fetch = || netns.sh(&format!("curl -sS -g --max-time 2 {url}"));
    let answered = wait_until(Duration::from_secs(15), || {
        fetch().stdout.contains("hello-from-hull")
    });
    assert!(answered, "{url}: {:?}", fetch());
    d.ctl(&["rm", "-f", "six"]).ok();
    d.ctl(&["network", "rm", "dual"]).ok();
}

#[test]
fn bad_input_is_refused_with_what_to_fix() {
    let Some((_netns, d)) = setup() else {
        return;
    };
    let err = d
        .ctl(&["run", "--rm", "--network", "nosuch", IMAGE, "true"])
        .fails();
    assert!(
        err.stderr.contains("network \"nosuch\" not found"),
        "{err:?}"
    );

    d.ctl(&[
        "run", "-d", "--name", "first", "-p", "18081:80", IMAGE, "busybox", "sleep", "60",
    ])
    .ok();
    let err = d
        .ctl(&["run", "--rm", "-p", "18081:81", IMAGE, "true"])
        .fails();
    assert!(
        err.stderr.contains("already published by container first"),
        "{err:?}"
    );
    d.ctl(&["rm", "-f", "first"]).ok();

    d.ctl(&["network", "create", "web", "--subnet", "10.5.0.0/24"])
        .ok();
    let err = d
        .ctl(&["network", "create", "clash", "--subnet", "10.5.0.128/25"])
        .fails();
    assert!(
        err.stderr
            .contains("overlaps 10.5.0.0/24 of network \"web\""),
        "{err:?}"
    );
    let out = d
        .ctl(&[
            "run",
            "-d",
            "--name",
            "onweb",
            "--network",
            "web",
            "--ip",
            "10.5.0.77",
            IMAGE,
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
    assert!(out.code == 0);
    assert_eq!(ip_of(&d, "onweb"), "10.5.0.77");
    let mac = d
        .ctl(&[
            "run",
            "--rm",
            "--network",
            "web",
            "--mac-address",
            "02:42:ac:11:00:99",
            IMAGE,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(mac.stdout.trim(), "02:42:ac:11:00:99");
    let err = d.ctl(&["network", "rm", "web"]).fails();
    assert!(err.stderr.contains("in use"), "{err:?}");
    d.ctl(&["rm", "-f", "onweb"]).ok();
    d.ctl(&["network", "rm", "web"]).ok();
    let ls = d.ctl(&["network", "ls", "-q"]).ok().stdout;
    assert_eq!(ls.trim(), "bridge");

    let config_dir = d.dir.join("net.d");
    std::fs::write(
        config_dir.join("50-missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"nosuchplugin"}]}"#,
    )
    .unwrap();
    let err = d
        .ctl(&["run", "--rm", "--network", "missing", IMAGE, "true"])
        .fails();
    assert!(
        err.stderr.contains("\"nosuchplugin\"")
            && err.stderr.contains("containernetworking-plugins"),
        "{err:?}"
    );
    assert_eq!(netns_files(&d), 0, "no namespace left by the failed attach");
    std::fs::write(
        config_dir.join("60-bad.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bad"}"#,
    )
    .unwrap();
    let err = d.ctl(&["network", "ls"]).fails();
    assert!(
        err.stderr.contains("60-bad.conflist") && err.stderr.contains("\"plugins\""),
        "{err:?}"
    );
}
