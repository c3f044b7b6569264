//! The options of `hullctl run` (docker's and nerdctl's `run` flags) that
//! shape config.json, and the parsers for the ones written as strings.

use crate::mounts::{clean_destination, merge_tmpfs_options};
use crate::SpecError;
use oci_spec::runtime::LinuxDevice;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// Everything about one container that is not in the image. Build it with
/// `RunOptions { id, namespace, ..Default::default() }`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Container id (containerd's identifier rules: letters, digits and
    /// `._-` between them, at most 76 characters).
    pub id: String,
    /// The manager namespace (e.g. `default`), part of the cgroup path.
    pub namespace: String,
    /// `--hostname`; default: the first 12 characters of the id, or the
    /// host's name with [`Network::Host`].
    pub hostname: Option<String>,
    /// `--entrypoint`: replaces the image's Entrypoint and drops its Cmd
    /// (`Some(vec![])` clears the entrypoint, like `--entrypoint ""`).
    pub entrypoint: Option<Vec<String>>,
    /// The arguments after the image name; replace the image's Cmd.
    pub args: Vec<String>,
    /// `-e K=V`, `-e K` and `--env-file` lines, in order, already resolved
    /// by the caller (`-e K` becomes `K=value-from-the-caller's-env`). An
    /// entry without `=` removes the variable (docker's rule for an unset `-e K`).
    pub env: Vec<String>,
    /// `-u name|uid[:group|gid]`.
    pub user: Option<String>,
    /// `--group-add name|gid`.
    pub group_add: Vec<String>,
    /// `-w`: absolute path.
    pub workdir: Option<String>,
    /// `-t`: process.terminal, and TERM=xterm.
    pub tty: bool,
    /// `-i`: keeps stdin open. config.json has no field for it: it is the
    /// caller's (the shim's) stdio, kept here so one struct holds the run.
    pub stdin_open: bool,
    /// `--read-only`: read-only root filesystem.
    pub read_only: bool,
    /// `--privileged`: see the crate documentation.
    pub privileged: bool,
    /// `--cap-add`, `--cap-drop`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// What "all capabilities" means for `--privileged` and `--cap-add ALL`:
    /// the capabilities the manager holds ([`crate::current_capabilities`]),
    /// as nerdctl grants "all current capabilities"; `None` means every
    /// capability Linux defines ([`crate::ALL_CAPABILITIES`]), which fails
    /// at create where the manager lacks some.
    pub host_capabilities: Option<Vec<String>>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `-m`: bytes (see [`crate::parse_memory`]); 0 means no limit.
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap in bytes, or -1 for unlimited swap;
    /// unset with `--memory` means twice the memory, as docker.
    pub memory_swap: Option<i64>,
    /// `--cpus` (see [`crate::parse_cpus`]); 0 means no limit.
    pub cpus: Option<f64>,
    /// `--pids-limit`: a positive limit; 0 or -1 means unlimited.
    pub pids_limit: Option<i64>,
    /// `--shm-size`: bytes of /dev/shm (default 64 MiB).
    pub shm_size: Option<u64>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// `-v HOST:CONTAINER[:ro|rw]`.
    pub volumes: Vec<Volume>,
    /// `--tmpfs PATH[:OPTIONS]`.
    pub tmpfs: Vec<Tmpfs>,
    /// `--cgroup-parent` (cgroupfs driver): `hull` gives
    /// cgroupsPath `/hull/<namespace>/<id>`; empty gives `/<namespace>/<id>`.
    pub cgroup_parent: String,
    /// `--cgroupns private` (docker's and nerdctl's default on cgroup v2
    /// hosts; `host` on v1). The caller knows the host, so it decides.
    pub cgroupns_private: bool,
    pub network: Network,
    pub etc_files: EtcFiles,
    /// Device nodes given to a `--privileged` container (docker gives all of
    /// the host's: [`crate::host_devices`]`("/dev")`). Ignored otherwise.
    pub host_devices: Vec<LinuxDevice>,
    /// `--annotation`: copied to config.json's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `--sysctl`: namespaced sysctls only.
    pub sysctls: BTreeMap<String, String>,
}

