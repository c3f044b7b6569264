//! hulld + hullctl end to end: pulls from a real registry (Debian's
//! docker-registry on 127.0.0.1) of images built from busybox-static,
//! namespaces, content, garbage collection, auth, mirrors, and the daemon's
//! own behaviour (config, lock, signals).

use hull_integration::hostile::{Fault, HostileRegistry};
use hull_integration::manager::{
    have_registry, image_blobs, image_digest, sha256_hex, Auth, Hulld, Registry, PASSWORD, USER,
};
use std::process::Command;

#[test]
fn pull_stores_verified_content_and_the_image_record() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let small = reg.push("small", "test/small:v1");
    let d = Hulld::start("");

    let out = d.ctl(&["pull", &small]).ok();
    assert!(out.stdout.contains(&image_digest("small")), "{out:?}");
    // Not a terminal: one plain line per state change.
    assert!(
        out.stderr.contains("downloading") && out.stderr.contains("done"),
        "{out:?}"
    );

    let expected = image_blobs("small");
    let mut listed = d.content("default");
    listed.sort();
    let mut want: Vec<String> = expected.iter().map(|(d, _)| d.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
    d.assert_content_intact("default");
    assert_eq!(d.blob_files(), want, "exactly the image's blobs on disk");
    assert_eq!(d.ingest_bytes(), 0, "no partial downloads left");

    let ls = d.ctl(&["images", "ls", "--format", "json"]).ok();
    let images: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(images[0]["name"], format!("{small}"));
    assert_eq!(images[0]["target"]["digest"], image_digest("small"));
    assert_eq!(
        images[0]["target"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let table = d.ctl(&["images", "ls"]).ok().stdout;
    assert!(
        table.starts_with("REF ") && table.contains(&small),
        "{table}"
    );

    // A second pull of the same image fetches nothing.
    let again = d.ctl(&["pull", "--format", "json", &small]).ok();
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["bytesFetched"], 0);

    // Tag, inspect, and removal with garbage collection.
    d.ctl(&["images", "tag", &small, "localhost/copy:1"]).ok();
    let inspect = d
        .ctl(&["images", "inspect", "localhost/copy:1"])
        .ok()
        .stdout;
    assert!(inspect.contains(&image_digest("small")), "{inspect}");
    d.ctl(&["images", "rm", &small]).ok();
    assert_eq!(
        d.blob_files().len(),
        want.len(),
        "the tag still holds the content"
    );
    d.ctl(&["images", "rm", "localhost/copy:1"]).ok();
    assert!(d.content("default").is_empty());
    assert!(
        d.blob_files().is_empty(),
        "gc removed the blobs: {:?}",
        d.blob_files()
    );
    let missing = d.ctl(&["images", "rm", "localhost/copy:1"]).fails();
    assert!(missing.stderr.contains("not found"), "{missing:?}");
}

#[test]
fn every_kind_of_image_pulls() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let d = Hulld::start("");
    for (image, media_type) in [
        ("zstd", "application/vnd.oci.image.manifest.v1+json"),
        ("plain", "application/vnd.oci.image.manifest.v1+json"),
        (
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        ("multiarch", "application/vnd.oci.image.index.v1+json"),
    ] {
        let r = reg.push(image, &format!("kinds/{image}:latest"));
        d.ctl(&["pull", "-q", &r]).ok();
        let inspect: serde_json::Value =
            serde_json::from_str(&d.ctl(&["images", "inspect", &r]).ok().stdout).unwrap();
        assert_eq!(inspect["target"]["mediaType"], media_type, "{image}");
        assert_eq!(inspect["target"]["digest"], image_digest(image), "{image}");
        let content = d.content("default");
        for (digest, _) in image_blobs(image) {
            assert!(content.contains(&digest), "{image}: {digest} missing");
        }
    }
    d.assert_content_intact("default");
}

#[test]
fn pull_by_digest() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "pinned/app:v1");
    let name = r.trim_end_matches(":v1");
    let pinned = format!("{name}@{}", image_digest("small"));
    let d = Hulld::start("");
    let out = d.ctl(&["pull", "-q", &pinned]).ok();
    assert!(out.stdout.contains(&pinned), "{out:?}");
    assert_eq!(d.ctl(&["images", "ls", "-q"]).ok().stdout.trim(), pinned);
    // A digest the registry does not have is "not found", named.
    let other = format!("{name}@sha256:{}", "0".repeat(64));
    let missing = d.ctl(&["pull", &other]).fails();
    assert!(
        missing.stderr.contains(&other) && missing.stderr.contains("not found"),
        "{missing:?}"
    );
}

