//! What a node of a bridged chain runs beside consensus (docs/bridge.md): the follower, which
//! reads the contract's inbox at the confirmation depth and hands it to the node (a validator
//! checks every block's entries against it), and the relayer, which submits checkpoints — a
//! finalized header, its φ and the proof of the bridge status — whenever the chain has moved
//! far enough past the contract's latest.

use crate::calldata;
use crate::plasma::{self, IPlasmaRoot};
use crate::rootchain::{CallError, RootChain, SentTx, confirmed_inbox};
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

/// The contract must hold a checkpoint at `height` (what proofs of the node's `bridge` answer
/// of that height are against; `status_proof` is that answer's): relay it if the contract's
/// latest is older. Whether it was relayed.
pub fn ensure_checkpoint(tcp: &mut RpcClient, root: &mut dyn RootChain, key: &AccountKey, contract: [u8; 20], height: u64, status_proof: &Value) -> Result<bool, BridgeError> {
    let latest = view_u64(root, contract, IPlasmaRoot::latestHeightCall {})?;
    if latest == height {
        return Ok(false);
    }
    if latest > height {
        return Err(BridgeError::Chain(format!("the contract's latest checkpoint ({latest}) is newer than the node's finalized height ({height}): ask a node that is caught up")));
    }
    let header = tcp.call("header", json!([height])).map_err(|e| tcp_error("header", e))?;
    let encoding = hex_field(&header["encoding"], "header encoding")?;
    let round = header["finality"]["round"].as_u64().and_then(|r| u32::try_from(r).ok()).ok_or_else(|| tcp_error("header", format!("no finality signature for height {height}")))?;
    let signature = calldata::g1_from_compressed(&hex_field(&header["finality"]["signature"], "finality signature")?)?;
    let (status, siblings) = proof_parts(status_proof)?;
    let checkpoint = Checkpoint { height, header: encoding, round, signature, status, siblings };
    root.send(key, contract, 0, &checkpoint.calldata()).map_err(|e| BridgeError::Chain(format!("relaying checkpoint {height}: {e}")))?;
    Ok(true)
}

/// What [`challenge_exit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Committed and revealed: the exit is cancelled.
    Sent { owner: String, height: u64, block: u64 },
    /// The account has not spent since the exit's checkpoint: the exit stands.
    NotDisproved { spends_then: u64, spends_now: u64 },
    /// Not an account exit under way (a withdrawal exit, settled, challenged, or past due).
    NotChallengeable,
}

/// Challenge account exit `exit_id` if the node's newest finalized state disproves it (the
/// account spent since the exit's checkpoint): that state's checkpoint relayed if needed, then
/// the commitment and, in a later block, the reveal.
pub fn challenge_exit(tcp: &mut RpcClient, root: &mut dyn RootChain, key: &AccountKey, contract: [u8; 20], exit_id: u64) -> Result<Challenge, BridgeError> {
    let call = IPlasmaRoot::exitsCall { id: alloy_sol_types::private::U256::from(exit_id) };
    let raw = root.call([0; 20], contract, 0, &alloy_sol_types::SolCall::abi_encode(&call)).map_err(|e| BridgeError::Chain(format!("exit {exit_id}: {e}")))?;
    let word = |i: usize| raw.get(i * 32..(i + 1) * 32).ok_or_else(|| BridgeError::Chain("exits() answer too short".into()));
    let (kind, status) = (word(0)?[31], word(1)?[31]);
    let owner = tcp_state::Address(word(2)?[12..].try_into().expect("20 bytes"));
    let spends_then = u64::from_be_bytes(word(6)?[24..].try_into().expect("8 bytes"));
    let exitable_at = u64::from_be_bytes(word(4)?[24..].try_into().expect("8 bytes"));
    if kind != plasma::EXIT_ACCOUNT || status != 1 || root.timestamp()? + 1 >= exitable_at {
        return Ok(Challenge::NotChallengeable);
    }
    let bridge = tcp.call("bridge", json!([{"accounts": [owner.to_string()]}])).map_err(|e| tcp_error("the node's bridge", e))?;
    let height = bridge["height"].as_u64().ok_or_else(|| tcp_error("bridge", "no height"))?;
    let account = &bridge["accounts"][0];
    let spends_now = account["spends"].as_u64().unwrap_or(0);
    if spends_now <= spends_then {
        return Ok(Challenge::NotDisproved { spends_then, spends_now });
    }
    ensure_checkpoint(tcp, root, key, contract, height, &bridge["status_proof"])?;
    let (leaf, siblings) = proof_parts(&account["proof"])?;
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| BridgeError::Chain(format!("the OS RNG: {e}")))?;
    let commitment = plasma::challenge_commitment(exit_id, key.address().0, height, &leaf, salt);
    let refused = |what: &str, e: CallError| BridgeError::Chain(format!("{what} the challenge of exit {exit_id}: {e}"));
    // Each transaction is mined in a block of its own: the reveal comes after the commitment.
    root.send(key, contract, 0, &plasma::commit_challenge(commitment)).map_err(|e| refused("committing", e))?;
    let sent = root.send(key, contract, 0, &plasma::challenge_account_exit(exit_id, salt, height, &leaf, &siblings)).map_err(|e| refused("revealing", e))?;
    Ok(Challenge::Sent { owner: owner.to_string(), height, block: sent.block })
}

/// A watcher's round: challenge every account exit under way among ids `from..` that the node's
/// state disproves (at most `max` looked at); the next id to look at.
pub fn watch_exits(tcp: &mut RpcClient, root: &mut dyn RootChain, key: &AccountKey, contract: [u8; 20], from: u64, max: u64) -> Result<(u64, Vec<(u64, Challenge)>), BridgeError> {
    let count = view_u64(root, contract, IPlasmaRoot::exitCountCall {})?;
    let settled = view_u64(root, contract, IPlasmaRoot::nextToFinalizeCall {})?;
    let mut next = from.max(settled);
    let mut done = Vec::new();
    while next < count && done.len() < max as usize {
        match challenge_exit(tcp, root, key, contract, next)? {
            Challenge::NotChallengeable => {}
            outcome => done.push((next, outcome)),
        }
        next += 1;
    }
    // Exits under way stay watched: start over from the first unsettled one next time.
    Ok((settled, done))
}
