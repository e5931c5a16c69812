//! Confidential contracts in the state and the compute transactions that change them
//! (DESIGN §5.3, §5.6; issue 20, item 1; rotation: issue 19, item 6).
//!
//! A client signs a [`ComputeRequest`] (deploy or execute) with its account key and hands it to
//! a compute node; the node's registered enclave runs it and signs a [`ComputeOutcome`] — the
//! request, the contract's new encrypted state, the sealed result and its hash, the fee — which
//! the compute node's operator submits as [`Action::Compute`]. Validators never execute a
//! contract: they check who signed what ([`AccountState::admit_compute`]) and commit it.
//!
//! Keys in the tree:
//! * `keccak256(0x11 ‖ cid)`: the contract's record ([`ContractEntry`]);
//! * `keccak256(0x12 ‖ code hash)`: the code (kept once however many contracts run it);
//! * `keccak256(0x13 ‖ cid)`: the contract's encrypted state (its hash is in the record);
//! * `keccak256(0x14 ‖ request id)`: a committed request ([`RequestEntry`]): used ids are refused;
//! * `keccak256(0x15 ‖ owner)` and `keccak256(0x15 ‖ owner ‖ page)`: each use of an owner's data
//!   ([`DataUsage`]), a paged list as the release ledger's;
//! * `keccak256(0x16 ‖ operator ‖ request id)`: a compute node punished for computing that
//!   request two ways (the height), so one fault is punished once;
//! * `keccak256(0x17 ‖ measurement)`: an enclave identity flagged for governance by such a
//!   fault ([`FlaggedMeasurement`]).

use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, Error as CodecError, RangeCfg, Read, ReadExt, Write};
use tcp_crypto::{Ed25519PublicKey, Ed25519Signature, SigningDomain, namespace};
use tcp_types::{ByteReader, ChainId};

use crate::accounts::{AccountState, BlockEnv, TxError};
use crate::smt::Hash;
use crate::{Address, RecoverableSignature, keccak256, recover_address};

pub const CONTRACT_NAMESPACE: u8 = 0x11;
pub const CODE_NAMESPACE: u8 = 0x12;
pub const CONTRACT_STATE_NAMESPACE: u8 = 0x13;
pub const REQUEST_NAMESPACE: u8 = 0x14;
pub const DATA_USAGE_NAMESPACE: u8 = 0x15;
pub const COMPUTE_FAULT_NAMESPACE: u8 = 0x16;
pub const FLAGGED_MEASUREMENT_NAMESPACE: u8 = 0x17;

/// The largest contract code a deploy carries (the example contracts are about 20 KiB).
pub const MAX_CODE_BYTES: usize = 96 * 1024;
/// The largest encrypted contract state the chain keeps.
pub const MAX_STATE_BYTES: usize = 32 * 1024;
/// The largest sealed result (or error) a receipt carries.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;
/// Data blobs one execution may use.
pub const MAX_DATA_USES: usize = 16;
/// Contracts one data upload may name.
pub const MAX_DATA_CONTRACTS: usize = 16;
/// How far ahead of the current height a request may say it stays valid: a compute node
/// cannot sit on a request for longer than its client allowed. (It also sets how long a compute
/// node's stake is held after unbonding: `compute::compute_unbonding_hold`.)
pub const MAX_REQUEST_LIFETIME: u64 = 1_000;

/// A compute transaction's gas: two signature checks and a handful of writes, then the bytes
/// it carries (Ethereum's calldata price) and each data use (an owner signature recovered).
pub const COMPUTE_BASE_GAS: u64 = 200_000;
pub const COMPUTE_BYTE_GAS: u64 = 16;
pub const DATA_USE_GAS: u64 = 30_000;
pub const ROTATE_KEY_GAS: u64 = 50_000;
/// Uses of one owner's data listed per page of `query data-usage`.
pub const DATA_USAGE_PAGE: usize = 64;

/// What a client asks a compute node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Deploy this code: the contract's id is `tcp_dkmp::contract_id(code hash, client, nonce)`.
    Deploy { code_hash: [u8; 32] },
    /// Execute a deployed contract over these data blobs (content hashes at a data source).
    Execute { cid: [u8; 32], data: Vec<[u8; 32]> },
}

/// A client's request, signed with its account key ([`SignedComputeRequest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeRequest {
    pub chain_id: ChainId,
    pub call: Call,
    /// SHA-256 of the input (or init input) exactly as the client sent it, sealed to the
    /// contract: the enclave refuses another input under this request.
    pub input_hash: [u8; 32],
    /// The client's X25519 key: the result is sealed to it.
    pub result_key: [u8; 32],
    /// The most the client pays: the compute node's fee and the data owners' prices.
    pub max_fee: u128,
    /// The deploy nonce (part of the contract id), or any value making a request unique.
    pub nonce: u64,
    /// The last height at which the request may commit.
    pub valid_until: u64,
}

/// A [`ComputeRequest`] and its client's recoverable signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedComputeRequest {
    pub request: ComputeRequest,
    pub signature: RecoverableSignature,
}

/// Whether the call completed; a failed call (trap, out of fuel, bad input, a contract error)
/// is a receipt too: its error is sealed in the result and the fee is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    Ok = 0,
    Failed = 1,
}

/// An owner's terms for one data blob: its owner, content hash (SHA-256 of the sealed blob),
/// price per use and the contracts it may be used by, signed with the owner's account key. The
/// data source keeps them with the blob; the owner seals the blob with [`DataTerms::binding`]
/// (everything but the hash, which is computed after sealing) as associated data, so the
/// enclave opens it only under its true terms (a host cannot swap in a lower price or another
/// payee), and validators pay the owner the signature recovers to, which must be the one named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTerms {
    pub chain_id: ChainId,
    pub owner: Address,
    pub hash: [u8; 32],
    pub price: u128,
    pub contracts: Vec<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataUse {
    pub terms: DataTerms,
    pub signature: RecoverableSignature,
}