#[test]
fn multi_platform_index_selects_the_platform() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("multiarch", "multi/app:latest");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            hull_integration::manager::images_dir()
                .join("multiarch/blobs/sha256")
                .join(image_digest("multiarch").trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let entry = |arch: &str| -> String {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let d = Hulld::start("");
    d.ctl(&["-n", "amd", "pull", "-q", &r]).ok();
    d.ctl(&["-n", "arm", "pull", "-q", "--platform", "linux/arm64", &r])
        .ok();
    let amd = d.content("amd");
    let arm = d.content("arm");
    assert!(
        amd.contains(&entry("amd64")) && !amd.contains(&entry("arm64")),
        "{amd:?}"
    );
    assert!(
        arm.contains(&entry("arm64")) && !arm.contains(&entry("amd64")),
        "{arm:?}"
    );

    let none = d.ctl(&["pull", "--platform", "linux/s390x", &r]).fails();
    assert!(
        none.stderr.contains("linux/s390x")
            && none.stderr.contains("linux/amd64")
            && none.stderr.contains("linux/arm64/v8")
            && none.stderr.contains("--platform"),
        "{none:?}"
    );
    let bad = d.ctl(&["pull", "--platform", "linux", &r]).fails();
    assert!(bad.stderr.contains("os/arch"), "{bad:?}");
}

#[test]
fn namespaces_isolate_images_and_content() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "ns/app:latest");
    let d = Hulld::start("");
    d.ctl(&["-n", "k8s.io", "pull", "-q", &r]).ok();
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    assert!(d.content("default").is_empty());
    assert_eq!(
        d.ctl(&["-n", "k8s.io", "images", "ls", "-q"])
            .ok()
            .stdout
            .trim(),
        r
    );
    let namespaces = d.ctl(&["namespaces", "ls", "-q"]).ok().stdout;
    assert_eq!(
        namespaces.lines().collect::<Vec<_>>(),
        ["default", "k8s.io"]
    );
    let get = d.ctl(&["content", "get", &image_digest("small")]).fails();
    assert!(
        get.stderr.contains("not found in namespace \"default\""),
        "{get:?}"
    );

    // Both namespaces hold the image: removing it from one keeps the blobs.
    d.ctl(&["-n", "other", "pull", "-q", &r]).ok();
    let busy = d.ctl(&["namespaces", "rm", "k8s.io"]).fails();
    assert!(busy.stderr.contains("not empty"), "{busy:?}");
    d.ctl(&["-n", "k8s.io", "images", "rm", &r]).ok();
    assert_eq!(d.blob_files().len(), image_blobs("small").len());
    d.assert_content_intact("other");
    d.ctl(&["namespaces", "rm", "k8s.io"]).ok();
    d.ctl(&["-n", "other", "images", "rm", &r]).ok();
    assert!(d.blob_files().is_empty());
    let bad = d.ctl(&["namespaces", "create", "no/slash"]).fails();
    assert!(bad.stderr.contains("invalid namespace"), "{bad:?}");
}

#[test]
fn content_fetch_ls_get_rm_and_gc() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "content/app:latest");
    let d = Hulld::start("");
    d.ctl(&["content", "fetch", "-q", &r]).ok();
    assert!(
        d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty(),
        "no image record"
    );
    let blobs = image_blobs("small");
    assert_eq!(d.content("default").len(), blobs.len());
    // The fetch's lease keeps the content from gc.
    let gc = d.ctl(&["content", "gc"]).ok();
    assert!(gc.stdout.contains("removed 0 blobs"), "{gc:?}");
    let (layer, size) = blobs.last().unwrap().clone();
    let got = d.ctl(&["content", "get", &layer]).ok();
    assert_eq!(got.raw.len() as u64, size);
    assert_eq!(format!("sha256:{}", sha256_hex(&got.raw)), layer);
    let ls = d.ctl(&["content", "ls", "--format", "json"]).ok();
    let ls: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert!(ls
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["digest"] == layer.as_str() && b["size"] == size));

    d.ctl(&["content", "rm", &layer]).ok();
    assert!(!d.content("default").contains(&layer));
    assert!(
        !d.blob_files().contains(&layer),
        "the blob is gone from disk"
    );
    // Once the lease goes, gc takes the rest.
    let leases = d.ctl(&["leases", "ls", "--format", "json"]).ok();
    let leases: serde_json::Value = serde_json::from_str(&leases.stdout).unwrap();
    let id = leases[0]["id"].as_str().unwrap().to_string();
    d.ctl(&["leases", "rm", &id]).ok();
    assert!(d.blob_files().is_empty(), "{:?}", d.blob_files());
    let bad = d.ctl(&["content", "get", "sha256:nothex"]).fails();
    assert!(bad.stderr.contains("digest"), "{bad:?}");
}

