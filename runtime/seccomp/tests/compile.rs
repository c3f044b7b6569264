//! Unit-level checks of the compiler through its public API: every action
//! value, every operator, architecture handling, skipped names, long jumps.
//! Programs are executed with the crate's BPF interpreter.

use hull_seccomp::bpf::{self, SeccompData};
use hull_seccomp::{
    compile_for, Arch, Compiled, Error, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

fn compile(native: Arch, profile: Value) -> Result<Compiled, Error> {
    let spec: LinuxSeccomp = serde_json::from_value(profile).expect("valid OCI seccomp JSON");
    compile_for(&spec, native)
}

fn verdict(c: &Compiled, arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    let nr = arch.syscall_nr(name).expect("syscall exists") as i32;
    run(c, arch.audit_arch(), nr, args)
}

fn run(c: &Compiled, arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    bpf::run(
        &c.filter.program,
        &SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        },
    )
}

const NO_ARGS: [u64; 6] = [0; 6];

#[test]
fn every_action_returns_its_kernel_value() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_KILL"},
            {"names": ["write"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["open"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["close"], "action": "SCMP_ACT_TRAP"},
            {"names": ["stat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["fstat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["lstat"], "action": "SCMP_ACT_TRACE", "errnoRet": 9},
            {"names": ["poll"], "action": "SCMP_ACT_TRACE"},
            {"names": ["lseek"], "action": "SCMP_ACT_LOG"},
            {"names": ["mmap"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["brk"], "action": "SCMP_ACT_ALLOW"}
        ]}),
    )
    .unwrap();
    let v = |name| verdict(&c, Arch::X86_64, name, NO_ARGS);
    assert_eq!(v("read"), SECCOMP_RET_KILL_THREAD);
    assert_eq!(v("write"), SECCOMP_RET_KILL_THREAD);
    assert_eq!(v("open"), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(v("close"), SECCOMP_RET_TRAP);
    assert_eq!(v("stat"), SECCOMP_RET_ERRNO | 13);
    assert_eq!(
        v("fstat"),
        SECCOMP_RET_ERRNO | 1,
        "EPERM when errnoRet is absent"
    );
    assert_eq!(v("lstat"), SECCOMP_RET_TRACE | 9);
    assert_eq!(v("poll"), SECCOMP_RET_TRACE | 1);
    assert_eq!(v("lseek"), SECCOMP_RET_LOG);
    assert_eq!(v("mmap"), SECCOMP_RET_USER_NOTIF);
    assert_eq!(v("brk"), SECCOMP_RET_ALLOW);
    assert_eq!(v("getpid"), SECCOMP_RET_ERRNO | 38, "defaultErrnoRet");
    assert!(c.filter.needs_listener);
    assert_eq!(
        c.filter.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER,
        SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
}

#[test]
fn invalid_actions_are_refused() {
    let notify_default = compile(Arch::X86_64, json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
    assert!(matches!(notify_default, Err(Error::NotifyAsDefault)));
    let errno_on_allow = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}),
    );
    assert!(matches!(errno_on_allow, Err(Error::ErrnoRetNotAllowed(_))));
    let huge = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4095}),
    );
    assert!(matches!(huge, Err(Error::ErrnoOutOfRange(4095))));
    let bad_index = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
               "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}]}]}),
    );
    assert!(matches!(bad_index, Err(Error::ArgIndex(6))));
}

