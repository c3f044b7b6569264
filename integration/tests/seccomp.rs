//! `linux.seccomp` end to end, with small inline profiles: each action as the
//! process sees it, argument conditions, errnoRet/defaultErrnoRet, the
//! filter loaded last (with and without noNewPrivileges: nothing of the
//! runtime's own runs under it), SCMP_ACT_NOTIFY with this test acting as
//! the seccomp agent at `listenerPath`, and profiles that must be refused.

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hull_integration::{is_hull, json, Bundle, Runtime, Value};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

/// A profile allowing everything except `names`, which get `action`
/// (plus `extra` fields on the rule, e.g. errnoRet or args).
fn deny(names: &[&str], action: &str, extra: Value) -> Value {
    let mut rule = json!({ "names": names, "action": action });
    if let Value::Object(fields) = extra {
        rule.as_object_mut().unwrap().extend(fields);
    }
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule] })
}

/// busybox's mkdir applet calls mkdir(2); other libcs use mkdirat(2).
const MKDIR: &[&str] = &["mkdir", "mkdirat"];

/// A writable-rootfs bundle under `profile`, with noNewPrivileges as given.
fn bundle_with(rt: &Runtime, profile: Value, no_new_privileges: bool) -> Bundle {
    let mut bundle = rt.bundle();
    bundle
        .writable_root()
        .set("/linux/seccomp", profile)
        .set("/process/noNewPrivileges", no_new_privileges);
    bundle
}

/// SIGSYS's default action dumps core; keep the test's scratch space free of cores.
fn no_core_dumps(bundle: &mut Bundle) {
    bundle.push(
        "/process/rlimits",
        json!({ "type": "RLIMIT_CORE", "hard": 0, "soft": 0 }),
    );
}

const SIGSYS_STATUS: i32 = 128 + libc::SIGSYS;

/// A profile that denies prctl(PR_SET_PDEATHSIG): hull's own steps under
/// the filter (the end of create, a startContainer hook's keeper) must not
/// need it.
#[test]
fn parent_death_signal_denied_by_the_profile() {
    let Some(rt) = Runtime::new("sc-pdeathsig") else {
        return;
    };
    let pr_set_pdeathsig = json!({ "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }] });
    for nnp in [false, true] {
        let profile = deny(&["prctl"], "SCMP_ACT_ERRNO", pr_set_pdeathsig.clone());
        let mut bundle = bundle_with(&rt, profile, nnp);
        bundle
            .push("/hooks/startContainer", json!({ "path": "/bin/true" }))
            .sh("echo started");
        assert_eq!(rt.run_ok(&bundle).out(), "started", "noNewPrivileges {nnp}");
    }
}

/// Profiles written before close_range(2) existed (Docker's until 20.10,
/// runtime-tools' own) do not list it: the runtime's fd sweep before the
/// program runs must not run under the container's filter, in either place
/// the filter is loaded.
#[test]
fn profile_without_close_range() {
    let Some(rt) = Runtime::new("sc-no-close-range") else {
        return;
    };
    for nnp in [false, true] {
        let mut bundle = bundle_with(
            &rt,
            deny(&["close_range"], "SCMP_ACT_ERRNO", json!({})),
            nnp,
        );
        bundle.sh("echo started");
        let id = rt.new_id();
        rt.create(&bundle, &id, &[]).ok();
        rt.start(&id).ok();
        rt.wait_for_status(&id, "stopped");
        rt.delete(&id).ok();
    }
}

/// What busybox's `echo` and `sleep` need, and nothing of the runtime's.
const ECHO_ONLY: &[&str] = &[
    "execve",
    "exit_group",
    "exit",
    "write",
    "brk",
    "arch_prctl",
    "mmap",
    "munmap",
    "mprotect",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "getuid",
    "readlink",
    "prctl",
    "uname",
    "clock_nanosleep",
];

/// Nothing hull itself needs runs under the container's filter: a profile
/// allowing only what the program needs runs it, with and without
/// noNewPrivileges (without it hull keeps CAP_SYS_ADMIN until the filter is
/// in; execve then gives the program its configured capabilities). runc
/// 1.1 runs its own steps under the filter (capset, setuid, the exec fifo).
#[test]
fn profile_allowing_only_the_program() {
    if !is_hull() {
        return hull_integration::skip("runc runs its own setup under the container's filter");
    }
    let Some(rt) = Runtime::new("sc-program-only") else {
        return;
    };
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{ "names": ECHO_ONLY, "action": "SCMP_ACT_ALLOW" }],
    });
    for nnp in [false, true] {
        let mut bundle = bundle_with(&rt, profile.clone(), nnp);
        bundle.args(&["echo", "only-the-program"]);
        assert_eq!(
            rt.run_ok(&bundle).out(),
            "only-the-program",
            "noNewPrivileges {nnp}"
        );
        // And for a non-root user, whose capabilities the user switch changes.
        bundle.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
        assert_eq!(
            rt.run_ok(&bundle).out(),
            "only-the-program",
            "uid 1000, noNewPrivileges {nnp}"
        );
        // `exec` loads the same filter last too.
        let id = rt.start_sleeper(&mut bundle);
        let out = rt.exec(&id, &[], &["echo", "exec-only"]);
        assert_eq!(out.ok().out(), "exec-only", "noNewPrivileges {nnp}");
        rt.delete_force(&id).ok();
    }
}

