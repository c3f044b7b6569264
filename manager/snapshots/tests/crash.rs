//! Crash safety for real: a worker process creates, commits and removes
//! snapshots in a loop and is killed with SIGKILL at a random moment.
//! Afterwards every record still has its data directory, and cleanup()
//! removes exactly the directories no record names.

mod common;

use common::NS;
use hull_metadata::Metadata;
use hull_snapshots::{Labels, Native, Overlay, Snapshotter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const DIR_VAR: &str = "HULL_SNAPSHOTS_CRASH_DIR";

fn snapshotters(meta: &Arc<Metadata>, root: &Path) -> Vec<Box<dyn Snapshotter>> {
    vec![
        Box::new(Native::new(meta.clone(), root).unwrap()),
        Box::new(Overlay::new(meta.clone(), root).unwrap()),
    ]
}

/// The worker: runs until killed (or 30 s, should the parent die first).
#[test]
#[ignore = "started by sigkill_leaves_only_directories_cleanup_removes"]
fn crash_worker() {
    let Some(root) = std::env::var_os(DIR_VAR).map(PathBuf::from) else {
        return;
    };
    let meta = Arc::new(Metadata::open(&root.join("meta.db")).unwrap());
    let all = snapshotters(&meta, &root);
    // Keys unique to this run: earlier killed runs left theirs.
    let run = std::process::id();
    let start = std::time::Instant::now();
    for i in 0u64.. {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        for s in &all {
            let key = format!("{run}-w{i}");
            s.prepare(NS, &key, Some("base"), Labels::new()).unwrap();
            if i % 3 == 0 {
                s.commit(NS, &format!("{run}-c{i}"), &key, Labels::new())
                    .unwrap();
            } else if i % 3 == 1 {
                s.remove(NS, &key).unwrap();
            }
        }
    }
}

fn check_consistent(root: &Path) -> usize {
    let meta = Arc::new(Metadata::open(&root.join("meta.db")).unwrap());
    let mut removed = 0;
    for s in snapshotters(&meta, root) {
        let dir = root.join("snapshots").join(s.name()).join("snapshots");
        for (key, record) in meta.snapshots(NS, s.name()).unwrap() {
            assert!(
                dir.join(record.id.to_string()).is_dir(),
                "{}: record {key:?} without its directory",
                s.name()
            );
        }
        removed += s.cleanup().unwrap().len();
        let ids = meta.snapshot_ids(s.name()).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let id: u64 = name
                .parse()
                .unwrap_or_else(|_| panic!("{name} left after cleanup"));
            assert!(
                ids.contains(&id),
                "{}: {name} unreferenced after cleanup",
                s.name()
            );
        }
    }
    removed
}

#[test]
fn sigkill_leaves_only_directories_cleanup_removes() {
    let root = std::env::temp_dir().join(format!("hull-snap-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(root.clone());
    {
        let meta = Arc::new(Metadata::open(&root.join("meta.db")).unwrap());
        meta.create_namespace(NS).unwrap();
        for s in snapshotters(&meta, &root) {
            s.prepare(NS, "b", None, Labels::new()).unwrap();
            let data = s.unpack_target(NS, "b").unwrap().root;
            for i in 0..200 {
                std::fs::write(data.join(format!("f{i}")), vec![7u8; 4096]).unwrap();
            }
            s.commit(NS, "base", "b", Labels::new()).unwrap();
        }
    }
    let mut orphans = 0;
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_worker", "--ignored", "--quiet"])
            .env(DIR_VAR, &root)
            .spawn()
            .unwrap();
        // Somewhere between a few and many operations in.
        std::thread::sleep(Duration::from_millis(150 + 137 * round));
        // SAFETY: kill of our own child, by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the worker ended before the kill: {status}"
        );
        orphans += check_consistent(&root);
    }
    eprintln!("cleanup removed {orphans} orphaned directories over 6 kills");
}
