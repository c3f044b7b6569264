//! OCI bundles: a per-process template (busybox rootfs + `RUNTIME spec` config)
//! and per-test copies whose config.json is edited as a `serde_json::Value`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::host::scratch_dir;
use crate::{runtime_bin, workspace_dir};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      user:x:1000:1000:user:/home/user:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:root\nuser:x:1000:\nnogroup:x:65534:\n";

/// The template bundle, built once per test process and removed at exit.
pub fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let scratch = scratch_dir("template");
        crate::host::remove_at_exit(&scratch);
        let dir = scratch.join("bundle");
        if !build_with_script(&dir) {
            build_in_rust(&dir);
        }
        dir
    })
}

/// Tries `hack/mkbundle.sh DIR RUNTIME`; any failure falls back to the Rust builder
/// so tests never depend on the script being there (or finished).
fn build_with_script(dir: &Path) -> bool {
    let script = workspace_dir().join("hack/mkbundle.sh");
    if !script.exists() {
        return false;
    }
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .arg(runtime_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let complete = dir.join("config.json").is_file() && dir.join("rootfs/bin/sh").exists();
    match status {
        Ok(s) if s.success() && complete => {
            // Whatever the script does, tests rely on a non-terminal process.
            let mut config = read_config(dir);
            config["process"]["terminal"] = json!(false);
            write_config(dir, &config);
            true
        }
        other => {
            eprintln!(
                "note: {} failed ({other:?}); building the bundle template in Rust",
                script.display()
            );
            let _ = fs::remove_dir_all(dir);
            false
        }
    }
}

/// Busybox rootfs with applet symlinks, /etc/passwd and /etc/group, and a
/// config.json produced by the runtime under test's own `spec` command.
fn build_in_rust(dir: &Path) {
    let rootfs = dir.join("rootfs");
    for sub in [
        "bin",
        "etc",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "home/user",
    ] {
        fs::create_dir_all(rootfs.join(sub)).expect("mkdir in template rootfs");
    }
    let busybox = find_busybox();
    fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).expect("applet symlink");
        }
    }
    fs::write(rootfs.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(rootfs.join("etc/group"), GROUP).expect("write group");
    fs::set_permissions(
        rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod tmp");

    let out = Command::new(runtime_bin())
        .arg("spec")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{} spec`: {e}", runtime_bin().display()));
    assert!(
        out.status.success(),
        "`{} spec` failed: {}",
        runtime_bin().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config = read_config(dir);
    config["process"]["terminal"] = json!(false);
    write_config(dir, &config);
}

fn find_busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox not found: install busybox-static")
}

fn read_config(dir: &Path) -> Value {
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn write_config(dir: &Path, config: &Value) {
    let text = serde_json::to_string_pretty(config).expect("serialize config");
    fs::write(dir.join("config.json"), text).expect("write config.json");
}

/// One test's bundle: a copy of the template rootfs plus an editable config.
/// The directory lives inside its [`crate::Runtime`]'s scratch dir and is removed with it.
pub struct Bundle {
    dir: PathBuf,
    /// The config that [`Bundle::save`] writes (the runtime helpers save before use).
    pub config: Value,
    /// Replaces `config` when saving: `Some(None)` removes config.json,
    /// `Some(Some(text))` writes `text` verbatim (for malformed configs).
    raw_config: Option<Option<String>>,
}

impl Bundle {
    pub(crate) fn copy_template(dir: PathBuf) -> Bundle {
        let template = template();
        fs::create_dir(&dir).expect("mkdir bundle");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template.join("rootfs"))
            .arg(dir.join("rootfs"))
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a of the template rootfs failed");
        Bundle {
            config: read_config(template),
            dir,
            raw_config: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes `config` to config.json (or applies [`Bundle::raw_config`]).
    pub fn save(&self) {
        let path = self.dir.join("config.json");
        match &self.raw_config {
            None => write_config(&self.dir, &self.config),
            Some(Some(text)) => fs::write(&path, text).expect("write config.json"),
            Some(None) => match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    panic!("remove config.json: {e}")
                }
                _ => {}
            },
        }
    }

    /// From now on save `text` verbatim as config.json, or no config.json at all for `None`.
    pub fn raw_config(&mut self, text: Option<&str>) -> &mut Self {
        self.raw_config = Some(text.map(str::to_owned));
        self
    }

    /// Sets the value at a JSON pointer (e.g. "/process/user/uid"), creating
    /// intermediate objects as needed.
    pub fn set(&mut self, pointer: &str, value: impl Into<Value>) -> &mut Self {
        *slot(&mut self.config, pointer) = value.into();
        self
    }

    /// Appends to the array at a JSON pointer, creating it if missing.
    pub fn push(&mut self, pointer: &str, value: impl Into<Value>) -> &mut Self {
        let target = slot(&mut self.config, pointer);
        if !target.is_array() {
            *target = json!([]);
        }
        target.as_array_mut().unwrap().push(value.into());
        self
    }

    /// Removes the value at a JSON pointer, if present.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer must start with /");
        if let Some(obj) = self
            .config
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
        {
            obj.remove(key);
        }
        self
    }

    /// process.args
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// process.args = ["sh", "-c", script]
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends "KEY=value" to process.env.
    pub fn env(&mut self, entry: &str) -> &mut Self {
        self.push("/process/env", entry)
    }

    pub fn hostname(&mut self, name: &str) -> &mut Self {
        self.set("/hostname", name)
    }

    /// root.readonly = false, so the process may write anywhere in its rootfs.
    pub fn writable_root(&mut self) -> &mut Self {
        self.set("/root/readonly", false)
    }

    /// Appends a mount entry.
    pub fn mount(
        &mut self,
        destination: &str,
        kind: &str,
        source: &str,
        options: &[&str],
    ) -> &mut Self {
        self.push(
            "/mounts",
            json!({ "destination": destination, "type": kind, "source": source, "options": options }),
        )
    }

    /// Bind-mounts a host path at `destination` (read-only if asked).
    pub fn bind(&mut self, source: &Path, destination: &str, readonly: bool) -> &mut Self {
        let options: &[&str] = if readonly {
            &["rbind", "ro"]
        } else {
            &["rbind", "rw"]
        };
        self.mount(destination, "bind", &source.to_string_lossy(), options)
    }

    /// Adds (or replaces) a namespace of `kind`, optionally joining the one at `path`.
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(kind);
        let entry = match path {
            Some(p) => json!({ "type": kind, "path": p }),
            None => json!({ "type": kind }),
        };
        self.push("/linux/namespaces", entry)
    }

    pub fn remove_namespace(&mut self, kind: &str) -> &mut Self {
        if let Some(list) = self
            .config
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
        {
            list.retain(|ns| ns["type"] != kind);
        }
        self
    }

    /// Writes a file inside the rootfs (path relative to the rootfs), creating parents.
    pub fn write_file(&self, path: &str, contents: &str) -> PathBuf {
        let full = self.rootfs().join(path.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).expect("mkdir in rootfs");
        fs::write(&full, contents).unwrap_or_else(|e| panic!("write {}: {e}", full.display()));
        full
    }

    /// Reads a file inside the rootfs (path relative to the rootfs).
    pub fn read_file(&self, path: &str) -> String {
        let full = self.rootfs().join(path.trim_start_matches('/'));
        fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
    }
}

/// Mutable slot at a JSON pointer, creating objects along the way.
fn slot<'a>(mut value: &'a mut Value, pointer: &str) -> &'a mut Value {
    assert!(
        pointer.starts_with('/'),
        "JSON pointer must start with '/': {pointer}"
    );
    for key in pointer[1..].split('/') {
        if !value.is_object() {
            *value = json!({});
        }
        value = value
            .as_object_mut()
            .unwrap()
            .entry(key)
            .or_insert(Value::Null);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_creates_intermediate_objects() {
        let mut v = json!({ "process": { "args": ["sh"] } });
        *slot(&mut v, "/process/user/uid") = json!(7);
        *slot(&mut v, "/linux/sysctl/net.ipv4.ip_forward") = json!("1");
        assert_eq!(v["process"]["user"]["uid"], 7);
        assert_eq!(v["process"]["args"][0], "sh");
        assert_eq!(v["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    }
}