/// Without noNewPrivileges hull keeps CAP_SYS_ADMIN until the filter is
/// loaded; the program still gets exactly the capabilities runc gives it.
#[test]
fn capabilities_under_a_filter_without_no_new_privileges() {
    let Some(rt) = Runtime::new("sc-caps-kept") else {
        return;
    };
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for (user, expected) in [
        (json!({ "uid": 0, "gid": 0 }), "0000000000000421"),
        (json!({ "uid": 1000, "gid": 1000 }), "0000000000000000"),
    ] {
        let mut bundle = bundle_with(&rt, deny(MKDIR, "SCMP_ACT_ERRNO", json!({})), false);
        bundle
            .set("/process/user", user.clone())
            .set(
                "/process/capabilities",
                json!({ "bounding": caps, "effective": caps, "permitted": caps }),
            )
            .sh("grep -E '^Cap(Eff|Prm|Bnd|Amb):' /proc/self/status | tr -s '\\t ' ' '");
        let out = rt.run_ok(&bundle);
        assert_eq!(
            out.lines(),
            [
                format!("CapPrm: {expected}"),
                format!("CapEff: {expected}"),
                "CapBnd: 0000000000000421".to_string(),
                "CapAmb: 0000000000000000".to_string(),
            ],
            "{user}\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// ERRNO

fn errno_ret_reaches_the_process(name: &str, nnp: bool) {
    let Some(rt) = Runtime::new(name) else { return };
    let mut bundle = bundle_with(
        &rt,
        deny(MKDIR, "SCMP_ACT_ERRNO", json!({ "errnoRet": libc::ENOSYS })),
        nnp,
    );
    bundle.sh(
        "mkdir /tmp/denied; echo rc=$?; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '",
    );
    let out = rt.run_ok(&bundle);
    let nnp_line = format!("NoNewPrivs: {}", u8::from(nnp));
    assert_eq!(
        out.lines(),
        ["rc=1", nnp_line.as_str(), "Seccomp: 2"],
        "{out}"
    );
    assert!(
        out.stderr.contains("Function not implemented"),
        "mkdir must report ENOSYS (errnoRet 38):\n{out}"
    );
    assert!(!bundle.rootfs().join("tmp/denied").exists());
}

#[test]
fn errno_ret_with_no_new_privileges() {
    errno_ret_reaches_the_process("sc-errno-nnp", true);
}

#[test]
fn errno_ret_without_no_new_privileges() {
    errno_ret_reaches_the_process("sc-errno-privs", false);
}

/// ERRNO without errnoRet is EPERM.
#[test]
fn errno_without_errno_ret_is_eperm() {
    let Some(rt) = Runtime::new("sc-errno-eperm") else {
        return;
    };
    let mut bundle = bundle_with(&rt, deny(MKDIR, "SCMP_ACT_ERRNO", json!({})), true);
    bundle.sh("mkdir /tmp/denied; echo rc=$?");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["rc=1"], "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// defaultErrnoRet is what every syscall without a rule gets. The allow list
/// is the shipped default profile's, minus mkdir.
#[test]
fn default_errno_ret() {
    let Some(rt) = Runtime::new("sc-default-errno") else {
        return;
    };
    let path = hull_integration::workspace_dir().join("seccomp-profiles/default.json");
    let mut profile: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| !MKDIR.contains(&n.as_str().unwrap()));
    }
    profile["syscalls"]
        .as_array_mut()
        .unwrap()
        .retain(|r| !r["names"].as_array().unwrap().is_empty());
    for (errno_ret, message) in [
        (Some(libc::EXDEV), "Invalid cross-device link"),
        (None, "Operation not permitted"),
    ] {
        match errno_ret {
            Some(e) => profile["defaultErrnoRet"] = json!(e),
            None => {
                profile.as_object_mut().unwrap().remove("defaultErrnoRet");
            }
        }
        let mut bundle = bundle_with(&rt, profile.clone(), true);
        bundle.sh("mkdir /tmp/denied; echo rc=$?; touch /tmp/allowed && echo touched");
        let out = rt.run_ok(&bundle);
        assert_eq!(out.lines(), ["rc=1", "touched"], "{out}");
        assert!(out.stderr.contains(message), "expected {message:?}:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// KILL_PROCESS, KILL / KILL_THREAD, TRAP

/// KILL_PROCESS on the container's own process: `run` reports death by SIGSYS.
#[test]
fn kill_process_kills_with_sigsys() {
    let Some(rt) = Runtime::new("sc-kill-process") else {
        return;
    };
    let mut bundle = bundle_with(&rt, deny(MKDIR, "SCMP_ACT_KILL_PROCESS", json!({})), true);
    no_core_dumps(&mut bundle);
    bundle.args(&["mkdir", "/tmp/denied"]);
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    assert_eq!(out.code(), SIGSYS_STATUS, "{out}");
    assert!(!bundle.rootfs().join("tmp/denied").exists());

    // A child killed the same way: its shell sees the signal status.
    bundle.sh("mkdir /tmp/denied; echo status=$?");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), [format!("status={SIGSYS_STATUS}")], "{out}");
}

/// SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD kill a single-threaded process with
/// SIGSYS; a SIGSYS handler does not help (the kill cannot be caught). The
/// syscall is made by the shell itself (`cd` is chdir(2) in the shell).
#[test]
fn kill_thread_kills_single_threaded_process() {
    let Some(rt) = Runtime::new("sc-kill-thread") else {
        return;
    };
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"] {
        let mut bundle = bundle_with(&rt, deny(&["chdir"], action, json!({})), true);
        no_core_dumps(&mut bundle);
        bundle.sh("trap 'echo trapped' SYS; echo before; cd /tmp; echo survived");
        let out = rt.run(&bundle, &rt.new_id(), &[]);
        assert_eq!(out.code(), SIGSYS_STATUS, "{action}\n{out}");
        assert_eq!(out.lines(), ["before"], "{action}\n{out}");
    }
}

/// TRAP sends a SIGSYS the process can handle: the shell's trap runs and the
/// shell goes on (the syscall itself is not performed). Without a handler
/// SIGSYS's default action kills.
#[test]
fn trap_delivers_sigsys() {
    let Some(rt) = Runtime::new("sc-trap") else {
        return;
    };
    let mut bundle = bundle_with(&rt, deny(&["chdir"], "SCMP_ACT_TRAP", json!({})), true);
    no_core_dumps(&mut bundle);
    bundle.sh("trap 'echo trapped' SYS; cd /tmp; echo \"after: $(pwd)\"");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["trapped", "after: /"], "{out}");

    bundle.sh("cd /tmp; echo survived");
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    assert_eq!(out.code(), SIGSYS_STATUS, "{out}");
    assert!(!out.stdout.contains("survived"), "{out}");
}

/// SCMP_ACT_TRACE with no tracer attached: the kernel fails the syscall
/// with ENOSYS (errnoRet is the data a tracer would see, not an errno).
#[test]
fn trace_without_tracer_fails_with_enosys() {
    let Some(rt) = Runtime::new("sc-trace") else {
        return;
    };
    let mut bundle = bundle_with(
        &rt,
        deny(MKDIR, "SCMP_ACT_TRACE", json!({ "errnoRet": libc::EXDEV })),
        true,
    );
    bundle.sh("mkdir /tmp/traced; echo rc=$?");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["rc=1"], "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
    assert!(!bundle.rootfs().join("tmp/traced").exists());
}

// ---------------------------------------------------------------------------
// LOG

/// The kernel's log (dmesg), or None when it cannot be read.
fn kernel_log() -> Option<String> {
    let out = Command::new("dmesg").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether an audit daemon takes the kernel's audit records (then they do not
/// reach dmesg).
fn auditd_running() -> bool {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "auditd"))
}