fn one_condition(arch: Arch, op: &str, value: u64, value_two: Option<u64>) -> Compiled {
    let mut a = json!({"index": 1, "op": op, "value": value});
    if let Some(v2) = value_two {
        a["valueTwo"] = json!(v2);
    }
    compile(
        arch,
        json!({"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [a]}]}),
    )
    .unwrap()
}

#[test]
fn every_operator_on_64_bit_values() {
    let d: u64 = 0x1_0000_0005;
    let cases: [(&str, &[(u64, bool)]); 6] = [
        ("SCMP_CMP_EQ", &[(d, true), (d - 1, false), (5, false)]),
        ("SCMP_CMP_NE", &[(d, false), (d + 1, true), (5, true)]),
        (
            "SCMP_CMP_LT",
            &[(d - 1, true), (d, false), (u64::MAX, false)],
        ),
        ("SCMP_CMP_LE", &[(d, true), (d + 1, false), (0, true)]),
        (
            "SCMP_CMP_GE",
            &[(d, true), (d - 1, false), (u64::MAX, true)],
        ),
        (
            "SCMP_CMP_GT",
            &[(d, false), (d + 1, true), (0xffff_ffff, false)],
        ),
    ];
    for (op, probes) in cases {
        let c = one_condition(Arch::X86_64, op, d, None);
        for (value, allowed) in probes {
            let want = if *allowed {
                SECCOMP_RET_ALLOW
            } else {
                SECCOMP_RET_ERRNO | 1
            };
            let got = verdict(&c, Arch::X86_64, "write", [0, *value, 0, 0, 0, 0]);
            assert_eq!(got, want, "{op} {d:#x} against {value:#x}");
        }
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let c = one_condition(
        Arch::X86_64,
        "SCMP_CMP_MASKED_EQ",
        0xff00_0000_00ff,
        Some(0x1200_0000_0034),
    );
    let v = |a| verdict(&c, Arch::X86_64, "write", [0, a, 0, 0, 0, 0]);
    assert_eq!(v(0x1234_5678_9a34), SECCOMP_RET_ALLOW);
    assert_eq!(v(0x1300_0000_0034), SECCOMP_RET_ERRNO | 1);
    assert_eq!(v(0x1200_0000_0035), SECCOMP_RET_ERRNO | 1);
}

#[test]
fn thirty_two_bit_abis_compare_the_low_word_only() {
    let c = one_condition(Arch::X86_64, "SCMP_CMP_EQ", 0x1_0000_0005, None);
    // The x86 block of the same filter is not involved: x86 is not listed.
    assert_eq!(
        verdict(&c, Arch::X86_64, "write", [0, 5, 0, 0, 0, 0]),
        SECCOMP_RET_ERRNO | 1
    );
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
               "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 1, "op": "SCMP_CMP_EQ", "value": 0x1_0000_0005u64}]}]}),
    )
    .unwrap();
    assert_eq!(
        verdict(&c, Arch::X86, "write", [0, 5, 0, 0, 0, 0]),
        SECCOMP_RET_ALLOW
    );
}

#[test]
fn args_and_within_a_rule_and_rules_or() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "op": "SCMP_CMP_EQ", "value": 3},
                {"index": 2, "op": "SCMP_CMP_LE", "value": 10}]},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "op": "SCMP_CMP_EQ", "value": 4}]}
        ]}),
    )
    .unwrap();
    let v = |a0, a2| verdict(&c, Arch::X86_64, "read", [a0, 0, a2, 0, 0, 0]);
    assert_eq!(v(3, 10), SECCOMP_RET_ALLOW);
    assert_eq!(v(3, 11), SECCOMP_RET_ERRNO | 1);
    assert_eq!(v(4, 99), SECCOMP_RET_ALLOW);
    assert_eq!(v(5, 0), SECCOMP_RET_ERRNO | 1);
}

#[test]
fn native_is_always_covered_and_foreign_arches_are_killed() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64"],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    )
    .unwrap();
    assert_eq!(
        verdict(&c, Arch::X86_64, "read", NO_ARGS),
        SECCOMP_RET_ALLOW
    );
    assert_eq!(
        verdict(&c, Arch::Aarch64, "read", NO_ARGS),
        SECCOMP_RET_ALLOW
    );
    assert_eq!(
        verdict(&c, Arch::X86, "read", NO_ARGS),
        SECCOMP_RET_KILL_THREAD
    );
    assert_eq!(run(&c, 0x1234_5678, 0, NO_ARGS), SECCOMP_RET_KILL_THREAD);
}

