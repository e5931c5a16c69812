//! TCP's client library (issue 20, item 6), what `tcpchain contract …` and `tcpchain data put`
//! are built on. Nothing a node or compute node says is believed unless it verifies:
//!
//! * [`fetch_verified_header`] checks a header with its finality signature φ against the chain's
//!   group key (the light client), and [`verified_value`] a state proof against that header's
//!   root — so a contract's public key, its state hash or a request's result hash is the chain's;
//! * [`deploy`] and [`execute`] sign a request naming a fresh result key, hand it to a compute
//!   node, wait for the compute transaction's receipt, open the sealed result and check it
//!   against the result hash the chain committed ([`Opened::verified`]);
//! * [`put_data`] seals an owner's data to a contract's verified public key under the owner's
//!   signed terms and uploads it to a data source.

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tcp_beacon::signature::SIGNATURE_BYTES;
use tcp_beacon::{Finality, FinalitySignature};
use rand_core::SeedableRng as _;
use tcp_enclave::compute::{OpenedResult, ResultOf, Sealed, open_result, result_key_pair, seal_to_contract};
use tcp_light::{LightClient, VerifiedHeader};
use tcp_node::client::RpcClient;
use tcp_state::{AccountKey, Call, CallStatus, ComputeRequest, ContractEntry, DataTerms, RequestEntry};
use tcp_types::{ChainId, Round, hex};

/// How many heights ahead a request stays valid (the compute node must commit it by then).
pub const REQUEST_LIFETIME: u64 = 100;
/// How long [`execute`] and [`deploy`] wait for the compute node's answer.
pub const WAIT: Duration = Duration::from_secs(100);

fn unhex(v: &Value, name: &str) -> Result<Vec<u8>> {
    hex::decode(v.as_str().with_context(|| format!("{name}: missing"))?).map_err(|e| anyhow!("{name}: {e}"))
}

fn hash32(v: &Value, name: &str) -> Result<[u8; 32]> {
    unhex(v, name)?.try_into().map_err(|_| anyhow!("{name}: not 32 bytes"))
}

/// Fetch header `height` and its φ from the RPC and verify both with `light`: nothing the RPC
/// says is believed unless it verifies (the height included). φ of a node's newest height comes
/// with the next block: this waits a few block intervals for it.
pub fn fetch_verified_header(client: &mut RpcClient, light: &LightClient, height: u64) -> Result<VerifiedHeader> {
    let mut answer = client.call("header", json!([height]))?;
    if answer.is_null() {
        bail!("the RPC has no header at height {height}");
    }
    for _ in 0..40 {
        if !answer["finality"].is_null() {
            break;
        }
        let next_committed = !client.call("header", json!([height + 1]))?.is_null();
        if !next_committed {
            std::thread::sleep(Duration::from_millis(250));
        }
        answer = client.call("header", json!([height]))?;
        if next_committed {
            break;
        }
    }
    let encoding = unhex(&answer["encoding"], "header encoding")?;
    let finality = &answer["finality"];
    if finality.is_null() {
        bail!("the RPC has no finality signature for height {height} (heights before the beacon started have none)");
    }
    let round = finality["round"].as_u64().and_then(|r| u32::try_from(r).ok()).context("finality: no round")?;
    let signature = unhex(&finality["signature"], "finality signature")?;
    if signature.len() != SIGNATURE_BYTES {
        bail!("finality signature: expected {SIGNATURE_BYTES} bytes, got {}", signature.len());
    }
    let signature = FinalitySignature::from_bytes(&signature).map_err(|_| anyhow!("the finality signature is not a point of G1"))?;
    let verified = light.verify_header(&encoding, &Finality { round: Round(round), signature })?;
    if verified.height().0 != height {
        bail!("asked for height {height}, the RPC sent a (signed) header of height {}", verified.height().0);
    }
    Ok(verified)
}

