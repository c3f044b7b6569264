//! Pulls that go wrong: bad input, missing images, a registry that is down,
//! lies about content, cuts bodies short, a daemon killed mid-pull, a full
//! disk. Each must fail with an error that says what to do, and leave
//! nothing corrupt or half-written visible.

use hull_integration::host::wait_until;
use hull_integration::hostile::{Fault, HostileRegistry};
use hull_integration::manager::{have_registry, image_blobs, image_digest, Auth, Hulld, Registry};
use std::process::Command;
use std::time::Duration;

#[test]
fn bad_reference_unknown_tag_and_registry_down() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "faults/app:latest");
    let d = Hulld::start("");

    let bad = d.ctl(&["pull", "UPPER/case"]).fails();
    assert!(
        bad.stderr
            .contains("invalid image reference \"UPPER/case\""),
        "{bad:?}"
    );

    let missing = format!("{}/faults/app:nope", reg.address);
    let out = d.ctl(&["pull", &missing]).fails();
    assert!(
        out.stderr.contains(&missing) && out.stderr.contains("not found"),
        "the error names the reference: {out:?}"
    );
    let no_repo = format!("{}/faults/other:latest", reg.address);
    let out = d.ctl(&["pull", &no_repo]).fails();
    assert!(out.stderr.contains("not found"), "{out:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let down = d
        .ctl(&["pull", &format!("{addr}/faults/app:latest")])
        .fails();
    assert!(
        down.stderr
            .contains(&format!("cannot reach registry {addr}"))
            && down.stderr.contains("refused"),
        "{down:?}"
    );
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    assert!(d.blob_files().is_empty());
}

#[test]
fn a_tampered_blob_never_becomes_visible() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "faults/tampered:latest");
    let (layer, _) = image_blobs("small").last().unwrap().clone();
    // Same size, different bytes: only the digest check can tell.
    let file = reg.blob_file(&layer);
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).unwrap();

    let d = Hulld::start("");
    let out = d.ctl(&["pull", &r]).fails();
    assert!(
        out.stderr.contains(&layer) && out.stderr.contains("wrong content"),
        "{out:?}"
    );
    assert!(
        d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty(),
        "no image record"
    );
    assert!(!d.content("default").contains(&layer));
    assert!(!d.blob_files().contains(&layer), "not in the store either");
    assert!(
        !d.ingests().contains(&format!("pull-{layer}")),
        "the bad data was discarded: {:?}",
        d.ingests()
    );
    d.assert_content_intact("default");
    // The manifest is committed last, so it is not visible either.
    assert!(!d.content("default").contains(&image_digest("small")));
}

#[test]
fn a_truncated_body_is_retried_with_range_then_fails_cleanly() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "faults/short:latest");
    let proxy = HostileRegistry::start(&reg.address, Fault::Truncate(100_000));
    let r = format!("{}/faults/short:latest", proxy.address);
    let d = Hulld::start("[pull]\nretries = 2\n");
    let out = d.ctl(&["pull", &r]).fails();
    let (layer, size) = image_blobs("small").last().unwrap().clone();
    assert!(
        out.stderr.contains(&layer) && out.stderr.contains("interrupted"),
        "{out:?}"
    );
    // Each retry asked for the rest, from where the last one stopped.
    let ranges: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains(&layer))
        .collect();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert!(ranges[0].ends_with("range=bytes=0-"), "{ranges:?}");
    assert!(ranges[1].ends_with("range=bytes=100000-"), "{ranges:?}");
    assert!(ranges[2].ends_with("range=bytes=200000-"), "{ranges:?}");
    assert!(!d.content("default").contains(&layer));
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    assert_eq!(
        d.ingest_bytes(),
        300_000,
        "the partial layer is kept for a resume"
    );

    // Once the network behaves, the pull resumes and completes.
    proxy.set_fault(Fault::None);
    d.ctl(&["pull", "-q", &r]).ok();
    let last = proxy
        .requests()
        .into_iter()
        .rfind(|r| r.contains(&layer))
        .unwrap();
    assert!(last.ends_with("range=bytes=300000-"), "{last}");
    assert!(size > 300_000);
    d.assert_content_intact("default");
    assert_eq!(d.ingest_bytes(), 0);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "faults/busy:latest");
    // Every manifest and blob answers 503 twice, then works.
    let proxy = HostileRegistry::start(&reg.address, Fault::Unavailable(2));
    let r = format!("{}/faults/busy:latest", proxy.address);
    let d = Hulld::start("");
    d.ctl(&["pull", "-q", &r]).ok();
    d.assert_content_intact("default");
    let requests = proxy.requests();
    for (digest, _) in image_blobs("small").iter().skip(1) {
        let asked = requests
            .iter()
            .filter(|r| r.contains(digest.as_str()))
            .count();
        assert_eq!(asked, 3, "{digest} asked {asked} times: {requests:?}");
    }
    let by_tag = requests
        .iter()
        .filter(|r| r.contains("/manifests/latest"))
        .count();
    assert_eq!(by_tag, 3, "{requests:?}");

    // A registry that stays unavailable fails the pull once retries run out.
    let down = HostileRegistry::start(&reg.address, Fault::Unavailable(100));
    let r = format!("{}/faults/busy:latest", down.address);
    let d = Hulld::start("[pull]\nretries = 1\n");
    let out = d.ctl(&["pull", &r]).fails();
    assert!(out.stderr.contains("503"), "{out:?}");
    let asked = down
        .requests()
        .iter()
        .filter(|r| r.contains("/manifests/"))
        .count();
    assert_eq!(asked, 2, "one try and one retry");
}

