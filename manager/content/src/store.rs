//! The content store on disk, laid out as containerd's:
//!
//! ```text
//! <root>/blobs/sha256/<hex>        complete, verified blobs (read-only)
//! <root>/ingest/<sha256(ref)>/     one in-progress write:
//!     data  ref  total  expected  lock
//! ```
//!
//! A blob becomes visible only by `rename(2)` of a fully written, fsynced
//! and digest-verified ingest file, so readers never see partial or wrong
//! content, and a crash leaves at most an ingest that the next writer for
//! the same ref resumes (its hash state is rebuilt from the data so far).

use crate::digest::Digest;
use sha2::Digest as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("content {0} not found")]
    NotFound(Digest),
    #[error("no ingest for ref {0:?}")]
    NoIngest(String),
    #[error("ref {0:?} is being written by another writer: wait for it or abort it")]
    Locked(String),
    #[error("content for ref {reference:?} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        reference: String,
        expected: u64,
        actual: u64,
    },
    #[error("content for ref {reference:?} has digest {actual}, expected {expected}: the data was discarded")]
    DigestMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// A committed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
}

/// An in-progress write (`hullctl content` and pull progress show these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub reference: String,
    /// Bytes written so far: where a resumed download continues.
    pub offset: u64,
    pub total: Option<u64>,
    pub expected: Option<Digest>,
}

/// The seam the manager's services use, so they can be tested on a store in
/// a temporary directory (or a fake).
pub trait ContentStore {
    fn info(&self, digest: &Digest) -> Result<Info>;
    fn open(&self, digest: &Digest) -> Result<File>;
    fn list(&self) -> Result<Vec<Info>>;
    fn delete(&self, digest: &Digest) -> Result<()>;
    /// Start or resume the write for `reference` (one writer per ref).
    fn writer(
        &self,
        reference: &str,
        total: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Writer>;
    fn status(&self, reference: &str) -> Result<Status>;
    fn statuses(&self) -> Result<Vec<Status>>;
    /// Drop an ingest and its data.
    fn abort(&self, reference: &str) -> Result<()>;
}

/// The store in a directory.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalStore> {
        let root = root.into();
        for sub in ["blobs/sha256", "ingest"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        Ok(LocalStore { root })
    }

    /// When a blob was written (its data's mtime): garbage collection spares
    /// young unreferenced blobs, which may be a pull's, about to be recorded.
    pub fn blob_modified(&self, digest: &Digest) -> Result<std::time::SystemTime> {
        let path = self.blob_path(digest);
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io_err("reading", &path))
    }

    /// When an ingest last received data.
    pub fn ingest_modified(&self, reference: &str) -> Result<std::time::SystemTime> {
        let path = self.ingest_dir(reference).join("data");
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io_err("reading", &path))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn ingest_dir(&self, reference: &str) -> PathBuf {
        // The ref is caller-chosen text: hash it into a safe directory name.
        self.root
            .join("ingest")
            .join(Digest::of(reference.as_bytes()).hex())
    }

    fn read_status(&self, dir: &Path) -> Result<Status> {
        let text = |name: &str| fs::read_to_string(dir.join(name)).ok();
        let reference = text("ref").ok_or_else(|| Error::NoIngest(dir.display().to_string()))?;
        let offset = fs::metadata(dir.join("data")).map(|m| m.len()).unwrap_or(0);
        Ok(Status {
            reference,
            offset,
            total: text("total").and_then(|t| t.trim().parse().ok()),
            expected: text("expected").and_then(|t| t.trim().parse().ok()),
        })
    }
}

/// Write `data` beside `path` and rename it over (small metadata files).
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming", path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

