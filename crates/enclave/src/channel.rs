//! The framed local channel between a compute node (the host) and its `tcp-enclave` process:
//! the host ↔ enclave boundary of SGX, or a TDX guest's. Request/response over the process's
//! stdin/stdout; every frame is `length u32 ‖ version u8 ‖ id u64 ‖ kind u8 ‖ body`, all
//! big-endian, bounded by [`MAX_FRAME_BYTES`]; byte strings in bodies are `length u32 ‖ bytes`.
//! A malformed request gets an error response; it never ends the enclave.

use std::io::{Read, Write};

pub const PROTOCOL_VERSION: u8 = 1;
/// The largest frame either side accepts (code, state and data included).
pub const MAX_FRAME_BYTES: usize = 32 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The enclave's identity: its measurement (SHA-256 of its binary).
    Hello,
    /// Compile and keep a contract; answers its code hash.
    Load { code: Vec<u8> },
    Init { code_hash: [u8; 32], input: Vec<u8> },
    Execute { code_hash: [u8; 32], state: Vec<u8>, input: Vec<u8>, data: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Hello { measurement: [u8; 32], version: u8 },
    Loaded { code_hash: [u8; 32] },
    Output { state: Vec<u8>, result: Vec<u8>, fuel_used: u64 },
    /// The request failed (a contract error, an unknown contract, a malformed frame).
    Error { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("protocol version {0} is not {PROTOCOL_VERSION}")]
    Version(u8),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Fields<'a>(tcp_types::ByteReader<'a>);

impl<'a> Fields<'a> {
    fn bytes(&mut self) -> Result<Vec<u8>, ChannelError> {
        let len = self.0.u32().ok_or(ChannelError::Malformed("truncated length"))? as usize;
        Ok(self.0.take(len).ok_or(ChannelError::Malformed("truncated bytes"))?.to_vec())
    }
    fn hash(&mut self) -> Result<[u8; 32], ChannelError> {
        self.0.array().ok_or(ChannelError::Malformed("truncated hash"))
    }
    fn u64(&mut self) -> Result<u64, ChannelError> {
        self.0.u64().ok_or(ChannelError::Malformed("truncated integer"))
    }
    fn end(self) -> Result<(), ChannelError> {
        if self.0.rest().is_empty() { Ok(()) } else { Err(ChannelError::Malformed("trailing bytes")) }
    }
}

impl Request {
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut body = Vec::new();
        let kind = match self {
            Request::Hello => 0,
            Request::Load { code } => {
                put_bytes(&mut body, code);
                1
            }
            Request::Init { code_hash, input } => {
                body.extend_from_slice(code_hash);
                put_bytes(&mut body, input);
                2
            }
            Request::Execute { code_hash, state, input, data } => {
                body.extend_from_slice(code_hash);
                put_bytes(&mut body, state);
                put_bytes(&mut body, input);
                put_bytes(&mut body, data);
                3
            }
        };
        (kind, body)
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Request, ChannelError> {
        let mut f = Fields(tcp_types::ByteReader(body));
        let request = match kind {
            0 => Request::Hello,
            1 => Request::Load { code: f.bytes()? },
            2 => Request::Init { code_hash: f.hash()?, input: f.bytes()? },
            3 => Request::Execute { code_hash: f.hash()?, state: f.bytes()?, input: f.bytes()?, data: f.bytes()? },
            _ => return Err(ChannelError::Malformed("unknown request kind")),
        };
        f.end()?;
        Ok(request)
    }
}

impl Response {
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut body = Vec::new();
        let kind = match self {
            Response::Hello { measurement, version } => {
                body.extend_from_slice(measurement);
                body.push(*version);
                0
            }
            Response::Loaded { code_hash } => {
                body.extend_from_slice(code_hash);
                1
            }
            Response::Output { state, result, fuel_used } => {
                put_bytes(&mut body, state);
                put_bytes(&mut body, result);
                body.extend_from_slice(&fuel_used.to_be_bytes());
                2
            }
            Response::Error { message } => {
                put_bytes(&mut body, message.as_bytes());
                3
            }
        };
        (kind, body)
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Response, ChannelError> {
        let mut f = Fields(tcp_types::ByteReader(body));
        let response = match kind {
            0 => {
                let measurement = f.hash()?;
                let version = f.0.u8().ok_or(ChannelError::Malformed("truncated version"))?;
                Response::Hello { measurement, version }
            }
            1 => Response::Loaded { code_hash: f.hash()? },
            2 => Response::Output { state: f.bytes()?, result: f.bytes()?, fuel_used: f.u64()? },
            3 => Response::Error { message: String::from_utf8_lossy(&f.bytes()?).into_owned() },
            _ => return Err(ChannelError::Malformed("unknown response kind")),
        };
        f.end()?;
        Ok(response)
    }
}

/// Write one frame.
pub fn write_frame(out: &mut impl Write, id: u64, kind: u8, body: &[u8]) -> Result<(), ChannelError> {
    let len = 1 + 8 + 1 + body.len();
    if len > MAX_FRAME_BYTES {
        return Err(ChannelError::TooLarge(len));
    }
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.push(PROTOCOL_VERSION);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.push(kind);
    frame.extend_from_slice(body);
    out.write_all(&frame)?;
    out.flush()?;
    Ok(())
}

/// Read one frame: (id, kind, body). An oversized length is refused before anything is
/// allocated.
pub fn read_frame(input: &mut impl Read) -> Result<(u64, u8, Vec<u8>), ChannelError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ChannelError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(ChannelError::TooLarge(len));
    }
    if len < 10 {
        return Err(ChannelError::Malformed("frame shorter than its header"));
    }
    let mut frame = vec![0u8; len];
    input.read_exact(&mut frame)?;
    if frame[0] != PROTOCOL_VERSION {
        return Err(ChannelError::Version(frame[0]));
    }
    let id = u64::from_be_bytes(frame[1..9].try_into().expect("8 bytes"));
    Ok((id, frame[9], frame[10..].to_vec()))
}
