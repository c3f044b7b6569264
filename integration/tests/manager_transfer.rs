//! Moving images without pulling them: `hullctl push` to a registry
//! (existing blobs skipped, mounts, chunked uploads resumed after a cut,
//! push scope of token auth), and image archives (`images export` /
//! `import`) read and written by skopeo and ctr as well.

use hull_integration::host::ScratchDir;
use hull_integration::hostile::{Fault, HostileRegistry};
use hull_integration::manager::{
    have_registry, image_blobs, image_config_digest, image_digest, images_dir, Auth, Hulld, Out,
    Registry, PASSWORD, USER,
};
use std::path::Path;
use std::process::Command;

/// A scratch directory (removed on drop) that names its files as strings,
/// for command lines.
struct Scratch(ScratchDir);

impl Scratch {
    fn new(label: &str) -> Scratch {
        Scratch(ScratchDir::new(label))
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:#?}"))
}

fn run(cmd: &mut Command) -> Out {
    Out::wait(
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
    )
}

/// An OCI layout directory as a tar (what skopeo and ctr read).
fn tar_layout(layout: &Path, out: &str) {
    run(Command::new("tar")
        .arg("-C")
        .arg(layout)
        .args(["-cf", out, "."]))
    .ok();
}

/// The manifest digest the registry serves for `reference` (a fresh
/// content-only fetch by a second daemon).
fn registry_digest(reference: &str) -> String {
    let probe = Hulld::start("");
    let out = probe
        .ctl(&["content", "fetch", "--format", "json", reference])
        .ok();
    json(&out)["target"]["digest"].as_str().unwrap().to_string()
}

fn images(d: &Hulld) -> serde_json::Value {
    json(&d.ctl(&["images", "ls", "--format", "json"]).ok())
}

#[test]
fn push_round_trip_keeps_every_digest_and_refuses_a_partial_index() {
    if !have_registry() {
        return;
    }
    let source = Registry::start(Auth::None);
    let target = Registry::start(Auth::None);
    let small = source.push("small", "test/small:v1");
    let multi = source.push("multiarch", "test/multi:v1");
    let d = Hulld::start("");
    d.ctl(&["pull", &small]).ok();
    let remote = format!("{}/copy/small:v2", target.address);
    d.ctl(&["tag", &small, &remote]).ok();
    let out = d.ctl(&["push", "--format", "json", &remote]).ok();
    let pushed = json(&out);
    assert_eq!(pushed["target"]["digest"], image_digest("small"));
    let blobs = image_blobs("small").len() as u64 - 1; // less the manifest
    assert_eq!(pushed["uploaded"], blobs, "{out:?}");
    assert_eq!(registry_digest(&remote), image_digest("small"));

    // Again: every blob is there (HEAD), only the manifest is sent.
    let again = json(&d.ctl(&["push", "--format", "json", &remote]).ok());
    assert_eq!(again["uploaded"], 0);
    assert_eq!(again["existing"], blobs);

    // A single-platform pull of an index cannot push the index: the error
    // names the missing blob; one platform can be pushed.
    d.ctl(&["pull", &multi]).ok();
    let remote_multi = format!("{}/copy/multi:v1", target.address);
    d.ctl(&["tag", &multi, &remote_multi]).ok();
    let err = d.ctl(&["push", &remote_multi]).fails();
    assert!(
        err.stderr.contains("is not in the content store") && err.stderr.contains("sha256:"),
        "{err:?}"
    );
    let one = json(
        &d.ctl(&[
            "push",
            "--format",
            "json",
            "--platform",
            "linux/amd64",
            &remote_multi,
        ])
        .ok(),
    );
    assert_eq!(
        one["target"]["digest"],
        image_digest("small"),
        "the amd64 manifest is the small image"
    );
}

#[test]
fn push_of_an_index_sends_only_what_the_registry_lacks_and_mounts_from_the_source() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let proxy = HostileRegistry::start(&reg.address, Fault::None);
    let files = Scratch::new("push-index");
    let d = Hulld::start("");
    // The whole multi-platform image, from an archive of its layout.
    let archive = files.path("multi.tar");
    tar_layout(&images_dir().join("multiarch"), &archive);
    d.ctl(&[
        "images",
        "import",
        "--name",
        "example.com/multi:v1",
        &archive,
    ])
    .ok();
    // The registry already has the small image: the amd64 manifest's blobs.
    let small = reg.push("small", "app:base");
    d.ctl(&["pull", &small]).ok();
    let before = proxy.uploaded_bytes();
    let remote = format!("{}/app:multi", proxy.address);
    d.ctl(&["tag", "example.com/multi:v1", &remote]).ok();
    let out = json(&d.ctl(&["push", "--format", "json", &remote]).ok());
    assert_eq!(out["target"]["digest"], image_digest("multiarch"));
    let blobs = image_blobs("small");
    let shared: Vec<&String> = blobs.iter().skip(1).map(|(d, _)| d).collect();
    assert_eq!(out["existing"], shared.len() as u64, "{out}");
    // What went over the wire: the arm64 config and layer, nothing shared.
    let sent = proxy.uploaded_bytes() - before;
    assert_eq!(sent as u64, out["bytesUploaded"].as_u64().unwrap());
    let shared_bytes: u64 = blobs.iter().skip(1).map(|(_, n)| n).sum();
    assert!(
        sent > 0 && (sent as u64) < shared_bytes,
        "sent {sent} bytes"
    );
    // Both platforms are served by the registry now.
    assert_eq!(
        registry_digest(&format!("{}/app:multi", reg.address)),
        image_digest("multiarch")
    );
    let probe = Hulld::start("");
    probe
        .ctl(&[
            "content",
            "fetch",
            "--platform",
            "linux/arm64",
            &format!("{}/app:multi", reg.address),
        ])
        .ok();

