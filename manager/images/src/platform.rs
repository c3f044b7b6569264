//! Platforms (`os/arch[/variant]`) and choosing one from an index, with the
//! same normalisation as containerd: Go's architecture names, `arm64`
//! meaning `arm64/v8`, `arm` defaulting to `v7`.

use crate::manifest::Descriptor;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

fn normalise_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        "armhf" => "arm",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let variant = match (arch, variant) {
        ("arm64", None | Some("8") | Some("v8")) => Some("v8".to_string()),
        ("arm", None) => Some("v7".to_string()),
        ("arm", Some(v)) if !v.starts_with('v') => Some(format!("v{v}")),
        (_, v) => v.filter(|v| !v.is_empty()).map(str::to_string),
    };
    (arch.to_string(), variant)
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let (arch, variant) = normalise_arch(arch, variant);
        Platform {
            os: os.to_lowercase(),
            arch,
            variant,
        }
    }

    /// The platform hulld runs on.
    pub fn host() -> Platform {
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, None)
    }

    pub fn matches(&self, candidate: &crate::manifest::Platform) -> bool {
        let other = Platform::new(
            &candidate.os,
            &candidate.architecture,
            candidate.variant.as_deref(),
        );
        self.os == other.os && self.arch == other.arch && self.variant == other.variant
    }

    /// The index entry for this platform (the first match, as containerd).
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| self.matches(p)))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {0:?}: use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")]
pub struct InvalidPlatform(pub String);

impl FromStr for Platform {
    type Err = InvalidPlatform;
    fn from_str(s: &str) -> Result<Platform, InvalidPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if parts.iter().all(ok) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if parts.iter().all(ok) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(InvalidPlatform(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Platform as P;

    fn entry(digest: &str, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: Some(P {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            }),
        }
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/aarch64/8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/arm".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "Linux/x86_64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn selects_the_matching_entry() {
        let index = [
            entry("sha256:amd", "linux", "amd64", None),
            entry("sha256:armv6", "linux", "arm", Some("v6")),
            entry("sha256:armv7", "linux", "arm", None),
            entry("sha256:arm64", "linux", "arm64", Some("v8")),
        ];
        let pick = |p: &str| {
            p.parse::<Platform>()
                .unwrap()
                .select(&index)
                .map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:amd"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:arm64"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:armv6"));
        assert_eq!(pick("linux/arm").as_deref(), Some("sha256:armv7"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
    }
}