#[test]
fn schema1_is_refused_and_foreign_layers_are_skipped() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "faults/odd:latest");
    let proxy = HostileRegistry::start(&reg.address, Fault::None);
    let r = format!("{}/faults/odd:latest", proxy.address);
    let d = Hulld::start("");

    let schema1 = br#"{"schemaVersion":1,"name":"faults/odd","tag":"latest","architecture":"amd64",
        "fsLayers":[{"blobSum":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
        "history":[{"v1Compatibility":"{}"}],"signatures":[]}"#;
    proxy.serve_manifest(
        schema1,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    );
    let out = d.ctl(&["pull", &r]).fails();
    assert!(
        out.stderr.contains("schema 1") && out.stderr.contains("push the image again"),
        "{out:?}"
    );

    // The real manifest plus a foreign layer (a Windows-style base that must
    // come from elsewhere): pulled without ever asking for that layer.
    let layout = hull_integration::manager::images_dir().join("small/blobs/sha256");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join(image_digest("small").trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let foreign = format!("sha256:{}", "f".repeat(64));
    let mut with_foreign = manifest.clone();
    with_foreign["layers"].as_array_mut().unwrap().insert(
        0,
        serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": foreign,
            "size": 1234,
            "urls": ["https://example.invalid/base.tar.gz"],
        }),
    );
    proxy.serve_manifest(
        &serde_json::to_vec(&with_foreign).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    // A foreign layer cannot be unpacked: the error says how to pull.
    let out = d.ctl(&["pull", &r]).fails();
    assert!(
        out.stderr.contains(&foreign) && out.stderr.contains("--no-unpack"),
        "{out:?}"
    );
    let out = d.ctl(&["pull", "--no-unpack", &r]).ok();
    assert!(out.stderr.contains("skipped"), "{out:?}");
    assert!(!proxy.requests().iter().any(|q| q.contains(&foreign)));
    assert!(!d.content("default").contains(&foreign));
    d.assert_content_intact("default");
    assert_eq!(d.ctl(&["images", "ls", "-q"]).ok().stdout.trim(), r);
}

#[test]
fn a_killed_daemon_leaves_nothing_corrupt_and_the_next_pull_resumes() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("big", "faults/big:latest");
    // Slow enough to kill the daemon with every layer half-way.
    let proxy = HostileRegistry::start(&reg.address, Fault::Throttle(4 << 20));
    let r = format!("{}/faults/big:latest", proxy.address);
    let mut d = Hulld::start("");
    let mut pull = Command::new(hull_integration::manager::manager_bin("hullctl"))
        .arg("--address")
        .arg(&d.socket)
        .args(["pull", "-q", &r])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || d.ingest_bytes() > 8 << 20),
        "the download did not start"
    );
    let status = d.stop_with(libc::SIGKILL);
    assert!(!status.success());
    assert!(
        !pull.wait().unwrap().success(),
        "the client saw the pull fail"
    );
    let partial = d.ingest_bytes();
    assert!(partial > 8 << 20, "{partial}");

    d.spawn();
    // Nothing partial or corrupt is visible after the restart.
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    d.assert_content_intact("default");
    let active = d.ctl(&["content", "active"]).ok().stdout;
    assert!(
        active.contains("pull-sha256:"),
        "ingests are listed: {active}"
    );

    proxy.set_fault(Fault::None);
    let before = proxy.requests().len();
    let out = d.ctl(&["pull", "--format", "json", &r]).ok();
    let done: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let resumed: Vec<String> = proxy.requests()[before..]
        .iter()
        .filter(|r| r.contains("/blobs/") && !r.ends_with("range=bytes=0-"))
        .cloned()
        .collect();
    assert!(
        !resumed.is_empty(),
        "no layer resumed: {:?}",
        proxy.requests()
    );
    let total: u64 = image_blobs("big").iter().map(|(_, s)| s).sum();
    assert!(
        done["bytesFetched"].as_u64().unwrap() + partial <= total + (1 << 20),
        "the resumed pull fetched only the rest: {done} (partial {partial}, total {total})"
    );
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("big").len());
    assert_eq!(d.ingest_bytes(), 0);
}

