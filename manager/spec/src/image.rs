//! The parts of an OCI image config (application/vnd.oci.image.config.v1+json,
//! or Docker's schema 2 config, which has the same shape) that decide how a
//! container runs.

use crate::SpecError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What the image says about running it: its `config` object plus the
/// platform. Fields the image leaves out are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `USER`: `name`, `uid`, `name:group`, `uid:gid`; empty for root.
    pub user: String,
    /// `ENV`: `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `WORKDIR`; empty for "/".
    pub working_dir: String,
    /// `STOPSIGNAL` as written (e.g. `SIGQUIT` or `3`); see [`ImageConfig::stop_signal`].
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `EXPOSE`: e.g. `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// `VOLUME`: container paths, sorted. Not mounted by [`crate::generate`]:
    /// anonymous volumes need a volume store, which the caller owns.
    pub volumes: Vec<String>,
    pub os: String,
    pub architecture: String,
}

/// The config JSON as the image spec defines it. Every field may be absent
/// or null (Docker writes `"Entrypoint": null`).
#[derive(Deserialize)]
struct RawImage {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    config: Option<RawConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
}

impl ImageConfig {
    /// Parse an image config blob. The caller bounds its size (hull's
    /// registry client and content store already do).
    pub fn parse(config_json: &[u8]) -> Result<ImageConfig, SpecError> {
        let invalid = |e: String| {
            SpecError::ImageConfig(format!(
                "not a valid OCI image config ({e}): the image may be corrupt; pull it again"
            ))
        };
        // serde would also read a struct from a JSON array; a config is an object.
        if config_json.trim_ascii_start().first() != Some(&b'{') {
            return Err(invalid("not a JSON object".into()));
        }
        let raw: RawImage =
            serde_json::from_slice(config_json).map_err(|e| invalid(e.to_string()))?;
        let c = raw.config.unwrap_or(RawConfig {
            user: None,
            env: None,
            entrypoint: None,
            cmd: None,
            working_dir: None,
            stop_signal: None,
            labels: None,
            exposed_ports: None,
            volumes: None,
        });
        Ok(ImageConfig {
            user: c.user.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
            labels: c.labels.unwrap_or_default(),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            volumes: c.volumes.unwrap_or_default().into_keys().collect(),
            os: raw.os.unwrap_or_default(),
            architecture: raw.architecture.unwrap_or_default(),
        })
    }

    /// The signal that asks the container to stop: the image's STOPSIGNAL,
    /// else SIGTERM (docker's and containerd's default).
    pub fn stop_signal(&self) -> &str {
        self.stop_signal.as_deref().unwrap_or("SIGTERM")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field() {
        let json = br#"{
            "architecture": "amd64", "os": "linux",
            "config": {
                "User": "nginx:nginx", "Env": ["PATH=/bin", "A=b=c"],
                "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
                "WorkingDir": "/srv", "StopSignal": "SIGQUIT",
                "Labels": {"maintainer": "x"}, "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Volumes": {"/var/cache": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []
        }"#;
        let c = ImageConfig::parse(json).unwrap();
        assert_eq!(c.user, "nginx:nginx");
        assert_eq!(c.env, ["PATH=/bin", "A=b=c"]);
        assert_eq!(c.entrypoint, ["/docker-entrypoint.sh"]);
        assert_eq!(c.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.stop_signal(), "SIGQUIT");
        assert_eq!(c.labels["maintainer"], "x");
        assert_eq!(c.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(c.volumes, ["/var/cache"]);
        assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));
    }

    #[test]
    fn nulls_and_missing_fields_are_empty() {
        let c = ImageConfig::parse(
            br#"{"os":"linux","config":{"Entrypoint":null,"Cmd":null,"Env":null,"StopSignal":""}}"#,
        )
        .unwrap();
        assert!(c.entrypoint.is_empty() && c.cmd.is_empty() && c.env.is_empty());
        assert_eq!(c.stop_signal(), "SIGTERM");
        let c = ImageConfig::parse(b"{}").unwrap();
        assert_eq!(c, ImageConfig::default());
    }

    #[test]
    fn bad_json_is_an_image_config_error() {
        for bad in [&b"not json"[..], br#"{"config":{"Cmd":"sh"}}"#, b"[]"] {
            let e = ImageConfig::parse(bad).unwrap_err();
            assert!(matches!(e, SpecError::ImageConfig(_)), "{e}");
            assert!(e.to_string().contains("pull it again"), "{e}");
        }
    }
}
