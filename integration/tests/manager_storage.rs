//! Unpacking pulled images into snapshots: what a snapshot holds must be
//! exactly what the image's layers say (compared entry by entry with an
//! independent reference unpacker: modes, owners, xattrs, devices,
//! hardlinks, whiteouts), on both snapshotters; layers are shared between
//! images; garbage collection keeps what is in use; hostile layers are
//! refused or confined; a killed daemon leaves nothing half-unpacked.

use hull_integration::host::wait_until;
use hull_integration::hostile::{Fault, HostileRegistry};
use hull_integration::manager::{
    canary_dir, have_registry, layer_images_dir, reference_listing, tree_listing, Auth, Hulld,
    Registry,
};
use std::time::Duration;

fn pull_json(d: &Hulld, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json", "pull"];
    all.extend_from_slice(args);
    let out = d.ctl(&all).ok();
    serde_json::from_str(&out.stdout).unwrap()
}

/// Snapshot keys of a snapshotter, with their kind.
fn snapshots(d: &Hulld, snapshotter: &str) -> Vec<(String, String)> {
    let out = d
        .ctl(&[
            "--format",
            "json",
            "snapshots",
            "--snapshotter",
            snapshotter,
            "ls",
        ])
        .ok();
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn unpacked_images_match_their_layers_on_both_snapshotters() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let images = hull_integration::manager::images_dir();
    let layers = layer_images_dir();
    let mut cases = vec![
        ("features", layers.join("features")),
        ("features-child", layers.join("features-child")),
    ];
    for name in ["small", "multiarch", "zstd", "plain", "docker", "big"] {
        cases.push((name, images.join(name)));
    }
    for (name, layout) in &cases {
        reg.push_layout(layout, &format!("{name}:latest"));
    }
    for snapshotter in ["overlayfs", "native"] {
        let d = Hulld::start(&format!("[snapshots]\ndefault = \"{snapshotter}\"\n"));
        for (name, layout) in &cases {
            // Full copies of 200 MB per layer: the native check of the big
            // image would only repeat the others at length.
            if snapshotter == "native" && *name == "big" {
                continue;
            }
            let pulled = pull_json(&d, &[&format!("{}/{name}:latest", reg.address)]);
            let top = pulled["snapshot"].as_str().unwrap();
            assert!(top.starts_with("sha256:"), "{pulled}");
            let got = d.snapshot_listing(snapshotter, top);
            let want = reference_listing(layout);
            assert_eq!(got, want, "{name} unpacked by {snapshotter}");
        }
        // Nothing in progress is left behind.
        let active: Vec<_> = snapshots(&d, snapshotter)
            .into_iter()
            .filter(|(_, kind)| kind != "Committed")
            .collect();
        assert!(active.is_empty(), "{active:?}");
    }
}

#[test]
fn layers_shared_between_images_are_unpacked_once() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let layers = layer_images_dir();
    let base = reg.push_layout(&layers.join("features"), "base:latest");
    let child = reg.push_layout(&layers.join("features-child"), "child:latest");
    let d = Hulld::start("");
    d.ctl(&["pull", &base]).ok();
    assert_eq!(snapshots(&d, "overlayfs").len(), 2);
    let out = d.ctl(&["pull", &child]).ok();
    let unpack_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("unpack"))
        .filter(|l| !l.contains("unpacking"))
        .collect();
    let exists = unpack_lines.iter().filter(|l| l.contains("exists")).count();
    let unpacked = unpack_lines
        .iter()
        .filter(|l| l.contains("unpacked"))
        .count();
    assert_eq!((exists, unpacked), (2, 1), "{unpack_lines:?}");
    assert_eq!(snapshots(&d, "overlayfs").len(), 3);
    // The tree: one chain.
    let tree = d.ctl(&["snapshots", "tree"]).ok().stdout;
    assert_eq!(tree.lines().count(), 3, "{tree}");
    assert!(
        tree.lines().nth(2).unwrap().starts_with("    \\_ sha256:"),
        "{tree}"
    );
}

