//! The framed local channel between a compute node (the host) and its `tcp-enclave` process:
//! the host ↔ enclave boundary of SGX, or a TDX guest's. Request/response over the process's
//! stdin/stdout; every frame is `length u32 ‖ version u8 ‖ id u64 ‖ kind u8 ‖ body`, all
//! big-endian, bounded by [`MAX_FRAME_BYTES`]; byte strings in bodies are `length u32 ‖ bytes`.
//! A malformed request gets an error response; it never ends the enclave.

use std::io::{Read, Write};

pub const PROTOCOL_VERSION: u8 = 5;
/// The largest frame either side accepts (code, state and data included).
pub const MAX_FRAME_BYTES: usize = 32 << 20;

/// A contract input or data blob as the host passes it: public, or HPKE-sealed by its owner
/// to the enclave (`confidential::seal_input`), which the host cannot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Public(Vec<u8>),
    Sealed(Vec<u8>),
}

impl Input {
    /// The bytes as they crossed the channel (what an execution digest commits to).
    pub fn wire_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put(&mut out);
        out
    }

    fn put(&self, out: &mut Vec<u8>) {
        let (tag, bytes) = match self {
            Input::Public(b) => (0, b),
            Input::Sealed(b) => (1, b),
        };
        out.push(tag);
        put_bytes(out, bytes);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The enclave's identity: measurement, HPKE key and quoting backend.
    Hello,
    /// The enclave's registration quote for `chain_id` at the chain's `freshness` value: its
    /// report data binds the enclave's own signing and X25519 keys (nothing the host chooses
    /// but these fields). The first registration binds the process to its chain and pins the
    /// chain's keys (`chain_keys`: the beacon group key and DKMP's master public key), which the
    /// quote binds too, so the chain refuses a registration made with another group's keys.
    Register { chain_id: String, freshness: [u8; 32], chain_keys: tcp_attestation::ChainKeys },
    /// Compile and keep a contract; answers its code hash.
    Load { code: Vec<u8> },
    /// `nonce`: the host's, so that the output's quote is fresh.
    Init { code_hash: [u8; 32], nonce: [u8; 32], input: Input },
    /// `state` is sealed, as an earlier output returned it.
    Execute { code_hash: [u8; 32], nonce: [u8; 32], state: Vec<u8>, input: Input, data: Input },
    /// Make a key request to the group serving `epoch`, signed by the registered key. Refused
    /// before the enclave is registered.
    RequestKey { epoch: u64, ask: KeyAsk },
    /// The members' answers to the request with this digest, and the group's public sharing
    /// (commonware's encoding): the enclave recovers the key and keeps it.
    OpenKey { request: [u8; 32], sharing: Vec<u8>, answers: Vec<crate::keys::RelayedAnswer> },
    /// Deploy a client's signed request (`tcp_state::SignedComputeRequest`'s encoding) of loaded
    /// code: run `init` over the input the request's hash names, under the contract's
    /// generation-0 keys (obtained first: the answer is [`Response::NeedKey`] until they are),
    /// charging the client `fee` plus the gas of the outcome's transaction at `gas_price`.
    /// Answers [`Response::Outcome`].
    Deploy { request: Vec<u8>, init: Input, fee: u128, gas_price: u64 },
    /// Execute a client's signed request on the chain as `view` shows it: the contract's state
    /// (as the record proves it), the input sealed to the contract, the data the request names.
    /// Charged as a deploy. Answers [`Response::Outcome`].
    Call { request: Vec<u8>, view: ChainView, state: Vec<u8>, input: Vec<u8>, data: Vec<DataBlob>, fee: u128, gas_price: u64 },
}

/// The chain as the host shows it to the enclave: a header with its finality signature (φ,
/// `tcp_beacon::Finality`'s encoding) and state proofs (`tcp_state::smt::StateProof`'s binary
/// form) against its root — the contract's record, and the request id's absence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainView {
    pub header: Vec<u8>,
    pub finality: Vec<u8>,
    pub contract: Vec<u8>,
    pub request: Vec<u8>,
}

