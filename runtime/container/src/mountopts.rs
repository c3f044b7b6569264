//! Mount options of config.json, split into what mount(2) takes as flags,
//! propagation changes, recursive attributes (mount_setattr) and the
//! filesystem-specific data string.

use nix::mount::MsFlags;

/// Recursive mount attributes for mount_setattr(2) (MOUNT_ATTR_*).
pub mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x200000;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount(2) call itself.
    pub flags: MsFlags,
    /// Flags explicitly cleared (e.g. "rw", "suid").
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// mount_setattr attributes to set and clear recursively.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Comma-joined filesystem options ("mode=755,size=65536k").
    pub data: String,
    /// runc's "tmpcopyup": copy the image's content into a new tmpfs.
    pub tmpcopyup: bool,
    /// "idmap" (false) or "ridmap" (true, recursive): an idmapped mount.
    pub idmap: Option<bool>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clr: 0,
            data: String::new(),
            tmpcopyup: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// The option names hull understands (for `hull features`).
pub const KNOWN: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let set = |o: &mut MountOptions, f: MsFlags| {
            o.flags |= f;
            o.cleared &= !f;
        };
        let clr = |o: &mut MountOptions, f: MsFlags| {
            o.flags &= !f;
            o.cleared |= f;
        };
        match opt.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clr(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clr(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clr(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clr(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clr(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clr(&mut o, MsFlags::MS_MANDLOCK),
            "atime" => clr(&mut o, MsFlags::MS_NOATIME),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "diratime" => clr(&mut o, MsFlags::MS_NODIRATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clr(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clr(&mut o, MsFlags::MS_STRICTATIME),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clr(&mut o, MsFlags::MS_I_VERSION),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clr(&mut o, MsFlags::MS_LAZYTIME),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clr(&mut o, MsFlags::MS_SILENT),
            "acl" => set(&mut o, MsFlags::MS_POSIXACL),
            "noacl" => clr(&mut o, MsFlags::MS_POSIXACL),
            "nosymfollow" => set(&mut o, MsFlags::from_bits_retain(256)),
            "symfollow" => clr(&mut o, MsFlags::from_bits_retain(256)),
            "bind" => set(&mut o, MsFlags::MS_BIND),
            "rbind" => set(&mut o, MsFlags::MS_BIND | MsFlags::MS_REC),
            "private" => o.propagation.push(MsFlags::MS_PRIVATE),
            "rprivate" => o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => o.propagation.push(MsFlags::MS_SHARED),
            "rshared" => o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => o.propagation.push(MsFlags::MS_SLAVE),
            "rslave" => o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE),
            "runbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" => o.idmap = Some(false),
            "ridmap" => o.idmap = Some(true),
            "rro" => o.rec_set |= attr::RDONLY,
            "rrw" => o.rec_clr |= attr::RDONLY,
            "rnosuid" => o.rec_set |= attr::NOSUID,
            "rsuid" => o.rec_clr |= attr::NOSUID,
            "rnodev" => o.rec_set |= attr::NODEV,
            "rdev" => o.rec_clr |= attr::NODEV,
            "rnoexec" => o.rec_set |= attr::NOEXEC,
            "rexec" => o.rec_clr |= attr::NOEXEC,
            "rnodiratime" => o.rec_set |= attr::NODIRATIME,
            "rdiratime" => o.rec_clr |= attr::NODIRATIME,
            "rnosymfollow" => o.rec_set |= attr::NOSYMFOLLOW,
            "rsymfollow" => o.rec_clr |= attr::NOSYMFOLLOW,
            "rrelatime" => {
                o.rec_clr |= attr::ATIME_MASK;
                o.rec_set |= attr::RELATIME;
            }
            "rnoatime" => {
                o.rec_clr |= attr::ATIME_MASK;
                o.rec_set |= attr::NOATIME;
            }
            "rstrictatime" => {
                o.rec_clr |= attr::ATIME_MASK;
                o.rec_set |= attr::STRICTATIME;
            }
            "ratime" | "rnorelatime" | "rnostrictatime" => o.rec_clr |= attr::ATIME_MASK,
            other => {
                if !o.data.is_empty() {
                    o.data.push(',');
                }
                o.data.push_str(other);
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "ro",
            "rprivate",
        ]);
        assert!(o
            .flags
            .contains(MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY));
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = p(&["rbind", "rro", "rnosuid"]);
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.rec_set, attr::RDONLY | attr::NOSUID);
    }

    #[test]
    fn every_known_option_is_understood() {
        for k in KNOWN {
            assert!(p(&[k]).data.is_empty(), "{k} fell through to data");
        }
    }
}
