//! Snapshots mounted for real (root): layers unpacked with hull-diff into
//! chains of committed snapshots on both snapshotters, then the merged
//! mount checked file by file (whiteouts delete, opaque dirs hide, implicit
//! parents keep the image's owners), views read-only, writes landing in the
//! upper dir, and a 150-layer chain through the new mount API.

mod common;

use common::*;
use hull_snapshots::{Labels, Mounted, Snapshotter};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn base_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.file("etc/os-release", b"v1")
        .file("etc/keep", b"k")
        .file("var/lib/old/data", b"old")
        .file("opq/a", b"a")
        .file("opq/sub/b", b"b")
        .dir("home", 0o700, 1000)
        .file("lib/libc.so", b"elf")
        .symlink("lib64", "lib")
        .hardlink("lib/libc.so.6", "lib/libc.so")
        .device("dev/null", 1, 3);
    l.finish()
}

fn top_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.whiteout("etc/keep")
        .file("etc/os-release", b"v2")
        .whiteout("var/lib/old")
        .opaque("opq")
        .file("opq/new", b"n")
        .file("home/user/file", b"mine");
    l.finish()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gone(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_err()
}

/// What the two layers look like merged, whichever snapshotter made it.
fn check_merged(root: &Path, who: &str) {
    assert_eq!(read(&root.join("etc/os-release")), b"v2", "{who}");
    assert!(gone(&root.join("etc/keep")), "{who}: whiteout");
    assert!(
        gone(&root.join("var/lib/old")),
        "{who}: whiteout of a directory"
    );
    assert!(root.join("var/lib").is_dir(), "{who}");
    assert!(
        gone(&root.join("opq/a")) && gone(&root.join("opq/sub")),
        "{who}: opaque"
    );
    assert_eq!(read(&root.join("opq/new")), b"n", "{who}");
    let home = std::fs::metadata(root.join("home")).unwrap();
    assert_eq!(
        (home.uid(), home.mode() & 0o7777),
        (1000, 0o700),
        "{who}: implicit parent keeps the image's owner"
    );
    assert_eq!(read(&root.join("home/user/file")), b"mine", "{who}");
    assert_eq!(read(&root.join("lib64/libc.so")), b"elf", "{who}");
    assert_eq!(
        std::fs::metadata(root.join("lib/libc.so")).unwrap().ino(),
        std::fs::metadata(root.join("lib/libc.so.6")).unwrap().ino(),
        "{who}: hard link"
    );
    assert!(
        std::fs::symlink_metadata(root.join("dev/null"))
            .unwrap()
            .file_type()
            .is_char_device(),
        "{who}"
    );
}

