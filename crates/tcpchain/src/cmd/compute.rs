//! The compute role's service (`tcpchain node` with `"role": "compute"`; issue 19, item 1): beside
//! the full node it runs the node's `tcp-enclave` (restarted by its host when it crashes), bonds
//! the operator as a compute node, posts the platform's collateral when the chain lacks it or
//! holds older, and registers the enclave — again before the registration expires, when the
//! policy version changes, and whenever the enclave was restarted (a new process has new keys).
//!
//! It reads the chain through the node's own RPC, as any client would, and decides from
//! committed state only; every step is idempotent, so a failed step is simply tried again.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tcp_enclave::channel::{Request, Response};
use tcp_enclave::host::EnclaveHost;
use tcp_enclave::process::{BackendChoice, EnclaveArgs};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_node::genesis::{ChainSpec, ComputeConfig, NodeConfig};
use tcp_state::{AccountKey, Action, ComputeOutcome, SignedComputeRequest};

use super::client::{SendOptions, send_action};

/// How often the service looks at the chain.
const POLL: Duration = Duration::from_secs(2);
/// A registration is renewed once less than this share of the attestation period is left.
const RENEW_DIVISOR: u64 = 4;
/// Failed registrations the mempool takes per nonce (`tcp_node::mempool::MAX_FAILED_VERIFICATIONS`).
const MAX_FAILURES_PER_NONCE: u32 = tcp_node::mempool::MAX_FAILED_VERIFICATIONS;
/// How long the enclave may take to answer (a quote takes milliseconds; compiling a contract
/// more).
const ENCLAVE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client's `dkmp_request` may wait for the service (it may be registering).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Client requests waiting for the service.
const MAX_QUEUED_COMMANDS: usize = 16;

/// A client's call to one of the compute node's RPC methods, for the service thread (which
/// owns the enclave).
struct Command {
    method: String,
    params: Vec<Value>,
    reply: std::sync::mpsc::Sender<Result<Value, String>>,
}

/// The compute node's methods on its node's RPC: `dkmp_request`, `compute_deploy`,
/// `compute_execute`.
pub struct ComputeMethods {
    commands: std::sync::mpsc::SyncSender<Command>,
}

impl tcp_node::rpc::RpcExtension for ComputeMethods {
    fn serves(&self, method: &str) -> bool {
        matches!(method, "dkmp_request" | "compute_deploy" | "compute_execute")
    }

    fn call(&self, method: &str, params: &[Value]) -> Result<Value, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        let command = Command { method: method.to_string(), params: params.to_vec(), reply };
        self.commands.try_send(command).map_err(|_| "the compute node is busy: try again".to_string())?;
        answer.recv_timeout(COMMAND_TIMEOUT).map_err(|_| "the compute node did not answer in time".to_string())?
    }
}

