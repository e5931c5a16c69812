//! A node's part in the bridge (docs/bridge.md), on a thread beside the node: follow the root
//! chain's inbox at the confirmation depth and hand it to the node (a validator checks every
//! block's entries against it, and proposes them), and relay checkpoints when configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tcp_bridge::jsonrpc::JsonRpcRootChain;
use tcp_bridge::rootchain::RootChain;
use tcp_bridge::service::{Challenge, Follower, relay_checkpoint, watch_exits};
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

/// Start the thread, if the chain is bridged and the node configured for it.
pub fn spawn(home: &std::path::Path, config: &NodeConfig, spec: Option<BridgeSpec>, handle: NodeHandle, stop: Arc<AtomicBool>) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    let (Some(bridge), Some(node_config)) = (spec, config.bridge.clone()) else {
        if spec.is_some() && config.role == tcp_node::genesis::Role::Validator {
            tracing::warn!(node = %config.name, "the chain is bridged but this validator has no `bridge` section: it will refuse every block that carries root-chain inbox entries");
        }
        return Ok(None);
    };
    let relayer = match (&node_config.relayer_key, node_config.relay_every) {
        (Some(name), every) if every > 0 => Some(KeyStore::open(home)?.load(name).map_err(|e| anyhow::anyhow!("bridge.relayer_key {name:?}: {e}"))?),
        _ => None,
    };
    let (name, rpc) = (config.name.clone(), format!("http://{}", config.rpc_listen));
    let thread = std::thread::Builder::new().name("bridge".into()).spawn(move || run(name, rpc, bridge, node_config, relayer, handle, stop))?;
    Ok(Some(thread))
}

fn run(name: String, rpc: String, bridge: BridgeSpec, config: BridgeNodeConfig, relayer: Option<tcp_state::AccountKey>, handle: NodeHandle, stop: Arc<AtomicBool>) {
    let mut warnings = Warnings(Default::default());
    let mut root = match JsonRpcRootChain::connect(&config.root_rpc) {
        Ok(root) => root,
        Err(e) => {
            tracing::error!(node = %name, error = %e, "bridge: bad root_rpc; not following the root chain");
            return;
        }
    };
    // The root chain must be the one genesis names.
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match root.chain_id() {
            Ok(id) if id == bridge.root_chain_id => break,
            Ok(id) => {
                tracing::error!(node = %name, root_rpc = %config.root_rpc, "bridge: the root chain is chain {id}, genesis names {}; not following it", bridge.root_chain_id);
                return;
            }
            Err(e) => warnings.warn(&name, "cannot reach the root chain", &e),
        }
        std::thread::sleep(POLL);
    }
    tracing::info!(node = %name, root_rpc = %config.root_rpc, relay_every = config.relay_every, "bridge: following the root chain");
    let mut follower = Follower::new(0);
    let mut tcp = RpcClient::new(&rpc).ok();
    let mut watch_from = 0;
    while !stop.load(Ordering::SeqCst) {
        let processed = handle.committed_state.borrow().state.bridge_status().map_or(0, |s| s.inbox_processed);
        match follower.poll(&mut root, bridge.contract, bridge.confirmation_depth, processed) {
            Ok(entries) if !entries.is_empty() => {
                if handle.requests.blocking_send(Request::RootInbox { entries }).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => warnings.warn(&name, "reading the root chain's inbox", &e),
        }
        if let (Some(key), Some(tcp)) = (&relayer, tcp.as_mut()) {
            match relay_checkpoint(tcp, &mut root, key, bridge.contract, config.relay_every) {
                Ok(Some((height, sent))) => tracing::info!(node = %name, height, root_block = sent.block, gas = sent.gas_used, "bridge: relayed a checkpoint"),
                Ok(None) => {}
                Err(e) => warnings.warn(&name, "relaying a checkpoint", &e),
            }
            // The watcher: every account exit a newer state disproves is challenged (the
            // relayer's account takes the reward).
            match watch_exits(tcp, &mut root, key, bridge.contract, watch_from, 16) {
                Ok((next, done)) => {
                    watch_from = next;
                    for (exit, outcome) in done {
                        if let Challenge::Sent { owner, height, block } = outcome {
                            tracing::warn!(node = %name, exit, owner = %owner, height, root_block = block, "bridge: challenged an exit its account's later spends disprove");
                        }
                    }
                }
                Err(e) => warnings.warn(&name, "watching exits", &e),
            }
        }
        std::thread::sleep(POLL);
    }
}