/// Without credentials the pull is refused with the fix named; a wrong
/// password is refused by `hullctl login` and nothing is stored; the right
/// one is stored in the docker config and the pull works.
fn login_then_pull(auth: Auth) {
    let reg = Registry::start(auth);
    let r = reg.push("small", "private/app:latest");
    let d = Hulld::start("");
    let denied = d.ctl(&["pull", &r]).fails();
    assert!(
        denied.stderr.contains(&reg.address) && denied.stderr.contains("hullctl login"),
        "{denied:?}"
    );
    let login = ["login", "-u", USER, "--password-stdin", &reg.address];
    let wrong = d.ctl_stdin(&login, "nope\n").fails();
    assert!(wrong.stderr.contains("rejected"), "{wrong:?}");
    let config = d.dir.join("home/.docker/config.json");
    assert!(!config.exists(), "nothing stored on failure");
    d.ctl_stdin(&login, &format!("{PASSWORD}\n")).ok();
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(stored.contains(&reg.address), "{stored}");
    d.ctl(&["pull", "-q", &r]).ok();
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("small").len());

    // At a terminal the password prompt does not echo what is typed.
    let cmd = format!(
        "{} --address {} login -u {USER} {}",
        hull_integration::manager::manager_bin("hullctl").display(),
        d.socket.display(),
        reg.address
    );
    let mut typed = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", d.dir.join("home/.docker"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Typed once the prompt is up: hullctl turns the echo off before it
    // prints the prompt.
    use std::io::{Read as _, Write as _};
    let mut stdout = typed.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Password:") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "no password prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    typed
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    assert!(typed.wait().unwrap().success());
    let screen = String::from_utf8_lossy(&seen);
    assert!(
        screen.contains("Password:") && screen.contains("Login Succeeded"),
        "{screen}"
    );
    assert!(
        !screen.contains(PASSWORD),
        "the password was echoed: {screen}"
    );
}

#[test]
fn basic_auth_registry_needs_login() {
    if have_registry() {
        login_then_pull(Auth::Basic);
    }
}

#[test]
fn token_auth_registry_with_the_bearer_flow() {
    if have_registry() {
        login_then_pull(Auth::Token);
    }
}

#[test]
fn https_registries_with_a_private_ca() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "tls/app:latest");
    let tls = reg.tls_twin();
    let r = format!("{}/tls/app:latest", tls.address);

    // Not loopback-by-name, so HTTPS; the CA is unknown to the system.
    let d = Hulld::start("");
    let untrusted = d.ctl(&["pull", &r]).fails();
    assert!(
        untrusted.stderr.contains("TLS with registry")
            && untrusted.stderr.contains("certificate")
            && untrusted.stderr.contains("registry.ca_files"),
        "{untrusted:?}"
    );
    drop(d);

    let d = Hulld::start(&format!(
        "[registry]\nca_files = [\"{}\"]\n",
        tls.ca.display()
    ));
    d.ctl(&["pull", "-q", &r]).ok();
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("small").len());
}

#[test]
fn mirrors_are_tried_first_and_fall_back() {
    if !have_registry() {
        return;
    }
    let mirror = Registry::start(Auth::None);
    mirror.push("small", "library/busybox:latest");
    // The first mirror is down: the pull moves on to the second.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let d = Hulld::start(&format!(
        "[registry.mirrors]\n\"docker.io\" = [\"{dead_addr}\", \"{}\"]\n",
        mirror.address
    ));
    let out = d.ctl(&["pull", "busybox"]).ok();
    assert!(
        out.stdout.contains("docker.io/library/busybox:latest"),
        "{out:?}"
    );
    assert_eq!(
        d.ctl(&["images", "ls", "-q"]).ok().stdout.trim(),
        "docker.io/library/busybox:latest"
    );
    d.assert_content_intact("default");
}

#[test]
fn downloads_run_three_at_a_time_unless_configured() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("big", "big/app:latest");
    let proxy = HostileRegistry::start(&reg.address, Fault::Throttle(40 << 20));
    let r = format!("{}/big/app:latest", proxy.address);
    let d = Hulld::start("");
    d.ctl(&["pull", "-q", &r]).ok();
    assert_eq!(proxy.max_concurrent_blobs(), 3, "default concurrency");
    d.ctl(&["images", "rm", &r]).ok();

    let proxy1 = HostileRegistry::start(&reg.address, Fault::Throttle(40 << 20));
    let r1 = format!("{}/big/app:latest", proxy1.address);
    d.ctl(&["pull", "-q", "--max-concurrent-downloads", "1", &r1])
        .ok();
    assert_eq!(proxy1.max_concurrent_blobs(), 1);
    d.assert_content_intact("default");
}

