//! containerd's snapshot model, on both snapshotters, without mounting:
//! key space, parents, commit, remove, labels, usage, mounts as data,
//! records that survive a restart, and cleanup of orphaned directories.

mod common;

use common::*;
use hull_snapshots::{Error, Info, Kind, Labels, Mount, Snapshotter};
use std::path::Path;

fn both(env: &Env) -> Vec<Box<dyn Snapshotter>> {
    vec![Box::new(env.overlay()), Box::new(env.native())]
}

#[test]
fn keys_parents_and_commit_follow_containerds_rules() {
    let env = Env::new("rules");
    for s in both(&env) {
        let n = s.name();
        s.prepare(NS, "base-active", None, labels(&[("a", "1")]))
            .unwrap();
        // Active, View and Committed share one key space.
        let e = s.view(NS, "base-active", None, Labels::new()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{n}: {e}");
        // A parent must be committed.
        let e = s
            .prepare(NS, "child", Some("base-active"), Labels::new())
            .unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition { .. }), "{n}: {e}");
        assert!(e.to_string().contains("commit it first"), "{e}");
        let e = s
            .prepare(NS, "child", Some("nope"), Labels::new())
            .unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition { .. }), "{n}: {e}");
        s.commit(NS, "base", "base-active", labels(&[("c", "2")]))
            .unwrap();
        let e = s.stat(NS, "base-active").unwrap_err();
        assert!(
            matches!(e, Error::NotFound { .. }),
            "{n}: the key is gone: {e}"
        );
        let base = s.stat(NS, "base").unwrap();
        assert_eq!((base.kind, base.parent.clone()), (Kind::Committed, None));
        assert_eq!(base.labels, labels(&[("c", "2")]));
        assert!(base.created > 1_600_000_000_000_000_000, "nanoseconds");
        // Committing twice, or a committed snapshot: refused.
        let e = s.commit(NS, "again", "base", Labels::new()).unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition { .. }), "{n}: {e}");
        s.prepare(NS, "child", Some("base"), Labels::new()).unwrap();
        s.view(NS, "look", Some("base"), Labels::new()).unwrap();
        let e = s.commit(NS, "look-c", "look", Labels::new()).unwrap_err();
        assert!(
            matches!(e, Error::FailedPrecondition { .. }),
            "{n}: a view: {e}"
        );
        let e = s.commit(NS, "base", "child", Labels::new()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{n}: {e}");
        // Mounts of a committed snapshot: refused.
        let e = s.mounts(NS, "base").unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition { .. }), "{n}: {e}");
        // Remove with children: refused, naming them.
        let e = s.remove(NS, "base").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot remove snapshot \"base\": it has children"),
            "{e}"
        );
        let mut walked: Vec<(String, Kind)> = s
            .walk(NS)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.kind))
            .collect();
        walked.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            walked,
            vec![
                ("base".into(), Kind::Committed),
                ("child".into(), Kind::Active),
                ("look".into(), Kind::View)
            ]
        );
        s.remove(NS, "child").unwrap();
        s.remove(NS, "look").unwrap();
        s.remove(NS, "base").unwrap();
        assert!(s.walk(NS).unwrap().is_empty());
        let e = s.remove(NS, "base").unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{n}: {e}");
        let e = s.prepare(NS, "", None, Labels::new()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{n}: {e}");
        let e = s.prepare("bad/ns", "k", None, Labels::new()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{n}: {e}");
        // Nothing left on disk.
        let dir = env.dir.join("snapshots").join(n).join("snapshots");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{n}");
    }
}

