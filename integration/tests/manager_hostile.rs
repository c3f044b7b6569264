//! Pulls from a registry that attacks the daemon or just behaves badly
//! (hull_integration::hostile): documents that are too big or never end,
//! bodies that trickle, redirect loops, escape sequences in what it says,
//! wrong sizes and wrong data. hulld must refuse each with an error that
//! says what happened, keep its memory bounded, and leave nothing behind
//! that a later pull could trip over.

use hull_integration::host::wait_until;
use hull_integration::hostile::{Behaviour, Fault, HostileRegistry};
use hull_integration::manager::{have_registry, image_blobs, Auth, Hulld, Registry};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// A registry with the small image as `app:latest`, and the hostile one in
/// front of it.
fn registries() -> (Registry, HostileRegistry) {
    let reg = Registry::start(Auth::None);
    reg.push("small", "app:latest");
    let hostile = HostileRegistry::start(&reg.address, Fault::None);
    (reg, hostile)
}

#[test]
fn oversized_and_endless_documents_are_refused_with_bounded_memory() {
    if !have_registry() {
        return;
    }
    let (_reg, hostile) = registries();
    let d = Hulld::start("[pull]\nretries = 1\n");

    let huge = hostile.image(Behaviour::HugeManifest, "app:latest");
    let out = d.ctl_within(LIMIT, &["pull", &huge]).fails();
    assert!(
        out.stderr.contains("larger than 4 MiB") && out.stderr.contains("manifest"),
        "{out:?}"
    );

    // Endless bodies: cut at the limit, and a document that is too large
    // is not asked for again.
    let endless = hostile.image(Behaviour::EndlessManifest, "app:latest");
    let out = d.ctl_within(LIMIT, &["pull", &endless]).fails();
    assert!(out.stderr.contains("larger than 4 MiB"), "{out:?}");
    let asked = hostile
        .requests()
        .iter()
        .filter(|r| r.contains("/endless-manifest/app/manifests/"))
        .count();
    assert_eq!(asked, 1, "not retried: {:?}", hostile.requests());

    let token = hostile.image(Behaviour::EndlessToken, "app:latest");
    let out = d.ctl_within(LIMIT, &["pull", &token]).fails();
    assert!(
        out.stderr.contains("token response") && out.stderr.contains("larger than 1 MiB"),
        "{out:?}"
    );

    let error = hostile.image(Behaviour::EndlessError, "app:latest");
    let out = d.ctl_within(LIMIT, &["pull", &error]).fails();
    assert!(out.stderr.contains("server error"), "{out:?}");
    assert!(out.stderr.len() < 4096, "error bodies are cut: {out:?}");

    let index = hostile.image(Behaviour::BigIndex, "app:100000");
    let out = d.ctl_within(LIMIT, &["pull", &index]).fails();
    assert!(out.stderr.contains("larger than 4 MiB"), "{out:?}");

    let rss = d.peak_rss_mib();
    assert!(rss < 100, "hulld's peak RSS was {rss} MiB");
    assert!(d.ctl(&["images", "ls", "-q"]).ok().stdout.is_empty());
    assert!(d.blob_files().is_empty(), "{:?}", d.blob_files());
}

#[test]
fn a_big_index_without_the_platform_gives_a_short_error() {
    if !have_registry() {
        return;
    }
    let (_reg, hostile) = registries();
    let d = Hulld::start("");
    let index = hostile.image(Behaviour::BigIndex, "app:15000");
    let out = d.ctl_within(LIMIT, &["pull", &index]).fails();
    assert!(
        out.stderr.contains("no image for platform linux/amd64")
            && out
                .stderr
                .contains("15000 available, e.g. linux/arm64/v0, linux/arm64/v1"),
        "{out:?}"
    );
    assert!(out.stderr.len() < 1024, "{} bytes", out.stderr.len());
}

#[test]
fn registry_text_reaches_the_terminal_escaped() {
    if !have_registry() {
        return;
    }
    let (_reg, hostile) = registries();
    let d = Hulld::start("");
    for tag in ["app:latest", "app:error"] {
        let out = d
            .ctl_within(LIMIT, &["pull", &hostile.image(Behaviour::Escapes, tag)])
            .fails();
        assert!(
            !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
            "raw escape sequence printed: {out:?}"
        );
        assert!(out.stderr.contains("\\u{1b}"), "{out:?}");
    }
}

#[test]
fn a_redirect_loop_is_named() {
    if !have_registry() {
        return;
    }
    let (_reg, hostile) = registries();
    let d = Hulld::start("[pull]\nretries = 0\n");
    let out = d
        .ctl_within(
            LIMIT,
            &[
                "pull",
                &hostile.image(Behaviour::RedirectLoop, "app:latest"),
            ],
        )
        .fails();
    assert!(
        out.stderr.contains("redirects in a loop") && !out.stderr.contains("is it running"),
        "{out:?}"
    );
}

