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
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|i| {
                            let t = i.target.clone().unwrap_or_default();
                            let created = i.created_at.map(|t| t.seconds as u64).unwrap_or(0);
                            vec![i.name.clone(), t.media_type, t.digest, age(created)]
                        })
                        .collect();
                    print!("{}", table(&["REF", "TYPE", "DIGEST", "CREATED"], &rows));
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
