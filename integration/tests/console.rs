//! `process.terminal`: the PTY master is handed over a `--console-socket`.

use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use hull_integration::{json, Bundle, Runtime};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

const TIMEOUT: Duration = Duration::from_secs(30);
const END: &str = "END-OF-OUTPUT";

/// Accepts one connection on `listener`, giving up after [`TIMEOUT`].
fn accept_with_timeout(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
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

/// Creates the container with `--console-socket`, receives the master, starts
/// the container and returns what it wrote to its terminal.
fn run_with_console(rt: &Runtime, bundle: &Bundle, socket: &Path) -> String {
    let listener = UnixListener::bind(socket).expect("bind console socket");
    let id = rt.new_id();
    let master = std::thread::scope(|s| {
        let create =
            s.spawn(|| rt.create(bundle, &id, &["--console-socket", socket.to_str().unwrap()]));
        let master = receive_fd(&accept_with_timeout(&listener));
        create.join().expect("create thread").ok();
        master
    });
    rt.start(&id).ok();
    let output = read_until_end(master);
    rt.wait_for_status(&id, "stopped");
    output
}

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
        .sh(&format!(
            "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; stty size; echo {END}"
        ));
    let socket = rt.dir("console").join("console.sock");
    let output = run_with_console(&rt, &bundle, &socket);

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
    assert!(
        lines.contains(&"30 100"),
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