/// The value a proof (as the RPC renders it, `tcp_node::proof`) shows for `key`, checked against
/// the header the light client verified at the proof's height: `None` if proven absent.
pub fn verified_value(client: &mut RpcClient, light: &LightClient, proof: &Value, key: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    let (height, root, proof) = tcp_node::proof::proof_from_json(proof).map_err(|e| anyhow!("the node's proof is malformed: {e}"))?;
    if proof.key != *key {
        bail!("the proof is of key {}, not of the key asked for", hex::encode(&proof.key));
    }
    let header = fetch_verified_header(client, light, height).with_context(|| format!("header {height}"))?;
    if header.state_root().0 != root {
        bail!("the proof is for root {}, the verified header {height} commits {}", hex::encode(&root), header.state_root());
    }
    Ok(light.verify_state_proof(&header, &proof)?.map(<[u8]>::to_vec))
}

/// A contract's record as a verified proof shows it.
pub fn verified_contract(client: &mut RpcClient, light: &LightClient, cid: &[u8; 32]) -> Result<ContractEntry> {
    let answer = client.call("contract", json!([hex::encode(cid)]))?;
    if answer.is_null() {
        bail!("no contract {} on the chain", hex::encode(cid));
    }
    let proof = answer["proofs"].get(0).context("the contract answer carries no proof")?;
    let value = verified_value(client, light, proof, &tcp_state::contracts::contract_key(cid))?
        .with_context(|| format!("the chain proves contract {} absent", hex::encode(cid)))?;
    ContractEntry::decode(&value).context("the proven contract record does not decode")
}

/// A committed request's record (its result hash, status, fee) as a verified proof shows it.
pub fn verified_request(client: &mut RpcClient, light: &LightClient, request_id: &[u8; 32]) -> Result<RequestEntry> {
    let answer = client.call("compute_request", json!([hex::encode(request_id)]))?;
    if answer.is_null() {
        bail!("request {} is not committed", hex::encode(request_id));
    }
    let proof = answer["proofs"].get(0).context("the request answer carries no proof")?;
    let value = verified_value(client, light, proof, &tcp_state::contracts::request_key(request_id))?
        .with_context(|| format!("the chain proves request {} absent", hex::encode(request_id)))?;
    RequestEntry::decode(&value).context("the proven request record does not decode")
}

/// What a deploy or execution gave the client.
#[derive(Debug)]
pub struct Opened {
    pub cid: [u8; 32],
    pub request_id: [u8; 32],
    pub tx_hash: String,
    pub block_height: u64,
    pub status: CallStatus,
    /// The result (or the failed call's error), opened with the client's result key.
    pub result: Vec<u8>,
    pub result_hash: [u8; 32],
    /// Whether the result matches the hash the chain committed, read through a verified proof.
    pub verified: bool,
    /// The fee the client paid the compute node (the chain's record).
    pub fee: u128,
    /// Where the time went.
    pub timings: Timings,
}

/// How long each part of a call took, from when it was sent to the compute node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Until the compute node answered: the enclave ran and the call committed on its node.
    pub answered: Duration,
    /// Until the client's node showed the committed request under a verified header (its
    /// finality signature comes with the next block).
    pub proven: Duration,
    /// Until the result key came from the group and the result opened.
    pub opened: Duration,
    /// How long the compute node says its enclave took to produce the outcome (its word: a
    /// figure for benchmarks, nothing is decided by it).
    pub enclave: Option<Duration>,
}

/// A request signed by `key`, naming a fresh result key (whose secret is returned).
fn signed_request(
    key: &AccountKey,
    chain: &ChainId,
    call: Call,
    input_wire: &[u8],
    max_fee: u128,
    nonce: u64,
    height: u64,
) -> (tcp_state::SignedComputeRequest, zeroize::Zeroizing<[u8; 32]>) {
    let (secret, public) = result_key_pair();
    let request = ComputeRequest {
        chain_id: chain.clone(),
        call,
        input_hash: tcp_crypto::sha256(&[input_wire]).0,
        result_key: public,
        max_fee,
        nonce,
        valid_until: height + REQUEST_LIFETIME,
    };
    (request.sign(key), secret)
}

