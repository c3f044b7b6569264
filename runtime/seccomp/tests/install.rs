//! Installing real filters, each in a forked child so the test process
//! itself stays unfiltered.

use hull_seccomp::{
    check_flags, compile_for, install, Arch, Error, SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_TSYNC,
};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

/// Runs `child` in a forked process and returns its exit status.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes raw syscalls and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::_exit(child());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

fn spec(value: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(value).unwrap()
}

#[test]
fn installed_filter_returns_errno() {
    let Some(native) = Arch::native() else { return };
    let profile = spec(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}),
    );
    let filter = compile_for(&profile, native).unwrap().filter;
    let code = in_child(|| {
        // SAFETY: plain prctl/syscall calls in the child.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return 100;
            }
            if install(&filter).is_err() {
                return 101;
            }
            let rc = libc::syscall(libc::SYS_getppid);
            if rc != -1 {
                return 102;
            }
            *libc::__errno_location()
        }
    });
    assert_eq!(code, 42);
}

#[test]
fn notify_returns_a_listener() {
    let Some(native) = Arch::native() else { return };
    let profile = spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}));
    let filter = compile_for(&profile, native).unwrap().filter;
    assert!(filter.needs_listener);
    let code = in_child(|| {
        // SAFETY: plain prctl call in the child.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 100;
        }
        match install(&filter) {
            Ok(Some(_fd)) => 0,
            Ok(None) => 1,
            Err(_) => 2,
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn flags_are_probed() {
    assert!(check_flags(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG).is_ok());
    assert!(matches!(check_flags(1 << 20), Err(Error::UnknownFlags(_))));
}
