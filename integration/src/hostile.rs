//! A registry that misbehaves on purpose: an HTTP/1.1 server on 127.0.0.1
//! in front of a real docker-registry, for the manager's fault tests. Two
//! kinds of misbehaviour:
//! - a [`Fault`] on the whole server (truncated, throttled or refused blob
//!   bodies), which a test may change while it runs;
//! - a [`Behaviour`] chosen by the first component of the repository name:
//!   `HOST/<behaviour>/<repo>:<tag>` serves `<repo>:<tag>` of the upstream
//!   registry, misbehaving as named (`HOST/slow-blobs/app:latest`), so one
//!   server plays every hostile registry a test needs.
//!
//! It records what clients asked for (request lines with their Range
//! headers) and how many blob downloads were in flight. One exchange per
//! connection (`Connection: close`) keeps it simple.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does to every blob response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    None,
    /// Send the headers, then only this many body bytes, then hang up.
    Truncate(usize),
    /// Send blob bodies at about this many bytes per second.
    Throttle(usize),
    /// Answer the first N requests for each manifest or blob with 503.
    Unavailable(usize),
    /// The `nth` (1-based) upload chunk (`PATCH`) gets only `forward` bytes
    /// of its body to the registry, then both connections are closed; with
    /// 0 it never reaches the registry.
    CutUpload { nth: usize, forward: usize },
}

/// Misbehaviour selected by the repository name's first component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The upstream manifest padded (valid JSON) to 5 MiB.
    HugeManifest,
    /// A manifest body that never ends (no Content-Length).
    EndlessManifest,
    /// Asks for a bearer token from a token server whose answer never ends.
    EndlessToken,
    /// Every manifest request gets a 500 whose body never ends.
    EndlessError,
    /// Blob bodies trickle: one byte every 200 ms.
    SlowBlobs,
    /// An index whose size (number of arm64 entries) is the tag, none for
    /// amd64: `big-index/app:15000`.
    BigIndex,
    /// Terminal escape sequences in platform names (tag `latest`, an index
    /// without amd64) and in an error body (tag `error`).
    Escapes,
    /// Every manifest and blob request is redirected to itself.
    RedirectLoop,
    /// The upstream manifest with its last layer listed one byte larger.
    WrongSize,
    /// Blob requests ignore Range and get the whole blob (200) with one
    /// byte changed.
    BadFullBlobs,
}

impl Behaviour {
    const ALL: [Behaviour; 10] = [
        Behaviour::HugeManifest,
        Behaviour::EndlessManifest,
        Behaviour::EndlessToken,
        Behaviour::EndlessError,
        Behaviour::SlowBlobs,
        Behaviour::BigIndex,
        Behaviour::Escapes,
        Behaviour::RedirectLoop,
        Behaviour::WrongSize,
        Behaviour::BadFullBlobs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::HugeManifest => "huge-manifest",
            Behaviour::EndlessManifest => "endless-manifest",
            Behaviour::EndlessToken => "endless-token",
            Behaviour::EndlessError => "endless-error",
            Behaviour::SlowBlobs => "slow-blobs",
            Behaviour::BigIndex => "big-index",
            Behaviour::Escapes => "escapes",
            Behaviour::RedirectLoop => "redirect-loop",
            Behaviour::WrongSize => "wrong-size",
            Behaviour::BadFullBlobs => "bad-full-blobs",
        }
    }

    fn from_name(name: &str) -> Option<Behaviour> {
        Behaviour::ALL.into_iter().find(|b| b.name() == name)
    }
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Where [`Behaviour::EndlessToken`] sends clients for a token.
const ENDLESS_TOKEN_PATH: &str = "/endless-token";

#[derive(Default)]
struct State {
    address: String,
    requests: Mutex<Vec<String>>,
    /// Requests per manifest/blob path so far (for `Fault::Unavailable`).
    seen: Mutex<std::collections::HashMap<String, usize>>,
    active_blobs: AtomicUsize,
    max_active_blobs: AtomicUsize,
    /// A manifest (body, media type) served for every manifest request.
    manifest: Mutex<Option<(Vec<u8>, String)>>,
    /// Upload chunks (`PATCH`) seen so far.
    patches: AtomicUsize,
    /// Request body bytes passed to the registry (blob uploads).
    uploaded: AtomicUsize,
    stop: AtomicBool,
}

pub struct HostileRegistry {
    pub address: String,
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    state: Arc<State>,
}

