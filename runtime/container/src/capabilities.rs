//! process.capabilities: the five capability sets, applied around the user
//! switch so a non-root process keeps exactly what the config grants.
//!
//! Order: drop the bounding set while still privileged, keep permitted
//! capabilities across setuid (PR_SET_KEEPCAPS), switch user, then set
//! effective/permitted/inheritable and raise ambient.

use crate::error::{Context, Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, Process};
use std::str::FromStr;

fn to_caps(set: Option<&Capabilities>, supported: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(cap) => {
                // Capabilities newer than the running kernel cannot be granted.
                if supported.contains(&cap) {
                    out.insert(cap);
                }
            }
            Err(_) => {
                return Err(Error::msg(format!(
                    "unknown capability {name:?} in process.capabilities"
                )))
            }
        }
    }
    Ok(out)
}

/// The capability sets of a process, resolved against the running kernel.
pub struct CapabilityPlan {
    supported: CapsHashSet,
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapabilityPlan {
    /// `None` when the config has no capabilities section (keep what we have).
    pub fn from_process(p: &Process) -> Result<Option<CapabilityPlan>> {
        let Some(c) = p.capabilities() else {
            return Ok(None);
        };
        // One read of cap_last_cap, not a probe per capability (hot path).
        let supported = caps::runtime::procfs_all_supported(None)
            .unwrap_or_else(|_| caps::runtime::thread_all_supported());
        Ok(Some(CapabilityPlan {
            bounding: to_caps(c.bounding().as_ref(), &supported)?,
            effective: to_caps(c.effective().as_ref(), &supported)?,
            permitted: to_caps(c.permitted().as_ref(), &supported)?,
            inheritable: to_caps(c.inheritable().as_ref(), &supported)?,
            ambient: to_caps(c.ambient().as_ref(), &supported)?,
            supported,
        }))
    }

    /// Before the user switch: shrink the bounding set and keep capabilities
    /// across setuid.
    pub fn before_user_switch(&self) -> Result<()> {
        for cap in self.supported.iter().copied() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    Error::msg(format!("dropping {cap} from the bounding set: {e}"))
                })?;
            }
        }
        // SAFETY: prctl(PR_SET_KEEPCAPS, 1).
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "PR_SET_KEEPCAPS");
        }
        Ok(())
    }

    /// After the user switch: the final sets. With `keep_sys_admin`,
    /// CAP_SYS_ADMIN stays effective and permitted until execve (see
    /// [`keep_sys_admin_only`]).
    pub fn after_user_switch(&self, keep_sys_admin: bool) -> Result<()> {
        // SAFETY: prctl(PR_SET_KEEPCAPS, 0).
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        let (mut effective, mut permitted) = (self.effective.clone(), self.permitted.clone());
        if keep_sys_admin {
            effective.insert(Capability::CAP_SYS_ADMIN);
            permitted.insert(Capability::CAP_SYS_ADMIN);
        }
        capset(&effective, &permitted, &self.inheritable)?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::msg(format!("clearing ambient capabilities: {e}")))?;
        for cap in self.ambient.intersection(&self.inheritable) {
            // An ambient capability must be permitted and inheritable; the
            // kernel refuses the others, which runc also skips quietly.
            if caps::raise(None, CapSet::Ambient, *cap).is_err() {
                crate::log::debug(format!(
                    "cannot raise ambient capability {cap}: not permitted and inheritable"
                ));
            }
        }
        Ok(())
    }
}

/// Keep capabilities across the switch to a non-root user (a process
/// without a capabilities section keeps what it has; only CAP_SYS_ADMIN is
/// needed after the switch).
pub fn keep_across_user_switch() -> Result<()> {
    // SAFETY: prctl(PR_SET_KEEPCAPS, 1).
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "PR_SET_KEEPCAPS");
    }
    Ok(())
}

/// After a switch to a non-root user prepared by [`keep_across_user_switch`]:
/// only CAP_SYS_ADMIN, effective and permitted, for loading the seccomp
/// filter without no_new_privs right before execve. execve computes the
/// program's sets from the bounding, inheritable and ambient sets and the
/// file's capabilities, never from the permitted set before it (without
/// no_new_privs), so the program gets what it would have got anyway.
pub fn keep_sys_admin_only() -> Result<()> {
    // SAFETY: prctl(PR_SET_KEEPCAPS, 0).
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    let inheritable = caps::read(None, CapSet::Inheritable)
        .map_err(|e| Error::msg(format!("reading the inheritable capabilities: {e}")))?;
    let admin: CapsHashSet = [Capability::CAP_SYS_ADMIN].into_iter().collect();
    capset(&admin, &admin, &inheritable)
}

/// Set effective, permitted and inheritable in one capset(2), so no
/// intermediate state violates "effective is a subset of permitted".
fn capset(
    effective: &CapsHashSet,
    permitted: &CapsHashSet,
    inheritable: &CapsHashSet,
) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut data = [Data::default(); 2];
    let mut put = |set: &CapsHashSet, field: fn(&mut Data) -> &mut u32| {
        for cap in set {
            let i = cap.index() as usize;
            *field(&mut data[i / 32]) |= 1 << (i % 32);
        }
    };
    put(effective, |d| &mut d.effective);
    put(permitted, |d| &mut d.permitted);
    put(inheritable, |d| &mut d.inheritable);
    let hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads the header and two data words.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "setting the effective, permitted and inheritable capabilities");
    }
    Ok(())
}
