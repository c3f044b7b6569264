//! A corpus of hostile layers, built here: each is refused or confined to
//! the root, and nothing outside the root changes (a canary tree beside the
//! root is fingerprinted before and after, and so is /etc/passwd).

mod common;

use common::*;
use hull_diff::{ApplyError, Whiteouts};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::EntryType as T;

/// A root with a canary tree beside it; on drop, checks the canary and
/// /etc/passwd are exactly as they were.
struct Arena {
    tmp: TempDir,
    root: PathBuf,
    canary: PathBuf,
    before: Vec<String>,
    passwd: (i64, i64, String),
}

fn passwd_state() -> (i64, i64, String) {
    let m = lstat(Path::new("/etc/passwd"));
    let data = std::fs::read("/etc/passwd").unwrap();
    (m.mtime(), m.ctime(), sha256_hex(&data))
}

impl Arena {
    fn new(name: &str) -> Arena {
        let tmp = TempDir::new(name);
        let root = tmp.sub("root");
        let canary = tmp.sub("canary");
        std::fs::write(canary.join("x"), b"canary").unwrap();
        std::fs::create_dir(canary.join("sub")).unwrap();
        std::fs::write(canary.join("sub/file"), b"deep").unwrap();
        std::fs::write(tmp.path().join("x"), b"beside the root").unwrap();
        let before = fingerprint(tmp.path());
        Arena {
            before: without_root(before, &root),
            tmp,
            root,
            canary,
            passwd: passwd_state(),
        }
    }

    fn check_outside_untouched(&self) {
        let after = without_root(fingerprint(self.tmp.path()), &self.root);
        // The temp dir's own line changes only if something was created or
        // deleted in it; the root's mtime may change (entries land there).
        assert_eq!(self.before, after, "something outside the root changed");
        assert_eq!(self.passwd, passwd_state(), "/etc/passwd changed");
        assert!(!Path::new("/pwned").exists());
        assert!(!Path::new("/etc/pwned").exists());
    }
}

/// The fingerprint without the root and what is under it.
fn without_root(lines: Vec<String>, root: &Path) -> Vec<String> {
    let r = root.display().to_string();
    lines.into_iter().filter(|l| !l.starts_with(&r)).collect()
}

fn refused_or_ok(r: Result<hull_diff::Applied, ApplyError>) -> Option<ApplyError> {
    r.err()
}

#[test]
fn dot_dot_and_absolute_names_land_inside_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("dotdot");
    let mut l = Layer::new();
    l.raw(b"../x", T::Regular, None, b"evil")
        .raw(b"../../../../../../pwned", T::Regular, None, b"evil")
        .raw(b"/etc/pwned", T::Regular, None, b"evil")
        .raw(b"a/../../../canary/x", T::Regular, None, b"evil")
        .raw(b"./", T::Directory, None, b"")
        .raw(b"..", T::Directory, None, b"")
        .raw(b"../", T::Regular, None, b"");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert_eq!(std::fs::read(a.root.join("x")).unwrap(), b"evil");
    assert!(a.root.join("pwned").exists());
    assert!(a.root.join("etc/pwned").exists());
    assert_eq!(std::fs::read(a.root.join("canary/x")).unwrap(), b"evil");
    a.check_outside_untouched();
}

#[test]
fn symlinks_to_the_host_are_followed_only_inside_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("symlinks");
    let canary = a.canary.display().to_string();
    let mut l = Layer::new();
    l.symlink("slash", "/")
        .raw(b"slash/pwned", T::Regular, None, b"through /")
        .symlink("up", "../../../../../../..")
        .raw(b"up/up/pwned2", T::Regular, None, b"through ..")
        .symlink("abs-canary", &canary)
        .symlink("rel-canary", "../canary");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert_eq!(std::fs::read(a.root.join("pwned")).unwrap(), b"through /");
    assert_eq!(std::fs::read(a.root.join("pwned2")).unwrap(), b"through ..");
    // "etc" -> /etc resolves to the root's etc, which does not exist: the
    // parent cannot be created over the dangling link, so the entry fails.
    let mut l = Layer::new();
    l.symlink("etc", "/etc")
        .raw(b"etc/passwd", T::Regular, None, b"root::0:0::/:/bin/sh\n");
    let e = refused_or_ok(remove_mode(&l.finish(), &a.root));
    assert!(matches!(e, Some(ApplyError::Refused { .. })), "{e:?}");
    // Writing through symlinks to the canary: refused (they dangle inside
    // the root), never reaching the real canary.
    for name in [
        &b"abs-canary/x"[..],
        b"rel-canary/x",
        b"rel-canary/sub/file",
    ] {
        let mut l = Layer::new();
        l.raw(name, T::Regular, None, b"evil");
        let e = refused_or_ok(remove_mode(&l.finish(), &a.root));
        assert!(matches!(e, Some(ApplyError::Refused { .. })), "{e:?}");
    }
    // A directory entry over a symlink to the host replaces the link and
    // chmods nothing outside.
    let mut l = Layer::new();
    l.dir("rel-canary", 0o777)
        .raw(b"rel-canary/x", T::Regular, None, b"mine");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert!(lstat(&a.root.join("rel-canary")).is_dir());
    // A file entry named like the symlink replaces it, not its target.
    let mut l = Layer::new();
    l.file("etc", b"not a dir", 0o777);
    remove_mode(&l.finish(), &a.root).unwrap();
    assert!(lstat(&a.root.join("etc")).is_file());
    a.check_outside_untouched();
}

