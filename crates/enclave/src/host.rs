//! The compute node's side of the channel: spawns `tcp-enclave`, sends requests, and restarts
//! the process if it dies or stops answering (reloading the contracts it had), so one crash
//! costs one failed request and nothing else.

use crate::channel::{ChannelError, MAX_FRAME_BYTES, Request, Response, read_frame, write_frame};
use crate::process::{EnclaveArgs, MAX_CONTRACTS};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a request may take by default. Fuel bounds every contract call far below this;
/// a process that does not answer in time is wedged and is restarted.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot start the enclave {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    #[error("the enclave process died during the request; it was restarted")]
    Crashed,
    #[error("the enclave did not answer within {0:?}; it was restarted")]
    Timeout(Duration),
    #[error("the enclave answered out of order (id {got}, expected {expected})")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("the request is {0} bytes, over the channel's limit of {MAX_FRAME_BYTES}; nothing was sent")]
    RequestTooLarge(usize),
    #[error("the enclave's answer does not decode: {0}")]
    MalformedAnswer(ChannelError),
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
}

struct Process {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<DeadlineReader>,
}

/// The enclave's stdout, read under a deadline: every read first waits (poll) at most until
/// the current request's deadline, so an enclave that stops mid-frame cannot block the host.
struct DeadlineReader {
    stdout: ChildStdout,
    deadline: Instant,
}

impl std::io::Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the enclave did not answer in time"));
            }
            let mut fd = libc::pollfd { fd: self.stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut fd, 1, millis) };
            if ready > 0 {
                return self.stdout.read(buf);
            }
            if ready < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

pub struct EnclaveHost {
    binary: PathBuf,
    /// Arguments before the enclave's own (when the enclave is a subcommand of a larger binary).
    prefix: Vec<String>,
    args: EnclaveArgs,
    timeout: Duration,
    /// Every frame body sent and received, when recording (tests check what the host saw).
    transcript: Option<Vec<Vec<u8>>>,
    process: Process,
    next_id: u64,
    /// Code of the loaded contracts, reloaded after a restart.
    loaded: VecDeque<Vec<u8>>,
    restarts: u64,
}

fn spawn(binary: &PathBuf, prefix: &[String], args: &EnclaveArgs) -> Result<Process, HostError> {
    let mut child = Command::new(binary)
        .args(prefix)
        .args(args.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HostError::Spawn(binary.clone(), e))?;
    let input = BufWriter::new(child.stdin.take().expect("piped"));
    let output = BufReader::new(DeadlineReader { stdout: child.stdout.take().expect("piped"), deadline: Instant::now() });
    Ok(Process { child, input, output })
}

impl EnclaveHost {
    /// An enclave without a quoting backend (its state is sealed to the process's lifetime).
    pub fn start(binary: impl Into<PathBuf>) -> Result<EnclaveHost, HostError> {
        EnclaveHost::start_with(binary, EnclaveArgs::default(), DEFAULT_REQUEST_TIMEOUT)
    }

    pub fn start_with(binary: impl Into<PathBuf>, args: EnclaveArgs, timeout: Duration) -> Result<EnclaveHost, HostError> {
        EnclaveHost::start_program(binary, Vec::new(), args, timeout)
    }

    /// Run the enclave as `binary prefix… args…` (e.g. `tcpchain enclave …`).
    pub fn start_program(
        binary: impl Into<PathBuf>,
        prefix: Vec<String>,
        args: EnclaveArgs,
        timeout: Duration,
    ) -> Result<EnclaveHost, HostError> {
        let binary = binary.into();
        let process = spawn(&binary, &prefix, &args)?;
        Ok(EnclaveHost { binary, prefix, args, timeout, transcript: None, process, next_id: 1, loaded: VecDeque::new(), restarts: 0 })
    }

    /// Record every frame body from now on.
    pub fn record_transcript(&mut self) {
        self.transcript = Some(Vec::new());
    }

    pub fn transcript(&self) -> &[Vec<u8>] {
        self.transcript.as_deref().unwrap_or_default()
    }

    /// The enclave process's id (tests kill it).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Send one request and wait for its response. If the process died, it is restarted and
    /// the request fails with [`HostError::Crashed`].
    pub fn request(&mut self, request: &Request) -> Result<Response, HostError> {
        match self.exchange(request) {
            Ok(response) => {
                if let Request::Load { code } = request
                    && matches!(response, Response::Loaded { .. })
                    && !self.loaded.contains(code)
                {
                    // The enclave keeps the newest MAX_CONTRACTS; a restart reloads those only.
                    if self.loaded.len() == MAX_CONTRACTS {
                        self.loaded.pop_front();
                    }
                    self.loaded.push_back(code.clone());
                }
                Ok(response)
            }
            Err(HostError::Channel(ChannelError::Closed | ChannelError::Io(_))) => {
                self.restart()?;
                Err(HostError::Crashed)
            }
            Err(HostError::Timeout(limit)) => {
                self.restart()?;
                Err(HostError::Timeout(limit))
            }
            // An oversized, malformed or out-of-order answer: what is left on the stream can
            // no longer be trusted to start a frame, so the process is replaced.
            Err(e @ (HostError::Channel(_) | HostError::OutOfOrder { .. })) => {
                self.restart()?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self, request: &Request) -> Result<Response, HostError> {
        let id = self.next_id;
        self.next_id += 1;
        let (kind, body) = request.encode();
        match write_frame(&mut self.process.input, id, kind, &body) {
            // Refused before a byte is written: the stream and the enclave are fine.
            Err(ChannelError::TooLarge(len)) => return Err(HostError::RequestTooLarge(len)),
            other => other?,
        }
        if let Some(transcript) = &mut self.transcript {
            transcript.push(body);
        }
        self.process.output.get_mut().deadline = Instant::now() + self.timeout;
        let (got, kind, body) = match read_frame(&mut self.process.output) {
            Err(ChannelError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => return Err(HostError::Timeout(self.timeout)),
            other => other?,
        };
        if let Some(transcript) = &mut self.transcript {
            transcript.push(body.clone());
        }
        if got != id {
            return Err(HostError::OutOfOrder { expected: id, got });
        }
        // A well-framed answer that does not decode leaves the stream in step: no restart.
        Response::decode(kind, &body).map_err(HostError::MalformedAnswer)
    }

    fn restart(&mut self) -> Result<(), HostError> {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        self.process = spawn(&self.binary, &self.prefix, &self.args)?;
        self.restarts += 1;
        for code in self.loaded.clone() {
            self.exchange(&Request::Load { code })?;
        }
        Ok(())
    }
}

impl Drop for EnclaveHost {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}
