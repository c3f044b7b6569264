//! `hullctl login` / `logout`: credentials checked by hulld against the
//! registry, then stored where docker and podman keep them (the docker
//! config, or the credential helper it names), and removed from there.

use crate::client::Client;
use crate::{status, LoginArgs, Result};
use std::io::Read;

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host (default: docker.io)
    server: Option<String>,
}

/// The registry host a login or logout is for, as typed or with a URL's
/// scheme and trailing slash (docker accepts both).
fn registry_host(server: Option<String>) -> String {
    let host = server.unwrap_or_else(|| "docker.io".into());
    host.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

fn config_path() -> Result<std::path::PathBuf> {
    hull_images::auth::default_path().ok_or_else(|| {
        "neither DOCKER_CONFIG nor HOME is set: cannot find the docker config".into()
    })
}

pub async fn login(c: &Client, args: LoginArgs) -> Result {
    let host = registry_host(args.server);
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
        .login(hull_api::transfer::LoginRequest {
            host: host.clone(),
            username: username.clone(),
            secret: password.clone(),
        })
        .await
        .map_err(status)?;
    let path = config_path()?;
    hull_images::auth::store(&path, &host, &username, &password).map_err(|e| e.to_string())?;
    let kept_by = hull_images::auth::helper(&path, &host)
        .ok()
        .flatten()
        .unwrap_or_else(|| path.display().to_string());
    println!("Login Succeeded ({host}; credentials in {kept_by})");
    Ok(())
}

/// Remove the stored credentials for a registry. Needs no daemon; like
/// docker, not being logged in is not an error.
pub fn logout(args: &LogoutArgs) -> Result {
    let host = registry_host(args.server.clone());
    let path = config_path()?;
    if hull_images::auth::erase(&path, &host).map_err(|e| e.to_string())? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
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
