//! A foreground container's stdio: FIFOs the shim opens (as ctr makes
//! them), copied to and from hullctl's own stdio on blocking threads; and
//! the terminal in raw mode for `-t`, with its size passed on.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The FIFOs of one process, in a private directory removed on drop.
pub struct Fifos {
    dir: PathBuf,
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    /// None with a terminal: the pty carries both streams.
    pub stderr: Option<PathBuf>,
}

fn mkfifo(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("bad FIFO path {}", path.display()))?;
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!(
            "creating FIFO {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl Fifos {
    pub fn new(base: &Path, name: &str, stdin: bool, tty: bool) -> Result<Fifos, String> {
        let dir = base.join(format!("fifo-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let fifos = Fifos {
            stdin: stdin.then(|| dir.join("stdin")),
            stdout: dir.join("stdout"),
            stderr: (!tty).then(|| dir.join("stderr")),
            dir,
        };
        for p in [
            fifos.stdin.as_ref(),
            Some(&fifos.stdout),
            fifos.stderr.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            mkfifo(p)?;
        }
        Ok(fifos)
    }

    pub fn path(p: &Option<PathBuf>) -> String {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Start copying; the threads open the FIFOs (blocking until the shim
    /// opens its ends) and end at EOF. Returns the output threads, to join
    /// once the process exited.
    pub fn copy(&self) -> Vec<std::thread::JoinHandle<()>> {
        let mut outputs = vec![pump_out(self.stdout.clone(), false)];
        if let Some(err) = &self.stderr {
            outputs.push(pump_out(err.clone(), true));
        }
        if let Some(input) = &self.stdin {
            let input = input.clone();
            // Not joined: it ends with hullctl's stdin or the process.
            std::thread::spawn(move || {
                if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&input) {
                    let mut stdin = std::io::stdin().lock();
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = stdin.read(&mut buf) {
                        if n == 0 || fifo.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        outputs
    }
}

fn pump_out(path: PathBuf, stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut fifo) = std::fs::File::open(&path) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match fifo.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let ok = if stderr {
                        let mut e = std::io::stderr().lock();
                        e.write_all(&buf[..n]).and_then(|_| e.flush())
                    } else {
                        let mut o = std::io::stdout().lock();
                        o.write_all(&buf[..n]).and_then(|_| o.flush())
                    };
                    if ok.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

impl Drop for Fifos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// hullctl's terminal in raw mode while attached to a container's pty
/// (keys, Ctrl-C included, go to the container); restored on drop.
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    pub fn enter() -> RawTerminal {
        // SAFETY: termios is plain data; tcgetattr fails on a non-terminal.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return RawTerminal { saved: None };
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct we own.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: setting our own stdin's attributes.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) };
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restoring what tcgetattr returned.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
    }
}

/// The size of hullctl's terminal (columns, rows), if it has one.
pub fn terminal_size() -> Option<(u32, u32)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_col == 0 {
        return None;
    }
    Some((ws.ws_col as u32, ws.ws_row as u32))
}
