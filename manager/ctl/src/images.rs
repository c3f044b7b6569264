//! `hullctl images`: containerd's Images service.

use crate::client::Client;
use crate::output::{age, print_json, safe, table, Format};
use crate::{descriptor_json, status, ImagesCmd, Result};
use hull_api::images::*;
use serde_json::json;

fn image_json(i: &Image) -> serde_json::Value {
    json!({
        "name": i.name,
        "target": descriptor_json(&i.target),
        "labels": i.labels,
        "createdAt": i.created_at.map(|t| t.seconds),
        "updatedAt": i.updated_at.map(|t| t.seconds),
    })
}

/// Users type `busybox`; records are `docker.io/library/busybox:latest`.
pub fn normalise(name: &str) -> Result<String> {
    name.parse::<hull_images::Reference>()
        .map(|r| r.to_string())
        .map_err(|e| e.to_string())
}

/// A blob's bytes (manifests, indexes, configs: small).
pub async fn read_blob(c: &Client, digest: &str) -> Result<Vec<u8>> {
    use hull_api::content::ReadContentRequest;
    let mut stream = c
        .content()
        .read(ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: hull_images::manifest::MAX_SIZE as i64,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(status)? {
        out.extend(chunk.data);
    }
    Ok(out)
}

/// The config of the image for this host's platform.
async fn config_digest(c: &Client, target: &hull_api::types::Descriptor) -> Result<String> {
    use hull_images::manifest::Document;
    let parse = |b: &[u8]| Document::parse(b, "").map_err(|e| e.to_string());
    let mut doc = parse(&read_blob(c, &target.digest).await?)?;
    if let Document::Index { manifests, .. } = &doc {
        let chosen = hull_images::Platform::host()
            .select(manifests)
            .ok_or("no manifest for this platform")?;
        doc = parse(&read_blob(c, &chosen.digest).await?)?;
    }
    match doc {
        Document::Manifest { config, .. } => Ok(config.digest),
        Document::Index { .. } => Err("nested index".into()),
    }
}

/// The config of image `name` and its top layer's snapshot in
/// `snapshotter` (the config's `containerd.io/gc.ref.snapshot.*` label).
pub async fn config_and_snapshot(
    c: &Client,
    name: &str,
    snapshotter: &str,
) -> Result<(String, String), String> {
    use hull_api::content::InfoRequest;
    let image = get(c, name).await?;
    let target = image.target.ok_or("the image has no target")?;
    let config = config_digest(c, &target).await?;
    let info = c
        .content()
        .info(InfoRequest {
            digest: config.clone(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .info
        .ok_or("hulld returned no content info")?;
    let label = format!("containerd.io/gc.ref.snapshot.{snapshotter}");
    let top = info.labels.get(&label).cloned().ok_or_else(|| {
        format!("image {name} is not unpacked for snapshotter {snapshotter}: pull it again without --no-unpack")
    })?;
    Ok((config, top))
}

/// What the image's unpacked layers take on disk in `snapshotter`, if it
/// is unpacked there.
async fn unpacked_size(c: &Client, image: &Image, snapshotter: &str) -> Option<u64> {
    use hull_api::content::InfoRequest;
    let config = config_digest(c, image.target.as_ref()?).await.ok()?;
    let info = c
        .content()
        .info(InfoRequest { digest: config })
        .await
        .ok()?
        .into_inner()
        .info?;
    // containerd's label from a config to its top layer's snapshot.
    let label = format!("containerd.io/gc.ref.snapshot.{snapshotter}");
    let top = info.labels.get(&label)?;
    crate::snapshots::chain_usage(c, snapshotter, top)
        .await
        .ok()
}

async fn get(c: &Client, name: &str) -> Result<Image> {
    c.images()
        .get(GetImageRequest {
            name: normalise(name)?,
        })
        .await
        .map_err(status)?
        .into_inner()
        .image
        .ok_or_else(|| "hulld returned no image".into())
}

pub async fn images(c: &Client, cmd: ImagesCmd, format: Format) -> Result {
    match cmd {
        ImagesCmd::Export(args) => return crate::archive::export(c, args).await,
        ImagesCmd::Import(args) => return crate::archive::import(c, args, format).await,
        ImagesCmd::Ls { quiet } => {
            let list = c
                .images()
                .list(ListImagesRequest::default())
                .await
                .map_err(status)?
                .into_inner()
                .images;
            match (format, quiet) {
                (Format::Json, _) => print_json(&list.iter().map(image_json).collect()),
                (Format::Table, true) => list.iter().for_each(|i| println!("{}", safe(&i.name))),
                (Format::Table, false) => {
                    let mut rows = Vec::new();
                    for i in &list {
                        let t = i.target.clone().unwrap_or_default();
                        let created = i.created_at.map(|t| t.seconds as u64).unwrap_or(0);
                        let unpacked = match unpacked_size(c, i, "overlayfs").await {
                            Some(n) => crate::output::size(n),
                            None => "-".into(),
                        };
                        rows.push(vec![
                            i.name.clone(),
                            t.media_type,
                            t.digest,
                            unpacked,
                            age(created),
                        ]);
                    }
                    print!(
                        "{}",
                        table(&["REF", "TYPE", "DIGEST", "UNPACKED", "CREATED"], &rows)
                    );
                }
            }
        }
        ImagesCmd::Inspect { name } => print_json(&image_json(&get(c, &name).await?)),
        ImagesCmd::Rm { names } => {
            let mut failed = false;
            for name in names {
                let name = normalise(&name)?;
                let request = DeleteImageRequest {
                    name: name.clone(),
                    sync: true,
                    target: None,
                };
                match c.images().delete(request).await {
                    Ok(_) => println!("{}", safe(&name)),
                    Err(e) => {
                        eprintln!("hullctl: {}", status(e));
                        failed = true;
                    }
                }
            }
            if failed {
                return Err("some images were not removed".into());
            }
        }
        ImagesCmd::Tag { source, target } => {
            let src = get(c, &source).await?;
            let image = Image {
                name: normalise(&target)?,
                labels: src.labels,
                target: src.target,
                created_at: None,
                updated_at: None,
            };
            let created = c
                .images()
                .create(CreateImageRequest {
                    image: Some(image),
                    source_date_epoch: None,
                })
                .await
                .map_err(status)?
                .into_inner()
                .image
                .unwrap_or_default();
            println!("{}", safe(&created.name));
        }
    }
    Ok(())
}