fn chain_of(client: &mut RpcClient) -> Result<(ChainId, u64)> {
    let status = client.call("status", json!([]))?;
    let chain = ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow!("the node's chain id: {e}"))?;
    Ok((chain, status["height"].as_u64().unwrap_or(0)))
}

/// The chain's master public key of contract keys, as a verified proof of the state shows it.
pub fn verified_master_key(client: &mut RpcClient, light: &LightClient) -> Result<[u8; 96]> {
    let key = tcp_state::staking::global_key("chain-keys");
    let answer = client.call("state_proof", json!([{"key": hex::encode(&key)}]))?;
    let value = verified_value(client, light, &answer, &key)?.context("the chain holds no master public key yet")?;
    value.get(96..192).and_then(|m| m.try_into().ok()).context("the proven chain keys are malformed")
}

/// The group's key of a committed request's result identity: asked of the serving group through
/// `chain_rpc` (`dkmp_result_key`), each member's answer opened with the result key's secret and
/// checked to be that member's, the partials verified in a batch against a sharing whose public
/// key must be the chain's master key (from a verified proof), then recovered.
pub fn result_identity_key(
    chain_rpc: &mut RpcClient,
    light: &LightClient,
    of: ResultOf<'_>,
    result_hash: &[u8; 32],
    result_secret: &[u8; 32],
) -> Result<tcp_dkmp::result::ResultKey> {
    let master = verified_master_key(chain_rpc, light)?;
    let answer = chain_rpc.call("dkmp_result_key", json!([hex::encode(of.request_id)]))?;
    let epoch = answer["epoch"].as_u64().context("the relay's answer names no epoch")?;
    let sharing = tcp_dkmp::decode_sharing(&unhex(&answer["sharing"], "sharing")?).context("the group's sharing does not decode")?;
    if tcp_beacon::signature::group_key_to_bytes(sharing.public()).as_slice() != master.as_slice() {
        bail!("the node's group sharing is not of the chain's master key");
    }
    let members: Vec<Option<tcp_crypto::Ed25519PublicKey>> = answer["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let bytes = hash32(m, "member").ok()?;
            <tcp_crypto::Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&bytes[..])).ok()
        })
        .collect();
    let mut partials = Vec::new();
    for a in answer["answers"].as_array().into_iter().flatten() {
        // An answer that is malformed, does not open or is not its member's is left out (the
        // batch names members whose partials are bad); t good ones suffice.
        let Some(index) = a["index"].as_u64().and_then(|i| u32::try_from(i).ok()) else { continue };
        let Some(Some(member)) = members.get(index as usize) else { continue };
        let Ok(sealed) = unhex(&a["sealed"], "sealed") else { continue };
        if let Ok(partial) = tcp_dkmp::result::open_result_answer(result_secret, of.chain, (of.request_id, epoch), &sealed, member) {
            partials.push((index, partial));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("the OS RNG: {e}"))?;
    let identity = of.identity(result_hash);
    let (key, _bad) = tcp_dkmp::result::recover_result_key(&mut rand_chacha::ChaCha20Rng::from_seed(seed), &sharing, &identity, &partials)
        .map_err(|e| anyhow!("the group's answers give no key for this result: {e}"))?;
    for (_, partial) in &mut partials {
        tcp_dkmp::wipe_partial(partial);
    }
    Ok(key)
}

