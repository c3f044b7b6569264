//! `--user`, `--group-add` and the image's USER, resolved against the
//! image's /etc/passwd and /etc/group the way docker and nerdctl do.

use crate::SpecError;
use std::collections::{BTreeMap, HashMap};

/// Read access to files of the container's root filesystem (the image's
/// unpacked snapshot). Implementations must keep the read inside the rootfs
/// (a symlinked /etc/passwd must not reach the host: resolve with
/// `openat2(RESOLVE_IN_ROOT)` or read from the layers) and bound its size.
/// `None` means the file does not exist or cannot be read.
pub trait RootfsFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// Files given in memory, keyed by absolute path (tests, or a caller that
/// has already read them).
impl RootfsFiles for HashMap<String, Vec<u8>> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).cloned()
    }
}

impl RootfsFiles for BTreeMap<String, Vec<u8>> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).cloned()
    }
}

/// A rootfs with no files: only numeric users resolve.
impl RootfsFiles for () {
    fn read(&self, _path: &str) -> Option<Vec<u8>> {
        None
    }
}

/// The largest id hull (like runc) accepts: (uid_t)-1 means "unchanged" to
/// setresuid, so ids stop at i32::MAX.
pub const MAX_ID: u32 = i32::MAX as u32;

/// The process's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first (containerd does this so a runtime that skips
    /// setgroups for an empty list still drops the runtime's own groups),
    /// then /etc/group memberships, then `--group-add`, without repeats.
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Which option a user string came from, for messages.
#[derive(Clone, Copy)]
pub(crate) enum UserOrigin {
    Option,
    Image,
}

impl UserOrigin {
    fn label(self) -> &'static str {
        match self {
            UserOrigin::Option => "--user",
            UserOrigin::Image => "the image's USER",
        }
    }
}

/// Resolve `user` (`name|uid[:group|gid]`; empty means root) and the
/// `--group-add` entries.
pub(crate) fn resolve(
    user: &str,
    origin: UserOrigin,
    group_add: &[String],
    files: &dyn RootfsFiles,
) -> Result<ResolvedUser, SpecError> {
    let label = origin.label();
    let err = |problem: String| SpecError::User {
        origin: label,
        user: user.to_string(),
        problem,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if group_part.is_some_and(|g| g.contains(':')) {
        return Err(err(
            "too many ':': use NAME|UID[:GROUP|GID], e.g. 1000:1000".into(),
        ));
    }
    if (user_part.is_empty() && !user.is_empty()) || group_part == Some("") {
        return Err(err(
            "empty user or group: use NAME|UID[:GROUP|GID], e.g. 1000:1000".into(),
        ));
    }
    let passwd = Table::load(files, "/etc/passwd", parse_passwd);
    let groups = Table::load(files, "/etc/group", parse_group);

    // The passwd entry, if any: by name (must exist) or by uid (may not).
    let (uid, entry) = if user_part.is_empty() {
        (0, passwd.rows.iter().find(|p| p.uid == 0))
    } else if let Some(uid) = numeric_id(user_part) {
        let uid = uid.map_err(|p| err(format!("uid {p}")))?;
        (uid, passwd.rows.iter().find(|p| p.uid == uid))
    } else {
        let found = passwd.rows.iter().find(|p| p.name == user_part);
        let Some(p) = found else {
            return Err(err(passwd.missing("user", user_part, "uid")));
        };
        (p.uid, Some(p))
    };
    check_range(uid).map_err(|p| err(format!("uid {p}")))?;

    let gid = match group_part {
        Some(g) => lookup_group(g, &groups).map_err(err)?,
        // Without a group: the user's passwd group, else 0 (docker and
        // containerd both fall back to 0, not to the uid).
        None => entry.map_or(0, |p| p.gid),
    };
    check_range(gid).map_err(|p| err(format!("gid {p}")))?;

    let mut additional = vec![gid];
    if let Some(p) = entry {
        for g in groups
            .rows
            .iter()
            .filter(|g| g.members.iter().any(|m| m == &p.name))
        {
            additional.push(g.gid);
        }
    }
    for g in group_add {
        let gid = lookup_group(g, &groups).map_err(|problem| SpecError::User {
            origin: "--group-add",
            user: g.clone(),
            problem,
        })?;
        additional.push(gid);
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

/// `Some(Ok(id))` for a decimal id in range, `Some(Err)` for a decimal that
/// is out of range, `None` for a name.
fn numeric_id(s: &str) -> Option<Result<u32, String>> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("{s} is out of range (0-{MAX_ID})"))
            .and_then(|v| check_range(v).map(|()| v)),
    )
}

fn check_range(id: u32) -> Result<(), String> {
    if id > MAX_ID {
        return Err(format!(
            "{id} is out of range (0-{MAX_ID}): ids above {MAX_ID} are refused, \
             as (uid_t)-1 would mean \"stay root\""
        ));
    }
    Ok(())
}

fn lookup_group(g: &str, groups: &Table<GroupEntry>) -> Result<u32, String> {
    match numeric_id(g) {
        Some(gid) => gid.map_err(|p| format!("gid {p}")),
        None => groups
            .rows
            .iter()
            .find(|e| e.name == g)
            .map(|e| e.gid)
            .ok_or_else(|| groups.missing("group", g, "gid")),
    }
}

