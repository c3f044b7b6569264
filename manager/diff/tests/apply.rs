//! The applier on well-formed layers: every entry kind with its metadata,
//! replacement rules, whiteouts in both modes, implicit parents, the three
//! compressions and the diff_id.

mod common;

use common::*;
use hull_diff::{apply, ApplyError, ApplyOptions, Whiteouts};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

#[test]
fn every_entry_kind_lands_with_its_owner_mode_and_mtime() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("kinds");
    let root = t.sub("root");
    let mut l = Layer::new();
    l.dir_owned("etc", 0o750, 0, 42, MTIME)
        .file_owned("etc/conf", b"hello", 0o640, 1000, 1001)
        .file_owned("bin/su", b"#!su", 0o4755, 0, 0)
        .file_owned("bin/wall", b"#!wall", 0o2711, 1000, 5)
        .dir("tmp", 0o1777)
        .dir_owned("shared", 0o2775, 0, 100, MTIME)
        .symlink("etc/link", "/etc/conf")
        .hardlink("etc/hard", "etc/conf")
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop0", tar::EntryType::Block, 7, 0)
        .device("run/fifo", tar::EntryType::Fifo, 0, 0);
    remove_mode(&l.finish(), &root).unwrap();

    let conf = lstat(&root.join("etc/conf"));
    assert_eq!(std::fs::read(root.join("etc/conf")).unwrap(), b"hello");
    assert_eq!(
        (conf.mode() & 0o7777, conf.uid(), conf.gid()),
        (0o640, 1000, 1001)
    );
    assert_eq!(conf.mtime() as u64, MTIME);
    assert_eq!(mode(&root.join("bin/su")), 0o4755, "setuid kept");
    let wall = lstat(&root.join("bin/wall"));
    assert_eq!(
        (wall.mode() & 0o7777, wall.uid()),
        (0o2711, 1000),
        "setgid after chown"
    );
    assert_eq!(mode(&root.join("tmp")), 0o1777, "sticky");
    assert_eq!(mode(&root.join("shared")), 0o2775);
    let etc = lstat(&root.join("etc"));
    assert_eq!((etc.mode() & 0o7777, etc.gid()), (0o750, 42));
    assert_eq!(
        etc.mtime() as u64,
        MTIME,
        "dir mtime set after its children"
    );
    let link = lstat(&root.join("etc/link"));
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("/etc/conf")
    );
    assert_eq!(
        (link.uid(), link.mtime() as u64),
        (33, MTIME),
        "lchown/lutimes"
    );
    assert_eq!(lstat(&root.join("etc/hard")).ino(), conf.ino(), "hard link");
    assert_eq!(conf.nlink(), 2);
    let null = lstat(&root.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let loop0 = lstat(&root.join("dev/loop0"));
    assert!(loop0.file_type().is_block_device());
    assert_eq!(loop0.rdev(), libc::makedev(7, 0));
    assert!(lstat(&root.join("run/fifo")).file_type().is_fifo());
    // Parents the layer did not list: root-owned 0755.
    assert_eq!(mode(&root.join("bin")), 0o755);
}

/// A v2 file capability: cap_net_bind_service, effective.
const CAP_NET_BIND: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn xattrs_are_applied_and_capabilities_survive_the_chown() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("xattrs");
    let root = t.sub("root");
    let mut l = Layer::new();
    l.pax(&[
        ("SCHILY.xattr.security.capability", &CAP_NET_BIND),
        ("SCHILY.xattr.user.origin", b"layer"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
    ])
    .file_owned("bin/ping", b"ping", 0o755, 1000, 1000);
    l.pax(&[("SCHILY.xattr.user.dir", b"d")]).dir("data", 0o755);
    remove_mode(&l.finish(), &root).unwrap();
    let ping = root.join("bin/ping");
    assert_eq!(
        getxattr(&ping, "security.capability").unwrap(),
        CAP_NET_BIND
    );
    assert_eq!(getxattr(&ping, "user.origin").unwrap(), b"layer");
    assert_eq!(
        getxattr(&ping, "trusted.overlay.redirect"),
        None,
        "overlay xattrs dropped"
    );
    assert_eq!(lstat(&ping).uid(), 1000);
    assert_eq!(getxattr(&root.join("data"), "user.dir").unwrap(), b"d");
}