/// Start the service on a thread of its own; it stops when `stop` is set. Returns the thread
/// and the RPC methods it serves.
pub fn spawn(
    home: &Path,
    config: &NodeConfig,
    spec: &ChainSpec,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(std::thread::JoinHandle<()>, ComputeMethods)> {
    let compute = config.compute.clone().context("the compute role needs a `compute` section")?;
    let key = KeyStore::open(home)?.load(&compute.operator_key).with_context(|| format!("loading the operator key {:?}", compute.operator_key))?;
    let bond: u128 = compute.bond.parse().context("compute.bond")?;
    let fee: u128 = compute.fee.parse().context("compute.fee")?;
    let host = start_enclave(home, &compute)?;
    let mut service = ComputeService {
        name: config.name.clone(),
        rpc: format!("http://{}", config.rpc_listen),
        chain_id: spec.chain_id.clone(),
        gas_price: spec.params().min_gas_price,
        key,
        compute,
        bond,
        fee,
        host,
        registered: None,
    };
    let (commands, queue) = std::sync::mpsc::sync_channel::<Command>(MAX_QUEUED_COMMANDS);
    let thread = std::thread::Builder::new()
        .name("compute".into())
        .spawn(move || {
            let mut failures = 0u32;
            while !stop.load(Ordering::SeqCst) {
                match service.step() {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(node = %service.name, failures, error = %format!("{e:#}"), "compute service: will try again");
                        // The mempool takes a few failed registrations per nonce: move the
                        // nonce on (a paid transfer to ourselves) before trying again.
                        if failures % MAX_FAILURES_PER_NONCE == 0
                            && let Err(e) = service.move_nonce_on()
                        {
                            tracing::warn!(node = %service.name, error = %format!("{e:#}"), "compute service: cannot move the nonce on");
                        }
                    }
                }
                // Back off while failing, up to 8 polls; clients' calls are served meanwhile.
                let pause = POLL * failures.clamp(1, 8);
                let mut waited = Duration::ZERO;
                while waited < pause && !stop.load(Ordering::SeqCst) {
                    if let Ok(command) = queue.recv_timeout(Duration::from_millis(100)) {
                        let answer = service.serve(&command.method, &command.params).map_err(|e| format!("{e:#}"));
                        let _ = command.reply.send(answer);
                    }
                    waited += Duration::from_millis(100);
                }
            }
        })
        .context("starting the compute service thread")?;
    Ok((thread, ComputeMethods { commands }))
}

fn start_enclave(home: &Path, compute: &ComputeConfig) -> anyhow::Result<EnclaveHost> {
    let (program, prefix) = super::attest::enclave_program()?;
    let in_home = |p: &PathBuf| if p.is_absolute() { p.clone() } else { home.join(p) };
    let args = EnclaveArgs {
        backend: if compute.quote_backend == "tsm" { BackendChoice::Tsm } else { BackendChoice::Simulated },
        tee: Some(compute.tee.clone()),
        dev_platform: compute.dev_platform.as_ref().map(in_home),
        collateral: compute.collateral.as_ref().map(in_home),
        debug: false,
    };
    EnclaveHost::start_program(program, prefix, args, ENCLAVE_TIMEOUT).context("starting the enclave")
}

struct ComputeService {
    name: String,
    rpc: String,
    chain_id: tcp_types::ChainId,
    gas_price: u64,
    key: AccountKey,
    compute: ComputeConfig,
    bond: u128,
    /// Charged per call.
    fee: u128,
    host: EnclaveHost,
    /// The enclave key registered last.
    registered: Option<[u8; 32]>,
}

impl ComputeService {
    fn send(&self, client: &mut RpcClient, action: Action, kind: &str) -> anyhow::Result<Value> {
        let options = SendOptions { nonce: None, gas_price: self.gas_price, gas_limit: None, wait: true };
        send_action(client, &self.key, self.chain_id.clone(), action, kind, options)
    }

    /// A transfer of nothing to ourselves: it pays a fee and moves the nonce on.
    fn move_nonce_on(&self) -> anyhow::Result<()> {
        let mut client = RpcClient::new(&self.rpc)?;
        let action = Action::Transfer { to: self.key.address(), amount: 0 };
        self.send(&mut client, action, "transfer")?;
        Ok(())
    }

