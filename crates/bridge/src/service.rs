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
/// How long before an exit is due a challenge is still worth sending: three blocks of
/// Ethereum's 12 s for the commitment and the reveal to land.
pub const CHALLENGE_MARGIN_SECS: u64 = 36;

/// The contract's inbox as seen at the confirmation depth, beyond what the chain processed,
/// each entry checked against the running hash its log carries, chained from the hash the
/// chain's own state holds: an endpoint that skips, reorders or forges an entry is caught, and
/// everything is read again from the start.
#[derive(Debug)]
pub struct Follower {
    start_block: u64,
    next_block: u64,
    /// The next id expected and the running hash before it.
    verified: Option<(u64, [u8; 32])>,
    /// Entries read and not yet processed, with the running hash after each.
    pending: BTreeMap<u64, (InboxEntry, [u8; 32])>,
}

impl Follower {
    /// Reading from `start_block` (the contract's deployment block, or 0).
    pub fn new(start_block: u64) -> Follower {
        Follower { start_block, next_block: start_block, verified: None, pending: BTreeMap::new() }
    }

    fn restart(&mut self) {
        self.verified = None;
        self.pending.clear();
        self.next_block = self.start_block;
    }

    /// Read what became confirmed since the last call (a bounded range at a time) and return
    /// the entries the chain has yet to process (`processed` onward, consecutive, bounded);
    /// `processed_hash` is the inbox hash the chain's state holds after `processed` entries.
    pub fn poll(&mut self, root: &mut dyn RootChain, contract: [u8; 20], depth: u64, processed: u64, processed_hash: [u8; 32]) -> Result<Vec<InboxEntry>, BridgeError> {
        // What was read up to `processed` must end in the hash consensus settled there; if
        // not, it was invented (hashes and all): read everything again.
        if processed > 0 && self.pending.get(&(processed - 1)).is_some_and(|(_, hash)| *hash != processed_hash) {
            self.restart();
        }
        self.pending.retain(|id, _| *id >= processed);
        // Chain from what consensus settled whenever that is ahead of what was read.
        if self.verified.is_none_or(|(next, _)| next < processed) {
            self.verified = Some((processed, processed_hash));
            self.pending.clear();
        }
        if self.pending.len() < MAX_PENDING {
            let (events, next) = confirmed_inbox(root, contract, depth, self.next_block)?;
            self.next_block = next;
            for event in events {
                let (expected, hash) = self.verified.expect("set above");
                if event.entry.id < expected {
                    continue;
                }
                if event.entry.id != expected || event.entry.chain(&hash) != event.chain_hash {
                    // A gap, or an entry that does not chain (what was read before may itself
                    // have been invented): read everything again.
                    self.restart();
                    return Err(BridgeError::Chain(format!(
                        "inbox entry {} does not chain from entry {expected} at root block {}: reading again from block {}",
                        event.entry.id, event.block, self.start_block
                    )));
                }
                if self.pending.len() >= MAX_PENDING {
                    // Full: the rest is read again once the chain caught up.
                    self.next_block = event.block;
                    break;
                }
                self.verified = Some((expected + 1, event.chain_hash));
                self.pending.insert(event.entry.id, (event.entry, event.chain_hash));
            }
        }
        Ok(self.pending.values().take(MAX_PENDING).map(|(entry, _)| *entry).collect())
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
    // The commitment and the reveal each need a block of their own before the exit is due.
    if kind != plasma::EXIT_ACCOUNT || status != 1 || root.timestamp()?.saturating_add(CHALLENGE_MARGIN_SECS) >= exitable_at {
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

/// Most account exits a watcher follows at once (about 50 bytes each; each was bonded).
pub const MAX_WATCHED: usize = 1 << 20;
/// Exits read per round, and how many of the newest are read again each round (a short
/// root-chain reorganisation can put another exit under a recent id).
const NEW_EXITS_PER_ROUND: u64 = 256;
const REREAD_NEWEST: u64 = 16;

/// The watcher: reads every exit the contract holds by id (`exits(id)`: owner, kind, spends at
/// its checkpoint, due time — no log can be left out), and each round asks the node, in
/// batches, for the spends of every watched account; an exit whose account spent since its
/// checkpoint is challenged. Honest exits cost a batched query a round, so no number of them
/// crowds a cheating one out.
#[derive(Debug, Default)]
pub struct Watcher {
    /// The next exit id to read (`None`: start at the contract's first unsettled one).
    next_id: Option<u64>,
    /// exit id → (owner, spends at its checkpoint, due time).
    watched: BTreeMap<u64, (tcp_state::Address, u64, u64)>,
}

impl Watcher {
    pub fn new() -> Watcher {
        Watcher::default()
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// One round: what was challenged (or found not challengeable) this time, and the
    /// challenges that failed (each tried again next round).
    pub fn poll(&mut self, tcp: &mut RpcClient, root: &mut dyn RootChain, key: &AccountKey, contract: [u8; 20]) -> Result<(Vec<(u64, Challenge)>, Vec<(u64, BridgeError)>), BridgeError> {
        let count = view_u64(root, contract, IPlasmaRoot::exitCountCall {})?;
        let first = match self.next_id {
            Some(next) => next.min(count.saturating_sub(REREAD_NEWEST)),
            None => view_u64(root, contract, IPlasmaRoot::nextToFinalizeCall {})?,
        };
        let mut id = first;
        while id < count && id < first.saturating_add(NEW_EXITS_PER_ROUND) {
            if self.watched.len() >= MAX_WATCHED && !self.watched.contains_key(&id) {
                break;
            }
            match read_exit(root, contract, id)? {
                Some(exit) => {
                    self.watched.insert(id, exit);
                }
                None => {
                    self.watched.remove(&id);
                }
            }
            id += 1;
        }
        self.next_id = Some(self.next_id.unwrap_or(0).max(id));
        let now = root.timestamp()?;
        self.watched.retain(|_, (_, _, due)| now.saturating_add(CHALLENGE_MARGIN_SECS) < *due);
        let mut owners: Vec<tcp_state::Address> = self.watched.values().map(|(o, _, _)| *o).collect();
        owners.sort();
        owners.dedup();
        let mut spends_now = std::collections::HashMap::new();
        for chunk in owners.chunks(64) {
            let names: Vec<String> = chunk.iter().map(|a| a.to_string()).collect();
            let bridge = tcp.call("bridge", json!([{"accounts": names}])).map_err(|e| tcp_error("the node's bridge", e))?;
            for (owner, account) in chunk.iter().zip(bridge["accounts"].as_array().into_iter().flatten()) {
                spends_now.insert(*owner, account["spends"].as_u64().unwrap_or(0));
            }
        }
        let disproved: Vec<u64> = self.watched.iter().filter(|(_, (o, spends, _))| spends_now.get(o).is_some_and(|now| now > spends)).map(|(id, _)| *id).collect();
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for id in disproved {
            match challenge_exit(tcp, root, key, contract, id) {
                Ok(outcome) => {
                    if matches!(outcome, Challenge::Sent { .. } | Challenge::NotChallengeable) {
                        self.watched.remove(&id);
                    }
                    done.push((id, outcome));
                }
                // One that fails does not hold up the others.
                Err(e) => failed.push((id, e)),
            }
        }
        Ok((done, failed))
    }
}

/// An account exit under way (owner, spends at its checkpoint, due time); `None` for any other.
fn read_exit(root: &mut dyn RootChain, contract: [u8; 20], id: u64) -> Result<Option<(tcp_state::Address, u64, u64)>, BridgeError> {
    let call = IPlasmaRoot::exitsCall { id: alloy_sol_types::private::U256::from(id) };
    let raw = root.call([0; 20], contract, 0, &alloy_sol_types::SolCall::abi_encode(&call)).map_err(|e| BridgeError::Chain(format!("exit {id}: {e}")))?;
    let word = |i: usize| raw.get(i * 32..(i + 1) * 32).ok_or_else(|| BridgeError::Chain("exits() answer too short".into()));
    let (kind, status) = (word(0)?[31], word(1)?[31]);
    if kind != plasma::EXIT_ACCOUNT || status != 1 {
        return Ok(None);
    }
    let owner = tcp_state::Address(word(2)?[12..].try_into().expect("20 bytes"));
    let due = u64::from_be_bytes(word(4)?[24..].try_into().expect("8 bytes"));
    let spends = u64::from_be_bytes(word(6)?[24..].try_into().expect("8 bytes"));
    Ok(Some((owner, spends, due)))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::evm::{ChainLog, EmbeddedChain};
    use crate::rootchain::CallError;

    /// A root chain whose endpoint drops the first inbox log it would return, once.
    struct Lossy {
        chain: EmbeddedChain,
        dropped: bool,
    }

    impl RootChain for Lossy {
        fn chain_id(&mut self) -> Result<u64, BridgeError> {
            Ok(EmbeddedChain::CHAIN_ID)
        }
        fn block_number(&mut self) -> Result<u64, BridgeError> {
            Ok(self.chain.block_number())
        }
        fn timestamp(&mut self) -> Result<u64, BridgeError> {
            Ok(self.chain.timestamp())
        }
        fn logs(&mut self, contract: [u8; 20], from: u64, to: u64) -> Result<Vec<ChainLog>, BridgeError> {
            let mut logs = RootChain::logs(&mut self.chain, contract, from, to)?;
            if !self.dropped && !logs.is_empty() {
                self.dropped = true;
                logs.remove(0);
            }
            Ok(logs)
        }
        fn call(&mut self, from: [u8; 20], to: [u8; 20], value: u128, data: &[u8]) -> Result<Vec<u8>, CallError> {
            RootChain::call(&mut self.chain, from, to, value, data)
        }
        fn balance(&mut self, account: [u8; 20]) -> Result<u128, BridgeError> {
            RootChain::balance(&mut self.chain, account)
        }
        fn send(&mut self, key: &AccountKey, to: [u8; 20], value: u128, data: &[u8]) -> Result<SentTx, CallError> {
            RootChain::send(&mut self.chain, key, to, value, data)
        }
    }

    /// An endpoint that leaves an entry out is caught by the running hash, and the follower
    /// reads the range again; entries the chain processed are not handed over again, and the
    /// chain's own hash is where checking starts.
    #[test]
    fn the_follower_catches_a_missing_entry_and_reads_again() {
        let key = {
            let mut k = [0u8; 96];
            // SAFETY: a 96-byte output and blst's static generator.
            unsafe { blst::blst_p2_affine_compress(k.as_mut_ptr(), blst::blst_p2_affine_generator()) };
            calldata::g2_from_compressed(&k).unwrap()
        };
        let params = plasma::BridgeParams { challenge_period: 100, freeze_period: 1_000, exit_bond: 10, min_deposit: 5, confirmation_depth: 0 };
        let mut chain = EmbeddedChain::new();
        let contract = chain.deploy(plasma::plasma_root_creation(&crate::plasma_root().bytecode, "tcp-test", &key, &params)).unwrap();
        let user = AccountKey::from_bytes(&[3; 32]).unwrap();
        chain.fund(user.address().0, 10u128.pow(18));
        for amount in [100, 200, 300] {
            RootChain::send(&mut chain, &user, contract, amount, &plasma::deposit(&user.address())).unwrap();
        }
        let mut root = Lossy { chain, dropped: false };
        let mut follower = Follower::new(0);
        let err = follower.poll(&mut root, contract, 0, 0, [0; 32]).unwrap_err();
        assert!(err.to_string().contains("does not chain"), "{err}");
        let entries = follower.poll(&mut root, contract, 0, 0, [0; 32]).unwrap();
        assert_eq!(entries.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![100, 200, 300]);
        // Once the chain processed the first, only the rest; chained from the chain's hash.
        let first_hash = entries[0].chain(&[0; 32]);
        let rest = follower.poll(&mut root, contract, 0, 1, first_hash).unwrap();
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 2]);
        // Consensus settles a hash that what was read does not end in (it was invented): the
        // follower drops it all and reads again, chaining from consensus's hash.
        assert!(follower.poll(&mut root, contract, 0, 2, [9; 32]).is_err(), "entries read from another history are not kept");
        let second_hash = entries[1].chain(&first_hash);
        let last = follower.poll(&mut root, contract, 0, 2, second_hash).unwrap();
        assert_eq!(last.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
        // A follower starting fresh from a wrong hash of the chain's state trusts nothing.
        let mut fresh = Follower::new(0);
        assert!(fresh.poll(&mut root, contract, 0, 1, [7; 32]).is_err());
    }
}