/// What an enclave signs for a call it ran, and the compute node submits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeOutcome {
    pub request: SignedComputeRequest,
    /// The enclave's registered signing key.
    pub enclave: [u8; 32],
    pub cid: [u8; 32],
    /// A deploy's code (empty for an execution).
    pub code: Vec<u8>,
    /// The key generation the state is encrypted under and `public_key` is of.
    pub generation: u64,
    /// The contract's X25519 public key at `generation`.
    pub public_key: [u8; 32],
    /// The state hash the call ran on (zero for a deploy).
    pub pre_state_hash: [u8; 32],
    pub status: CallStatus,
    /// The new encrypted state (empty for a failed call: the state is unchanged).
    pub state: Vec<u8>,
    /// The result (or error), sealed so only the client opens it once the call is committed.
    pub result: Vec<u8>,
    /// The commitment the client checks its opened result against.
    pub result_hash: [u8; 32],
    /// What the enclave computed, committed without revealing it: a hash keyed by the
    /// contract's state key over the request id, the pre-state hash, the status, the plaintext
    /// result and the plaintext new state ([`computed_commitment`]). A deterministic VM gives
    /// the same value for the same request on the same state; two signed outcomes that differ
    /// in it are evidence ([`ComputeFault`]).
    pub computed: [u8; 32],
    pub fuel_used: u64,
    /// The compute node's fee, paid by the client.
    pub fee: u128,
    /// The data used, in the request's order, with their owners' terms.
    pub data: Vec<DataUse>,
}

/// A contract as the chain holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractEntry {
    pub code_hash: [u8; 32],
    /// The deployer: may rotate the key.
    pub owner: Address,
    /// The newest key generation (raised by a rotation).
    pub generation: u64,
    /// The generation the state is encrypted under and `public_key` is of: behind `generation`
    /// from a rotation until the next execution re-encrypts.
    pub key_generation: u64,
    pub public_key: [u8; 32],
    /// SHA-256 of the encrypted state.
    pub state_hash: [u8; 32],
    pub deployed_at: u64,
    pub executions: u64,
}

/// A committed request: what receipts and result-key releases read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEntry {
    pub client: Address,
    pub cid: [u8; 32],
    pub height: u64,
    pub status: CallStatus,
    pub result_hash: [u8; 32],
    pub fee: u128,
    /// The client's result key: the group's members seal the result key's partials to it.
    pub result_key: [u8; 32],
}

/// One use of an owner's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataUsage {
    pub cid: [u8; 32],
    pub request: [u8; 32],
    pub data: [u8; 32],
    pub height: u64,
    pub amount: u128,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComputeRefused {
    #[error("the request is for chain {0:?}")]
    WrongChain(String),
    #[error("the client's request signature: {0}")]
    BadClientSignature(crate::account::SignatureError),
    #[error("the enclave: {0}")]
    Enclave(tcp_dkmp::ReleaseRefused),
    #[error("the enclave belongs to another compute node than the sender")]
    NotTheEnclavesOperator,
    #[error("the enclave's signature over the outcome does not verify")]
    BadEnclaveSignature,
    #[error("request {0} was committed already")]
    RequestUsed(String),
    #[error("the request was valid until height {0}")]
    RequestExpired(u64),
    #[error("the request is valid until height {valid_until}, more than {MAX_REQUEST_LIFETIME} heights ahead of {height}")]
    RequestTooLong { valid_until: u64, height: u64 },
    #[error("the outcome's contract is not the request's")]
    ContractMismatch,
    #[error("the code's hash is not the request's")]
    CodeMismatch,
    #[error("a deploy's contract id is not the hash of its code, deployer and nonce")]
    DeployIdMismatch,
    #[error("contract {0} exists already")]
    ContractExists(String),
    #[error("no contract {0}")]
    UnknownContract(String),
    #[error("stale: the call ran on state {ran_on}, the contract's state is {current}; the client may retry")]
    StaleState { ran_on: String, current: String },
    #[error("the outcome's key generation {got} is not the contract's {expected}")]
    WrongGeneration { expected: u64, got: u64 },
    #[error("the outcome's shape is not canonical: {0}")]
    NotCanonical(&'static str),
    #[error("the data used is not the data the request names")]
    DataMismatch,
    #[error("data {0}: its terms are not signed by the owner they name, for this chain, or do not name this contract")]
    BadDataTerms(String),
    #[error("fee {fee} and data prices {prices} exceed the client's max fee {max_fee}")]
    OverMaxFee { fee: u128, prices: u128, max_fee: u128 },
    #[error("the client's balance {available} cannot pay {needed}")]
    ClientCannotPay { needed: u128, available: u128 },
    #[error("only the contract's owner (or the chain's governance account) rotates its key")]
    NotOwner,
    #[error("not evidence of a compute fault: {0}")]
    NotAFault(&'static str),
}

fn hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(bytes)
}

fn read_array<const N: usize>(buf: &mut impl Buf) -> Result<[u8; N], CodecError> {
    if buf.remaining() < N {
        return Err(CodecError::EndOfBuffer);
    }
    let mut out = [0u8; N];
    buf.copy_to_slice(&mut out);
    Ok(out)
}

fn read_bytes(buf: &mut impl Buf, max: usize) -> Result<Vec<u8>, CodecError> {
    Ok(Bytes::read_cfg(buf, &RangeCfg::from(..=max))?.to_vec())
}

fn write_hashes(buf: &mut impl BufMut, hashes: &[[u8; 32]]) {
    // Every list is bounded at 16 where it is built (decoders, the client library, the CLI).
    u8::try_from(hashes.len()).expect("a hash list holds at most 16 hashes").write(buf);
    for h in hashes {
        buf.put_slice(h);
    }
}

fn read_hashes(buf: &mut impl Buf, max: usize) -> Result<Vec<[u8; 32]>, CodecError> {
    let n = u8::read(buf)? as usize;
    if n > max {
        return Err(CodecError::Invalid("hashes", "too many"));
    }
    (0..n).map(|_| read_array::<32>(buf)).collect()
}

impl Write for ComputeRequest {
    fn write(&self, buf: &mut impl BufMut) {
        self.chain_id.write(buf);
        match &self.call {
            Call::Deploy { code_hash } => {
                0u8.write(buf);
                buf.put_slice(code_hash);
            }
            Call::Execute { cid, data } => {
                1u8.write(buf);
                buf.put_slice(cid);
                write_hashes(buf, data);
            }
        }
        buf.put_slice(&self.input_hash);
        buf.put_slice(&self.result_key);
        self.max_fee.write(buf);
        self.nonce.write(buf);
        self.valid_until.write(buf);
    }
}

impl Read for ComputeRequest {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let chain_id = ChainId::read(buf)?;
        let call = match u8::read(buf)? {
            0 => Call::Deploy { code_hash: read_array(buf)? },
            1 => Call::Execute { cid: read_array(buf)?, data: read_hashes(buf, MAX_DATA_USES)? },
            other => return Err(CodecError::InvalidEnum(other)),
        };
        Ok(ComputeRequest {
            chain_id,
            call,
            input_hash: read_array(buf)?,
            result_key: read_array(buf)?,
            max_fee: u128::read(buf)?,
            nonce: u64::read(buf)?,
            valid_until: u64::read(buf)?,
        })
    }
}