/// Needs root: the daemon's root is a small tmpfs, mounted in a private
/// mount namespace (so it disappears with the test's processes).
#[test]
fn a_full_disk_fails_clearly_and_keeps_the_db_consistent() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let big = reg.push("big", "faults/big:latest");
    let small = reg.push("small", "faults/small:latest");
    // hulld runs twice on the same 40 MiB tmpfs root: the script waits for
    // the first to exit, then starts the second.
    let mut d = Hulld::start("");
    d.stop_with(libc::SIGTERM);
    let root = d.root();
    let script = format!(
        "mount -t tmpfs -o size=40m hull-test-full {root} && \
         for i in 1 2; do {hulld} --config {config} & echo $! > {dir}/pid$i; wait $!; done",
        root = root.display(),
        hulld = hull_integration::manager::manager_bin("hulld").display(),
        config = d.config.display(),
        dir = d.dir.display()
    );
    let ns = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.dir.join("hulld.log")).unwrap())
        .spawn()
        .unwrap();
    // Stops both daemons and the namespace's shell, also if an assert fails.
    struct Guard(std::process::Child, std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            for i in 1..=2 {
                if let Some(pid) = std::fs::read_to_string(self.1.join(format!("pid{i}")))
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    // SAFETY: signalling a daemon this test started, by PID.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Guard(ns, d.dir.clone());
    let kill_daemon = |i: u32| {
        let pid: i32 = std::fs::read_to_string(d.dir.join(format!("pid{i}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signalling the daemon this test started, by its PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    };
    let socket_up = |d: &Hulld| wait_until(Duration::from_secs(20), || d.socket.exists());
    assert!(socket_up(&d));

    let out = d.ctl(&["pull", &big]).fails();
    assert!(
        out.stderr.contains("no space left") && out.stderr.contains("free space"),
        "{out:?}"
    );
    // Consistent: no image, only verified blobs, no partial downloads
    // holding the space, and the daemon still works.
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    // An unpack cut short by the full disk left no snapshot half-applied.
    let snapshots = d.ctl(&["snapshots", "ls"]).ok().stdout;
    assert!(!snapshots.contains("Active"), "{snapshots}\n{}", d.log());
    let active = d.ctl(&["content", "active"]).ok().stdout;
    assert_eq!(
        active.lines().count(),
        1,
        "partial downloads dropped: {active}"
    );
    d.assert_content_intact("default");
    d.ctl(&["pull", "-q", &small]).ok();

    // Fill the disk to the last byte, so the metadata DB's own writes fail.
    let in_ns = |cmd: &str| {
        let pid = std::fs::read_to_string(d.dir.join("pid1")).unwrap();
        Command::new("nsenter")
            .args(["--target", pid.trim(), "--mount", "--", "sh", "-c", cmd])
            .status()
            .unwrap()
    };
    let filler = root.join("filler");
    in_ns(&format!("cat /dev/zero > {} 2>/dev/null", filler.display()));
    // Records with 1.2 MiB of labels cannot all fit in pages the DB
    // already has free: their commits need new space. (ctr: hullctl sets
    // no labels; one argument may hold 128 KiB.)
    let labels: Vec<String> = (0..12)
        .map(|i| format!("big{i}={}", "x".repeat(100 << 10)))
        .collect();
    let mut failed = None;
    for i in 0..32 {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&d.socket)
            .args(["namespaces", "create", &format!("full{i}")])
            .args(&labels)
            .output()
            .unwrap();
        if !out.status.success() {
            failed = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let failed = failed.expect("a DB write fails on a full disk");
    assert!(failed.contains("free space"), "{failed}");
    // Once space is back, the daemon works again without a restart.
    assert!(in_ns(&format!("rm {}", filler.display())).success());
    let limit = Duration::from_secs(60);
    d.ctl_within(limit, &["namespaces", "create", "after-full"])
        .ok();
    d.ctl_within(limit, &["images", "rm", &small]).ok();
    d.ctl_within(limit, &["pull", "-q", &small]).ok();

    // And the DB reopens with the same state.
    kill_daemon(1);
    assert!(wait_until(Duration::from_secs(20), || d
        .dir
        .join("pid2")
        .exists()));
    assert!(socket_up(&d));
    assert_eq!(d.ctl(&["images", "ls", "-q"]).ok().stdout.trim(), small);
    d.assert_content_intact("default");
    kill_daemon(2);
    drop(guard);
}

#[test]
fn gc_sweeps_old_orphans_and_stale_downloads_only() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let small = reg.push("small", "faults/gc:latest");
    reg.push("zstd", "faults/partial:latest");
    let proxy = HostileRegistry::start(&reg.address, Fault::Truncate(50_000));
    let d = Hulld::start("[pull]\nretries = 0\n");
    // Content held only by a fetch's lease, and a partial download.
    d.ctl(&["content", "fetch", "-q", &small]).ok();
    d.ctl(&["pull", &format!("{}/faults/partial:latest", proxy.address)])
        .fails();
    let partial = d.ingest_bytes();
    assert!(partial >= 50_000, "{partial}");

    // Blobs no namespace records (as a crash before the pull's record could
    // leave): an old one and a fresh one.
    let blobs = d.root().join("content/blobs/sha256");
    let orphan = |data: &[u8]| {
        let hex = hull_integration::manager::sha256_hex(data);
        std::fs::write(blobs.join(&hex), data).unwrap();
        format!("sha256:{hex}")
    };
    let old = orphan(b"old orphan");
    let fresh = orphan(b"fresh orphan");
    let backdate = |path: &std::path::Path, age: &str| {
        let ok = Command::new("touch")
            .args(["-d", age])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    backdate(&blobs.join(old.trim_start_matches("sha256:")), "-1 hour");

    let gc = d.ctl(&["content", "gc", "--format", "json"]).ok();
    let gc: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    assert_eq!(gc["removed"], serde_json::json!([old]), "{gc}");
    assert!(
        d.blob_files().contains(&fresh),
        "young orphans may be a pull's"
    );
    for (digest, _) in image_blobs("small") {
        assert!(d.blob_files().contains(&digest), "the lease keeps {digest}");
    }
    assert_eq!(d.ingest_bytes(), partial, "a recent partial download stays");

    // A partial download untouched for two days goes.
    for entry in std::fs::read_dir(d.root().join("content/ingest")).unwrap() {
        backdate(&entry.unwrap().path().join("data"), "-2 days");
    }
    d.ctl(&["content", "gc"]).ok();
    assert_eq!(d.ingest_bytes(), 0);
    assert_eq!(
        d.ctl(&["content", "active"]).ok().stdout.lines().count(),
        1,
        "header only"
    );
}

/// A manifest the collector cannot read (as one over the 4 MiB limit that
/// an older hulld accepted, or a damaged one) must not make what it
/// references look like garbage.
#[test]
fn gc_keeps_everything_below_a_manifest_it_cannot_read() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "faults/gc-big:latest");
    let d = Hulld::start("");
    d.ctl(&["pull", "-q", &r]).ok();
    let before = d.blob_files();
    let manifest = image_digest("small");
    let file = d
        .root()
        .join("content/blobs/sha256")
        .join(manifest.trim_start_matches("sha256:"));
    let original = std::fs::read(&file).unwrap();
    for (damage, said) in [
        (
            // Same JSON, same references, padded past the limit.
            [original.as_slice(), &vec![b' '; 5 << 20]].concat(),
            "more than the 4194304 a manifest may have",
        ),
        (b"{\"schemaVer".to_vec(), "malformed manifest"),
    ] {
        std::fs::write(&file, &damage).unwrap();
        let out = d.ctl(&["content", "gc"]).fails();
        assert!(
            out.stderr.contains("nothing was removed")
                && out.stderr.contains(&manifest)
                && out.stderr.contains(said),
            "{out:?}"
        );
        assert_eq!(d.blob_files(), before, "every blob kept");
        assert_eq!(d.ctl(&["images", "ls", "-q"]).ok().stdout.trim(), r);
    }
    // Once the image is removed, nothing needs the damaged manifest read:
    // its blobs are garbage, and go.
    d.ctl(&["images", "rm", &r]).ok();
    assert!(d.blob_files().is_empty(), "{:?}", d.blob_files());
}