#[test]
fn collection_keeps_snapshots_in_use_and_removes_the_rest() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let layers = layer_images_dir();
    let image = reg.push_layout(&layers.join("features"), "gc:latest");
    let d = Hulld::start("");
    let top = pull_json(&d, &[&image])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // A container's root filesystem on top of the image, kept by a label.
    d.ctr(&["snapshots", "prepare", "rootfs", &top]).ok();
    d.ctr(&["snapshots", "label", "rootfs", "containerd.io/gc.root=yes"])
        .ok();
    d.ctl(&["images", "rm", &image]).ok();
    let left = snapshots(&d, "overlayfs");
    assert_eq!(
        left.len(),
        3,
        "the active snapshot keeps its parents: {left:?}"
    );
    assert!(left.contains(&("rootfs".to_string(), "Active".to_string())));
    // A snapshot with children cannot be removed.
    let refused = d.ctl(&["snapshots", "rm", &top]).fails();
    assert!(refused.stderr.contains("children"), "{refused:?}");
    d.ctl(&["snapshots", "rm", "rootfs"]).ok();
    let gc = d.ctl(&["--format", "json", "content", "gc"]).ok();
    let gc: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    assert_eq!(gc["snapshots"].as_array().unwrap().len(), 2, "{gc}");
    assert!(snapshots(&d, "overlayfs").is_empty());
    assert!(d.blob_files().is_empty(), "{:?}", d.blob_files());
}

#[test]
fn hostile_layers_are_refused_or_confined() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let canary = canary_dir();
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(canary.join("target"), "canary\n").unwrap();
    let before = tree_listing(&canary);
    let reg = Registry::start(Auth::None);
    let d = Hulld::start("");
    let layers = layer_images_dir();
    for attack in [
        "dotdot",
        "absolute",
        "symlink-escape",
        "hardlink-escape",
        "whiteout-escape",
        "lying-diffid",
    ] {
        let image = reg.push_layout(
            &layers.join(format!("hostile-{attack}")),
            &format!("{attack}:latest"),
        );
        let before_pull = snapshots(&d, "overlayfs");
        let out = d.ctl(&["pull", &image]);
        if attack == "lying-diffid" || attack == "hardlink-escape" {
            assert_ne!(out.code, 0, "{attack} must be refused: {out:?}");
        }
        if out.code != 0 {
            // Refused: no snapshot of it, nothing half-applied left.
            assert_eq!(snapshots(&d, "overlayfs"), before_pull, "{attack}");
        }
        assert_eq!(tree_listing(&canary), before, "{attack} reached outside");
    }
    std::fs::remove_dir_all(&canary).unwrap();
}

#[test]
fn a_daemon_killed_while_unpacking_leaves_no_half_layer() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("big", "killed:latest");
    // Slow enough that the kill lands while a layer is being applied.
    let proxy = HostileRegistry::start(&reg.address, Fault::Throttle(8 << 20));
    let image = format!("{}/killed:latest", proxy.address);
    let mut d = Hulld::start("");
    let mut pull = d.spawn_ctl(&["pull", "-q", &image]);
    let unpacking = wait_until(Duration::from_secs(60), || {
        snapshots(&d, "overlayfs")
            .iter()
            .any(|(key, kind)| key.starts_with("extract-") && kind == "Active")
    });
    assert!(unpacking, "an unpack started");
    d.stop_with(libc::SIGKILL);
    let _ = pull.wait();
    d.spawn();
    // After the restart nothing half-applied remains: only committed
    // layers, whose content the next pull checks against the reference.
    let left = snapshots(&d, "overlayfs");
    assert!(left.iter().all(|(_, kind)| kind == "Committed"), "{left:?}");
    proxy.set_fault(Fault::None);
    let top = pull_json(&d, &[&image])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let want = reference_listing(&hull_integration::manager::images_dir().join("big"));
    assert_eq!(d.snapshot_listing("overlayfs", &top), want);
}
