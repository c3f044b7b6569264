//! Harness for the manager's end-to-end tests: real processes only. Test
//! images built from busybox-static (hack/registry/mkimages.sh), Debian's
//! docker-registry on 127.0.0.1 (hack/registry/serve.sh), hulld on a
//! scratch root and socket, and hullctl as a user would run it. The
//! registry that misbehaves on purpose is in [`crate::hostile`].
//!
//! Every handle cleans up on drop (daemons stopped by PID, scratch removed),
//! also when the test panics.

use crate::host::{remove_scratch_dir, scratch_dir, wait_until};
use crate::workspace_dir;
use sha2::Digest as _;
use std::ffi::OsStr;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// `<target>/debug/<name>` of this workspace (hulld, hullctl).
pub fn manager_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace_dir().join(t))
        .unwrap_or_else(|| workspace_dir().join("target"));
    target.join("debug").join(name)
}

/// The test images (OCI layouts), built once per machine and cached in the
/// target dir: small, multiarch, big, zstd, plain, docker.
pub fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|t| workspace_dir().join(t))
            .unwrap_or_else(|| workspace_dir().join("target"));
        let dir = target.join("hull-test-images");
        let out = Command::new(workspace_dir().join("hack/registry/mkimages.sh"))
            .arg(&dir)
            .output()
            .expect("running hack/registry/mkimages.sh");
        assert!(
            out.status.success(),
            "mkimages.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Where hostile layers aim (hack/registry/layers.py, $HULL_CANARY): a
/// directory of this test process's that nothing may write into, removed
/// when the process exits.
pub fn canary_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hull-canary-{}", std::process::id()));
        crate::host::remove_at_exit(&dir);
        dir
    })
    .clone()
}

/// The layer fixtures of hack/registry/layers.py (features, features-child,
/// hostile-*), built once per test process (fast: a few small layers).
pub fn layer_images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir("layer-images");
        crate::host::remove_at_exit(&dir);
        let out = Command::new("python3")
            .arg(workspace_dir().join("hack/registry/layers.py"))
            .arg("build")
            .arg(&dir)
            .env("HULL_CANARY", canary_dir())
            .output()
            .expect("running hack/registry/layers.py");
        assert!(
            out.status.success(),
            "layers.py build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// What a tree holds, one line per entry (layers.py list): the form the
/// unpack tests compare.
pub fn tree_listing(dir: &Path) -> String {
    let out = Command::new("python3")
        .arg(workspace_dir().join("hack/registry/layers.py"))
        .arg("list")
        .arg(dir)
        .output()
        .expect("running layers.py list");
    assert!(
        out.status.success(),
        "layers.py list {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tree an image's layers make, by the reference unpacker (Python's
/// tarfile and the image spec's whiteout rules), listed.
pub fn reference_listing(layout: &Path) -> String {
    let dest = scratch_dir("reference");
    let out = Command::new("python3")
        .arg(workspace_dir().join("hack/registry/layers.py"))
        .arg("unpack")
        .arg(layout)
        .arg(dest.join("rootfs"))
        .output()
        .expect("running layers.py unpack");
    assert!(
        out.status.success(),
        "layers.py unpack {}: {}",
        layout.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = tree_listing(&dest.join("rootfs"));
    if let Err(e) = remove_scratch_dir(&dest) {
        eprintln!("{e}");
    }
    listing
}

/// The manifest (or index) digest of a test image's `latest`.
pub fn image_digest(image: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(images_dir().join(image).join("index.json")).expect("index.json"),
    )
    .expect("index.json parses");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

/// Digests and sizes of the blobs a pull of a test image stores (for the
/// host platform): its index if any, the manifest, config and layers.
pub fn image_blobs(image: &str) -> Vec<(String, u64)> {
    let (mut out, m) = host_manifest(image);
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let digest = d["digest"].as_str().unwrap().to_string();
        out.push((digest.clone(), d["size"].as_u64().unwrap()));
    }
    out
}

/// The digest of a test image's config (host platform): the image ID of
/// docker and podman.
pub fn image_config_digest(image: &str) -> String {
    let (_, m) = host_manifest(image);
    m["config"]["digest"].as_str().unwrap().to_string()
}

/// A test image's manifest for the host platform, and the blobs that lead
/// to it (its index if any, and itself) with their sizes.
fn host_manifest(image: &str) -> (Vec<(String, u64)>, serde_json::Value) {
    let layout = images_dir().join(image);
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let size = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::metadata(layout.join("blobs/sha256").join(hex))
            .unwrap()
            .len()
    };
    let mut out = Vec::new();
    let mut manifest = image_digest(image);
    let root = read(&manifest);
    if let Some(entries) = root["manifests"].as_array() {
        out.push((manifest.clone(), size(&manifest)));
        manifest = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == "amd64")
            .expect("amd64 entry")["digest"]
            .as_str()
            .unwrap()
            .to_string();
    }
    out.push((manifest.clone(), size(&manifest)));
    let m = read(&manifest);
    (out, m)
}

pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(data))
}

