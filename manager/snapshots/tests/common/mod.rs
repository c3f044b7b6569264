//! Helpers for the snapshotter tests: a temp root with its own metadata DB,
//! both snapshotters over it, and layers built in memory.
#![allow(dead_code)]

use hull_metadata::Metadata;
use hull_snapshots::{Labels, Native, Overlay, Snapshotter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mounts, owners and devices need root. In CI (`CI` set) a run without
/// root is a failure, not a skip.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("privileged test skipped in CI: hull-snapshots' mount tests must run as root");
    }
    eprintln!("SKIP: test needs root");
    false
}

pub const NS: &str = "default";

/// A root directory under /tmp with a metadata DB, removed on drop (after
/// the snapshotters and any mounts, which the test drops first).
pub struct Env {
    pub dir: PathBuf,
    pub meta: Arc<Metadata>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hull-snap-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = Arc::new(Metadata::open(&dir.join("meta.db")).unwrap());
        meta.create_namespace(NS).unwrap();
        Env { dir, meta }
    }

    pub fn overlay(&self) -> Overlay {
        Overlay::new(self.meta.clone(), &self.dir).unwrap()
    }

    pub fn native(&self) -> Native {
        Native::new(self.meta.clone(), &self.dir).unwrap()
    }

    /// A fresh directory to mount on.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        let p = self.dir.join("mnt").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Never remove through a mount left by a failed test: unmount
        // anything under our dir first (ours only, deepest first).
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in ours {
            let _ = hull_snapshots::unmount(Path::new(p));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A layer as a tar in memory.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64, uid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_600_000_000);
        h
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64, 0);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32, uid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0, uid);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let p = Path::new(path);
        let name = format!(".wh.{}", p.file_name().unwrap().to_str().unwrap());
        let wh = p.with_file_name(name);
        self.file(wh.to_str().unwrap(), b"")
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Unpack `layer` on `parent` as containerd's unpacker does: prepare,
/// apply into the unpack target, commit as `name`.
pub fn unpack(s: &dyn Snapshotter, name: &str, parent: Option<&str>, layer: &[u8]) {
    let key = format!("extract-{name}");
    s.prepare(NS, &key, parent, Labels::new()).unwrap();
    let target = s.unpack_target(NS, &key).unwrap();
    hull_diff::apply(
        layer,
        "application/vnd.oci.image.layer.v1.tar",
        &target.root,
        &target.options,
    )
    .unwrap();
    s.commit(NS, name, &key, Labels::new()).unwrap();
}
