//! A node's part in the bridge (docs/bridge.md), on threads beside the node: the follower reads
//! the root chain's inbox at the confirmation depth and hands it to the node (a validator checks
//! every proposed block's entries against it, and proposes them); when configured, the relayer
//! submits checkpoints and the watcher challenges exits the node's state disproves. Each on a
//! thread of its own, so a root-chain transaction waiting to be mined never holds the follower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tcp_bridge::jsonrpc::JsonRpcRootChain;
use tcp_bridge::plasma::IPlasmaRoot;
use tcp_bridge::rootchain::RootChain;
use tcp_bridge::service::{Challenge, Follower, Watcher, relay_checkpoint, view_u64};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_node::genesis::{BridgeNodeConfig, BridgeSpec, NodeConfig};
use tcp_node::node::{NodeHandle, Request};

/// How often the root chain is read.
const POLL: Duration = Duration::from_millis(500);
/// At most one warning of a kind this often (a root chain that is down would flood the log).
const WARN_EVERY: Duration = Duration::from_secs(30);

struct Warnings(std::collections::HashMap<&'static str, Instant>);

impl Warnings {
    fn warn(&mut self, node: &str, kind: &'static str, error: &dyn std::fmt::Display) {
        if self.0.get(kind).is_none_or(|at| at.elapsed() > WARN_EVERY) {
            tracing::warn!(node, error = %error, "bridge: {kind}");
            self.0.insert(kind, Instant::now());
        }
    }
}

/// Start the threads, if the chain is bridged and the node configured for it.
pub fn spawn(home: &std::path::Path, config: &NodeConfig, spec: Option<BridgeSpec>, handle: NodeHandle, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let (Some(bridge), Some(node_config)) = (spec, config.bridge.clone()) else {
        if spec.is_some() && config.role == tcp_node::genesis::Role::Validator {
            tracing::warn!(node = %config.name, "the chain is bridged but this validator has no `bridge` section: it votes against every proposal that carries root-chain inbox entries");
        }
        return Ok(Vec::new());
    };
    let relayer = match (&node_config.relayer_key, node_config.relay_every) {
        (Some(name), every) if every > 0 => Some(KeyStore::open(home)?.load(name).map_err(|e| anyhow::anyhow!("bridge.relayer_key {name:?}: {e}"))?),
        _ => None,
    };
    let name = config.name.clone();
    let mut threads = Vec::new();
    let (n, c, s) = (name.clone(), node_config.clone(), stop.clone());
    threads.push(std::thread::Builder::new().name("bridge-follower".into()).spawn(move || follow(n, bridge, c, handle, s))?);
    if let Some(key) = relayer {
        let rpc = format!("http://{}", config.rpc_listen);
        threads.push(std::thread::Builder::new().name("bridge-relayer".into()).spawn(move || relay_and_watch(name, rpc, bridge, node_config, key, stop))?);
    }
    Ok(threads)
}

/// Connect to the root chain and check it is the one genesis names, with the contract genesis
/// describes (its parameters as deployed); `None` (logged) when it is not, or on stop.
fn connect(name: &str, bridge: &BridgeSpec, config: &BridgeNodeConfig, stop: &AtomicBool) -> Option<JsonRpcRootChain> {
    let mut warnings = Warnings(Default::default());
    let mut root = match JsonRpcRootChain::connect(&config.root_rpc) {
        Ok(root) => root,
        Err(e) => {
            tracing::error!(node = %name, error = %e, "bridge: bad root_rpc; not following the root chain");
            return None;
        }
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match check_contract(&mut root, bridge) {
            Ok(Ok(())) => return Some(root),
            Ok(Err(mismatch)) => {
                tracing::error!(node = %name, root_rpc = %config.root_rpc, "bridge: {mismatch}; not following this root chain");
                return None;
            }
            Err(e) => warnings.warn(name, "cannot reach the root chain", &e),
        }
        std::thread::sleep(POLL);
    }
}

/// The root chain's id and the deployed contract's parameters against genesis.
fn check_contract(root: &mut JsonRpcRootChain, bridge: &BridgeSpec) -> Result<Result<(), String>, tcp_bridge::BridgeError> {
    let id = root.chain_id()?;
    if id != bridge.root_chain_id {
        return Ok(Err(format!("the root chain is chain {id}, genesis names {}", bridge.root_chain_id)));
    }
    let c = bridge.contract;
    let deployed = [
        ("challenge period", view_u64(root, c, IPlasmaRoot::challengePeriodCall {})?, bridge.challenge_period_secs),
        ("freeze period", view_u64(root, c, IPlasmaRoot::freezePeriodCall {})?, bridge.freeze_period_secs),
        ("confirmation depth", view_u64(root, c, IPlasmaRoot::confirmationDepthCall {})?, bridge.confirmation_depth),
    ];
    for (what, there, genesis) in deployed {
        if there != genesis {
            return Ok(Err(format!("the contract's {what} is {there}, genesis says {genesis}")));
        }
    }
    Ok(Ok(()))
}

fn follow(name: String, bridge: BridgeSpec, config: BridgeNodeConfig, handle: NodeHandle, stop: Arc<AtomicBool>) {
    let Some(mut root) = connect(&name, &bridge, &config, &stop) else { return };
    tracing::info!(node = %name, root_rpc = %config.root_rpc, "bridge: following the root chain's inbox");
    let mut warnings = Warnings(Default::default());
    let mut follower = Follower::new(bridge.start_block);
    while !stop.load(Ordering::SeqCst) {
        let (processed, processed_hash) = handle.committed_state.borrow().state.bridge_status().map_or((0, [0; 32]), |s| (s.inbox_processed, s.inbox_hash));
        match follower.poll(&mut root, bridge.contract, bridge.confirmation_depth, processed, processed_hash) {
            Ok(entries) if !entries.is_empty() => {
                if handle.requests.blocking_send(Request::RootInbox { entries }).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => warnings.warn(&name, "reading the root chain's inbox", &e),
        }
        std::thread::sleep(POLL);
    }
}

fn relay_and_watch(name: String, rpc: String, bridge: BridgeSpec, config: BridgeNodeConfig, key: tcp_state::AccountKey, stop: Arc<AtomicBool>) {
    let Some(mut root) = connect(&name, &bridge, &config, &stop) else { return };
    let Ok(mut tcp) = RpcClient::new(&rpc) else { return };
    tracing::info!(node = %name, relay_every = config.relay_every, "bridge: relaying checkpoints and watching exits");
    let mut warnings = Warnings(Default::default());
    let mut watcher = Watcher::new();
    while !stop.load(Ordering::SeqCst) {
        match relay_checkpoint(&mut tcp, &mut root, &key, bridge.contract, config.relay_every) {
            Ok(Some((height, sent))) => tracing::info!(node = %name, height, root_block = sent.block, gas = sent.gas_used, "bridge: relayed a checkpoint"),
            Ok(None) => {}
            Err(e) => warnings.warn(&name, "relaying a checkpoint", &e),
        }
        // Every account exit a newer state disproves is challenged (the relayer's account
        // takes the reward).
        match watcher.poll(&mut tcp, &mut root, &key, bridge.contract) {
            Ok((done, failed)) => {
                for (exit, outcome) in done {
                    if let Challenge::Sent { owner, height, block } = outcome {
                        tracing::warn!(node = %name, exit, owner = %owner, height, root_block = block, "bridge: challenged an exit its account's later spends disprove");
                    }
                }
                for (exit, error) in failed {
                    tracing::error!(node = %name, exit, error = %error, "bridge: could not challenge a disproved exit (trying again)");
                }
            }
            Err(e) => warnings.warn(&name, "watching exits", &e),
        }
        std::thread::sleep(POLL);
    }
}
