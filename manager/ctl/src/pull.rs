//! `hullctl pull` / `content fetch`: hulld pulls (and unpacks), hullctl
//! shows the progress.

use crate::client::Client;
use crate::output::{print_json, safe, size, Format};
use crate::{descriptor_json, status, PullArgs, Result};
use hull_api::transfer::{pull_progress, Credential, PullRequest};
use serde_json::json;

/// Credentials for the image's registry only (never send all of them to
/// the daemon), resolved here as the user: from the docker config's
/// credential helper for that registry, or its `auths` entry. Shared by
/// pull and push.
pub fn credentials_for(reference: &str) -> Result<Vec<Credential>> {
    let Ok(r) = reference.parse::<hull_images::Reference>() else {
        return Ok(Vec::new()); // hulld reports the bad reference
    };
    let Some(path) = hull_images::auth::default_path() else {
        return Ok(Vec::new());
    };
    let found = hull_images::auth::lookup(&path, &r.domain).map_err(|e| e.to_string())?;
    Ok(found
        .map(|(username, secret)| Credential {
            host: r.domain.clone(),
            username,
            secret,
        })
        .into_iter()
        .collect())
}

/// A pull whose progress and result go to stderr (before `run`).
pub async fn pull_quietly(c: &Client, args: PullArgs) -> Result {
    pull_with(c, args, true, Format::Table, true).await
}

pub async fn pull(c: &Client, args: PullArgs, store_image: bool, format: Format) -> Result {
    pull_with(c, args, store_image, format, false).await
}

async fn pull_with(
    c: &Client,
    args: PullArgs,
    store_image: bool,
    format: Format,
    to_stderr: bool,
) -> Result {
    let started = std::time::Instant::now();
    let request = PullRequest {
        credentials: credentials_for(&args.reference)?,
        reference: args.reference,
        platform: args.platform.unwrap_or_default(),
        store_image,
        max_concurrent_downloads: args.max_concurrent_downloads.unwrap_or(0),
        unpack: store_image && !args.no_unpack,
        snapshotter: args.snapshotter.unwrap_or_default(),
    };
    let mut stream = c
        .transfer()
        .pull(request)
        .await
        .map_err(status)?
        .into_inner();
    let quiet = args.quiet || format == Format::Json;
    let mut progress = crate::progress::Progress::new(crate::output::stderr_is_tty(), quiet);
    let mut done = None;
    while let Some(msg) = stream.message().await.map_err(status)? {
        if let Some(event) = msg.event {
            progress.event(&event);
            if let pull_progress::Event::Done(d) = event {
                done = Some(d);
            }
        }
    }
    progress.finish();
    let d = done.ok_or("hulld ended the pull without a result")?;
    let secs = started.elapsed().as_secs_f64();
    match format {
        Format::Json => print_json(&json!({
            "name": d.name,
            "target": descriptor_json(&d.target),
            "blobs": d.blobs,
            "bytesFetched": d.bytes_fetched,
            "snapshot": d.snapshot,
            "seconds": secs,
        })),
        Format::Table => {
            let digest = d.target.map(|t| t.digest).unwrap_or_default();
            let line = format!(
                "{} {}: {} ({} blobs, {} fetched in {secs:.1} s)",
                if store_image { "pulled" } else { "fetched" },
                safe(&d.name),
                safe(&digest),
                d.blobs,
                size(d.bytes_fetched)
            );
            if to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    }
    Ok(())
}