#[test]
fn a_file_through_a_symlinked_directory_stays_in_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("through-dir");
    let mut l = Layer::new();
    l.dir("realetc", 0o755).symlink("etc", "/realetc").raw(
        b"etc/passwd",
        T::Regular,
        None,
        b"mine",
    );
    remove_mode(&l.finish(), &a.root).unwrap();
    assert_eq!(
        std::fs::read(a.root.join("realetc/passwd")).unwrap(),
        b"mine"
    );
    a.check_outside_untouched();
}

#[test]
fn hard_links_to_host_files_are_refused() {
    if !require_root() {
        return;
    }
    let a = Arena::new("hardlinks");
    for target in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "../canary/x",
        "../x",
    ] {
        let mut l = Layer::new();
        l.raw(b"stolen", T::Link, Some(target.as_bytes()), b"");
        let e = remove_mode(&l.finish(), &a.root).unwrap_err();
        assert!(matches!(e, ApplyError::Refused { .. }), "{target}: {e}");
    }
    // Through a symlink to the host: the symlink itself is resolved in the
    // root, so the target is missing.
    let mut l = Layer::new();
    l.symlink("hostetc", "/etc")
        .raw(b"stolen", T::Link, Some(b"hostetc/passwd"), b"");
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    assert!(matches!(e, ApplyError::Refused { .. }), "{e}");
    // A hard link to a symlink links the symlink, never its target.
    let mut l = Layer::new();
    l.symlink("pw", "/etc/passwd")
        .raw(b"pw2", T::Link, Some(b"pw"), b"");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert!(lstat(&a.root.join("pw2")).file_type().is_symlink());
    assert!(!a.root.join("stolen").exists());
    a.check_outside_untouched();
}

#[test]
fn whiteouts_of_outside_paths_delete_only_inside_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("whiteouts");
    std::fs::create_dir_all(a.root.join("etc")).unwrap();
    std::fs::write(a.root.join("etc/passwd"), b"image's own").unwrap();
    std::fs::write(a.root.join("x"), b"image's x").unwrap();
    let mut l = Layer::new();
    l.raw(b"../.wh.x", T::Regular, None, b"")
        .raw(b"../../etc/.wh.passwd", T::Regular, None, b"")
        .raw(b"../canary/.wh.sub", T::Regular, None, b"")
        .symlink("link", "/")
        .raw(b"link/.wh.canary", T::Regular, None, b"");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert!(!a.root.join("x").exists());
    assert!(!a.root.join("etc/passwd").exists());
    for bad in [&b".wh.."[..], b"dir/.wh..", b".wh."] {
        let mut l = Layer::new();
        l.raw(bad, T::Regular, None, b"");
        let e = remove_mode(&l.finish(), &a.root).unwrap_err();
        assert!(matches!(e, ApplyError::Refused { .. }), "{e}");
    }
    // Overlay mode: the whiteout device lands in the root.
    let mut l = Layer::new();
    l.raw(b"../.wh.x", T::Regular, None, b"")
        .raw(b"../../etc/.wh.passwd", T::Regular, None, b"");
    apply_tar(&l.finish(), &a.root, Whiteouts::Overlay, &[]).unwrap();
    assert!(lstat(&a.root.join("x")).file_type().is_char_device());
    assert!(lstat(&a.root.join("etc/passwd"))
        .file_type()
        .is_char_device());
    a.check_outside_untouched();
}

#[test]
fn device_nodes_are_created_inside_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("devices");
    let mut l = Layer::new();
    l.device("dev/null", T::Char, 1, 3)
        .device("dev/sda", T::Block, 8, 0)
        .symlink("hostdev", "/dev")
        .device("hostdev/kmsg2", T::Char, 1, 11)
        .raw(b"../../dev/evil", T::Char, None, b"");
    remove_mode(&l.finish(), &a.root).unwrap();
    assert!(lstat(&a.root.join("dev/sda")).file_type().is_block_device());
    assert!(lstat(&a.root.join("dev/kmsg2"))
        .file_type()
        .is_char_device());
    assert!(lstat(&a.root.join("dev/evil")).file_type().is_char_device());
    assert!(!Path::new("/dev/kmsg2").exists() && !Path::new("/dev/evil").exists());
    a.check_outside_untouched();
}

