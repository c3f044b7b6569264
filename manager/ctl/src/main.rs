//! hullctl: the command line client of hulld (images, content, namespaces,
//! leases, registry login), in the spirit of ctr and nerdctl. It speaks
//! containerd's API, so it also works against containerd for what both
//! serve, plus hull's transfer (daemon-side pull) and GC services.

mod archive;
mod client;
mod containers;
mod content;
mod images;
mod leases;
mod login;
mod namespaces;
mod network;
mod output;
mod progress;
mod pull;
mod push;
mod snapshots;

use clap::{Parser, Subcommand};
use client::Client;
use hull_api::types::Descriptor;
use output::{print_json, safe, Format};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hullctl", version, about = "Command line client for hulld")]
struct Cli {
    /// hulld's socket
    #[arg(long, short = 'a', env = "HULL_ADDRESS", default_value = hull_api::DEFAULT_ADDRESS)]
    address: PathBuf,
    /// Namespace to act in
    #[arg(long, short = 'n', env = "HULL_NAMESPACE", default_value = hull_api::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Output: human tables, or JSON for scripts
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Format,
    /// Where hullctl keeps containers' files (hostname, hosts, logs)
    #[arg(
        long,
        env = "HULLCTL_DATA_ROOT",
        default_value = "/var/lib/hullctl",
        global = true
    )]
    data_root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Push an image to a registry
    Push(push::PushArgs),
    /// Give an image another name (as `images tag`)
    Tag { source: String, target: String },
    /// Write images to an archive (as `images export`)
    Save(archive::ExportArgs),
    /// Read images from an archive (as `images import`)
    Load(archive::ImportArgs),
    /// Manage images
    #[command(subcommand, alias = "image", alias = "i")]
    Images(ImagesCmd),
    /// Manage content (blobs)
    #[command(subcommand)]
    Content(ContentCmd),
    /// Manage namespaces
    #[command(subcommand, alias = "namespace", alias = "ns")]
    Namespaces(NamespacesCmd),
    /// Manage networks (CNI bridge networks)
    #[command(subcommand, alias = "net")]
    Network(network::NetworkCmd),
    /// Leases that keep content from garbage collection
    #[command(subcommand, alias = "lease")]
    Leases(LeasesCmd),
    /// Snapshots (unpacked layers, container root filesystems)
    #[command(alias = "snapshot")]
    Snapshots {
        /// Snapshotter (default: hulld's, overlayfs)
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
        #[command(subcommand)]
        command: SnapshotsCmd,
    },
    /// Log in to a registry (credentials go to ~/.docker/config.json or its credential helper)
    Login(LoginArgs),
    /// Log out of a registry (removes the stored credentials)
    Logout(login::LogoutArgs),
    /// Client and server versions
    Version,
    #[command(flatten)]
    Containers(containers::ContainerCmd),
}

#[derive(clap::Args, Clone)]
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
    /// Only download; do not unpack the layers into snapshots
    #[arg(long)]
    no_unpack: bool,
    /// Snapshotter to unpack into (default: hulld's, overlayfs)
    #[arg(long)]
    snapshotter: Option<String>,
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
    /// Write images as an OCI layout tar (with Docker's manifest.json)
    Export(archive::ExportArgs),
    /// Read images from an OCI layout or docker save tar (maybe gzipped)
    Import(archive::ImportArgs),
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

#[derive(Subcommand)]
enum SnapshotsCmd {
    /// List snapshots
    #[command(alias = "list")]
    Ls,
    /// One snapshot's record (JSON)
    Info { key: String },
    /// Snapshots as a tree of parents and children
    Tree,
    /// Disk use of one or all snapshots
    Usage { key: Option<String> },
    /// Remove snapshots (refused while one has children)
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// How to mount an active snapshot or a view (JSON)
    Mounts { key: String },
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

async fn version(c: &Client, format: Format) -> Result {
    let server = c.version().version(()).await.map_err(status)?.into_inner();
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

async fn run(cli: Cli) -> Result<i32> {
    if let Command::Logout(args) = &cli.command {
        // Only the user's docker config changes: no daemon needed.
        return login::logout(args).map(|()| 0);
    }
    let c = Client::connect(&cli.address, &cli.namespace).await?;
    let done = |r: Result| r.map(|()| 0);
    match cli.command {
        Command::Pull(args) => done(pull::pull(&c, args, true, cli.format).await),
        Command::Push(args) => done(push::push(&c, args, cli.format).await),
        Command::Tag { source, target } => {
            done(images::images(&c, ImagesCmd::Tag { source, target }, cli.format).await)
        }
        Command::Save(args) => done(archive::export(&c, args).await),
        Command::Load(args) => done(archive::import(&c, args, cli.format).await),
        Command::Images(cmd) => done(images::images(&c, cmd, cli.format).await),
        Command::Content(cmd) => done(content::content(&c, cmd, cli.format).await),
        Command::Namespaces(cmd) => done(namespaces::namespaces(&c, cmd, cli.format).await),
        Command::Network(cmd) => done(network::network(&c, cmd, cli.format).await),
        Command::Leases(cmd) => done(leases::leases(&c, cmd, cli.format).await),
        Command::Snapshots {
            snapshotter,
            command,
        } => done(snapshots::snapshots(&c, &snapshotter, command, cli.format).await),
        Command::Login(args) => done(login::login(&c, args).await),
        Command::Logout(_) => unreachable!("logout runs before connecting"),
        Command::Version => done(version(&c, cli.format).await),
        Command::Containers(cmd) => {
            containers::dispatch(&c, cmd, cli.format, &cli.data_root, &cli.namespace).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // docker's status for a failure of the client or daemon before a
    // container ran: 125 for run/exec-like commands, 1 otherwise.
    let failure: u8 = if matches!(cli.command, Command::Containers(_)) {
        125
    } else {
        1
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hullctl: starting the async runtime: {e}");
            return ExitCode::from(failure);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("hullctl: {}", safe(&e));
            ExitCode::from(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_like_docker() {
        assert_eq!(
            images::normalise("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert!(images::normalise("Bad//Name").is_err());
    }
}
