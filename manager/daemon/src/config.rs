//! hulld's configuration file (TOML). Every key has a default, so an empty
//! file (or none) is a working configuration; `hulld config default` prints
//! the defaults as a starting point.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent state: content store and metadata DB (mode 0700).
    pub root: PathBuf,
    /// A group that may read the root directly (mode 0750 then), as its
    /// members may through the socket; 0: root only.
    pub root_gid: u32,
    /// Runtime state: pid file (and later task state).
    pub state: PathBuf,
    pub grpc: Grpc,
    pub pull: Pull,
    pub push: Push,
    pub registry: Registry,
    pub network: Network,
    pub snapshots: Snapshots,
    pub runtime: Runtime,
    pub metrics: Metrics,
    pub log: Log,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// TCP address ("127.0.0.1:1338") serving Prometheus text at
    /// /v1/metrics, as containerd's `[metrics] address`; empty: off.
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// error, warn, info, debug or trace, or a tracing filter such as
    /// "info,hull_daemon::shim=debug"; `hulld --log-level` overrides it.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtime {
    /// The shim (containerd's shim v2 protocol) that runs each task; a
    /// name is looked up on PATH, hulld's own directory first. It runs the
    /// `hull` runtime found the same way.
    pub shim: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            shim: "containerd-shim-hull-v2".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Snapshots {
    /// The snapshotter pulls unpack into unless told otherwise:
    /// "overlayfs" (layers shared through overlay mounts) or "native"
    /// (full copies, for filesystems overlayfs cannot use).
    pub default: String,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            default: "overlayfs".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grpc {
    /// The unix socket clients connect to.
    pub address: PathBuf,
    /// Group owning the socket (mode 0660): members may use hulld.
    pub gid: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pull {
    pub max_concurrent_downloads: usize,
    /// Further attempts per blob after a network error, 5xx or short body.
    pub retries: u32,
    /// A registry response that delivers fewer bytes than this within
    /// `min_progress_seconds` is cut off (and retried, resuming): a
    /// trickling or stalled registry cannot hold a pull forever.
    pub min_progress_bytes: u64,
    pub min_progress_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registry {
    /// Registries reached over plain HTTP (localhost and 127.0.0.1 always are).
    pub insecure: Vec<String>,
    /// PEM files of CAs trusted besides the system's (private registries),
    /// for every registry host.
    pub ca_files: Vec<PathBuf>,
    /// containerd's registry host directory ("certs.d"), so that one
    /// written for containerd or docker works as it is: for a registry host
    /// H (`docker.io`, `10.0.0.5:5000`), `<config_path>/H/hosts.toml` names
    /// mirrors, the upstream server, and per host the CA (`ca`), client
    /// certificate (`client`), `skip_verify` and `capabilities`; without a
    /// hosts.toml, `H/*.crt` are CAs and `H/NAME.cert` + `H/NAME.key` a
    /// client certificate. `_default/` serves hosts without a directory.
    /// Read at each pull (edits need no restart); a hosts.toml replaces
    /// `mirrors` for its host. "" turns it off.
    pub config_path: PathBuf,
    /// Registry domain → mirrors tried first, e.g. "docker.io" = ["mirror.lan:5000"].
    pub mirrors: BTreeMap<String, Vec<String>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            config_path: "/etc/hull/certs.d".into(),
            mirrors: BTreeMap::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: "/var/lib/hull".into(),
            root_gid: 0,
            state: "/run/hull".into(),
            grpc: Grpc::default(),
            pull: Pull::default(),
            push: Push::default(),
            network: Network::default(),
            registry: Registry::default(),
            snapshots: Snapshots::default(),
            runtime: Runtime::default(),
            metrics: Metrics::default(),
            log: Log::default(),
        }
    }
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            address: hull_api::DEFAULT_ADDRESS.into(),
            gid: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// CNI network lists (`*.conflist`, `*.conf`); the default network is
    /// written here on start when the directory has none.
    pub config_dir: PathBuf,
    /// Where the CNI plugin binaries are (Debian's containernetworking-
    /// plugins installs them in /usr/lib/cni).
    pub plugin_dirs: Vec<PathBuf>,
    /// The network of containers that name none (`hullctl run` without
    /// `--network`), and its bridge and subnet when hulld writes it.
    pub default_network: String,
    pub bridge: String,
    pub subnet: String,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            config_dir: "/etc/hull/cni/net.d".into(),
            plugin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            default_network: "bridge".into(),
            bridge: "hull0".into(),
            subnet: "10.4.0.0/24".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    pub max_concurrent_uploads: usize,
    /// Blobs up to this size go in one request; bigger ones in chunks of
    /// it, so an interrupted upload goes on from the last chunk the
    /// registry holds.
    pub chunk_size: u64,
}

impl Default for Push {
    fn default() -> Self {
        Push {
            max_concurrent_uploads: 3,
            chunk_size: hull_images::push::DEFAULT_CHUNK_SIZE,
        }
    }
}

impl Default for Pull {
    fn default() -> Self {
        Pull {
            max_concurrent_downloads: 3,
            retries: 3,
            min_progress_bytes: 10 * 1024,
            min_progress_seconds: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
    #[error("registry.ca_files: {} holds no PEM certificate", path.display())]
    NotPem { path: PathBuf },
    #[error("config {}: {source}(`hulld config default` prints a valid file)", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serialises")
    }

    /// The puller's settings; reads (and checks) the CA files.
    pub fn registry_config(&self) -> Result<hull_images::RegistryConfig, ConfigError> {
        let mut extra_roots = Vec::new();
        for path in &self.registry.ca_files {
            let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::NotPem { path: path.clone() });
            }
            extra_roots.push(pem);
        }
        Ok(hull_images::RegistryConfig {
            insecure: self.registry.insecure.clone(),
            mirrors: self.registry.mirrors.clone(),
            max_concurrent_downloads: self.pull.max_concurrent_downloads.max(1),
            retries: self.pull.retries,
            extra_roots,
            progress: hull_images::registry::body::Progress {
                min_bytes: self.pull.min_progress_bytes,
                window: std::time::Duration::from_secs(self.pull.min_progress_seconds.max(1)),
            },
            config_path: (!self.registry.config_path.as_os_str().is_empty())
                .then(|| self.registry.config_path.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_partial_files_fill_in() {
        let text = Config::default().to_toml();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), Config::default());
        let partial: Config = toml::from_str(
            "root = \"/tmp/r\"\n[registry.mirrors]\n\"docker.io\" = [\"127.0.0.1:5001\"]\n",
        )
        .unwrap();
        assert_eq!(partial.root, PathBuf::from("/tmp/r"));
        assert_eq!(partial.pull.max_concurrent_downloads, 3);
        assert_eq!(partial.registry.mirrors["docker.io"], ["127.0.0.1:5001"]);
        let err = toml::from_str::<Config>("rooot = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rooot"), "{err}");
    }
}
