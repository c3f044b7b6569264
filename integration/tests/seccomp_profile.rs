//! The default seccomp profile shipped in `seccomp-profiles/`.
//!
//! Two kinds of checks:
//! * the filter itself, compiled with hull's own compiler (`hull_seccomp`) for
//!   every architecture the profile lists and run in its BPF interpreter: what
//!   is allowed, what gets EPERM, the argument masks on clone/unshare/
//!   personality, clone3's ENOSYS, and that each capability's extra rules open
//!   exactly the syscalls they name. This covers syscalls that busybox cannot
//!   make (keyctl, bpf, kexec, ...).
//! * containers running under the profile: busybox and common tools work, and
//!   blocked operations fail with EPERM although the container holds the
//!   capability the kernel would otherwise accept. Each of those is run once
//!   without the profile as a control, so a test cannot pass because the
//!   operation would have failed anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use hull_integration::{json, workspace_dir, Bundle, Runtime, Value};
use hull_seccomp::arch::{is_known_syscall, X32_SYSCALL_BIT};
use hull_seccomp::bpf::{self, SeccompData};
use hull_seccomp::{compile_for, Arch, Compiled, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO};
use oci_spec::runtime::{Capability, LinuxSeccomp, LinuxSyscall};

const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
/// | CLONE_NEWPID | CLONE_NEWNET: the flags clone(2) may not carry.
const NS_FLAGS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];
/// CLONE_NEWTIME: only unshare(2) and clone3 take it (in clone(2) this bit
/// belongs to the exit signal).
const CLONE_NEWTIME: u64 = 0x80;
const SIGCHLD: u64 = 17;
/// What glibc's pthread_create passes to clone: VM|FS|FILES|SIGHAND|THREAD|
/// SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID.
const PTHREAD_CLONE_FLAGS: u64 = 0x003d_0f00;

/// Syscalls the profile must deny (EPERM) with the default capability set,
/// by reason. Capability-gated ones come back with `default-capabilities.json`.
const BLOCKED: &[(&str, &[&str])] = &[
    (
        "keyrings are not namespaced",
        &["keyctl", "add_key", "request_key"],
    ),
    ("bpf and perf", &["bpf", "perf_event_open"]),
    ("loading a new kernel", &["kexec_load", "kexec_file_load"]),
    (
        "kernel modules",
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
    ),
    (
        "setting the clock",
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    (
        "mounting",
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
        ],
    ),
    ("joining namespaces", &["setns"]),
    (
        "host-wide switches",
        &["acct", "swapon", "swapoff", "reboot", "syslog", "vhangup"],
    ),
    (
        "obsolete or kernel-debugging interfaces",
        &[
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "bdflush",
            "vm86",
            "vm86old",
        ],
    ),
    (
        "other processes' memory",
        &[
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
            "userfaultfd",
        ],
    ),
    ("file handles", &["open_by_handle_at", "name_to_handle_at"]),
    ("fanotify", &["fanotify_init"]),
    ("port I/O", &["iopl", "ioperm"]),
    (
        "NUMA policy",
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
            "migrate_pages",
            "move_pages",
        ],
    ),
    (
        "io_uring",
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
    ),
    ("chroot", &["chroot"]),
];

/// Never allowed, whatever the capabilities.
const NEVER: &[&str] = &[
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "bdflush",
    "vm86",
    "vm86old",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// A sample of what ordinary programs need, which must be allowed everywhere
/// it exists (the full list is checked against the JSON in
/// `allowed_syscalls_are_exactly_the_listed_ones`).
const MUST_ALLOW: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "execve",
    "mmap",
    "brk",
    "futex",
    "rt_sigaction",
    "exit_group",
    "wait4",
    "socket",
    "connect",
    "accept4",
    "epoll_wait",
    "getrandom",
    "statx",
    "newfstatat",
    "rseq",
    "set_robust_list",
    "prlimit64",
    "sethostname",
    "adjtimex",
    "clock_adjtime",
    "ptrace",
    "seccomp",
    "landlock_create_ruleset",
    "ioprio_set",
    "setpriority",
    "sched_setaffinity",
    "capset",
    "setgroups",
    "setresuid",
    "prctl",
    "mknodat",
    "fork",
    "vfork",
    "socketcall",
    "ipc",
    "mmap2",
    "fstat64",
];

