//! `hullctl images import|export` (and nerdctl's `load`/`save`): image
//! archives streamed to and from hulld in chunks, never whole in memory.

use crate::client::Client;
use crate::output::{print_json, safe, size, Format};
use crate::{status, Result};
use hull_api::transfer::{import_progress, ExportRequest, ImportChunk, ImportOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 1 << 20;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The archive (OCI layout or docker save tar, maybe gzipped); - for stdin
    file: PathBuf,
    /// Name the archive's image (one image only)
    #[arg(long)]
    name: Option<String>,
    /// Only store the content; do not unpack the layers into snapshots
    #[arg(long)]
    no_unpack: bool,
    /// Snapshotter to unpack into (default: hulld's)
    #[arg(long)]
    snapshotter: Option<String>,
    /// os/arch[/variant] to unpack (default: hulld's)
    #[arg(long)]
    platform: Option<String>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Where to write the archive; - for stdout
    file: PathBuf,
    #[arg(required = true)]
    names: Vec<String>,
    /// Only this platform's manifests of multi-platform images (default: hulld's)
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Every platform of multi-platform images (all must be here)
    #[arg(long)]
    all_platforms: bool,
}

/// Send `input` in chunks after the options message.
fn chunks(
    options: ImportOptions,
    mut input: impl AsyncRead + Unpin + Send + 'static,
) -> tokio::sync::mpsc::Receiver<ImportChunk> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let first = ImportChunk {
            options: Some(options),
            data: Vec::new(),
        };
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            let mut data = vec![0; CHUNK];
            let n = match input.read(&mut data).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    // Dropping the stream without its end makes hulld fail
                    // the import instead of taking a cut archive.
                    eprintln!("hullctl: reading the archive: {e}");
                    std::process::exit(1);
                }
            };
            data.truncate(n);
            let chunk = ImportChunk {
                options: None,
                data,
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    rx
}

pub async fn import(c: &Client, args: ImportArgs, format: Format) -> Result {
    let options = ImportOptions {
        name: args.name.unwrap_or_default(),
        no_unpack: args.no_unpack,
        snapshotter: args.snapshotter.unwrap_or_default(),
        platform: args.platform.unwrap_or_default(),
    };
    let rx = if args.file == Path::new("-") {
        chunks(options, tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .map_err(|e| format!("opening {}: {e}", args.file.display()))?;
        chunks(options, file)
    };
    let request = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut stream = c
        .transfer()
        .import(request)
        .await
        .map_err(status)?
        .into_inner();
    let mut images = Vec::new();
    while let Some(msg) = stream.message().await.map_err(status)? {
        match msg.event {
            Some(import_progress::Event::Image(i)) => {
                let digest = i
                    .target
                    .as_ref()
                    .map(|t| t.digest.clone())
                    .unwrap_or_default();
                if format == Format::Table {
                    println!("imported {}: {}", safe(&i.name), safe(&digest));
                }
                images.push(json!({"name": i.name, "digest": digest, "snapshot": i.snapshot}));
            }
            Some(import_progress::Event::Done(d)) => {
                if format == Format::Json {
                    print_json(&json!({"images": images, "blobs": d.blobs, "bytes": d.bytes}));
                } else {
                    eprintln!("{} blobs, {} stored", d.blobs, size(d.bytes));
                }
                return Ok(());
            }
            None => {}
        }
    }
    Err("hulld ended the import without a result".into())
}

pub async fn export(c: &Client, args: ExportArgs) -> Result {
    let request = ExportRequest {
        names: args.names,
        platform: args.platform.unwrap_or_default(),
        all_platforms: args.all_platforms,
    };
    let mut stream = c
        .transfer()
        .export(request)
        .await
        .map_err(status)?
        .into_inner();
    if args.file == Path::new("-") {
        let mut out = tokio::io::stdout();
        while let Some(chunk) = stream.message().await.map_err(status)? {
            out.write_all(&chunk.data)
                .await
                .map_err(|e| format!("writing to stdout: {e}"))?;
        }
        return out
            .flush()
            .await
            .map_err(|e| format!("writing to stdout: {e}"));
    }
    // Written beside the target and renamed when complete: a failed export
    // never leaves a file that looks like an archive.
    let tmp = args.file.with_file_name(format!(
        ".{}.hull-{}",
        file_name(&args.file),
        std::process::id()
    ));
    let result = write_file(&tmp, &mut stream).await;
    match result.and_then(|()| {
        std::fs::rename(&tmp, &args.file)
            .map_err(|e| format!("renaming to {}: {e}", args.file.display()))
    }) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into())
}

async fn write_file(
    path: &Path,
    stream: &mut tonic::Streaming<hull_api::transfer::ExportChunk>,
) -> Result {
    let werr = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let mut file = tokio::fs::File::create(path).await.map_err(werr)?;
    while let Some(chunk) = stream.message().await.map_err(status)? {
        file.write_all(&chunk.data).await.map_err(werr)?;
    }
    file.sync_all().await.map_err(werr)
}
