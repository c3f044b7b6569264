//! process.env: the image's ENV, the defaults docker and nerdctl add, then
//! the user's `-e`/`--env-file` entries.

use crate::SpecError;
use std::collections::HashMap;

/// The PATH a container gets when its image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An environment where setting a variable again replaces it in place, so
/// the result has no duplicates and keeps the order variables first appeared.
#[derive(Default)]
struct Environment {
    entries: Vec<Option<String>>,
    index: HashMap<String, usize>,
}

impl Environment {
    fn set(&mut self, key: &str, entry: String) {
        match self.index.get(key) {
            Some(&i) => self.entries[i] = Some(entry),
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries.push(Some(entry));
            }
        }
    }

    fn unset(&mut self, key: &str) {
        if let Some(i) = self.index.remove(key) {
            self.entries[i] = None;
        }
    }

    fn has(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn into_vec(self) -> Vec<String> {
        self.entries.into_iter().flatten().collect()
    }
}

/// In order: the image's ENV; PATH if the image has none; HOSTNAME (the
/// container's, replacing an image's, as nerdctl); TERM=xterm with a tty;
/// then `user` entries, which win over everything before them. A user entry
/// without `=` removes the variable (docker's rule for `-e K` when K is
/// unset in the caller's environment).
pub(crate) fn environment(
    image_env: &[String],
    hostname: Option<&str>,
    tty: bool,
    user: &[String],
) -> Result<Vec<String>, SpecError> {
    let mut env = Environment::default();
    for entry in image_env {
        // An image entry without a name or '=' cannot be passed to execve
        // as a variable; docker drops it too.
        if let Some((key, _)) = entry.split_once('=').filter(|(k, _)| !k.is_empty()) {
            env.set(key, entry.clone());
        }
    }
    if !env.has("PATH") {
        env.set("PATH", format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(hostname) = hostname {
        env.set("HOSTNAME", format!("HOSTNAME={hostname}"));
    }
    if tty {
        env.set("TERM", "TERM=xterm".into());
    }
    for entry in user {
        let err = |problem: &str| SpecError::invalid("--env", entry, problem);
        if entry.contains('\0') {
            return Err(err("contains a NUL byte, which no environment can hold"));
        }
        match entry.split_once('=') {
            Some(("", _)) => return Err(err("empty variable name: use NAME=VALUE")),
            Some((key, _)) => env.set(key, entry.clone()),
            None if entry.is_empty() => return Err(err("empty entry: use NAME=VALUE")),
            None => env.unset(entry),
        }
    }
    Ok(env.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn order_defaults_and_overrides() {
        let env = environment(
            &s(&["PATH=/opt/bin", "LANG=C", "HOSTNAME=image", "LANG=C.UTF-8"]),
            Some("box"),
            true,
            &s(&["A=1", "LANG=en", "A=2", "PATH=/x"]),
        )
        .unwrap();
        assert_eq!(
            env,
            ["PATH=/x", "LANG=en", "HOSTNAME=box", "TERM=xterm", "A=2"]
        );
    }

    #[test]
    fn default_path_only_when_missing() {
        let env = environment(&[], Some("h"), false, &[]).unwrap();
        assert_eq!(env, [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h".into()]);
    }

    #[test]
    fn bare_name_unsets_and_bad_entries_are_refused() {
        let env = environment(
            &s(&["A=1", "B=2", "junk", "=x"]),
            None,
            false,
            &s(&["A", "C"]),
        )
        .unwrap();
        assert_eq!(env, ["B=2".into(), format!("PATH={DEFAULT_PATH}")]);
        for bad in ["", "=v", "A=\0"] {
            let e = environment(&[], None, false, &s(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--env "), "{e}");
        }
        // The user may also set TERM and HOSTNAME themselves.
        let env = environment(&[], Some("h"), true, &s(&["TERM=dumb", "HOSTNAME=x"])).unwrap();
        assert!(env.contains(&"TERM=dumb".into()) && env.contains(&"HOSTNAME=x".into()));
    }
}