impl ContentStore for LocalStore {
    fn info(&self, digest: &Digest) -> Result<Info> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Info {
                digest: digest.clone(),
                size: m.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(digest.clone())),
            Err(e) => Err(io_err("stat", &self.blob_path(digest))(e)),
        }
    }

    fn open(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(digest.clone()),
            _ => io_err("opening", &self.blob_path(digest))(e),
        })
    }

    fn list(&self) -> Result<Vec<Info>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Anything that is not a canonical digest is not content.
            if let Ok(digest) = format!("sha256:{name}").parse::<Digest>() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(Info { digest, size });
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(digest.clone())),
            Err(e) => Err(io_err("removing", &self.blob_path(digest))(e)),
        }
    }

    fn writer(
        &self,
        reference: &str,
        total: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Writer> {
        let dir = self.ingest_dir(reference);
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let lock = File::create(dir.join("lock")).map_err(io_err("creating", &dir))?;
        // One writer per ref, across processes; released when `lock` drops.
        // SAFETY: flock on a file we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::Locked(reference.to_string()));
        }
        write_atomic(&dir.join("ref"), reference.as_bytes())?;
        if let Some(t) = total {
            write_atomic(&dir.join("total"), t.to_string().as_bytes())?;
        }
        if let Some(d) = expected {
            write_atomic(&dir.join("expected"), d.to_string().as_bytes())?;
        }
        let data_path = dir.join("data");
        let mut data = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&data_path)
            .map_err(io_err("opening", &data_path))?;
        // Resume: the hash must cover what an earlier writer already wrote.
        let mut hasher = sha2::Sha256::new();
        let mut offset = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = data.read(&mut buf).map_err(io_err("reading", &data_path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(Writer {
            reference: reference.to_string(),
            dir,
            blobs: self.root.join("blobs/sha256"),
            data,
            hasher,
            offset,
            _lock: lock,
        })
    }

    fn status(&self, reference: &str) -> Result<Status> {
        let dir = self.ingest_dir(reference);
        if !dir.join("ref").exists() {
            return Err(Error::NoIngest(reference.to_string()));
        }
        self.read_status(&dir)
    }

    fn statuses(&self) -> Result<Vec<Status>> {
        let dir = self.root.join("ingest");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            if let Ok(s) = self.read_status(&entry.path()) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    fn abort(&self, reference: &str) -> Result<()> {
        let dir = self.ingest_dir(reference);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NoIngest(reference.to_string()))
            }
            Err(e) => Err(io_err("removing", &dir)(e)),
        }
    }
}

/// One in-progress write; dropping it without `commit` keeps the ingest for
/// a later resume.
pub struct Writer {
    reference: String,
    dir: PathBuf,
    blobs: PathBuf,
    data: File,
    hasher: sha2::Sha256,
    offset: u64,
    _lock: File,
}

impl Writer {
    /// Bytes written so far (after a resume: where to continue).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hash(&self.hasher.clone().finalize())
    }

    /// The file the data goes to (readable while it is written; after
    /// commit it is renamed to the blob's path).
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Throw away what was written and start from byte 0 (a server that
    /// ignored a resume request sends the whole blob again).
    pub fn restart(&mut self) -> Result<()> {
        let data_path = self.dir.join("data");
        self.data
            .set_len(0)
            .map_err(io_err("truncating", &data_path))?;
        io::Seek::seek(&mut self.data, io::SeekFrom::Start(0))
            .map_err(io_err("truncating", &data_path))?;
        self.hasher = sha2::Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Verify and publish: the size and digest must match, the data is
    /// fsynced, and the blob appears atomically. On a digest mismatch the
    /// data is discarded (resuming it could only reproduce the mismatch).
    pub fn commit(mut self, size: u64, expected: &Digest) -> Result<Info> {
        let data_path = self.dir.join("data");
        self.data.flush().map_err(io_err("writing", &data_path))?;
        if self.offset != size {
            return Err(Error::SizeMismatch {
                reference: self.reference.clone(),
                expected: size,
                actual: self.offset,
            });
        }
        let actual = Digest::from_hash(&self.hasher.clone().finalize());
        if &actual != expected {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(Error::DigestMismatch {
                reference: self.reference.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        self.data
            .sync_all()
            .map_err(io_err("syncing", &data_path))?;
        let target = self.blobs.join(expected.hex());
        fs::rename(&data_path, &target).map_err(io_err("publishing", &target))?;
        sync_dir(&self.blobs)?;
        let _ = fs::remove_dir_all(&self.dir);
        Ok(Info {
            digest: actual,
            size,
        })
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.data.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}
