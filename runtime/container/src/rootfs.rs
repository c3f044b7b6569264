//! The container's root filesystem: propagation, the mounts of config.json,
//! /dev, pivot_root, masked and read-only paths.
//!
//! Everything here runs in the container's new mount namespace, in the init
//! process, before the user's program exists. Destinations are resolved
//! inside the rootfs with [`crate::inroot`], never through the host's view.

use crate::error::{Context, Error, Result};
use crate::inroot::{self, Create};
use crate::mountopts::{self, MountOptions};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A cgroup hierarchy to show inside the container at `/sys/fs/cgroup/<name>`
/// (or at the cgroup mount point itself on a pure cgroup v2 host).
#[derive(Debug, Clone)]
pub struct CgroupBind {
    /// Sub-directory under the cgroup mount ("memory", "cpu,cpuacct"; "" for pure v2).
    pub name: String,
    /// Host directory of the container's cgroup in that hierarchy.
    pub host_path: PathBuf,
}

/// Inputs computed by the runtime before the container process exists.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub in_new_userns: bool,
    pub new_cgroupns: bool,
    pub no_pivot: bool,
    pub cgroups: Vec<CgroupBind>,
    /// No mount namespace of its own: the mounts are made in the host's
    /// mount namespace (see [`crate::hostmounts`]) and the container is
    /// chrooted into its rootfs.
    pub host_mount_ns: bool,
    /// The idmapped trees the runtime made, by mount index (see
    /// [`crate::idmap`]).
    pub idmapped: Vec<Option<std::sync::Arc<OwnedFd>>>,
}

fn none() -> Option<&'static str> {
    None
}

/// linux.rootfsPropagation as mount flags (`None`: the default, rslave).
fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let value = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    Ok(Some(match value {
        None | Some("") => return Ok(None),
        Some("private") => MsFlags::MS_PRIVATE,
        Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some("slave") => MsFlags::MS_SLAVE,
        Some("rslave") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some("shared") => MsFlags::MS_SHARED,
        Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Some("unbindable") => MsFlags::MS_UNBINDABLE,
        Some("runbindable") => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        Some(other) => {
            return Err(Error::msg(format!(
                "config.json: unknown linux.rootfsPropagation {other:?}: use private, slave, shared or unbindable (r-prefixed for recursive)"
            )))
        }
    }))
}

/// Mount propagation and the rootfs bind, then every mount and /dev.
pub fn prepare(spec: &Spec, plan: &Plan) -> Result<()> {
    root_propagation(spec)?;
    if !plan.host_mount_ns {
        // Nothing the container mounts may reach the host: every mount
        // becomes a slave of the host's first (so nothing is shared, which
        // pivot_root also requires). The requested propagation is applied
        // to / after pivot_root.
        mount(
            none(),
            "/",
            none(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            none(),
        )
        .ctx(|| "making / a recursive slave")?;
    }
    // pivot_root needs the new root to be a mount point; without a mount
    // namespace this bind holds every mount of the container, and is what
    // delete detaches.
    mount(
        Some(&plan.rootfs),
        &plan.rootfs,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none(),
    )
    .ctx(|| format!("bind-mounting rootfs {}", plan.rootfs.display()))?;
    if plan.host_mount_ns {
        // The host's mounts stay as they are; the container's, all below
        // this bind, propagate nowhere.
        crate::debug!(
            "no mount namespace: the mounts go below {} in the host's, made private",
            plan.rootfs.display()
        );
        mount(
            none(),
            &plan.rootfs,
            none(),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            none(),
        )
        .ctx(|| format!("making the rootfs bind {} private", plan.rootfs.display()))?;
    }
    let root = inroot::open_root(&plan.rootfs)?;
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        crate::debug!(
            "mounting {} {} on {} (options {})",
            m.typ().as_deref().unwrap_or("bind"),
            m.source().as_deref().unwrap_or(Path::new("")).display(),
            m.destination().display(),
            m.options().as_deref().unwrap_or_default().join(",")
        );
        let idmapped = plan.idmapped.get(i).and_then(Option::as_deref);
        mount_entry(&root, m, plan, idmapped)
            .ctx(|| format!("mounting {}", m.destination().display()))?;
    }
    // process.cwd is created if the image lacks it, as runc does.
    if let Some(p) = spec.process() {
        inroot::resolve(root.as_fd(), p.cwd(), Create::Dir)?;
    }
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let dev_from_host = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && parse_opts(m).is_bind());
    if !dev_from_host {
        crate::debug!("creating the default devices and linux.devices in /dev");
        create_devices(&root, spec, plan.in_new_userns)?;
    }
    Ok(())
}

