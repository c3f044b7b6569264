//! Moving bytes between a container's stdio and the client's: copy jobs run
//! by the shim's main loop with poll(2), on non-blocking fds, one shared
//! buffer. A job whose sink is full keeps the unwritten rest and stops
//! reading its source until the sink drains (back-pressure, as a blocked
//! copy in containerd's shim). Request handlers hand jobs to the loop
//! through a [`LoopHandle`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::logfile::{RotatingLog, Stream};
use crate::oom::OomWatch;

const BUF_SIZE: usize = 32 * 1024;

/// The process a job belongs to: (container id, exec id; "" for init).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcKey {
    pub container: String,
    pub exec: String,
}

pub enum Sink {
    /// A FIFO, pipe or pty master; closed when its last job ends (a pty
    /// master is also held by its process, for ResizePty).
    Fd(Arc<OwnedFd>),
    /// A `file://` log: writes never block. Stdout and stderr share it.
    Log(Arc<Mutex<RotatingLog>>, Stream),
}

pub struct CopyJob {
    pub key: ProcKey,
    pub source: Arc<OwnedFd>,
    pub sink: Sink,
    /// The container's output (not the client's input): Delete waits for
    /// these to drain.
    pub output: bool,
    /// Bytes read but not yet written (sink full).
    pending: Vec<u8>,
}

impl CopyJob {
    pub fn output(key: ProcKey, source: Arc<OwnedFd>, sink: Sink) -> Self {
        CopyJob {
            key,
            source,
            sink,
            output: true,
            pending: Vec::new(),
        }
    }

    pub fn input(key: ProcKey, source: Arc<OwnedFd>, sink: Sink) -> Self {
        CopyJob {
            output: false,
            ..CopyJob::output(key, source, sink)
        }
    }
}

/// What request handlers ask of the main loop.
pub enum LoopMsg {
    Copy(CopyJob),
    /// Drop the copy jobs of a process (delete).
    Cancel(ProcKey),
    Oom(OomWatch),
    Unwatch(String),
    /// Re-check whether the shim may exit.
    Shutdown,
}

/// The sending side: a channel plus an eventfd that wakes the loop's poll.
pub struct LoopHandle {
    tx: Mutex<Sender<LoopMsg>>,
    wake: EventFd,
}

impl LoopHandle {
    pub fn new() -> std::io::Result<(LoopHandle, Receiver<LoopMsg>)> {
        let (tx, rx) = mpsc::channel();
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok((
            LoopHandle {
                tx: Mutex::new(tx),
                wake,
            },
            rx,
        ))
    }

    pub fn send(&self, msg: LoopMsg) {
        let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(msg);
        let _ = self.wake.write(1);
    }

    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    pub fn drain_wake(&self) {
        let _ = self.wake.read();
    }
}

/// Reads of one job in a drain before the exit it precedes goes out (a
/// process that shares the pipe may still be writing).
const MAX_DRAIN_READS: usize = 64;

/// What one poll round found for a job.
pub enum Step {
    Continue,
    /// The job is over (source at EOF and flushed, or the sink is gone).
    Done,
}

#[derive(Default)]
pub struct Copier {
    pub jobs: Vec<CopyJob>,
    buf: Vec<u8>,
}

impl CopyJob {
    /// The fd to poll and the events wanted.
    pub fn interest(&self) -> (BorrowedFd<'_>, nix::poll::PollFlags) {
        use nix::poll::PollFlags;
        match (&self.sink, self.pending.is_empty()) {
            (Sink::Fd(fd), false) => (fd.as_fd(), PollFlags::POLLOUT),
            _ => (self.source.as_fd(), PollFlags::POLLIN),
        }
    }
}

impl Copier {
    /// Runs one step of job `i` after poll reported its fd ready.
    pub fn step(&mut self, i: usize) -> Step {
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        let job = &mut self.jobs[i];
        if !job.pending.is_empty() {
            return flush(job);
        }
        match nix::unistd::read(job.source.as_raw_fd(), &mut self.buf) {
            // EIO: the pty's slave side is closed (all its processes exited).
            Ok(0) | Err(Errno::EIO) => finish(job),
            Ok(n) => {
                job.pending.extend_from_slice(&self.buf[..n]);
                flush(job)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Step::Continue,
            Err(_) => finish(job),
        }
    }

    /// Copies what the containers' output pipes hold right now, before the
    /// loop reaps and publishes exits: everything a process wrote is in its
    /// pipe when it is reaped, and clients may stop reading soon after they
    /// hear of the exit (ctr 1.6.20 closes its FIFO before it waits for
    /// it). Jobs stay in place (EOF is left for the next poll round), and a
    /// full sink or an empty pipe ends a job's turn.
    pub fn drain_outputs(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        for job in self.jobs.iter_mut().filter(|j| j.output) {
            for _ in 0..MAX_DRAIN_READS {
                if !job.pending.is_empty() {
                    if let Step::Done = flush(job) {
                        break;
                    }
                    if !job.pending.is_empty() {
                        break;
                    }
                }
                match nix::unistd::read(job.source.as_raw_fd(), &mut self.buf) {
                    Ok(0) | Err(Errno::EIO) => break,
                    Ok(n) => job.pending.extend_from_slice(&self.buf[..n]),
                    Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
            if !job.pending.is_empty() {
                let _ = flush(job);
            }
        }
    }

    /// Frees the shared buffer once no job is left (an idle shim keeps none).
    pub fn trim(&mut self) {
        if self.jobs.is_empty() {
            self.buf = Vec::new();
        }
    }
}

/// The source ended: a log gets the stream's unfinished last line.
fn finish(job: &mut CopyJob) -> Step {
    if let Sink::Log(log, stream) = &job.sink {
        let _ = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(*stream);
    }
    Step::Done
}

fn flush(job: &mut CopyJob) -> Step {
    match &job.sink {
        Sink::Log(log, stream) => {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = log.append(*stream, &job.pending);
            job.pending.clear();
            Step::Continue
        }
        Sink::Fd(fd) => {
            while !job.pending.is_empty() {
                match nix::unistd::write(fd, &job.pending) {
                    Ok(n) => {
                        job.pending.drain(..n);
                    }
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => return Step::Continue,
                    // EPIPE / EIO: nobody will ever read this.
                    Err(_) => return Step::Done,
                }
            }
            job.pending = Vec::new();
            Step::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn nonblocking_pipe() -> (std::fs::File, std::fs::File) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        (std::fs::File::from(r), std::fs::File::from(w))
    }

    /// What a process wrote before it exited reaches the client in the
    /// drain before its exit is handled, without waiting for a poll round;
    /// the job stays for the EOF.
    #[test]
    fn drain_forwards_what_the_pipe_holds_and_keeps_the_job() {
        let (source_r, mut source_w) = nonblocking_pipe();
        let (mut sink_r, sink_w) = nonblocking_pipe();
        let mut copier = Copier::default();
        copier.jobs.push(CopyJob::output(
            ProcKey {
                container: "c".into(),
                exec: String::new(),
            },
            Arc::new(OwnedFd::from(source_r)),
            Sink::Fd(Arc::new(OwnedFd::from(sink_w))),
        ));
        let written = vec![b'x'; BUF_SIZE + 5]; // more than one read
        source_w.write_all(&written).unwrap();
        drop(source_w);
        copier.drain_outputs();
        let mut got = Vec::new();
        let _ = sink_r.read_to_end(&mut got);
        assert_eq!(got.len(), written.len());
        assert_eq!(copier.jobs.len(), 1, "the EOF is left for the poll round");
        assert!(matches!(copier.step(0), Step::Done));
    }
}