fn lying_header(kind: T, name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_path(name).unwrap();
    h.set_cksum();
    h
}

#[test]
fn sizes_the_stream_does_not_hold_fail_without_buffering() {
    if !require_root() {
        return;
    }
    let a = Arena::new("sizes");
    const TEN_GB: u64 = 10 << 30;
    // A regular file claiming 10 GB followed by 1 KB.
    let mut l = Layer::new();
    l.raw_header(&lying_header(T::Regular, "big", TEN_GB), &[7u8; 1024]);
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    match &e {
        ApplyError::Truncated {
            expected, actual, ..
        } => assert_eq!((*expected, *actual), (TEN_GB, 1024 + 1024)),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("\"big\""), "{e}");
    assert!(
        lstat(&a.root.join("big")).blocks() < 64,
        "only what the stream held"
    );
    // A GNU sparse entry claiming 10 GB: refused before any data.
    let mut l = Layer::new();
    let mut h = lying_header(T::GNUSparse, "sparse", 512);
    h.as_gnu_mut().unwrap().set_real_size(TEN_GB);
    h.set_cksum();
    l.raw_header(&h, &[0u8; 512]);
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    assert!(e.to_string().contains("sparse"), "{e}");
    assert!(!a.root.join("sparse").exists());
    // PAX sparse records: refused too.
    let mut l = Layer::new();
    l.pax(&[("GNU.sparse.realsize", b"10737418240")])
        .file("pax-sparse", b"", 0o644);
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    assert!(e.to_string().contains("sparse"), "{e}");
    // A GNU long name (and a PAX header) claiming 10 GB: refused at the
    // header, not read into memory.
    for kind in [T::GNULongName, T::XHeader, T::GNULongLink] {
        let mut l = Layer::new();
        l.raw_header(&lying_header(kind, "././@LongLink", TEN_GB), &[b'a'; 4096]);
        let e = remove_mode(&l.finish(), &a.root).unwrap_err();
        assert!(e.to_string().contains("claims"), "{kind:?}: {e}");
    }
    a.check_outside_untouched();
}

#[test]
fn names_over_the_limits_are_refused() {
    if !require_root() {
        return;
    }
    let a = Arena::new("limits");
    let mut l = Layer::new();
    l.pax(&[("path", "n".repeat(256).as_bytes())])
        .file("x", b"", 0o644);
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    assert!(e.to_string().contains("255"), "{e}");
    let long = "d/".repeat(2100);
    let mut l = Layer::new();
    l.pax(&[("path", long.as_bytes())]).file("x", b"", 0o644);
    let e = remove_mode(&l.finish(), &a.root).unwrap_err();
    assert!(e.to_string().contains("4096"), "{e}");
    a.check_outside_untouched();
}

/// A tmpfs on a directory of ours, unmounted on drop (also on a panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        let c = |s: &[u8]| std::ffi::CString::new(s).unwrap();
        use std::os::unix::ffi::OsStrExt;
        let (src, dst, ty, data) = (
            c(b"hull-test"),
            c(dir.as_os_str().as_bytes()),
            c(b"tmpfs"),
            c(b"size=1g,mode=0755"),
        );
        // SAFETY: valid C strings for the duration of the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                ty.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mounting a tmpfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; the mount is ours.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_tar_bomb_of_100k_empty_files_stays_in_the_root() {
    if !require_root() {
        return;
    }
    let a = Arena::new("bomb");
    // On a tmpfs: creating 100k inodes on this machine's disk takes a
    // minute for tar -x as for us, and the point here is confinement.
    let _tmpfs = Tmpfs::mount(&a.root);
    let mut l = Layer::new();
    for d in 0..100 {
        for f in 0..1000 {
            l.file(&format!("bomb/{d}/{f}"), b"", 0o644);
        }
    }
    let start = std::time::Instant::now();
    remove_mode(&l.finish(), &a.root).unwrap();
    eprintln!("100k files in {:?}", start.elapsed());
    assert_eq!(
        std::fs::read_dir(a.root.join("bomb/99")).unwrap().count(),
        1000
    );
    a.check_outside_untouched();
}

#[test]
fn the_true_diff_id_is_returned_for_the_caller_to_compare() {
    if !require_root() {
        return;
    }
    let a = Arena::new("diffid");
    let mut l = Layer::new();
    l.file("f", b"content", 0o644);
    let tar = l.finish();
    let claimed = format!("sha256:{}", "0".repeat(64));
    let applied = remove_mode(&tar, &a.root).unwrap();
    assert_eq!(applied.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_ne!(applied.diff_id, claimed);
    a.check_outside_untouched();
}
