//! containerd.services.images.v1

use super::{
    blocking, filters::Filters, labels_in, labels_out, mask_paths, meta_status, namespace, now,
    timestamp, Shared,
};
use hull_api::images::images_server::Images;
use hull_api::images::*;
use hull_api::types::Descriptor;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

pub fn descriptor_out(d: hull_metadata::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size as i64,
        annotations: labels_out(d.annotations),
    }
}

pub fn to_api(i: hull_metadata::Image) -> Image {
    Image {
        name: i.name,
        target: Some(descriptor_out(i.target)),
        labels: labels_out(i.labels),
        created_at: timestamp(i.created),
        updated_at: timestamp(i.updated),
    }
}

/// Check a client-supplied image and turn it into a record. Names are kept
/// as the client gives them (containerd stores any name; ctr and CRI use
/// normalised references, hullctl normalises before it asks).
fn from_api(i: Option<Image>) -> Result<hull_metadata::Image, Status> {
    let i = i.ok_or_else(|| Status::invalid_argument("missing image"))?;
    if i.name.is_empty() || i.name.len() > 4096 || i.name.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "invalid image name {:?}: give a reference such as docker.io/library/busybox:latest",
            i.name
        )));
    }
    let t = i
        .target
        .ok_or_else(|| Status::invalid_argument(format!("image {}: missing target", i.name)))?;
    t.digest
        .parse::<hull_content::Digest>()
        .map_err(|e| Status::invalid_argument(format!("image {}: {e}", i.name)))?;
    if t.size < 0 {
        return Err(Status::invalid_argument(format!(
            "image {}: negative target size",
            i.name
        )));
    }
    Ok(hull_metadata::Image {
        name: i.name,
        target: hull_metadata::Descriptor {
            media_type: t.media_type,
            digest: t.digest,
            size: t.size as u64,
            annotations: labels_in(t.annotations),
        },
        labels: labels_in(i.labels),
        created: now(),
        updated: now(),
    })
}

fn matches(filters: &Filters, i: &hull_metadata::Image) -> bool {
    filters.matches(|p| match p {
        [t, f] if t == "target" && f == "digest" => Some(i.target.digest.clone()),
        [t, f] if t == "target" && f == "mediatype" => Some(i.target.media_type.clone()),
        _ => super::filters::lookup(p, &[("name", &i.name)], &i.labels),
    })
}

impl Service {
    /// Create (`update` None) or update an image record; its target must
    /// already be content of the namespace.
    async fn put(
        &self,
        ns: String,
        image: Option<Image>,
        update: Option<Vec<String>>,
    ) -> Result<Image, Status> {
        let mut record = from_api(image)?;
        let d = self.0.clone();
        blocking(move || {
            let existing = d.meta.image(&ns, &record.name).ok();
            match (&existing, &update) {
                (Some(_), None) => {
                    return Err(Status::already_exists(format!(
                        "image {} already exists in namespace {ns:?}: remove it first or update it",
                        record.name
                    )))
                }
                (None, Some(_)) => {
                    return Err(Status::not_found(format!(
                        "image {} not found in namespace {ns:?}",
                        record.name
                    )))
                }
                _ => {}
            }
            if !d.store_has(&record.target.digest) {
                return Err(Status::failed_precondition(format!(
                    "image {}: target {} is not in the content store: pull or write it first",
                    record.name, record.target.digest
                )));
            }
            if let (Some(old), Some(paths)) = (&existing, &update) {
                record.created = old.created;
                if !paths.is_empty() {
                    let mut merged = old.clone();
                    for p in paths {
                        match p.as_str() {
                            "target" => merged.target = record.target.clone(),
                            "labels" => merged.labels = record.labels.clone(),
                            p if p.starts_with("labels.") => {
                                merged.labels = hull_metadata::merge_labels(
                                    &merged.labels,
                                    &record.labels,
                                    &[p.to_string()],
                                )
                                .map_err(meta_status)?
                            }
                            p => {
                                return Err(Status::invalid_argument(format!(
                                    "cannot update field {p:?} of image {}",
                                    record.name
                                )))
                            }
                        }
                    }
                    merged.updated = now();
                    record = merged;
                }
            }
            d.meta.create_namespace(&ns).map_err(meta_status)?;
            d.meta.put_image(&ns, &record).map_err(meta_status)?;
            let (topic, event) = crate::events::image_put(&record, existing.is_some());
            d.events.publish(&ns, topic, event);
            if update.is_some() {
                d.gc_after(&format!("updating image {}", record.name));
            }
            Ok(to_api(record))
        })
        .await
    }
}

#[tonic::async_trait]
impl Images for Service {
    async fn get(
        &self,
        req: Request<GetImageRequest>,
    ) -> Result<Response<GetImageResponse>, Status> {
        let ns = namespace(&req)?;
        let name = req.into_inner().name;
        let image = self.0.meta.image(&ns, &name).map_err(meta_status)?;
        Ok(Response::new(GetImageResponse {
            image: Some(to_api(image)),
        }))
    }

    async fn list(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let ns = namespace(&req)?;
        let filters = Filters::parse(&req.into_inner().filters)?;
        let images = self.0.meta.images(&ns).map_err(meta_status)?;
        Ok(Response::new(ListImagesResponse {
            images: images
                .into_iter()
                .filter(|i| matches(&filters, i))
                .map(to_api)
                .collect(),
        }))
    }

    async fn create(
        &self,
        req: Request<CreateImageRequest>,
    ) -> Result<Response<CreateImageResponse>, Status> {
        let ns = namespace(&req)?;
        let image = self.put(ns, req.into_inner().image, None).await?;
        Ok(Response::new(CreateImageResponse { image: Some(image) }))
    }

    async fn update(
        &self,
        req: Request<UpdateImageRequest>,
    ) -> Result<Response<UpdateImageResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let image = self
            .put(ns, r.image, Some(mask_paths(r.update_mask)))
            .await?;
        Ok(Response::new(UpdateImageResponse { image: Some(image) }))
    }

    async fn delete(&self, req: Request<DeleteImageRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let d = self.0.clone();
        blocking(move || {
            if let Some(target) = &r.target {
                let current = d.meta.image(&ns, &r.name).map_err(meta_status)?;
                if current.target.digest != target.digest {
                    return Err(Status::failed_precondition(format!(
                        "image {} now points at {}, not {}: not removed",
                        r.name, current.target.digest, target.digest
                    )));
                }
            }
            d.meta.delete_image(&ns, &r.name).map_err(meta_status)?;
            d.events
                .publish(&ns, "/images/delete", crate::events::image_delete(&r.name));
            d.gc_after(&format!("removing image {}", r.name));
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }
}