/// SCMP_ACT_LOG lets the syscall through, and the kernel records it (audit
/// type 1326 with the LOG action code) for the container's process.
#[test]
fn log_allows_and_records_the_syscall() {
    let Some(rt) = Runtime::new("sc-log") else {
        return;
    };
    let mut bundle = bundle_with(&rt, deny(&["chdir"], "SCMP_ACT_LOG", json!({})), true);
    // The shell itself (the container's init) makes the logged chdir, once a
    // second, so a record dropped by printk rate limiting is made up for.
    bundle.sh("while :; do cd /tmp && pwd > /tmp/cwd; cd /; sleep 1; done");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id);
    let cwd = bundle.rootfs().join("tmp/cwd");
    let ran = hull_integration::host::wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&cwd).is_ok_and(|c| c.trim() == "/tmp")
    });
    assert!(ran, "chdir under SCMP_ACT_LOG did not succeed");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
        "the container's process has no seccomp filter:\n{status}"
    );

    let logged = fs::read_to_string("/proc/sys/kernel/seccomp/actions_logged").unwrap_or_default();
    if auditd_running() || kernel_log().is_none() || !logged.split_whitespace().any(|a| a == "log")
    {
        eprintln!("SKIP: kernel audit records are not readable with dmesg here");
        return;
    }
    let needle = [
        format!("pid={pid} "),
        format!("syscall={} ", libc::SYS_chdir),
        "code=0x7ffc0000".to_owned(),
    ];
    let mut found = None;
    hull_integration::host::wait_until(Duration::from_secs(15), || {
        found = kernel_log().and_then(|log| {
            log.lines()
                .find(|l| l.contains("type=1326") && needle.iter().all(|n| l.contains(n.as_str())))
                .map(str::to_owned)
        });
        found.is_some()
    });
    assert!(
        found.is_some(),
        "no audit record of the logged chdir by pid {pid} in dmesg"
    );
}

