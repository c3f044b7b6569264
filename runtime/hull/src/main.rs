//! `hull`: a thin command-line front end over the hull-container library.

mod cli;
mod commands;
mod resources;

use clap::Parser;
use hull_container::log;

fn main() {
    hull_container::process::unblock_signals();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Before hull opens anything itself: fds the caller leaked must not
    // reach the container, not even during setup (CVE-2024-21626).
    if let Some(n) = cli.command.preserved_fds() {
        let keep = n.max(0) + hull_container::process::listen_fds();
        if let Err(e) = hull_container::process::close_inherited_fds(keep) {
            eprintln!("hull: {e}");
            std::process::exit(1);
        }
    }
    let format = match cli.log_format {
        cli::LogFormat::Text => log::Format::Text,
        cli::LogFormat::Json => log::Format::Json,
    };
    if let Err(e) = log::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!(
            "hull: opening log file {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
        std::process::exit(1);
    }
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(failure) => {
            let msg = failure.error.to_string();
            log::error(&msg);
            if log::has_file() {
                eprintln!("{msg}");
            }
            std::process::exit(failure.code);
        }
    }
}