    // A retagged image of the same registry: its blobs are mounted from
    // the repository it came from, not sent.
    let moved = format!("{}/elsewhere/small:v1", reg.address);
    d.ctl(&["tag", &small, &moved]).ok();
    let before = proxy.uploaded_bytes();
    let mounted = json(&d.ctl(&["push", "--format", "json", &moved]).ok());
    assert_eq!(mounted["mounted"], shared.len() as u64, "{mounted}");
    assert_eq!(mounted["uploaded"], 0);
    assert_eq!(proxy.uploaded_bytes(), before);
}

#[test]
fn an_interrupted_chunked_upload_goes_on_and_the_image_arrives_whole() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let big = reg.push("big", "big:v1");
    // Small chunks, so every layer of the big image goes in many.
    let d = Hulld::start("[push]\nchunk_size = 1048576\nmax_concurrent_uploads = 1\n");
    d.ctl(&["pull", "--no-unpack", &big]).ok();
    let target = Registry::start(Auth::None);
    // The second chunk is cut before any of it reaches the registry: the
    // session still holds the first, and the upload goes on from there.
    let proxy = HostileRegistry::start(&target.address, Fault::CutUpload { nth: 2, forward: 0 });
    let remote = format!("{}/big:v1", proxy.address);
    d.ctl(&["tag", &big, &remote]).ok();
    let out = d.ctl(&["push", &remote]);
    let requests = proxy.requests();
    assert_eq!(out.code, 0, "{out:?}\n{requests:#?}");
    let status = requests
        .iter()
        .position(|r| r.starts_with("GET /v2/big/blobs/uploads/"));
    let status = status.unwrap_or_else(|| panic!("no upload status asked: {requests:#?}\n{out:?}"));
    assert!(
        requests[status + 1].starts_with("PATCH")
            && requests[status + 1].contains("content-range=1048576-"),
        "the upload goes on at the second chunk: {:#?}",
        &requests[status.saturating_sub(2)..(status + 2).min(requests.len())]
    );
    assert_eq!(
        registry_digest(&format!("{}/big:v1", target.address)),
        image_digest("big")
    );

    // Cut in the middle of a chunk: docker-registry drops such a session,
    // and the blob starts over in a new one.
    let target2 = Registry::start(Auth::None);
    let proxy2 = HostileRegistry::start(
        &target2.address,
        Fault::CutUpload {
            nth: 3,
            forward: 300_000,
        },
    );
    let remote2 = format!("{}/big:v2", proxy2.address);
    d.ctl(&["tag", &big, &remote2]).ok();
    let out = d.ctl(&["push", &remote2]);
    let requests = proxy2.requests();
    assert_eq!(out.code, 0, "{out:?}\n{requests:#?}");
    let patches = requests.iter().filter(|r| r.starts_with("PATCH")).count();
    assert!(
        patches > 3,
        "the cut chunk was followed by more: {requests:#?}"
    );
    assert_eq!(
        registry_digest(&format!("{}/big:v2", target2.address)),
        image_digest("big")
    );
}

