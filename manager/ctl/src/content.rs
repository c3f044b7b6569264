//! `hullctl content`: containerd's Content service, plus hull's GC.

use crate::client::Client;
use crate::output::{print_json, safe, size, table, Format};
use crate::{status, ContentCmd, Result};
use hull_api::content::*;
use serde_json::json;
use std::io::Write;

pub async fn content(c: &Client, cmd: ContentCmd, format: Format) -> Result {
    let mut content = c.content();
    match cmd {
        ContentCmd::Ls { quiet } => {
            let mut stream = content
                .list(ListContentRequest::default())
                .await
                .map_err(status)?
                .into_inner();
            let mut blobs = Vec::new();
            while let Some(batch) = stream.message().await.map_err(status)? {
                blobs.extend(batch.info);
            }
            match (format, quiet) {
                (Format::Json, _) => print_json(
                    &blobs
                        .iter()
                        .map(|b| json!({"digest": b.digest, "size": b.size, "labels": b.labels}))
                        .collect(),
                ),
                (Format::Table, true) => blobs.iter().for_each(|b| println!("{}", safe(&b.digest))),
                (Format::Table, false) => {
                    let rows: Vec<Vec<String>> = blobs
                        .iter()
                        .map(|b| vec![b.digest.clone(), size(b.size.max(0) as u64)])
                        .collect();
                    print!("{}", table(&["DIGEST", "SIZE"], &rows));
                }
            }
        }
        ContentCmd::Get { digest } => {
            let mut stream = content
                .read(ReadContentRequest {
                    digest,
                    offset: 0,
                    size: 0,
                })
                .await
                .map_err(status)?
                .into_inner();
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await.map_err(status)? {
                out.write_all(&chunk.data)
                    .map_err(|e| format!("writing to stdout: {e}"))?;
            }
            out.flush().map_err(|e| format!("writing to stdout: {e}"))?;
        }
        ContentCmd::Rm { digests } => {
            for digest in digests {
                content
                    .delete(DeleteContentRequest {
                        digest: digest.clone(),
                    })
                    .await
                    .map_err(status)?;
                println!("{digest}");
            }
        }
        ContentCmd::Fetch(args) => crate::pull::pull(c, args, false, format).await?,
        ContentCmd::Active => {
            let statuses = content
                .list_statuses(ListStatusesRequest::default())
                .await
                .map_err(status)?
                .into_inner()
                .statuses;
            match format {
                Format::Json => print_json(
                    &statuses
                        .iter()
                        .map(|s| json!({"ref": s.r#ref, "offset": s.offset, "total": s.total, "expected": s.expected}))
                        .collect(),
                ),
                Format::Table => {
                    let rows: Vec<Vec<String>> = statuses
                        .iter()
                        .map(|s| {
                            vec![
                                s.r#ref.clone(),
                                size(s.offset.max(0) as u64),
                                size(s.total.max(0) as u64),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["REF", "OFFSET", "TOTAL"], &rows));
                }
            }
        }
        ContentCmd::Gc => {
            let r = c
                .gc()
                .collect(hull_api::gc::CollectRequest {})
                .await
                .map_err(status)?
                .into_inner();
            match format {
                Format::Json => print_json(
                    &json!({"removed": r.removed, "bytes": r.bytes, "snapshots": r.snapshots}),
                ),
                Format::Table => println!(
                    "removed {} blobs ({}) and {} snapshots",
                    r.removed.len(),
                    size(r.bytes),
                    r.snapshots.len()
                ),
            }
        }
    }
    Ok(())
}
