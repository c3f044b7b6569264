//! hullctl: the command line client of hulld (images, content, namespaces,
//! registry login), in the spirit of ctr and nerdctl.

mod client;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use client::Client;
use hull_api::content::*;
use hull_api::images::*;
use hull_api::introspection::*;
use hull_api::namespaces::*;
use hull_api::transfer::*;
use output::{age, print_json, safe, size, table, Format};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hullctl", version, about = "Command line client for hulld")]
struct Cli {
    /// hulld's socket
    #[arg(long, short = 'a', env = "HULL_ADDRESS", default_value = hull_api::DEFAULT_ADDRESS, global = true)]
    address: PathBuf,
    /// Namespace to act in
    #[arg(long, short = 'n', env = "HULL_NAMESPACE", default_value = hull_api::DEFAULT_NAMESPACE, global = true)]
    namespace: String,
    /// Output: human tables, or JSON for scripts
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Manage images
    #[command(subcommand, alias = "image", alias = "i")]
    Images(ImagesCmd),
    /// Manage content (blobs)
    #[command(subcommand)]
    Content(ContentCmd),
    /// Manage namespaces
    #[command(subcommand, alias = "namespace", alias = "ns")]
    Namespaces(NamespacesCmd),
    /// Leases that keep content from garbage collection
    #[command(subcommand, alias = "lease")]
    Leases(LeasesCmd),
    /// Log in to a registry (credentials go to ~/.docker/config.json)
    Login(LoginArgs),
    /// Client and server versions
    Version,
}

#[derive(clap::Args)]
struct PullArgs {
    reference: String,
    /// os/arch[/variant] to pull from a multi-platform image
    #[arg(long)]
    platform: Option<String>,
    /// Layers downloaded at once (default: hulld's config)
    #[arg(long)]
    max_concurrent_downloads: Option<u32>,
    /// No progress output
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Names only
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show an image record (JSON)
    Inspect { name: String },
    /// Remove images (content nothing else uses is garbage-collected)
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name
    Tag { source: String, target: String },
}

#[derive(Subcommand)]
enum ContentCmd {
    /// List the blobs visible in the namespace
    #[command(alias = "list")]
    Ls {
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Write a blob to stdout
    Get { digest: String },
    /// Remove blobs from the namespace
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Fetch an image's content without creating an image record
    Fetch(PullArgs),
    /// In-progress downloads (ingests), e.g. of an interrupted pull
    Active,
    /// Remove blobs no image or lease needs
    Gc,
}

#[derive(Subcommand)]
enum NamespacesCmd {
    #[command(alias = "list")]
    Ls {
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    Create {
        name: String,
    },
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LeasesCmd {
    #[command(alias = "list")]
    Ls,
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(clap::Args)]
struct LoginArgs {
    /// Registry host (default: docker.io)
    server: Option<String>,
    #[arg(long, short = 'u')]
    username: Option<String>,
    #[arg(long, short = 'p')]
    password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    password_stdin: bool,
}

type Result<T = (), E = String> = std::result::Result<T, E>;

fn status(e: tonic::Status) -> String {
    safe(e.message()).into_owned()
}

fn descriptor_json(d: &Option<Descriptor>) -> serde_json::Value {
    match d {
        Some(d) => json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size}),
        None => serde_json::Value::Null,
    }
}

fn image_json(i: &Image) -> serde_json::Value {
    json!({
        "name": i.name,
        "target": descriptor_json(&i.target),
        "labels": i.labels,
        "createdAt": i.created_at,
        "updatedAt": i.updated_at,
    })
}

/// Credentials from the user's docker config for the image's registry only
/// (never send all of them to the daemon).
fn credentials_for(reference: &str) -> Result<Vec<Credential>> {
    let Ok(r) = reference.parse::<hull_images::Reference>() else {
        return Ok(Vec::new()); // hulld reports the bad reference
    };
    let Some(path) = hull_images::auth::default_path() else {
        return Ok(Vec::new());
    };
    let all = hull_images::auth::read(&path).map_err(|e| e.to_string())?;
    Ok(hull_images::pull::lookup_credentials(&all, &r.domain)
        .map(|(u, s)| Credential {
            host: r.domain.clone(),
            username: u.clone(),
            secret: s.clone(),
        })
        .into_iter()
        .collect())
}

async fn pull(c: &Client, args: PullArgs, store_image: bool, format: Format) -> Result {
    let started = std::time::Instant::now();
    let request = PullRequest {
        credentials: credentials_for(&args.reference)?,
        reference: args.reference,
        platform: args.platform.unwrap_or_default(),
        store_image,
        max_concurrent_downloads: args.max_concurrent_downloads.unwrap_or(0),
    };
    let mut stream = c
        .transfer()
        .pull(request)
        .await
        .map_err(status)?
        .into_inner();
    let quiet = args.quiet || format == Format::Json;
    let mut progress = progress::Progress::new(output::stderr_is_tty(), quiet);
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
            "seconds": secs,
        })),
        Format::Table => {
            let digest = d.target.map(|t| t.digest).unwrap_or_default();
            println!(
                "{} {}: {} ({} blobs, {} fetched in {secs:.1} s)",
                if store_image { "pulled" } else { "fetched" },
                safe(&d.name),
                safe(&digest),
                d.blobs,
                size(d.bytes_fetched)
            );
        }
    }
    Ok(())
}