/// The container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// `--network host`: the host's network namespace.
    Host,
    /// `--network none`: a new namespace with only loopback.
    #[default]
    None,
    /// A namespace prepared by the caller (CNI), joined by path, e.g.
    /// `/var/run/netns/cni-…`.
    Path(PathBuf),
}

/// Host files bind-mounted over the image's (read-write, as nerdctl: they
/// are the container's own copies, written by the manager).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
}

/// A bind mount from `-v HOST:CONTAINER[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Absolute host path; the caller creates it if it must exist (docker
    /// creates a missing directory).
    pub host: PathBuf,
    /// Absolute path in the container, cleaned.
    pub container: String,
    pub read_only: bool,
}

impl FromStr for Volume {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Volume, SpecError> {
        let err = |problem: &str| SpecError::invalid("--volume", s, problem);
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, options) = match parts.as_slice() {
            [one] if one.starts_with('/') => {
                return Err(err(
                    "anonymous volumes are not supported: give HOST:CONTAINER with an absolute host path",
                ))
            }
            [host, container] => (*host, *container, None),
            [host, container, options] => (*host, *container, Some(*options)),
            _ => {
                return Err(err(
                    "expected HOST:CONTAINER[:ro|rw], e.g. /srv/data:/data:ro",
                ))
            }
        };
        if host.is_empty() || container.is_empty() {
            return Err(err(
                "empty path: expected HOST:CONTAINER[:ro|rw], e.g. /srv/data:/data:ro",
            ));
        }
        if !host.starts_with('/') {
            let problem = if host.contains('/') || host.starts_with('.') {
                format!(
                    "host path {host:?} is relative: give an absolute path (e.g. \"$PWD/{}\")",
                    host.trim_start_matches("./")
                )
            } else {
                format!(
                    "{host:?} is not an absolute host path and named volumes are not supported: \
                     give an absolute host path (e.g. /srv/{host})"
                )
            };
            return Err(err(&problem));
        }
        if host.contains('\0') {
            return Err(err("the host path contains a NUL byte"));
        }
        let container = clean_destination(container).map_err(|p| err(&p))?;
        let mut read_only = None;
        for opt in options.into_iter().flat_map(|o| o.split(',')) {
            let ro = match opt {
                "ro" => true,
                "rw" => false,
                other => return Err(err(&format!("unsupported option {other:?}: use ro or rw"))),
            };
            if read_only.is_some_and(|prev| prev != ro) {
                return Err(err("both ro and rw given: use one"));
            }
            read_only = Some(ro);
        }
        Ok(Volume {
            host: PathBuf::from(host),
            container,
            read_only: read_only.unwrap_or(false),
        })
    }
}

/// A tmpfs from `--tmpfs PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    /// Absolute path in the container, cleaned.
    pub path: String,
    /// The options as given (e.g. `size=64m`, `exec`); merged with docker's
    /// defaults `noexec,nosuid,nodev` when the spec is generated.
    pub options: Vec<String>,
}

impl FromStr for Tmpfs {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Tmpfs, SpecError> {
        let err = |problem: &str| SpecError::invalid("--tmpfs", s, problem);
        let (path, options) = match s.split_once(':') {
            Some((p, o)) => (p, o.split(',').map(String::from).collect()),
            None => (s, Vec::new()),
        };
        let path = clean_destination(path).map_err(|p| err(&p))?;
        let tmpfs = Tmpfs { path, options };
        // Check the options now, so a typo is reported at parse time.
        merge_tmpfs_options(&tmpfs.options).map_err(|p| err(&p))?;
        Ok(tmpfs)
    }
}

