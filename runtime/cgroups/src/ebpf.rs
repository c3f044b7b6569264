//! cgroup v2 device control: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, generated here from the device rules and
//! loaded and attached with raw bpf(2) calls.
//!
//! # Why our own
//!
//! cgroup v2 has no `devices.allow` file; the kernel instead runs eBPF
//! programs attached to the cgroup on every device open/mknod. runc builds
//! its program with cilium/ebpf (Go). On the Rust side:
//! * **youki's libcgroups** assembles with `rbpf` and loads through
//!   `libbpf-sys`, i.e. C libbpf (checked: its `cgroupsv2_devices` feature
//!   pulls `rbpf`, `libbpf-sys`, `errno`);
//! * **libbpf-rs / libbpf-sys / bpf-sys** are bindings to C libbpf;
//! * **aya** (0.13) is pure Rust, but it loads programs from compiled ELF
//!   objects (`aya-obj` + `object` crates, plus `thiserror`, `log`, `bytes`,
//!   `hashbrown`, optional tokio/async-io): a program generated at run time
//!   from a config would have to be wrapped in a synthetic ELF first, and it
//!   would double Hull's dependency tree for ~40 lines of syscall glue;
//! * **rbpf** is a user-space VM/assembler with no kernel loader.
//!
//! Hull links no C and keeps its dependencies to oci-spec, libc, nix and
//! serde, so the dozen instructions are emitted here and loaded with
//! `BPF_PROG_LOAD`; [`run`] interprets them so tests can compare the
//! program with the reference semantics ([`crate::devices::allowed`]) on
//! any machine.
//!
//! # The program
//!
//! The context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` with `access_type = (ACC_* << 16) | DEV_*`. The program
//! keeps the granted access bits in r7, starting empty, and for each rule
//! that matches the device ORs in (allow) or masks out (deny) the rule's
//! bits — per access kind, the last matching rule wins. It returns 1 when
//! every requested bit is granted, else 0 (the kernel turns 0 into EPERM).
//! Rules before the last "all devices, rwm" rule cannot matter and are
//! dropped. Device numbers are compared with 32-bit jumps (`BPF_JMP32`,
//! Linux 5.1+), so any u32 major/minor is exact.
//!
//! # Attaching and updating
//!
//! Programs are attached with `BPF_F_ALLOW_MULTI` (so ancestors' programs
//! still apply, as systemd's do) and named `hull_devices`. On update
//! (`BPF_PROG_QUERY` finds the old one by name) a single old program is
//! replaced atomically with `BPF_F_REPLACE` (Linux 5.6+); otherwise the new
//! program is attached *before* the old ones are detached, so during the
//! switch both apply and access is never wider than either policy.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::devices::{DevKind, DeviceRule, ACC_ALL};
use crate::error::{Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const MOV64_K: u8 = 0xb7;
const MOV64_X: u8 = 0xbf;
const AND64_K: u8 = 0x57;
const AND64_X: u8 = 0x5f;
const OR64_K: u8 = 0x47;
const RSH64_K: u8 = 0x77;
const XOR64_K: u8 = 0xa7;
const JNE32_K: u8 = 0x56;
const JNE64_K: u8 = 0x55;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The program name shown by `bpftool prog` and used to find Hull's own
/// program on update.
pub const PROG_NAME: &str = "hull_devices";

/// Generates the device filter for `rules` (see the module doc).
pub fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    // Everything before the last rule about all devices and all access is
    // overridden by it.
    let start = rules
        .iter()
        .rposition(|r| {
            r.kind == DevKind::All && r.major.is_none() && r.minor.is_none() && r.access == ACC_ALL
        })
        .unwrap_or(0);
    let rules = &rules[start..];

    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),    // r2 = ctx->access_type
        insn(MOV64_X, 3, 2, 0, 0),      // r3 = r2
        insn(AND64_K, 3, 0, 0, 0xffff), // r3 = device type
        insn(MOV64_X, 4, 2, 0, 0),      // r4 = r2
        insn(RSH64_K, 4, 0, 0, 16),     // r4 = requested access
        insn(LDX_MEM_W, 5, 1, 4, 0),    // r5 = ctx->major
        insn(LDX_MEM_W, 6, 1, 8, 0),    // r6 = ctx->minor
        insn(MOV64_K, 7, 0, 0, 0),      // r7 = granted = 0
    ];
    for r in rules {
        let mut checks: Vec<(u8, u32)> = Vec::new();
        if let Some(t) = r.kind.bpf_type() {
            checks.push((3, t));
        }
        if let Some(m) = r.major {
            checks.push((5, m));
        }
        if let Some(m) = r.minor {
            checks.push((6, m));
        }
        let n = checks.len();
        for (i, (reg, val)) in checks.into_iter().enumerate() {
            // On mismatch skip the remaining checks and the update.
            let skip = (n - i) as i16; // remaining checks after this + 1 update
            p.push(insn(JNE32_K, reg, 0, skip, val as i32));
        }
        if r.allow {
            p.push(insn(OR64_K, 7, 0, 0, i32::from(r.access)));
        } else {
            p.push(insn(AND64_K, 7, 0, 0, i32::from(!r.access & ACC_ALL)));
        }
    }
    p.extend([
        insn(MOV64_K, 0, 0, 0, 0),  // r0 = 0 (deny)
        insn(MOV64_X, 8, 7, 0, 0),  // r8 = granted
        insn(XOR64_K, 8, 0, 0, -1), // r8 = ~granted
        insn(AND64_X, 8, 4, 0, 0),  // r8 = requested & ~granted
        insn(JNE64_K, 8, 0, 1, 0),  // anything missing → exit with 0
        insn(MOV64_K, 0, 0, 0, 1),  // r0 = 1 (allow)
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// Interprets `prog` (only the instructions [`compile`] emits) for one
/// device access: `access` is ACC_* bits, `dev_type` a BPF_DEVCG_DEV_*
/// value. Returns the program's r0, or `None` for anything unexpected
/// (unknown opcode, jump out of range, no exit).
pub fn run(prog: &[Insn], dev_type: u32, major: u32, minor: u32, access: u8) -> Option<u64> {
    let ctx = [(u32::from(access) << 16) | dev_type, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..1_000_000 {
        let i = *prog.get(pc)?;
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        if dst > 10 || src > 10 {
            return None;
        }
        let imm = i.imm as i64 as u64;
        pc += 1;
        match i.code {
            LDX_MEM_W => {
                if src != 1 || i.off < 0 || i.off % 4 != 0 {
                    return None;
                }
                r[dst] = u64::from(*ctx.get(i.off as usize / 4)?);
            }
            MOV64_K => r[dst] = imm,
            MOV64_X => r[dst] = r[src],
            AND64_K => r[dst] &= imm,
            AND64_X => r[dst] &= r[src],
            OR64_K => r[dst] |= imm,
            XOR64_K => r[dst] ^= imm,
            RSH64_K => r[dst] >>= imm & 63,
            JNE32_K | JNE64_K => {
                let ne = if i.code == JNE32_K {
                    r[dst] as u32 != i.imm as u32
                } else {
                    r[dst] != imm
                };
                if ne {
                    pc = pc.checked_add_signed(isize::from(i.off))?;
                }
            }
            EXIT => return Some(r[0]),
            _ => return None,
        }
    }
    None
}

// ---- bpf(2) ----

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_prog_info` up to `name`.
#[repr(C)]
struct ProgInfo {
    typ: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a properly laid out, fully initialised bpf_attr
    // prefix that lives across the call; the size passed is its size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new file descriptor to us.
    unsafe { OwnedFd::from_raw_fd(rc as RawFd) }
}

/// Loads `prog` as a cgroup device program.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = CString::new("GPL").unwrap_or_default();
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME.as_bytes());
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
            sys_bpf(BPF_PROG_LOAD, &mut attr)
        } else {
            sys_bpf(BPF_PROG_LOAD, &mut attr)
        }
    };
    let mut res = attempt(None);
    if matches!(&res, Err(e) if e.raw_os_error() == Some(libc::EPERM)) {
        // Before Linux 5.11 BPF memory is charged to RLIMIT_MEMLOCK.
        let inf = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain setrlimit with a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
            res = attempt(None);
        }
    }
    match res {
        Ok(fd) => Ok(fd_from(fd)),
        Err(source) => {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = attempt(Some(&mut buf));
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            Err(Error::Bpf {
                op: "BPF_PROG_LOAD",
                source,
                log: String::from_utf8_lossy(&buf[..end]).into_owned(),
            })
        }
    }
}

fn bpf_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Bpf {
        op,
        source,
        log: String::new(),
    }
}

/// Ids of the device programs attached directly to the cgroup `cg`.
fn query(cg: RawFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: cg as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 65536 => {
                let n = (attr.prog_cnt as usize).max(ids.len() * 2);
                ids = vec![0; n];
            }
            Err(e) => return Err(bpf_err("BPF_PROG_QUERY")(e)),
        }
    }
}

fn prog_fd_by_id(id: u32) -> Result<Option<OwnedFd>> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    match sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => Ok(Some(fd_from(fd))),
        // Detached and freed meanwhile.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(bpf_err("BPF_PROG_GET_FD_BY_ID")(e)),
    }
}

fn prog_name(fd: RawFd) -> Result<String> {
    // SAFETY: ProgInfo is plain old data; all-zero is a valid value.
    let mut info: ProgInfo = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(bpf_err("BPF_OBJ_GET_INFO_BY_FD"))?;
    let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(String::from_utf8_lossy(&info.name[..end]).into_owned())
}

fn attach(cg: RawFd, prog: RawFd, replace: Option<RawFd>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cg as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | replace.map_or(0, |_| BPF_F_REPLACE),
        replace_bpf_fd: replace.map_or(0, |fd| fd as u32),
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

fn detach(cg: RawFd, prog: RawFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cg as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// Hull's device programs currently attached to `cgroup_dir` (by id).
pub fn attached(cgroup_dir: &Path) -> Result<Vec<u32>> {
    let cg = open_dir(cgroup_dir)?;
    let mut out = Vec::new();
    for id in query(cg.as_raw_fd())? {
        if let Some(fd) = prog_fd_by_id(id)? {
            if prog_name(fd.as_raw_fd())? == PROG_NAME {
                out.push(id);
            }
        }
    }
    Ok(out)
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(dir).map_err(|e| Error::io("opening cgroup", dir, e))?;
    Ok(OwnedFd::from(f))
}

/// Compiles `rules`, loads the program and attaches it to the cgroup v2
/// directory `cgroup_dir`, replacing Hull's previous program there.
pub fn apply(cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&compile(rules))?;
    let cg = open_dir(cgroup_dir)?;
    let mut old = Vec::new();
    for id in query(cg.as_raw_fd())? {
        if let Some(fd) = prog_fd_by_id(id)? {
            if prog_name(fd.as_raw_fd())? == PROG_NAME {
                old.push(fd);
            }
        }
    }
    if let [only] = old.as_slice() {
        match attach(cg.as_raw_fd(), prog.as_raw_fd(), Some(only.as_raw_fd())) {
            Ok(()) => return Ok(()),
            // No BPF_F_REPLACE (before 5.6): attach, then detach.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_ATTACH")(e)),
        }
    }
    attach(cg.as_raw_fd(), prog.as_raw_fd(), None).map_err(bpf_err("BPF_PROG_ATTACH"))?;
    for fd in &old {
        match detach(cg.as_raw_fd(), fd.as_raw_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_DETACH")(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{
        allowed, default_allowed_devices, normalize, oci, ACC_MKNOD, ACC_READ, ACC_WRITE,
    };
    use serde_json::json;

    fn check_equivalent(rules: &[DeviceRule]) {
        let prog = compile(rules);
        let devs = [
            (DevKind::Char, 1, 3),
            (DevKind::Char, 1, 5),
            (DevKind::Char, 1, 7),
            (DevKind::Char, 5, 2),
            (DevKind::Char, 136, 0),
            (DevKind::Char, 136, 9),
            (DevKind::Char, 10, 200),
            (DevKind::Block, 8, 0),
            (DevKind::Block, 1, 3),
            (DevKind::Char, 4095, 1_048_575),
            (DevKind::Char, u32::MAX, u32::MAX),
        ];
        for (kind, maj, min) in devs {
            for acc in 1..=7u8 {
                let want = allowed(rules, kind, maj, min, acc);
                let t = kind.bpf_type().unwrap_or(0);
                let got = run(&prog, t, maj, min, acc);
                assert_eq!(
                    got,
                    Some(u64::from(want)),
                    "{kind:?} {maj}:{min} acc={acc} rules={rules:?}"
                );
            }
        }
    }

    #[test]
    fn program_matches_reference_semantics() {
        let mut cases = vec![
            json!([]),
            json!([{"allow": false, "access": "rwm"}]),
            json!([{"allow": true, "access": "rwm"}]),
            json!([{"allow": true}, {"allow": false, "type": "c", "major": 1, "minor": 7, "access": "w"}]),
            json!([{"allow": false}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                   {"allow": false, "type": "c", "major": 1, "access": "r"},
                   {"allow": true, "type": "b", "minor": 0, "access": "m"},
                   {"allow": true, "type": "c", "major": 4294967295u64, "minor": 4294967295u64, "access": "r"}]),
            json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                   {"allow": false}, {"allow": true, "type": "c", "major": 136, "access": "rw"}]),
        ];
        let mut with_defaults = oci(json!([{"allow": false, "access": "rwm"}]));
        with_defaults.extend(default_allowed_devices());
        cases.push(serde_json::to_value(&with_defaults).unwrap());
        for c in cases {
            let rules = normalize(&oci(c)).unwrap();
            check_equivalent(&rules);
        }
    }

    #[test]
    fn rules_before_a_full_reset_are_dropped() {
        let rules = normalize(&oci(json!([
            {"allow": true, "type": "c", "major": 1, "minor": 3},
            {"allow": true, "type": "c", "major": 1, "minor": 5},
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "r"}
        ])))
        .unwrap();
        let p = compile(&rules);
        // 8 prologue + (3 checks + 1 update) * 1 rule after the reset + the
        // reset itself (1 update) + 7 epilogue.
        assert_eq!(p.len(), 8 + 1 + 4 + 7);
        assert_eq!(run(&p, 2, 1, 3, ACC_READ), Some(0));
        assert_eq!(run(&p, 2, 1, 9, ACC_READ), Some(1));
        assert_eq!(run(&p, 2, 1, 9, ACC_WRITE), Some(0));
        assert_eq!(run(&p, 2, 1, 9, ACC_MKNOD), Some(0));
    }

    #[test]
    fn interpreter_rejects_garbage() {
        assert_eq!(run(&[], 2, 1, 3, 2), None);
        assert_eq!(run(&[insn(0x18, 0, 0, 0, 0)], 2, 1, 3, 2), None);
        assert_eq!(run(&[insn(JNE64_K, 0, 0, -5, 1)], 2, 1, 3, 2), None);
    }
}
