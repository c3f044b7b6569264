//! Driving CNI plugins as the CNI spec's runtime: each plugin of a network
//! runs as a process with the command in `CNI_COMMAND` and its config on
//! stdin; an ADD result is the next plugin's `prevResult`; DEL goes down
//! the chain in reverse with the ADD's result. Each attachment is cached
//! (`<cache_dir>/<id>.json`, written before the ADD and completed after)
//! so that a DEL — after a restart, a crash, or the network's file being
//! removed — runs with the config and result of its ADD, as containerd's
//! go-cni does.

use crate::capability::{Bandwidth, Dns};
use crate::config::NetworkList;
use crate::ports::PortMapping;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A plugin that has not answered in this long is killed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Plugin results are a few KiB.
const MAX_OUTPUT: u64 = 1 << 20;

/// A capability a container's runtime config needs a plugin for.
#[derive(Debug)]
pub struct Capability {
    /// Its name in `capabilities`.
    pub name: &'static str,
    /// What it does, for messages.
    pub what: &'static str,
    /// A plugin entry (or setting) of Debian's plugins that serves it.
    pub plugin: &'static str,
}

/// The runtime's side of the config: what `capabilities` ask for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

impl RuntimeConfig {
    /// The capabilities this config needs a plugin for, with what they do
    /// (for the error when none has it). `dns` is not among them: it only
    /// informs plugins that care, the client writes resolv.conf itself.
    fn needed(&self) -> Vec<Capability> {
        let mut out = Vec::new();
        if !self.port_mappings.is_empty() {
            out.push(Capability {
                name: "portMappings",
                what: "publish ports (-p)",
                plugin: r#"{"type": "portmap", "capabilities": {"portMappings": true}}"#,
            });
        }
        if !self.ips.is_empty() {
            out.push(Capability {
                name: "ips",
                what: "give a fixed address (--ip)",
                plugin: r#""capabilities": {"ips": true} on the plugin whose IPAM is host-local"#,
            });
        }
        if self.mac.is_some() {
            out.push(Capability {
                name: "mac",
                what: "set a MAC address (--mac-address)",
                plugin: r#"{"type": "tuning", "capabilities": {"mac": true}}"#,
            });
        }
        if self.bandwidth.is_some() {
            out.push(Capability {
                name: "bandwidth",
                what: "limit bandwidth",
                plugin: r#"{"type": "bandwidth", "capabilities": {"bandwidth": true}}"#,
            });
        }
        out
    }

    fn get(&self, capability: &str) -> Option<Value> {
        let v = serde_json::to_value(self).ok()?;
        v.get(capability).cloned()
    }
}

/// One container's interface on one network: what ADD was given and what
/// it returned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    /// Who it belongs to (hulld: `namespace/container`).
    pub owner: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    pub netns: PathBuf,
    /// The network list as it was at ADD.
    pub config: Value,
    pub runtime: RuntimeConfig,
    /// The ADD's result; null while (or if) the ADD did not finish.
    pub result: Value,
}