    /// One look at the chain, and the one action it calls for.
    fn step(&mut self) -> anyhow::Result<()> {
        let mut client = RpcClient::new(&self.rpc)?;
        let operator = self.key.address().to_string();
        // A transaction of ours still pending (the node gossips it again): wait for it rather
        // than queue another behind it.
        let account = client.call("account", json!([operator]))?;
        if account["pending_nonce"].as_u64() > account["nonce"].as_u64() {
            return Ok(());
        }
        let nodes = client.call("compute_nodes", json!([]))?;
        let height = nodes["height"].as_u64().unwrap_or(0);
        let Some(node) = nodes["compute_nodes"].as_array().into_iter().flatten().find(|n| n["operator"] == operator.as_str()).cloned() else {
            let action = Action::RegisterCompute { endpoint: self.compute.endpoint.clone(), amount: self.bond };
            self.send(&mut client, action, "register-compute")?;
            tracing::info!(node = %self.name, operator, bond = %self.bond, endpoint = %self.compute.endpoint, "bonded as a compute node");
            return Ok(());
        };
        if node["in_service"] != true {
            bail!("the compute node is registered but not in service (jailed or under the minimum bond)");
        }
        // The enclave's keys as it is now (a crashed enclave is restarted by this request and
        // comes back with new keys).
        let (signing_key, x25519_key) = match self.host.request(&Request::Hello)? {
            Response::Hello { signing_key, enclave_key, .. } => (signing_key, enclave_key),
            other => bail!("the enclave answered Hello with {other:?}"),
        };
        let freshness = client.call("registration_freshness", json!([]))?;
        if freshness.is_null() {
            return Ok(()); // the beacon has not produced a value yet
        }
        let period = freshness["attestation_period"].as_u64().unwrap_or(0);
        let current = node["enclaves"].as_array().into_iter().flatten().find(|e| e["signing_key"] == hex(&signing_key).as_str());
        let renew_at = |e: &Value| e["expires_at"].as_u64().unwrap_or(0).saturating_sub(period / RENEW_DIVISOR);
        if let Some(e) = current
            && e["current"] == true
            && height < renew_at(e)
        {
            self.registered = Some(signing_key);
            return Ok(());
        }
        if self.registered.is_some_and(|k| k != signing_key) {
            tracing::warn!(node = %self.name, restarts = self.host.restarts(), "the enclave restarted with new keys: registering them");
        }
        self.register(&mut client, &freshness, signing_key, x25519_key)
    }

