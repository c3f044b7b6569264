//! The push half of the registry API: blob existence, upload sessions
//! (monolithic and chunked, with the session's offset read back after an
//! interruption), cross-repository mounts, and manifests.

use super::{header_value, Client, Error};
use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

/// What `POST /v2/<repo>/blobs/uploads/` gave us.
#[derive(Debug)]
pub enum UploadStart {
    /// The registry mounted the blob from the other repository: done.
    Mounted,
    /// An upload session to send the blob to.
    Session(Url),
}

/// A byte range of a local file, streamed as a request body (never held
/// in memory whole), and re-creatable for a retry.
#[derive(Clone)]
pub struct FileRange {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
}

/// The slowest upload a push waits for (bytes per second), before it
/// counts the registry as gone.
const MIN_UPLOAD_RATE: u64 = 100 << 10;

/// How much one read of a [`FileRange`] body takes.
const READ_SIZE: u64 = 256 << 10;

impl FileRange {
    fn body(&self) -> reqwest::Body {
        let state = (self.file.clone(), self.offset, self.offset + self.len);
        let stream = futures_util::stream::unfold(state, |(file, at, end)| async move {
            if at >= end {
                return None;
            }
            let want = (end - at).min(READ_SIZE) as usize;
            let f = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; want];
                let n = f.read_at(&mut buf, at)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the blob file is shorter than its size",
                    ));
                }
                buf.truncate(n);
                Ok(Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            let next = match &read {
                Ok(b) => at + b.len() as u64,
                Err(_) => end,
            };
            Some((read, (file, next, end)))
        });
        reqwest::Body::wrap_stream(stream)
    }
}

