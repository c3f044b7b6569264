//! The daemon's side of unpacking while pulling: layers applied straight
//! into a snapshotter's directories (hull-diff), each as an `extract-…`
//! snapshot that is committed under its chain ID once its diff_id checks
//! out. The pull's lease holds every snapshot it makes until the image
//! record (and the config's `containerd.io/gc.ref.snapshot.*` label) does.

use hull_images::pull::LayerUnpacker;
use hull_metadata::{LeaseResource, Metadata};
use hull_snapshots::Snapshotter;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct SnapshotUnpacker {
    pub snapshotter: Arc<dyn Snapshotter>,
    pub meta: Arc<Metadata>,
    pub ns: String,
    pub lease: String,
}

/// Counts what the applier reads (the compressed layer).
struct Counting<'a, R> {
    inner: R,
    read: u64,
    tell: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.tell)(self.read);
        Ok(n)
    }
}

impl SnapshotUnpacker {
    fn lease(&self, key: &str) -> Result<(), String> {
        self.meta
            .add_lease_typed(
                &self.ns,
                &self.lease,
                &LeaseResource {
                    kind: format!("snapshots/{}", self.snapshotter.name()),
                    id: key.to_string(),
                },
            )
            .map_err(|e| e.to_string())
    }

    fn apply(
        &self,
        key: &str,
        layer: &mut dyn Read,
        media_type: &str,
        diff_id: &str,
        applied: &dyn Fn(u64),
    ) -> Result<(), String> {
        let target = self
            .snapshotter
            .unpack_target(&self.ns, key)
            .map_err(|e| e.to_string())?;
        let reader = Counting {
            inner: layer,
            read: 0,
            tell: applied,
        };
        let done = hull_diff::apply(reader, media_type, &target.root, &target.options)
            .map_err(|e| e.to_string())?;
        if done.diff_id != diff_id {
            return Err(format!(
                "the layer's content has diff_id {}, the image config says {diff_id}: the image is inconsistent",
                done.diff_id
            ));
        }
        Ok(())
    }
}

impl SnapshotUnpacker {
    /// Remove a snapshot whose unpack failed. On a full disk the metadata
    /// DB cannot record the removal until some space is free, so the
    /// half-applied files go first and the removal is tried once more.
    fn remove_failed(&self, key: &str) {
        let Err(first) = self.snapshotter.remove(&self.ns, key) else {
            return;
        };
        if let Ok(target) = self.snapshotter.unpack_target(&self.ns, key) {
            if let Ok(entries) = std::fs::read_dir(&target.root) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
            }
        }
        if let Err(again) = self.snapshotter.remove(&self.ns, key) {
            // hulld's start removes interrupted `extract-` snapshots.
            tracing::warn!(
                "removing the failed unpack snapshot {key:?}: {first}; after emptying it: {again}"
            );
        }
    }
}

impl LayerUnpacker for SnapshotUnpacker {
    fn snapshotter(&self) -> &str {
        self.snapshotter.name()
    }

    fn exists(&self, chain_id: &str) -> Result<bool, String> {
        match self.snapshotter.stat(&self.ns, chain_id) {
            Ok(info) if info.kind == hull_snapshots::Kind::Committed => {
                // Protect it until the image is recorded.
                self.lease(chain_id)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(hull_snapshots::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    fn unpack(
        &self,
        layer: &mut dyn Read,
        media_type: &str,
        parent: Option<&str>,
        chain_id: &str,
        diff_id: &str,
        applied: &dyn Fn(u64),
    ) -> Result<(), String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let key = format!(
            "extract-{}-{} {chain_id}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let labels = [(
            "containerd.io/snapshot.ref".to_string(),
            chain_id.to_string(),
        )]
        .into();
        self.lease(&key)?;
        self.snapshotter
            .prepare(&self.ns, &key, parent, labels)
            .map_err(|e| e.to_string())?;
        let result = self
            .apply(&key, layer, media_type, diff_id, applied)
            .and_then(|()| {
                self.lease(chain_id)?;
                match self
                    .snapshotter
                    .commit(&self.ns, chain_id, &key, Default::default())
                {
                    Ok(()) => Ok(()),
                    // Another pull committed the same layer meanwhile.
                    Err(hull_snapshots::Error::AlreadyExists { .. }) => Err(String::new()),
                    Err(e) => Err(e.to_string()),
                }
            });
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.remove_failed(&key);
                if e.is_empty() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}