impl Attachment {
    /// The addresses the result gives the container (without prefix).
    pub fn ips(&self) -> Vec<String> {
        self.result["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str())
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .collect()
    }

    /// The gateway of the first address, if the result names one.
    pub fn gateway(&self) -> Option<String> {
        self.result["ips"][0]["gateway"]
            .as_str()
            .map(str::to_string)
    }

    fn cache_name(&self) -> String {
        format!(
            "{}-{}-{}.json",
            self.network, self.container_id, self.ifname
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("network {0:?} not found: see `hullctl network ls`")]
    UnknownNetwork(String),
    #[error("network {network:?} cannot {}: none of its plugins has the {:?} capability; add {} to {}", capability.what, capability.name, capability.plugin, file.display())]
    Unsupported {
        network: String,
        capability: Capability,
        file: PathBuf,
    },
    #[error("CNI plugin {name:?} not found in {dirs}: install Debian's containernetworking-plugins (apt-get install containernetworking-plugins) or set network.plugin_dirs in hulld's config")]
    MissingPlugin { name: String, dirs: String },
    #[error("network {network}: plugin {plugin} {command} failed: {detail}")]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("CNI result cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where networks, plugins and the attachment cache are.
#[derive(Clone, Debug)]
pub struct Cni {
    pub config_dir: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

impl Cni {
    pub fn networks(&self) -> Result<Vec<NetworkList>, CniError> {
        Ok(crate::config::load_dir(&self.config_dir)?)
    }

    pub fn network(&self, name: &str) -> Result<NetworkList, CniError> {
        self.networks()?
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| CniError::UnknownNetwork(name.to_string()))
    }

    /// Attach `netns` to `network` as `ifname`. On failure what the chain
    /// did is undone (DEL, best effort) and nothing stays cached.
    pub fn add(
        &self,
        network: &NetworkList,
        owner: &str,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        runtime: RuntimeConfig,
    ) -> Result<Attachment, CniError> {
        // Asked for and served by no plugin would be a silent no-op.
        if let Some(capability) = runtime
            .needed()
            .into_iter()
            .find(|c| !network.has_capability(c.name))
        {
            return Err(CniError::Unsupported {
                network: network.name.clone(),
                capability,
                file: network.file.clone(),
            });
        }
        let mut att = Attachment {
            owner: owner.to_string(),
            container_id: container_id.to_string(),
            network: network.name.clone(),
            ifname: ifname.to_string(),
            netns: netns.to_path_buf(),
            config: network.to_json(),
            runtime,
            result: Value::Null,
        };
        // Cached before the ADD: a crash in the middle still leaves what a
        // later DEL needs.
        self.save(&att)?;
        let mut prev = Value::Null;
        for (i, plugin) in network.plugins.iter().enumerate() {
            match self.run(&att, plugin, "ADD", &prev) {
                Ok(out) => prev = out,
                Err(e) => {
                    // Undo what ran (the failed plugin too: it may have
                    // done part of its work); a missing binary did nothing.
                    let ran = &network.plugins[..=i];
                    let ran = if matches!(e, CniError::MissingPlugin { .. }) {
                        &ran[..i]
                    } else {
                        ran
                    };
                    match self.del_plugins(&att, ran) {
                        Ok(()) => self.forget(&att)?,
                        Err(undo) => tracing::warn!(
                            "undoing the failed ADD of {owner} to {}: {undo}; kept for a later DEL",
                            att.network
                        ),
                    }
                    return Err(e);
                }
            }
        }
        att.result = prev;
        self.save(&att)?;
        Ok(att)
    }

    /// Detach: every plugin's DEL, last first, with the ADD's result; the
    /// cache entry goes once all succeeded.
    pub fn del(&self, att: &Attachment) -> Result<(), CniError> {
        let plugins = att.config["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.del_plugins(att, &plugins)?;
        self.forget(att)
    }

    /// DEL for `plugins`, last first; every one runs, the first error is
    /// returned.
    fn del_plugins(&self, att: &Attachment, plugins: &[Value]) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in plugins.iter().rev() {
            if let Err(e) = self.run(att, plugin, "DEL", &att.result) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Drop the cache entry of a detached attachment.
    fn forget(&self, att: &Attachment) -> Result<(), CniError> {
        let path = self.cache_dir.join(att.cache_name());
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CniError::Cache { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// CHECK the attachment (plugins of spec 0.4.0 and later).
    pub fn check(&self, att: &Attachment) -> Result<(), CniError> {
        let plugins = att.config["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for plugin in &plugins {
            self.run(att, plugin, "CHECK", &att.result)?;
        }
        Ok(())
    }

    /// Every cached attachment (unreadable entries are skipped, logged).
    pub fn cached(&self) -> Vec<Attachment> {
        self.cached_where(|_| true)
    }

    /// The cached attachments of one `CNI_CONTAINERID`, found by their file
    /// names (no other entry is read: a task delete asks this of every
    /// container, networked or not).
    pub fn cached_for(&self, container_id: &str) -> Vec<Attachment> {
        let infix = format!("-{container_id}-");
        self.cached_where(|name| name.contains(&infix))
    }

    fn cached_where(&self, wanted: impl Fn(&str) -> bool) -> Vec<Attachment> {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            if path.extension().is_none_or(|x| x != "json") || !wanted(&name.to_string_lossy()) {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Attachment>(&b)) {
                Ok(Ok(att)) => out.push(att),
                _ => tracing::warn!("skipping unreadable CNI cache entry {}", path.display()),
            }
        }
        out
    }

    fn save(&self, att: &Attachment) -> Result<(), CniError> {
        let path = self.cache_dir.join(att.cache_name());
        let err = |source| CniError::Cache {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.cache_dir).map_err(err)?;
        let tmp = path.with_extension("tmp");
        // Written and renamed, not fsynced (as libcni): what matters is a
        // killed hulld, whose writes the kernel keeps; after a power loss
        // the namespaces are gone too and host-local's store is checked by
        // the next DEL anyway.
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&serde_json::to_vec(att).expect("JSON values serialise"))
            .map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    fn find(&self, name: &str) -> Result<PathBuf, CniError> {
        self.plugin_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::MissingPlugin {
                name: name.to_string(),
                dirs: self.path_list(),
            })
    }

    fn path_list(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// One plugin's config for one command: its own object with the
    /// network's name and version, the previous result, and the runtime
    /// config it declares capabilities for.
    fn plugin_config(att: &Attachment, plugin: &Value, prev: &Value) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = att.config["name"].clone();
        conf["cniVersion"] = att.config["cniVersion"].clone();
        if !prev.is_null() {
            conf["prevResult"] = prev.clone();
        }
        let mut runtime = serde_json::Map::new();
        for (cap, on) in plugin["capabilities"].as_object().into_iter().flatten() {
            if on.as_bool() == Some(true) {
                if let Some(v) = att.runtime.get(cap) {
                    runtime.insert(cap.clone(), v);
                }
            }
        }
        if !runtime.is_empty() {
            conf["runtimeConfig"] = Value::Object(runtime);
        }
        conf
    }

    fn run(
        &self,
        att: &Attachment,
        plugin: &Value,
        command: &'static str,
        prev: &Value,
    ) -> Result<Value, CniError> {
        let ty = plugin["type"].as_str().unwrap_or_default();
        let binary = self.find(ty)?;
        let fail = |detail: String| CniError::Plugin {
            network: att.network.clone(),
            plugin: ty.to_string(),
            command,
            detail,
        };
        let started = std::time::Instant::now();
        let conf = serde_json::to_vec(&Self::plugin_config(att, plugin, prev))
            .expect("JSON values serialise");
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &att.container_id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", &att.ifname)
            .env("CNI_PATH", self.path_list())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("starting {}: {e}", binary.display())))?;
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || stdin.write_all(&conf));
        let (stdout, stderr) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let out = std::thread::spawn(move || read_bounded(stdout));
        let err = std::thread::spawn(move || read_bounded(stderr));
        let status = wait_bounded(&mut child).map_err(|e| fail(e.to_string()))?;
        let _ = writer.join();
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        tracing::debug!("{} {ty} {command}: {:?}", att.owner, started.elapsed());
        let Some(status) = status else {
            return Err(fail(format!(
                "no answer within {}s; killed",
                PLUGIN_TIMEOUT.as_secs()
            )));
        };
        if !status.success() {
            return Err(fail(plugin_error(&stdout, &stderr)));
        }
        if command != "ADD" {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&stdout).map_err(|e| fail(format!("its result is not JSON ({e})")))
    }
}

fn read_bounded(r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = r.take(MAX_OUTPUT).read_to_end(&mut out);
    out
}

/// Wait for the plugin; a watchdog kills it (by PID, our child, before it
/// is reaped) if it has not ended within the timeout. Blocking waits, no
/// polling: a plugin chain runs ten of them per container.
fn wait_bounded(
    child: &mut std::process::Child,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let pid = child.id() as libc::pid_t;
    let killed = std::sync::Arc::new(AtomicBool::new(false));
    let (done, ended) = channel::<()>();
    let flag = killed.clone();
    let watchdog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = ended.recv_timeout(PLUGIN_TIMEOUT) {
            flag.store(true, Ordering::SeqCst);
            // SAFETY: our unreaped child: its PID cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let status = child.wait();
    drop(done);
    let _ = watchdog.join();
    let status = status?;
    Ok((!killed.load(Ordering::SeqCst)).then_some(status))
}

/// The CNI error object a plugin prints (`{"code", "msg", "details"}`),
/// else what it wrote.
fn plugin_error(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = v["msg"].as_str() {
            let details = v["details"].as_str().filter(|d| !d.is_empty());
            let code = v["code"].as_u64().unwrap_or(0);
            return match details {
                Some(d) => format!("{msg}: {d} (CNI error {code})"),
                None => format!("{msg} (CNI error {code})"),
            };
        }
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    text.trim().chars().take(500).collect()
}

/// The JSON of a network for `inspect`: the list and where it is.
pub fn describe(list: &NetworkList) -> Value {
    json!({"name": list.name, "cniVersion": list.cni_version, "file": list.file, "plugins": list.plugins, "subnets": list.subnets()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_get_their_capabilities_only_and_the_previous_result() {
        let att = Attachment {
            owner: "default/c".into(),
            container_id: "default-c".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            netns: "/run/x".into(),
            config: json!({"name": "n", "cniVersion": "1.0.0", "plugins": []}),
            runtime: RuntimeConfig {
                port_mappings: vec![PortMapping::parse("8080:80").unwrap()],
                mac: Some("02:00:00:00:00:01".into()),
                ..Default::default()
            },
            result: Value::Null,
        };
        let portmap =
            json!({"type": "portmap", "capabilities": {"portMappings": true, "mac": false}});
        let conf = Cni::plugin_config(&att, &portmap, &json!({"ips": []}));
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["prevResult"], json!({"ips": []}));
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert!(conf["runtimeConfig"].get("mac").is_none());
        let plain = Cni::plugin_config(&att, &json!({"type": "firewall"}), &Value::Null);
        assert!(plain.get("runtimeConfig").is_none() && plain.get("prevResult").is_none());
        assert_eq!(
            plugin_error(br#"{"code":7,"msg":"bad","details":"why"}"#, b""),
            "bad: why (CNI error 7)"
        );
    }

    #[test]
    fn a_missing_plugin_names_itself_and_the_package() {
        let cache = tempfile::Builder::new()
            .prefix("hull-cni-cache-")
            .tempdir()
            .unwrap();
        let cni = Cni {
            config_dir: "/nonexistent".into(),
            plugin_dirs: vec!["/nonexistent/cni".into()],
            cache_dir: cache.path().to_path_buf(),
        };
        let list = NetworkList::parse(
            Path::new("x.conflist"),
            br#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"nosuchplugin"}]}"#,
        )
        .unwrap();
        let err = cni
            .add(
                &list,
                "default/c",
                "default-c",
                Path::new("/nonexistent/ns"),
                "eth0",
                RuntimeConfig::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"nosuchplugin\"") && err.contains("containernetworking-plugins"),
            "{err}"
        );
        assert!(cni.cached().is_empty(), "nothing ran, nothing stays cached");
    }
}