/// Open what the compute node answered, once committed: the result hash and fee from a verified
/// proof of the committed request, the result's identity key from the group.
fn open(chain_rpc: &mut RpcClient, light: &LightClient, answer: &Value, request_id: [u8; 32], secret: &[u8; 32], sent: Instant) -> Result<Opened> {
    let answered = sent.elapsed();
    let sealed = unhex(&answer["result"], "result")?;
    let claimed = hash32(&answer["result_hash"], "result_hash")?;
    let cid = hash32(&answer["cid"], "cid")?;
    // The compute node answers once its own node committed the call; the client's node may be
    // a block behind. (What height it names is not believed: the proof below is checked.)
    if let Some(height) = answer["block_height"].as_u64() {
        let caught_up = wait_for(Duration::from_secs(15), || Ok((chain_rpc.call("status", json!([]))?["height"].as_u64().unwrap_or(0) >= height).then_some(())));
        if caught_up.is_err() {
            bail!("the client's node did not reach block {height}, where the compute node says the call committed, within 15 s");
        }
    }
    let record = verified_request(chain_rpc, light, &request_id)?;
    if record.result_hash != claimed || record.cid != cid {
        bail!("the compute node's answer is not what the chain committed");
    }
    let (result_hash, fee, verified) = (record.result_hash, record.fee, true);
    let proven = sent.elapsed();
    let chain = light.chain_id().clone();
    let of = ResultOf { chain: &chain, cid: &cid, request_id: &request_id };
    let key = result_identity_key(chain_rpc, light, of, &result_hash, secret)?;
    let OpenedResult { status, bytes } = open_result(of, secret, &key, &sealed, &result_hash).map_err(|e| anyhow!("{e}"))?;
    Ok(Opened {
        cid,
        request_id,
        tx_hash: answer["tx_hash"].as_str().unwrap_or_default().to_string(),
        block_height: answer["block_height"].as_u64().unwrap_or(0),
        status,
        result: bytes,
        result_hash,
        verified,
        fee,
        timings: Timings {
            answered,
            proven,
            opened: sent.elapsed(),
            enclave: answer["enclave_ms"].as_f64().filter(|ms| ms.is_finite() && *ms >= 0.0 && *ms < 1e9).map(|ms| Duration::from_secs_f64(ms / 1e3)),
        },
    })
}

/// Call a compute node's method, waiting up to [`WAIT`].
fn call_compute(compute: &str, method: &str, params: &Value) -> Result<Value> {
    let mut client = RpcClient::new(compute)?.with_timeout(WAIT);
    Ok(client.call(method, params.clone()).with_context(|| format!("the compute node's {method}"))?)
}

/// A signed request ready for a compute node, with the secret of the result key it names (the
/// only way to open its result). Sending the same prepared call twice is a replay: the compute
/// node and the chain refuse it once the first is committed.
pub struct PreparedCall {
    pub request: tcp_state::SignedComputeRequest,
    method: &'static str,
    params: Value,
    secret: zeroize::Zeroizing<[u8; 32]>,
}

impl PreparedCall {
    pub fn request_id(&self) -> [u8; 32] {
        self.request.request.id()
    }

    /// Hand the call to the compute node at `compute`, wait for its committed receipt, and open
    /// the result: checked against the chain through `chain_rpc` and `light`.
    pub fn run(&self, compute: &str, chain_rpc: &mut RpcClient, light: &LightClient) -> Result<Opened> {
        let sent = Instant::now();
        let answer = call_compute(compute, self.method, &self.params)?;
        open(chain_rpc, light, &answer, self.request_id(), &self.secret, sent)
    }
}

/// Prepare the deploy of `code` with a public init input: the contract's id is computed from
/// the code, the deployer and `nonce`. `chain_rpc` is the client's view of the chain (any node).
pub fn prepare_deploy(chain_rpc: &mut RpcClient, key: &AccountKey, code: &[u8], init: &[u8], nonce: u64, max_fee: u128) -> Result<PreparedCall> {
    let (chain, height) = chain_of(chain_rpc)?;
    let init_wire = tcp_enclave::channel::Input::Public(init.to_vec()).wire_bytes();
    let code_hash = tcp_crypto::sha256(&[code]).0;
    let (request, secret) = signed_request(key, &chain, Call::Deploy { code_hash }, &init_wire, max_fee, nonce, height);
    let params = json!([{"request": hex::encode(&request.encode()), "code": hex::encode(code), "init": {"public": hex::encode(init)}}]);
    Ok(PreparedCall { request, method: "compute_deploy", params, secret })
}

