//! OCI `linux.seccomp` → per-architecture rule trees → one BPF program.
//!
//! Profile semantics follow runc, which is what OCI profiles in the wild
//! are written and tested against:
//! * the native architecture is always covered, plus every listed one;
//! * ERRNO and TRACE carry `errnoRet` (EPERM when absent); other actions
//!   must not have one (the runtime spec says to fail);
//! * rules whose action equals the default action are skipped, because
//!   they cannot change the outcome and libseccomp rejects them;
//! * names no architecture knows are skipped and reported, not fatal, so
//!   one profile serves old and new kernels alike;
//! * a rule comparing the same argument twice is split into one rule per
//!   comparison (runc's historical OR reading); otherwise conditions AND.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::arch::{self, Arch, Muxed, X32_SYSCALL_BIT};
use crate::asm::{Asm, Label};
use crate::bpf::{
    Insn, BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET,
    BPF_W, MAX_INSNS,
};
use crate::tree::{self, Branch, Cond, Node, Op, SyscallRules, Test};
use crate::{
    Error, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
};

/// What the kernel does for a syscall from an architecture the filter does
/// not cover (libseccomp's default "bad arch" action).
pub const BAD_ARCH_ACTION: u32 = SECCOMP_RET_KILL_THREAD;

/// Largest syscall-number group sharing one `ret`; keeps every jump in a
/// group short.
const GROUP: usize = 128;

/// A compiled filter, ready for [`crate::install`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub program: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2), including NEW_LISTENER when
    /// a rule uses NOTIFY.
    pub flags: u32,
    /// A rule uses SCMP_ACT_NOTIFY: installing returns a listener fd.
    pub needs_listener: bool,
}

/// The result of compiling a profile, with what had to be left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    pub filter: Filter,
    /// Syscall names no supported architecture knows (skipped, as runc does).
    pub skipped_syscalls: Vec<String>,
    /// Listed architectures without syscall tables here; their syscalls hit
    /// the bad-architecture action (kill), so leaving them out fails closed.
    pub skipped_architectures: Vec<OciArch>,
}

/// Compiles for the architecture this binary was built for.
pub fn compile(spec: &LinuxSeccomp) -> Result<Compiled, Error> {
    let native = Arch::native().ok_or(Error::UnsupportedNativeArch)?;
    compile_for(spec, native)
}

/// Compiles as if running on `native` (which the filter always covers).
pub fn compile_for(spec: &LinuxSeccomp, native: Arch) -> Result<Compiled, Error> {
    let default = action_value(spec.default_action(), spec.default_errno_ret())?;
    if default == SECCOMP_RET_USER_NOTIF {
        return Err(Error::NotifyAsDefault);
    }
    let (arches, skipped_architectures) = architectures(spec, native);
    let mut rules: BTreeMap<Arch, BTreeMap<u32, SyscallRules>> =
        arches.iter().map(|a| (*a, BTreeMap::new())).collect();
    let mut skipped_syscalls = Vec::new();
    let mut needs_listener = false;
    for syscall in spec.syscalls().iter().flatten() {
        let action = action_value(syscall.action(), syscall.errno_ret())?;
        if action == default {
            continue;
        }
        let rule_sets = rule_conditions(syscall)?;
        for name in syscall.names() {
            if name.is_empty() {
                return Err(Error::EmptySyscallName);
            }
            if !arch::is_known_syscall(name) {
                skipped_syscalls.push(name.clone());
                continue;
            }
            needs_listener |= action == SECCOMP_RET_USER_NOTIF;
            for conds in &rule_sets {
                for (arch, table) in rules.iter_mut() {
                    add_for_arch(table, *arch, name, conds, action)?;
                }
            }
        }
    }
    let program = generate(&rules, default)?;
    let flags = filter_flags(spec)
        | if needs_listener {
            SECCOMP_FILTER_FLAG_NEW_LISTENER
        } else {
            0
        };
    Ok(Compiled {
        filter: Filter {
            program,
            flags,
            needs_listener,
        },
        skipped_syscalls,
        skipped_architectures,
    })
}

/// libseccomp refuses ERRNO data at or above this (the kernel would clamp
/// it to 4095 anyway); runc inherits the refusal, so do we.
const MAX_ERRNO: u32 = 4095;