#[test]
fn push_needs_push_access_with_token_auth() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::Token);
    let small = reg.push("small", "team/small:v1");
    let d = Hulld::start("");
    d.ctl_stdin(
        &[
            "login",
            "--username",
            "reader",
            "--password-stdin",
            &reg.address,
        ],
        "readerpass",
    )
    .ok();
    d.ctl(&["pull", &small]).ok();
    let remote = format!("{}/team/copy:v1", reg.address);
    d.ctl(&["tag", &small, &remote]).ok();
    let err = d.ctl(&["push", &remote]).fails();
    assert!(
        err.stderr.contains("refused to let this push to team/copy")
            && err.stderr.contains("push access"),
        "{err:?}"
    );
    d.ctl_stdin(
        &[
            "login",
            "--username",
            USER,
            "--password-stdin",
            &reg.address,
        ],
        PASSWORD,
    )
    .ok();
    let out = json(&d.ctl(&["push", "--format", "json", &remote]).ok());
    assert_eq!(out["target"]["digest"], image_digest("small"));
    // Mounted from team/small, which the token for this push covers too.
    assert!(out["mounted"].as_u64().unwrap() > 0, "{out}");
}

#[test]
fn export_then_import_into_a_fresh_daemon_runs_and_tampering_is_refused() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let small = reg.push("small", "test/small:v1");
    let files = Scratch::new("archive");
    let a = Hulld::start("");
    a.ctl(&["pull", &small]).ok();
    let archive = files.path("small.tar");
    a.ctl(&["images", "export", &archive, &small]).ok();
    // skopeo reads it as an OCI archive.
    let inspect =
        run(Command::new("skopeo").args(["inspect", &format!("oci-archive:{archive}")])).ok();
    assert!(inspect.stdout.contains("\"Digest\""), "{inspect:?}");
    // docker's manifest.json is there for docker/podman load.
    let listing = run(Command::new("tar").args(["-tf", &archive])).ok().stdout;
    assert!(
        listing.contains("manifest.json") && listing.contains("index.json"),
        "{listing}"
    );
    // podman loads it, into storage of the test's own (vfs: no mounts),
    // in a mount namespace with a /run of its own (podman makes
    // /run/containers whatever its options say).
    let storage = files.path("podman");
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs hull-it-run /run && exec podman \"$@\"")
            .arg("podman")
            .arg("--root")
            .arg(format!("{storage}/root"))
            .arg("--runroot")
            .arg(format!("{storage}/run"))
            .arg("--tmpdir")
            .arg(format!("{storage}/tmp"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args);
        run(&mut cmd)
    };
    let loaded = podman(&["load", "-i", &archive]).ok();
    assert!(loaded.stdout.contains(&small), "{loaded:?}");
    let config = podman(&["image", "inspect", "--format", "{{.Id}}", &small]).ok();
    assert_eq!(
        format!("sha256:{}", config.stdout.trim()),
        image_config_digest("small"),
        "podman has the image's own config"
    );

    let b = Hulld::start("");
    let out = b.ctl(&["images", "import", &archive]).ok();
    assert!(out.stdout.contains(&small), "{out:?}");
    let listed = images(&b);
    assert_eq!(listed[0]["name"], small);
    assert_eq!(listed[0]["target"]["digest"], image_digest("small"));
    b.assert_content_intact("default");
    let ran = b.ctl(&["run", "--rm", &small, "echo", "imported"]).ok();
    assert_eq!(ran.stdout.trim(), "imported");

    // The same archive from stdin, gzip-compressed, with another name.
    let gz = files.path("small.tar.gz");
    run(Command::new("sh").args(["-c", &format!("gzip -c {archive} > {gz}")])).ok();
    let c = Hulld::start("");
    let piped = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec {} --address {} images import --name renamed:v1 --no-unpack - < {gz}",
                hull_integration::manager::manager_bin("hullctl").display(),
                c.socket.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(images(&c)[0]["name"], "docker.io/library/renamed:v1");

    // Two imports of the same archive at once: both land.
    let both = Hulld::start("");
    let first = both.spawn_ctl(&[
        "images",
        "import",
        "--no-unpack",
        "--name",
        "one:v1",
        &archive,
    ]);
    let second = both.spawn_ctl(&[
        "images",
        "import",
        "--no-unpack",
        "--name",
        "two:v1",
        &archive,
    ]);
    Out::wait(first).ok();
    Out::wait(second).ok();
    assert_eq!(images(&both).as_array().unwrap().len(), 2);
    both.assert_content_intact("default");

    // One changed byte in a layer: refused, nothing recorded.
    let tampered = files.path("tampered.tar");
    let layer = image_blobs("small").last().unwrap().0.clone();
    let script = format!(
        "import tarfile, io\n\
         src = tarfile.open('{archive}')\n\
         dst = tarfile.open('{tampered}', 'w')\n\
         for m in src.getmembers():\n\
         \x20   data = src.extractfile(m).read() if m.isfile() else None\n\
         \x20   if m.name.endswith('{}'):\n\
         \x20       data = bytes([data[0] ^ 1]) + data[1:]\n\
         \x20   dst.addfile(m, io.BytesIO(data) if data is not None else None)\n\
         dst.close()\n",
        layer.trim_start_matches("sha256:")
    );
    run(Command::new("python3").args(["-c", &script])).ok();
    let fresh = Hulld::start("");
    let err = fresh.ctl(&["images", "import", &tampered]).fails();
    assert!(err.stderr.contains("does not match its digest"), "{err:?}");
    assert_eq!(images(&fresh), serde_json::json!([]));
}