/// A resource limit from `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The OCI name, e.g. `RLIMIT_NOFILE`.
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The `--ulimit` names (docker's) and the limits they set.
const ULIMIT_NAMES: &[(&str, &str)] = &[
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

impl FromStr for Ulimit {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Ulimit, SpecError> {
        let err = |problem: String| SpecError::invalid("--ulimit", s, problem);
        let Some((name, values)) = s.split_once('=') else {
            return Err(err(
                "expected NAME=SOFT[:HARD], e.g. nofile=1024:4096".into()
            ));
        };
        let Some(&(_, oci)) = ULIMIT_NAMES.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ULIMIT_NAMES.iter().map(|(n, _)| *n).collect();
            return Err(err(format!(
                "unknown limit {name:?}: use one of {}",
                names.join(", ")
            )));
        };
        // -1 and "unlimited" are RLIM_INFINITY, as docker writes them.
        let value = |v: &str| -> Result<u64, SpecError> {
            match v {
                "-1" | "unlimited" => Ok(u64::MAX),
                _ => v.parse().map_err(|_| {
                    err(format!(
                        "{v:?} is not a limit: use a non-negative integer, -1 or unlimited"
                    ))
                }),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (value(soft)?, value(hard)?),
            None => {
                let v = value(values)?;
                (v, v)
            }
        };
        if soft > hard {
            return Err(err(format!(
                "soft limit {soft} is above hard limit {hard}: make SOFT <= HARD"
            )));
        }
        Ok(Ulimit {
            name: oci.to_string(),
            soft,
            hard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_syntax() {
        let v: Volume = "/srv/data:/data".parse().unwrap();
        assert_eq!(
            v,
            Volume {
                host: "/srv/data".into(),
                container: "/data".into(),
                read_only: false
            }
        );
        let v: Volume = "/srv/data:/data/./x/:ro".parse().unwrap();
        assert_eq!((v.container.as_str(), v.read_only), ("/data/x", true));
        let v: Volume = "/a:/b:rw".parse().unwrap();
        assert!(!v.read_only);
    }

    #[test]
    fn volume_errors_name_the_option_and_the_fix() {
        for (text, part) in [
            ("data:/data", "named volumes are not supported"),
            (
                "./data:/data",
                "is relative: give an absolute path (e.g. \"$PWD/data\")",
            ),
            ("srv/data:/data", "is relative"),
            ("/data", "anonymous volumes are not supported"),
            ("/a:b", "must be absolute"),
            ("/a:/", "cannot be \"/\""),
            ("/a:/b:z", "unsupported option \"z\": use ro or rw"),
            ("/a:/b:ro,rw", "both ro and rw"),
            ("/a:/b:ro:x", "expected HOST:CONTAINER[:ro|rw]"),
            (":/b", "empty path"),
            ("", "expected HOST:CONTAINER"),
        ] {
            let e = text.parse::<Volume>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--volume {text:?}: ")), "{e}");
            assert!(e.contains(part), "{text}: {e}");
        }
    }

    #[test]
    fn tmpfs_syntax() {
        let t: Tmpfs = "/run".parse().unwrap();
        assert_eq!((t.path.as_str(), t.options.len()), ("/run", 0));
        let t: Tmpfs = "/cache:size=64m,exec,mode=1777".parse().unwrap();
        assert_eq!(t.options, ["size=64m", "exec", "mode=1777"]);
        for (text, part) in [
            ("run", "must be absolute"),
            ("/", "cannot be \"/\""),
            ("/x:bogus", "unknown tmpfs option \"bogus\""),
            ("/x:colour=red", "unknown tmpfs option \"colour=red\""),
        ] {
            let e = text.parse::<Tmpfs>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--tmpfs {text:?}: ")), "{e}");
            assert!(e.contains(part), "{text}: {e}");
        }
    }

    #[test]
    fn ulimit_syntax() {
        let u: Ulimit = "nofile=1024:4096".parse().unwrap();
        assert_eq!(
            (u.name.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 1024, 4096)
        );
        let u: Ulimit = "core=0".parse().unwrap();
        assert_eq!((u.soft, u.hard), (0, 0));
        let u: Ulimit = "memlock=-1:unlimited".parse().unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        for (text, part) in [
            ("nofile", "expected NAME=SOFT[:HARD]"),
            ("files=1", "unknown limit \"files\": use one of as, core"),
            ("nofile=x", "\"x\" is not a limit"),
            ("nofile=10:5", "soft limit 10 is above hard limit 5"),
        ] {
            let e = text.parse::<Ulimit>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--ulimit {text:?}: ")), "{e}");
            assert!(e.contains(part), "{text}: {e}");
        }
    }
}
