//! The compute node's side of the channel: spawns `tcp-enclave`, sends requests, and restarts
//! the process if it dies (reloading the contracts it had), so one crash costs one failed
//! request and nothing else.

use crate::channel::{ChannelError, Request, Response, read_frame, write_frame};
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot start the enclave {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    #[error("the enclave process died during the request; it was restarted")]
    Crashed,
    #[error("the enclave answered out of order (id {got}, expected {expected})")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
}

struct Process {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

pub struct EnclaveHost {
    binary: PathBuf,
    process: Process,
    next_id: u64,
    /// Code of the loaded contracts, reloaded after a restart.
    loaded: Vec<Vec<u8>>,
    restarts: u64,
}

fn spawn(binary: &PathBuf) -> Result<Process, HostError> {
    let mut child = Command::new(binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HostError::Spawn(binary.clone(), e))?;
    let input = BufWriter::new(child.stdin.take().expect("piped"));
    let output = BufReader::new(child.stdout.take().expect("piped"));
    Ok(Process { child, input, output })
}

impl EnclaveHost {
    pub fn start(binary: impl Into<PathBuf>) -> Result<EnclaveHost, HostError> {
        let binary = binary.into();
        let process = spawn(&binary)?;
        Ok(EnclaveHost { binary, process, next_id: 1, loaded: Vec::new(), restarts: 0 })
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
                    self.loaded.push(code.clone());
                }
                Ok(response)
            }
            Err(HostError::Channel(ChannelError::Closed | ChannelError::Io(_))) => {
                self.restart()?;
                Err(HostError::Crashed)
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self, request: &Request) -> Result<Response, HostError> {
        let id = self.next_id;
        self.next_id += 1;
        let (kind, body) = request.encode();
        write_frame(&mut self.process.input, id, kind, &body)?;
        let (got, kind, body) = read_frame(&mut self.process.output)?;
        if got != id {
            return Err(HostError::OutOfOrder { expected: id, got });
        }
        Ok(Response::decode(kind, &body)?)
    }

    fn restart(&mut self) -> Result<(), HostError> {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        self.process = spawn(&self.binary)?;
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
