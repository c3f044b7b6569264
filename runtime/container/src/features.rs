//! `hull features`: what this runtime implements, in the JSON shape of the
//! runtime-spec "features" document (as `runc features` prints it).

use serde_json::{json, Value};

pub fn features() -> Value {
    json!({
        "ociVersionMin": crate::spec::OCI_VERSION_MIN,
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::mountopts::KNOWN.iter().filter(|o| **o != "tmpcopyup").collect::<Vec<_>>(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "cgroup": {"v1": false, "v2": false, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.hull.runtime.version": env!("CARGO_PKG_VERSION")
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_what_hull_supports() {
        let f = super::features();
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert!(f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "time"));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "rro"));
        assert!(!f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "tmpcopyup"));
    }
}