#[test]
fn namespaces_and_snapshotters_do_not_see_each_other() {
    let env = Env::new("ns");
    env.meta.create_namespace("other").unwrap();
    let (o, nat) = (env.overlay(), env.native());
    o.prepare(NS, "k", None, Labels::new()).unwrap();
    o.prepare("other", "k", None, Labels::new()).unwrap();
    nat.prepare(NS, "k", None, Labels::new()).unwrap();
    assert_eq!(o.walk(NS).unwrap().len(), 1);
    o.remove("other", "k").unwrap();
    assert!(o.stat(NS, "k").is_ok() && nat.stat(NS, "k").is_ok());
    let all = env.meta.namespace_snapshots(NS).unwrap();
    let mut names: Vec<(String, String)> = all.into_iter().map(|(s, k, _)| (s, k)).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("native".into(), "k".into()),
            ("overlayfs".into(), "k".into())
        ]
    );
    let e = o.prepare("missing", "k", None, Labels::new()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn update_changes_labels_only() {
    let env = Env::new("update");
    let s = env.overlay();
    s.prepare(NS, "k", None, labels(&[("a", "1"), ("b", "2")]))
        .unwrap();
    let before = s.stat(NS, "k").unwrap();
    let want = |l: &[(&str, &str)]| Info {
        labels: labels(l),
        ..before.clone()
    };
    let i = s
        .update(
            NS,
            want(&[("a", "9"), ("c", "3")]),
            &["labels.a".into(), "labels.b".into()],
        )
        .unwrap();
    assert_eq!(i.labels, labels(&[("a", "9")]), "b deleted, c not named");
    assert!(i.updated >= before.updated);
    let i = s
        .update(NS, want(&[("x", "y")]), &["labels".into()])
        .unwrap();
    assert_eq!(i.labels, labels(&[("x", "y")]));
    let i = s.update(NS, want(&[("z", "1")]), &[]).unwrap();
    assert_eq!(i.labels, labels(&[("z", "1")]), "no paths: all labels");
    let e = s.update(NS, want(&[]), &["parent".into()]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let mut gone = want(&[]);
    gone.name = "gone".into();
    assert!(matches!(
        s.update(NS, gone, &[]).unwrap_err(),
        Error::NotFound { .. }
    ));
    assert_eq!(
        s.stat(NS, "k").unwrap().kind,
        Kind::Active,
        "kind unchanged"
    );
}

fn path_of(m: &Mount) -> &Path {
    Path::new(&m.source)
}

#[test]
fn overlay_mounts_are_containerds() {
    let env = Env::new("overlay-mounts");
    let s = env.overlay();
    let snaps = env.dir.join("snapshots/overlayfs/snapshots");
    let m = s.prepare(NS, "a", None, Labels::new()).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].kind.as_str(), m[0].options.clone()),
        ("bind", vec!["rw".to_string(), "rbind".into()])
    );
    let a_fs = path_of(&m[0]).to_path_buf();
    assert!(
        a_fs.starts_with(&snaps) && a_fs.ends_with("fs"),
        "{}",
        a_fs.display()
    );
    assert_eq!(s.upperdir(NS, "a").unwrap(), a_fs);
    s.commit(NS, "A", "a", Labels::new()).unwrap();
    let v = s.view(NS, "v0", None, Labels::new()).unwrap();
    assert_eq!(v[0].options, vec!["ro".to_string(), "rbind".into()]);
    let v = s.view(NS, "v1", Some("A"), Labels::new()).unwrap();
    assert_eq!(
        (v[0].kind.as_str(), path_of(&v[0])),
        ("bind", a_fs.as_path())
    );
    assert_eq!(v[0].options, vec!["ro".to_string(), "rbind".into()]);
    s.prepare(NS, "b", Some("A"), Labels::new()).unwrap();
    let b_fs = s.upperdir(NS, "b").unwrap();
    s.commit(NS, "B", "b", Labels::new()).unwrap();
    let m = s.prepare(NS, "c", Some("B"), Labels::new()).unwrap();
    let c_dir = s.upperdir(NS, "c").unwrap().parent().unwrap().to_path_buf();
    assert_eq!(
        m,
        vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                "index=off".into(),
                format!("workdir={}", c_dir.join("work").display()),
                format!("upperdir={}", c_dir.join("fs").display()),
                format!("lowerdir={}:{}", b_fs.display(), a_fs.display()),
            ],
        }]
    );
    assert_eq!(s.mounts(NS, "c").unwrap(), m);
    assert_eq!(
        s.lowerdirs(NS, "c").unwrap(),
        vec![b_fs.clone(), a_fs.clone()]
    );
    let t = s.unpack_target(NS, "c").unwrap();
    assert_eq!(t.root, c_dir.join("fs"));
    assert_eq!(t.options.whiteouts, hull_diff::Whiteouts::Overlay);
    assert_eq!(t.options.parents, vec![b_fs.clone(), a_fs.clone()]);
    let v = s.view(NS, "v2", Some("B"), Labels::new()).unwrap();
    assert_eq!(
        v[0].options,
        vec![
            "index=off".to_string(),
            format!("lowerdir={}:{}", b_fs.display(), a_fs.display())
        ]
    );
    assert!(matches!(
        s.unpack_target(NS, "v2").unwrap_err(),
        Error::FailedPrecondition { .. }
    ));
}