/// Deploy `code` through the compute node at `compute` ([`prepare_deploy`], then run).
#[allow(clippy::too_many_arguments)]
pub fn deploy(
    compute: &str,
    chain_rpc: &mut RpcClient,
    light: &LightClient,
    key: &AccountKey,
    code: &[u8],
    init: &[u8],
    nonce: u64,
    max_fee: u128,
) -> Result<Opened> {
    prepare_deploy(chain_rpc, key, code, init, nonce, max_fee)?.run(compute, chain_rpc, light)
}

/// Prepare an execution of contract `cid` with `input` (sealed here to the contract's verified
/// public key) over the data blobs `data` (content hashes at a data source the compute node
/// fetches from), under a fresh random nonce.
pub fn prepare_execute(
    chain_rpc: &mut RpcClient,
    light: &LightClient,
    key: &AccountKey,
    cid: &[u8; 32],
    input: &[u8],
    data: Vec<[u8; 32]>,
    max_fee: u128,
) -> Result<PreparedCall> {
    let (chain, height) = chain_of(chain_rpc)?;
    let contract = verified_contract(chain_rpc, light, cid)?;
    let sealed = seal_to_contract(Sealed::Input, &chain, cid, contract.key_generation, &contract.public_key, b"", input);
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("the OS RNG: {e}"))?;
    let (request, secret) = signed_request(key, &chain, Call::Execute { cid: *cid, data }, &sealed, max_fee, u64::from_be_bytes(nonce), height);
    let params = json!([{"request": hex::encode(&request.encode()), "input": hex::encode(&sealed)}]);
    Ok(PreparedCall { request, method: "compute_execute", params, secret })
}

/// Execute contract `cid` through the compute node at `compute` ([`prepare_execute`], then run).
#[allow(clippy::too_many_arguments)]
pub fn execute(
    compute: &str,
    chain_rpc: &mut RpcClient,
    light: &LightClient,
    key: &AccountKey,
    cid: &[u8; 32],
    input: &[u8],
    data: Vec<[u8; 32]>,
    max_fee: u128,
) -> Result<Opened> {
    prepare_execute(chain_rpc, light, key, cid, input, data, max_fee)?.run(compute, chain_rpc, light)
}

/// Seal `plaintext` to contract `cid`'s verified public key under the owner's terms (`price` per
/// use, usable by `cid`) and upload it to the data source at `datasource`; the blob's hash.
pub fn put_data(
    datasource: &str,
    chain_rpc: &mut RpcClient,
    light: &LightClient,
    owner: &AccountKey,
    cid: &[u8; 32],
    price: u128,
    plaintext: &[u8],
) -> Result<[u8; 32]> {
    let (chain, _) = chain_of(chain_rpc)?;
    let contract = verified_contract(chain_rpc, light, cid)?;
    let mut terms = DataTerms { chain_id: chain.clone(), owner: owner.address(), hash: [0; 32], price, contracts: vec![*cid] };
    let sealed = seal_to_contract(Sealed::Data, &chain, cid, contract.key_generation, &contract.public_key, &terms.binding(), plaintext);
    terms.hash = tcp_crypto::sha256(&[&sealed]).0;
    let signed = terms.sign(owner);
    let mut client = RpcClient::new(datasource)?;
    let answer = client.call("data_put", json!([hex::encode(&signed.encode()), hex::encode(&sealed)])).context("the data source refused the upload")?;
    let hash = hash32(&answer["hash"], "hash")?;
    if hash != signed.terms.hash {
        bail!("the data source stored the upload under another hash");
    }
    Ok(hash)
}

/// Wait until `f` gives Some, up to `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
