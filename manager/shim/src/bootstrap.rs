//! The short-lived actions containerd runs the binary for:
//!
//! - `start` (cwd = bundle): bind the shim's socket, re-execute this binary
//!   detached (new session, the socket as fd 3, stdio on /dev/null so
//!   containerd's read of our output ends when we exit), write the bundle's
//!   `address` file and print `unix://SOCKET`. A live shim already serving
//!   the id is reused.
//! - `delete` (after a shim died): force-delete the container with the
//!   runtime, unmount its rootfs, remove the shim's files and print a
//!   protobuf DeleteResponse.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message, MessageField};
use sha2::{Digest, Sha256};

use crate::args::Flags;
use crate::events::timestamp;
use crate::mounts;
use crate::options;
use crate::runtime::{Runtime, DEFAULT_BINARY, DEFAULT_ROOT};

/// Where shim sockets live: `HULL_SHIM_SOCKET_DIR`, else containerd's
/// `/run/containerd/s`.
pub fn socket_dir() -> PathBuf {
    std::env::var_os("HULL_SHIM_SOCKET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/containerd/s"))
}

/// The socket of the shim for (namespace, id) under containerd `address`:
/// a hash, so any id fits in a unix socket path.
pub fn socket_path(namespace: &str, id: &str, address: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{address}/{namespace}/{id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    socket_dir().join(hex)
}

pub fn start(flags: &Flags) -> Result<String, String> {
    // containerd writes the runtime options on stdin; containers read
    // theirs from Create, so they are only drained here.
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut Vec::new());
    let path = socket_path(&flags.namespace, &flags.id, &flags.address);
    let address = format!("unix://{}", path.display());
    let dir = socket_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                write_address(&address)?;
                return Ok(address);
            }
            // A dead shim's socket.
            std::fs::remove_file(&path)
                .map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
            UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?
        }
        Err(e) => return Err(format!("binding the shim socket {}: {e}", path.display())),
    };
    if let Err(e) = spawn_server(flags, &listener) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    write_address(&address)?;
    Ok(address)
}

fn spawn_server(flags: &Flags, listener: &UnixListener) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
    ]);
    if !flags.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl, setsid) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: it outlives this process (containerd reaps nothing
    // of it; it is reparented).
    cmd.spawn()
        .map(drop)
        .map_err(|e| format!("starting the shim server: {e}"))
}

fn write_address(address: &str) -> Result<(), String> {
    std::fs::write("address", address)
        .map_err(|e| format!("writing the bundle's address file: {e}"))
}

pub fn delete(flags: &Flags) -> Result<Vec<u8>, String> {
    let bundle = match &flags.bundle {
        Some(b) => b.clone(),
        None => std::env::current_dir()
            .map_err(|e| format!("no -bundle and no working directory: {e}"))?,
    };
    let runtime = match options::load(&bundle) {
        Some((binary, root, systemd)) => Runtime {
            binary: PathBuf::from(binary),
            root: PathBuf::from(root),
            log: bundle.join("log.json"),
            systemd_cgroup: systemd,
        },
        None => Runtime::new(
            DEFAULT_BINARY,
            DEFAULT_ROOT,
            &flags.namespace,
            &bundle,
            false,
        ),
    };
    let status = runtime
        .command(["delete", "--force", &flags.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(&status, Ok(s) if s.success()) {
        // Usually: the container is already gone. Nothing more to do.
        let _ = writeln!(
            std::io::stderr(),
            "{} delete --force {}: {status:?}",
            runtime.binary.display(),
            flags.id
        );
    }
    mounts::unmount_all(&bundle.join("rootfs"));
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    remove_shim_files(&bundle);
    let socket = socket_path(&flags.namespace, &flags.id, &flags.address);
    if UnixStream::connect(&socket).is_err() {
        let _ = std::fs::remove_file(&socket);
    }
    let mut r = DeleteResponse::new();
    r.pid = pid;
    r.exit_status = 128 + libc::SIGKILL as u32;
    r.exited_at = MessageField::some(timestamp(SystemTime::now()));
    r.write_to_bytes()
        .map_err(|e| format!("encoding the DeleteResponse: {e}"))
}

/// Files the shim makes in a bundle (containerd's own are left to it).
fn remove_shim_files(bundle: &Path) {
    for name in [options::BUNDLE_FILE, "init.pid", "log.json", "shim.pid"] {
        let _ = std::fs::remove_file(bundle.join(name));
    }
    if let Ok(entries) = std::fs::read_dir(bundle) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".exec-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
