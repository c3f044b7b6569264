//! hulld with containerd's certs.d layout (registry.config_path): per-host
//! CAs and client certificates for a registry that requires mutual TLS,
//! from a hosts.toml or from docker-style files, read at each pull; and
//! hosts.toml mirrors with their capabilities.

use hull_integration::manager::{
    have_registry, image_blobs, image_digest, Auth, Hulld, Out, Registry, TlsRegistry,
};
use std::path::{Path, PathBuf};

fn ready() -> bool {
    hull_integration::require_root() && have_registry()
}

/// hulld reading the certs.d at `certs_d`, and nothing else for TLS.
fn hulld_with(certs_d: &Path) -> Hulld {
    std::fs::create_dir_all(certs_d).unwrap();
    Hulld::start(&format!(
        "[registry]\nconfig_path = \"{}\"\n",
        certs_d.display()
    ))
}

/// The directory of `host` in `certs_d`, with `files` (name, source)
/// copied in.
fn host_dir(certs_d: &Path, host: &str, files: &[(&str, &Path)]) -> PathBuf {
    let dir = certs_d.join(host);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, source) in files {
        std::fs::copy(source, dir.join(name)).unwrap();
    }
    dir
}

fn client_pair(tls: &TlsRegistry) -> (PathBuf, PathBuf) {
    tls.client
        .clone()
        .expect("an mTLS registry has a client certificate")
}

#[track_caller]
fn assert_tls_failure(out: &Out) {
    assert!(
        out.stderr.contains("TLS with registry")
            && out.stderr.contains("ca.crt or name it in a hosts.toml"),
        "{out:?}"
    );
}

#[test]
fn mutual_tls_from_hosts_toml_applies_without_a_restart() {
    if !ready() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "mtls/app:latest");
    let tls = reg.mtls_twin();
    let certs_d = reg.dir.join("certs.d");
    let d = hulld_with(&certs_d);
    let r = format!("{}/mtls/app:latest", tls.address);

    // No CA anywhere: the server's certificate is not trusted.
    assert_tls_failure(&d.ctl(&["pull", "-q", &r]).fails());

    // The CA, but no client certificate: the registry ends the handshake.
    let dir = host_dir(&certs_d, &tls.address, &[("ca.pem", &tls.ca)]);
    std::fs::write(dir.join("hosts.toml"), "ca = \"ca.pem\"\n").unwrap();
    assert_tls_failure(&d.ctl(&["pull", "-q", &r]).fails());

    // Both, in the same daemon: hosts.toml is read at each pull.
    let (cert, key) = client_pair(&tls);
    host_dir(
        &certs_d,
        &tls.address,
        &[("client.pem", &cert), ("client.key", &key)],
    );
    std::fs::write(
        dir.join("hosts.toml"),
        "ca = \"ca.pem\"\nclient = [[\"client.pem\", \"client.key\"]]\n",
    )
    .unwrap();
    let out = d.ctl(&["pull", &r]).ok();
    assert!(out.stdout.contains(&image_digest("small")), "{out:?}");
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("small").len());
    // A push goes through the same client certificate.
    let pushed = format!("{}/mtls/pushed:v1", tls.address);
    let out = d.ctl(&["push", "--format", "json", &pushed, &r]).ok();
    assert!(out.stdout.contains(&image_digest("small")), "{out:?}");

    // A mistake in hosts.toml is named, with the file.
    std::fs::write(
        dir.join("hosts.toml"),
        "ca = \"ca.pem\"\nclient_cert = \"x\"\n",
    )
    .unwrap();
    let out = d.ctl(&["pull", "-q", &r]).fails();
    assert!(
        out.stderr.contains("hosts.toml")
            && out
                .stderr
                .contains("`client_cert` in the top level: unknown key"),
        "{out:?}"
    );
}

#[test]
fn docker_style_certificate_files_without_hosts_toml() {
    if !ready() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "docker/app:latest");
    let tls = reg.mtls_twin();
    let certs_d = reg.dir.join("certs.d");
    let (cert, key) = client_pair(&tls);
    host_dir(
        &certs_d,
        &tls.address,
        &[("ca.crt", &tls.ca), ("client.cert", &cert)],
    );
    let d = hulld_with(&certs_d);
    let r = format!("{}/docker/app:latest", tls.address);

    // A certificate without its key is a clear error.
    let out = d.ctl(&["pull", "-q", &r]).fails();
    assert!(
        out.stderr.contains("client.cert") && out.stderr.contains("client.key is missing"),
        "{out:?}"
    );

    host_dir(&certs_d, &tls.address, &[("client.key", &key)]);
    let out = d.ctl(&["pull", &r]).ok();
    assert!(out.stdout.contains(&image_digest("small")), "{out:?}");
    d.assert_content_intact("default");
}

#[test]
fn a_hosts_toml_mirror_is_used_before_the_server() {
    if !ready() {
        return;
    }
    let mirror = Registry::start(Auth::None);
    mirror.push("small", "mirrored/app:latest");
    // The server: an address where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let server = dead.local_addr().unwrap().to_string();
    drop(dead);
    let certs_d = mirror.dir.join("certs.d");
    let dir = host_dir(&certs_d, &server, &[]);
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"https://{server}\"\n\n[host.\"http://{}\"]\n\
             capabilities = [\"pull\", \"resolve\"]\n",
            mirror.address
        ),
    )
    .unwrap();
    let d = hulld_with(&certs_d);
    let out = d
        .ctl(&["pull", &format!("{server}/mirrored/app:latest")])
        .ok();
    assert!(out.stdout.contains(&image_digest("small")), "{out:?}");
    d.assert_content_intact("default");

    // Without "resolve" the mirror may not say what the tag is: the dead
    // server is asked, and the pull fails there.
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"https://{server}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\"]\n",
            mirror.address
        ),
    )
    .unwrap();
    let out = d
        .ctl(&["pull", "-q", &format!("{server}/mirrored/app:latest")])
        .fails();
    assert!(
        out.stderr
            .contains(&format!("cannot reach registry {server}")),
        "{out:?}"
    );
}

#[test]
fn a_pull_only_mirror_serves_content_the_server_resolved() {
    if !ready() {
        return;
    }
    assert_ne!(image_digest("small"), image_digest("plain"));
    let server = Registry::start(Auth::None);
    server.push("small", "app:latest");
    // The mirror's tag names another image; it has the server's under
    // another tag.
    let mirror = Registry::start(Auth::None);
    mirror.push("small", "app:copy");
    mirror.push("plain", "app:latest");
    // The server keeps only what resolving needs: the content must come
    // from the mirror.
    let root = image_digest("small");
    for (digest, _) in image_blobs("small") {
        if digest != root {
            std::fs::remove_file(server.blob_file(&digest)).unwrap();
        }
    }
    let certs_d = server.dir.join("certs.d");
    let dir = host_dir(&certs_d, &server.address, &[]);
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "[host.\"http://{}\"]\ncapabilities = [\"pull\"]\n",
            mirror.address
        ),
    )
    .unwrap();
    let d = hulld_with(&certs_d);
    let out = d
        .ctl(&["pull", &format!("{}/app:latest", server.address)])
        .ok();
    assert!(
        out.stdout.contains(&root),
        "resolved by the server: {out:?}"
    );
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("small").len());
}