fn parse_opts(m: &Mount) -> MountOptions {
    let mut o = mountopts::parse(m.options().as_deref().unwrap_or_default());
    if m.typ().as_deref() == Some("bind") {
        o.flags |= MsFlags::MS_BIND;
    }
    o
}

/// Flags the kernel locks on a mount (in a user namespace they cannot be
/// dropped by a remount, so they must be repeated).
fn locked_flags(path: &str) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

/// Re-apply per-mount flags to a bind mount (bind ignores them at first).
fn remount_bind(target: &str, flags: MsFlags, cleared: MsFlags) -> Result<()> {
    let want = (flags | locked_flags(target))
        & !cleared
        & !(MsFlags::MS_REC | MsFlags::MS_BIND | MsFlags::MS_REMOUNT);
    mount(
        none(),
        target,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | want,
        none(),
    )
    .or_else(|e| {
        // Flags locked by the kernel may have been cleared by the config: keep them.
        mount(
            none(),
            target,
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | want | locked_flags(target),
            none(),
        )
        .map_err(|_| e)
    })
    .ctx(|| "remounting with the requested flags")
}

fn mount_setattr(fd: &OwnedFd, recursive: bool, set: u64, clr: u64) -> Result<()> {
    mount_setattr_userns(fd, recursive, set, clr, 0)
}

/// mount_setattr(2) on the mount `fd` refers to; `userns_fd` goes with
/// MOUNT_ATTR_IDMAP.
pub(crate) fn mount_setattr_userns(
    fd: &OwnedFd,
    recursive: bool,
    set: u64,
    clr: u64,
    userns_fd: u64,
) -> Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= 0x8000; // AT_RECURSIVE
    }
    // SAFETY: mount_setattr reads `attr` of the size we pass; the path is "".
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "mount_setattr");
    }
    Ok(())
}

fn mount_entry(root: &OwnedFd, m: &Mount, plan: &Plan, idmapped: Option<&OwnedFd>) -> Result<()> {
    let opts = parse_opts(m);
    let typ = m.typ().clone().unwrap_or_default();
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroups(root, dest, &opts, plan);
    }
    if opts.tmpcopyup {
        return mount_tmpfs_copy(root, dest, &typ, &opts);
    }
    if opts.is_bind() {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::msg("bind mount without a source: set \"source\""))?;
        let meta = std::fs::metadata(source)
            .map_err(|e| Error::io(format!("bind mount source {}", source.display()), e))?;
        let create = if meta.is_dir() {
            Create::Dir
        } else {
            Create::File
        };
        let target = inroot::resolve(root.as_fd(), dest, create)?;
        match idmapped {
            Some(tree) => crate::idmap::attach(tree, &target)
                .map_err(|e| e.context(format!("idmapped bind mount of {}", source.display())))?,
            None => mount(
                Some(source.as_path()),
                inroot::proc_fd_path(&target).as_str(),
                none(),
                opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                none(),
            )
            .ctx(|| format!("bind-mounting {}", source.display()))?,
        }
        let mounted = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
        let path = inroot::proc_fd_path(&mounted);
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(&path, opts.flags, opts.cleared)?;
        }
        return finish_entry(root, dest, &opts);
    }
    if matches!(typ.as_str(), "proc" | "sysfs") && inroot::last_is_symlink(root.as_fd(), dest) {
        // runc's words.
        return Err(Error::msg(format!(
            "filesystem {typ:?} must be mounted on ordinary directory: {} is a symlink in the image",
            dest.display()
        )));
    }
    let target = inroot::resolve(root.as_fd(), dest, Create::Dir)?;
    if matches!(typ.as_str(), "proc" | "sysfs") && !inroot::is_dir(&target) {
        return Err(Error::msg(format!(
            "filesystem {typ:?} must be mounted on ordinary directory: {} is not a directory in the image",
            dest.display()
        )));
    }
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let path = inroot::proc_fd_path(&target);
    let res = mount(
        Some(source.as_path()),
        path.as_str(),
        Some(typ.as_str()),
        flags,
        data,
    );
    match res {
        Err(nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY)
            if typ == "mqueue" || typ == "sysfs" =>
        {
            // Without a namespace of its own (mqueue: ipc; sysfs: net, or in a
            // user namespace) the kernel refuses a new instance: show the
            // host's read-only, as runc does.
            let host = if typ == "mqueue" {
                "/dev/mqueue"
            } else {
                "/sys"
            };
            mount(
                Some(host),
                path.as_str(),
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none(),
            )
            .ctx(|| format!("bind-mounting the host's {host}"))?;
            let mounted = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
            remount_bind(
                &inroot::proc_fd_path(&mounted),
                flags | MsFlags::MS_RDONLY,
                MsFlags::empty(),
            )?;
        }
        r => r.ctx(|| format!("mounting {typ}"))?,
    }
    finish_entry(root, dest, &opts)
}

