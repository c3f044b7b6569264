//! `hullctl push`: hulld pushes an image of the namespace to a registry,
//! hullctl shows the progress (the pull's bars) and resolves credentials.

use crate::client::Client;
use crate::output::{print_json, safe, size, Format};
use crate::{descriptor_json, status, Result};
use hull_api::transfer::{pull_progress, push_progress, PushRequest};
use serde_json::json;

#[derive(clap::Args)]
pub struct PushArgs {
    /// Where to push (REGISTRY/REPO:TAG); also the local image unless LOCAL
    /// is given
    reference: String,
    /// The local image to push as REFERENCE (as `ctr images push`)
    local: Option<String>,
    /// Push only this platform's manifest of a multi-platform image
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Push every platform of the image (the default; all of it must be here)
    #[arg(long)]
    all_platforms: bool,
    /// Uploads at once (default: hulld's config)
    #[arg(long)]
    max_concurrent_uploads: Option<u32>,
    /// No progress output
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub async fn push(c: &Client, args: PushArgs, format: Format) -> Result {
    let started = std::time::Instant::now();
    let request = PushRequest {
        credentials: crate::pull::credentials_for(&args.reference)?,
        name: args.local.unwrap_or_else(|| args.reference.clone()),
        remote: args.reference.clone(),
        platform: args.platform.unwrap_or_default(),
        max_concurrent_uploads: args.max_concurrent_uploads.unwrap_or(0),
    };
    let mut stream = c
        .transfer()
        .push(request)
        .await
        .map_err(status)?
        .into_inner();
    let quiet = args.quiet || format == Format::Json;
    let mut progress = crate::progress::Progress::new(crate::output::stderr_is_tty(), quiet);
    let mut done = None;
    while let Some(msg) = stream.message().await.map_err(status)? {
        match msg.event {
            Some(push_progress::Event::Blob(b)) => progress.event(&pull_progress::Event::Blob(b)),
            Some(push_progress::Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    progress.finish();
    let d = done.ok_or("hulld ended the push without a result")?;
    let secs = started.elapsed().as_secs_f64();
    match format {
        Format::Json => print_json(&json!({
            "remote": d.remote,
            "target": descriptor_json(&d.target),
            "uploaded": d.uploaded,
            "bytesUploaded": d.bytes_uploaded,
            "existing": d.existing,
            "mounted": d.mounted,
            "seconds": secs,
        })),
        Format::Table => println!(
            "pushed {}: {} ({} blobs uploaded, {}; {} already there, {} mounted; {secs:.1} s)",
            safe(&d.remote),
            safe(&d.target.map(|t| t.digest).unwrap_or_default()),
            d.uploaded,
            size(d.bytes_uploaded),
            d.existing,
            d.mounted,
        ),
    }
    Ok(())
}
