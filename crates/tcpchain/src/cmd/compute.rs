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
use tcp_state::{AccountKey, Action};

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

/// Start the service on a thread of its own; it stops when `stop` is set.
pub fn spawn(home: &Path, config: &NodeConfig, spec: &ChainSpec, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let compute = config.compute.clone().context("the compute role needs a `compute` section")?;
    let key = KeyStore::open(home)?.load(&compute.operator_key).with_context(|| format!("loading the operator key {:?}", compute.operator_key))?;
    let bond: u128 = compute.bond.parse().context("compute.bond")?;
    let host = start_enclave(home, &compute)?;
    let mut service = ComputeService {
        name: config.name.clone(),
        rpc: format!("http://{}", config.rpc_listen),
        chain_id: spec.chain_id.clone(),
        gas_price: spec.params().min_gas_price,
        key,
        compute,
        bond,
        host,
        registered: None,
    };
    std::thread::Builder::new()
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
                // Back off while failing, up to 8 polls.
                let pause = POLL * failures.clamp(1, 8);
                let mut waited = Duration::ZERO;
                while waited < pause && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                }
            }
        })
        .context("starting the compute service thread")
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

fn hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(bytes)
}