// ---------------------------------------------------------------------------
// Argument conditions

/// kill(2) is denied only when its signal argument (args[1]) is SIGUSR1.
#[test]
fn argument_condition_selects_the_call() {
    let Some(rt) = Runtime::new("sc-args") else {
        return;
    };
    let profile = deny(
        &["kill"],
        "SCMP_ACT_ERRNO",
        json!({ "args": [{ "index": 1, "value": libc::SIGUSR1, "op": "SCMP_CMP_EQ" }] }),
    );
    let mut bundle = bundle_with(&rt, profile, true);
    // Without the filter, SIGUSR1 (no handler) would kill the shell.
    bundle.sh(
        "trap 'echo got-usr2' USR2; kill -USR1 $$; echo usr1=$?; kill -USR2 $$; echo usr2=$?; \
         kill -0 $$; echo zero=$?",
    );
    let out = rt.run_ok(&bundle);
    assert_eq!(
        out.lines(),
        ["usr1=1", "got-usr2", "usr2=0", "zero=0"],
        "{out}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// SCMP_CMP_MASKED_EQ: chmod is denied when the new mode is world-writable
/// (mode & 0o002 == 0o002), whatever the other bits.
#[test]
fn masked_argument_condition() {
    let Some(rt) = Runtime::new("sc-masked") else {
        return;
    };
    let world_writable = |index: u32| json!({ "index": index, "value": 0o002, "valueTwo": 0o002, "op": "SCMP_CMP_MASKED_EQ" });
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            { "names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [world_writable(1)] },
            { "names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "args": [world_writable(2)] }
        ]
    });
    let mut bundle = bundle_with(&rt, profile, true);
    bundle.sh(
        "touch /tmp/f; chmod 0644 /tmp/f; echo a=$?; chmod 0646 /tmp/f; echo b=$?; \
         chmod 0777 /tmp/f; echo c=$?; chmod 0600 /tmp/f; echo d=$?; stat -c %a /tmp/f",
    );
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["a=0", "b=1", "c=1", "d=0", "600"], "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

// ---------------------------------------------------------------------------
// Profiles that must be refused, or accepted with parts skipped

fn rejected(name: &str, profile: Value, hull_needle: &str) {
    let Some(rt) = Runtime::new(name) else { return };
    let mut bundle = rt.bundle();
    bundle
        .args(&["sleep", "600"])
        .set("/linux/seccomp", profile);
    let out = rt.create_rejected(&bundle, &rt.new_id());
    if is_hull() {
        out.fails_mentioning(hull_needle);
    }
}

#[test]
fn unknown_default_action_is_rejected() {
    rejected(
        "sc-bad-default",
        json!({ "defaultAction": "SCMP_ACT_FOO" }),
        "linux.seccomp.defaultAction",
    );
}

#[test]
fn unknown_rule_action_is_rejected() {
    rejected(
        "sc-bad-action",
        deny(MKDIR, "SCMP_ACT_BAR", json!({})),
        "linux.seccomp.syscalls[0].action",
    );
}

#[test]
fn unknown_operator_is_rejected() {
    rejected(
        "sc-bad-op",
        deny(
            &["kill"],
            "SCMP_ACT_ERRNO",
            json!({ "args": [{ "index": 1, "value": 10, "op": "SCMP_CMP_FOO" }] }),
        ),
        "linux.seccomp.syscalls[0].args[0].op",
    );
}

/// The runtime spec requires an error for errnoRet on an action without
/// errno data; runc 1.1 accepts it, hull refuses.
#[test]
fn errno_ret_on_allow_is_rejected() {
    if !is_hull() {
        return hull_integration::skip("runc 1.1 ignores errnoRet on SCMP_ACT_ALLOW");
    }
    rejected(
        "sc-bad-errnoret",
        json!({ "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5 }] }),
        "errnoRet",
    );
}

#[test]
fn notify_as_default_action_is_rejected() {
    let Some(rt) = Runtime::new("sc-bad-notify-default") else {
        return;
    };
    let dir = rt.dir("agent");
    let sock = dir.join("agent.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]).set(
        "/linux/seccomp",
        json!({ "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": sock }),
    );
    let out = rt.create_rejected(&bundle, &rt.new_id());
    if is_hull() {
        out.fails_mentioning("SCMP_ACT_NOTIFY");
    }
}

#[test]
fn notify_without_listener_path_is_rejected() {
    rejected(
        "sc-bad-no-listener",
        deny(MKDIR, "SCMP_ACT_NOTIFY", json!({})),
        "listenerPath",
    );
}

#[test]
fn notify_with_unreachable_listener_is_rejected() {
    let mut profile = deny(MKDIR, "SCMP_ACT_NOTIFY", json!({}));
    profile["listenerPath"] = json!("/nonexistent/agent.sock");
    rejected("sc-bad-listener", profile, "/nonexistent/agent.sock");
}

/// Names no architecture knows are skipped; the rest of the rule applies.
#[test]
fn unknown_syscall_names_are_skipped() {
    let Some(rt) = Runtime::new("sc-unknown-name") else {
        return;
    };
    let names = ["hull_no_such_syscall", "mkdir", "mkdirat"];
    let mut bundle = bundle_with(
        &rt,
        deny(
            &names,
            "SCMP_ACT_ERRNO",
            json!({ "errnoRet": libc::ENOSYS }),
        ),
        true,
    );
    bundle.sh("mkdir /tmp/denied; echo rc=$?");
    let out = rt.run_ok(&bundle);
    assert_eq!(out.lines(), ["rc=1"], "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
}

// ---------------------------------------------------------------------------
// NOTIFY: this test is the seccomp agent.

/// struct seccomp_data
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// struct seccomp_notif
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// struct seccomp_notif_resp
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// SECCOMP_IOCTL_NOTIF_RECV = _IOWR('!', 0, struct seccomp_notif)
const NOTIF_RECV: u64 = nix::request_code_readwrite!(b'!', 0, std::mem::size_of::<Notif>()) as u64;
/// SECCOMP_IOCTL_NOTIF_SEND = _IOWR('!', 1, struct seccomp_notif_resp)
const NOTIF_SEND: u64 =
    nix::request_code_readwrite!(b'!', 1, std::mem::size_of::<NotifResp>()) as u64;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

#[cfg(target_arch = "x86_64")]
const _: () = assert!(NOTIF_RECV == 0xc050_2100 && NOTIF_SEND == 0xc018_2101);

/// How long the agent waits for a connection or a notification.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the runtime sent to listenerPath: the listener fd and the JSON payload.
struct Handoff {
    fd: OwnedFd,
    payload: Value,
}

/// Polls `fd` for `events` in short slices until it is ready, `stop` is set
/// or the agent timeout passes.
fn wait_ready(fd: i32, events: i16, stop: &AtomicBool) -> Result<i16, String> {
    let deadline = Instant::now() + AGENT_TIMEOUT;
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            return Ok(pfd.revents);
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        if stop.load(Ordering::SeqCst) {
            return Err("stopped: the container finished first".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing arrived within {AGENT_TIMEOUT:?}"));
        }
    }
}

/// Accepts one connection on the agent socket and receives the listener fd
/// (SCM_RIGHTS) with its JSON payload.
fn accept_handoff(listener: &UnixListener, stop: &AtomicBool) -> Result<Handoff, String> {
    wait_ready(listener.as_raw_fd(), libc::POLLIN, stop)?;
    let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    read_handoff(&conn)
}

/// Reads the listener fd and its JSON payload from an agent connection.
fn read_handoff(conn: &std::os::unix::net::UnixStream) -> Result<Handoff, String> {
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0;
    let mut fd = None;
    // The payload may in principle arrive in pieces on a stream socket.
    let payload = loop {
        let mut iov = [IoSliceMut::new(&mut buf[len..])];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                assert_eq!(fds.len(), 1, "exactly one fd is sent, got {fds:?}");
                assert!(fd.is_none(), "a second SCM_RIGHTS message");
                // SAFETY: the fd was just received and is owned by nobody else.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Err(format!(
                "EOF before a complete payload: {:?}",
                String::from_utf8_lossy(&buf[..len])
            ));
        }
        len += n;
        if let Ok(v) = serde_json::from_slice::<Value>(&buf[..len]) {
            break v;
        }
    };
    let fd = fd.ok_or("no fd in SCM_RIGHTS")?;
    Ok(Handoff { fd, payload })
}

/// Receives one notification from a seccomp listener fd.
fn recv_notif(fd: &OwnedFd, stop: &AtomicBool) -> Result<Notif, String> {
    wait_ready(fd.as_raw_fd(), libc::POLLIN, stop)?;
    let mut notif = Notif::default(); // the kernel wants it zeroed
                                      // SAFETY: NOTIF_RECV writes one struct seccomp_notif into `notif`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV as _, &mut notif) } < 0 {
        return Err(format!(
            "SECCOMP_IOCTL_NOTIF_RECV: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(notif)
}

/// Answers a notification: `Err(errno)` fails the syscall with that errno,
/// `Ok(())` lets the kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
fn respond(fd: &OwnedFd, notif: &Notif, answer: Result<(), i32>) -> Result<(), String> {
    let resp = match answer {
        Err(errno) => NotifResp {
            id: notif.id,
            val: 0,
            error: -errno,
            flags: 0,
        },
        Ok(()) => NotifResp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        },
    };
    // SAFETY: NOTIF_SEND reads one struct seccomp_notif_resp.
    if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND as _, &resp) } < 0 {
        return Err(format!(
            "SECCOMP_IOCTL_NOTIF_SEND: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn notify_profile(sock: &Path, metadata: &str) -> Value {
    let mut profile = deny(MKDIR, "SCMP_ACT_NOTIFY", json!({}));
    profile["listenerPath"] = json!(sock);
    profile["listenerMetadata"] = json!(metadata);
    profile
}

/// Checks the payload's fixed parts; returns its pid.
#[track_caller]
fn check_payload(payload: &Value, id: &str, bundle: &Bundle, metadata: &str) -> i32 {
    assert_eq!(payload["fds"], json!(["seccompFd"]), "{payload:#}");
    assert!(payload["ociVersion"].is_string(), "{payload:#}");
    assert_eq!(payload["metadata"], metadata, "{payload:#}");
    let state = &payload["state"];
    assert_eq!(state["id"], id, "{payload:#}");
    assert_eq!(
        state["bundle"],
        bundle.path().to_string_lossy().as_ref(),
        "{payload:#}"
    );
    let status = state["status"].as_str().unwrap_or_default();
    assert!(
        ["creating", "created", "running"].contains(&status),
        "state.status {status:?}:\n{payload:#}"
    );
    let pid = payload["pid"].as_i64().expect("payload.pid is a number") as i32;
    assert!(pid > 0, "{payload:#}");
    pid
}

fn is_mkdir(notif: &Notif) -> bool {
    let nr = i64::from(notif.data.nr);
    nr == libc::SYS_mkdir || nr == libc::SYS_mkdirat
}

/// The agent answers the first mkdir with EXDEV and lets the second through;
/// the payload's pid is the container init's host pid (`hull state`).
fn notify_agent_answers(name: &str, nnp: bool) {
    let Some(rt) = Runtime::new(name) else { return };
    let sock = rt.dir("agent").join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let metadata = format!("agent-metadata-{name}");
    let mut bundle = bundle_with(&rt, notify_profile(&sock, &metadata), nnp);
    bundle.sh("mkdir /tmp/refused; echo rc=$?; mkdir /tmp/continued && echo made");
    let id = rt.new_id();
    let stop = AtomicBool::new(false);
    let (out, agent) = std::thread::scope(|s| {
        let agent = s.spawn(|| -> Result<(Value, i32, Vec<Notif>), String> {
            let Handoff { fd, payload } = accept_handoff(&listener, &stop)?;
            let first = recv_notif(&fd, &stop)?;
            // The process is now blocked in mkdir, so the container is
            // running and `state` reports its init.
            let init = rt.pid(&id);
            respond(&fd, &first, Err(libc::EXDEV))?;
            let second = recv_notif(&fd, &stop)?;
            respond(&fd, &second, Ok(()))?;
            Ok((payload, init, vec![first, second]))
        });
        let out = rt.run(&bundle, &id, &[]);
        stop.store(true, Ordering::SeqCst);
        (out, agent.join().unwrap())
    });
    let (payload, init, notifs) = agent.unwrap_or_else(|e| panic!("agent: {e}\n{out}"));
    out.ok();
    assert_eq!(out.lines(), ["rc=1", "made"], "{out}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out}");
    assert!(!bundle.rootfs().join("tmp/refused").exists());
    assert!(bundle.rootfs().join("tmp/continued").is_dir());

    let pid = check_payload(&payload, &id, &bundle, &metadata);
    assert_eq!(
        pid, init,
        "payload.pid is not the init's pid per `state`:\n{payload:#}"
    );
    assert_eq!(payload["state"]["pid"], init, "{payload:#}");
    let native = hull_seccomp::Arch::native().unwrap().audit_arch();
    for n in &notifs {
        assert!(
            is_mkdir(n),
            "notified for syscall {} instead of mkdir",
            n.data.nr
        );
        assert_eq!(n.data.arch, native);
        // mkdir runs in a child of the shell, not in the init itself.
        assert!(n.pid > 0 && n.pid as i32 != init, "{n:?}");
    }
}

#[test]
fn notify_agent_answers_with_no_new_privileges() {
    notify_agent_answers("sc-notify-nnp", true);
}

#[test]
fn notify_agent_answers_without_no_new_privileges() {
    notify_agent_answers("sc-notify-privs", false);
}

/// `exec` into a container with a NOTIFY profile loads the filter into the
/// new process too, and hands the agent a second listener for it.
#[test]
fn notify_exec_sends_a_second_listener() {
    let Some(rt) = Runtime::new("sc-notify-exec") else {
        return;
    };
    let sock = rt.dir("agent").join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let metadata = "exec-metadata";
    let mut bundle = bundle_with(&rt, notify_profile(&sock, metadata), true);
    let id = rt.start_sleeper(&mut bundle);
    let stop = AtomicBool::new(false);
    // The init's listener was sent by now (the connection waits in the backlog).
    let init = accept_handoff(&listener, &stop).unwrap_or_else(|e| panic!("init listener: {e}"));
    let init_pid = check_payload(&init.payload, &id, &bundle, metadata);
    assert_eq!(init_pid, rt.pid(&id), "{:#}", init.payload);

    let (out, agent) = std::thread::scope(|s| {
        let agent = s.spawn(|| -> Result<(Value, Notif), String> {
            let Handoff { fd, payload } = accept_handoff(&listener, &stop)?;
            let notif = recv_notif(&fd, &stop)?;
            respond(&fd, &notif, Err(libc::EXDEV))?;
            Ok((payload, notif))
        });
        let out = rt.exec(&id, &[], &["sh", "-c", "mkdir /tmp/refused; echo rc=$?"]);
        stop.store(true, Ordering::SeqCst);
        (out, agent.join().unwrap())
    });
    let (payload, notif) = agent.unwrap_or_else(|e| panic!("exec agent: {e}\n{out}"));
    assert_eq!(out.ok().lines(), ["rc=1"], "{out}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out}");
    assert!(is_mkdir(&notif));
    let exec_pid = check_payload(&payload, &id, &bundle, metadata);
    assert_ne!(
        exec_pid, init_pid,
        "the exec'd process's pid is expected:\n{payload:#}"
    );

    // The init's own listener still works: nothing was notified on it.
    let mut pfd = libc::pollfd {
        fd: init.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        0,
        "init listener has events"
    );
}

/// Whether `fd` is readable right now (no waiting).
fn readable_now(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; timeout 0.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

/// runc hands the listener to the agent during `create`, and agents wait
/// for it before they call `start`: an agent doing so must not wait forever.
/// The payload says "creating" with the init's pid, as runc's does.
#[test]
fn notify_listener_arrives_during_create() {
    let Some(rt) = Runtime::new("sc-notify-create") else {
        return;
    };
    for nnp in [true, false] {
        let sock = rt.dir("agent").join("agent.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let metadata = "create-metadata";
        let mut bundle = bundle_with(&rt, notify_profile(&sock, metadata), nnp);
        bundle.sh("mkdir /tmp/refused; echo rc=$? > /tmp/result; mkdir /tmp/continued");
        let id = rt.new_id();
        rt.create(&bundle, &id, &[]).ok();
        // Nothing is waited for here: create has returned, so what it sent
        // is there (or was never sent).
        assert!(
            readable_now(listener.as_raw_fd()),
            "noNewPrivileges {nnp}: create returned without connecting to the agent"
        );
        let (conn, _) = listener.accept().unwrap();
        assert!(
            readable_now(conn.as_raw_fd()),
            "noNewPrivileges {nnp}: create returned without sending the listener (an agent waiting for it before `start` would wait forever)"
        );
        let Handoff { fd, payload } =
            read_handoff(&conn).unwrap_or_else(|e| panic!("handoff: {e}"));
        let stop = AtomicBool::new(false);
        let pid = check_payload(&payload, &id, &bundle, metadata);
        assert_eq!(pid, rt.pid(&id), "{payload:#}");
        assert_eq!(payload["state"]["status"], "creating", "{payload:#}");
        assert_eq!(rt.status(&id), "created");
        std::thread::scope(|s| {
            let agent = s.spawn(|| -> Result<(), String> {
                let first = recv_notif(&fd, &stop)?;
                respond(&fd, &first, Err(libc::EXDEV))?;
                let second = recv_notif(&fd, &stop)?;
                respond(&fd, &second, Ok(()))
            });
            rt.start(&id).ok();
            rt.wait_for_status(&id, "stopped");
            stop.store(true, Ordering::SeqCst);
            agent
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("agent: {e}"));
        });
        assert_eq!(bundle.read_file("/tmp/result").trim(), "rc=1");
        assert!(bundle.rootfs().join("tmp/continued").is_dir());
        rt.delete(&id).ok();
    }
}

/// An agent that takes the listener but never answers: the program waits
/// in its notified syscall, and `delete --force` still removes everything
/// (no init or program is left waiting).
#[test]
fn notify_agent_that_never_answers() {
    let Some(rt) = Runtime::new("sc-notify-silent") else {
        return;
    };
    let sock = rt.dir("agent").join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut bundle = bundle_with(&rt, notify_profile(&sock, "silent"), true);
    bundle.sh("mkdir /tmp/never; echo done > /tmp/result");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let stop = AtomicBool::new(false);
    let Handoff { fd, .. } =
        accept_handoff(&listener, &stop).unwrap_or_else(|e| panic!("handoff: {e}"));
    rt.start(&id).ok();
    // The program is blocked in mkdir, waiting for the agent.
    let notif = recv_notif(&fd, &stop).unwrap_or_else(|e| panic!("notification: {e}"));
    assert!(is_mkdir(&notif));
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    let gone = hull_integration::host::wait_until(Duration::from_secs(10), || {
        rt.processes_in_bundles().is_empty()
    });
    assert!(gone, "left running: {:?}", rt.processes_in_bundles());
    assert!(!bundle.rootfs().join("tmp/result").exists());
    drop(fd);
}
