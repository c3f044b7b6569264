//! Enabling controllers down the tree (`cgroup.subtree_control`).
//!
//! A cgroup gets a controller's files only when its parent has the
//! controller in `cgroup.subtree_control`, which in turn needs it in the
//! grandparent's, up to the root. Walking from the hierarchy's mount point
//! down to the container's parent, each missing controller that is
//! available there (`cgroup.controllers`) is added — one `+name` write per
//! controller, so one refusal does not hide the others. Nothing is ever
//! removed, and nothing is written where the controller is already enabled.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fs;

fn words(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Enables `wanted` for the cgroup `dir` (below `top`, the mount point).
/// With `strict`, a controller that is not available, or that cannot be
/// enabled, is an error; without, it is skipped.
pub(crate) fn enable(top: &Path, dir: &Path, wanted: &[&str], strict: bool) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let rel = dir.strip_prefix(top).map_err(|_| {
        Error::invalid(format!(
            "cgroup {} is not below {}",
            dir.display(),
            top.display()
        ))
    })?;
    let mut ancestors = vec![top.to_path_buf()];
    let mut cur = top.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        ancestors.push(cur.clone());
    }
    if comps.is_empty() {
        return Ok(()); // the mount point itself: nothing above it to change
    }

    let mut remaining: Vec<&str> = wanted.to_vec();
    for a in &ancestors {
        let available = words(fs::read_opt(a, "cgroup.controllers")?);
        let enabled = words(fs::read_opt(a, "cgroup.subtree_control")?);
        let mut next = Vec::new();
        for &c in &remaining {
            if !available.iter().any(|x| x == c) {
                if strict {
                    return Err(Error::unsupported(
                        c,
                        format!(
                            "not available in the cgroup v2 hierarchy at {} (its cgroup.controllers lists: {})",
                            a.display(),
                            available.join(" ")
                        ),
                    ));
                }
                continue;
            }
            if !enabled.iter().any(|x| x == c) {
                // "No internal processes": a cgroup below the root that holds
                // processes must not get controllers for its children (the
                // kernel may even accept threaded ones, turning it into a
                // thread root and breaking the container's cgroup).
                if a != top && has_processes(a) {
                    if strict {
                        return Err(Error::invalid(format!(
                            "cannot enable the {c} controller in {}: it has processes of its own (cgroup v2's \"no internal processes\" rule): give linux.cgroupsPath an absolute path outside it",
                            a.display()
                        )));
                    }
                    return Ok(());
                }
                if let Err(e) = fs::write(a, "cgroup.subtree_control", &format!("+{c}")) {
                    if strict {
                        return Err(e);
                    }
                    continue;
                }
            }
            next.push(c);
        }
        remaining = next;
    }
    Ok(())
}

fn has_processes(dir: &Path) -> bool {
    fs::read_opt(dir, "cgroup.procs")
        .ok()
        .flatten()
        .is_some_and(|p| !p.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn enables_only_missing_available_controllers() {
        let t = TempDir::new();
        let root = t.path();
        t.file("cgroup.controllers", "cpu memory pids hugetlb\n");
        t.file("cgroup.subtree_control", "memory\n");
        t.file("a/cgroup.controllers", "memory\n");
        t.file("a/cgroup.subtree_control", "");
        std::fs::create_dir_all(root.join("a/ctr")).unwrap();
        fs::take_writes();
        enable(root, &root.join("a/ctr"), &["memory", "pids"], false).unwrap();
        let w = fs::take_writes();
        assert_eq!(
            w,
            vec![
                (root.join("cgroup.subtree_control"), "+pids".to_string()),
                (root.join("a/cgroup.subtree_control"), "+memory".to_string()),
            ]
        );
        // pids is not available in "a": strict mode says so.
        let e = enable(root, &root.join("a/ctr"), &["pids"], true).unwrap_err();
        assert!(
            e.to_string()
                .contains("cgroup controller pids: not available"),
            "{e}"
        );
        // Unknown controller at the top.
        assert!(enable(root, &root.join("a/ctr"), &["rdma"], true).is_err());
    }
}