impl ComputeRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.write(&mut out);
        out
    }

    /// The request id: what the client signs, and what the chain marks used. (Two signatures
    /// of one request share it, so neither commits twice.)
    pub fn id(&self) -> [u8; 32] {
        keccak256(&[namespace::COMPUTE_REQUEST.as_bytes(), &[0], &self.encode()])
    }

    pub fn sign(self, key: &crate::AccountKey) -> SignedComputeRequest {
        let signature = key.sign_digest(&self.id());
        SignedComputeRequest { request: self, signature }
    }

    /// The contract this request is for: a deploy's id is computed from its code, its client
    /// and its nonce.
    pub fn contract(&self, client: &Address) -> [u8; 32] {
        match &self.call {
            Call::Deploy { code_hash } => tcp_dkmp::contract_id(code_hash, &client.0, self.nonce),
            Call::Execute { cid, .. } => *cid,
        }
    }
}

impl SignedComputeRequest {
    /// The client: whoever the signature recovers to.
    pub fn client(&self) -> Result<Address, crate::account::SignatureError> {
        recover_address(&self.request.id(), &self.signature)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(224);
        self.write(&mut out);
        out
    }

    /// Exactly one signed request (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<SignedComputeRequest, CodecError> {
        <SignedComputeRequest as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(bytes))
    }
}

impl Write for SignedComputeRequest {
    fn write(&self, buf: &mut impl BufMut) {
        self.request.write(buf);
        self.signature.write(buf);
    }
}

impl Read for SignedComputeRequest {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(SignedComputeRequest { request: ComputeRequest::read(buf)?, signature: RecoverableSignature::read(buf)? })
    }
}

impl DataTerms {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        self.write(&mut out);
        out
    }

    /// What the owner signs.
    pub fn digest(&self) -> [u8; 32] {
        keccak256(&[namespace::DATA_TERMS.as_bytes(), &[0], &self.encode()])
    }

    /// What the blob is sealed under: the terms without the content hash.
    pub fn binding(&self) -> [u8; 32] {
        let mut unhashed = self.clone();
        unhashed.hash = [0; 32];
        keccak256(&[b"tcp/data/binding", &[0], &unhashed.encode()])
    }

    pub fn sign(self, key: &crate::AccountKey) -> DataUse {
        let signature = key.sign_digest(&self.digest());
        DataUse { terms: self, signature }
    }
}

impl Write for DataTerms {
    fn write(&self, buf: &mut impl BufMut) {
        self.chain_id.write(buf);
        self.owner.write(buf);
        buf.put_slice(&self.hash);
        self.price.write(buf);
        write_hashes(buf, &self.contracts);
    }
}

impl Read for DataTerms {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(DataTerms {
            chain_id: ChainId::read(buf)?,
            owner: Address::read(buf)?,
            hash: read_array(buf)?,
            price: u128::read(buf)?,
            contracts: read_hashes(buf, MAX_DATA_CONTRACTS)?,
        })
    }
}

impl DataUse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.write(&mut out);
        out
    }

    /// Exactly one signed set of terms (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<DataUse, CodecError> {
        <DataUse as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(bytes))
    }

    /// The owner the terms name, if they signed them.
    pub fn owner(&self) -> Option<Address> {
        let signer = recover_address(&self.terms.digest(), &self.signature).ok()?;
        (signer == self.terms.owner).then_some(signer)
    }
}

impl Write for DataUse {
    fn write(&self, buf: &mut impl BufMut) {
        self.terms.write(buf);
        self.signature.write(buf);
    }
}

impl Read for DataUse {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(DataUse { terms: DataTerms::read(buf)?, signature: RecoverableSignature::read(buf)? })
    }
}