/// Whether Debian's docker-registry is installed. CI installs it, so there a
/// missing one is a failure; elsewhere the test prints a skip line.
pub fn have_registry() -> bool {
    let ok = Command::new("sh")
        .args(["-c", "command -v docker-registry"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "docker-registry is not installed in CI: add it to hack/deps.sh"
        );
        eprintln!("SKIP: docker-registry not installed (apt-get install docker-registry)");
    }
    ok
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic,
    Token,
}

pub const USER: &str = "hull";
pub const PASSWORD: &str = "hullpass";
/// The identity token (OAuth2 refresh token) of [`USER`] at a token-auth
/// registry's token server (hack/registry/serve.sh).
pub const IDENTITY_TOKEN: &str = "hull-test-identity-token";

/// A docker-registry on 127.0.0.1 with its own storage.
pub struct Registry {
    pub dir: PathBuf,
    pub address: String,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        let dir = scratch_dir("registry");
        let kind = match auth {
            Auth::None => "none",
            Auth::Basic => "basic",
            Auth::Token => "token",
        };
        let out = Command::new(workspace_dir().join("hack/registry/serve.sh"))
            .arg(dir.join("reg"))
            .args(["--auth", kind])
            .stdin(Stdio::null())
            .output()
            .expect("running hack/registry/serve.sh");
        let registry = Registry {
            address: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            dir,
        };
        assert!(
            out.status.success(),
            "starting the registry failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        registry
    }

    /// Push a test image as `repo:tag`.
    pub fn push(&self, image: &str, repo: &str) -> String {
        self.push_layout(&images_dir().join(image), repo)
    }

    /// Push an OCI layout as `repo:tag`.
    pub fn push_layout(&self, layout: &Path, repo: &str) -> String {
        let image = layout.display();
        let out = Command::new(workspace_dir().join("hack/registry/push.sh"))
            .arg(layout)
            .arg(format!("{}/{repo}", self.address))
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .stdin(Stdio::null())
            .output()
            .expect("running hack/registry/push.sh");
        assert!(
            out.status.success(),
            "pushing {image} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{}/{repo}", self.address)
    }

    /// The registry's data file of a blob (to tamper with).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("reg/storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// A second registry over the same storage, speaking HTTPS with a
/// certificate from a private CA, on 127.0.0.2: a loopback address that is
/// not "localhost" to the puller, so it must use TLS.
pub struct TlsRegistry {
    pub address: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca: PathBuf,
    /// From [`Registry::mtls_twin`]: a client certificate and its key
    /// (PEM files), signed by the same CA.
    pub client: Option<(PathBuf, PathBuf)>,
    child: Child,
}

impl Registry {
    pub fn tls_twin(&self) -> TlsRegistry {
        self.start_tls_twin(false)
    }