/// `repository:<repo>:pull,push`, and pull on the repositories blobs are
/// mounted from.
pub fn push_scope(repo: &str, mount_from: &[&str]) -> String {
    let mut scope = format!("repository:{repo}:pull,push");
    for from in mount_from.iter().filter(|f| **f != repo) {
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    scope
}

impl Client {
    /// `HEAD /v2/<repo>/blobs/<digest>`: whether the registry has it.
    pub async fn blob_exists(&self, repo: &str, digest: &str, scope: &str) -> Result<bool, Error> {
        let path = format!("v2/{repo}/blobs/{digest}");
        let response = self
            .send(Method::HEAD, &path, None, scope, HeaderMap::new())
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(response, &format!("blob {digest}")).await),
        }
    }

    /// Open an upload session, or mount `digest` from the repository
    /// `mount_from` of this registry.
    pub async fn start_upload(
        &self,
        repo: &str,
        digest: &str,
        mount_from: Option<&str>,
        scope: &str,
    ) -> Result<UploadStart, Error> {
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        if let Some(from) = mount_from.filter(|f| *f != repo) {
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, header_value("0")?);
        let response = self
            .send_url(Method::POST, url, scope, headers, Some(Bytes::new()))
            .await?;
        match response.status() {
            StatusCode::CREATED if mount_from.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED => Ok(UploadStart::Session(self.location(&response)?)),
            _ => Err(self
                .status_error(response, &format!("the upload of blob {digest}"))
                .await),
        }
    }

    /// `PATCH` one chunk at `range.offset` of the session; returns the
    /// session's next URL.
    pub async fn upload_chunk(
        &self,
        session: &Url,
        range: &FileRange,
        scope: &str,
    ) -> Result<Url, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value("application/octet-stream")?);
        headers.insert(CONTENT_LENGTH, header_value(&range.len.to_string())?);
        let last = range.offset + range.len.max(1) - 1;
        headers.insert(
            "Content-Range",
            header_value(&format!("{}-{last}", range.offset))?,
        );
        let response = self
            .send_stream(Method::PATCH, session.clone(), scope, headers, range)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(response, "an upload chunk").await);
        }
        self.location(&response)
    }

    /// `GET` the session: how many bytes the registry holds (the end of
    /// its `Range` + 1) and the URL to go on with.
    pub async fn upload_status(&self, session: &Url, scope: &str) -> Result<(Url, u64), Error> {
        let response = self
            .send_url(Method::GET, session.clone(), scope, HeaderMap::new(), None)
            .await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(self.status_error(response, "the upload session").await);
        }
        let received = response
            .headers()
            .get("Range")
            .and_then(|v| v.to_str().ok())
            .and_then(range_end)
            .map_or(0, |end| end + 1);
        Ok((self.location(&response)?, received))
    }

    /// Close the session with `PUT ?digest=`, sending `rest` (the whole
    /// blob for a monolithic upload, nothing after chunks).
    pub async fn finish_upload(
        &self,
        session: &Url,
        digest: &str,
        rest: Option<&FileRange>,
        scope: &str,
    ) -> Result<(), Error> {
        let mut url = session.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value("application/octet-stream")?);
        let response = match rest {
            Some(range) => {
                headers.insert(CONTENT_LENGTH, header_value(&range.len.to_string())?);
                self.send_stream(Method::PUT, url, scope, headers, range)
                    .await?
            }
            None => {
                headers.insert(CONTENT_LENGTH, header_value("0")?);
                self.send_url(Method::PUT, url, scope, headers, Some(Bytes::new()))
                    .await?
            }
        };
        if response.status() != StatusCode::CREATED {
            return Err(self
                .status_error(response, &format!("the upload of blob {digest}"))
                .await);
        }
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; checks the digest the
    /// registry computed, when it says one.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        scope: &str,
    ) -> Result<(), Error> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value(media_type)?);
        let expected = hull_content::Digest::of(&bytes).to_string();
        let response = self
            .send_url(Method::PUT, url, scope, headers, Some(bytes))
            .await?;
        let what = format!("manifest {repo}:{reference}");
        if !response.status().is_success() {
            return Err(self.status_error(response, &what).await);
        }
        let said = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&expected);
        if said != expected {
            return Err(Error::Protocol {
                detail: format!("{what}: the registry stored digest {said}, we sent {expected}"),
            });
        }
        Ok(())
    }

    /// A request with a streamed file body. Not re-sent after a challenge:
    /// the session's first request already got the token it needs.
    async fn send_stream(
        &self,
        method: Method,
        url: Url,
        scope: &str,
        headers: HeaderMap,
        range: &FileRange,
    ) -> Result<reqwest::Response, Error> {
        // A bearer token expires (60 s by default): a long chunked upload
        // gets a fresh one before a chunk rather than a 401 it cannot
        // answer (a streamed body is not sent twice).
        self.refresh_token(scope).await?;
        let mut request = self.http.request(method, url).headers(headers);
        request = request.body(range.body());
        if let Some(auth) = self.authorization(scope) {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        // The body may take long, so the bound grows with it: the head
        // timeout plus the body at the slowest rate we wait for. A registry
        // that takes the body and never answers is then an interruption
        // (the caller resumes or starts over), not a push that hangs.
        let limit = super::HEAD_TIMEOUT + Duration::from_secs(range.len / MIN_UPLOAD_RATE);
        match tokio::time::timeout(limit, request.send()).await {
            Ok(sent) => sent.map_err(|e| Error::Interrupted {
                detail: super::error_chain(&e),
            }),
            Err(_) => Err(Error::Interrupted {
                detail: format!(
                    "no answer to an upload of {} bytes within {}s",
                    range.len,
                    limit.as_secs()
                ),
            }),
        }
    }

    /// Get a new bearer token for `scope` if the registry wants tokens and
    /// the one held has run out.
    async fn refresh_token(&self, scope: &str) -> Result<(), Error> {
        let challenge = self.challenge.lock().expect("challenge lock").clone();
        match challenge {
            Some(c @ super::challenge::Challenge::Bearer { .. })
                if self.authorization(scope).is_none() =>
            {
                self.answer(&c, scope).await
            }
            _ => Ok(()),
        }
    }

    /// The `Location` of an upload answer, resolved against the registry.
    fn location(&self, response: &reqwest::Response) -> Result<Url, Error> {
        let value = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol {
                detail: format!(
                    "the registry answered {} without a Location for the upload",
                    response.status()
                ),
            })?;
        self.base.join(value).map_err(|e| Error::Protocol {
            detail: format!("the registry's upload Location {value:?}: {e}"),
        })
    }
}

/// `0-1023` → 1023.
fn range_end(v: &str) -> Option<u64> {
    let v = v.trim().trim_start_matches("bytes=");
    v.split_once('-')?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_ranges() {
        assert_eq!(push_scope("a/b", &[]), "repository:a/b:pull,push");
        assert_eq!(push_scope("a/b", &["a/b"]), "repository:a/b:pull,push");
        assert_eq!(
            push_scope("new", &["old", "x/y"]),
            "repository:new:pull,push repository:old:pull repository:x/y:pull"
        );
        assert_eq!(range_end("0-1023"), Some(1023));
        assert_eq!(range_end("bytes=0-9"), Some(9));
        assert_eq!(range_end("junk"), None);
    }
}
