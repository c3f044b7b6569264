use super::{blocking, meta_status, namespace, now, Shared};
use hull_api::images::images_server::Images;
use hull_api::images::*;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

pub fn to_api(i: hull_metadata::Image) -> Image {
    Image {
        name: i.name,
        target: Some(Descriptor {
            media_type: i.target.media_type,
            digest: i.target.digest,
            size: i.target.size,
        }),
        labels: i.labels.into_iter().collect(),
        created_at: i.created,
        updated_at: i.updated,
    }
}

/// Check a client-supplied image and turn it into a record.
fn from_api(i: Option<Image>) -> Result<hull_metadata::Image, Status> {
    let i = i.ok_or_else(|| Status::invalid_argument("missing image"))?;
    let name: hull_images::Reference = i
        .name
        .parse()
        .map_err(|e: hull_images::InvalidReference| Status::invalid_argument(e.to_string()))?;
    let t = i
        .target
        .ok_or_else(|| Status::invalid_argument(format!("image {name}: missing target")))?;
    t.digest
        .parse::<hull_content::Digest>()
        .map_err(|e| Status::invalid_argument(format!("image {name}: {e}")))?;
    Ok(hull_metadata::Image {
        name: name.to_string(),
        target: hull_metadata::Descriptor {
            media_type: t.media_type,
            digest: t.digest,
            size: t.size,
        },
        labels: i.labels.into_iter().collect(),
        created: now(),
        updated: now(),
    })
}

impl Service {
    /// Create (`must_exist` false) or update (true) an image record; its
    /// target must already be content of the namespace.
    async fn put(
        &self,
        ns: String,
        image: Option<Image>,
        must_exist: bool,
    ) -> Result<Image, Status> {
        let mut record = from_api(image)?;
        let d = self.0.clone();
        blocking(move || {
            let existing = d.meta.image(&ns, &record.name).ok();
            match (&existing, must_exist) {
                (Some(_), false) => {
                    return Err(Status::already_exists(format!(
                        "image {} already exists in namespace {ns:?}: remove it first or update it",
                        record.name
                    )))
                }
                (None, true) => {
                    return Err(Status::not_found(format!(
                        "image {} not found in namespace {ns:?}",
                        record.name
                    )))
                }
                _ => {}
            }
            let has = d.meta.content(&ns).map_err(meta_status)?;
            if !has.contains(&record.target.digest) {
                return Err(Status::failed_precondition(format!(
                    "image {}: target {} is not content of namespace {ns:?}: pull or import it first",
                    record.name, record.target.digest
                )));
            }
            if let Some(old) = existing {
                record.created = old.created;
            }
            d.meta.put_image(&ns, &record).map_err(meta_status)?;
            if must_exist {
                d.gc_after(&format!("updating image {}", record.name));
            }
            Ok(to_api(record))
        })
        .await
    }
}

#[tonic::async_trait]
impl Images for Service {
    async fn get(&self, req: Request<GetImageRequest>) -> Result<Response<Image>, Status> {
        let ns = namespace(&req)?;
        let name = req.into_inner().name;
        let image = self.0.meta.image(&ns, &name).map_err(meta_status)?;
        Ok(Response::new(to_api(image)))
    }

    async fn list(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let ns = namespace(&req)?;
        let images = self.0.meta.images(&ns).map_err(meta_status)?;
        Ok(Response::new(ListImagesResponse {
            images: images.into_iter().map(to_api).collect(),
        }))
    }

    async fn create(&self, req: Request<CreateImageRequest>) -> Result<Response<Image>, Status> {
        let ns = namespace(&req)?;
        Ok(Response::new(
            self.put(ns, req.into_inner().image, false).await?,
        ))
    }

    async fn update(&self, req: Request<UpdateImageRequest>) -> Result<Response<Image>, Status> {
        let ns = namespace(&req)?;
        Ok(Response::new(
            self.put(ns, req.into_inner().image, true).await?,
        ))
    }

    async fn delete(
        &self,
        req: Request<DeleteImageRequest>,
    ) -> Result<Response<DeleteImageResponse>, Status> {
        let ns = namespace(&req)?;
        let name = req.into_inner().name;
        let d = self.0.clone();
        blocking(move || {
            d.meta.delete_image(&ns, &name).map_err(meta_status)?;
            d.gc_after(&format!("removing image {name}"));
            Ok(())
        })
        .await?;
        Ok(Response::new(DeleteImageResponse {}))
    }
}