fn write_fails_read_only(root: &Path, who: &str) {
    let e = std::fs::write(root.join("nope"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{who}: {e}");
}

fn check_chain(env: &Env, s: &dyn Snapshotter) {
    let who = s.name();
    unpack(s, "L0", None, &base_layer());
    unpack(s, "L1", Some("L0"), &top_layer());
    let mounts = s.prepare(NS, "rootfs", Some("L1"), Labels::new()).unwrap();
    let mnt = env.mountpoint(&format!("{who}-rootfs"));
    {
        let _m = Mounted::new(&mounts, &mnt).unwrap();
        check_merged(&mnt, who);
        std::fs::write(mnt.join("written"), b"by the container").unwrap();
        std::fs::remove_file(mnt.join("etc/os-release")).unwrap();
    }
    // The writes are in the active snapshot's own data, not the layers.
    let own = s.unpack_target(NS, "rootfs").unwrap().root;
    assert_eq!(read(&own.join("written")), b"by the container", "{who}");
    assert!(gone(&mnt.join("written")), "{who}: unmounted");
    assert!(s.usage(NS, "rootfs").unwrap().inodes >= 2, "{who}");
    // Views: of the top (overlay: two lowers, no upper) and of the base
    // (overlay: a read-only bind).
    for (key, parent) in [("view-top", "L1"), ("view-base", "L0")] {
        let mounts = s.view(NS, key, Some(parent), Labels::new()).unwrap();
        let mnt = env.mountpoint(&format!("{who}-{key}"));
        let _m = Mounted::new(&mounts, &mnt).unwrap();
        if parent == "L1" {
            check_merged(&mnt, who);
        } else {
            assert_eq!(read(&mnt.join("etc/keep")), b"k", "{who}");
        }
        write_fails_read_only(&mnt, who);
    }
    // A second container on the same image sees none of the first's writes.
    let mounts = s.prepare(NS, "rootfs2", Some("L1"), Labels::new()).unwrap();
    let mnt = env.mountpoint(&format!("{who}-rootfs2"));
    let _m = Mounted::new(&mounts, &mnt).unwrap();
    assert!(gone(&mnt.join("written")), "{who}");
    assert_eq!(read(&mnt.join("etc/os-release")), b"v2", "{who}");
}

#[test]
fn overlay_layers_unpacked_into_upper_dirs_merge_as_the_image() {
    if !require_root() {
        return;
    }
    let env = Env::new("overlay-chain");
    check_chain(&env, &env.overlay());
    // The whiteouts are overlayfs' own in the upper dir of L1.
    let s = env.overlay();
    s.prepare(NS, "probe", Some("L1"), Labels::new()).unwrap();
    let l1 = &s.lowerdirs(NS, "probe").unwrap()[0];
    let wh = std::fs::symlink_metadata(l1.join("etc/keep")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

#[test]
fn native_layers_applied_onto_copies_merge_as_the_image() {
    if !require_root() {
        return;
    }
    let env = Env::new("native-chain");
    check_chain(&env, &env.native());
}

#[test]
fn a_chain_of_150_layers_mounts_through_the_new_mount_api() {
    if !require_root() {
        return;
    }
    let env = Env::new("chain150");
    let s = env.overlay();
    let mut parent: Option<String> = None;
    for i in 0..150 {
        let mut l = Layer::new();
        l.file(&format!("layers/{i}"), format!("layer {i}").as_bytes())
            .file("top", format!("{i}").as_bytes());
        let name = format!("layer-{i:03}");
        unpack(&s, &name, parent.as_deref(), &l.finish());
        parent = Some(name);
    }
    let mounts = s
        .prepare(NS, "rootfs", parent.as_deref(), Labels::new())
        .unwrap();
    let options = mounts[0].options.join(",");
    assert!(
        options.len() > 4096,
        "{} bytes: the long path",
        options.len()
    );
    let mnt = env.mountpoint("rootfs");
    {
        let _m = Mounted::new(&mounts, &mnt).unwrap();
        assert_eq!(read(&mnt.join("top")), b"149");
        for i in 0..150 {
            assert_eq!(
                read(&mnt.join(format!("layers/{i}"))),
                format!("layer {i}").as_bytes()
            );
        }
        std::fs::write(mnt.join("rw"), b"ok").unwrap();
    }
    assert!(gone(&mnt.join("top")), "unmounted");
    // A read-only view over the same 150 lowers.
    let mounts = s
        .view(NS, "view", parent.as_deref(), Labels::new())
        .unwrap();
    let mnt = env.mountpoint("view");
    let _m = Mounted::new(&mounts, &mnt).unwrap();
    assert_eq!(read(&mnt.join("layers/0")), b"layer 0");
    write_fails_read_only(&mnt, "view");
}

#[test]
fn a_mount_that_fails_says_what_and_where() {
    if !require_root() {
        return;
    }
    let env = Env::new("mount-fail");
    let bad = hull_snapshots::Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        target: String::new(),
        options: vec![format!("lowerdir={}", env.dir.join("missing").display())],
    };
    let mnt = env.mountpoint("bad");
    let e = Mounted::new(std::slice::from_ref(&bad), &mnt)
        .err()
        .unwrap();
    assert!(e.to_string().contains(&mnt.display().to_string()), "{e}");
    // The same through the new API (a lowerdir list over a page).
    let long: Vec<String> = (0..100)
        .map(|i| {
            env.dir
                .join(format!("missing-{i:040}"))
                .display()
                .to_string()
        })
        .collect();
    let bad = hull_snapshots::Mount {
        options: vec![format!("lowerdir={}", long.join(":"))],
        ..bad
    };
    let e = Mounted::new(&[bad], &mnt).err().unwrap();
    assert!(e.to_string().contains("lowerdir+"), "{e}");
    hull_snapshots::unmount(&mnt).unwrap(); // not mounted: fine
}
