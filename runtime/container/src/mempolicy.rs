//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy of the
//! container's init, set with set_mempolicy(2) right before its program
//! runs (execve and fork keep it), as runc 1.3 does. Nodes are the spec's
//! list format ("0-3,7"); MPOL_DEFAULT and MPOL_LOCAL take none, the other
//! modes need some.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Spec};

/// Node numbers above this are refused (the kernel's MAX_NUMNODES is at
/// most 1024).
const MAX_NODES: usize = 1024;
const BITS: usize = 64;

/// The arguments of set_mempolicy: mode with flags, and the node mask.
#[derive(Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: libc::c_int,
    pub mask: Vec<libc::c_ulong>,
}

fn mode_number(m: MemoryPolicyModeType) -> libc::c_int {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn flag_bit(f: MemoryPolicyFlagType) -> libc::c_int {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
    }
}

/// "0-3,7" as a bit mask of nodes.
fn node_mask(nodes: &str) -> Result<Vec<libc::c_ulong>> {
    let bad = |why: String| Error::msg(format!("linux.memoryPolicy.nodes {nodes:?}: {why}"));
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n < MAX_NODES)
            .ok_or_else(|| bad(format!("{s:?} is not a node number below {MAX_NODES}")))
    };
    let mut mask = vec![0 as libc::c_ulong; MAX_NODES / BITS];
    for part in nodes.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if lo > hi {
            return Err(bad(format!("the range {part:?} runs backwards")));
        }
        for n in lo..=hi {
            mask[n / BITS] |= 1 << (n % BITS);
        }
    }
    while mask.last() == Some(&0) {
        mask.pop();
    }
    Ok(mask)
}

/// The set_mempolicy arguments for the config, checked.
pub fn policy(p: &LinuxMemoryPolicy) -> Result<Policy> {
    let mode = p.mode();
    let nodes = p
        .nodes()
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let mask = match (mode, nodes) {
        (MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal, Some(n)) => {
            return Err(Error::msg(format!(
                "linux.memoryPolicy: mode {mode} takes no nodes, but nodes is {n:?}"
            )))
        }
        (MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal, None) => Vec::new(),
        (_, None) => {
            return Err(Error::msg(format!(
                "linux.memoryPolicy: mode {mode} needs nodes (e.g. \"0\" or \"0-1\")"
            )))
        }
        (_, Some(n)) => node_mask(n)?,
    };
    let flags = p
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | flag_bit(*f));
    Ok(Policy {
        mode: mode_number(mode) | flags,
        mask,
    })
}

/// Check the config's memory policy (at create, before anything runs).
pub fn validate(spec: &Spec) -> Result<()> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        Some(p) => policy(p).map(drop),
        None => Ok(()),
    }
}

/// Set the config's memory policy for this process.
pub fn apply(spec: &Spec) -> Result<()> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    else {
        return Ok(());
    };
    let policy = policy(p)?;
    let (mask, maxnode) = if policy.mask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // maxnode counts bits; the kernel wants one more than the last.
        (policy.mask.as_ptr(), policy.mask.len() * BITS + 1)
    };
    // SAFETY: set_mempolicy reads `maxnode` bits from `mask`, which holds
    // them (or is null with 0).
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, policy.mode, mask, maxnode) };
    if r < 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::msg(format!(
            "setting linux.memoryPolicy (mode {}, nodes {:?}): {err}{}",
            p.mode(),
            p.nodes().as_deref().unwrap_or(""),
            if err.raw_os_error() == Some(libc::EINVAL) {
                ": are the nodes online (/sys/devices/system/node/online) and the mode and flags known to this kernel?"
            } else {
                ""
            }
        )));
    }
    crate::debug!("init: memory policy {} nodes {:?}", p.mode(), p.nodes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> LinuxMemoryPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn modes_nodes_and_flags() {
        let p = policy(&parse(r#"{"mode":"MPOL_BIND","nodes":"0-2,5"}"#)).unwrap();
        assert_eq!(
            p,
            Policy {
                mode: 2,
                mask: vec![0b100111]
            }
        );
        let p = policy(&parse(
            r#"{"mode":"MPOL_INTERLEAVE","nodes":"64","flags":["MPOL_F_STATIC_NODES"]}"#,
        ))
        .unwrap();
        assert_eq!(
            p,
            Policy {
                mode: 3 | 1 << 15,
                mask: vec![0, 1]
            }
        );
        assert_eq!(policy(&parse(r#"{"mode":"MPOL_LOCAL"}"#)).unwrap().mode, 4);
    }

    #[test]
    fn bad_policies_name_the_problem() {
        for (json, needle) in [
            (r#"{"mode":"MPOL_BIND"}"#, "needs nodes"),
            (r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#, "takes no nodes"),
            (r#"{"mode":"MPOL_BIND","nodes":"3-1"}"#, "backwards"),
            (r#"{"mode":"MPOL_BIND","nodes":"x"}"#, "not a node number"),
            (r#"{"mode":"MPOL_BIND","nodes":"5000"}"#, "below 1024"),
        ] {
            let err = policy(&parse(json)).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