fn read_json(file: &str) -> Value {
    let path = workspace_dir().join("seccomp-profiles").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// seccomp-profiles/default.json: the value for config.json's linux.seccomp.
fn profile() -> Value {
    read_json("default.json")
}

/// seccomp-profiles/default-capabilities.json: capability → extra rules.
fn capabilities() -> BTreeMap<String, Vec<Value>> {
    serde_json::from_value(read_json("default-capabilities.json"))
        .expect("default-capabilities.json maps capability names to rule lists")
}

fn parse(profile: &Value) -> LinuxSeccomp {
    serde_json::from_value(profile.clone())
        .unwrap_or_else(|e| panic!("not an OCI linux.seccomp object: {e}"))
}

#[track_caller]
fn compile(profile: &Value, native: Arch) -> Compiled {
    let compiled = compile_for(&parse(profile), native)
        .unwrap_or_else(|e| panic!("profile does not compile for {native:?}: {e}"));
    assert!(
        compiled.skipped_syscalls.is_empty(),
        "names unknown to every architecture: {:?}",
        compiled.skipped_syscalls
    );
    assert!(
        compiled.skipped_architectures.is_empty(),
        "listed architectures hull has no tables for: {:?}",
        compiled.skipped_architectures
    );
    compiled
}

/// The profile with each capability's rules appended, as a manager would.
fn with_capabilities(caps: &[&str]) -> Value {
    let all = capabilities();
    let mut merged = profile();
    let syscalls = merged["syscalls"].as_array_mut().unwrap();
    for cap in caps {
        let rules = all
            .get(*cap)
            .unwrap_or_else(|| panic!("{cap} not in default-capabilities.json"));
        syscalls.extend(rules.iter().cloned());
    }
    merged
}

/// The architectures the profile lists.
fn listed_arches(profile: &Value) -> Vec<Arch> {
    parse(profile)
        .architectures()
        .iter()
        .flatten()
        .map(|a| Arch::from_oci(*a).unwrap_or_else(|| panic!("no tables for {a:?}")))
        .collect()
}

/// Hosts the profile is written for. The filter always covers the host's
/// own ABI, listed or not; the list adds the compat ABIs (x86 and x32 on
/// x86_64, ARM on aarch64). riscv64 and ppc64le have none, and runc 1.1
/// rejects SCMP_ARCH_RISCV64, so they are covered as the native ABI only.
const NATIVES: [Arch; 4] = [Arch::X86_64, Arch::Aarch64, Arch::Riscv64, Arch::Ppc64le];

/// The ABIs a filter compiled on `native` covers.
fn covered(profile: &Value, native: Arch) -> Vec<Arch> {
    let mut arches = listed_arches(profile);
    if !arches.contains(&native) {
        arches.push(native);
    }
    arches
}

fn run(c: &Compiled, arch: Arch, nr: u32, args: [u64; 6]) -> u32 {
    bpf::run(
        &c.filter.program,
        &SeccompData {
            nr: nr as i32,
            arch: arch.audit_arch(),
            instruction_pointer: 0x1000,
            args,
        },
    )
}

fn verdict(c: &Compiled, arch: Arch, name: &str, args: [u64; 6]) -> Option<u32> {
    arch.syscall_nr(name).map(|nr| run(c, arch, nr, args))
}

fn args0(a0: u64) -> [u64; 6] {
    [a0, 0, 0, 0, 0, 0]
}

/// Every syscall number worth probing on `arch` (the tables end below 600).
fn all_numbers(arch: Arch) -> Vec<u32> {
    let mut nrs: Vec<u32> = (0..600).collect();
    if arch == Arch::X32 {
        nrs = nrs.into_iter().map(|n| n | X32_SYSCALL_BIT).collect();
    }
    if arch == Arch::Arm {
        nrs.extend(0x0f_0000..0x0f_0010); // ARM private syscalls (cacheflush, set_tls...)
    }
    nrs
}

/// Names of the rules with `action` in a list of OCI rules.
fn names_with_action(rules: &[Value], action: &str) -> BTreeSet<String> {
    rules
        .iter()
        .filter(|r| r["action"] == action)
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// The JSON itself.

#[test]
fn profile_is_an_oci_linux_seccomp_object() {
    let raw = profile();
    let spec = parse(&raw);
    // Nothing in the file was ignored by the parser: re-serialising the
    // parsed value gives the file back (no misspelt or non-OCI fields).
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        raw,
        "default.json has fields that are not part of OCI linux.seccomp"
    );
    assert_eq!(raw["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(raw["defaultErrnoRet"], 1, "EPERM by default");
    let arches = listed_arches(&raw);
    for required in [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm] {
        assert!(arches.contains(&required), "{required:?} not listed");
    }
    assert!(
        !arches.contains(&Arch::S390x),
        "s390x passes clone's flags in args[1]: it needs its own variant (see README)"
    );
    assert!(raw.get("listenerPath").is_none() && raw.get("flags").is_none());

    // Every name is known to at least one architecture, and no name is
    // listed twice among the unconditional rules.
    let mut seen = BTreeSet::new();
    for rule in spec.syscalls().iter().flatten() {
        for name in rule.names() {
            assert!(is_known_syscall(name), "unknown syscall {name:?}");
            if rule.args().is_none() {
                assert!(seen.insert(name.clone()), "{name} listed twice");
            }
        }
    }
    for group in BLOCKED.iter().flat_map(|(_, names)| names.iter()) {
        assert!(
            is_known_syscall(group),
            "test lists unknown syscall {group}"
        );
    }
}

#[test]
fn capability_file_is_well_formed() {
    let caps = capabilities();
    assert!(!caps.is_empty());
    for (cap, rules) in &caps {
        serde_json::from_value::<Capability>(json!(cap))
            .unwrap_or_else(|e| panic!("{cap:?} is not a capability name: {e}"));
        assert!(!rules.is_empty(), "{cap} has no rules");
        for rule in rules {
            let parsed: LinuxSyscall = serde_json::from_value(rule.clone())
                .unwrap_or_else(|e| panic!("{cap}: not an OCI syscall rule: {e}\n{rule}"));
            assert_eq!(
                &serde_json::to_value(&parsed).unwrap(),
                rule,
                "{cap}: rule has non-OCI fields"
            );
            for name in parsed.names() {
                assert!(is_known_syscall(name), "{cap}: unknown syscall {name:?}");
                assert!(!NEVER.contains(&name.as_str()), "{cap} re-enables {name}");
            }
        }
    }
    for expected in [
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_MODULE",
        "CAP_SYS_TIME",
        "CAP_SYS_BOOT",
        "CAP_SYSLOG",
        "CAP_SYS_PACCT",
        "CAP_SYS_RAWIO",
        "CAP_SYS_NICE",
        "CAP_BPF",
        "CAP_PERFMON",
    ] {
        assert!(caps.contains_key(expected), "{expected} missing");
    }
}

// ---------------------------------------------------------------------------
// The compiled filter, in hull's BPF interpreter.

#[test]
fn profile_compiles_for_every_host_architecture() {
    let raw = profile();
    for native in NATIVES {
        let c = compile(&raw, native);
        assert!(
            c.filter.program.len() <= 4096,
            "{native:?}: {} instructions",
            c.filter.program.len()
        );
        assert!(!c.filter.needs_listener);
        assert_eq!(c.filter.flags, 0, "no filter flags requested");
        eprintln!("{native:?}: {} BPF instructions", c.filter.program.len());
    }
}

#[test]
fn blocked_syscalls_get_eperm_on_every_architecture() {
    let raw = profile();
    for native in NATIVES {
        let c = compile(&raw, native);
        for arch in covered(&raw, native) {
            let mut checked = 0;
            for (why, names) in BLOCKED {
                for name in *names {
                    for args in [[0; 6], [u64::MAX; 6], args0(SIGCHLD)] {
                        if let Some(v) = verdict(&c, arch, name, args) {
                            assert_eq!(
                                v, EPERM,
                                "{name} ({why}) on {arch:?} (host {native:?}, args {args:x?}): \
                                 verdict {v:#x}, expected EPERM"
                            );
                            checked += 1;
                        }
                    }
                }
            }
            assert!(checked > 50, "{arch:?}: only {checked} blocked checks ran");
            for name in MUST_ALLOW {
                if let Some(v) = verdict(&c, arch, name, [0; 6]) {
                    assert_eq!(v, SECCOMP_RET_ALLOW, "{name} on {arch:?} (host {native:?})");
                }
            }
            // A syscall number no table knows falls to the default action.
            assert_eq!(run(&c, arch, 0x3fff, [0; 6]), EPERM);
        }
    }
}

/// The set of syscalls allowed (with all-zero arguments) is exactly the set
/// the JSON names with SCMP_ACT_ALLOW: the compiled filter lets nothing else
/// through, on any listed architecture.
#[test]
fn allowed_syscalls_are_exactly_the_listed_ones() {
    let raw = profile();
    let rules = raw["syscalls"].as_array().unwrap().clone();
    let allowed = names_with_action(&rules, "SCMP_ACT_ALLOW");
    assert!(allowed.len() > 300, "only {} names allowed", allowed.len());
    for name in NEVER
        .iter()
        .chain(BLOCKED.iter().flat_map(|(_, n)| n.iter()))
    {
        assert!(
            !allowed.contains(*name),
            "{name} is allowed by default.json"
        );
    }
    for native in NATIVES {
        let c = compile(&raw, native);
        for arch in covered(&raw, native) {
            let expected: BTreeSet<u32> =
                allowed.iter().filter_map(|n| arch.syscall_nr(n)).collect();
            let probed = all_numbers(arch);
            assert!(
                expected.iter().all(|nr| probed.contains(nr)),
                "{arch:?}: syscall numbers beyond the probed range"
            );
            let actual: BTreeSet<u32> = probed
                .into_iter()
                .filter(|nr| run(&c, arch, *nr, [0; 6]) == SECCOMP_RET_ALLOW)
                .collect();
            let differ: Vec<&u32> = actual.symmetric_difference(&expected).collect();
            assert!(
                differ.is_empty(),
                "{arch:?} (host {native:?}): allowed numbers differ from the allow list: {differ:?}"
            );
        }
    }
}

#[test]
fn clone_is_allowed_only_without_namespace_flags() {
    let raw = profile();
    for native in NATIVES {
        let c = compile(&raw, native);
        for arch in covered(&raw, native) {
            let clone = |args: [u64; 6]| verdict(&c, arch, "clone", args).expect("clone exists");
            // fork() and pthread_create().
            assert_eq!(clone(args0(SIGCHLD)), SECCOMP_RET_ALLOW, "{arch:?} fork");
            assert_eq!(
                clone(args0(PTHREAD_CLONE_FLAGS)),
                SECCOMP_RET_ALLOW,
                "{arch:?} thread"
            );
            // The flags are args[0] here; a stack pointer in args[1] whose
            // bits look like namespace flags does not matter.
            assert_eq!(
                clone([SIGCHLD, 0x7ffe_7e02_0000, 0, 0, 0, 0]),
                SECCOMP_RET_ALLOW,
                "{arch:?} stack pointer"
            );
            for flag in NS_FLAGS {
                assert_eq!(
                    clone(args0(flag | SIGCHLD)),
                    EPERM,
                    "{arch:?} clone({flag:#x})"
                );
                assert_eq!(
                    clone(args0(flag | PTHREAD_CLONE_FLAGS)),
                    EPERM,
                    "{arch:?} clone({flag:#x}|thread)"
                );
            }
            // glibc ≥ 2.34 tries clone3 first and falls back to clone on ENOSYS.
            for args in [[0; 6], [u64::MAX; 6]] {
                assert_eq!(
                    verdict(&c, arch, "clone3", args),
                    Some(ENOSYS),
                    "{arch:?} clone3"
                );
            }

            let unshare = |a0: u64| verdict(&c, arch, "unshare", args0(a0)).unwrap();
            const CLONE_FS: u64 = 0x200;
            const CLONE_FILES: u64 = 0x400;
            const CLONE_SYSVSEM: u64 = 0x40000;
            assert_eq!(
                unshare(CLONE_FS | CLONE_FILES | CLONE_SYSVSEM),
                SECCOMP_RET_ALLOW,
                "{arch:?} unshare without namespaces"
            );
            for flag in NS_FLAGS.iter().chain([&CLONE_NEWTIME]) {
                assert_eq!(unshare(*flag), EPERM, "{arch:?} unshare({flag:#x})");
                assert_eq!(
                    unshare(*flag | CLONE_FS),
                    EPERM,
                    "{arch:?} unshare({flag:#x}|CLONE_FS)"
                );
            }
        }
    }
}

#[test]
fn personality_is_allowed_only_for_safe_values() {
    let raw = profile();
    for native in NATIVES {
        let c = compile(&raw, native);
        for arch in covered(&raw, native) {
            let p = |v: u64| verdict(&c, arch, "personality", args0(v)).unwrap();
            // PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query.
            for ok in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
                assert_eq!(p(ok), SECCOMP_RET_ALLOW, "{arch:?} personality({ok:#x})");
            }
            // ADDR_NO_RANDOMIZE (what `setarch -R` sets), READ_IMPLIES_EXEC,
            // MMAP_PAGE_ZERO, other execution domains.
            for bad in [
                0x40000,
                0x40008,
                0x40_0000,
                0x10_0000,
                0x1,
                0x4,
                0x0800_0000,
            ] {
                assert_eq!(p(bad), EPERM, "{arch:?} personality({bad:#x})");
            }
            if arch.has_64bit_args() {
                assert_eq!(
                    p(u64::MAX),
                    EPERM,
                    "{arch:?}: the 64-bit value is not the query"
                );
            }
        }
    }
}

/// Each capability's rules, appended to the profile, open exactly the
/// syscalls they name (compared over every syscall number, with several
/// argument patterns so conditional rules are exercised), and NEVER-list
/// syscalls stay blocked with every capability's rules merged.
#[test]
fn capability_rules_allow_exactly_their_syscalls() {
    // On x86_64 every listed ABI; on the other hosts their own ABI only
    // (the listed ones were just checked, and the sweep is not cheap).
    for native in NATIVES {
        let arches = if native == Arch::X86_64 {
            covered(&profile(), native)
        } else {
            vec![native]
        };
        capability_rules_on(native, &arches);
    }
}

fn capability_rules_on(native: Arch, arches: &[Arch]) {
    let raw = profile();
    let base = compile(&raw, native);
    let arg_patterns = [
        [0; 6],
        [u64::MAX; 6],
        [0x7e02_0000 | SIGCHLD; 6],
        args0(0x1000_0000),
    ];
    let caps = capabilities();
    for (cap, rules) in &caps {
        let merged = compile(&with_capabilities(&[cap]), native);
        let names = names_with_action(rules, "SCMP_ACT_ALLOW");
        for &arch in arches {
            let expected: BTreeSet<u32> = names.iter().filter_map(|n| arch.syscall_nr(n)).collect();
            let mut opened = BTreeSet::new();
            for nr in all_numbers(arch) {
                for args in arg_patterns {
                    let (before, after) =
                        (run(&base, arch, nr, args), run(&merged, arch, nr, args));
                    if before != after {
                        assert_eq!(
                            after, SECCOMP_RET_ALLOW,
                            "{cap} on {arch:?} (host {native:?}): syscall {nr} changed to {after:#x}"
                        );
                        opened.insert(nr);
                    }
                }
            }
            assert_eq!(
                opened, expected,
                "{cap} on {arch:?} (host {native:?}): syscalls opened differ from those it names ({names:?})"
            );
            // Named syscalls are allowed whatever their arguments.
            for name in &names {
                for args in arg_patterns {
                    if let Some(v) = verdict(&merged, arch, name, args) {
                        assert_eq!(v, SECCOMP_RET_ALLOW, "{cap}: {name} on {arch:?} {args:x?}");
                    }
                }
            }
        }
    }
    let every_cap: Vec<&str> = caps.keys().map(String::as_str).collect();
    let all = compile(&with_capabilities(&every_cap), native);
    for &arch in arches {
        for name in NEVER {
            if let Some(v) = verdict(&all, arch, name, [0; 6]) {
                assert_eq!(v, EPERM, "{name} on {arch:?} with every capability's rules");
            }
        }
        assert_eq!(verdict(&all, arch, "clone3", [0; 6]), Some(ENOSYS));
        assert_eq!(
            verdict(&all, arch, "clone", args0(0x1000_0000 | SIGCHLD)),
            Some(SECCOMP_RET_ALLOW),
            "CAP_SYS_ADMIN allows namespaces"
        );
    }
    // The groups the brief names map to their capability.
    let has =
        |cap: &str, name: &str| names_with_action(&caps[cap], "SCMP_ACT_ALLOW").contains(name);
    for (cap, name) in [
        ("CAP_SYS_ADMIN", "mount"),
        ("CAP_SYS_ADMIN", "umount2"),
        ("CAP_SYS_ADMIN", "unshare"),
        ("CAP_SYS_ADMIN", "setns"),
        ("CAP_SYS_ADMIN", "clone"),
        ("CAP_SYS_ADMIN", "bpf"),
        ("CAP_SYS_PTRACE", "process_vm_readv"),
        ("CAP_SYS_PTRACE", "kcmp"),
        ("CAP_SYS_PTRACE", "pidfd_getfd"),
        ("CAP_SYS_MODULE", "init_module"),
        ("CAP_SYS_TIME", "settimeofday"),
        ("CAP_SYS_TIME", "clock_settime"),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYSLOG", "syslog"),
        ("CAP_SYS_PACCT", "acct"),
        ("CAP_SYS_RAWIO", "iopl"),
        ("CAP_SYS_NICE", "mbind"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
    ] {
        assert!(has(cap, name), "{cap} does not allow {name}");
    }
}

/// The README's recipe for s390x hosts (clone's flags are args[1] there):
/// same profile, clone rule on index 1, s390x as the architecture.
#[test]
fn s390x_variant_checks_clone_flags_in_args1() {
    let mut raw = profile();
    for rule in raw["syscalls"].as_array_mut().unwrap() {
        if rule["names"] == json!(["clone"]) {
            rule["args"][0]["index"] = json!(1);
        }
    }
    raw["architectures"] = json!(["SCMP_ARCH_S390X"]);
    let c = compile(&raw, Arch::S390x);
    let clone = |args| verdict(&c, Arch::S390x, "clone", args).unwrap();
    assert_eq!(clone([0, SIGCHLD, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
    // args[0] is the stack pointer on s390x.
    assert_eq!(
        clone([0x3ff_7e02_0000, SIGCHLD, 0, 0, 0, 0]),
        SECCOMP_RET_ALLOW
    );
    for flag in NS_FLAGS {
        assert_eq!(clone([0, flag | SIGCHLD, 0, 0, 0, 0]), EPERM, "{flag:#x}");
    }
    assert_eq!(verdict(&c, Arch::S390x, "keyctl", [0; 6]), Some(EPERM));
    assert_eq!(
        verdict(&c, Arch::S390x, "openat", [0; 6]),
        Some(SECCOMP_RET_ALLOW)
    );
}

// ---------------------------------------------------------------------------
// Containers under the profile.

/// A bundle running under default.json (plus the rules of `caps`, which are
/// also added to the process's capability sets), with a writable rootfs.
fn confined(rt: &Runtime, caps: &[&str], with_profile: bool) -> Bundle {
    let mut bundle = rt.bundle();
    bundle.writable_root();
    if with_profile {
        // CAP_NET_ADMIN, for one, has no rules of its own.
        let known = capabilities();
        let with_rules: Vec<&str> = caps
            .iter()
            .copied()
            .filter(|c| known.contains_key(*c))
            .collect();
        bundle.set("/linux/seccomp", with_capabilities(&with_rules));
    }
    for set in ["bounding", "effective", "permitted"] {
        for cap in caps {
            bundle.push(&format!("/process/capabilities/{set}"), *cap);
        }
    }
    bundle
}

/// Like [`confined`], but the capabilities are granted to the process only:
/// the profile stays the base one, so the kernel would allow what the filter
/// must stop.
fn confined_base_profile(rt: &Runtime, caps: &[&str], with_profile: bool) -> Bundle {
    let mut bundle = rt.bundle();
    bundle.writable_root();
    if with_profile {
        bundle.set("/linux/seccomp", profile());
    }
    for set in ["bounding", "effective", "permitted"] {
        for cap in caps {
            bundle.push(&format!("/process/capabilities/{set}"), *cap);
        }
    }
    bundle
}

const TOOLS_SCRIPT: &str = r#"set -e
cd /tmp
mkdir -p d/sub; echo hello > d/a; cp d/a d/b; mv d/b d/c; ln -s a d/l; ln d/a d/h
chmod 600 d/a; touch d/t
echo "files: $(ls d | tr '\n' ' ')"
echo "symlink: $(cat d/l)"
rm d/h; rmdir d/sub
tar -cf x.tar d; gzip x.tar
echo "tar: $(gzip -dc x.tar.gz | tar -tf - | sort | tr '\n' ' ')"
echo "sort: $(printf '3\n1\n2\n' | sort -n | tr '\n' ' ')"
echo "awk: $(echo 'a b c' | awk '{print $2}')"
echo "sed: $(echo foo | sed s/foo/bar/)"
echo "find: $(find d -name a)"
echo "id: $(id -u) $(whoami)"
echo "uname: $(uname -s)"
date +%Y > /dev/null; df / > /dev/null; free > /dev/null; top -bn1 > /dev/null
echo "ps: $(ps -o pid,comm | awk '$1 == 1 { print $2 }')"
sleep 0.1
ionice -c 2 -n 7 true; renice -n 5 -p $$ > /dev/null; timeout 5 true
echo "nice: $(cut -d' ' -f19 /proc/self/stat)"
trap 'echo trap: usr1' USR1; kill -USR1 $$
sleep 30 & p=$!; kill $p; wait $p 2>/dev/null || echo "background: $?"
echo "pipe: $(echo sub | cat | tr a-z A-Z)"
mknod /tmp/fifo p; echo fifo > /tmp/fifo & cat /tmp/fifo; wait
mknod /tmp/hold p; sleep 30 > /tmp/hold & S=$!
nc -l -p 7777 < /tmp/hold > /tmp/recv & L=$!
i=0; until echo ping | nc 127.0.0.1 7777 2>/dev/null; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done
wait $L; kill $S; echo "nc: $(cat /tmp/recv)"
httpd -f -p 127.0.0.1:8080 -h /tmp/d & H=$!
i=0; until body=$(wget -q -O - http://127.0.0.1:8080/a 2>/dev/null); do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done
kill $H; wait $H 2>/dev/null || true
echo "wget: $body"
echo "seccomp: $(grep '^Seccomp:' /proc/self/status | cut -f2)"
echo ALL-OK
"#;

#[test]
fn busybox_tools_work_under_default_profile() {
    let Some(rt) = Runtime::new("sc-profile-tools") else {
        return;
    };
    // The loopback interface of the new network namespace is up (as with runc).
    let mut bundle = confined(&rt, &[], true);
    bundle.write_file("tools.sh", TOOLS_SCRIPT);
    bundle.args(&["sh", "/tools.sh"]);
    let out = rt.run_ok(&bundle);
    assert_eq!(
        out.lines(),
        [
            "files: a c h l sub t",
            "symlink: hello",
            "tar: d/ d/a d/c d/l d/t",
            "sort: 1 2 3",
            "awk: b",
            "sed: bar",
            "find: d/a",
            "id: 0 root",
            "uname: Linux",
            "ps: sh",
            "nice: 5",
            "trap: usr1",
            "background: 143",
            "pipe: SUB",
            "fifo",
            "nc: ping",
            "wget: hello",
            "seccomp: 2",
            "ALL-OK",
        ],
        "{out}"
    );
}

/// The profile must also allow what hull itself does after loading it:
/// without noNewPrivileges the filter goes in before the capability drop and
/// the switch to the configured user.
#[test]
fn default_profile_without_no_new_privileges_as_a_user() {
    let Some(rt) = Runtime::new("sc-profile-user") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .set("/linux/seccomp", profile())
        .set("/process/noNewPrivileges", false)
        .set("/process/user", json!({"uid": 1000, "gid": 1000, "additionalGids": [10]}))
        .sh("id -u; id -G; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; ls / > /dev/null && echo ls-ok");
    let out = rt.run_ok(&bundle);
    assert_eq!(
        out.lines(),
        ["1000", "1000 10", "NoNewPrivs: 0", "Seccomp: 2", "ls-ok"],
        "{out}"
    );
}

/// (name, command) pairs that must fail with EPERM under the profile even
/// though the container holds the capability; without the profile (the
/// control run) none of them may fail with EPERM.
const BLOCKED_COMMANDS: &[(&str, &str)] = &[
    ("unshare-user", "unshare -U true"),
    ("unshare-mount", "unshare -m true"),
    ("unshare-net", "unshare -n true"),
    ("mount", "mount -t tmpfs x /tmp"),
    ("umount", "umount /proc"),
    ("setns", "nsenter -t 1 -u true"),
    ("swapoff", "swapoff /nonexistent"),
    ("swapon", "swapon /tmp/empty"),
    // A negative time: the kernel checks it (EINVAL) before the capability,
    // so the control never changes the host's clock.
    ("settime", "date -s '1969-12-31 23:59:58'"),
    ("personality", "linux32 -R true"),
    ("delete_module", "rmmod hull_no_such_module"),
    ("syslog", "dmesg"),
    ("chroot", "chroot / true"),
];

/// Commands that must work both with and without the profile.
const ALLOWED_COMMANDS: &[(&str, &str)] = &[
    ("hostname", "hostname foo && hostname"),
    ("adjtimex", "adjtimex"),
    ("linux32", "linux32 uname -m"),
    ("fifo", "mknod /tmp/p p && rm /tmp/p"),
];

fn blocked_script() -> String {
    let mut s = String::from(": > /tmp/empty\n");
    for (name, cmd) in BLOCKED_COMMANDS.iter().chain(ALLOWED_COMMANDS) {
        s.push_str(&format!(
            "out=$({cmd} 2>&1); rc=$?; echo \"{name}: rc=$rc $(echo $out | tr '\\n' ' ')\"\n"
        ));
    }
    s
}

fn is_eperm(line: &str) -> bool {
    line.contains("Operation not permitted") || line.contains("permission denied")
}

#[test]
fn blocked_operations_fail_with_eperm_under_default_profile() {
    let Some(rt) = Runtime::new("sc-profile-blocked") else {
        return;
    };
    let caps = [
        "CAP_SYS_ADMIN",
        "CAP_SYS_MODULE",
        "CAP_SYSLOG",
        "CAP_SYS_CHROOT",
    ];
    let run = |with_profile: bool| -> BTreeMap<String, String> {
        let mut bundle = confined_base_profile(&rt, &caps, with_profile);
        bundle.write_file("blocked.sh", &blocked_script());
        bundle.args(&["sh", "/blocked.sh"]);
        let out = rt.run_ok(&bundle);
        out.lines()
            .iter()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let control = run(false);
    let confined = run(true);
    for (name, _) in BLOCKED_COMMANDS {
        let c = control
            .get(*name)
            .unwrap_or_else(|| panic!("no control line for {name}: {control:?}"));
        let p = confined
            .get(*name)
            .unwrap_or_else(|| panic!("no line for {name}: {confined:?}"));
        assert!(
            !is_eperm(c),
            "{name}: fails with EPERM even without the profile, so this check proves nothing: {c}"
        );
        assert!(is_eperm(p), "{name}: not blocked by the profile: {p}");
    }
    for (name, _) in ALLOWED_COMMANDS {
        for (label, lines) in [("control", &control), ("profile", &confined)] {
            let line = &lines[*name];
            assert!(
                line == "rc=0" || line.starts_with("rc=0 "),
                "{name} ({label}): {line}"
            );
        }
    }
    assert_eq!(confined["hostname"], "rc=0 foo");
    assert_eq!(confined["linux32"], "rc=0 i686");
}

/// reboot(2) in a container's pid namespace kills the container's init
/// (that is the control); under the profile it fails with EPERM and the
/// container lives on. The script refuses to call reboot unless it is pid 1
/// of its own pid namespace, so a missing pid namespace cannot reboot the host.
#[test]
fn reboot_is_blocked_under_default_profile() {
    let Some(rt) = Runtime::new("sc-profile-reboot") else {
        return;
    };
    let script =
        "[ $$ = 1 ] || { echo not-pid-1; exit 99; }; reboot -f; echo \"rc=$?\"; echo survived";
    let mut control = confined_base_profile(&rt, &["CAP_SYS_BOOT"], false);
    control.sh(script);
    let out = rt.run(&control, &rt.new_id(), &[]);
    assert_eq!(
        out.code(),
        128 + libc::SIGHUP,
        "control: reboot kills the pid namespace\n{out}"
    );
    assert!(!out.stdout.contains("survived"), "{out}");

    let mut bundle = confined_base_profile(&rt, &["CAP_SYS_BOOT"], true);
    bundle.sh(script);
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["rc=1", "survived"], "{out}");
    assert!(is_eperm(&out.stderr), "{out}");
}

/// The capability rules, merged, really open the door: with CAP_SYS_ADMIN's
/// rules and the capability, `unshare -m` and mount work under the profile.
#[test]
fn capability_rules_work_in_a_container() {
    let Some(rt) = Runtime::new("sc-profile-caps") else {
        return;
    };
    let mut bundle = confined(&rt, &["CAP_SYS_ADMIN", "CAP_SYSLOG"], true);
    bundle.sh(
        "unshare -m true && echo unshare-ok; mount -t tmpfs x /tmp && echo mount-ok; \
         dmesg > /dev/null && echo dmesg-ok; rmmod hull_no_such_module 2>&1 | grep -c 'not permitted'",
    );
    let out = rt.run_ok(&bundle);
    // CAP_SYS_MODULE's rules were not merged: delete_module stays blocked.
    assert_eq!(
        out.lines(),
        ["unshare-ok", "mount-ok", "dmesg-ok", "1"],
        "{out}"
    );
}