#[test]
fn progress_bars_on_a_terminal() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let r = reg.push("small", "tty/app:latest");
    let d = Hulld::start("");
    // util-linux script(1) gives hullctl a pseudo-terminal.
    let cmd = format!(
        "{} --address {} pull {r}",
        hull_integration::manager::manager_bin("hullctl").display(),
        d.socket.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("layer") && text.contains("done") && text.contains("MiB"),
        "{text}"
    );
    assert!(text.contains("="), "a bar is drawn: {text}");
}

#[test]
fn daemon_config_lock_and_signals() {
    let default = Command::new(hull_integration::manager::manager_bin("hulld"))
        .args(["config", "default"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&default.stdout);
    assert!(default.status.success());
    assert!(
        text.contains("root = \"/var/lib/hull\"")
            && text.contains("address = \"/run/hull/hulld.sock\"")
            && text.contains("max_concurrent_downloads = 3"),
        "{text}"
    );

    let mut d = Hulld::start("");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let pid_file = d.dir.join("state/hulld.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        d.pid().to_string()
    );

    // A second daemon on the same root is refused and names the first.
    let second = Command::new(hull_integration::manager::manager_bin("hulld"))
        .arg("--config")
        .arg(&d.config)
        .arg("--address")
        .arg(d.dir.join("second.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");

    let version = d.ctl(&["version", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&version.stdout).unwrap();
    assert_eq!(v["server"]["version"], v["client"]["version"]);

    let status = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(
        !d.socket.exists() && !pid_file.exists(),
        "socket and pid file removed"
    );
    let gone = d.ctl(&["images", "ls"]).fails();
    assert!(gone.stderr.contains("is hulld running"), "{gone:?}");

    let bad = d.dir.join("bad.toml");
    std::fs::write(&bad, "rooot = \"/x\"\n").unwrap();
    let out = Command::new(hull_integration::manager::manager_bin("hulld"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("rooot") && err.contains("hulld config default"),
        "{err}"
    );
}

#[test]
fn a_daemon_on_another_root_leaves_a_live_socket_alone() {
    let mut d = Hulld::start("");
    let other = d.dir.join("other");
    let mut second = Command::new(hull_integration::manager::manager_bin("hulld"))
        .arg("--root")
        .arg(other.join("root"))
        .arg("--state")
        .arg(other.join("state"))
        .arg("--address")
        .arg(&d.socket)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = hull_integration::host::wait_until(std::time::Duration::from_secs(10), || {
        second.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = second.kill();
    }
    let second = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        exited && !second.status.success() && err.contains("another daemon is serving on"),
        "the second daemon must refuse the live socket: {err}"
    );
    // The first daemon is still reachable on its socket.
    d.ctl(&["version"]).ok();

    // A socket left by a killed daemon is stale: the next one replaces it.
    d.stop_with(libc::SIGKILL);
    assert!(d.socket.exists());
    d.spawn();
    d.ctl(&["version"]).ok();
}

#[test]
fn namespace_names_follow_containerds_rule_everywhere() {
    let d = Hulld::start("");
    for bad in [".", "..", "../..", "a..b", "x-"] {
        let out = d.ctl(&["-n", bad, "images", "ls"]).fails();
        assert!(out.stderr.contains("invalid namespace"), "{bad}: {out:?}");
        let out = d.ctl(&["namespaces", "create", bad]).fails();
        assert!(out.stderr.contains("invalid namespace"), "{bad}: {out:?}");
    }
    // Also through the environment, as scripts set it.
    let env = Command::new(hull_integration::manager::manager_bin("hullctl"))
        .arg("--address")
        .arg(&d.socket)
        .args(["images", "ls"])
        .env("HULL_NAMESPACE", "../..")
        .output()
        .unwrap();
    assert!(!env.status.success());
    assert!(String::from_utf8_lossy(&env.stderr).contains("invalid namespace"));
    d.ctl(&["-n", "k8s.io", "images", "ls"]).ok();
    d.ctl(&["namespaces", "create", "team_a-1.x"]).ok();
}

#[test]
fn the_root_is_private_to_root_or_the_configured_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = Hulld::start("");
    let meta = std::fs::metadata(d.root()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    if hull_integration::require_root() {
        // Another local user cannot list the content store.
        let nobody = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
            .arg(d.root().join("content/blobs"))
            .output()
            .unwrap();
        assert!(!nobody.status.success(), "{nobody:?}");
    }
    drop(d);
    let d = Hulld::start("root_gid = 4242");
    let meta = std::fs::metadata(d.root()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o750);
    assert_eq!(meta.gid(), 4242);
}