#[test]
fn native_mounts_are_binds_of_full_copies() {
    let env = Env::new("native-mounts");
    let s = env.native();
    let m = s.prepare(NS, "a", None, Labels::new()).unwrap();
    assert_eq!(
        (m[0].kind.as_str(), m[0].options.clone()),
        ("bind", vec!["rw".to_string(), "rbind".into()])
    );
    let a = s.dir(NS, "a").unwrap();
    assert_eq!(path_of(&m[0]), a);
    std::fs::write(a.join("f"), b"data").unwrap();
    std::fs::create_dir(a.join("d")).unwrap();
    std::os::unix::fs::symlink("f", a.join("l")).unwrap();
    std::fs::hard_link(a.join("f"), a.join("d/h")).unwrap();
    s.commit(NS, "A", "a", Labels::new()).unwrap();
    let v = s.view(NS, "v", Some("A"), Labels::new()).unwrap();
    assert_eq!(v[0].options, vec!["ro".to_string(), "rbind".into()]);
    let vdir = Path::new(&v[0].source);
    assert_ne!(vdir, a, "a copy, not the parent");
    assert_eq!(std::fs::read(vdir.join("f")).unwrap(), b"data");
    assert_eq!(std::fs::read_link(vdir.join("l")).unwrap(), Path::new("f"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(vdir.join("f")).unwrap().ino(),
        std::fs::metadata(vdir.join("d/h")).unwrap().ino(),
        "hard links stay links in the copy"
    );
    let t = {
        s.prepare(NS, "b", Some("A"), Labels::new()).unwrap();
        s.unpack_target(NS, "b").unwrap()
    };
    assert_eq!(t.options.whiteouts, hull_diff::Whiteouts::Remove);
    assert!(t.root.join("f").exists());
}

#[test]
fn usage_is_measured_at_commit_and_on_demand() {
    let env = Env::new("usage");
    for s in both(&env) {
        let n = s.name();
        s.prepare(NS, "u", None, Labels::new()).unwrap();
        let empty = s.usage(NS, "u").unwrap();
        assert_eq!(empty.inodes, 1, "{n}: the directory itself");
        let dir = s.unpack_target(NS, "u").unwrap().root;
        std::fs::write(dir.join("big"), vec![1u8; 1 << 20]).unwrap();
        std::fs::hard_link(dir.join("big"), dir.join("big2")).unwrap();
        std::fs::write(dir.join("small"), b"x").unwrap();
        let u = s.usage(NS, "u").unwrap();
        assert_eq!(u.inodes, 3, "{n}: dir, big (once), small");
        assert!(u.size >= (1 << 20) && u.size < (2 << 20), "{n}: {u:?}");
        s.commit(NS, "U", "u", Labels::new()).unwrap();
        let committed = s.usage(NS, "U").unwrap();
        assert_eq!(committed, u, "{n}");
        // Stored at commit: a later change on disk does not show.
        std::fs::write(dir.join("after"), b"y").unwrap();
        assert_eq!(s.usage(NS, "U").unwrap(), u, "{n}");
    }
}

#[test]
fn records_outlive_the_snapshotter_and_ids_are_not_reused() {
    let env = Env::new("restart");
    let first_dir = {
        let s = env.overlay();
        s.prepare(NS, "k", None, labels(&[("l", "v")])).unwrap();
        let d = s.upperdir(NS, "k").unwrap();
        s.prepare(NS, "gone", None, Labels::new()).unwrap();
        s.remove(NS, "gone").unwrap();
        d
    };
    let s = env.overlay();
    assert_eq!(s.stat(NS, "k").unwrap().labels, labels(&[("l", "v")]));
    assert_eq!(s.upperdir(NS, "k").unwrap(), first_dir);
    s.prepare(NS, "new", None, Labels::new()).unwrap();
    let id = |p: &Path| -> u64 {
        p.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        id(&s.upperdir(NS, "new").unwrap()),
        3,
        "id 2 was used by the removed one"
    );
}

#[test]
fn cleanup_removes_only_directories_no_record_names() {
    let env = Env::new("cleanup");
    for s in both(&env) {
        let n = s.name();
        s.prepare(NS, "keep", None, Labels::new()).unwrap();
        let dir = env.dir.join("snapshots").join(n).join("snapshots");
        // What a crash leaves: a half-built temp dir, a renamed dir whose
        // record never got written, a dir whose record was removed.
        std::fs::create_dir_all(dir.join("new-77/fs/half")).unwrap();
        std::fs::create_dir_all(dir.join("999/fs")).unwrap();
        std::fs::write(dir.join("999/fs/file"), b"orphan").unwrap();
        let mut removed = s.cleanup().unwrap();
        removed.sort();
        assert_eq!(removed, vec![dir.join("999"), dir.join("new-77")], "{n}");
        assert!(s.unpack_target(NS, "keep").unwrap().root.exists(), "{n}");
        assert!(s.cleanup().unwrap().is_empty(), "{n}");
    }
}

#[test]
fn a_failed_prepare_leaves_no_directory_and_no_record() {
    let env = Env::new("failed");
    let s = env.native();
    s.prepare(NS, "a", None, Labels::new()).unwrap();
    let a = s.dir(NS, "a").unwrap();
    // Damage: the committed parent's data is gone, so the copy fails.
    s.commit(NS, "A", "a", Labels::new()).unwrap();
    std::fs::remove_dir_all(&a).unwrap();
    let e = s.prepare(NS, "b", Some("A"), Labels::new()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(matches!(
        s.stat(NS, "b").unwrap_err(),
        Error::NotFound { .. }
    ));
    let dir = env.dir.join("snapshots/native/snapshots");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temp dir left"
    );
}

#[test]
fn parent_chains_list_nearest_first() {
    let env = Env::new("chain");
    let s = env.overlay();
    let mut parent: Option<String> = None;
    for i in 0..5 {
        let key = format!("k{i}");
        s.prepare(NS, &key, parent.as_deref(), Labels::new())
            .unwrap();
        let name = format!("L{i}");
        s.commit(NS, &name, &key, Labels::new()).unwrap();
        parent = Some(name);
    }
    let chain: Vec<String> = env
        .meta
        .snapshot_parent_chain(NS, "overlayfs", "L4")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(chain, vec!["L3", "L2", "L1", "L0"]);
}