#[test]
fn x32_numbers_need_x32_in_the_filter() {
    let without = compile(Arch::X86_64, json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
    let x86_64 = Arch::X86_64.audit_arch();
    assert_eq!(
        run(&without, x86_64, 0x4000_0000, NO_ARGS),
        SECCOMP_RET_KILL_THREAD
    );
    assert_eq!(
        run(&without, x86_64, -1, NO_ARGS),
        SECCOMP_RET_ALLOW,
        "tracer skip"
    );
    let with = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X32"],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG"}]}),
    )
    .unwrap();
    assert_eq!(verdict(&with, Arch::X32, "read", NO_ARGS), SECCOMP_RET_LOG);
    assert_eq!(
        verdict(&with, Arch::X86_64, "read", NO_ARGS),
        SECCOMP_RET_LOG
    );
    assert_eq!(run(&with, x86_64, 0x4000_0123, NO_ARGS), SECCOMP_RET_ALLOW);
}

#[test]
fn x86_socket_calls_are_also_matched_through_socketcall() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
               "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]}),
    )
    .unwrap();
    let x86 = Arch::X86.audit_arch();
    assert_eq!(run(&c, x86, 359, NO_ARGS), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c, x86, 102, [1, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c, x86, 102, [2, 0, 0, 0, 0, 0]), SECCOMP_RET_ERRNO | 1);
}

#[test]
fn unknown_names_and_arches_are_skipped_and_reported() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_MIPS"],
               "syscalls": [{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}),
    )
    .unwrap();
    assert_eq!(c.skipped_syscalls, vec!["no_such_call".to_string()]);
    assert_eq!(c.skipped_architectures.len(), 1);
    assert_eq!(
        verdict(&c, Arch::X86_64, "read", NO_ARGS),
        SECCOMP_RET_ALLOW
    );
}

#[test]
fn conflicting_rules_are_an_error() {
    let r = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1}]},
            {"names": ["read"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1}]}
        ]}),
    );
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
}

#[test]
fn flags_are_mapped() {
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
    )
    .unwrap();
    let want = SECCOMP_FILTER_FLAG_TSYNC
        | SECCOMP_FILTER_FLAG_LOG
        | SECCOMP_FILTER_FLAG_SPEC_ALLOW
        | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    assert_eq!(c.filter.flags, want);
    assert!(!c.filter.needs_listener);
}

#[test]
fn big_profiles_use_long_jumps_and_stay_valid() {
    // Many syscalls with argument trees: dispatch jumps exceed 255.
    let mut syscalls = Vec::new();
    for name in [
        "read", "write", "openat", "close", "fstat", "mmap", "ioctl", "pread64",
    ] {
        for v in 0..40u64 {
            syscalls.push(json!({"names": [name], "action": "SCMP_ACT_ALLOW",
                                  "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": v * 3}]}));
        }
    }
    let c = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
               "syscalls": syscalls}),
    )
    .unwrap();
    let prog = &c.filter.program;
    assert!(prog.len() > 1000, "{} instructions", prog.len());
    assert_eq!(bpf::validate(prog), Ok(()));
    assert!(
        prog.iter().any(|i| i.code == 0x05 && i.k > 255),
        "expected a long ja"
    );
    for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
        assert_eq!(
            verdict(&c, arch, "pread64", [117, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            verdict(&c, arch, "pread64", [118, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ERRNO | 1
        );
        assert_eq!(verdict(&c, arch, "getpid", NO_ARGS), SECCOMP_RET_ERRNO | 1);
    }
}

#[test]
fn too_long_programs_are_refused() {
    let mut syscalls = Vec::new();
    for v in 0..1500u64 {
        syscalls.push(json!({"names": ["read"], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": v}]}));
    }
    let r = compile(
        Arch::X86_64,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}),
    );
    assert!(matches!(r, Err(Error::TooLong(_))), "{r:?}");
}