/// The `SECCOMP_RET_*` value of an OCI action. Like runc (which passes
/// `errnoRet` through an `int16`) only the low 16 bits of `errnoRet` count.
fn action_value(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<u32, Error> {
    use LinuxSeccompAction as A;
    let data = |errno: Option<u32>| errno.unwrap_or(libc::EPERM as u32) & 0xffff;
    let value = match action {
        A::ScmpActErrno if data(errno_ret) >= MAX_ERRNO => {
            return Err(Error::ErrnoOutOfRange(errno_ret.unwrap_or_default()))
        }
        A::ScmpActErrno => return Ok(SECCOMP_RET_ERRNO | data(errno_ret)),
        A::ScmpActTrace => return Ok(SECCOMP_RET_TRACE | data(errno_ret)),
        A::ScmpActKill | A::ScmpActKillThread => SECCOMP_RET_KILL_THREAD,
        A::ScmpActKillProcess => SECCOMP_RET_KILL_PROCESS,
        A::ScmpActTrap => SECCOMP_RET_TRAP,
        A::ScmpActNotify => SECCOMP_RET_USER_NOTIF,
        A::ScmpActLog => SECCOMP_RET_LOG,
        A::ScmpActAllow => SECCOMP_RET_ALLOW,
    };
    match errno_ret {
        Some(_) => Err(Error::ErrnoRetNotAllowed(action)),
        None => Ok(value),
    }
}

/// Native first, then the listed ones we have tables for.
fn architectures(spec: &LinuxSeccomp, native: Arch) -> (Vec<Arch>, Vec<OciArch>) {
    let mut arches = vec![native];
    let mut skipped = Vec::new();
    for listed in spec.architectures().iter().flatten() {
        let arch = match listed {
            OciArch::ScmpArchNative => Some(native),
            other => Arch::from_oci(*other),
        };
        match arch {
            Some(a) if !arches.contains(&a) => arches.push(a),
            Some(_) => {}
            None => skipped.push(*listed),
        }
    }
    (arches, skipped)
}

/// The condition lists one OCI syscall entry stands for.
fn rule_conditions(syscall: &LinuxSyscall) -> Result<Vec<Vec<Cond>>, Error> {
    let args = syscall.args().as_deref().unwrap_or_default();
    let mut conds = Vec::with_capacity(args.len());
    for arg in args {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| *i < 6)
            .ok_or(Error::ArgIndex(arg.index()))?;
        conds.push(cond(index, arg.op(), arg.value(), arg.value_two()));
    }
    let repeats_an_index = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
    Ok(if repeats_an_index {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

fn cond(index: u8, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> Cond {
    use LinuxSeccompOperator as O;
    let op = match op {
        O::ScmpCmpNe => Op::Ne,
        O::ScmpCmpLt => Op::Lt,
        O::ScmpCmpLe => Op::Le,
        O::ScmpCmpEq => Op::Eq,
        O::ScmpCmpGe => Op::Ge,
        O::ScmpCmpGt => Op::Gt,
        O::ScmpCmpMaskedEq => Op::MaskedEq,
    };
    if op == Op::MaskedEq {
        Cond {
            index,
            op,
            mask: value,
            datum: value_two.unwrap_or(0),
        }
    } else {
        Cond {
            index,
            op,
            mask: u64::MAX,
            datum: value,
        }
    }
}

/// Adds one rule for `name` on `arch`, also through `socketcall`/`ipc`
/// where the architecture multiplexes it. The multiplexed copy has its
/// argument 0 condition replaced by the call number (the real arguments
/// sit behind a pointer there), exactly as libseccomp does.
fn add_for_arch(
    table: &mut BTreeMap<u32, SyscallRules>,
    arch: Arch,
    name: &str,
    conds: &[Cond],
    action: u32,
) -> Result<(), Error> {
    let conflict = |_| Error::Conflict {
        syscall: name.to_string(),
        arch,
    };
    if let (Some(mux), Some(muxed)) = (arch.multiplexers(), arch::muxed(name)) {
        let (nr, call) = match muxed {
            Muxed::Socket(call) => (mux.socketcall, call),
            Muxed::Ipc(call) => (mux.ipc, call),
        };
        let mut via_mux: Vec<Cond> = conds.iter().filter(|c| c.index != 0).copied().collect();
        via_mux.push(Cond {
            index: 0,
            op: Op::Eq,
            mask: u64::MAX,
            datum: u64::from(call),
        });
        add_one(table, arch, nr, &via_mux, action).map_err(conflict)?;
    }
    if let Some(nr) = arch.syscall_nr(name) {
        add_one(table, arch, nr, conds, action).map_err(conflict)?;
    }
    Ok(())
}

fn add_one(
    table: &mut BTreeMap<u32, SyscallRules>,
    arch: Arch,
    nr: u32,
    conds: &[Cond],
    action: u32,
) -> Result<(), tree::Conflict> {
    let chain = tree::chain(conds, arch.has_64bit_args(), action);
    let merged = tree::add_rule(table.remove(&nr), chain, action)?;
    table.insert(nr, merged);
    Ok(())
}

fn filter_flags(spec: &LinuxSeccomp) -> u32 {
    use LinuxSeccompFilterFlag as F;
    spec.flags()
        .iter()
        .flatten()
        .map(|flag| match flag {
            F::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            F::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            F::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            F::SeccompFilterFlagWaitKillableRecv => SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        })
        .fold(0, |acc, f| acc | f)
}

/// One `seccomp_data.arch` value and the syscalls behind it. x86_64 and
/// x32 share an audit value, so they share a block.
struct Block<'a> {
    audit: u32,
    x32_check: X32Check,
    syscalls: Vec<(u32, Arch, &'a SyscallRules)>,
}

/// How a block treats syscall numbers with `__X32_SYSCALL_BIT`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum X32Check {
    /// Not an x86_64 block, or both ABIs are covered.
    None,
    /// x86_64 only: x32 numbers are a foreign ABI (except -1, which a
    /// tracer uses to skip a syscall and gets the default action).
    RejectX32,
    /// x32 only: numbers without the bit are a foreign ABI.
    RequireX32,
}

fn blocks<'a>(rules: &'a BTreeMap<Arch, BTreeMap<u32, SyscallRules>>) -> Vec<Block<'a>> {
    let has = |a| rules.contains_key(&a);
    let mut blocks: Vec<Block<'a>> = Vec::new();
    for (arch, table) in rules {
        let syscalls = table.iter().map(|(nr, r)| (*nr, *arch, r));
        let shared = blocks.iter_mut().find(|b| b.audit == arch.audit_arch());
        if let Some(block) = shared {
            block.syscalls.extend(syscalls);
            continue;
        }
        let x32_check = match arch {
            Arch::X86_64 if !has(Arch::X32) => X32Check::RejectX32,
            Arch::X32 if !has(Arch::X86_64) => X32Check::RequireX32,
            _ => X32Check::None,
        };
        blocks.push(Block {
            audit: arch.audit_arch(),
            x32_check,
            syscalls: syscalls.collect(),
        });
    }
    blocks
}

fn generate(
    rules: &BTreeMap<Arch, BTreeMap<u32, SyscallRules>>,
    default: u32,
) -> Result<Vec<Insn>, Error> {
    let blocks = blocks(rules);
    let mut asm = Asm::default();
    let entries: Vec<Label> = blocks.iter().map(|_| asm.label()).collect();
    asm.stmt(load(4));
    for (block, entry) in blocks.iter().zip(&entries) {
        let next = asm.label();
        asm.cond(BPF_JMP | BPF_JEQ | BPF_K, block.audit, *entry, next);
        asm.bind(next);
    }
    asm.stmt(ret(BAD_ARCH_ACTION));
    for (block, entry) in blocks.iter().zip(&entries) {
        asm.bind(*entry);
        emit_block(&mut asm, block, default);
    }
    let program = asm.finish().map_err(|_| Error::Internal("backward jump"))?;
    if program.len() > MAX_INSNS {
        return Err(Error::TooLong(program.len()));
    }
    Ok(program)
}

fn emit_block(asm: &mut Asm, block: &Block<'_>, default: u32) {
    asm.stmt(load(0));
    emit_x32_check(asm, block.x32_check);
    let mut by_action: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (nr, _, rules) in &block.syscalls {
        if let SyscallRules::Always(action) = rules {
            if *action != default {
                by_action.entry(*action).or_default().push(*nr);
            }
        }
    }
    for (action, nrs) in &by_action {
        for group in nrs.chunks(GROUP) {
            emit_group(asm, group, *action);
        }
    }
    for (nr, arch, rules) in &block.syscalls {
        if let SyscallRules::Tree(level) = rules {
            let (body, skip) = (asm.label(), asm.label());
            asm.cond(BPF_JMP | BPF_JEQ | BPF_K, *nr, body, skip);
            asm.bind(body);
            emit_tree(asm, *arch, level, default);
            asm.bind(skip);
        }
    }
    asm.stmt(ret(default));
}

fn emit_x32_check(asm: &mut Asm, check: X32Check) {
    let (ok, bad) = (asm.label(), asm.label());
    match check {
        X32Check::None => return,
        X32Check::RejectX32 => {
            let probe = asm.label();
            asm.cond(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, probe, ok);
            asm.bind(probe);
            asm.cond(BPF_JMP | BPF_JEQ | BPF_K, u32::MAX, ok, bad);
        }
        X32Check::RequireX32 => asm.cond(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, ok, bad),
    }
    asm.bind(bad);
    asm.stmt(ret(BAD_ARCH_ACTION));
    asm.bind(ok);
}

/// `nr == a || nr == b || ...` → one shared `ret action`.
fn emit_group(asm: &mut Asm, nrs: &[u32], action: u32) {
    let (hit, after) = (asm.label(), asm.label());
    for (i, nr) in nrs.iter().enumerate() {
        let miss = if i + 1 == nrs.len() {
            after
        } else {
            asm.label()
        };
        asm.cond(BPF_JMP | BPF_JEQ | BPF_K, *nr, hit, miss);
        if miss != after {
            asm.bind(miss);
        }
    }
    asm.bind(hit);
    asm.stmt(ret(action));
    asm.bind(after);
}

/// A syscall's argument tree, followed by its own returns so that every
/// jump out of it stays local.
fn emit_tree(asm: &mut Asm, arch: Arch, level: &[Node], default: u32) {
    let entry = asm.label();
    let fallback = asm.label();
    let mut actions: BTreeMap<u32, Label> = BTreeMap::new();
    asm.bind(entry);
    emit_level(asm, arch, entry, level, fallback, &mut actions);
    asm.bind(fallback);
    asm.stmt(ret(default));
    for (action, label) in actions {
        asm.bind(label);
        asm.stmt(ret(action));
    }
}

/// Emits one ordered list of alternatives; `fall` is where evaluation
/// continues when none of them decides. `entry` is already bound. Each
/// node's subtrees follow it directly, before the next sibling, so that
/// every fall-through jumps forward.
fn emit_level(
    asm: &mut Asm,
    arch: Arch,
    entry: Label,
    level: &[Node],
    fall: Label,
    actions: &mut BTreeMap<u32, Label>,
) {
    let labels: Vec<Label> = (0..level.len())
        .map(|i| if i == 0 { entry } else { asm.label() })
        .collect();
    for (i, node) in level.iter().enumerate() {
        let next = labels.get(i + 1).copied().unwrap_or(fall);
        if i > 0 {
            asm.bind(labels[i]);
        }
        emit_node(asm, arch, node, next, actions);
    }
}

/// One comparison, then whichever of its branches are subtrees.
fn emit_node(
    asm: &mut Asm,
    arch: Arch,
    node: &Node,
    next: Label,
    actions: &mut BTreeMap<u32, Label>,
) {
    let offset = if node.hi {
        arch.arg_hi_offset(node.index)
    } else {
        arch.arg_lo_offset(node.index)
    };
    asm.stmt(load(offset));
    if node.mask != u32::MAX {
        asm.stmt(Insn::stmt(BPF_ALU | BPF_AND | BPF_K, node.mask));
    }
    let mut subtrees: Vec<(Label, &[Node])> = Vec::new();
    let mut target = |asm: &mut Asm, branch: &'_ Branch| -> Label {
        match branch {
            Branch::Fall => next,
            Branch::Act(action) => *actions.entry(*action).or_insert_with(|| asm.label()),
            Branch::Level(_) => asm.label(),
        }
    };
    let (t, f) = (target(asm, &node.t), target(asm, &node.f));
    for (label, branch) in [(t, &node.t), (f, &node.f)] {
        if let Branch::Level(sub) = branch {
            subtrees.push((label, sub.as_slice()));
        }
    }
    let op = match node.test {
        Test::Eq | Test::MaskedEq => BPF_JEQ,
        Test::Gt => BPF_JGT,
        Test::Ge => BPF_JGE,
    };
    asm.cond(BPF_JMP | op | BPF_K, node.datum, t, f);
    for (label, sub) in subtrees {
        asm.bind(label);
        emit_level(asm, arch, label, sub, next, actions);
    }
}

fn load(offset: u32) -> Insn {
    Insn::stmt(BPF_LD | BPF_W | BPF_ABS, offset)
}

fn ret(value: u32) -> Insn {
    Insn::stmt(BPF_RET | BPF_K, value)
}