#[test]
fn archives_from_skopeo_and_ctr_import_and_ctr_reads_ours() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let small = reg.push("small", "test/small:v1");
    let files = Scratch::new("foreign-archives");
    let d = Hulld::start("");
    let docker_tar = files.path("docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{small}"),
        &format!("docker-archive:{docker_tar}:example.com/from-docker:v1"),
    ]))
    .ok();
    d.ctl(&["images", "import", &docker_tar]).ok();
    let ran = d
        .ctl(&[
            "run",
            "--rm",
            "example.com/from-docker:v1",
            "echo",
            "docker-archive",
        ])
        .ok();
    assert_eq!(ran.stdout.trim(), "docker-archive");

    let oci_tar = files.path("oci.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{small}"),
        &format!("oci-archive:{oci_tar}:v1"),
    ]))
    .ok();
    d.ctl(&[
        "images",
        "import",
        "--name",
        "example.com/from-oci",
        &oci_tar,
    ])
    .ok();
    let listed = images(&d);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "example.com/from-oci:v1")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(
        entry["target"]["digest"],
        image_digest("small"),
        "skopeo kept the manifest"
    );

    // ctr (containerd 1.6's client) against hulld: export, import, push.
    let ctr_tar = files.path("ctr.tar");
    d.ctr(&["images", "export", &ctr_tar, "example.com/from-oci:v1"])
        .ok();
    let e = Hulld::start("");
    e.ctl(&["images", "import", &ctr_tar]).ok();
    assert_eq!(images(&e)[0]["target"]["digest"], image_digest("small"));
    let ours = files.path("ours.tar");
    d.ctl(&["images", "export", &ours, "example.com/from-oci:v1"])
        .ok();
    let f = Hulld::start("");
    let imported = f.ctr(&["images", "import", "--no-unpack", &ours]);
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(images(&f).to_string().contains("example.com/from-oci:v1"));
    let target = Registry::start(Auth::None);
    let remote = format!("{}/from-ctr:v1", target.address);
    d.ctl(&["tag", "example.com/from-oci:v1", &remote]).ok();
    d.ctr(&["images", "push", "--plain-http", &remote]).ok();
    assert_eq!(registry_digest(&remote), image_digest("small"));
}