/// A data blob as the data source keeps it: its owner's signed terms (`tcp_state::DataUse`'s
/// encoding) and the blob sealed to the contract with the terms' digest as associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataBlob {
    pub terms: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// Which contract key a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyAsk {
    /// A deployed contract's key at a generation.
    Execute { cid: [u8; 32], generation: u64 },
    /// The first key of the contract this loaded code makes when `deployer` deploys it with
    /// `nonce`: the enclave computes its id (`tcp_dkmp::contract_id`).
    Deploy { code_hash: [u8; 32], deployer: [u8; 20], nonce: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `enclave_key`: X25519, inputs are sealed to it; `signing_key`: ed25519, signs outputs.
    /// `simulated`: the backend gives no hardware confidentiality (or there is none).
    Hello {
        measurement: [u8; 32],
        version: u8,
        enclave_key: [u8; 32],
        signing_key: [u8; 32],
        backend: String,
        simulated: bool,
    },
    /// A registration quote and the collateral to verify it (dcap-qvl's JSON).
    Attestation {
        quote: Vec<u8>,
        collateral: Vec<u8>,
    },
    Loaded {
        code_hash: [u8; 32],
    },
    /// `state` is sealed; `signature` is the enclave's signature (namespace
    /// `tcp/enclave/output`, its chain) of `confidential::execution_digest` of the call — empty
    /// before the enclave is registered to a chain.
    Output {
        state: Vec<u8>,
        result: Vec<u8>,
        fuel_used: u64,
        signature: Vec<u8>,
    },
    /// A signed key request (`tcp_dkmp::SignedKeyRequest`'s encoding) for the host to carry to
    /// the group's members.
    KeyRequest { request: Vec<u8> },
    /// A contract key obtained and kept: its public key, and the members (by index) whose
    /// answers were bad or did not open.
    ContractKey { cid: [u8; 32], generation: u64, public_key: [u8; 32], bad: Vec<u32> },
    /// A deploy or execution the enclave ran: the outcome (`tcp_state::ComputeOutcome`'s
    /// encoding) and its signature by the registered key, for the compute node to submit.
    Outcome { outcome: Vec<u8>, signature: [u8; 64] },
    /// The call needs a contract key the enclave does not hold: ask the group
    /// ([`Request::RequestKey`]; `deploy`: with [`KeyAsk::Deploy`]) and call again.
    NeedKey { cid: [u8; 32], generation: u64, deploy: bool },
    /// The request failed (a contract error, an unknown contract, a malformed frame).
    Error {
        message: String,
    },
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
    fn input(&mut self) -> Result<Input, ChannelError> {
        match self.0.u8() {
            Some(0) => Ok(Input::Public(self.bytes()?)),
            Some(1) => Ok(Input::Sealed(self.bytes()?)),
            Some(_) => Err(ChannelError::Malformed("unknown input kind")),
            None => Err(ChannelError::Malformed("truncated input")),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ChannelError> {
        self.0.array().ok_or(ChannelError::Malformed("truncated field"))
    }
    fn u8(&mut self) -> Result<u8, ChannelError> {
        self.0.u8().ok_or(ChannelError::Malformed("truncated byte"))
    }
    fn u32(&mut self) -> Result<u32, ChannelError> {
        self.0.u32().ok_or(ChannelError::Malformed("truncated integer"))
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
            Request::Init { code_hash, nonce, input } => {
                body.extend_from_slice(code_hash);
                body.extend_from_slice(nonce);
                input.put(&mut body);
                2
            }
            Request::Execute { code_hash, nonce, state, input, data } => {
                body.extend_from_slice(code_hash);
                body.extend_from_slice(nonce);
                put_bytes(&mut body, state);
                input.put(&mut body);
                data.put(&mut body);
                3
            }
            Request::Register { chain_id, freshness, chain_keys } => {
                put_bytes(&mut body, chain_id.as_bytes());
                body.extend_from_slice(freshness);
                body.extend_from_slice(&chain_keys.group_key);
                body.extend_from_slice(&chain_keys.master_key);
                4
            }
            Request::RequestKey { epoch, ask } => {
                body.extend_from_slice(&epoch.to_be_bytes());
                match ask {
                    KeyAsk::Execute { cid, generation } => {
                        body.push(0);
                        body.extend_from_slice(cid);
                        body.extend_from_slice(&generation.to_be_bytes());
                    }
                    KeyAsk::Deploy { code_hash, deployer, nonce } => {
                        body.push(1);
                        body.extend_from_slice(code_hash);
                        body.extend_from_slice(deployer);
                        body.extend_from_slice(&nonce.to_be_bytes());
                    }
                }
                5
            }
            Request::OpenKey { request, sharing, answers } => {
                body.extend_from_slice(request);
                put_bytes(&mut body, sharing);
                body.extend_from_slice(&(answers.len() as u32).to_be_bytes());
                for a in answers {
                    body.extend_from_slice(&a.index.to_be_bytes());
                    body.extend_from_slice(&a.member);
                    put_bytes(&mut body, &a.sealed);
                }
                6
            }
            Request::Deploy { request, init, fee, gas_price } => {
                put_bytes(&mut body, request);
                init.put(&mut body);
                body.extend_from_slice(&fee.to_be_bytes());
                body.extend_from_slice(&gas_price.to_be_bytes());
                7
            }
            Request::Call { request, view, state, input, data, fee, gas_price } => {
                put_bytes(&mut body, request);
                for part in [&view.header, &view.finality, &view.contract, &view.request, state, input] {
                    put_bytes(&mut body, part);
                }
                body.extend_from_slice(&(data.len() as u32).to_be_bytes());
                for blob in data {
                    put_bytes(&mut body, &blob.terms);
                    put_bytes(&mut body, &blob.sealed);
                }
                body.extend_from_slice(&fee.to_be_bytes());
                body.extend_from_slice(&gas_price.to_be_bytes());
                8
            }
        };
        (kind, body)
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Request, ChannelError> {
        let mut f = Fields(tcp_types::ByteReader(body));
        let request = match kind {
            0 => Request::Hello,
            1 => Request::Load { code: f.bytes()? },
            2 => Request::Init { code_hash: f.hash()?, nonce: f.hash()?, input: f.input()? },
            3 => Request::Execute { code_hash: f.hash()?, nonce: f.hash()?, state: f.bytes()?, input: f.input()?, data: f.input()? },
            4 => Request::Register {
                chain_id: String::from_utf8(f.bytes()?).map_err(|_| ChannelError::Malformed("chain id is not UTF-8"))?,
                freshness: f.hash()?,
                chain_keys: tcp_attestation::ChainKeys { group_key: f.array()?, master_key: f.array()? },
            },
            5 => {
                let epoch = f.u64()?;
                let ask = match f.u8()? {
                    0 => KeyAsk::Execute { cid: f.hash()?, generation: f.u64()? },
                    1 => KeyAsk::Deploy { code_hash: f.hash()?, deployer: f.array()?, nonce: f.u64()? },
                    _ => return Err(ChannelError::Malformed("unknown key ask")),
                };
                Request::RequestKey { epoch, ask }
            }
            6 => {
                let request = f.hash()?;
                let sharing = f.bytes()?;
                let count = f.u32()? as usize;
                if count > crate::keys::MAX_ANSWERS {
                    return Err(ChannelError::Malformed("more answers than any group has members"));
                }
                let mut answers = Vec::with_capacity(count);
                for _ in 0..count {
                    answers.push(crate::keys::RelayedAnswer { index: f.u32()?, member: f.hash()?, sealed: f.bytes()? });
                }
                Request::OpenKey { request, sharing, answers }
            }
            7 => Request::Deploy { request: f.bytes()?, init: f.input()?, fee: u128::from_be_bytes(f.array()?), gas_price: f.u64()? },
            8 => {
                let request = f.bytes()?;
                let view = ChainView { header: f.bytes()?, finality: f.bytes()?, contract: f.bytes()?, request: f.bytes()? };
                let (state, input) = (f.bytes()?, f.bytes()?);
                let count = f.u32()? as usize;
                if count > tcp_state::contracts::MAX_DATA_USES {
                    return Err(ChannelError::Malformed("more data blobs than a request names"));
                }
                let data = (0..count).map(|_| Ok(DataBlob { terms: f.bytes()?, sealed: f.bytes()? })).collect::<Result<_, ChannelError>>()?;
                Request::Call { request, view, state, input, data, fee: u128::from_be_bytes(f.array()?), gas_price: f.u64()? }
            }
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
            Response::Hello { measurement, version, enclave_key, signing_key, backend, simulated } => {
                body.extend_from_slice(measurement);
                body.push(*version);
                body.extend_from_slice(enclave_key);
                body.extend_from_slice(signing_key);
                put_bytes(&mut body, backend.as_bytes());
                body.push(u8::from(*simulated));
                0
            }
            Response::Loaded { code_hash } => {
                body.extend_from_slice(code_hash);
                1
            }
            Response::Output { state, result, fuel_used, signature } => {
                put_bytes(&mut body, state);
                put_bytes(&mut body, result);
                body.extend_from_slice(&fuel_used.to_be_bytes());
                put_bytes(&mut body, signature);
                2
            }
            Response::Error { message } => {
                put_bytes(&mut body, message.as_bytes());
                3
            }
            Response::Attestation { quote, collateral } => {
                put_bytes(&mut body, quote);
                put_bytes(&mut body, collateral);
                4
            }
            Response::KeyRequest { request } => {
                put_bytes(&mut body, request);
                5
            }
            Response::ContractKey { cid, generation, public_key, bad } => {
                body.extend_from_slice(cid);
                body.extend_from_slice(&generation.to_be_bytes());
                body.extend_from_slice(public_key);
                body.extend_from_slice(&(bad.len() as u32).to_be_bytes());
                for b in bad {
                    body.extend_from_slice(&b.to_be_bytes());
                }
                6
            }
            Response::Outcome { outcome, signature } => {
                put_bytes(&mut body, outcome);
                body.extend_from_slice(signature);
                7
            }
            Response::NeedKey { cid, generation, deploy } => {
                body.extend_from_slice(cid);
                body.extend_from_slice(&generation.to_be_bytes());
                body.push(u8::from(*deploy));
                8
            }
        };
        (kind, body)
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Response, ChannelError> {
        let mut f = Fields(tcp_types::ByteReader(body));
        let response = match kind {
            0 => Response::Hello {
                measurement: f.hash()?,
                version: f.u8()?,
                enclave_key: f.hash()?,
                signing_key: f.hash()?,
                backend: String::from_utf8_lossy(&f.bytes()?).into_owned(),
                simulated: f.u8()? != 0,
            },
            1 => Response::Loaded { code_hash: f.hash()? },
            2 => Response::Output { state: f.bytes()?, result: f.bytes()?, fuel_used: f.u64()?, signature: f.bytes()? },
            3 => Response::Error { message: String::from_utf8_lossy(&f.bytes()?).into_owned() },
            4 => Response::Attestation { quote: f.bytes()?, collateral: f.bytes()? },
            5 => Response::KeyRequest { request: f.bytes()? },
            6 => {
                let (cid, generation, public_key) = (f.hash()?, f.u64()?, f.hash()?);
                let count = f.u32()? as usize;
                if count > crate::keys::MAX_ANSWERS {
                    return Err(ChannelError::Malformed("more members than any group has"));
                }
                let bad = (0..count).map(|_| f.u32()).collect::<Result<_, _>>()?;
                Response::ContractKey { cid, generation, public_key, bad }
            }
            7 => Response::Outcome { outcome: f.bytes()?, signature: f.array()? },
            8 => Response::NeedKey { cid: f.hash()?, generation: f.u64()?, deploy: f.u8()? != 0 },
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
        // Its bytes are consumed, so the next frame is read from its own start.
        let mut short = [0u8; 10];
        input.read_exact(&mut short[..len])?;
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