    /// As [`Registry::tls_twin`], but the registry requires a client
    /// certificate signed by its CA (mutual TLS); one is in `client`.
    pub fn mtls_twin(&self) -> TlsRegistry {
        self.start_tls_twin(true)
    }

    fn start_tls_twin(&self, client_auth: bool) -> TlsRegistry {
        let dir = self.dir.join(if client_auth { "mtls" } else { "tls" });
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("running openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=hull test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        // A key and a certificate signed by the CA: NAME.key, NAME.pem,
        // with the extensions in NAME.ext.
        let issue = |name: &str, subject: &str, extensions: &str| {
            let (key, csr, ext, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.ext"),
                format!("{name}.pem"),
            );
            let subj = format!("/CN={subject}");
            openssl(&[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out",
                &csr,
            ]);
            std::fs::write(dir.join(&ext), extensions).unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ]);
        };
        issue("server", "127.0.0.2", "subjectAltName=IP:127.0.0.2\n");
        let client = client_auth.then(|| {
            issue(
                "client",
                "hull test client",
                "extendedKeyUsage=clientAuth\n",
            );
            (dir.join("client.pem"), dir.join("client.key"))
        });
        let client_cas = match client_auth {
            true => format!("    clientcas:\n      - {}\n", dir.join("ca.pem").display()),
            false => String::new(),
        };
        let port = TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.2:{port}\n  secret: hull-test-secret\n  tls:\n    certificate: {}\n    key: {}\n{client_cas}\
                 health:\n  storagedriver:\n    enabled: false\n",
                self.dir.join("reg/storage").display(),
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let address = format!("127.0.0.2:{port}");
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(&address).is_ok()
        });
        assert!(up, "TLS registry not listening on {address}");
        TlsRegistry {
            address,
            ca: dir.join("ca.pem"),
            client,
            child,
        }
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(workspace_dir().join("hack/registry/serve.sh"))
            .arg(self.dir.join("reg"))
            .arg("--stop")
            .stdin(Stdio::null())
            .output();
        if let Err(e) = remove_scratch_dir(&self.dir) {
            eprintln!("{e}");
        }
    }
}

/// What a command printed, and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw: Vec<u8>,
}

impl Out {
    fn from(out: std::process::Output) -> Out {
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            raw: out.stdout,
        }
    }

    /// Wait for a command started in the background.
    pub fn wait(child: Child) -> Out {
        Out::from(child.wait_with_output().expect("waiting for a command"))
    }

    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn fails(self) -> Out {
        assert_ne!(self.code, 0, "command should have failed: {self:#?}");
        self
    }
}

/// hulld on a scratch root, state dir and socket.
pub struct Hulld {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// The cgroup this daemon's containers go below (hullctl's
    /// --cgroup-parent; for ctr, the namespace to use): one per daemon, so
    /// a test removes exactly what its containers made.
    pub cgroup_parent: String,
    /// The network namespace (a /run/netns name) hulld runs in, for the
    /// network tests; None: the test process's own, and hullctl runs
    /// containers with `--network none` unless told otherwise, so that no
    /// test but the network ones makes bridges or firewall rules.
    netns: Option<String>,
    child: Option<Child>,
}

impl Hulld {
    /// Start with extra TOML appended to the config (root/state/address are
    /// set already; the network config dir is the scratch dir's unless
    /// `extra_config` has a `[network]` table).
    pub fn start(extra_config: &str) -> Hulld {
        Hulld::start_in(None, extra_config)
    }

    /// Start in the network namespace `/run/netns/<netns>` (made by the
    /// test), with containers on hulld's default network unless told.
    pub fn start_in_netns(netns: &str, extra_config: &str) -> Hulld {
        Hulld::start_in(Some(netns.to_string()), extra_config)
    }

