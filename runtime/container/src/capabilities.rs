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

    /// After the user switch: the final sets.
    pub fn after_user_switch(&self) -> Result<()> {
        // SAFETY: prctl(PR_SET_KEEPCAPS, 0).
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        capset(&self.effective, &self.permitted, &self.inheritable)?;
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
