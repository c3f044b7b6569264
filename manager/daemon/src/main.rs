//! hulld: Hull's manager daemon. Thin: argument parsing and logging here,
//! the work in [`server`], [`daemon`] and [`services`].

mod config;
mod daemon;
mod events;
mod events_ttrpc;
mod lock;
mod metrics;
mod network;
mod restart;
mod server;
mod services;
mod shim;
mod snapshotters;
mod tasks;
mod unpack;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hulld",
    version,
    about = "Hull's manager daemon: images and content over gRPC"
)]
struct Args {
    /// TOML config file (default: /etc/hull/hulld.toml if it exists)
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Persistent state directory (overrides the config)
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory (overrides the config)
    #[arg(long)]
    state: Option<PathBuf>,
    /// Socket to listen on (overrides the config)
    #[arg(long, short = 'a')]
    address: Option<PathBuf>,
    /// error, warn, info, debug or trace, or a tracing filter (overrides
    /// the config's log.level)
    #[arg(long)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Configuration helpers
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the default configuration (TOML)
    Default,
}

const DEFAULT_CONFIG: &str = "/etc/hull/hulld.toml";

fn load_config(args: &Args) -> Result<config::Config, config::ConfigError> {
    let mut config = match &args.config {
        Some(path) => config::Config::load(path)?,
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            config::Config::load(DEFAULT_CONFIG.as_ref())?
        }
        None => config::Config::default(),
    };
    if let Some(root) = &args.root {
        config.root = root.clone();
    }
    if let Some(state) = &args.state {
        config.state = state.clone();
    }
    if let Some(address) = &args.address {
        config.grpc.address = address.clone();
    }
    Ok(config)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Config {
        command: ConfigCommand::Default,
    }) = args.command
    {
        print!("{}", config::Config::default().to_toml());
        return ExitCode::SUCCESS;
    }
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hulld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let level = args.log_level.as_deref().unwrap_or(&config.log.level);
    let filter = match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hulld: log level {level:?}: {e} (use error, warn, info, debug or trace)");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hulld: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hulld: {e}");
            ExitCode::FAILURE
        }
    }
}