impl Write for ComputeOutcome {
    fn write(&self, buf: &mut impl BufMut) {
        self.request.write(buf);
        buf.put_slice(&self.enclave);
        buf.put_slice(&self.cid);
        Bytes::copy_from_slice(&self.code).write(buf);
        self.generation.write(buf);
        buf.put_slice(&self.public_key);
        buf.put_slice(&self.pre_state_hash);
        (self.status as u8).write(buf);
        Bytes::copy_from_slice(&self.state).write(buf);
        Bytes::copy_from_slice(&self.result).write(buf);
        buf.put_slice(&self.result_hash);
        buf.put_slice(&self.computed);
        self.fuel_used.write(buf);
        self.fee.write(buf);
        (self.data.len() as u8).write(buf);
        for d in &self.data {
            d.write(buf);
        }
    }
}

impl Read for ComputeOutcome {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let request = SignedComputeRequest::read(buf)?;
        let enclave = read_array(buf)?;
        let cid = read_array(buf)?;
        let code = read_bytes(buf, MAX_CODE_BYTES)?;
        let generation = u64::read(buf)?;
        let public_key = read_array(buf)?;
        let pre_state_hash = read_array(buf)?;
        let status = match u8::read(buf)? {
            0 => CallStatus::Ok,
            1 => CallStatus::Failed,
            other => return Err(CodecError::InvalidEnum(other)),
        };
        let state = read_bytes(buf, MAX_STATE_BYTES)?;
        let result = read_bytes(buf, MAX_RESULT_BYTES)?;
        let result_hash = read_array(buf)?;
        let computed = read_array(buf)?;
        let fuel_used = u64::read(buf)?;
        let fee = u128::read(buf)?;
        let n = u8::read(buf)? as usize;
        if n > MAX_DATA_USES {
            return Err(CodecError::Invalid("ComputeOutcome", "too many data uses"));
        }
        let data = (0..n).map(|_| DataUse::read(buf)).collect::<Result<_, _>>()?;
        Ok(ComputeOutcome {
            request,
            enclave,
            cid,
            code,
            generation,
            public_key,
            pre_state_hash,
            status,
            state,
            result,
            result_hash,
            computed,
            fuel_used,
            fee,
            data,
        })
    }
}

impl ComputeOutcome {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.code.len() + self.state.len() + self.result.len());
        self.write(&mut out);
        out
    }

    /// Exactly one outcome (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<ComputeOutcome, CodecError> {
        <ComputeOutcome as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(bytes))
    }

    /// What the enclave signs: SHA-256 of the whole encoding.
    pub fn digest(&self) -> [u8; 32] {
        tcp_crypto::sha256(&[&self.encode()]).0
    }

    /// The enclave's signature over the outcome, for its chain.
    pub fn sign(&self, chain: &ChainId, key: &tcp_crypto::Ed25519PrivateKey) -> [u8; 64] {
        let signature = SigningDomain::new(namespace::COMPUTE_OUTCOME, chain).sign(key, &self.digest());
        commonware_codec::Encode::encode(&signature).as_ref().try_into().expect("ed25519 signatures are 64 bytes")
    }

    pub fn verify_signature(&self, chain: &ChainId, signature: &[u8; 64]) -> bool {
        let Ok(key) = <Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&self.enclave[..])) else { return false };
        let Ok(signature) = <Ed25519Signature as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&signature[..])) else { return false };
        SigningDomain::new(namespace::COMPUTE_OUTCOME, chain).verify(&key, &self.digest(), &signature)
    }

    /// The bytes this outcome makes the chain carry and keep (its gas is charged by them).
    pub fn payload_bytes(&self) -> u64 {
        (self.code.len() + self.state.len() + self.result.len()) as u64
    }
}

/// What a compute node's operator signs to fetch a blob from a data source at `time_secs`
/// (a data source serves blobs only to compute nodes in service, within a short clock window).
pub fn data_fetch_digest(chain: &ChainId, hash: &[u8; 32], time_secs: u64) -> [u8; 32] {
    keccak256(&[namespace::DATA_FETCH.as_bytes(), &[0], chain.as_str().as_bytes(), &[0], hash, &time_secs.to_be_bytes()])
}

/// What a call computed ([`ComputeOutcome::computed`]), as its enclave commits to it: SHA-256
/// keyed by a key derived from the contract's state key, so only enclaves holding the contract's
/// keys can make it and nobody can test a guess of a low-entropy result against it; over the
/// request id, the pre-state hash, the status, the plaintext result (or error) and the SHA-256
/// of the plaintext new state (empty for a failed call).
pub fn computed_commitment(state_key: &[u8; 32], request_id: &[u8; 32], pre_state_hash: &[u8; 32], status: CallStatus, result: &[u8], new_state: &[u8]) -> [u8; 32] {
    let ns = namespace::COMPUTE_COMPUTED.as_bytes();
    let key = tcp_crypto::sha256(&[ns, &[0], state_key]);
    let state = tcp_crypto::sha256(&[new_state]);
    tcp_crypto::sha256(&[&key.0, ns, &[1], request_id, pre_state_hash, &[status as u8], &(result.len() as u64).to_be_bytes(), result, &state.0]).0
}

/// Gas of a compute transaction.
pub fn compute_gas(outcome: &ComputeOutcome) -> u64 {
    COMPUTE_BASE_GAS + COMPUTE_BYTE_GAS * outcome.payload_bytes() + DATA_USE_GAS * outcome.data.len() as u64
}

/// SHA-256 of an encrypted state: what records and `pre_state_hash` name.
pub fn state_hash(state: &[u8]) -> [u8; 32] {
    tcp_crypto::sha256(&[state]).0
}

impl ContractEntry {
    /// The leaf value: `code hash (32) ‖ owner (20) ‖ generation ‖ key generation (2 × uint64) ‖
    /// public key (32) ‖ state hash (32) ‖ deployed_at ‖ executions (2 × uint64)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(148);
        out.extend_from_slice(&self.code_hash);
        out.extend_from_slice(&self.owner.0);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.key_generation.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.state_hash);
        out.extend_from_slice(&self.deployed_at.to_be_bytes());
        out.extend_from_slice(&self.executions.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ContractEntry> {
        let mut r = ByteReader(bytes);
        let entry = ContractEntry {
            code_hash: r.array()?,
            owner: Address(r.array()?),
            generation: r.u64()?,
            key_generation: r.u64()?,
            public_key: r.array()?,
            state_hash: r.array()?,
            deployed_at: r.u64()?,
            executions: r.u64()?,
        };
        r.rest().is_empty().then_some(entry)
    }
}

