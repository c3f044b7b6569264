//! `process.terminal`: the PTY master is handed over a `--console-socket`.

use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use hull_integration::{is_hull, json, skip, Bundle, Output, Runtime};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

const TIMEOUT: Duration = Duration::from_secs(30);
const END: &str = "END-OF-OUTPUT";

/// Accepts one connection on `listener`; `None` once `gave_up()` holds (the
/// sender is gone). Panics after [`TIMEOUT`].
fn accept_until(listener: &UnixListener, gave_up: impl Fn() -> bool) -> Option<UnixStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                if gave_up() {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no connection on the console socket: {e}"),
        }
    }
}

/// Receives exactly one file descriptor sent with SCM_RIGHTS.
fn receive_fd(stream: &UnixStream) -> OwnedFd {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let fds: Vec<RawFd> = msg
        .cmsgs()
        .expect("control messages")
        .flat_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds,
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        fds.len(),
        1,
        "expected one fd over the console socket, got {fds:?}"
    );
    // SAFETY: the fd was just received and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fds[0]) }
}

/// Reads from the PTY master until `END` shows up, EOF/EIO, or timeout.
fn read_until_end(master: OwnedFd) -> String {
    let mut file = File::from(master);
    let mut output = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !String::from_utf8_lossy(&output).contains(END) && Instant::now() < deadline {
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).expect("poll") == 0 {
            continue;
        }
        let mut chunk = [0u8; 4096];
        match file.read(&mut chunk) {
            Ok(0) | Err(_) => break, // EIO once every slave fd is closed
            Ok(n) => output.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&output).replace('\r', "")
}

/// Runs the runtime `command` (given the console socket's path) in a thread
/// while receiving the PTY master it sends; returns its output and the master.
fn with_console_socket(
    socket: &Path,
    command: impl FnOnce(&str) -> Output + Send,
) -> (Output, OwnedFd) {
    let listener = UnixListener::bind(socket).expect("bind console socket");
    std::thread::scope(|s| {
        let running = s.spawn(|| command(socket.to_str().unwrap()));
        let stream = accept_until(&listener, || running.is_finished());
        let out = running.join().expect("runtime command thread");
        match stream {
            Some(stream) => (out, receive_fd(&stream)),
            None => panic!("the runtime sent no PTY master:\n{out}"),
        }
    })
}

/// Creates the container with `--console-socket`, receives the master, starts
/// the container and returns what it wrote to its terminal.
fn run_with_console(rt: &Runtime, bundle: &Bundle, socket: &Path) -> String {
    let id = rt.new_id();
    let (created, master) = with_console_socket(socket, |sock| {
        rt.create(bundle, &id, &["--console-socket", sock])
    });
    created.ok();
    rt.start(&id).ok();
    let output = read_until_end(master);
    rt.wait_for_status(&id, "stopped");
    output
}

/// The first line is a terminal device and `all-tty` follows (see [`TTY_CHECK`]).
#[track_caller]
fn assert_on_terminal(output: &str) {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    assert!(
        lines
            .first()
            .is_some_and(|tty| tty.starts_with("/dev/pts/") || *tty == "/dev/console"),
        "not a terminal: {output:?}"
    );
    assert!(
        lines.contains(&"all-tty"),
        "stdio is not the terminal: {output:?}"
    );
}

/// Prints the terminal's name and `all-tty` if stdin, stdout and stderr are terminals.
const TTY_CHECK: &str = "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty";

#[test]
fn console_socket_receives_pty_master() {
    let Some(rt) = Runtime::new("console-pty") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .set("/process/terminal", true)
        .set(
            "/process/consoleSize",
            json!({ "height": 30, "width": 100 }),
        )
        .sh(&format!("{TTY_CHECK}; stty size; echo {END}"));
    let socket = rt.dir("console").join("console.sock");
    let output = run_with_console(&rt, &bundle, &socket);

    assert_on_terminal(&output);
    assert!(
        output.lines().any(|l| l.trim() == "30 100"),
        "consoleSize not applied: {output:?}"
    );
}

#[test]
fn terminal_without_console_socket_fails() {
    let Some(rt) = Runtime::new("console-missing") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .set("/process/terminal", true)
        .args(&["sleep", "600"]);
    rt.create_rejected(&bundle, &rt.new_id());
}

/// Foreground `run` of a terminal container without --console-socket relays
/// the container's PTY to the runtime's own terminal, as runc does.
#[test]
fn foreground_run_relays_terminal() {
    let Some(rt) = Runtime::new("console-relay") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .set("/process/terminal", true)
        .sh(&format!("{TTY_CHECK}; echo {END}"));
    // The runtime's stdio is the slave of a PTY this test reads from.
    let pty = openpty(None, None).expect("openpty");
    let slave = File::from(pty.slave);
    // A private TMPDIR, to see what the runtime leaves there.
    let tmp = rt.dir("tmp");
    let id = rt.new_id();
    let (out, output) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_until_end(pty.master));
        let out = rt.run_with(&bundle, &id, &[], |cmd| {
            cmd.env("TMPDIR", &tmp)
                .stdin(slave.try_clone().unwrap())
                .stdout(slave.try_clone().unwrap())
                .stderr(slave);
        });
        (out, reader.join().expect("reader thread"))
    });
    assert_eq!(out.code(), 0, "{out}\n--- terminal ---\n{output}");
    assert_on_terminal(&output);
    assert!(output.contains(END), "{output:?}");
    assert!(
        rt.root_entries().is_empty(),
        "left in root: {:?}",
        rt.root_entries()
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn exec_tty_with_console_socket() {
    let Some(rt) = Runtime::new("console-exec") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 takes --console-socket only with exec -d");
    }
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let socket = rt.dir("console").join("console.sock");
    let script = format!("{TTY_CHECK}; echo {END}");
    let (out, master) = with_console_socket(&socket, |sock| {
        rt.exec(
            &id,
            &["-t", "--console-socket", sock],
            &["sh", "-c", &script],
        )
    });
    out.ok();
    assert_on_terminal(&read_until_end(master));
}

#[test]
fn exec_tty_exit_code() {
    let Some(rt) = Runtime::new("console-exec-code") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 takes --console-socket only with exec -d");
    }
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let socket = rt.dir("console").join("console.sock");
    let (out, _master) = with_console_socket(&socket, |sock| {
        rt.exec(
            &id,
            &["-t", "--console-socket", sock],
            &["sh", "-c", "exit 7"],
        )
    });
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(rt.status(&id), "running");
}
