//! The content store's guarantees, on a store in a temporary directory.

use hull_content::{ContentStore, Digest, Error, LocalStore};
use std::io::{Read, Write};
use std::path::PathBuf;

struct TempRoot(PathBuf);

impl TempRoot {
    fn new(name: &str) -> TempRoot {
        let dir = std::env::temp_dir().join(format!("hull-content-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempRoot(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_all(store: &LocalStore, d: &Digest) -> Vec<u8> {
    let mut v = Vec::new();
    store.open(d).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn written_content_is_visible_only_after_a_verified_commit() {
    let root = TempRoot::new("commit");
    let store = LocalStore::open(&root.0).unwrap();
    let data = b"layer bytes".repeat(1000);
    let digest = Digest::of(&data);
    let mut w = store
        .writer("pull-1", Some(data.len() as u64), Some(&digest))
        .unwrap();
    w.write_all(&data).unwrap();
    assert!(
        matches!(store.info(&digest), Err(Error::NotFound(_))),
        "visible before commit"
    );
    assert_eq!(store.status("pull-1").unwrap().offset, data.len() as u64);
    let info = w.commit(data.len() as u64, &digest).unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(read_all(&store, &digest), data);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(
        store.statuses().unwrap().is_empty(),
        "ingest left after commit"
    );
}

#[test]
fn wrong_digest_or_size_never_becomes_visible() {
    let root = TempRoot::new("mismatch");
    let store = LocalStore::open(&root.0).unwrap();
    let claimed = Digest::of(b"what the registry said");
    let mut w = store.writer("bad", None, Some(&claimed)).unwrap();
    w.write_all(b"tampered bytes").unwrap();
    match w.commit(14, &claimed) {
        Err(Error::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::of(b"tampered bytes"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(store.list().unwrap().is_empty());
    assert!(
        store.statuses().unwrap().is_empty(),
        "bad data kept for resume"
    );

    let good = Digest::of(b"abc");
    let mut w = store.writer("short", None, None).unwrap();
    w.write_all(b"ab").unwrap();
    assert!(matches!(
        w.commit(3, &good),
        Err(Error::SizeMismatch { actual: 2, .. })
    ));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn an_interrupted_write_resumes_where_it_stopped() {
    let root = TempRoot::new("resume");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of(&data);
    {
        let store = LocalStore::open(&root.0).unwrap();
        let mut w = store
            .writer("layer", Some(data.len() as u64), Some(&digest))
            .unwrap();
        w.write_all(&data[..77_777]).unwrap();
        // Dropped without commit: as if the daemon died mid-download.
    }
    let store = LocalStore::open(&root.0).unwrap();
    let status = store.status("layer").unwrap();
    assert_eq!(
        (status.offset, status.total),
        (77_777, Some(data.len() as u64))
    );
    assert_eq!(status.expected.as_ref(), Some(&digest));
    let mut w = store.writer("layer", None, None).unwrap();
    assert_eq!(w.offset(), 77_777);
    w.write_all(&data[77_777..]).unwrap();
    w.commit(data.len() as u64, &digest).unwrap();
    assert_eq!(read_all(&store, &digest), data);
}

#[test]
fn one_writer_per_ref() {
    let root = TempRoot::new("lock");
    let store = LocalStore::open(&root.0).unwrap();
    let _first = store.writer("same", None, None).unwrap();
    assert!(matches!(
        store.writer("same", None, None),
        Err(Error::Locked(_))
    ));
    assert!(store.writer("other", None, None).is_ok());
}

#[test]
fn delete_abort_and_unknown_content() {
    let root = TempRoot::new("delete");
    let store = LocalStore::open(&root.0).unwrap();
    let d = Digest::of(b"x");
    let mut w = store.writer("x", None, None).unwrap();
    w.write_all(b"x").unwrap();
    w.commit(1, &d).unwrap();
    store.delete(&d).unwrap();
    assert!(matches!(store.delete(&d), Err(Error::NotFound(_))));
    assert!(matches!(store.open(&d), Err(Error::NotFound(_))));
    let w = store.writer("gone", None, None).unwrap();
    drop(w);
    store.abort("gone").unwrap();
    assert!(matches!(store.status("gone"), Err(Error::NoIngest(_))));
    // Stray files in the blob directory are not content.
    std::fs::write(root.0.join("blobs/sha256/not-a-digest"), b"junk").unwrap();
    assert!(store.list().unwrap().is_empty());
}