/// A tmpfs with the `tmpcopyup` option: filled with the image's content
/// of `dest` before it covers it (see [`crate::tmpcopyup`]).
fn mount_tmpfs_copy(root: &OwnedFd, dest: &Path, typ: &str, opts: &MountOptions) -> Result<()> {
    if typ != "tmpfs" {
        return Err(Error::msg(format!(
            "mount option \"tmpcopyup\" is for tmpfs mounts, not {typ:?} ({})",
            dest.display()
        )));
    }
    let target = inroot::resolve(root.as_fd(), dest, Create::Dir)?;
    crate::tmpcopyup::mount_over(&target, opts)
        .map_err(|e| e.context(format!("mounting a tmpfs on {}", dest.display())))?;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let mounted = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
        mount_setattr(&mounted, false, mountopts::attr::RDONLY, 0)?;
    }
    finish_entry(root, dest, opts)
}

/// Propagation changes and recursive attributes, applied to the new mount.
fn finish_entry(root: &OwnedFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() && opts.rec_set == 0 && opts.rec_clr == 0 {
        return Ok(());
    }
    let mounted = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
    let path = inroot::proc_fd_path(&mounted);
    for p in &opts.propagation {
        mount(none(), path.as_str(), none(), *p, none()).ctx(|| "changing mount propagation")?;
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        mount_setattr(&mounted, true, opts.rec_set, opts.rec_clr)?;
    }
    Ok(())
}

