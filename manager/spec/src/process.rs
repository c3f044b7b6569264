//! config.json's `process`: what runs, as whom, where, with what.

use crate::env::environment;
use crate::user::{self, UserOrigin};
use crate::{ImageConfig, RootfsFiles, RunOptions, SpecError};
use serde_json::{json, Value};

/// The command: the entrypoint (the image's, or `--entrypoint`, which also
/// drops the image's Cmd) followed by the arguments (the user's, else the
/// image's Cmd when the entrypoint is the image's).
pub(crate) fn args(image: &ImageConfig, opts: &RunOptions) -> Result<Vec<String>, SpecError> {
    let mut args: Vec<String> = match &opts.entrypoint {
        // `--entrypoint ""` arrives as [""]: no entrypoint at all.
        Some(entrypoint) => entrypoint
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect(),
        None => image.entrypoint.clone(),
    };
    if !opts.args.is_empty() {
        args.extend(opts.args.iter().cloned());
    } else if opts.entrypoint.is_none() {
        args.extend(image.cmd.iter().cloned());
    }
    match args.first() {
        None => Err(SpecError::NoCommand),
        Some(first) if first.is_empty() => Err(SpecError::invalid(
            "command",
            "",
            "the program name is empty: give the program to run first",
        )),
        Some(_) => {
            if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
                return Err(SpecError::invalid(
                    "command",
                    bad.clone(),
                    "an argument contains a NUL byte, which exec cannot pass",
                ));
            }
            Ok(args)
        }
    }
}

/// The working directory: `-w`, else the image's WORKDIR, else "/".
fn cwd(image: &ImageConfig, opts: &RunOptions) -> Result<String, SpecError> {
    let (what, dir) = match (&opts.workdir, image.working_dir.as_str()) {
        (Some(w), _) => ("--workdir", w.as_str()),
        (None, "") => return Ok("/".into()),
        (None, w) => ("the image's WORKDIR", w),
    };
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err(SpecError::invalid(
            what,
            dir,
            "the working directory must be an absolute path, e.g. /app",
        ));
    }
    Ok(dir.to_string())
}

/// `--ulimit`s, the last one of each name winning. Without any, no rlimits:
/// the container inherits the runtime's, as nerdctl (which removes
/// containerd's default RLIMIT_NOFILE 1024 "to match containerd/CRI") and
/// docker (which inherits the daemon's) both do.
fn rlimits(opts: &RunOptions) -> Vec<Value> {
    let mut out: Vec<(&str, Value)> = Vec::new();
    for u in &opts.ulimits {
        let limit = json!({"type": u.name, "soft": u.soft, "hard": u.hard});
        match out.iter_mut().find(|(n, _)| *n == u.name) {
            Some(slot) => slot.1 = limit,
            None => out.push((&u.name, limit)),
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

/// The whole `process` object.
pub(crate) fn process(
    image: &ImageConfig,
    opts: &RunOptions,
    files: &dyn RootfsFiles,
    hostname: Option<&str>,
    capabilities: &[&str],
) -> Result<Value, SpecError> {
    let args = args(image, opts)?;
    let env = environment(&image.env, hostname, opts.tty, &opts.env)?;
    let cwd = cwd(image, opts)?;
    let resolved = match &opts.user {
        Some(u) => user::resolve(u, UserOrigin::Option, &opts.group_add, files)?,
        None => user::resolve(&image.user, UserOrigin::Image, &opts.group_add, files)?,
    };
    let mut process = json!({
        "terminal": opts.tty,
        "user": {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": resolved.additional_gids,
        },
        "args": args,
        "env": env,
        "cwd": cwd,
        // Not inheritable or ambient: a non-root user gets no capabilities
        // in effect unless a file grants them, as in docker.
        "capabilities": {
            "bounding": capabilities,
            "effective": capabilities,
            "permitted": capabilities,
        },
        "noNewPrivileges": opts.no_new_privileges,
    });
    let rlimits = rlimits(opts);
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn run(entrypoint: Option<&[&str]>, args: &[&str]) -> RunOptions {
        RunOptions {
            entrypoint: entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_rules() {
        let img = image(&["/entry.sh"], &["serve", "--port", "80"]);
        assert_eq!(
            args(&img, &run(None, &[])).unwrap(),
            ["/entry.sh", "serve", "--port", "80"]
        );
        assert_eq!(
            args(&img, &run(None, &["sh"])).unwrap(),
            ["/entry.sh", "sh"]
        );
        // --entrypoint drops the image's Cmd.
        assert_eq!(
            args(&img, &run(Some(&["/bin/sh"]), &[])).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            args(&img, &run(Some(&["/bin/sh"]), &["-c", "id"])).unwrap(),
            ["/bin/sh", "-c", "id"]
        );
        // --entrypoint "" clears it: the arguments are the command.
        assert_eq!(
            args(&img, &run(Some(&[""]), &["ls", "/"])).unwrap(),
            ["ls", "/"]
        );
        let cmd_only = image(&[], &["sh"]);
        assert_eq!(args(&cmd_only, &run(None, &[])).unwrap(), ["sh"]);
        assert_eq!(
            args(&cmd_only, &run(None, &["echo", "hi"])).unwrap(),
            ["echo", "hi"]
        );
    }

    #[test]
    fn no_command_is_an_error() {
        assert_eq!(
            args(&image(&[], &[]), &run(None, &[])),
            Err(SpecError::NoCommand)
        );
        assert_eq!(
            args(&image(&["/e"], &["x"]), &run(Some(&[""]), &[])),
            Err(SpecError::NoCommand)
        );
        assert!(SpecError::NoCommand
            .to_string()
            .starts_with("no command specified"));
        let e = args(&image(&[], &[]), &run(None, &["", "x"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("program name is empty"), "{e}");
        let e = args(&image(&[], &[]), &run(None, &["a\0b"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn working_directory() {
        let mut img = image(&[], &["sh"]);
        assert_eq!(cwd(&img, &RunOptions::default()).unwrap(), "/");
        img.working_dir = "/srv".into();
        assert_eq!(cwd(&img, &RunOptions::default()).unwrap(), "/srv");
        let opts = RunOptions {
            workdir: Some("/tmp".into()),
            ..Default::default()
        };
        assert_eq!(cwd(&img, &opts).unwrap(), "/tmp");
        let opts = RunOptions {
            workdir: Some("tmp".into()),
            ..Default::default()
        };
        let e = cwd(&img, &opts).unwrap_err().to_string();
        assert_eq!(
            e,
            "--workdir \"tmp\": the working directory must be an absolute path, e.g. /app"
        );
        img.working_dir = "rel".into();
        assert!(cwd(&img, &RunOptions::default()).is_err());
    }
}