    fn register(&mut self, client: &mut RpcClient, freshness: &Value, signing_key: [u8; 32], x25519_key: [u8; 32]) -> anyhow::Result<()> {
        let freshness_height = freshness["freshness_height"].as_u64().context("registration_freshness lacks freshness_height")?;
        let r: [u8; 32] = tcp_types::hex::decode(freshness["randomness"].as_str().unwrap_or_default())
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("registration_freshness lacks randomness")?;
        let value = tcp_dkmp::registration_freshness(&r, &self.key.address().0);
        let key = |name: &str| -> anyhow::Result<[u8; 96]> {
            tcp_types::hex::decode(freshness[name].as_str().unwrap_or_default())
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| format!("registration_freshness lacks {name}"))
        };
        // From our own node's committed state; the quote binds them, so were they wrong the
        // chain would refuse the registration.
        let chain_keys = tcp_attestation::ChainKeys { group_key: key("group_key")?, master_key: key("master_key")? };
        let request = Request::Register { chain_id: self.chain_id.as_str().to_string(), freshness: value, chain_keys };
        let (quote, collateral) = match self.host.request(&request)? {
            Response::Attestation { quote, collateral } => (quote, collateral),
            other => bail!("the enclave answered Register with {other:?}"),
        };
        // Were the enclave restarted between Hello and Register, the quote would bind keys other
        // than these and the chain would refuse it; the next step starts over.
        self.post_collateral_if_newer(client, &quote, &collateral)?;
        let action = Action::RegisterEnclave { freshness_height, signing_key, x25519_key, quote };
        let out = self.send(client, action, "register-enclave")?;
        self.registered = Some(signing_key);
        tracing::info!(
            node = %self.name,
            enclave = %hex(&signing_key),
            block = %out["receipt"]["block_height"],
            "registered the enclave"
        );
        Ok(())
    }

    fn serve(&mut self, method: &str, params: &[Value]) -> anyhow::Result<Value> {
        match method {
            "dkmp_request" => self.obtain_contract_key(params),
            "compute_deploy" => self.deploy(params),
            "compute_execute" => self.execute(params),
            other => bail!("unknown method {other:?}"),
        }
    }

    /// `dkmp_request [{"cid": hex, "generation": g}]` (a deployed contract) or
    /// `[{"deploy": {"code": hex, "deployer": address, "nonce": n}}]` (the first key of the
    /// contract that code makes): the enclave asks the serving group for the key (issue 19,
    /// item 4). The enclave signs the request, this node relays it, the enclave opens the
    /// answers; what comes back here is public: the contract's public key and who answered.
    fn obtain_contract_key(&mut self, params: &[Value]) -> anyhow::Result<Value> {
        // A request names the serving group's epoch; one made as the epoch changes reaches
        // members of the next group, which refuse it: ask again of the new group.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.obtain_contract_key_once(params) {
                Err(e) if attempt < 3 && e.downcast_ref::<EpochMoved>().is_some() => continue,
                other => return other,
            }
        }
    }

    fn obtain_contract_key_once(&mut self, params: &[Value]) -> anyhow::Result<Value> {
        let p = params.first().context("parameters: [{\"cid\": hex, \"generation\": number}] or [{\"deploy\": {...}}]")?;
        let ask = match p.get("deploy") {
            Some(d) => {
                let code = tcp_types::hex::decode(d["code"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("deploy.code: {e}"))?;
                let code_hash = match self.host.request(&Request::Load { code })? {
                    Response::Loaded { code_hash } => code_hash,
                    Response::Error { message } => bail!("the enclave cannot load the code: {message}"),
                    other => bail!("the enclave answered Load with {other:?}"),
                };
                let deployer: tcp_state::Address =
                    d["deployer"].as_str().unwrap_or_default().parse().map_err(|e| anyhow::anyhow!("deploy.deployer: {e}"))?;
                let nonce = d["nonce"].as_u64().context("deploy.nonce: a number")?;
                tcp_enclave::channel::KeyAsk::Deploy { code_hash, deployer: deployer.0, nonce }
            }
            None => {
                let cid: [u8; 32] = tcp_types::hex::decode(p["cid"].as_str().unwrap_or_default())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .context("cid: 32 bytes of hex")?;
                tcp_enclave::channel::KeyAsk::Execute { cid, generation: p["generation"].as_u64().unwrap_or(0) }
            }
        };
        let started = std::time::Instant::now();
        let mut client = RpcClient::new(&self.rpc)?;
        let sssg = client.call("sssg", json!([]))?;
        let epoch = sssg["serving"]["epoch"].as_u64().context("no secret-share group serves yet")?;
        let request = match self.host.request(&Request::RequestKey { epoch, ask })? {
            Response::KeyRequest { request } => request,
            Response::Error { message } => bail!("the enclave: {message}"),
            other => bail!("the enclave answered RequestKey with {other:?}"),
        };
        let signed = <tcp_dkmp::SignedKeyRequest as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(request.as_slice()))
            .map_err(|e| anyhow::anyhow!("the enclave's key request does not decode: {e}"))?;
        let signed_at = started.elapsed();
        let relayed = client.call("dkmp_relay", json!([hex(&request)]))?;
        let relayed_at = started.elapsed();
        let members: Vec<String> = relayed["members"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(str::to_string)).collect();
        let mut answers = Vec::new();
        for a in relayed["answers"].as_array().into_iter().flatten() {
            let index = a["index"].as_u64().context("an answer without an index")? as u32;
            let member = members.get(index as usize).context("an answer from outside the group")?;
            answers.push(tcp_enclave::keys::RelayedAnswer {
                index,
                member: tcp_types::hex::decode(member).ok().and_then(|b| b.try_into().ok()).context("a member key")?,
                sealed: tcp_types::hex::decode(a["sealed"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("an answer: {e}"))?,
            });
        }
        let answered: Vec<u32> = answers.iter().map(|a| a.index).collect();
        let sharing = tcp_types::hex::decode(relayed["sharing"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("the sharing: {e}"))?;
        let open = Request::OpenKey { request: signed.request.digest().0, sharing, answers };
        let answer = self.host.request(&open)?;
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        // Where the time went: the enclave's signed request, the members' answers over p2p,
        // the enclave's recovery.
        let timings = json!({"request_ms": ms(signed_at), "relay_ms": ms(relayed_at - signed_at), "recover_ms": ms(started.elapsed() - relayed_at)});
        match answer {
            Response::ContractKey { cid, generation, public_key, bad } => {
                let name = |i: &u32| members.get(*i as usize).cloned().unwrap_or_default();
                Ok(json!({
                    "cid": hex(&cid),
                    "generation": generation,
                    "epoch": epoch,
                    "public_key": hex(&public_key),
                    "answered": answered.iter().filter(|i| !bad.contains(i)).map(name).collect::<Vec<_>>(),
                    "bad": bad.iter().map(name).collect::<Vec<_>>(),
                    "missing": (0..members.len() as u32).filter(|i| !answered.contains(i)).map(|i| name(&i)).collect::<Vec<_>>(),
                    "threshold": sssg["serving"]["threshold"],
                    "request": hex(&signed.request.digest().0),
                    "timings": timings,
                }))
            }
            Response::Error { message } => {
                let now = client.call("sssg", json!([]))?;
                if now["serving"]["epoch"].as_u64() != Some(epoch) {
                    return Err(EpochMoved.into());
                }
                bail!("the enclave could not recover the key from {} answers of {}: {message}", answered.len(), members.len())
            }
            other => bail!("the enclave answered OpenKey with {other:?}"),
        }
    }

    /// Load code into the enclave; its hash.
    fn load(&mut self, code: Vec<u8>) -> anyhow::Result<[u8; 32]> {
        match self.host.request(&Request::Load { code })? {
            Response::Loaded { code_hash } => Ok(code_hash),
            Response::Error { message } => bail!("the enclave cannot load the code: {message}"),
            other => bail!("the enclave answered Load with {other:?}"),
        }
    }

    /// Ask the enclave until it answers with an outcome, obtaining each key it says it needs
    /// (a call needs at most a few: the state's generation, the newest, the input's and the
    /// data's). Also how long the enclave took over the call that gave the outcome (the whole
    /// round trip: the request's bytes in, every check, the contract, the sealing, the outcome
    /// out), which the answer reports.
    fn run_until_outcome(&mut self, request: &Request, deploy: Option<(&[u8], tcp_state::Address, u64)>) -> anyhow::Result<(ComputeOutcome, [u8; 64], Duration)> {
        // At most: the state's generation, the newest, the input's and one per data blob.
        for _ in 0..3 + tcp_state::contracts::MAX_DATA_USES {
            let started = std::time::Instant::now();
            let response = self.host.request(request)?;
            let took = started.elapsed();
            match response {
                Response::Outcome { outcome, signature } => {
                    let outcome = ComputeOutcome::decode(&outcome).map_err(|e| anyhow::anyhow!("the enclave's outcome does not decode: {e}"))?;
                    return Ok((outcome, signature, took));
                }
                Response::NeedKey { cid, generation, deploy: true } => {
                    let (code, deployer, nonce) = deploy.context("the enclave asked for a deploy key outside a deploy")?;
                    let params = json!([{"deploy": {"code": hex(code), "deployer": deployer.to_string(), "nonce": nonce}}]);
                    let obtained = self.obtain_contract_key(params.as_array().expect("an array"))?;
                    tracing::info!(node = %self.name, cid = %hex(&cid), generation, answered = %obtained["answered"], "obtained the deploy key");
                }
                Response::NeedKey { cid, generation, deploy: false } => {
                    let params = json!([{"cid": hex(&cid), "generation": generation}]);
                    let obtained = self.obtain_contract_key(params.as_array().expect("an array"))?;
                    tracing::info!(node = %self.name, cid = %hex(&cid), generation, answered = %obtained["answered"], "obtained a contract key");
                }
                Response::Error { message } => bail!("the enclave refused: {message}"),
                other => bail!("the enclave answered with {other:?}"),
            }
        }
        bail!("the enclave kept asking for keys")
    }

    /// What must hold on our committed state before any work is done for a client (compiling,
    /// asking the group for keys, fetching data, running the contract): the request is for this
    /// chain, unexpired with room to commit, not committed already, and its client can pay its
    /// max fee. (The chain decides again; this keeps a client from spending our keys' rate
    /// limit, our enclave's time and our data sources' on requests that cannot pay.)
    fn precheck(&self, signed: &SignedComputeRequest) -> anyhow::Result<()> {
        let request = &signed.request;
        if request.chain_id != self.chain_id {
            bail!("the request is for chain {}", request.chain_id);
        }
        let client = signed.client().map_err(|e| anyhow::anyhow!("the request's signature: {e}"))?;
        if self.fee > request.max_fee {
            bail!("this compute node charges {} per call plus gas, more than the request's max fee {}", self.fee, request.max_fee);
        }
        let mut rpc = RpcClient::new(&self.rpc)?;
        let height = rpc.call("status", json!([]))?["height"].as_u64().unwrap_or(0);
        // A few blocks to run and commit it.
        if request.valid_until < height + 3 {
            bail!("the request expires at height {}, too soon to commit (the chain is at {height})", request.valid_until);
        }
        if request.valid_until > height + tcp_state::contracts::MAX_REQUEST_LIFETIME {
            bail!("the request is valid until height {}, more than {} heights ahead", request.valid_until, tcp_state::contracts::MAX_REQUEST_LIFETIME);
        }
        if !rpc.call("compute_request", json!([hex(&request.id())]))?.is_null() {
            bail!("the request was committed already");
        }
        let balance: u128 = rpc.call("account", json!([client.to_string()]))?["balance"].as_str().unwrap_or("0").parse().unwrap_or(0);
        if balance < request.max_fee {
            bail!("the client's balance {balance} cannot cover the request's max fee {}", request.max_fee);
        }
        Ok(())
    }

    /// Submit an outcome and wait for its receipt.
    fn submit(&self, outcome: ComputeOutcome, signature: [u8; 64], enclave_time: Duration) -> anyhow::Result<Value> {
        let mut client = RpcClient::new(&self.rpc)?;
        let request_id = outcome.request.request.id();
        let (cid, status, result, result_hash) = (outcome.cid, outcome.status, outcome.result.clone(), outcome.result_hash);
        let kind = match outcome.request.request.call {
            tcp_state::Call::Deploy { .. } => "deploy",
            tcp_state::Call::Execute { .. } => "execute",
        };
        let out = self.send(&mut client, Action::Compute { outcome, signature }, kind)?;
        Ok(json!({
            "tx_hash": out["hash"],
            "block_height": out["receipt"]["block_height"],
            "request_id": hex(&request_id),
            "cid": hex(&cid),
            "call_status": match status { tcp_state::CallStatus::Ok => "ok", tcp_state::CallStatus::Failed => "failed" },
            "result": hex(&result),
            "result_hash": hex(&result_hash),
            "enclave_ms": (enclave_time.as_secs_f64() * 1e6).round() / 1e3,
        }))
    }

    /// `compute_deploy [{"request": hex, "code": hex, "init": {"public": hex} | {"sealed": hex}}]`:
    /// the client's signed deploy request, the code and the init input (public, or sealed to this
    /// node's enclave key). The enclave obtains the contract's first key, runs `init`, and this
    /// node submits the outcome.
    fn deploy(&mut self, params: &[Value]) -> anyhow::Result<Value> {
        let p = params.first().context("parameters: [{\"request\": hex, \"code\": hex, \"init\": {...}}]")?;
        let request = unhex(&p["request"], "request")?;
        let signed = SignedComputeRequest::decode(&request).map_err(|e| anyhow::anyhow!("request: {e}"))?;
        let client = signed.client().map_err(|e| anyhow::anyhow!("request signature: {e}"))?;
        let code = unhex(&p["code"], "code")?;
        self.precheck(&signed)?;
        if code.len() > tcp_state::contracts::MAX_CODE_BYTES {
            bail!("the code is {} bytes, more than the {} a deploy may carry", code.len(), tcp_state::contracts::MAX_CODE_BYTES);
        }
        if !matches!(signed.request.call, tcp_state::Call::Deploy { code_hash } if code_hash == tcp_crypto::sha256(&[&code]).0) {
            bail!("the code is not the code the request names");
        }
        let init = match (p["init"].get("public"), p["init"].get("sealed")) {
            (Some(v), None) => tcp_enclave::channel::Input::Public(unhex(v, "init.public")?),
            (None, Some(v)) => tcp_enclave::channel::Input::Sealed(unhex(v, "init.sealed")?),
            (None, None) if p.get("init").is_none() => tcp_enclave::channel::Input::Public(Vec::new()),
            _ => bail!("init: {{\"public\": hex}} or {{\"sealed\": hex}}"),
        };
        self.load(code.clone())?;
        let call = Request::Deploy { request, init, fee: self.fee, gas_price: self.gas_price };
        let (outcome, signature, took) = self.run_until_outcome(&call, Some((&code, client, signed.request.nonce)))?;
        self.submit(outcome, signature, took)
    }

    /// `compute_execute [{"request": hex, "input": hex}]`: the client's signed execute request
    /// and its input sealed to the contract. This node shows its enclave the newest finalized
    /// header with proofs and the contract's state, fetches the data the request names from the
    /// data sources it is configured with (`compute.datasources`: never a URL a client names,
    /// which would make this node fetch from anywhere), runs the call and submits the outcome.
    fn execute(&mut self, params: &[Value]) -> anyhow::Result<Value> {
        let p = params.first().context("parameters: [{\"request\": hex, \"input\": hex}]")?;
        let request = unhex(&p["request"], "request")?;
        let signed = SignedComputeRequest::decode(&request).map_err(|e| anyhow::anyhow!("request: {e}"))?;
        let tcp_state::Call::Execute { cid, data } = &signed.request.call else { bail!("not an execute request") };
        let (cid, data) = (*cid, data.clone());
        let input = unhex(&p["input"], "input")?;
        self.precheck(&signed)?;
        let sources = self.compute.datasources.clone();
        let blobs = data.iter().map(|hash| self.fetch_data(hash, &sources)).collect::<anyhow::Result<Vec<_>>>()?;
        let view = self.finalized_view(&cid, &signed.request.id())?;
        let code_hash = unhex(&view["code_hash"], "code_hash")?;
        let mut client = RpcClient::new(&self.rpc)?;
        let code = client.call("contract_code", json!([hex(&code_hash)]))?;
        self.load(unhex(&code["code"], "contract code")?)?;
        let chain_view = tcp_enclave::channel::ChainView {
            header: unhex(&view["header"], "header")?,
            finality: unhex(&view["finality"], "finality")?,
            contract: unhex(&view["contract_proof"], "contract proof")?,
            request: unhex(&view["request_proof"], "request proof")?,
        };
        let state = unhex(&view["state"], "state")?;
        let call = Request::Call { request, view: chain_view, state, input, data: blobs, fee: self.fee, gas_price: self.gas_price };
        let (outcome, signature, took) = self.run_until_outcome(&call, None)?;
        self.submit(outcome, signature, took)
    }

    /// The newest finalized view of the contract that shows its latest committed state: a call
    /// made on an older one would be refused as stale, so wait (a block or two) while the node
    /// says the newest block made or changed the contract (`compute_view` refuses then).
    fn finalized_view(&self, cid: &[u8; 32], request_id: &[u8; 32]) -> anyhow::Result<Value> {
        let mut client = RpcClient::new(&self.rpc)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match client.call("compute_view", json!([hex(cid), hex(request_id)])) {
                Ok(view) => return Ok(view),
                Err(e) if e.to_string().contains("no such contract") => bail!("no contract {} on the chain", hex(cid)),
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(anyhow::Error::from(e).context("the finalized view of the contract did not catch up with its latest state"));
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A blob and its terms from the first data source that has it, asked as this compute node
    /// (the operator's signature over the hash and the time).
    fn fetch_data(&self, hash: &[u8; 32], sources: &[String]) -> anyhow::Result<tcp_enclave::channel::DataBlob> {
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let signature = self.key.sign_digest(&tcp_state::contracts::data_fetch_digest(&self.chain_id, hash, time));
        let mut errors = Vec::new();
        for source in sources {
            let got = RpcClient::new(source)
                .map_err(anyhow::Error::from)
                .and_then(|mut c| Ok(c.call("data_get", json!([hex(hash), self.key.address().to_string(), time, hex(&signature.0)]))?));
            match got {
                Ok(v) => {
                    let blob = tcp_enclave::channel::DataBlob { terms: unhex(&v["terms"], "terms")?, sealed: unhex(&v["blob"], "blob")? };
                    if tcp_crypto::sha256(&[&blob.sealed]).0 != *hash {
                        errors.push(format!("{source}: served a blob of another hash"));
                        continue;
                    }
                    return Ok(blob);
                }
                Err(e) => errors.push(format!("{source}: {e:#}")),
            }
        }
        if sources.is_empty() {
            bail!("data {}: no data source named (the request's `datasources`, or compute.datasources)", hex(hash));
        }
        bail!("data {}: {}", hex(hash), errors.join("; "))
    }

    /// Post the enclave's collateral when the chain holds none for the platform, or older.
    fn post_collateral_if_newer(&self, client: &mut RpcClient, quote: &[u8], collateral: &[u8]) -> anyhow::Result<()> {
        let (tee, fmspc, pck_ca) = tcp_attestation::quote_platform(quote).context("reading the quote's platform")?;
        let ca = match pck_ca {
            tcp_attestation::PckCa::Processor => "processor",
            tcp_attestation::PckCa::Platform => "platform",
        };
        let held = client.call("collateral", json!([tee.name(), hex(&fmspc), ca]))?;
        let ours = tcp_attestation::CollateralParts::parse(collateral).context("the enclave's collateral")?;
        let newer = match held["collateral"].as_str() {
            None => true,
            Some(text) => {
                let bytes = tcp_types::hex::decode(text).map_err(|e| anyhow::anyhow!("the chain's collateral: {e}"))?;
                tcp_attestation::CollateralParts::parse(&bytes).is_ok_and(|theirs| ours.supersedes(&theirs))
            }
        };
        if newer {
            let action = Action::PostCollateral { collateral: collateral.to_vec(), witness: quote.to_vec() };
            self.send(client, action, "post-collateral")?;
            tracing::info!(node = %self.name, tee = tee.name(), fmspc = %hex(&fmspc), "posted the platform's collateral");
        }
        Ok(())
    }
}

/// A key request failed because another group took over while it was answered.
#[derive(Debug)]
struct EpochMoved;

impl std::fmt::Display for EpochMoved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the secret-share group changed while the request was answered")
    }
}

impl std::error::Error for EpochMoved {}

fn hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(bytes)
}

fn unhex(v: &Value, name: &str) -> anyhow::Result<Vec<u8>> {
    tcp_types::hex::decode(v.as_str().with_context(|| format!("{name}: hex expected"))?).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}
