//! What a node of a bridged chain runs beside consensus (docs/bridge.md): the follower, which
//! reads the contract's inbox at the confirmation depth and hands it to the node (a validator
//! checks every block's entries against it), and the relayer, which submits checkpoints — a
//! finalized header, its φ and the proof of the bridge status — whenever the chain has moved
//! far enough past the contract's latest.

use crate::calldata;
use crate::plasma::{self, IPlasmaRoot};
use crate::rootchain::{RootChain, SentTx, confirmed_inbox};
use crate::BridgeError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tcp_node::client::RpcClient;
use tcp_state::AccountKey;
use tcp_state::bridge::InboxEntry;
use tcp_types::hex;

/// Most entries the follower holds ahead of the chain (as many as the node does).
pub const MAX_PENDING: usize = 1024;

/// The contract's inbox as seen at the confirmation depth, beyond what the chain processed.
#[derive(Debug, Default)]
pub struct Follower {
    next_block: u64,
    pending: BTreeMap<u64, InboxEntry>,
}

impl Follower {
    pub fn new(from_block: u64) -> Follower {
        Follower { next_block: from_block, pending: BTreeMap::new() }
    }

    /// Read what became confirmed since the last call (a bounded range at a time) and return
    /// the entries the chain has yet to process (`processed` onward, consecutive, bounded).
    pub fn poll(&mut self, root: &mut dyn RootChain, contract: [u8; 20], depth: u64, processed: u64) -> Result<Vec<InboxEntry>, BridgeError> {
        // Stop reading while the chain is far behind: what is held is what it needs next.
        if self.pending.len() < MAX_PENDING {
            let (entries, next) = confirmed_inbox(root, contract, depth, self.next_block)?;
            for entry in entries {
                self.pending.insert(entry.id, entry);
            }
            self.next_block = next;
        }
        self.pending.retain(|id, _| *id >= processed);
        let mut out = Vec::new();
        for (expected, (id, entry)) in (processed..).zip(&self.pending) {
            if *id != expected || out.len() >= MAX_PENDING {
                break;
            }
            out.push(*entry);
        }
        Ok(out)
    }
}

fn tcp_error(what: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Chain(format!("{what}: {e}"))
}

fn hex_field(v: &Value, what: &str) -> Result<Vec<u8>, BridgeError> {
    hex::decode(v.as_str().ok_or_else(|| tcp_error(what, "missing"))?).map_err(|e| tcp_error(what, e))
}

/// The proof JSON of the `bridge` RPC as the contract takes it: the value and the siblings.
pub fn proof_parts(proof: &Value) -> Result<(Vec<u8>, Vec<[u8; 32]>), BridgeError> {
    let value = match &proof["value"] {
        Value::Null => Vec::new(),
        v => hex_field(v, "proof value")?,
    };
    let siblings = proof["siblings"]
        .as_array()
        .ok_or_else(|| tcp_error("proof", "no siblings"))?
        .iter()
        .map(|s| hex_field(s, "sibling").and_then(|b| b.try_into().map_err(|_| tcp_error("sibling", "not 32 bytes"))))
        .collect::<Result<Vec<[u8; 32]>, _>>()?;
    Ok((value, siblings))
}

/// A checkpoint ready to relay: the newest finalized height, its header and φ, and the proof
/// of the bridge status at it.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub height: u64,
    pub header: Vec<u8>,
    pub round: u32,
    pub signature: calldata::G1Bytes,
    pub status: Vec<u8>,
    pub siblings: Vec<[u8; 32]>,
}

impl Checkpoint {
    pub fn calldata(&self) -> Vec<u8> {
        plasma::submit_checkpoint(&self.header, self.round, &self.signature, &self.status, &self.siblings)
    }
}

/// The newest checkpoint the TCP node at `tcp` can give.
pub fn fetch_checkpoint(tcp: &mut RpcClient) -> Result<Checkpoint, BridgeError> {
    let bridge = tcp.call("bridge", json!([])).map_err(|e| tcp_error("the node's bridge", e))?;
    let height = bridge["height"].as_u64().ok_or_else(|| tcp_error("bridge", "no height"))?;
    let (status, siblings) = proof_parts(&bridge["status_proof"])?;
    let header = tcp.call("header", json!([height])).map_err(|e| tcp_error("header", e))?;
    let encoding = hex_field(&header["encoding"], "header encoding")?;
    let finality = &header["finality"];
    let round = finality["round"].as_u64().and_then(|r| u32::try_from(r).ok()).ok_or_else(|| tcp_error("header", format!("no finality signature for height {height} yet")))?;
    let signature = calldata::g1_from_compressed(&hex_field(&finality["signature"], "finality signature")?)?;
    Ok(Checkpoint { height, header: encoding, round, signature, status, siblings })
}

/// A `uint` view of the contract.
pub fn view_u64<C: alloy_sol_types::SolCall>(root: &mut dyn RootChain, contract: [u8; 20], call: C) -> Result<u64, BridgeError> {
    let out = root.call([0; 20], contract, 0, &call.abi_encode()).map_err(|e| BridgeError::Chain(e.to_string()))?;
    out.get(24..32).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(|| BridgeError::Chain("a view returned no word".into()))
}

/// Relay the newest checkpoint if the chain is at least `every` blocks past the contract's
/// latest: what was sent, or `None` when there was nothing to relay.
pub fn relay_checkpoint(tcp: &mut RpcClient, root: &mut dyn RootChain, key: &AccountKey, contract: [u8; 20], every: u64) -> Result<Option<(u64, SentTx)>, BridgeError> {
    let latest = view_u64(root, contract, IPlasmaRoot::latestHeightCall {})?;
    let status = tcp.call("status", json!([])).map_err(|e| tcp_error("status", e))?;
    let height = status["height"].as_u64().unwrap_or(0);
    if height < latest.saturating_add(every.max(1)) {
        return Ok(None);
    }
    let checkpoint = fetch_checkpoint(tcp)?;
    if checkpoint.height <= latest {
        return Ok(None);
    }
    let sent = root.send(key, contract, 0, &checkpoint.calldata()).map_err(|e| BridgeError::Chain(format!("checkpoint {}: {e}", checkpoint.height)))?;
    Ok(Some((checkpoint.height, sent)))
}