impl RequestEntry {
    /// `client (20) ‖ cid (32) ‖ height (uint64) ‖ status (uint8) ‖ result hash (32) ‖ fee
    /// (uint128) ‖ result key (32)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(141);
        out.extend_from_slice(&self.client.0);
        out.extend_from_slice(&self.cid);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.push(self.status as u8);
        out.extend_from_slice(&self.result_hash);
        out.extend_from_slice(&self.fee.to_be_bytes());
        out.extend_from_slice(&self.result_key);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<RequestEntry> {
        let mut r = ByteReader(bytes);
        let entry = RequestEntry {
            client: Address(r.array()?),
            cid: r.array()?,
            height: r.u64()?,
            status: match r.u8()? {
                0 => CallStatus::Ok,
                1 => CallStatus::Failed,
                _ => return None,
            },
            result_hash: r.array()?,
            fee: u128::from_be_bytes(r.array()?),
            result_key: r.array()?,
        };
        r.rest().is_empty().then_some(entry)
    }
}

const USAGE_ITEM: usize = 32 + 32 + 32 + 8 + 16;

impl DataUsage {
    fn encode(&self) -> Vec<u8> {
        [self.cid.as_slice(), &self.request, &self.data, &self.height.to_be_bytes(), &self.amount.to_be_bytes()].concat()
    }

    fn decode(bytes: &[u8]) -> Option<DataUsage> {
        let mut r = ByteReader(bytes);
        Some(DataUsage {
            cid: r.array()?,
            request: r.array()?,
            data: r.array()?,
            height: r.u64()?,
            amount: u128::from_be_bytes(r.array()?),
        })
    }
}

pub fn contract_key(cid: &[u8; 32]) -> Hash {
    keccak256(&[&[CONTRACT_NAMESPACE], cid])
}

pub fn code_key(code_hash: &[u8; 32]) -> Hash {
    keccak256(&[&[CODE_NAMESPACE], code_hash])
}

pub fn contract_state_key(cid: &[u8; 32]) -> Hash {
    keccak256(&[&[CONTRACT_STATE_NAMESPACE], cid])
}

pub fn request_key(id: &[u8; 32]) -> Hash {
    keccak256(&[&[REQUEST_NAMESPACE], id])
}

pub fn data_usage_key(owner: &Address, page: Option<u64>) -> Hash {
    match page {
        None => keccak256(&[&[DATA_USAGE_NAMESPACE], &owner.0]),
        Some(p) => keccak256(&[&[DATA_USAGE_NAMESPACE], &owner.0, &p.to_be_bytes()]),
    }
}

/// What an admitted compute transaction writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeWrite {
    outcome: ComputeOutcome,
    client: Address,
    /// (owner, price) of each data use, in order.
    owners: Vec<(Address, u128)>,
    /// The contract as it will be (None: a failed deploy creates none).
    contract: Option<ContractEntry>,
    /// The contract as it was (None for a deploy).
    existed: bool,
}

/// What an admitted contract action writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContractWrite {
    Compute(Box<ComputeWrite>),
    Rotate { cid: [u8; 32], entry: ContractEntry },
    Fault(ComputeFault),
}

/// A compute node caught computing one request on one state two ways: two outcomes signed by
/// its enclaves, for the same request id, contract and pre-state, whose [`ComputeOutcome::computed`]
/// commitments differ. A deterministic VM in a sound enclave cannot do that, so the node is
/// slashed and jailed like a validator that equivocates, and the enclaves' identities are
/// flagged for governance (a broken build or platform; `tx rotate-key --exposed-measurement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeFault {
    pub operator: Address,
    pub request_id: [u8; 32],
    /// The identity both enclaves were registered under.
    pub measurement: [u8; 32],
}

/// An enclave identity that computed one request two ways, as the chain first recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedMeasurement {
    pub height: u64,
    pub operator: Address,
    pub request_id: [u8; 32],
}

impl FlaggedMeasurement {
    /// `height (uint64) ‖ operator (20) ‖ request id (32)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(60);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.operator.0);
        out.extend_from_slice(&self.request_id);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<FlaggedMeasurement> {
        let mut r = ByteReader(bytes);
        let flagged = FlaggedMeasurement { height: r.u64()?, operator: Address(r.array()?), request_id: r.array()? };
        r.0.is_empty().then_some(flagged)
    }
}

pub fn compute_fault_key(operator: &Address, request_id: &[u8; 32]) -> Hash {
    keccak256(&[&[COMPUTE_FAULT_NAMESPACE], &operator.0, request_id])
}

pub fn flagged_measurement_key(measurement: &[u8; 32]) -> Hash {
    keccak256(&[&[FLAGGED_MEASUREMENT_NAMESPACE], measurement])
}

impl AccountState {
    pub fn contract(&self, cid: &[u8; 32]) -> Option<ContractEntry> {
        self.get_entry(&contract_key(cid)).and_then(|v| ContractEntry::decode(&v))
    }

    pub fn contract_code(&self, code_hash: &[u8; 32]) -> Option<Vec<u8>> {
        self.get_entry(&code_key(code_hash))
    }

    /// The contract's encrypted state (empty when it has none).
    pub fn contract_state(&self, cid: &[u8; 32]) -> Option<Vec<u8>> {
        self.contract(cid)?;
        Some(self.get_entry(&contract_state_key(cid)).unwrap_or_default())
    }

