//! The shim's command line, in Go's `flag` syntax as containerd passes it:
//! `-namespace NS -address ADDR -publish-binary BIN -id ID [-bundle DIR]
//! [-debug] [start|delete]` (`-flag value`, `-flag=value`, `--flag` alike).

use std::path::PathBuf;

/// What this invocation of the binary is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No action word: the long-running shim (started by `start`).
    Serve,
    /// `start`: launch (or find) the shim for `-id` and print its address.
    Start,
    /// `delete`: clean up after a shim that died, print a DeleteResponse.
    Delete,
    /// `-v`: print the version.
    Version,
}

#[derive(Debug, Clone)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC address (`-address`).
    pub address: String,
    pub publish_binary: String,
    pub bundle: Option<PathBuf>,
    pub debug: bool,
    pub action: Action,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
    let mut flags = Flags {
        namespace: std::env::var("NAMESPACE").unwrap_or_default(),
        id: String::new(),
        address: std::env::var("GRPC_ADDRESS").unwrap_or_default(),
        publish_binary: String::new(),
        bundle: None,
        debug: false,
        action: Action::Serve,
    };
    let mut args = args.into_iter();
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            positional.push(arg);
            continue;
        };
        if flag.is_empty() {
            // "--" ends the flags, as in Go.
            positional.extend(args.by_ref());
            break;
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        match name {
            "debug" => flags.debug = inline.as_deref().is_none_or(|v| v != "false"),
            "v" | "version" => flags.action = Action::Version,
            "namespace" | "id" | "address" | "publish-binary" | "bundle" | "socket" => {
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or_else(|| format!("flag -{name} needs a value"))?,
                };
                match name {
                    "namespace" => flags.namespace = value,
                    "id" => flags.id = value,
                    "address" => flags.address = value,
                    "publish-binary" => flags.publish_binary = value,
                    "bundle" => flags.bundle = Some(PathBuf::from(value)),
                    // Accepted for compatibility with newer containerd; the
                    // socket is always derived from namespace and id.
                    _ => {}
                }
            }
            _ => return Err(format!("unknown flag -{name}")),
        }
    }
    if flags.action != Action::Version {
        flags.action = match positional.first().map(String::as_str) {
            None => Action::Serve,
            Some("start") => Action::Start,
            Some("delete") => Action::Delete,
            Some(other) => {
                return Err(format!(
                    "unknown action {other:?}: expected start, delete or none"
                ))
            }
        };
        if flags.namespace.is_empty() {
            return Err("-namespace is required (containerd passes it)".into());
        }
        if flags.id.is_empty() {
            return Err("-id is required (containerd passes it)".into());
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Flags, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn containerd_start_line() {
        let f = p(&[
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(f.action, Action::Start);
        assert_eq!(f.namespace, "default");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.address, "/run/containerd/containerd.sock");
    }

    #[test]
    fn delete_with_bundle_and_equals_syntax() {
        let f = p(&["--namespace=k8s", "-id=x", "-bundle", "/b", "delete"]).unwrap();
        assert_eq!(f.action, Action::Delete);
        assert_eq!(f.bundle.as_deref(), Some(std::path::Path::new("/b")));
        assert_eq!(f.namespace, "k8s");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(p(&["-namespace", "n", "-id", "x", "-bogus"])
            .unwrap_err()
            .contains("-bogus"));
        assert!(p(&["-namespace", "n", "-id"]).unwrap_err().contains("-id"));
        assert!(p(&["-namespace", "n", "-id", "x", "frob"])
            .unwrap_err()
            .contains("frob"));
        assert_eq!(p(&["-v"]).unwrap().action, Action::Version);
    }
}