#[test]
fn a_trickling_registry_is_cut_off() {
    if !have_registry() {
        return;
    }
    let (_reg, hostile) = registries();
    let d =
        Hulld::start("[pull]\nretries = 0\nmin_progress_bytes = 1024\nmin_progress_seconds = 2\n");
    let slow = hostile.image(Behaviour::SlowBlobs, "app:latest");
    let out = d.ctl_within(LIMIT, &["pull", &slow]).fails();
    assert!(
        out.stderr.contains("too slow") && out.stderr.contains("min_progress"),
        "{out:?}"
    );
}

#[test]
fn a_pull_cancelled_by_its_client_stops_downloading_and_frees_the_blob() {
    if !have_registry() {
        return;
    }
    let (reg, hostile) = registries();
    // A trickle of 5 bytes/s passes this rule: only the client can stop it.
    let d = Hulld::start("[pull]\nmin_progress_bytes = 1\n");
    let mut pull = d.spawn_ctl(&["pull", &hostile.image(Behaviour::SlowBlobs, "app:latest")]);
    assert!(
        wait_until(Duration::from_secs(20), || hostile.active_blobs() > 0),
        "the download started"
    );
    // Ctrl-C of hullctl.
    // SAFETY: signalling the hullctl this test started, by its PID.
    unsafe { libc::kill(pull.id() as i32, libc::SIGINT) };
    let _ = pull.wait();
    assert!(
        wait_until(Duration::from_secs(10), || hostile.active_blobs() == 0),
        "hulld still downloads for a client that went away"
    );
    // The same blobs from a healthy registry: not stuck behind a lock.
    d.ctl_within(
        LIMIT,
        &["pull", "-q", &format!("{}/app:latest", reg.address)],
    )
    .ok();
    d.assert_content_intact("default");
}

#[test]
fn a_second_pull_of_a_blob_waits_for_the_first_then_takes_over() {
    if !have_registry() {
        return;
    }
    let (reg, hostile) = registries();
    let d =
        Hulld::start("[pull]\nretries = 0\nmin_progress_bytes = 1024\nmin_progress_seconds = 4\n");
    let slow = d.spawn_ctl(&["pull", &hostile.image(Behaviour::SlowBlobs, "app:latest")]);
    assert!(wait_until(Duration::from_secs(20), || hostile
        .active_blobs()
        > 0));
    // While the slow pull holds the blobs, a pull from a healthy registry
    // waits for it; once the slow one is cut off, it takes over.
    let healthy = d.ctl_within(LIMIT, &["pull", &format!("{}/app:latest", reg.address)]);
    let slow = hull_integration::manager::Out::wait(slow).fails();
    assert!(slow.stderr.contains("too slow"), "{slow:?}");
    healthy.ok();
    d.assert_content_intact("default");
    assert_eq!(d.content("default").len(), image_blobs("small").len());
}

#[test]
fn wrong_data_is_dropped_and_sizes_are_checked_against_the_manifest() {
    if !have_registry() {
        return;
    }
    let (reg, hostile) = registries();
    let d = Hulld::start("[pull]\nretries = 0\n");
    // A registry that ignores Range and sends wrong bytes: nothing of them
    // stays as a download to resume.
    let out = d
        .ctl_within(
            LIMIT,
            &[
                "pull",
                &hostile.image(Behaviour::BadFullBlobs, "app:latest"),
            ],
        )
        .fails();
    assert!(out.stderr.contains("wrong content"), "{out:?}");
    let (bad, _) = image_blobs("small")
        .into_iter()
        .find(|(digest, _)| out.stderr.contains(digest.as_str()))
        .expect("the error names the blob");
    assert!(
        !d.ingests().contains(&format!("pull-{bad}")),
        "{:?}",
        d.ingests()
    );

    // A manifest that lists a blob the store has with another size.
    d.ctl(&["pull", "-q", &format!("{}/app:latest", reg.address)])
        .ok();
    let (layer, size) = image_blobs("small").last().unwrap().clone();
    let out = d
        .ctl_within(
            LIMIT,
            &["pull", &hostile.image(Behaviour::WrongSize, "app:latest")],
        )
        .fails();
    assert!(
        out.stderr.contains(&layer)
            && out.stderr.contains(&format!("{} bytes", size + 1))
            && out.stderr.contains(&size.to_string()),
        "{out:?}"
    );
    assert_eq!(
        d.ctl(&["images", "ls", "-q"]).ok().stdout.lines().count(),
        1
    );
}
