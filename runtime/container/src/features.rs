//! `hull features`: what this runtime implements, in the JSON shape of the
//! runtime-spec "features" document (as `runc features` prints it).

use serde_json::{json, Value};

const SECCOMP_FLAGS: [(&str, u32); 4] = [
    (
        "SECCOMP_FILTER_FLAG_TSYNC",
        hull_seccomp::SECCOMP_FILTER_FLAG_TSYNC,
    ),
    (
        "SECCOMP_FILTER_FLAG_LOG",
        hull_seccomp::SECCOMP_FILTER_FLAG_LOG,
    ),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        hull_seccomp::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        hull_seccomp::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

pub fn features() -> Value {
    json!({
        "ociVersionMin": crate::spec::OCI_VERSION_MIN,
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::mountopts::KNOWN,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64",
                          "SCMP_ARCH_S390X", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": SECCOMP_FLAGS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
                // Probed on the running kernel, as runc reports them.
                "supportedFlags": SECCOMP_FLAGS
                    .iter()
                    .filter(|(_, bit)| hull_seccomp::check_flags(*bit).is_ok())
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
            },
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                          "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "netDevices": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
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
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "tmpcopyup"));
        assert!(f["linux"]["memoryPolicy"]["modes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "MPOL_BIND"));
    }
}