/// `/sys/fs/cgroup` inside the container: the container's own cgroup in every
/// hierarchy, bind-mounted from the host (on a v1 or hybrid host under a
/// tmpfs with one directory per hierarchy).
fn mount_cgroups(root: &OwnedFd, dest: &Path, opts: &MountOptions, plan: &Plan) -> Result<()> {
    // In a user namespace without a cgroup namespace the binds are the host's
    // own hierarchies: never writable there (CVE-2023-25809).
    let forced_ro;
    let opts = if plan.in_new_userns && !plan.new_cgroupns {
        forced_ro = MountOptions {
            flags: opts.flags | MsFlags::MS_RDONLY,
            cleared: opts.cleared & !MsFlags::MS_RDONLY,
            ..opts.clone()
        };
        &forced_ro
    } else {
        opts
    };
    let base_flags = opts.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let pure_v2 = plan.cgroups.len() == 1 && plan.cgroups[0].name.is_empty();
    if !pure_v2 {
        let target = inroot::resolve(root.as_fd(), dest, Create::Dir)?;
        mount(
            Some("tmpfs"),
            inroot::proc_fd_path(&target).as_str(),
            Some("tmpfs"),
            base_flags,
            Some("mode=755"),
        )
        .ctx(|| "mounting the tmpfs for cgroup hierarchies")?;
    }
    for cg in &plan.cgroups {
        let sub = dest.join(&cg.name);
        let target = inroot::resolve(root.as_fd(), &sub, Create::Dir)?;
        mount(
            Some(cg.host_path.as_path()),
            inroot::proc_fd_path(&target).as_str(),
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none(),
        )
        .ctx(|| format!("bind-mounting cgroup {}", cg.host_path.display()))?;
        let mounted = inroot::resolve(root.as_fd(), &sub, Create::Nothing)?;
        remount_bind(&inroot::proc_fd_path(&mounted), opts.flags, opts.cleared)?;
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct", as on the host.
        if cg.name.contains(',') {
            let dir = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
            for part in cg.name.split(',') {
                let _ = nix::unistd::symlinkat(cg.name.as_str(), Some(dir.as_raw_fd()), part);
            }
        }
    }
    if !pure_v2 && opts.flags.contains(MsFlags::MS_RDONLY) {
        let t = inroot::resolve(root.as_fd(), dest, Create::Nothing)?;
        remount_bind(&inroot::proc_fd_path(&t), opts.flags, opts.cleared)?;
    }
    Ok(())
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The default devices, linux.devices, and the standard /dev symlinks.
fn create_devices(root: &OwnedFd, spec: &Spec, in_userns: bool) -> Result<()> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    for (path, major, minor) in DEFAULT_DEVICES {
        if configured.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        make_node(
            root,
            Path::new(path),
            SFlag::S_IFCHR,
            *major,
            *minor,
            0o666,
            None,
            None,
            in_userns,
        )?;
    }
    for d in configured {
        create_device(root, d, in_userns)?;
    }
    let dev = inroot::resolve(root.as_fd(), Path::new("/dev"), Create::Dir)?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    for (target, name) in links {
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("creating /dev/{name}"), e)),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = nix::unistd::symlinkat("/proc/kcore", Some(dev.as_raw_fd()), "core");
    }
    // /dev/ptmx must be the container's own devpts multiplexer.
    let _ = nix::unistd::unlinkat(
        Some(dev.as_raw_fd()),
        "ptmx",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    nix::unistd::symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx")
        .ctx(|| "creating /dev/ptmx")?;
    Ok(())
}

fn create_device(root: &OwnedFd, d: &LinuxDevice, in_userns: bool) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::msg(format!(
                "linux.devices: device {} has type \"a\", which is only valid in cgroup rules: use c, b, u or p",
                d.path().display()
            )))
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::msg(format!(
            "linux.devices: {} is not under /dev",
            d.path().display()
        )));
    }
    make_node(
        root,
        d.path(),
        kind,
        d.major() as u64,
        d.minor() as u64,
        d.file_mode().unwrap_or(0o666),
        d.uid(),
        d.gid(),
        in_userns,
    )
}

#[allow(clippy::too_many_arguments)]
fn make_node(
    root: &OwnedFd,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    in_userns: bool,
) -> Result<()> {
    let parent = inroot::resolve(
        root.as_fd(),
        path.parent().unwrap_or(Path::new("/dev")),
        Create::Dir,
    )?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::msg(format!("device path {} has no name", path.display())))?;
    if in_userns && kind != SFlag::S_IFIFO {
        // mknod is not allowed in a user namespace: bind the host's node.
        let target = inroot::resolve(root.as_fd(), path, Create::File)?;
        return mount(
            Some(path),
            inroot::proc_fd_path(&target).as_str(),
            none(),
            MsFlags::MS_BIND,
            none(),
        )
        .ctx(|| format!("bind-mounting device {}", path.display()));
    }
    let dev = nix::sys::stat::makedev(major, minor);
    match nix::sys::stat::mknodat(
        Some(parent.as_raw_fd()),
        name,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("creating device {}", path.display()), e)),
    }
    if uid.is_some() || gid.is_some() {
        nix::unistd::fchownat(
            Some(parent.as_raw_fd()),
            name,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown device {}", path.display()))?;
    }
    Ok(())
}