#[test]
fn pax_and_gnu_long_names_and_pax_times() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("long");
    let root = t.sub("root");
    let deep = format!("{}/{}", "d".repeat(200), "f".repeat(200));
    let mut l = Layer::new();
    // The builder writes a GNU long name for > 100 bytes.
    l.file(&deep, b"gnu", 0o644);
    let pax_name = format!("{}/{}", "p".repeat(150), "q".repeat(150));
    l.pax(&[("path", pax_name.as_bytes()), ("mtime", b"1500000000.25")])
        .file("short-name-replaced-by-pax", b"pax", 0o644);
    remove_mode(&l.finish(), &root).unwrap();
    assert_eq!(std::fs::read(root.join(&deep)).unwrap(), b"gnu");
    let p = root.join(&pax_name);
    assert_eq!(std::fs::read(&p).unwrap(), b"pax");
    let m = lstat(&p);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 250_000_000));
    assert!(!exists(&root.join("short-name-replaced-by-pax")));
}

#[test]
fn existing_entries_are_replaced_and_directories_merged() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("replace");
    let root = t.sub("root");
    let mut base = Layer::new();
    base.file("a/keep", b"kept", 0o644)
        .file("file-then-dir", b"x", 0o644)
        .dir("dir-then-file", 0o755)
        .file("dir-then-file/child", b"c", 0o644)
        .file("target", b"target data", 0o644)
        .symlink("link-then-file", "target")
        .file("hl", b"shared", 0o644)
        .hardlink("hl2", "hl");
    remove_mode(&base.finish(), &root).unwrap();
    let mut top = Layer::new();
    top.dir("a", 0o700)
        .dir("file-then-dir", 0o755)
        .file("dir-then-file", b"now a file", 0o600)
        .file("link-then-file", b"replaced the link", 0o644)
        .file("hl", b"new content", 0o644);
    remove_mode(&top.finish(), &root).unwrap();
    assert_eq!(
        std::fs::read(root.join("a/keep")).unwrap(),
        b"kept",
        "dir over dir merges"
    );
    assert_eq!(mode(&root.join("a")), 0o700, "and takes the new metadata");
    assert!(lstat(&root.join("file-then-dir")).is_dir());
    assert_eq!(
        std::fs::read(root.join("dir-then-file")).unwrap(),
        b"now a file"
    );
    assert!(!lstat(&root.join("link-then-file")).file_type().is_symlink());
    assert_eq!(
        std::fs::read(root.join("target")).unwrap(),
        b"target data",
        "not written through the link"
    );
    assert_eq!(
        std::fs::read(root.join("hl2")).unwrap(),
        b"shared",
        "other link keeps its data"
    );
    assert_eq!(std::fs::read(root.join("hl")).unwrap(), b"new content");
}

#[test]
fn remove_mode_whiteouts_delete_and_opaque_dirs_keep_only_this_layer() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("remove");
    let root = t.sub("root");
    let mut base = Layer::new();
    base.file("etc/gone", b"1", 0o644)
        .file("var/tree/a/b/c", b"1", 0o644)
        .file("opq/old", b"old", 0o644)
        .file("opq/sub/old", b"old", 0o644)
        .file("opq/sub2/old", b"old", 0o644)
        .file("keep/this", b"k", 0o644);
    remove_mode(&base.finish(), &root).unwrap();
    let mut top = Layer::new();
    top.file("etc/.wh.gone", b"", 0o644)
        .file("var/.wh.tree", b"", 0o644)
        .file("nothere/.wh.x", b"", 0o644)
        .file("opq/new-before", b"n", 0o644)
        .file("opq/sub2/new", b"n", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new-after", b"n", 0o644)
        .file("keep/.wh..wh.plnk", b"", 0o644);
    remove_mode(&top.finish(), &root).unwrap();
    assert!(!exists(&root.join("etc/gone")));
    assert!(exists(&root.join("etc")));
    assert!(!exists(&root.join("var/tree")), "recursive");
    assert!(!exists(&root.join("nothere")), "whiteout creates nothing");
    assert!(!exists(&root.join("opq/old")));
    assert!(!exists(&root.join("opq/sub")));
    assert!(
        !exists(&root.join("opq/sub2/old")),
        "lower data under a kept dir goes too"
    );
    assert!(exists(&root.join("opq/sub2/new")));
    assert!(exists(&root.join("opq/new-before")));
    assert!(exists(&root.join("opq/new-after")));
    assert!(exists(&root.join("keep/this")), "aufs metadata ignored");
    assert!(!exists(&root.join("keep/.wh..wh.plnk")));
}

