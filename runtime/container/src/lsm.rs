//! process.apparmorProfile and process.selinuxLabel: applied on exec when the
//! host runs that LSM, and refused up front when it does not (silently
//! running a container without the confinement it asked for would be worse).

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Process;

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// At create/exec, before anything exists: is the requested LSM available?
pub fn check(p: &Process) -> Result<()> {
    if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) && !apparmor_enabled() {
        return Err(Error::msg(format!(
            "process.apparmorProfile {:?} is set but AppArmor is not enabled on this host: remove it or enable AppArmor",
            p.apparmor_profile().as_deref().unwrap_or_default()
        )));
    }
    if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) && !selinux_enabled() {
        return Err(Error::msg(format!(
            "process.selinuxLabel {:?} is set but SELinux is not enabled on this host: remove it or enable SELinux",
            p.selinux_label().as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Just before execve: the kernel applies these labels at exec time.
pub fn apply_on_exec(p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_ref().filter(|s| !s.is_empty()) {
        std::fs::write(
            "/proc/thread-self/attr/apparmor/exec",
            format!("exec {profile}"),
        )
        .or_else(|_| std::fs::write("/proc/thread-self/attr/exec", format!("exec {profile}")))
        .ctx(|| format!("setting AppArmor profile {profile:?}"))?;
    }
    if let Some(label) = p.selinux_label().as_ref().filter(|s| !s.is_empty()) {
        std::fs::write("/proc/thread-self/attr/exec", label)
            .ctx(|| format!("setting SELinux label {label:?}"))?;
    }
    Ok(())
}