    fn start_in(netns: Option<String>, extra_config: &str) -> Hulld {
        let dir = scratch_dir("hulld");
        let socket = dir.join("hulld.sock");
        let config = dir.join("hulld.toml");
        let network = if extra_config.contains("[network]") {
            String::new()
        } else {
            format!(
                "[network]\nconfig_dir = \"{}\"\n",
                dir.join("net.d").display()
            )
        };
        std::fs::write(
            &config,
            format!(
                "root = \"{}\"\nstate = \"{}\"\n{extra_config}\n{network}[grpc]\naddress = \"{}\"\n",
                dir.join("root").display(),
                dir.join("state").display(),
                socket.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("home/.docker")).unwrap();
        let cgroup_parent = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut d = Hulld {
            dir,
            socket,
            config,
            cgroup_parent,
            netns,
            child: None,
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Start the daemon (again) on the same root.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "hulld already running");
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("hulld.log"))
            .unwrap();
        let mut command = match &self.netns {
            Some(name) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{name}"))
                    .arg("--")
                    .arg(manager_bin("hulld"));
                c
            }
            None => Command::new(manager_bin("hulld")),
        };
        let child = command
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting hulld (build it first: cargo build -p hull-daemon)");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(20), || self.socket.exists());
        assert!(up, "hulld did not come up:\n{}", self.log());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("hulld running").id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hulld.log")).unwrap_or_default()
    }

    /// Send `signal` and reap; returns the exit status.
    pub fn stop_with(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("hulld running");
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().expect("reaping hulld")
    }

    /// hullctl against this daemon, with HOME/DOCKER_CONFIG in the scratch
    /// dir so the user's own credentials are never used or changed.
    pub fn ctl(&self, args: &[&str]) -> Out {
        self.ctl_stdin(args, "")
    }

    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self.spawn_ctl(args);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Out::from(child.wait_with_output().unwrap())
    }

    /// hullctl with `stdin` and extra environment variables (e.g. a PATH
    /// with a test's credential helper), otherwise as [`Hulld::ctl`].
    pub fn ctl_env(&self, args: &[&str], envs: &[(&str, &OsStr)], stdin: &str) -> Out {
        let mut child = self
            .ctl_command(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running hullctl (build it first: cargo build -p hullctl)");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        Out::from(child.wait_with_output().unwrap())
    }

    /// hullctl for this daemon, with HOME and its data in the scratch dir.
    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(manager_bin("hullctl"));
        c.arg("--address")
            .arg(&self.socket)
            .args(args)
            .env("HOME", self.dir.join("home"))
            .env("DOCKER_CONFIG", self.dir.join("home/.docker"))
            .env("HULLCTL_DATA_ROOT", self.dir.join("hullctl"))
            .env("HULLCTL_CGROUP_PARENT", &self.cgroup_parent)
            .env_remove("HULL_NAMESPACE");
        match &self.netns {
            None => c.env("HULLCTL_NETWORK", "none"),
            Some(_) => c.env_remove("HULLCTL_NETWORK"),
        };
        c
    }

    /// hullctl in the background (stdin, stdout and stderr piped).
    pub fn spawn_ctl(&self, args: &[&str]) -> Child {
        self.ctl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running hullctl (build it first: cargo build -p hullctl)")
    }

    /// hullctl that must finish within `limit`: a hang fails the test (the
    /// command is killed) instead of hanging it.
    #[track_caller]
    pub fn ctl_within(&self, limit: Duration, args: &[&str]) -> Out {
        let mut child = self.spawn_ctl(args);
        drop(child.stdin.take());
        let done = wait_until(limit, || child.try_wait().ok().flatten().is_some());
        if !done {
            let _ = child.kill();
            let out = Out::from(child.wait_with_output().unwrap());
            panic!("hullctl {args:?} did not finish within {limit:?}: {out:#?}");
        }
        Out::from(child.wait_with_output().unwrap())
    }

    /// The daemon's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib / 1024
    }

    /// ctr against this daemon (containerd 1.6's client).
    pub fn ctr(&self, args: &[&str]) -> Out {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr (apt-get install containerd)");
        Out::from(out)
    }

    /// What snapshot `key` of `snapshotter` holds, seen through a
    /// read-only view mounted (as its Mounts say) in a private mount
    /// namespace: one line per entry (layers.py list).
    pub fn snapshot_listing(&self, snapshotter: &str, key: &str) -> String {
        let view = format!("test-view-{}", std::process::id());
        self.ctr(&[
            "snapshots",
            "--snapshotter",
            snapshotter,
            "view",
            &view,
            key,
        ])
        .ok();
        let mounts = self
            .ctl(&["snapshots", "--snapshotter", snapshotter, "mounts", &view])
            .ok();
        let mounts: serde_json::Value = serde_json::from_str(&mounts.stdout).unwrap();
        let [m] = mounts.as_array().unwrap().as_slice() else {
            panic!("one mount expected: {mounts}");
        };
        let target = self.dir.join("view-mount");
        std::fs::create_dir_all(&target).unwrap();
        let options: Vec<&str> = m["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let mount = match m["type"].as_str().unwrap() {
            "bind" => format!(
                "mount --bind {} {t} && mount -o remount,bind,ro {t}",
                m["source"].as_str().unwrap(),
                t = target.display()
            ),
            kind => format!(
                "mount -t {kind} -o {} {} {}",
                options.join(","),
                m["source"].as_str().unwrap(),
                target.display()
            ),
        };
        let script = format!(
            "{mount} && python3 {} list {}",
            workspace_dir().join("hack/registry/layers.py").display(),
            target.display()
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .expect("running unshare");
        assert!(
            out.status.success(),
            "mounting view of {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.ctl(&["snapshots", "--snapshotter", snapshotter, "rm", &view])
            .ok();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Digests `hullctl content ls` shows in `ns`.
    pub fn content(&self, ns: &str) -> Vec<String> {
        let out = self.ctl(&["-n", ns, "content", "ls", "-q"]).ok();
        out.stdout.lines().map(str::to_string).collect()
    }

    /// Read every visible blob back through the API and check it hashes to
    /// its name: no corrupt or partial blob is visible.
    #[track_caller]
    pub fn assert_content_intact(&self, ns: &str) {
        for digest in self.content(ns) {
            let out = self.ctl(&["-n", ns, "content", "get", &digest]).ok();
            assert_eq!(
                format!("sha256:{}", sha256_hex(&out.raw)),
                digest,
                "blob {digest} does not match its digest"
            );
        }
    }

    /// Blob files in the store on disk.
    pub fn blob_files(&self) -> Vec<String> {
        let dir = self.root().join("content/blobs/sha256");
        let mut out: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The refs of partial downloads on disk (`pull-<digest>`).
    pub fn ingests(&self) -> Vec<String> {
        let dir = self.root().join("content/ingest");
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path().join("ref")).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes of partial downloads (ingest data files) on disk.
    pub fn ingest_bytes(&self) -> u64 {
        let dir = self.root().join("content/ingest");
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// hulld running its tasks through containerd 1.6's runc shim (told by
/// hulld to run the `hull` built beside it) instead of hull-shim.
pub const RUNC_SHIM_CONFIG: &str = "[runtime]\nshim = \"/usr/bin/containerd-shim-runc-v2\"\n";

impl Hulld {
    /// Processes that belong to this daemon's tasks: shims (their command
    /// line names the socket) and whatever runs below its cgroup parent.
    pub fn task_processes(&self) -> Vec<i32> {
        let needle = self.socket.to_string_lossy().into_owned();
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                    .unwrap_or(false)
            })
            .collect();
        for dir in self.cgroup_tree() {
            pids.extend(crate::host::cgroup_procs(&dir));
        }
        pids.sort();
        pids.dedup();
        pids
    }

    /// The PID of the shim that runs container `id` of this daemon.
    pub fn shim_pid(&self, id: &str) -> Option<i32> {
        let needle = self.socket.to_string_lossy().into_owned();
        self.task_processes().into_iter().find(|pid| {
            let args: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.contains(&needle) && args.windows(2).any(|w| w[0] == "-id" && w[1] == id)
        })
    }

    /// Every cgroup directory at or below this daemon's cgroup parent, in
    /// every hierarchy.
    fn cgroup_tree(&self) -> Vec<PathBuf> {
        let mut dirs = crate::host::cgroup_dirs_named(&self.cgroup_parent);
        let mut i = 0;
        while i < dirs.len() {
            for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
            i += 1;
        }
        dirs
    }

    /// What the daemon's containers could leave behind: processes, mounts
    /// below its directory, cgroups named after the containers `ids`.
    pub fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self
            .task_processes()
            .into_iter()
            .map(|p| format!("process {p}"))
            .collect();
        out.extend(
            crate::host::mounts_mentioning(&self.dir)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        out.extend(
            fifos_under(&self.dir)
                .into_iter()
                .map(|f| format!("fifo {}", f.display())),
        );
        for id in ids {
            out.extend(
                crate::host::cgroup_dirs_named(id)
                    .into_iter()
                    .map(|d| format!("cgroup {}", d.display())),
            );
        }
        out
    }

    /// Remove what the test's containers made (best effort), also when the
    /// test failed half-way: containers through hulld while it runs, then
    /// by PID whatever survived, mounts below the scratch dir, the cgroup
    /// parent and the runc shim's per-namespace state of the namespace
    /// named like it.
    fn remove_containers(&self) {
        if self.child.is_some() {
            let ids = self.ctl(&["ps", "-a", "-q"]).stdout;
            for id in ids.lines() {
                let _ = self.ctl(&["rm", "-f", id]);
            }
            // What ctr made in the namespace named like the cgroup parent.
            let ns = self.cgroup_parent.as_str();
            for id in self
                .ctr(&["-n", ns, "containers", "ls", "-q"])
                .stdout
                .lines()
            {
                let _ = self.ctr(&["-n", ns, "tasks", "rm", "-f", id]);
                let _ = self.ctr(&["-n", ns, "containers", "rm", id]);
            }
        }
        for pid in self.task_processes() {
            let socket = shim_socket_of(pid);
            // SAFETY: signalling processes of this test's daemon, by PID.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if let Some(socket) = socket {
                let _ = std::fs::remove_file(socket);
            }
        }
        for line in crate::host::mounts_mentioning(&self.dir).into_iter().rev() {
            if let Some(point) = line.split_whitespace().nth(4) {
                let _ = Command::new("umount").arg("-l").arg(point).status();
            }
        }
        for dir in crate::host::cgroup_dirs_named(&self.cgroup_parent) {
            if let Err(e) = crate::host::remove_cgroup_dir(&dir) {
                eprintln!("{e}");
            }
        }
        let runc_state = Path::new("/run/containerd/runc").join(&self.cgroup_parent);
        let _ = std::fs::remove_dir(runc_state);
    }
}

/// The socket a shim v2 process (hull's or containerd's runc shim) listens
/// on, from its command line: `/run/containerd/s/` + sha256 of
/// "ADDRESS/NAMESPACE/ID", as both derive it. A SIGKILLed shim leaves it.
/// Named pipes below `dir` (containers' stdio FIFOs left behind).
fn fifos_under(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_fifo() => found.push(e.path()),
                // Not into mounted root filesystems' own files.
                Ok(t) if t.is_dir() && e.file_name() != "rootfs" => dirs.push(e.path()),
                _ => {}
            }
        }
    }
    found
}

fn shim_socket_of(pid: i32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let flag = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1).cloned()
    };
    let (ns, id, address) = (flag("-namespace")?, flag("-id")?, flag("-address")?);
    let digest = sha2::Sha256::digest(format!("{address}/{ns}/{id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(Path::new("/run/containerd/s").join(hex))
}

impl Drop for Hulld {
    fn drop(&mut self) {
        self.remove_containers();
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
        if let Err(e) = remove_scratch_dir(&self.dir) {
            eprintln!("{e}");
        }
    }
}