impl HostileRegistry {
    pub fn start(upstream: &str, fault: Fault) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let fault = Arc::new(Mutex::new(fault));
        let state = Arc::new(State {
            address: address.clone(),
            ..State::default()
        });
        let (f, st, up) = (fault.clone(), state.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (f, st, up) = (*f.lock().unwrap(), st.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, f, &st);
                });
            }
        });
        HostileRegistry {
            address,
            upstream: upstream.to_string(),
            fault,
            state,
        }
    }

    /// The reference that makes this server misbehave as `behaviour` while
    /// serving `repo_tag` (`app:latest`) of the upstream registry.
    pub fn image(&self, behaviour: Behaviour, repo_tag: &str) -> String {
        format!("{}/{}/{repo_tag}", self.address, behaviour.name())
    }

    /// The upstream registry's address.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Answer every manifest request with this document instead of the
    /// registry's (no Docker-Content-Digest header, as some registries).
    pub fn serve_manifest(&self, body: &[u8], media_type: &str) {
        *self.state.manifest.lock().unwrap() = Some((body.to_vec(), media_type.to_string()));
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// "GET /v2/... range=bytes=N-" lines, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Blob bytes clients sent to the registry through this server.
    pub fn uploaded_bytes(&self) -> usize {
        self.state.uploaded.load(Ordering::Relaxed)
    }

    /// The most blob downloads that were in flight at once.
    pub fn max_concurrent_blobs(&self) -> usize {
        self.state.max_active_blobs.load(Ordering::Relaxed)
    }

    /// Blob downloads in flight now (a client that went away ends its own).
    pub fn active_blobs(&self) -> usize {
        self.state.active_blobs.load(Ordering::Relaxed)
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.address);
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// A request or response head again, with "Connection: close".
fn closing_head(lines: &[String]) -> String {
    let mut out = String::new();
    for h in lines {
        if !h.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn header(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// One parsed request: what it asks for after the behaviour prefix.
struct Request {
    head: Vec<String>,
    /// `/v2/<repo>/manifests/<ref>` with the behaviour component removed.
    path: String,
    behaviour: Option<Behaviour>,
    is_manifest: bool,
    is_blob: bool,
    /// The tag or digest of a manifest request.
    object: String,
}

impl Request {
    fn parse(head: Vec<String>) -> Request {
        let line = head.first().cloned().unwrap_or_default();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let mut path = parts.next().unwrap_or("").to_string();
        let mut behaviour = None;
        if let Some(rest) = path.strip_prefix("/v2/") {
            if let Some((first, after)) = rest.split_once('/') {
                if let Some(b) = Behaviour::from_name(first) {
                    behaviour = Some(b);
                    path = format!("/v2/{after}");
                }
            }
        }
        let bare = path.split('?').next().unwrap_or("").to_string();
        let is_manifest = bare.contains("/manifests/");
        let is_blob = method == "GET" && bare.contains("/blobs/sha256:");
        let object = bare.rsplit('/').next().unwrap_or("").to_string();
        Request {
            head,
            path,
            behaviour,
            is_manifest,
            is_blob,
            object,
        }
    }

    fn method(&self) -> &str {
        self.head
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
    }

    /// The head to send upstream: the path without the behaviour prefix.
    fn upstream_head(&self) -> Vec<String> {
        let mut head = self.head.clone();
        let method = head[0]
            .split_whitespace()
            .next()
            .unwrap_or("GET")
            .to_string();
        head[0] = format!("{method} {} HTTP/1.1", self.path);
        head
    }
}

fn serve(client: TcpStream, upstream: &str, fault: Fault, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let head = read_head(&mut reader)?;
    let request_line = head.first().cloned().unwrap_or_default();
    let mut logged = format!(
        "{request_line} range={}",
        header(&head, "range").unwrap_or_default()
    );
    if let Some(r) = header(&head, "content-range") {
        logged.push_str(&format!(" content-range={r}"));
    }
    state.requests.lock().unwrap().push(logged);
    let mut client = client;
    if request_line.contains(&format!(" {ENDLESS_TOKEN_PATH}")) {
        return endless(
            &mut client,
            "200 OK",
            "application/json",
            b"{\"token\":\"",
            state,
        );
    }
    let req = Request::parse(head);
    let canned = state.manifest.lock().unwrap().clone();
    if let (Some((body, media_type)), true) = (canned, req.is_manifest) {
        return respond(
            &mut client,
            "200 OK",
            &[("Content-Type", &media_type)],
            &body,
        );
    }
    if let Some(b) = req.behaviour {
        if misbehave(b, &req, &mut client, upstream, state)? {
            return Ok(());
        }
    }
    if let (Fault::Unavailable(n), true) = (fault, req.is_manifest || req.path.contains("/blobs/"))
    {
        let mut seen = state.seen.lock().unwrap();
        let count = seen.entry(request_line.clone()).or_insert(0);
        *count += 1;
        if *count <= n {
            drop(seen);
            return respond(&mut client, "503 Service Unavailable", &[], b"");
        }
    }
    let trickle = req.behaviour == Some(Behaviour::SlowBlobs) && req.is_blob;
    let mut cut = None;
    if req.method() == "PATCH" {
        let nth = state.patches.fetch_add(1, Ordering::SeqCst) + 1;
        if let Fault::CutUpload { nth: n, forward } = fault {
            cut = (n == nth).then_some(forward);
        }
    }
    if cut == Some(0) {
        // Lost before it reached the registry: only the client notices.
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let body = Body {
        reader: &mut reader,
        cut,
    };
    forward(&req, body, &mut client, upstream, fault, trickle, state)
}

/// A request's body, and where to cut it ([`Fault::CutUpload`]).
struct Body<'a, R> {
    reader: &'a mut R,
    cut: Option<usize>,
}

/// Pass the request upstream and the answer back, with `fault` (or a
/// trickle) applied to the body.
fn forward(
    req: &Request,
    body: Body<'_, impl Read>,
    client: &mut TcpStream,
    upstream: &str,
    fault: Fault,
    trickle: bool,
    state: &State,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(closing_head(&req.upstream_head()).as_bytes())?;
    if !forward_body(req, body, &mut up, state)? {
        // Cut on purpose: the client and the registry both lose the line.
        let _ = up.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let fault = if req.is_blob { fault } else { Fault::None };
    let mut upr = BufReader::new(up);
    let response = read_head(&mut upr)?;
    client.write_all(closing_head(&response).as_bytes())?;
    if req.is_blob {
        let n = state.active_blobs.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_active_blobs.fetch_max(n, Ordering::SeqCst);
    }
    let result = if trickle {
        copy_trickling(&mut upr, client, state)
    } else {
        copy_body(&mut upr, client, fault)
    };
    if req.is_blob {
        state.active_blobs.fetch_sub(1, Ordering::SeqCst);
    }
    let _ = client.shutdown(Shutdown::Both);
    result
}

/// Pass the request body (Content-Length framed: what hull and the
/// registry tools send) upstream; false if [`Fault::CutUpload`] cut it.
fn forward_body(
    req: &Request,
    body: Body<'_, impl Read>,
    up: &mut TcpStream,
    state: &State,
) -> std::io::Result<bool> {
    let length: usize = header(&req.head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit = body.cut.map_or(length, |c| c.min(length));
    let mut buf = vec![0; 64 * 1024];
    let mut sent = 0;
    while sent < limit {
        let want = buf.len().min(limit - sent);
        let n = body.reader.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        up.write_all(&buf[..n])?;
        sent += n;
        if req.path.contains("/blobs/uploads/") {
            state.uploaded.fetch_add(n, Ordering::Relaxed);
        }
    }
    Ok(limit == length)
}

fn copy_body(from: &mut impl Read, to: &mut TcpStream, fault: Fault) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    let mut sent = 0usize;
    let started = std::time::Instant::now();
    loop {
        let want = match fault {
            Fault::Truncate(limit) if sent >= limit => return Ok(()),
            Fault::Truncate(limit) => buf.len().min(limit - sent),
            Fault::Throttle(_) | Fault::None | Fault::Unavailable(_) | Fault::CutUpload { .. } => {
                buf.len()
            }
        };
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        sent += n;
        if let Fault::Throttle(rate) = fault {
            // Stay on schedule: `sent` bytes may leave after sent/rate seconds.
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}

/// One byte every 200 ms, until the body ends or the client goes away.
fn copy_trickling(from: &mut impl Read, to: &mut TcpStream, state: &State) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    while !state.stop.load(Ordering::Relaxed) {
        if from.read(&mut byte)? == 0 {
            return Ok(());
        }
        to.write_all(&byte)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn respond(
    client: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    client.write_all(head.as_bytes())?;
    client.write_all(body)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// A body without Content-Length that never ends: `start`, then 'x's for
/// as long as the client reads.
fn endless(
    client: &mut TcpStream,
    status: &str,
    content_type: &str,
    start: &[u8],
    state: &State,
) -> std::io::Result<()> {
    client.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    client.write_all(start)?;
    let chunk = vec![b'x'; 64 * 1024];
    while !state.stop.load(Ordering::Relaxed) {
        client.write_all(&chunk)?;
    }
    Ok(())
}

/// GET `req`'s path upstream (with `extra` headers replacing the client's
/// Range); returns the status line, the Content-Type and the whole body.
fn fetch_upstream(
    req: &Request,
    upstream: &str,
    drop_range: bool,
) -> std::io::Result<(String, String, Vec<u8>)> {
    let head: Vec<String> = req
        .upstream_head()
        .into_iter()
        .filter(|h| !(drop_range && h.to_ascii_lowercase().starts_with("range:")))
        .collect();
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(closing_head(&head).as_bytes())?;
    let mut upr = BufReader::new(up);
    let response = read_head(&mut upr)?;
    let mut body = Vec::new();
    upr.read_to_end(&mut body)?;
    let content_type = header(&response, "content-type").unwrap_or_default();
    Ok((response[0].clone(), content_type, body))
}

/// Serve `req` as `behaviour` wants; false: forward it as is.
fn misbehave(
    behaviour: Behaviour,
    req: &Request,
    client: &mut TcpStream,
    upstream: &str,
    state: &State,
) -> std::io::Result<bool> {
    let manifest = req.is_manifest;
    match behaviour {
        Behaviour::HugeManifest if manifest => {
            let (_, media_type, body) = fetch_upstream(req, upstream, false)?;
            let mut doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            doc["annotations"] = serde_json::json!({"pad": "x".repeat(5 << 20)});
            let bytes = serde_json::to_vec(&doc).unwrap();
            respond(client, "200 OK", &[("Content-Type", &media_type)], &bytes)?;
        }
        Behaviour::EndlessManifest if manifest => {
            endless(
                client,
                "200 OK",
                OCI_MANIFEST,
                b"{\"schemaVersion\":2,\"pad\":\"",
                state,
            )?;
        }
        Behaviour::EndlessToken if manifest || req.is_blob => {
            if header(&req.head, "authorization").is_some_and(|a| a.starts_with("Bearer")) {
                return Ok(false);
            }
            let challenge = format!(
                "Bearer realm=\"http://{}{ENDLESS_TOKEN_PATH}\",service=\"hostile\"",
                state.address
            );
            respond(
                client,
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                b"",
            )?;
        }
        Behaviour::EndlessError if manifest => {
            endless(
                client,
                "500 Internal Server Error",
                "application/json",
                b"{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"",
                state,
            )?;
        }
        Behaviour::BigIndex if manifest => {
            let count: usize = req.object.parse().unwrap_or(15_000);
            let entries: Vec<serde_json::Value> = (0..count)
                .map(|i| {
                    serde_json::json!({
                        "mediaType": OCI_MANIFEST,
                        "digest": format!("sha256:{:064x}", i),
                        "size": 1,
                        "platform": {"os": "linux", "architecture": "arm64", "variant": format!("v{i}")},
                    })
                })
                .collect();
            let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
            let bytes = serde_json::to_vec(&index).unwrap();
            respond(client, "200 OK", &[("Content-Type", OCI_INDEX)], &bytes)?;
        }
        Behaviour::Escapes if manifest && req.object == "error" => {
            let body = serde_json::json!({"errors": [{
                "code": "DENIED\u{1b}[2J",
                "message": "\u{1b}]0;pwned\u{7}no entry\u{1b}[31m",
            }]});
            respond(
                client,
                "400 Bad Request",
                &[("Content-Type", "application/json")],
                &serde_json::to_vec(&body).unwrap(),
            )?;
        }
        Behaviour::Escapes if manifest => {
            let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{:064x}", 1),
                "size": 1,
                "platform": {"os": "linux\u{1b}[2J", "architecture": "arm64\u{1b}]0;pwned\u{7}"},
            }]});
            let bytes = serde_json::to_vec(&index).unwrap();
            respond(client, "200 OK", &[("Content-Type", OCI_INDEX)], &bytes)?;
        }
        Behaviour::RedirectLoop if manifest || req.is_blob => {
            let again = format!(
                "http://{}/v2/{}/{}",
                state.address,
                behaviour.name(),
                req.path.trim_start_matches("/v2/")
            );
            respond(client, "302 Found", &[("Location", &again)], b"")?;
        }
        Behaviour::WrongSize if manifest => {
            let (_, media_type, body) = fetch_upstream(req, upstream, false)?;
            let mut doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let layers = doc["layers"]
                .as_array_mut()
                .expect("a manifest, not an index");
            let last = layers.last_mut().unwrap();
            last["size"] = (last["size"].as_u64().unwrap() + 1).into();
            let bytes = serde_json::to_vec(&doc).unwrap();
            respond(client, "200 OK", &[("Content-Type", &media_type)], &bytes)?;
        }
        Behaviour::BadFullBlobs if req.is_blob => {
            let (status, _, mut body) = fetch_upstream(req, upstream, true)?;
            assert!(status.contains(" 200 "), "upstream blob: {status}");
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
            respond(
                client,
                "200 OK",
                &[("Content-Type", "application/octet-stream")],
                &body,
            )?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}