async fn images(c: &Client, cmd: ImagesCmd, format: Format) -> Result {
    let mut images = c.images();
    match cmd {
        ImagesCmd::Ls { quiet } => {
            let list = images
                .list(ListImagesRequest {})
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
                            vec![i.name.clone(), t.media_type, t.digest, age(i.created_at)]
                        })
                        .collect();
                    print!("{}", table(&["REF", "TYPE", "DIGEST", "CREATED"], &rows));
                }
            }
        }
        ImagesCmd::Inspect { name } => {
            let image = images
                .get(GetImageRequest {
                    name: normalise(&name)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            print_json(&image_json(&image));
        }
        ImagesCmd::Rm { names } => {
            let mut failed = false;
            for name in names {
                let name = normalise(&name)?;
                match images
                    .delete(DeleteImageRequest { name: name.clone() })
                    .await
                {
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
            let src = images
                .get(GetImageRequest {
                    name: normalise(&source)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            let image = Image {
                name: normalise(&target)?,
                labels: src.labels,
                target: src.target,
                created_at: 0,
                updated_at: 0,
            };
            let created = images
                .create(CreateImageRequest { image: Some(image) })
                .await
                .map_err(status)?
                .into_inner();
            println!("{}", safe(&created.name));
        }
    }
    Ok(())
}

/// Users type `busybox`; records are `docker.io/library/busybox:latest`.
fn normalise(name: &str) -> Result<String> {
    name.parse::<hull_images::Reference>()
        .map(|r| r.to_string())
        .map_err(|e| e.to_string())
}

async fn content(c: &Client, cmd: ContentCmd, format: Format) -> Result {
    let mut content = c.content();
    match cmd {
        ContentCmd::Ls { quiet } => {
            let blobs = content
                .list(ListContentRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .blobs;
            match (format, quiet) {
                (Format::Json, _) => print_json(
                    &blobs
                        .iter()
                        .map(|b| json!({"digest": b.digest, "size": b.size}))
                        .collect(),
                ),
                (Format::Table, true) => blobs.iter().for_each(|b| println!("{}", safe(&b.digest))),
                (Format::Table, false) => {
                    let rows: Vec<Vec<String>> = blobs
                        .iter()
                        .map(|b| vec![b.digest.clone(), size(b.size)])
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
        ContentCmd::Fetch(args) => pull(c, args, false, format).await?,
        ContentCmd::Active => {
            let statuses = content
                .list_statuses(ListStatusesRequest {})
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
                        .map(|s| vec![s.r#ref.clone(), size(s.offset), size(s.total)])
                        .collect();
                    print!("{}", table(&["REF", "OFFSET", "TOTAL"], &rows));
                }
            }
        }
        ContentCmd::Gc => {
            let r = content
                .garbage_collect(GarbageCollectRequest {})
                .await
                .map_err(status)?
                .into_inner();
            match format {
                Format::Json => print_json(&json!({"removed": r.removed, "bytes": r.bytes})),
                Format::Table => println!("removed {} blobs ({})", r.removed.len(), size(r.bytes)),
            }
        }
    }
    Ok(())
}

async fn namespaces(c: &Client, cmd: NamespacesCmd, format: Format) -> Result {
    let mut ns = c.namespaces();
    match cmd {
        NamespacesCmd::Ls { quiet } => {
            let list = ns
                .list(ListNamespacesRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .namespaces;
            match (format, quiet) {
                (Format::Json, _) => {
                    print_json(&list.iter().map(|n| json!({"name": n.name})).collect())
                }
                (Format::Table, true) => list.iter().for_each(|n| println!("{}", safe(&n.name))),
                (Format::Table, false) => {
                    let rows: Vec<Vec<String>> =
                        list.iter().map(|n| vec![n.name.clone()]).collect();
                    print!("{}", table(&["NAME"], &rows));
                }
            }
        }
        NamespacesCmd::Create { name } => {
            ns.create(CreateNamespaceRequest { name: name.clone() })
                .await
                .map_err(status)?;
            println!("{name}");
        }
        NamespacesCmd::Rm { names } => {
            for name in names {
                ns.delete(DeleteNamespaceRequest { name: name.clone() })
                    .await
                    .map_err(status)?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

async fn leases(c: &Client, cmd: LeasesCmd, format: Format) -> Result {
    use hull_api::leases::*;
    let mut leases = c.leases();
    match cmd {
        LeasesCmd::Ls => {
            let list = leases
                .list(ListLeasesRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .leases;
            match format {
                Format::Json => print_json(
                    &list
                        .iter()
                        .map(|l| json!({"id": l.id, "resources": l.resources, "expiresAt": l.expires_at}))
                        .collect(),
                ),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|l| vec![l.id.clone(), l.resources.len().to_string()])
                        .collect();
                    print!("{}", table(&["ID", "RESOURCES"], &rows));
                }
            }
        }
        LeasesCmd::Rm { ids } => {
            for id in ids {
                leases
                    .delete(DeleteLeaseRequest { id: id.clone() })
                    .await
                    .map_err(status)?;
                println!("{id}");
            }
        }
    }
    Ok(())
}

async fn login(c: &Client, args: LoginArgs) -> Result {
    let host = args.server.unwrap_or_else(|| "docker.io".into());
    let host = host
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => return Err("use --password or --password-stdin, not both".into()),
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .map_err(|e| format!("reading the password from stdin: {e}"))?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt_secret("Password: ")?,
    };
    c.transfer()
        .login(LoginRequest {
            host: host.clone(),
            username: username.clone(),
            secret: password.clone(),
        })
        .await
        .map_err(status)?;
    let path = hull_images::auth::default_path()
        .ok_or("neither DOCKER_CONFIG nor HOME is set: cannot store credentials")?;
    hull_images::auth::store(&path, &host, &username, &password).map_err(|e| e.to_string())?;
    println!(
        "Login Succeeded ({host}; credentials in {})",
        path.display()
    );
    Ok(())
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading {}: {e}", label.trim_end_matches(": ")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Read a line with the terminal's echo off (when stdin is a terminal), as
/// docker login does.
fn prompt_secret(label: &str) -> Result<String> {
    use std::os::fd::AsRawFd;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it or fails (not a tty).
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: setting attributes of our own stdin.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = prompt(label);
    if tty {
        // SAFETY: restoring what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    line
}

async fn version(c: &Client, format: Format) -> Result {
    let server = c
        .introspection()
        .version(VersionRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let client_version = env!("CARGO_PKG_VERSION");
    match format {
        Format::Json => print_json(&json!({
            "client": {"version": client_version},
            "server": {"version": server.version, "revision": server.revision},
        })),
        Format::Table => {
            println!("Client:\n  Version:  {client_version}");
            println!(
                "Server:\n  Version:  {}\n  Revision: {}",
                safe(&server.version),
                safe(&server.revision)
            );
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> Result {
    let c = Client::connect(&cli.address, &cli.namespace).await?;
    match cli.command {
        Command::Pull(args) => pull(&c, args, true, cli.format).await,
        Command::Images(cmd) => images(&c, cmd, cli.format).await,
        Command::Content(cmd) => content(&c, cmd, cli.format).await,
        Command::Namespaces(cmd) => namespaces(&c, cmd, cli.format).await,
        Command::Leases(cmd) => leases(&c, cmd, cli.format).await,
        Command::Login(args) => login(&c, args).await,
        Command::Version => version(&c, cli.format).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hullctl: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hullctl: {}", safe(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_like_docker() {
        assert_eq!(
            normalise("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert!(normalise("Bad//Name").is_err());
    }
}