/// One of the image's account files, parsed leniently: lines that are not
/// entries (comments, NIS `+`/`-` lines, garbage) are skipped, as libc does.
struct Table<T> {
    path: &'static str,
    present: bool,
    rows: Vec<T>,
}

impl<T> Table<T> {
    fn load(files: &dyn RootfsFiles, path: &'static str, parse: fn(&[&str]) -> Option<T>) -> Self {
        let content = files.read(path);
        let present = content.is_some();
        let text = String::from_utf8_lossy(content.as_deref().unwrap_or_default()).into_owned();
        let rows = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
            .filter_map(|l| parse(&l.split(':').collect::<Vec<_>>()))
            .collect();
        Table {
            path,
            present,
            rows,
        }
    }

    fn missing(&self, kind: &str, name: &str, id: &str) -> String {
        if self.present {
            format!(
                "no {kind} {name:?} in the image's {}: use a numeric {id}, or a {kind} the image defines",
                self.path
            )
        } else {
            format!(
                "the image has no {}, so {kind} {name:?} cannot be looked up: use a numeric {id} (e.g. 1000)",
                self.path
            )
        }
    }
}

fn parse_passwd(f: &[&str]) -> Option<PasswdEntry> {
    if f.len() < 4 || f[0].is_empty() {
        return None;
    }
    Some(PasswdEntry {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
    })
}

fn parse_group(f: &[&str]) -> Option<GroupEntry> {
    if f.len() < 3 || f[0].is_empty() {
        return None;
    }
    let members = f.get(3).map_or(Vec::new(), |m| {
        m.split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect()
    });
    Some(GroupEntry {
        name: f[0].to_string(),
        gid: f[2].parse().ok()?,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn image_files() -> HashMap<String, Vec<u8>> {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\
                      app:x:1000:1001:app:/home/app:/bin/sh\n\
                      +nis\nbroken:x:notanumber:1\nnobody:x:65534:65534::/:/bin/false\n";
        let group = "root:x:0:\nwheel:x:10:root,app\nappgrp:x:1001:\n\
                     audio:x:29:app\ndocker:x:999: app \nnogroup:x:65534:\n";
        HashMap::from([
            ("/etc/passwd".into(), passwd.into()),
            ("/etc/group".into(), group.into()),
        ])
    }

    fn ids(user: &str, add: &[&str]) -> Result<(u32, u32, Vec<u32>), SpecError> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        let r = resolve(user, UserOrigin::Option, &add, &image_files())?;
        Ok((r.uid, r.gid, r.additional_gids))
    }

    #[test]
    fn names_resolve_with_their_groups() {
        assert_eq!(
            ids("app", &[]).unwrap(),
            (1000, 1001, vec![1001, 10, 29, 999])
        );
        assert_eq!(
            ids("app:audio", &[]).unwrap(),
            (1000, 29, vec![29, 10, 999])
        );
        assert_eq!(ids("app:5", &[]).unwrap(), (1000, 5, vec![5, 10, 29, 999]));
        assert_eq!(ids("", &[]).unwrap(), (0, 0, vec![0, 10]));
        assert_eq!(ids("root", &[]).unwrap(), (0, 0, vec![0, 10]));
    }

    #[test]
    fn numeric_ids_pass_through() {
        // A uid the image knows takes its passwd group and memberships.
        assert_eq!(
            ids("1000", &[]).unwrap(),
            (1000, 1001, vec![1001, 10, 29, 999])
        );
        // An unknown uid gets gid 0, like docker and containerd.
        assert_eq!(ids("4242", &[]).unwrap(), (4242, 0, vec![0]));
        assert_eq!(ids("4242:4343", &[]).unwrap(), (4242, 4343, vec![4343]));
        assert_eq!(ids("2147483647:0", &[]).unwrap().0, MAX_ID);
        // No account files at all: numeric ids still work.
        let r = resolve("7:8", UserOrigin::Option, &[], &()).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (7, 8, vec![8]));
    }

    #[test]
    fn group_add_by_name_and_number() {
        assert_eq!(
            ids("4242", &["audio", "77", "audio"]).unwrap(),
            (4242, 0, vec![0, 29, 77])
        );
        let e = ids("app", &["nosuch"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--group-add \"nosuch\": no group \"nosuch\" in the image's /etc/group"),
            "{e}"
        );
    }

    #[test]
    fn missing_names_are_errors_naming_the_file() {
        let e = ids("ghost", &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "--user \"ghost\": no user \"ghost\" in the image's /etc/passwd: \
             use a numeric uid, or a user the image defines"
        );
        let e = ids("app:ghosts", &[]).unwrap_err().to_string();
        assert!(
            e.contains("no group \"ghosts\" in the image's /etc/group"),
            "{e}"
        );
        let e = resolve("app", UserOrigin::Image, &[], &())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the image's USER \"app\": the image has no /etc/passwd"),
            "{e}"
        );
        assert!(e.contains("use a numeric uid"), "{e}");
    }

    #[test]
    fn bad_syntax_and_ranges_are_refused() {
        for (user, part) in [
            ("2147483648", "out of range"),
            ("4294967295", "out of range"),
            ("99999999999999999999", "out of range"),
            ("0:2147483648", "gid 2147483648 is out of range"),
            ("a:b:c", "too many ':'"),
            (":5", "empty user or group"),
            ("app:", "empty user or group"),
        ] {
            let e = ids(user, &[]).unwrap_err().to_string();
            assert!(e.contains(part), "{user}: {e}");
        }
    }
}