#[test]
fn overlay_mode_whiteouts_become_devices_and_opaque_xattrs() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("overlay");
    let lower = t.sub("lower");
    let upper = t.sub("upper");
    let mut base = Layer::new();
    base.dir_owned("srv", 0o750, 7, 8, 1_234_567)
        .file("srv/old", b"1", 0o644)
        .dir("opq", 0o755);
    remove_mode(&base.finish(), &lower).unwrap();
    setxattr(&lower.join("srv"), "user.tag", b"lower");
    setxattr(&lower.join("srv"), "trusted.overlay.opaque", b"y");
    let mut top = Layer::new();
    top.file("srv/.wh.old", b"", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("fresh/.wh..wh..opq", b"", 0o644)
        .file("srv/new/file", b"n", 0o644);
    apply_tar(
        &top.finish(),
        &upper,
        Whiteouts::Overlay,
        std::slice::from_ref(&lower),
    )
    .unwrap();
    let wh = lstat(&upper.join("srv/old"));
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0, "whiteout is a 0:0 char device");
    assert_eq!(
        getxattr(&upper.join("opq"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert_eq!(
        getxattr(&upper.join("fresh"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    // srv was not in the layer: copied from the lower, minus overlay's xattrs.
    let srv = lstat(&upper.join("srv"));
    assert_eq!((srv.mode() & 0o7777, srv.uid(), srv.gid()), (0o750, 7, 8));
    assert_eq!(
        srv.mtime(),
        1_234_567,
        "lower mtime, set after the children"
    );
    assert_eq!(getxattr(&upper.join("srv"), "user.tag").unwrap(), b"lower");
    assert_eq!(getxattr(&upper.join("srv"), "trusted.overlay.opaque"), None);
    // srv/new is in no lower: the default.
    let new = lstat(&upper.join("srv/new"));
    assert_eq!((new.mode() & 0o7777, new.uid()), (0o755, 0));
    assert!(!exists(&lower.join("srv/new")), "lower untouched");
}

#[test]
fn implicit_parents_come_from_the_topmost_lower_that_has_them() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("parents");
    let bottom = t.sub("bottom");
    let middle = t.sub("middle");
    let upper = t.sub("upper");
    let mut b = Layer::new();
    b.dir_owned("a", 0o700, 1, 1, MTIME)
        .dir_owned("a/b", 0o711, 2, 2, MTIME);
    remove_mode(&b.finish(), &bottom).unwrap();
    let mut m = Layer::new();
    m.dir_owned("a", 0o750, 3, 3, MTIME);
    remove_mode(&m.finish(), &middle).unwrap();
    let mut top = Layer::new();
    top.file("a/b/c", b"x", 0o644);
    apply_tar(
        &top.finish(),
        &upper,
        Whiteouts::Overlay,
        &[middle.clone(), bottom.clone()],
    )
    .unwrap();
    let a = lstat(&upper.join("a"));
    assert_eq!(
        (a.mode() & 0o7777, a.uid()),
        (0o750, 3),
        "middle is topmost for a"
    );
    let ab = lstat(&upper.join("a/b"));
    assert_eq!(
        (ab.mode() & 0o7777, ab.uid()),
        (0o711, 2),
        "only bottom has a/b"
    );
}

#[test]
fn a_hard_link_to_a_missing_target_fails() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("hl-missing");
    let root = t.sub("root");
    let mut l = Layer::new();
    l.hardlink("x", "not/there");
    let err = remove_mode(&l.finish(), &root).unwrap_err();
    assert!(matches!(err, ApplyError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("not/there"), "{err}");
}

fn sample_tar() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc", 0o755).file("etc/hostname", b"hull\n", 0o644);
    for i in 0..50 {
        l.file(&format!("data/{i}"), &vec![i as u8; 10_000], 0o644);
    }
    let mut tar = l.finish();
    // Writers may pad past the end-of-archive blocks: that is hashed too.
    tar.extend_from_slice(&[0u8; 8192]);
    tar
}

fn check_applied(blob: &[u8], media_type: &str, tar: &[u8]) {
    let t = TempDir::new("compress");
    let root = t.sub("root");
    let opts = ApplyOptions {
        whiteouts: Whiteouts::Remove,
        parents: vec![],
    };
    let applied = apply(blob, media_type, &root, &opts).unwrap();
    assert_eq!(
        applied.diff_id,
        format!("sha256:{}", sha256_hex(tar)),
        "{media_type}"
    );
    assert_eq!(applied.size, tar.len() as u64);
    assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"hull\n");
    assert_eq!(
        std::fs::read(root.join("data/49")).unwrap(),
        vec![49u8; 10_000]
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[test]
fn plain_gzip_and_zstd_layers_give_the_sha256_of_the_uncompressed_tar() {
    if !require_root() {
        return;
    }
    let tar = sample_tar();
    check_applied(&tar, "application/vnd.oci.image.layer.v1.tar", &tar);
    check_applied(
        &gzip(&tar),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &tar,
    );
    check_applied(
        &gzip(&tar),
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        &tar,
    );
    check_applied(
        &zstd(&tar),
        "application/vnd.oci.image.layer.v1.tar+zstd",
        &tar,
    );
    // Ambiguous types: the magic bytes decide.
    check_applied(&gzip(&tar), "", &tar);
    check_applied(&zstd(&tar), "application/octet-stream", &tar);
    check_applied(&tar, "application/octet-stream", &tar);
}

#[test]
fn multi_frame_zstd_and_multi_member_gzip_are_read_whole() {
    if !require_root() {
        return;
    }
    let tar = sample_tar();
    let (a, b) = tar.split_at(tar.len() / 3);
    // A skippable frame between two data frames.
    let mut z = zstd(a);
    z.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    z.extend_from_slice(&zstd(b));
    check_applied(&z, "application/vnd.oci.image.layer.v1.tar+zstd", &tar);
    let mut g = gzip(a);
    g.extend_from_slice(&gzip(b));
    check_applied(&g, "application/vnd.oci.image.layer.v1.tar+gzip", &tar);
}

#[test]
fn mislabelled_truncated_and_garbage_layers_fail() {
    if !require_root() {
        return;
    }
    let tar = sample_tar();
    let t = TempDir::new("bad");
    let opts = ApplyOptions {
        whiteouts: Whiteouts::Remove,
        parents: vec![],
    };
    let run = |blob: &[u8], mt: &str| apply(blob, mt, &t.sub("r"), &opts);
    let e = run(&tar, "application/vnd.oci.image.layer.v1.tar+gzip").unwrap_err();
    assert!(matches!(e, ApplyError::Mislabelled { .. }), "{e}");
    let e = run(&zstd(&tar), "application/vnd.oci.image.layer.v1.tar+gzip").unwrap_err();
    assert!(matches!(e, ApplyError::Mislabelled { .. }), "{e}");
    let e = run(&tar, "application/vnd.oci.image.config.v1+json").unwrap_err();
    assert!(matches!(e, ApplyError::UnsupportedMediaType(_)), "{e}");
    let g = gzip(&tar);
    let e = run(
        &g[..g.len() / 2],
        "application/vnd.oci.image.layer.v1.tar+gzip",
    )
    .unwrap_err();
    assert!(
        matches!(e, ApplyError::Malformed { .. } | ApplyError::Io { .. }),
        "{e}"
    );
    let z = zstd(&tar);
    let e = run(
        &z[..z.len() / 2],
        "application/vnd.oci.image.layer.v1.tar+zstd",
    )
    .unwrap_err();
    assert!(
        matches!(e, ApplyError::Malformed { .. } | ApplyError::Io { .. }),
        "{e}"
    );
    let e = run(&[0x5a; 4096], "application/vnd.oci.image.layer.v1.tar").unwrap_err();
    assert!(matches!(e, ApplyError::Malformed { .. }), "{e}");
    // A header with a broken checksum.
    let mut bad = tar.clone();
    bad[0] ^= 0x01;
    let e = run(&bad, "application/vnd.oci.image.layer.v1.tar").unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn an_empty_layer_applies_nothing_and_hashes_its_end_blocks() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("empty");
    let root = t.sub("root");
    let tar = Layer::new().finish();
    let a = remove_mode(&tar, &root).unwrap();
    assert_eq!(a.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(a.size, 1024);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn copy_tree_keeps_owners_modes_xattrs_times_links_and_nodes() {
    if !require_root() {
        return;
    }
    let t = TempDir::new("copy");
    let src = t.sub("src");
    let dst = t.sub("dst");
    let mut l = Layer::new();
    l.dir_owned("d", 0o2750, 5, 6, MTIME)
        .pax(&[("SCHILY.xattr.security.capability", &CAP_NET_BIND)])
        .file_owned("d/cap", b"bin", 0o4755, 0, 0)
        .pax(&[("SCHILY.xattr.user.k", b"v")])
        .file_owned("d/f", b"data", 0o640, 7, 8)
        .hardlink("d/f2", "d/f")
        .symlink("d/l", "../d/f")
        .device("d/null", tar::EntryType::Char, 1, 3)
        .device("d/fifo", tar::EntryType::Fifo, 0, 0)
        .dir("sticky", 0o1777);
    remove_mode(&l.finish(), &src).unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
    hull_diff::copy_tree(&src, &dst).unwrap();
    assert_eq!(fingerprint(&src).len(), fingerprint(&dst).len());
    for (a, b) in fingerprint(&src).iter().zip(fingerprint(&dst)) {
        let strip = |s: &str, p: &Path| s.replacen(&p.display().to_string(), "", 1);
        assert_eq!(strip(a, &src), strip(&b, &dst));
    }
    assert_eq!(
        getxattr(&dst.join("d/cap"), "security.capability").unwrap(),
        CAP_NET_BIND
    );
    assert_eq!(getxattr(&dst.join("d/f"), "user.k").unwrap(), b"v");
    assert_eq!(
        lstat(&dst.join("d/f")).ino(),
        lstat(&dst.join("d/f2")).ino()
    );
    assert_ne!(lstat(&dst.join("d/f")).ino(), lstat(&src.join("d/f")).ino());
}