/// Make the prepared rootfs the process's root: pivot_root, or MS_MOVE plus
/// chroot with --no-pivot; in the host's mount namespace only chroot (both
/// others would move the host's root).
pub fn enter(rootfs: &Path, no_pivot: bool, host_mount_ns: bool) -> Result<()> {
    if host_mount_ns {
        crate::debug!(
            "chroot into the rootfs {} (no mount namespace)",
            rootfs.display()
        );
        nix::unistd::chdir(rootfs).ctx(|| format!("chdir to rootfs {}", rootfs.display()))?;
        nix::unistd::chroot(".").ctx(|| "chroot into the rootfs")?;
        return nix::unistd::chdir("/").ctx(|| "chdir /");
    }
    crate::debug!(
        "{} into the rootfs {}",
        if no_pivot {
            "MS_MOVE and chroot"
        } else {
            "pivot_root"
        },
        rootfs.display()
    );
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir to rootfs {}", rootfs.display()))?;
    if no_pivot {
        mount(Some("."), "/", none(), MsFlags::MS_MOVE, none())
            .ctx(|| "moving the rootfs onto /")?;
        nix::unistd::chroot(".").ctx(|| "chroot into the rootfs")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // detaching it leaves the new root alone, without a temporary directory.
        nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root into the rootfs")?;
        mount(
            none(),
            ".",
            none(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            none(),
        )
        .ctx(|| "making the old root a slave before detaching it")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching the old root")?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /")
}

/// rootfsPropagation, maskedPaths, readonlyPaths, and a read-only root:
/// after pivot_root, so they apply to the container's own / and paths
/// resolve inside it.
pub fn finalize(spec: &Spec) -> Result<()> {
    if let Some(flags) = root_propagation(spec)? {
        mount(none(), "/", none(), flags, none())
            .ctx(|| "applying linux.rootfsPropagation to /")?;
    }
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        crate::debug!("making {p} read-only");
        readonly_path(p).ctx(|| format!("making {p} read-only"))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        crate::debug!("masking {p}");
        mask_path(p).ctx(|| format!("masking {p}"))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_bind("/", MsFlags::MS_RDONLY, MsFlags::empty())
            .ctx(|| "making the root filesystem read-only")?;
    }
    Ok(())
}

fn readonly_path(p: &str) -> Result<()> {
    match mount(
        Some(p),
        p,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none(),
    ) {
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        r => r.ctx(|| "bind-mounting onto itself")?,
    }
    remount_bind(
        p,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        MsFlags::empty(),
    )
}

fn mask_path(p: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", e)),
    };
    if meta.is_dir() {
        mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, none())
            .ctx(|| "mounting an empty read-only tmpfs")
    } else {
        mount(Some("/dev/null"), p, none(), MsFlags::MS_BIND, none())
            .ctx(|| "bind-mounting /dev/null")
    }
}

/// Write `linux.sysctl` under /proc/sys (validated at create).
pub fn apply_sysctl(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    // The image or a mount could have put something else at /proc
    // (CVE-2019-16884): write only into a real procfs.
    let st = nix::sys::statfs::statfs("/proc/sys").ctx(|| "statfs /proc/sys")?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::msg(
            "linux.sysctl: /proc/sys in the container is not procfs (a mount covers it): refusing to write sysctls",
        ));
    }
    for (key, value) in map {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        crate::debug!("sysctl {key}={value}");
        std::fs::write(&path, value).ctx(|| format!("setting sysctl {key}={value}"))?;
    }
    Ok(())
}

/// Bind the terminal's slave side onto /dev/console.
pub fn bind_console(slave_path: &str) -> Result<()> {
    let root = inroot::open_root(Path::new("/"))?;
    let target = inroot::resolve(root.as_fd(), Path::new("/dev/console"), Create::File)?;
    mount(
        Some(slave_path),
        inroot::proc_fd_path(&target).as_str(),
        none(),
        MsFlags::MS_BIND,
        none(),
    )
    .ctx(|| format!("bind-mounting {slave_path} onto /dev/console"))
}
