//! The metadata DB: namespaces keep images and content apart, deletes are
//! refused where they would orphan data, and GC keeps exactly what images
//! and leases reach.

use hull_metadata::{Descriptor, Error, Image, Lease, Metadata};
use std::collections::BTreeMap;
use std::path::PathBuf;

struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        let dir = std::env::temp_dir().join(format!("hull-meta-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDb(dir)
    }
    fn path(&self) -> PathBuf {
        self.0.join("meta.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn image(name: &str, digest: &str) -> Image {
    Image {
        name: name.into(),
        target: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest.into(),
            size: 100,
            annotations: BTreeMap::new(),
        },
        labels: BTreeMap::new(),
        created: 1,
        updated: 1,
    }
}

#[test]
fn namespaces_isolate_images_and_survive_reopen() {
    let t = TempDb::new("ns");
    {
        let m = Metadata::open(&t.path()).unwrap();
        m.create_namespace("default").unwrap();
        m.create_namespace("k8s.io").unwrap();
        m.put_image(
            "default",
            &image("docker.io/library/busybox:latest", "sha256:aa"),
        )
        .unwrap();
        assert!(matches!(
            m.put_image("missing", &image("x", "sha256:bb")),
            Err(Error::NoNamespace(_))
        ));
        // containerd's identifier rule: no path tricks, no empty runs.
        for bad in [
            "a/b", ".", "..", "../..", "-a", "a-", "a..b", "a._b", "", "ä",
        ] {
            assert!(
                matches!(m.create_namespace(bad), Err(Error::InvalidNamespace(_))),
                "{bad:?} must be refused"
            );
        }
        let longest = "n".repeat(76);
        for good in ["a", "k8s.io", "moby", "a_b-c.d9", longest.as_str()] {
            hull_metadata::check_namespace(good).unwrap();
        }
        assert!(hull_metadata::check_namespace(&"n".repeat(77)).is_err());
    }
    let m = Metadata::open(&t.path()).unwrap();
    assert_eq!(m.namespaces().unwrap(), ["default", "k8s.io"]);
    assert_eq!(m.images("default").unwrap().len(), 1);
    assert!(m.images("k8s.io").unwrap().is_empty());
    assert_eq!(
        m.image("default", "docker.io/library/busybox:latest")
            .unwrap()
            .target
            .digest,
        "sha256:aa"
    );
    assert!(matches!(
        m.image("k8s.io", "docker.io/library/busybox:latest"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(m.content("default").unwrap(), ["sha256:aa"]);
    assert!(matches!(
        m.delete_namespace("default"),
        Err(Error::NamespaceNotEmpty(_))
    ));
    m.delete_image("default", "docker.io/library/busybox:latest")
        .unwrap();
    assert_eq!(
        m.delete_namespace("default").unwrap(),
        ["sha256:aa"],
        "its content goes with it"
    );
    assert_eq!(m.namespaces().unwrap(), ["k8s.io"]);
    assert!(m.content("default").unwrap().is_empty());
}

#[test]
fn gc_keeps_what_images_and_leases_reach() {
    let t = TempDb::new("gc");
    let m = Metadata::open(&t.path()).unwrap();
    m.create_namespace("default").unwrap();
    m.create_namespace("other").unwrap();
    // manifest M → config C, layers L1 L2; an orphan layer O; a leased blob P.
    for d in ["sha256:c", "sha256:l1", "sha256:l2", "sha256:o", "sha256:p"] {
        m.add_content("default", d).unwrap();
    }
    m.put_image("default", &image("app", "sha256:m")).unwrap();
    m.put_lease(
        "default",
        &Lease {
            id: "pull-1".into(),
            resources: ["sha256:p".to_string()].into(),
            expires: 0,
            ..Lease::default()
        },
    )
    .unwrap();
    // A lease left behind by a killed pull stops protecting once expired.
    m.put_lease_deferred(
        "default",
        &Lease {
            id: "pull-dead".into(),
            resources: Default::default(),
            expires: 1,
            ..Lease::default()
        },
    )
    .unwrap();
    m.record_fetched("default", "pull-dead", "sha256:stale", None)
        .unwrap();
    m.flush().unwrap();
    assert!(m
        .content("default")
        .unwrap()
        .contains(&"sha256:stale".to_string()));
    assert!(m.add_lease_resource("default", "nope", "sha256:x").is_err());
    // The other namespace references l2 through its own image.
    m.put_image("other", &image("other-app", "sha256:m2"))
        .unwrap();
    m.add_content("other", "sha256:l2").unwrap();
    let children = |d: &str, _: &str| -> Result<Vec<(String, String)>, String> {
        let typed = |ds: &[&str]| {
            ds.iter()
                .map(|d| (d.to_string(), "t".to_string()))
                .collect()
        };
        Ok(match d {
            "sha256:m" => typed(&["sha256:c", "sha256:l1", "sha256:l2"]),
            "sha256:m2" => typed(&["sha256:l2"]),
            _ => vec![],
        })
    };
    assert_eq!(m.gc(children).unwrap().blobs, ["sha256:o", "sha256:stale"]);
    assert_eq!(
        m.leases("default")
            .unwrap()
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["pull-1"],
        "the expired lease is gone"
    );
    assert_eq!(
        m.content("default").unwrap(),
        ["sha256:c", "sha256:l1", "sha256:l2", "sha256:m", "sha256:p"]
    );
    // Once the lease and the image go, their content is released, but l2
    // stays on disk for the other namespace.
    m.delete_lease("default", "pull-1").unwrap();
    m.delete_image("default", "app").unwrap();
    // Dropping a reference by hand (content rm) releases it too.
    assert!(
        !m.remove_content("default", "sha256:p").unwrap(),
        "only default had p"
    );
    assert!(m.remove_content("default", "sha256:p").is_err());
    let freed = m.gc(children).unwrap().blobs;
    assert_eq!(freed, ["sha256:c", "sha256:l1", "sha256:m"]);
    m.add_content("default", "sha256:l2").unwrap();
    assert!(
        m.remove_content("default", "sha256:l2").unwrap(),
        "other still has l2"
    );
    assert!(m.content("default").unwrap().is_empty());
    assert_eq!(m.content("other").unwrap(), ["sha256:l2", "sha256:m2"]);
}

#[test]
fn gc_sweeps_nothing_when_a_manifest_cannot_be_read() {
    let t = TempDb::new("gc-unreadable");
    let m = Metadata::open(&t.path()).unwrap();
    m.create_namespace("default").unwrap();
    for d in ["sha256:c", "sha256:l1", "sha256:o"] {
        m.add_content("default", d).unwrap();
    }
    m.put_image("default", &image("app", "sha256:m")).unwrap();
    let err = m
        .gc(|d, _| match d {
            "sha256:m" => Err("manifest sha256:m is too large to read".to_string()),
            _ => Ok(vec![]),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing was removed") && err.contains("sha256:m is too large"),
        "{err}"
    );
    assert_eq!(
        m.content("default").unwrap(),
        ["sha256:c", "sha256:l1", "sha256:m", "sha256:o"],
        "not even the orphan went"
    );
}

#[test]
fn gc_follows_a_manifest_met_first_as_an_untyped_lease_resource() {
    let t = TempDb::new("gc-typed");
    let m = Metadata::open(&t.path()).unwrap();
    m.create_namespace("default").unwrap();
    m.add_content("default", "sha256:l1").unwrap();
    m.put_image("default", &image("app", "sha256:m")).unwrap();
    m.put_lease(
        "default",
        &Lease {
            id: "l".into(),
            resources: ["sha256:m".to_string()].into(),
            expires: 0,
            ..Lease::default()
        },
    )
    .unwrap();
    // Untyped, m looks like a leaf (too big to sniff); typed, it is read.
    let freed = m
        .gc(|d, media_type| {
            Ok(match (d, media_type) {
                ("sha256:m", "") => vec![],
                ("sha256:m", _) => vec![("sha256:l1".into(), "layer".into())],
                _ => vec![],
            })
        })
        .unwrap()
        .blobs;
    assert!(freed.is_empty(), "{freed:?}");
    assert_eq!(m.content("default").unwrap(), ["sha256:l1", "sha256:m"]);
}