    pub fn compute_request(&self, id: &[u8; 32]) -> Option<RequestEntry> {
        self.get_entry(&request_key(id)).and_then(|v| RequestEntry::decode(&v))
    }

    /// The uses of `owner`'s data, page by page: (count, uses of `page`).
    pub fn data_usage(&self, owner: &Address, page: u64) -> (u64, Vec<DataUsage>) {
        let count = self
            .get_entry(&data_usage_key(owner, None))
            .and_then(|v| Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?)))
            .unwrap_or(0);
        let items = self
            .get_entry(&data_usage_key(owner, Some(page)))
            .map(|v| v.chunks_exact(USAGE_ITEM).filter_map(DataUsage::decode).collect())
            .unwrap_or_default();
        (count, items)
    }

    /// Decide a compute transaction from `sender` in the block `env` (DESIGN §5.3): the enclave
    /// registered, current and the sender's; its signature over the whole outcome; the
    /// client's signature; the request unused and unexpired; for a deploy, the contract id
    /// recomputed and new; for an execution, the state it ran on the contract's current one and
    /// its generation current; the data the request's, each under its owner's signed terms for
    /// this contract; the fee and prices within the client's max fee and balance. Cheap,
    /// stateless checks first; the signatures before anything is read from the tree beyond the
    /// enclave's record.
    pub(crate) fn admit_compute(
        &self,
        sender: &Address,
        outcome: &ComputeOutcome,
        signature: &[u8; 64],
        env: &BlockEnv,
        sender_reserved: u128,
    ) -> Result<ComputeWrite, TxError> {
        let refused = |r: ComputeRefused| TxError::Compute(r);
        let chain = self.chain_id();
        let request = &outcome.request.request;
        if &request.chain_id != chain {
            return Err(refused(ComputeRefused::WrongChain(request.chain_id.as_str().to_string())));
        }
        if env.height > request.valid_until {
            return Err(refused(ComputeRefused::RequestExpired(request.valid_until)));
        }
        if request.valid_until - env.height > MAX_REQUEST_LIFETIME {
            return Err(refused(ComputeRefused::RequestTooLong { valid_until: request.valid_until, height: env.height }));
        }
        self.check_outcome_shape(outcome)?;
        // The enclave: current on this state, and the sender's.
        let view = crate::enclaves::ReleaseStateView::new(self, env.height).ok_or(TxError::EnclavesDisabled)?;
        let enclave_key = <Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&outcome.enclave[..]))
            .map_err(|_| refused(ComputeRefused::BadEnclaveSignature))?;
        let record = tcp_dkmp::check_enclave(&view, &enclave_key).map_err(|e| refused(ComputeRefused::Enclave(e)))?;
        if record.operator != sender.0 {
            return Err(refused(ComputeRefused::NotTheEnclavesOperator));
        }
        if !outcome.verify_signature(chain, signature) {
            return Err(refused(ComputeRefused::BadEnclaveSignature));
        }
        let client = outcome.request.client().map_err(|e| refused(ComputeRefused::BadClientSignature(e)))?;
        let id = request.id();
        if self.get_entry(&request_key(&id)).is_some() {
            return Err(refused(ComputeRefused::RequestUsed(hex(&id))));
        }
        if request.contract(&client) != outcome.cid {
            return Err(match request.call {
                Call::Deploy { .. } => refused(ComputeRefused::DeployIdMismatch),
                Call::Execute { .. } => refused(ComputeRefused::ContractMismatch),
            });
        }
        let current = self.contract(&outcome.cid);
        let contract = match (&request.call, current) {
            (Call::Deploy { code_hash }, None) => {
                if tcp_crypto::sha256(&[&outcome.code]).0 != *code_hash {
                    return Err(refused(ComputeRefused::CodeMismatch));
                }
                (outcome.status == CallStatus::Ok).then(|| ContractEntry {
                    code_hash: *code_hash,
                    owner: client,
                    generation: 0,
                    key_generation: 0,
                    public_key: outcome.public_key,
                    state_hash: state_hash(&outcome.state),
                    deployed_at: env.height,
                    executions: 0,
                })
            }
            (Call::Deploy { .. }, Some(_)) => return Err(refused(ComputeRefused::ContractExists(hex(&outcome.cid)))),
            (Call::Execute { .. }, None) => return Err(refused(ComputeRefused::UnknownContract(hex(&outcome.cid)))),
            (Call::Execute { .. }, Some(entry)) => {
                if outcome.pre_state_hash != entry.state_hash {
                    return Err(refused(ComputeRefused::StaleState {
                        ran_on: hex(&outcome.pre_state_hash),
                        current: hex(&entry.state_hash),
                    }));
                }
                let mut next = entry.clone();
                next.executions += 1;
                match outcome.status {
                    CallStatus::Ok => {
                        // A completed call re-encrypts under the newest generation.
                        if outcome.generation != entry.generation {
                            return Err(refused(ComputeRefused::WrongGeneration { expected: entry.generation, got: outcome.generation }));
                        }
                        // Under the same generation the key is the same: no outcome republishes it.
                        if entry.key_generation == entry.generation && outcome.public_key != entry.public_key {
                            return Err(refused(ComputeRefused::NotCanonical("the contract's key of this generation is already published")));
                        }
                        next.key_generation = entry.generation;
                        next.public_key = outcome.public_key;
                        next.state_hash = state_hash(&outcome.state);
                    }
                    CallStatus::Failed => {
                        if outcome.generation != entry.key_generation || outcome.public_key != entry.public_key {
                            return Err(refused(ComputeRefused::NotCanonical("a failed call names the contract's current key")));
                        }
                    }
                }
                Some(next)
            }
        };
        let data = match &request.call {
            Call::Execute { data, .. } => data.as_slice(),
            Call::Deploy { .. } => &[],
        };
        if outcome.data.len() != data.len() || outcome.data.iter().zip(data).any(|(u, h)| u.terms.hash != *h) {
            return Err(refused(ComputeRefused::DataMismatch));
        }
        let mut owners = Vec::with_capacity(data.len());
        let mut prices: u128 = 0;
        for used in &outcome.data {
            let bad = || refused(ComputeRefused::BadDataTerms(hex(&used.terms.hash)));
            if &used.terms.chain_id != chain || !used.terms.contracts.contains(&outcome.cid) {
                return Err(bad());
            }
            let owner = used.owner().ok_or_else(bad)?;
            prices = prices.checked_add(used.terms.price).ok_or(TxError::Overflow)?;
            owners.push((owner, used.terms.price));
        }
        let needed = outcome.fee.checked_add(prices).ok_or(TxError::Overflow)?;
        if needed > request.max_fee {
            return Err(refused(ComputeRefused::OverMaxFee { fee: outcome.fee, prices, max_fee: request.max_fee }));
        }
        // When the client is the sender, its gas comes first.
        let mut available = self.account(&client).balance;
        if client == *sender {
            available = available.saturating_sub(sender_reserved);
        }
        if available < needed {
            return Err(refused(ComputeRefused::ClientCannotPay { needed, available }));
        }
        Ok(ComputeWrite { outcome: outcome.clone(), client, owners, contract, existed: matches!(request.call, Call::Execute { .. }) })
    }

    /// One encoding per outcome: a deploy carries its code and no pre-state; an execution
    /// carries no code; a failed call carries no state; a completed deploy starts at
    /// generation 0.
    fn check_outcome_shape(&self, outcome: &ComputeOutcome) -> Result<(), TxError> {
        let not = |why| Err(TxError::Compute(ComputeRefused::NotCanonical(why)));
        match outcome.request.request.call {
            Call::Deploy { .. } => {
                if outcome.code.is_empty() {
                    return not("a deploy carries its code");
                }
                if outcome.pre_state_hash != [0; 32] {
                    return not("a deploy runs on no state");
                }
                if outcome.generation != 0 {
                    return not("a deploy's key is generation 0");
                }
            }
            Call::Execute { .. } => {
                if !outcome.code.is_empty() {
                    return not("an execution carries no code");
                }
            }
        }
        if outcome.status == CallStatus::Failed && !outcome.state.is_empty() {
            return not("a failed call leaves the state as it was");
        }
        // Every state is sealed, an empty one too, so its hash names the key generation it is
        // under (what the commitment of the next call on it is keyed by).
        if outcome.status == CallStatus::Ok && outcome.state.is_empty() {
            return not("a completed call carries its sealed state");
        }
        Ok(())
    }

    /// The flag on an enclave identity, if a compute fault raised one.
    pub fn flagged_measurement(&self, measurement: &[u8; 32]) -> Option<FlaggedMeasurement> {
        self.get_entry(&flagged_measurement_key(measurement)).and_then(|v| FlaggedMeasurement::decode(&v))
    }

    /// Decide evidence of a compute fault (anyone may report it; the reporter earns the
    /// validators' reporter share of the slash): two outcomes for this chain of one request on
    /// one contract and pre-state, each signed by an enclave registered to the same compute
    /// node, computing different things; not older than the evidence age past the request's
    /// expiry; not punished before.
    pub(crate) fn admit_compute_fault(
        &self,
        (first, first_signature): (&ComputeOutcome, &[u8; 64]),
        (second, second_signature): (&ComputeOutcome, &[u8; 64]),
        height: u64,
    ) -> Result<ContractWrite, TxError> {
        let not = |why| Err(TxError::Compute(ComputeRefused::NotAFault(why)));
        // The cheap checks first: the signatures are verified last.
        let chain = self.chain_id();
        let request = &first.request.request;
        if &request.chain_id != chain || second.request.request.chain_id != request.chain_id {
            return not("an outcome of another chain");
        }
        let request_id = request.id();
        if second.request.request.id() != request_id || second.cid != first.cid || second.pre_state_hash != first.pre_state_hash {
            return not("the outcomes are of different requests, contracts or states");
        }
        // Only completed calls: whether a call fails can depend on the machine (its native stack,
        // the memory the OS grants), what a completed call computed cannot.
        if first.status != CallStatus::Ok || second.status != CallStatus::Ok {
            return not("a failed call is not evidence");
        }
        if first.computed == second.computed {
            return not("both outcomes computed the same");
        }
        // Nothing stored (a state from before empty states were sealed) is the same under every
        // key generation, so it does not fix the key the commitments are under.
        if matches!(request.call, Call::Execute { .. }) && first.pre_state_hash == state_hash(&[]) {
            return not("an empty pre-state does not fix the key the commitments are under");
        }
        let params = self.staking_params();
        // A request no chain would commit is no one's fault to punish; and a fault stays
        // reportable for the evidence age after the request expired.
        if request.valid_until > height.saturating_add(MAX_REQUEST_LIFETIME) {
            return not("a request valid longer than any the chain commits");
        }
        if height > request.valid_until.saturating_add(params.evidence_max_age) {
            return Err(TxError::StaleEvidence { height: request.valid_until, max_age: params.evidence_max_age });
        }
        let identity = |key: &[u8; 32]| self.enclave_identity(key).or_else(|| self.enclave(key).map(|e| (Address(e.record.operator), e.record.measurement)));
        let (Some((operator, measurement)), Some((other_operator, other_measurement))) = (identity(&first.enclave), identity(&second.enclave))
        else {
            return not("an enclave the chain never registered");
        };
        if operator != other_operator {
            return not("enclaves of two compute nodes: neither can be blamed");
        }
        // Two builds (another VM version) may meter a call differently.
        if measurement != other_measurement {
            return not("enclaves of two identities: the builds may differ");
        }
        if self.get_entry(&compute_fault_key(&operator, &request_id)).is_some() {
            return Err(TxError::DuplicateEvidence);
        }
        // One punishment per jail period: a flaw that lets a client make many conflicting pairs
        // must not drain the bond pair by pair (kept apart from the node's entry, which is gone
        // once it unbonded everything).
        if self.compute_jailed_until(&operator) > height {
            return not("the compute node is jailed for a fault already");
        }
        if !first.verify_signature(chain, first_signature) || !second.verify_signature(chain, second_signature) {
            return Err(TxError::Compute(ComputeRefused::BadEnclaveSignature));
        }
        Ok(ContractWrite::Fault(ComputeFault { operator, request_id, measurement }))
    }

    /// Decide a key rotation: the contract exists and the sender owns it or is governance.
    pub(crate) fn admit_rotation(&self, sender: &Address, cid: &[u8; 32]) -> Result<ContractWrite, TxError> {
        let mut entry = self.contract(cid).ok_or_else(|| TxError::Compute(ComputeRefused::UnknownContract(hex(cid))))?;
        let governance = self.enclave_rules().and_then(|r| r.governance);
        if entry.owner != *sender && governance != Some(*sender) {
            return Err(TxError::Compute(ComputeRefused::NotOwner));
        }
        entry.generation = entry.generation.checked_add(1).ok_or(TxError::Overflow)?;
        Ok(ContractWrite::Rotate { cid: *cid, entry })
    }

    pub(crate) fn apply_contract_write(&mut self, write: ContractWrite, reporter: Address, height: u64) -> Result<(), TxError> {
        match write {
            ContractWrite::Fault(fault) => {
                let params = self.staking_params();
                let slashed = self.slash_compute_node(&fault.operator, height)?;
                // A node reporting its own fault earns nothing back.
                let reward = if reporter == fault.operator { 0 } else { slashed.checked_mul(u128::from(params.reporter_bps)).ok_or(TxError::Overflow)? / 10_000 };
                let mut account = self.account(&reporter);
                account.balance += reward; // part of the supply already: moved from the bond
                self.set_account_unchecked(reporter, account);
                // The rest is burnt.
                self.adjust_supply(0, slashed - reward)?;
                self.put_entry(compute_fault_key(&fault.operator, &fault.request_id), Some(height.to_be_bytes().to_vec()));
                if self.flagged_measurement(&fault.measurement).is_none() {
                    let flag = FlaggedMeasurement { height, operator: fault.operator, request_id: fault.request_id };
                    self.put_entry(flagged_measurement_key(&fault.measurement), Some(flag.encode()));
                }
                Ok(())
            }
            ContractWrite::Rotate { cid, entry } => {
                self.put_entry(contract_key(&cid), Some(entry.encode()));
                Ok(())
            }
            ContractWrite::Compute(write) => {
                let ComputeWrite { outcome, client, owners, contract, existed } = *write;
                let id = outcome.request.request.id();
                // Payments: the client pays the fee to the compute node (the sender) and each
                // price to its owner. Checked: the client holds fee + prices.
                let operator = Address(self.enclave(&outcome.enclave).expect("admitted: the enclave is registered").record.operator);
                self.move_balance(&client, &operator, outcome.fee)?;
                for (i, (owner, price)) in owners.iter().enumerate() {
                    self.move_balance(&client, owner, *price)?;
                    let usage = DataUsage { cid: outcome.cid, request: id, data: outcome.data[i].terms.hash, height, amount: *price };
                    self.append_data_usage(owner, &usage);
                }
                if let Some(entry) = &contract {
                    if !existed {
                        let code_key = code_key(&entry.code_hash);
                        if self.get_entry(&code_key).is_none() {
                            self.put_entry(code_key, Some(outcome.code.clone()));
                        }
                    }
                    if outcome.status == CallStatus::Ok {
                        self.put_entry(contract_state_key(&outcome.cid), (!outcome.state.is_empty()).then(|| outcome.state.clone()));
                    }
                    self.put_entry(contract_key(&outcome.cid), Some(entry.encode()));
                }
                let record = RequestEntry {
                    client,
                    cid: outcome.cid,
                    height,
                    status: outcome.status,
                    result_hash: outcome.result_hash,
                    fee: outcome.fee,
                    result_key: outcome.request.request.result_key,
                };
                self.put_entry(request_key(&id), Some(record.encode()));
                Ok(())
            }
        }
    }

    /// Move `amount` from one account to another (the caller checked `from` holds it).
    fn move_balance(&mut self, from: &Address, to: &Address, amount: u128) -> Result<(), TxError> {
        if amount == 0 || from == to {
            return Ok(());
        }
        let mut payer = self.account(from);
        payer.balance = payer.balance.checked_sub(amount).ok_or(TxError::InsufficientBalance { needed: amount, available: payer.balance })?;
        self.set_account_unchecked(*from, payer);
        let mut payee = self.account(to);
        // Cannot overflow: every balance is part of the total supply, a u128.
        payee.balance += amount;
        self.set_account_unchecked(*to, payee);
        Ok(())
    }

    fn append_data_usage(&mut self, owner: &Address, usage: &DataUsage) {
        let count_key = data_usage_key(owner, None);
        let count = self.get_entry(&count_key).and_then(|v| Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))).unwrap_or(0);
        let page = data_usage_key(owner, Some(count / DATA_USAGE_PAGE as u64));
        let mut items = self.get_entry(&page).unwrap_or_default();
        items.extend_from_slice(&usage.encode());
        self.put_entry(page, Some(items));
        self.put_entry(count_key, Some((count + 1).to_be_bytes().to_vec()));
    }
}
