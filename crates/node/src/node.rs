//! The node's event loop: one task owns the consensus core, the beacon ledger, the account
//! state, the mempool, the WAL and the store, and reacts to network messages, timers and RPC
//! submissions. Everything that can run elsewhere does: decoding and transaction signature
//! recovery happen in the p2p receive tasks and the RPC handlers, so the loop only counts,
//! decides and persists.
//!
//! Crash safety (DESIGN §5.1): an input is admitted (checked), written to the WAL and synced,
//! then applied; a block body reaches the store before any WAL entry names it; a decided
//! height is committed to the store in one transaction before the WAL is pruned. After
//! `kill -9` the node starts the next uncommitted height and replays its WAL, which re-signs
//! exactly the votes it signed before (ed25519 and the core are deterministic), so it never
//! signs a conflicting vote.

use crate::NodeError;
use crate::block::{Block, Header, block_id, claimed_height, tx_root};
use crate::genesis::{ChainSpec, NodeConfig, Role};
use crate::keystore::NodeSecrets;
use crate::mempool::{Mempool, MempoolError, MempoolLimits};
use crate::p2p::{Oracle, P2pReceiver, P2pSender};
use crate::reshare::{BeaconKeys, Outgoing};
use crate::store::{CommitRecord, FileWal, Store, TxRecord};
use crate::wire::{MAX_GOSSIP_TRANSACTIONS, Wire};
use commonware_codec::Encode as _;
use commonware_cryptography::Signer as _;
use commonware_p2p::{Blocker as _, Receiver as _, Recipients, Sender as _};
use commonware_runtime::telemetry::metrics::{Counter, Gauge, MetricsExt as _};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tcp_beacon::ledger::{LedgerEvent, MAX_LOGS_PER_BLOCK};
use tcp_beacon::{BeaconExtension, Ledger, SignedLog};
use tcp_consensus::{
    Admission, CommitCertificate, Consensus, ConsensusConfig, ConsensusMessage, Effect, HeightParams, Input, SignedProposal, SignedVote,
    ValidatorSet, ValueId, Verified, VoteType, WriteAheadLog,
};
use tcp_crypto::Ed25519PublicKey;
use tcp_state::{AccountState, Address, BlockOutcome, VerifiedTransaction};
use tcp_types::{Digest, Height, Round, ValidatorIndex};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Status gossip and catch-up cadence.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// How long precommits gather before their partials are verified as one batch.
const FLUSH_DELAY: Duration = Duration::from_millis(5);
/// Transaction gossip batches leave at least this often.
const TX_GOSSIP_INTERVAL: Duration = Duration::from_millis(50);
/// Commits sent to a lagging peer per status it sends.
const SYNC_BATCH: u64 = 32;
/// Commits held for heights beyond the one in progress.
const MAX_PENDING_COMMITS: u64 = 64;
/// Authenticated proposals waiting for their body or their height.
const MAX_PENDING_PROPOSALS: usize = 64;
/// Proposals held per (height, round): the proposer's, and one conflicting (the evidence).
const MAX_PROPOSALS_PER_ROUND: usize = 2;
/// Uncommitted block bodies held in memory, in bytes (every one named by a signed proposal,
/// our own build or a certificate), as a multiple of the chain's block size limit.
const MAX_BODY_BLOCKS: usize = 16;
/// Commits held for heights beyond the one in progress, in bytes of their blocks, as a
/// multiple of the chain's block size limit.
const MAX_PENDING_COMMIT_BLOCKS: usize = 16;
/// Events queued for the loop (network, RPC); senders wait when it is full.
const EVENT_QUEUE: usize = 4096;
/// A block's timestamp may lead our clock by at most this much.
const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the RPC layer reads without asking the loop.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NodeStatus {
    pub chain_id: String,
    pub node: String,
    pub role: String,
    /// The last committed height and its block id.
    pub height: u64,
    pub block_id: String,
    pub block_time_ms: u64,
    /// The height and round consensus is working on.
    pub consensus_height: u64,
    pub consensus_round: u32,
    /// Catching up: the highest height a peer reported.
    pub syncing: bool,
    pub sync_target: u64,
    pub peers: usize,
    pub mempool_size: usize,
    pub validator_index: Option<u32>,
    pub beacon_active: bool,
    /// The epoch of the height in progress, its first height and its validator count.
    pub epoch: u64,
    pub epoch_start: u64,
    pub validators: usize,
    /// The beacon's group public key (hex), once the bootstrap DKG completed: unchanged by
    /// reshares.
    pub group_key: Option<String>,
    /// Beacon ceremonies: reshares completed, epochs extended after a missed reshare.
    pub reshares: u64,
    pub epochs_extended: u64,
}

/// A committed block as subscribers see it.
#[derive(Clone, Debug)]
pub struct CommittedHead {
    pub height: Height,
    pub id: Digest,
    pub timestamp_ms: u64,
    pub transactions: Vec<Digest>,
}

/// Requests the RPC layer sends into the loop.
pub enum Request {
    /// A transaction whose signature was already checked.
    Submit { tx: VerifiedTransaction, reply: oneshot::Sender<Result<Digest, MempoolError>> },
    /// The next nonce of an address counting its pending transactions.
    PendingNonce { address: Address, reply: oneshot::Sender<u64> },
}

/// What the RPC layer holds to talk to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub spec: Arc<ChainSpec>,
    pub store: Store,
    pub requests: mpsc::Sender<Request>,
    pub status: watch::Receiver<NodeStatus>,
    pub heads: broadcast::Sender<CommittedHead>,
    /// The state as of the last committed height (a cheap snapshot: the tree is shared).
    pub committed_state: watch::Receiver<Arc<CommittedState>>,
    pub dropped: Arc<std::sync::Mutex<DroppedTransactions>>,
}

/// Transactions the mempool accepted but dropped later, with why (the `receipt` RPC answers
/// with the reason instead of leaving a client waiting). Bounded: the oldest are forgotten.
#[derive(Default)]
pub struct DroppedTransactions {
    order: VecDeque<Digest>,
    reasons: HashMap<Digest, String>,
}

/// Dropped transactions remembered.
const MAX_DROPPED: usize = 4096;

impl DroppedTransactions {
    fn record(&mut self, hash: Digest, reason: String) {
        if self.reasons.insert(hash, reason).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > MAX_DROPPED {
            if let Some(old) = self.order.pop_front() {
                self.reasons.remove(&old);
            }
        }
    }

    pub fn reason(&self, hash: &Digest) -> Option<String> {
        self.reasons.get(hash).cloned()
    }
}

/// The world state after a committed height; its root is that block's `state_root`.
pub struct CommittedState {
    pub height: Height,
    pub state: AccountState,
}

/// What the loop reacts to besides its timers.
pub enum Event {
    Net(Ed25519PublicKey, Wire),
    Transactions(Vec<VerifiedTransaction>),
    Request(Request),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Consensus(Height, Round, u8),
    FlushPrecommits,
    StartHeight(Height),
    Gossip,
    TxGossip,
}

struct Metrics {
    height: Gauge,
    round: Gauge,
    committed_transactions: Counter,
    mempool: Gauge,
    rejected_inputs: Counter,
    sync_target: Gauge,
    wal_replayed: Counter,
}

struct Body {
    height: Height,
    /// The round of the proposal (or certificate) that named it: eviction order.
    round: Round,
    bytes: Arc<Vec<u8>>,
    /// The block applied to our state, once `valid(v)` (or building it) ran: the commit
    /// reuses it instead of applying the block a second time.
    executed: Option<Arc<Executed>>,
}

/// A block's transactions applied (Υ for each, in order) to the state of its parent.
struct Executed {
    transactions: Vec<VerifiedTransaction>,
    receipts: Vec<tcp_state::Receipt>,
    /// The state after the block, its root computed.
    state: AccountState,
    state_root: Digest,
    /// Accounts and other entries the block wrote (to persist): exactly the tree's changed
    /// leaves.
    touched: Vec<Address>,
    entries: Vec<([u8; 32], Option<Vec<u8>>)>,
}

impl Executed {
    /// Π then Ω: apply `transactions` to `parent` (Υ each, fees to the proposer's operator),
    /// then finalize the block. With `skip_failing`, a transaction that does not apply is left
    /// out (building); otherwise it fails the block.
    fn run(
        parent: &AccountState,
        candidates: Vec<VerifiedTransaction>,
        env: tcp_state::BlockEnv,
        outcome: &BlockOutcome,
        skip_failing: bool,
    ) -> Result<Executed, String> {
        debug_assert!(parent.pending_writes().next().is_none(), "a parent state has its root computed");
        let mut state = parent.clone();
        let (transactions, receipts) = state.apply_block(candidates, &env, outcome, skip_failing).map_err(|e| e.to_string())?;
        // Exactly what Π and Ω wrote (the parent's overlay is empty: its root was computed).
        let touched: Vec<Address> = state.pending_writes().map(|(a, _)| *a).collect();
        let entries = state.pending_entries().map(|(k, v)| (*k, v.clone())).collect();
        let state_root = Digest(state.state_root());
        Ok(Executed { transactions, receipts, state, state_root, touched, entries })
    }
}

pub struct Node {
    spec: Arc<ChainSpec>,
    name: String,
    me: Ed25519PublicKey,
    role: Role,
    core: Consensus,
    wal: FileWal,
    store: Store,
    state: AccountState,
    ledger: Ledger,
    /// The committed state the ledger's set schedule reads its plans from.
    schedule_state: Arc<RwLock<AccountState>>,
    beacon_keys: BeaconKeys,
    oracle: Oracle,
    config: NodeConfig,
    /// The validator registry the p2p peer set was last built from.
    tracked_registry: Vec<Address>,
    dropped: Arc<std::sync::Mutex<DroppedTransactions>>,
    validators: Arc<ValidatorSet>,
    extension: Arc<BeaconExtension>,
    previous_extension: Arc<BeaconExtension>,
    pending_logs: Vec<SignedLog>,
    last_id: Digest,
    last_timestamp_ms: u64,
    bodies: HashMap<ValueId, Body>,
    pending_proposals: VecDeque<SignedProposal>,
    /// One body per peer that arrived before anything signed named it (the proposal normally
    /// comes first); taken when an authenticated proposal names it.
    unsolicited: HashMap<Ed25519PublicKey, (ValueId, Height, Arc<Vec<u8>>)>,
    /// A height the core decided whose body this node no longer holds: the commit a peer
    /// sends (its block must hash to the value) completes it.
    awaiting_body: Option<(Height, ValueId, CommitCertificate)>,
    /// When each peer was last served blocks for its `Status` (at most once per gossip
    /// interval each, so a 13-byte message cannot make us read and send blocks at will).
    last_served: HashMap<Ed25519PublicKey, Instant>,
    pending_commits: BTreeMap<Height, (CommitCertificate, Vec<u8>)>,
    inbox: Vec<SignedVote>,
    flush_scheduled: bool,
    awaiting_sigma: Option<(Height, Round)>,
    /// Set while a decided height waits for its successor's start (the block interval).
    waiting_start: Option<Height>,
    height_started: Instant,
    mempool: Mempool,
    gossip_queue: Vec<Vec<u8>>,
    peer_heights: HashMap<Ed25519PublicKey, Height>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    rng: ChaCha20Rng,
    sender: P2pSender,
    tx_sender: P2pSender,
    status: watch::Sender<NodeStatus>,
    heads: broadcast::Sender<CommittedHead>,
    committed_state: watch::Sender<Arc<CommittedState>>,
    metrics: Metrics,
    last_sync_log: Instant,
}

/// Start a node in the commonware tokio runtime `context`: open the store, start p2p, replay
/// the WAL, and return the handle for the RPC layer and the loop to run.
pub async fn start(
    context: commonware_runtime::tokio::Context,
    home: &std::path::Path,
    config: &NodeConfig,
    spec: ChainSpec,
    secrets: NodeSecrets,
) -> Result<(Node, NodeHandle, mpsc::Receiver<Event>, mpsc::Sender<Event>), NodeError> {
    let spec = Arc::new(spec);
    let data = home.join("data");
    let store = Store::open(&data, &spec)?;
    let (wal, cut) = FileWal::open(&data.join("consensus.wal"))?;
    if cut > 0 {
        tracing::warn!(bytes = cut, "cut a torn tail off the consensus WAL (a crash mid-write)");
    }
    let params = spec.params().clone();
    let mut state = store.account_state(spec.state_config())?;
    let me = secrets.consensus_key.public_key();
    let is_validator = spec.validators.iter().any(|v| v.key == me);
    let role = config.role;
    if role == Role::Validator && !is_validator {
        tracing::info!("not a genesis validator: this node validates from the first epoch whose set holds its key (after `tx bond`)");
    }

    // --- p2p: validators are the primary peers (dialed); followers are let in.
    let crate::p2p::P2p { oracle, consensus: (sender, receiver), transactions: (tx_sender, tx_receiver) } =
        crate::p2p::connect(&context, config, &spec, &secrets.consensus_key, &bonded_peers(&state))?;

    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let bad_messages = context.counter("p2p_bad_messages", "undecodable or invalid messages; their senders are blocked");
    spawn_receiver(receiver, events_tx.clone(), oracle.clone(), spec.clone(), false, bad_messages.clone());
    let oracle_for_node = oracle.clone();
    spawn_receiver(tx_receiver, events_tx.clone(), oracle.clone(), spec.clone(), true, bad_messages);

    // --- beacon ledger: replay the committed blocks' beacon content.
    let committed = store.height()?;
    let members: Vec<tcp_beacon::ledger::Member> =
        spec.validators.iter().map(|v| tcp_beacon::ledger::Member { key: v.key.clone(), coin_base: v.coin_base }).collect();
    // Later sets come from the plans Ω wrote into the state (kept by plan height, so a replay
    // from genesis reads each plan as it was made).
    let schedule_state = Arc::new(RwLock::new(state.clone()));
    let plans = schedule_state.clone();
    let schedule: tcp_beacon::ledger::SetSchedule = Arc::new(move |epoch, height| {
        if epoch == 0 {
            return members.clone();
        }
        let state = plans.read().unwrap_or_else(|e| e.into_inner());
        state
            .planned_set(height.0)
            .unwrap_or_default()
            .into_iter()
            .map(|m| tcp_beacon::ledger::Member { key: m.key, coin_base: m.coin_base })
            .collect()
    });
    let (mut ledger, _) = Ledger::genesis(spec.chain_id.clone(), params.beacon(), schedule);
    let mut rng = ChaCha20Rng::from_seed(random_seed());
    let mut last_id = spec.hash;
    let mut last_timestamp_ms = spec.genesis.genesis_time_ms;
    for h in 1..=committed.0 {
        let bytes = store.block(Height(h))?.ok_or_else(|| NodeError::Corrupt(format!("block {h} is missing")))?;
        let block = Block::decode(&bytes, crate::block::MAX_BLOCK_BYTES).map_err(|e| NodeError::Corrupt(format!("block {h}: {e}")))?;
        ledger.validate_block(Height(h), &block.beacon_data()).map_err(|e| NodeError::Corrupt(format!("block {h}: {e}")))?;
        if let Some(sigma) = block.header.previous_signature {
            ledger.offer_signature(Height(h - 1), sigma);
        }
        ledger.apply_block(Height(h), &block.beacon_data(), &mut rng);
        last_id = block_id(&bytes);
        last_timestamp_ms = block.header.timestamp_ms;
    }
    if committed.0 == 0 && state.state_root() != spec.genesis_state().state_root() {
        return Err(NodeError::Corrupt("the stored state is not the genesis state".into()));
    }
    if committed.0 > 0 {
        let bytes = store.block(committed)?.ok_or_else(|| NodeError::Corrupt(format!("block {} is missing", committed.0)))?;
        let header = Block::decode(&bytes, crate::block::MAX_BLOCK_BYTES)
            .map_err(|e| NodeError::Corrupt(format!("block {}: {e}", committed.0)))?
            .header;
        let root = Digest(state.state_root());
        if root != header.state_root {
            return Err(NodeError::Corrupt(format!(
                "the stored accounts have state root {root}, block {} committed {}",
                committed.0, header.state_root
            )));
        }
    }
    match store.sigma(committed)? {
        Some(bytes) => {
            let sigma = tcp_beacon::BeaconSignature::from_bytes(&bytes)
                .map_err(|e| NodeError::Corrupt(format!("σ of height {} in the store: {e}", committed.0)))?;
            if !ledger.offer_signature(committed, sigma) {
                return Err(NodeError::Corrupt(format!("σ of height {} in the store does not verify", committed.0)));
            }
        }
        // Stored before σ_h was: recover it from the partials of the stored certificate (a
        // quorum of precommits, each carrying one), or nobody could build the next height.
        None if committed.0 > 0 && ledger.beacon_active(committed) => {
            let certificate = decode_certificate(&store, committed)?;
            let extension = verification_extension(&ledger, committed);
            let partials: Vec<(ValidatorIndex, &[u8])> =
                certificate.precommits.iter().map(|p| (p.vote.validator, &p.vote.extension[..])).collect();
            extension.verify_batch(&mut rng, &partials);
            match extension.recover() {
                Some(sigma) if ledger.offer_signature(committed, sigma) => {
                    store.put_sigma(committed, &sigma.to_bytes())?;
                    tracing::info!(height = committed.0, "recovered σ of the last committed height from its certificate");
                }
                _ => tracing::warn!(height = committed.0, "σ of the last committed height is unknown: waiting for late precommits"),
            }
        }
        None => {}
    }

    let (status, status_rx) = watch::channel(NodeStatus::default());
    let (heads, _) = broadcast::channel(1024);
    let (requests_tx, mut requests_rx) = mpsc::channel::<Request>(EVENT_QUEUE);
    {
        let events = events_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = requests_rx.recv().await {
                if events.send(Event::Request(r)).await.is_err() {
                    break;
                }
            }
        });
    }
    let metrics = Metrics {
        height: context.gauge("chain_height", "last committed height"),
        round: context.gauge("consensus_round", "round of the height in progress"),
        committed_transactions: context.counter("committed_transactions", "transactions committed"),
        mempool: context.gauge("mempool_transactions", "transactions in the mempool"),
        rejected_inputs: context.counter("consensus_rejected_inputs", "consensus inputs refused (bad signature, stale, ...)"),
        sync_target: context.gauge("sync_target_height", "highest height a peer reported"),
        wal_replayed: context.counter("wal_replayed_inputs", "inputs replayed from the WAL at start"),
    };
    let mut config_consensus = ConsensusConfig::new(spec.chain_id.clone());
    config_consensus.timeouts = params.timeouts();
    let key = (role == Role::Validator).then(|| secrets.consensus_key.clone());
    let mempool_limits = MempoolLimits::default();
    let pending_logs = spec.bootstrap_logs.clone();
    let dropped = Arc::new(std::sync::Mutex::new(DroppedTransactions::default()));
    let (committed_state, committed_state_rx) = watch::channel(Arc::new(CommittedState { height: committed, state: state.clone() }));
    let handle = NodeHandle {
        spec: spec.clone(),
        store: store.clone(),
        requests: requests_tx,
        status: status_rx,
        heads: heads.clone(),
        committed_state: committed_state_rx,
        dropped: dropped.clone(),
    };
    let validators = Arc::new(ledger.validator_set());
    let tracked_registry = state.registry();
    let mut beacon_keys = BeaconKeys::load(home, secrets.consensus_key.clone(), secrets.beacon_share).map_err(NodeError::Config)?;
    match beacon_keys.finish_interrupted(&ledger, &mut rng) {
        Ok(true) => tracing::info!("finalized our share of a reshare that completed while the node was down"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "could not finalize the share of a reshare that completed while the node was down"),
    }
    let node = Node {
        spec: spec.clone(),
        name: config.name.clone(),
        core: Consensus::new(config_consensus, key.clone()),
        me,
        role,
        wal,
        store,
        state,
        ledger,
        schedule_state,
        beacon_keys,
        oracle: oracle_for_node,
        config: config.clone(),
        tracked_registry,
        dropped,
        validators,
        extension: Arc::new(BeaconExtension::inactive(Height(0))),
        previous_extension: Arc::new(BeaconExtension::inactive(Height(0))),
        pending_logs,
        last_id,
        last_timestamp_ms,
        bodies: HashMap::new(),
        pending_proposals: VecDeque::new(),
        unsolicited: HashMap::new(),
        awaiting_body: None,
        last_served: HashMap::new(),
        pending_commits: BTreeMap::new(),
        inbox: Vec::new(),
        flush_scheduled: false,
        awaiting_sigma: None,
        waiting_start: None,
        height_started: Instant::now(),
        mempool: Mempool::new(mempool_limits),
        gossip_queue: Vec::new(),
        peer_heights: HashMap::new(),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        rng,
        sender,
        tx_sender,
        status,
        heads,
        committed_state,
        metrics,
        last_sync_log: Instant::now(),
    };
    Ok((node, handle, events_rx, events_tx))
}

/// Checks a certificate's signatures, membership and quorum only: what a peer's commit must
/// pass before its block is held. Its partials are checked when the core admits it.
struct SignaturesOnly;

impl tcp_consensus::PrecommitExtension for SignaturesOnly {
    fn extend(&self, _: Height, _: Round, _: &ValueId) -> bytes::Bytes {
        bytes::Bytes::new()
    }
    fn verify(&self, _: Height, _: Round, _: ValidatorIndex, _: &ValueId, _: &[u8]) -> bool {
        true
    }
}

/// The precommit extension of a past `height` for checking partials only (no local share):
/// the stored certificate's partials at boot, a block's `last_commit`.
fn verification_extension(ledger: &Ledger, height: Height) -> Arc<BeaconExtension> {
    match ledger.verifier(height) {
        Some(verifier) => {
            Arc::new(BeaconExtension::active(height, verifier.clone(), ledger.participants(height), None, ledger.message(height)))
        }
        None => Arc::new(BeaconExtension::inactive(height)),
    }
}

fn decode_certificate(store: &Store, height: Height) -> Result<CommitCertificate, NodeError> {
    let bytes = store.certificate(height)?.ok_or_else(|| NodeError::Corrupt(format!("certificate {} is missing", height.0)))?;
    <CommitCertificate as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&bytes[..]))
        .map_err(|e| NodeError::Corrupt(format!("certificate {}: {e}", height.0)))
}

/// Registered validators with their p2p addresses (the state holds them well-formed).
fn bonded_peers(state: &AccountState) -> Vec<(Ed25519PublicKey, std::net::SocketAddr)> {
    state.validators().into_iter().filter_map(|v| Some((v.consensus_key, v.p2p.parse().ok()?))).collect()
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's RNG works");
    seed
}

/// Decode (and for transactions, verify) what a peer sends; block peers that send garbage.
fn spawn_receiver(
    mut receiver: P2pReceiver,
    events: mpsc::Sender<Event>,
    mut oracle: Oracle,
    spec: Arc<ChainSpec>,
    transactions: bool,
    bad_messages: Counter,
) {
    tokio::spawn(async move {
        while let Ok((peer, message)) = receiver.recv().await {
            let bytes: Vec<u8> = message.as_ref().to_vec();
            let wire = match Wire::decode(&bytes) {
                Ok(w) if transactions == matches!(w, Wire::Transactions(_)) => w,
                Ok(_) | Err(_) => {
                    tracing::warn!(peer = %peer, "undecodable p2p message: blocking the peer");
                    bad_messages.inc();
                    let _ = oracle.block(peer);
                    continue;
                }
            };
            let event = match wire {
                Wire::Transactions(txs) => {
                    let mut verified = Vec::with_capacity(txs.len());
                    let mut bad = false;
                    for bytes in txs {
                        match tcp_state::SignedTransaction::decode(&bytes)
                            .map_err(|e| e.to_string())
                            .and_then(|t| t.verify(&spec.chain_id).map_err(|e| e.to_string()))
                        {
                            Ok(tx) => verified.push(tx),
                            Err(_) => bad = true,
                        }
                    }
                    if bad {
                        tracing::warn!(peer = %peer, "peer gossiped an invalid transaction: blocking it");
                        bad_messages.inc();
                        let _ = oracle.block(peer);
                    }
                    Event::Transactions(verified)
                }
                other => Event::Net(peer, other),
            };
            if events.send(event).await.is_err() {
                break;
            }
        }
    });
}

impl Node {
    /// Start the next uncommitted height, replay the WAL, then run until `shutdown` fires.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let next = self.store.height()?.next();
        self.boot(next)?;
        self.schedule(GOSSIP_INTERVAL, Timer::Gossip);
        self.schedule(TX_GOSSIP_INTERVAL, Timer::TxGossip);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => return Ok(()),
                },
                _ = sleep => self.fire_timers()?,
                _ = shutdown.changed() => {
                    tracing::info!(node = %self.name, "shutting down");
                    return Ok(());
                }
            }
        }
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((Instant::now() + after, self.timer_seq, timer)));
    }

    fn fire_timers(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, _, timer)) = self.timers.pop().expect("peeked");
            match timer {
                Timer::Consensus(height, round, kind) => {
                    let kind = match kind {
                        0 => tcp_consensus::TimeoutKind::Propose,
                        1 => tcp_consensus::TimeoutKind::Prevote,
                        _ => tcp_consensus::TimeoutKind::Precommit,
                    };
                    self.feed(Input::Timeout { height, round, kind })?;
                }
                Timer::FlushPrecommits => self.flush_precommits()?,
                Timer::StartHeight(h) => {
                    if self.waiting_start == Some(h) {
                        self.start_next_height(h)?;
                    }
                }
                Timer::Gossip => {
                    self.gossip();
                    self.schedule(GOSSIP_INTERVAL, Timer::Gossip);
                }
                Timer::TxGossip => {
                    self.flush_tx_gossip();
                    self.schedule(TX_GOSSIP_INTERVAL, Timer::TxGossip);
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------ boot

    fn boot(&mut self, next: Height) -> Result<(), NodeError> {
        for (id, bytes) in self.store.pending_blocks()? {
            if let Some(height) = claimed_height(&bytes).filter(|h| *h >= next) {
                self.bodies.insert(id, Body { height, round: Round::ZERO, bytes: Arc::new(bytes), executed: None });
            }
        }
        let params = self.height_params(next);
        if next.0 > 1 {
            // The last commit of the blocks proposed at `next` is checked against it.
            self.previous_extension = verification_extension(&self.ledger, Height(next.0 - 1));
        }
        let effects = self.core.start_height(next, params);
        self.height_started = Instant::now();
        let mut queue = VecDeque::new();
        self.carry_out(effects, &mut queue, true)?;
        let entries = self.wal.entries()?;
        let replayed = entries.len();
        // Replayed precommits bypass `on_vote`: their partials join the verified set here, or a
        // restart mid-height could leave this node unable to recover σ_h when it proposes next.
        if self.extension.is_active() {
            let partials: Vec<(ValidatorIndex, &[u8])> = entries
                .iter()
                .filter_map(|input| match input {
                    Input::Vote(v) if v.vote.vote_type == VoteType::Precommit && v.vote.height == next && !v.vote.extension.is_empty() => {
                        Some((v.vote.validator, &v.vote.extension[..]))
                    }
                    _ => None,
                })
                .collect();
            if !partials.is_empty() {
                let extension = self.extension.clone();
                extension.verify_batch(&mut self.rng, &partials);
            }
        }
        for input in entries {
            if let Ok(effects) = self.core.apply(Verified::from_own_log(input)) {
                self.metrics.wal_replayed.inc();
                self.carry_out(effects, &mut queue, true)?;
            }
        }
        tracing::info!(node = %self.name, height = next.0, replayed, role = ?self.role, "started");
        if let Some((height, round)) = self.core.awaiting_value() {
            self.build_value(height, round, &mut queue)?;
        }
        self.drain(queue)?;
        self.publish_status();
        Ok(())
    }

    /// Validator set, proposer selection and precommit extension of `height`, from the ledger.
    fn height_params(&mut self, height: Height) -> HeightParams {
        let keys = &self.beacon_keys;
        let (params, extension) = self.ledger.height_params(height, |round| keys.share(round));
        self.previous_extension = std::mem::replace(&mut self.extension, extension);
        self.validators = params.validators.clone();
        params
    }

    // ------------------------------------------------------------------------------ events

    fn on_event(&mut self, event: Event) -> Result<(), NodeError> {
        match event {
            Event::Net(peer, wire) => self.on_wire(peer, wire),
            Event::Transactions(txs) => {
                for tx in txs {
                    let _ = self.mempool.insert(tx, &self.state, self.current_height().0);
                }
                self.metrics.mempool.set(self.mempool.len() as i64);
                Ok(())
            }
            Event::Request(Request::Submit { tx, reply }) => {
                let bytes = tx.signed().encode();
                let hash = tx.hash();
                let result = match self.mempool.insert(tx, &self.state, self.current_height().0) {
                    Ok(_) => {
                        self.gossip_queue.push(bytes);
                        if self.gossip_queue.len() >= MAX_GOSSIP_TRANSACTIONS {
                            self.flush_tx_gossip();
                        }
                        Ok(hash)
                    }
                    Err(e) => Err(e),
                };
                self.metrics.mempool.set(self.mempool.len() as i64);
                let _ = reply.send(result);
                Ok(())
            }
            Event::Request(Request::PendingNonce { address, reply }) => {
                let _ = reply.send(self.mempool.next_nonce(&address, &self.state));
                Ok(())
            }
        }
    }

    fn on_wire(&mut self, peer: Ed25519PublicKey, wire: Wire) -> Result<(), NodeError> {
        match wire {
            Wire::Consensus(ConsensusMessage::Vote(vote)) => self.on_vote(vote),
            Wire::Consensus(ConsensusMessage::Proposal(p)) => self.on_proposal(p),
            Wire::Block(body) => self.on_block(peer, body),
            Wire::Status { height, round } => self.on_status(peer, height, round),
            Wire::Commit { certificate, block } => self.on_commit(peer, certificate, block),
            Wire::Transactions(_) => Ok(()), // handled in the receive task
            Wire::Dkg(message) => {
                match self.beacon_keys.on_message(&self.ledger, &peer, message, &mut self.pending_logs) {
                    Ok(out) => self.send_dkg(out),
                    Err(e) => {
                        tracing::warn!(node = %self.name, peer = %peer, error = %e, "bad beacon reshare message: blocking the peer");
                        let _ = self.oracle.block(peer);
                    }
                }
                Ok(())
            }
        }
    }

    fn send_dkg(&mut self, out: Vec<Outgoing>) {
        for message in out {
            match message {
                Outgoing::To(peer, m) if peer == self.me => {
                    // Our own dealing to ourselves as a player.
                    let me = self.me.clone();
                    match self.beacon_keys.on_message(&self.ledger, &me, m, &mut self.pending_logs) {
                        Ok(replies) => self.send_dkg(replies),
                        Err(e) => tracing::error!(node = %self.name, error = %e, "our own reshare message was refused"),
                    }
                }
                Outgoing::To(peer, m) => self.send_to(&peer, &Wire::Dkg(m)),
                Outgoing::All(m) => self.send_all(&Wire::Dkg(m), false),
            }
        }
    }

    /// Join a reshare that started, and do its periodic work (resend, close, gossip the log).
    fn run_reshare(&mut self) {
        let mut out = match self.beacon_keys.join(&self.ledger) {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(node = %self.name, error = %e, "cannot take part in the beacon reshare");
                Vec::new()
            }
        };
        out.extend(self.beacon_keys.tick(&self.ledger, &mut self.pending_logs));
        self.send_dkg(out);
    }

    fn on_ledger_event(&mut self, event: LedgerEvent) {
        match event {
            LedgerEvent::CeremonyStarted { round, reshare } => {
                tracing::info!(node = %self.name, round, reshare, "beacon ceremony started");
            }
            LedgerEvent::CeremonyCompleted { round, reshare, dealers_excluded } => {
                tracing::info!(node = %self.name, round, reshare, dealers_excluded, "beacon ceremony completed");
                if reshare {
                    match self.beacon_keys.on_completed(&self.ledger, round, &mut self.rng) {
                        Ok(true) => tracing::info!(node = %self.name, round, "our share of the reshared beacon key is stored"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(node = %self.name, round, error = %e, "could not finalize our reshared beacon share"),
                    }
                }
            }
            LedgerEvent::CeremonyFailed { round, reshare, reason } => {
                tracing::error!(node = %self.name, round, reshare, reason, "beacon ceremony failed");
            }
            LedgerEvent::EpochStarted { epoch, start, reshared } => {
                let validators = self.ledger.validators().len();
                tracing::info!(node = %self.name, epoch, start = start.0, reshared, validators, "epoch started");
            }
            LedgerEvent::EpochExtended { epoch, end } => {
                tracing::warn!(node = %self.name, epoch, end = end.0, "the reshare missed its deadline: epoch extended, the set carries on");
            }
        }
    }

    /// Track the registered validators as p2p peers when the registry changed (a candidate
    /// must be reachable before the reshare that activates it).
    fn track_registered(&mut self, height: Height) {
        use commonware_p2p::AddressableManager as _;
        let registry = self.state.registry();
        if registry == self.tracked_registry {
            return;
        }
        let bonded = bonded_peers(&self.state);
        match crate::p2p::peer_set(&self.config, &self.spec, &self.me, &bonded) {
            Ok(tracked) => {
                let _ = self.oracle.track(height.0, tracked);
                self.tracked_registry = registry;
            }
            Err(e) => tracing::warn!(node = %self.name, error = %e, "cannot track the registered validators"),
        }
    }

    /// The height consensus works on (or the one waiting to start).
    fn current_height(&self) -> Height {
        match self.waiting_start {
            Some(h) => h.next(),
            None => self.core.height().unwrap_or(Height(1)),
        }
    }

    /// A proposal from the network: authenticated (member, the round's proposer, signature)
    /// before it may hold a place in the queue or make us look at a body; at most
    /// [`MAX_PROPOSALS_PER_ROUND`] per (height, round); when the queue is full the proposal of
    /// the furthest (height, round) makes room for a nearer one.
    fn on_proposal(&mut self, proposal: SignedProposal) -> Result<(), NodeError> {
        if self.pending_proposals.contains(&proposal) || self.core.authenticate(&ConsensusMessage::Proposal(proposal.clone())).is_err() {
            self.metrics.rejected_inputs.inc();
            return Ok(());
        }
        let slot = (proposal.proposal.height, proposal.proposal.round);
        let at_slot = self.pending_proposals.iter().filter(|p| (p.proposal.height, p.proposal.round) == slot).count();
        if at_slot >= MAX_PROPOSALS_PER_ROUND {
            return Ok(());
        }
        if self.pending_proposals.len() >= MAX_PENDING_PROPOSALS {
            let furthest = self
                .pending_proposals
                .iter()
                .enumerate()
                .max_by_key(|(_, p)| (p.proposal.height, p.proposal.round))
                .map(|(i, p)| (i, (p.proposal.height, p.proposal.round)));
            match furthest {
                Some((i, far)) if far > slot => {
                    self.pending_proposals.remove(i);
                }
                _ => return Ok(()),
            }
        }
        let id = proposal.proposal.value;
        let round = proposal.proposal.round;
        self.pending_proposals.push_back(proposal);
        debug_assert!(self.pending_proposals.len() <= MAX_PENDING_PROPOSALS);
        // A body that came before its proposal.
        let early = self.unsolicited.iter().find(|(_, (v, _, _))| *v == id).map(|(peer, _)| peer.clone());
        if let Some(peer) = early
            && let Some((_, height, bytes)) = self.unsolicited.remove(&peer)
        {
            self.bodies.entry(id).or_insert(Body { height, round, bytes, executed: None });
            self.bound_bodies();
        }
        self.try_pending_proposals()
    }

    /// A block body from the network: kept only if a signed proposal names it (otherwise one
    /// per peer waits for its proposal), so a peer can neither evict a proposal's body nor
    /// make us store or execute what nobody proposed.
    fn on_block(&mut self, peer: Ed25519PublicKey, body: Vec<u8>) -> Result<(), NodeError> {
        let Some(height) = claimed_height(&body) else { return Ok(()) };
        let current = self.current_height();
        if height < current || height.0 > current.0 + 2 || body.len() > self.spec.params().max_block_bytes {
            return Ok(());
        }
        let id = block_id(&body);
        if self.bodies.contains_key(&id) {
            return Ok(());
        }
        let Some(round) = self.pending_proposals.iter().find(|p| p.proposal.value == id).map(|p| p.proposal.round) else {
            self.unsolicited.insert(peer, (id, height, Arc::new(body)));
            return Ok(());
        };
        self.bodies.insert(id, Body { height, round, bytes: Arc::new(body), executed: None });
        self.bound_bodies();
        self.try_pending_proposals()
    }

    /// Keep the bodies within [`MAX_BODY_BLOCKS`] blocks' worth of bytes. Bodies of later
    /// heights go first (furthest first), then the current height's oldest rounds; the bodies
    /// of the core's locked and valid values and of its current round are never dropped.
    fn bound_bodies(&mut self) {
        let limit = MAX_BODY_BLOCKS * self.spec.params().max_block_bytes;
        let current = self.current_height();
        let round = self.core.round().unwrap_or(Round::ZERO);
        let kept: Vec<ValueId> = [self.core.locked(), self.core.valid()].into_iter().flatten().map(|v| v.value).collect();
        while self.bodies.values().map(|b| b.bytes.len()).sum::<usize>() > limit {
            let victim = self
                .bodies
                .iter()
                .filter(|(id, b)| !kept.contains(id) && !(b.height == current && b.round == round))
                .max_by_key(|(_, b)| if b.height > current { (1, b.height.0, b.round.0) } else { (0, 0, u32::MAX - b.round.0) })
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    self.bodies.remove(&id);
                }
                None => break,
            }
        }
    }

    /// A commit a peer sent (it is ahead of us). Its certificate's signatures are checked
    /// against the set before its block is held; a peer that sends one that does not verify
    /// is blocked. One commit per height; the blocks held are bounded in bytes.
    fn on_commit(&mut self, peer: Ed25519PublicKey, certificate: CommitCertificate, block: Vec<u8>) -> Result<(), NodeError> {
        if let Some((height, value, _)) = &self.awaiting_body
            && certificate.height == *height
            && block_id(&block) == *value
        {
            let (height, value, decided) = self.awaiting_body.take().expect("checked");
            tracing::info!(node = %self.name, height = height.0, "fetched the body of a decided height from a peer");
            self.bodies.insert(value, Body { height, round: decided.round, bytes: Arc::new(block), executed: None });
            let mut queue = VecDeque::new();
            self.on_decided(height, value, decided, &mut queue, false)?;
            return self.drain(queue);
        }
        let current = self.current_height();
        if certificate.height < current
            || certificate.height.0 >= current.0 + MAX_PENDING_COMMITS
            || self.pending_commits.contains_key(&certificate.height)
        {
            return self.try_pending_commit();
        }
        let Some(set) = self.set_at(certificate.height) else { return Ok(()) };
        let signed = certificate.verify(&tcp_consensus::ConsensusDomains::new(&self.spec.chain_id), &set, &SignaturesOnly);
        if let Err(e) = signed {
            // Within the epoch in force the set is certain; a certificate of a later epoch
            // (a set we cannot know yet) is dropped and comes again when the peer resends it.
            if certificate.height <= self.ledger.epoch_end() {
                tracing::warn!(node = %self.name, peer = %peer, error = %e, "commit certificate does not verify: blocking the peer");
                let _ = self.oracle.block(peer);
            }
            return Ok(());
        }
        let limit = MAX_PENDING_COMMIT_BLOCKS * self.spec.params().max_block_bytes;
        self.pending_commits.insert(certificate.height, (certificate, block));
        while self.pending_commits.values().map(|(_, b)| b.len()).sum::<usize>() > limit {
            self.pending_commits.pop_last();
        }
        self.try_pending_commit()
    }

    fn try_pending_proposals(&mut self) -> Result<(), NodeError> {
        if self.waiting_start.is_some() {
            return Ok(());
        }
        let Some(current) = self.core.height() else { return Ok(()) };
        for input in self.ready_proposals(current)? {
            self.feed(input)?;
        }
        Ok(())
    }

    /// Proposals for `height` whose body is here, judged by `valid(v)` (valid bodies made
    /// durable first). Proposals for earlier heights are dropped; later ones wait.
    fn ready_proposals(&mut self, height: Height) -> Result<Vec<Input>, NodeError> {
        let bodies = &self.bodies;
        let mut ready = Vec::new();
        self.pending_proposals.retain(|p| {
            if p.proposal.height < height {
                return false;
            }
            if p.proposal.height == height && bodies.contains_key(&p.proposal.value) {
                ready.push(p.clone());
                return false;
            }
            true
        });
        let mut inputs = Vec::with_capacity(ready.len());
        for proposal in ready {
            let valid = self.block_valid(&proposal.proposal.value, Some(proposal.proposal.round));
            if valid {
                self.persist_body(&proposal.proposal.value)?;
            }
            inputs.push(Input::Proposal { proposal, valid });
        }
        Ok(inputs)
    }

    fn try_pending_commit(&mut self) -> Result<(), NodeError> {
        if self.waiting_start.is_some() {
            // A peer already has the next height: no need to wait out the block interval.
            if let Some(h) = self.waiting_start
                && self.pending_commits.contains_key(&h.next())
            {
                self.start_next_height(h)?;
            }
            return Ok(());
        }
        let Some(current) = self.core.height() else { return Ok(()) };
        match self.pending_commit_input(current)? {
            Some(input) => self.feed(input),
            None => Ok(()),
        }
    }

    /// The commit a peer sent for `height`, as an input: its block judged by `valid(v)` and
    /// (if valid) made durable first, like any block the WAL may name. Older commits are dropped.
    fn pending_commit_input(&mut self, height: Height) -> Result<Option<Input>, NodeError> {
        self.pending_commits.retain(|h, _| *h >= height);
        let Some((certificate, body)) = self.pending_commits.remove(&height) else { return Ok(None) };
        let id = block_id(&body);
        if id != certificate.value {
            return Ok(None);
        }
        self.bodies.insert(id, Body { height, round: certificate.round, bytes: Arc::new(body), executed: None });
        self.bound_bodies();
        let valid = self.block_valid(&id, None);
        if valid {
            self.persist_body(&id)?;
        }
        Ok(Some(Input::Commit { certificate, valid }))
    }

    fn persist_body(&mut self, id: &ValueId) -> Result<(), NodeError> {
        if let Some(body) = self.bodies.get(id) {
            self.store.put_pending(*id, body.height, &body.bytes)?;
        }
        Ok(())
    }

    fn on_status(&mut self, peer: Ed25519PublicKey, peer_height: Height, peer_round: Round) -> Result<(), NodeError> {
        self.peer_heights.insert(peer.clone(), peer_height);
        let target = self.peer_heights.values().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        self.metrics.sync_target.set(target as i64);
        for vote in self.core.catch_up(peer_height, peer_round) {
            self.send_to(&peer, &Wire::Consensus(vote));
        }
        let committed = Height(self.current_height().0 - 1);
        if peer_height.0 == 0 || peer_height > committed {
            return Ok(());
        }
        // Serving reads blocks from disk and sends megabytes: once per gossip interval per peer.
        if self.last_served.get(&peer).is_some_and(|at| at.elapsed() < GOSSIP_INTERVAL) {
            return Ok(());
        }
        self.last_served.insert(peer.clone(), Instant::now());
        self.last_served.retain(|_, at| at.elapsed() < 10 * GOSSIP_INTERVAL);
        let last = committed.0.min(peer_height.0 + SYNC_BATCH - 1);
        for h in peer_height.0..=last {
            let (Some(block), Some(cert)) = (self.store.block(Height(h))?, self.store.certificate(Height(h))?) else { break };
            let Ok(certificate) = <CommitCertificate as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&cert[..]))
            else {
                break;
            };
            self.send_to(&peer, &Wire::Commit { certificate, block });
        }
        Ok(())
    }

    fn send_to(&mut self, peer: &Ed25519PublicKey, wire: &Wire) {
        let bytes = wire.encode();
        let _ = self.sender.send(Recipients::One(peer.clone()), bytes, false);
    }

    fn send_all(&mut self, wire: &Wire, priority: bool) {
        let bytes = wire.encode();
        let _ = self.sender.send(Recipients::All, bytes, priority);
    }

    fn gossip(&mut self) {
        let height = self.current_height();
        let round = self.core.round().unwrap_or(Round::ZERO);
        self.send_all(&Wire::Status { height, round }, false);
        if self.waiting_start.is_none() {
            for message in self.core.gossip() {
                self.broadcast(message);
            }
        }
        // Progress while catching up.
        let target = self.peer_heights.values().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        let committed = height.0.saturating_sub(1);
        if target > committed + 2 && self.last_sync_log.elapsed() >= Duration::from_secs(1) {
            self.last_sync_log = Instant::now();
            tracing::info!(node = %self.name, "syncing: height {committed} / {target}");
        }
        self.publish_status();
    }

    fn flush_tx_gossip(&mut self) {
        if self.gossip_queue.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.gossip_queue);
        for chunk in batch.chunks(MAX_GOSSIP_TRANSACTIONS) {
            let bytes = Wire::Transactions(chunk.to_vec()).encode();
            let _ = self.tx_sender.send(Recipients::All, bytes, false);
        }
    }

    fn publish_status(&mut self) {
        let committed = self.current_height().0.saturating_sub(1);
        let target = self.peer_heights.values().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        let status = NodeStatus {
            chain_id: self.spec.chain_id.as_str().to_string(),
            node: self.name.clone(),
            role: format!("{:?}", self.role).to_lowercase(),
            height: committed,
            block_id: self.last_id.to_hex(),
            block_time_ms: self.last_timestamp_ms,
            consensus_height: self.core.height().map_or(0, |h| h.0),
            consensus_round: self.core.round().map_or(0, |r| r.0),
            syncing: target > committed + 2,
            sync_target: target.max(committed),
            peers: self.peer_heights.len(),
            mempool_size: self.mempool.len(),
            validator_index: self.validators.index_of(&self.me).map(|i| i.0),
            beacon_active: self.extension.is_active(),
            epoch: self.ledger.epoch().0,
            epoch_start: self.ledger.epoch().1.0,
            validators: self.ledger.validators().len(),
            group_key: self.ledger.group_key().map(|k| tcp_types::hex::encode(&tcp_beacon::signature::group_key_to_bytes(k))),
            reshares: self.ledger.stats().reshares,
            epochs_extended: self.ledger.stats().epochs_extended,
        };
        self.metrics.height.set(committed as i64);
        self.metrics.round.set(status.consensus_round as i64);
        self.metrics.mempool.set(self.mempool.len() as i64);
        let _ = self.status.send(status);
    }

    // ------------------------------------------------------------------------------ precommits

    /// Precommits of the height in progress queue for one batch check of their partials; late
    /// precommits of the height just decided still help recover its σ.
    fn on_vote(&mut self, vote: SignedVote) -> Result<(), NodeError> {
        let current = self.core.height();
        if vote.vote.vote_type == VoteType::Precommit && vote.vote.value.is_some() {
            if self.waiting_start.is_none()
                && Some(vote.vote.height) == current
                && self.extension.is_active()
                && self.inbox.len() < 4 * self.validators.len()
            {
                // Its ed25519 signature before its partial joins a batch of pairings: a copied
                // or forged precommit costs one signature check, never a pairing.
                if self.core.authenticate(&ConsensusMessage::Vote(vote.clone())).is_err() {
                    self.metrics.rejected_inputs.inc();
                    return Ok(());
                }
                self.inbox.push(vote);
                if self.inbox.len() + self.extension.verified_count() >= self.extension.threshold() {
                    return self.flush_precommits();
                }
                if !self.flush_scheduled {
                    self.flush_scheduled = true;
                    self.schedule(FLUSH_DELAY, Timer::FlushPrecommits);
                }
                return Ok(());
            }
            if current.is_some_and(|c| vote.vote.height.next() == c)
                && self.awaiting_sigma.is_some()
                && self.previous_extension.is_active()
                && self
                    .set_at(vote.vote.height)
                    .is_some_and(|set| tcp_consensus::ConsensusDomains::new(&self.spec.chain_id).verify_vote(&set, &vote))
                && self.previous_extension.offer_late_partial(vote.vote.validator, &vote.vote.extension)
            {
                self.retry_awaiting_sigma()?;
            }
        }
        self.feed(Input::Vote(vote))
    }

    fn flush_precommits(&mut self) -> Result<(), NodeError> {
        self.flush_scheduled = false;
        let inbox = std::mem::take(&mut self.inbox);
        let extension = self.extension.clone();
        let items: Vec<(ValidatorIndex, &[u8])> = inbox.iter().map(|v| (v.vote.validator, &v.vote.extension[..])).collect();
        extension.verify_batch(&mut self.rng, &items);
        for vote in inbox {
            self.feed(Input::Vote(vote))?;
        }
        Ok(())
    }

    fn retry_awaiting_sigma(&mut self) -> Result<(), NodeError> {
        let Some((height, round)) = self.awaiting_sigma else { return Ok(()) };
        if self.core.awaiting_value() != Some((height, round)) {
            self.awaiting_sigma = None;
            return Ok(());
        }
        let Some(sigma) = self.previous_extension.recover() else { return Ok(()) };
        if !self.ledger.offer_signature(Height(height.0 - 1), sigma) {
            return Ok(());
        }
        let _ = self.store.put_sigma(Height(height.0 - 1), &sigma.to_bytes());
        if let Some(message) = self.ledger.message(height) {
            self.extension.set_message(message);
        }
        self.awaiting_sigma = None;
        let mut queue = VecDeque::new();
        self.build_value(height, round, &mut queue)?;
        self.drain(queue)
    }

    // ------------------------------------------------------------------------------ the core

    fn feed(&mut self, input: Input) -> Result<(), NodeError> {
        self.drain(VecDeque::from([input]))
    }

    /// Admit (check), log (durably), then apply each input and everything it causes.
    fn drain(&mut self, mut queue: VecDeque<Input>) -> Result<(), NodeError> {
        while let Some(input) = queue.pop_front() {
            if self.waiting_start.is_some() && matches!(input, Input::Timeout { .. }) {
                continue;
            }
            let verified = match self.core.admit(input) {
                Ok(Admission::Apply(verified)) => verified,
                Ok(Admission::Buffered) => continue,
                Err(_) => {
                    self.metrics.rejected_inputs.inc();
                    continue;
                }
            };
            self.wal.append(verified.input())?;
            let Ok(effects) = self.core.apply(verified) else { continue };
            self.carry_out(effects, &mut queue, false)?;
        }
        Ok(())
    }

    fn carry_out(&mut self, effects: Vec<Effect>, queue: &mut VecDeque<Input>, replaying: bool) -> Result<(), NodeError> {
        for effect in effects {
            match effect {
                Effect::Broadcast(message) => self.broadcast(message),
                Effect::ScheduleTimeout { height, round, kind, after } => {
                    let k = match kind {
                        tcp_consensus::TimeoutKind::Propose => 0,
                        tcp_consensus::TimeoutKind::Prevote => 1,
                        tcp_consensus::TimeoutKind::Precommit => 2,
                    };
                    self.schedule(after, Timer::Consensus(height, round, k));
                }
                Effect::GetValue { height, round } => {
                    if !replaying {
                        self.build_value(height, round, queue)?;
                    }
                }
                Effect::Decided { height, value, certificate } => self.on_decided(height, value, certificate, queue, replaying)?,
                Effect::Evidence(evidence) => {
                    tracing::warn!(node = %self.name, offender = evidence.offender().0, height = evidence.height().0, "equivocation evidence");
                }
            }
        }
        Ok(())
    }

    fn broadcast(&mut self, message: ConsensusMessage) {
        // Our own precommit never comes back from the network: its partial joins the verified
        // ones here, or σ_h could lack it when exactly a quorum precommits.
        if let ConsensusMessage::Vote(v) = &message
            && v.vote.vote_type == VoteType::Precommit
            && !v.vote.extension.is_empty()
            && v.vote.height == self.extension.height()
        {
            let extension = self.extension.clone();
            extension.verify_batch(&mut self.rng, &[(v.vote.validator, &v.vote.extension[..])]);
        }
        // The signed proposal first: a peer accepts a body only once something signed names it.
        let body = match &message {
            ConsensusMessage::Proposal(p) => self.bodies.get(&p.proposal.value).map(|b| Wire::Block(b.bytes.to_vec())),
            ConsensusMessage::Vote(_) => None,
        };
        self.send_all(&Wire::Consensus(message), true);
        if let Some(body) = body {
            self.send_all(&body, true);
        }
    }

    /// Build this validator's block for (height, round): σ_{h-1} once the beacon runs (waits
    /// while it cannot be recovered yet), the bootstrap logs not yet on chain, and
    /// transactions from the mempool within the size and gas limits.
    fn build_value(&mut self, height: Height, round: Round, queue: &mut VecDeque<Input>) -> Result<(), NodeError> {
        let Some(proposer) = self.validators.index_of(&self.me) else { return Ok(()) };
        let previous = Height(height.0 - 1);
        let previous_signature = if self.ledger.beacon_active(previous) {
            match self.ledger.signature(previous) {
                Some(s) => Some(s),
                None => {
                    self.awaiting_sigma = Some((height, round));
                    return Ok(());
                }
            }
        } else {
            None
        };
        let mut logs = Vec::new();
        if let Some(transcript) = self.ledger.transcript() {
            let mut transcript = transcript.clone();
            for log in &self.pending_logs {
                if logs.len() < MAX_LOGS_PER_BLOCK && transcript.record(log.clone()).is_ok() {
                    logs.push(log.clone());
                }
            }
        }
        let params = self.spec.params();
        let header_room = 1024 + logs.iter().map(|l| tcp_beacon::dkg::encode_log(l).len() + 4).sum::<usize>();
        let last_commit = self.last_commit(height)?;
        let header_room = header_room + last_commit.as_ref().map_or(0, |c| c.encode().len());
        let selected = self.mempool.select(&self.state, height.0, params.max_block_bytes.saturating_sub(header_room), params.max_block_gas);
        let Some(reward) = self.reward_address(proposer) else { return Ok(()) };
        let outcome = self.block_outcome(height, round, proposer, last_commit.as_ref());
        let env = tcp_state::BlockEnv { height: height.0, fee_recipient: reward };
        let executed = match Executed::run(&self.state, selected, env, &outcome, true) {
            Ok(executed) => executed,
            Err(e) => return Err(NodeError::Corrupt(format!("building block {}: {e}", height.0))),
        };
        let transactions: Vec<_> = executed.transactions.iter().map(|t| t.signed().clone()).collect();
        let block = Block {
            header: Header {
                height,
                round,
                proposer,
                parent: self.last_id,
                timestamp_ms: now_ms().max(self.last_timestamp_ms + 1),
                tx_root: tx_root(&transactions),
                state_root: executed.state_root,
                previous_signature,
            },
            last_commit,
            logs,
            transactions,
        };
        let bytes = block.encode();
        let id = block_id(&bytes);
        self.bodies.insert(id, Body { height, round, bytes: Arc::new(bytes), executed: Some(Arc::new(executed)) });
        self.bound_bodies();
        // The body reaches the disk before the WAL names it.
        self.persist_body(&id)?;
        queue.push_back(Input::ProposeValue { height, round, value: id });
        Ok(())
    }

    /// The paper's `valid(v)`: decodes, is for the height in progress and the round it is
    /// proposed in (or earlier), extends our last block, has a sane timestamp and tx root,
    /// valid beacon content, and transactions that all apply in order within the gas limit.
    fn block_valid(&mut self, id: &ValueId, proposal_round: Option<Round>) -> bool {
        let Some(height) = self.core.height() else { return false };
        let Some(body) = self.bodies.get(id) else { return false };
        let bytes = body.bytes.clone();
        let params = self.spec.params().clone();
        let Ok(block) = Block::decode(&bytes, params.max_block_bytes) else { return false };
        let h = &block.header;
        if h.height != height || proposal_round.is_some_and(|r| h.round > r) || h.parent != self.last_id {
            return false;
        }
        if h.timestamp_ms <= self.last_timestamp_ms || (proposal_round.is_some() && h.timestamp_ms > now_ms() + MAX_CLOCK_DRIFT_MS) {
            return false;
        }
        if h.tx_root != tx_root(&block.transactions) {
            return false;
        }
        let data = block.beacon_data();
        if self.ledger.validate_block(height, &data).is_err() {
            return false;
        }
        if !self.last_commit_valid(height, block.last_commit.as_ref()) {
            return false;
        }
        let Some(reward) = self.reward_address(h.proposer) else { return false };
        let outcome = self.block_outcome(height, h.round, h.proposer, block.last_commit.as_ref());
        let env = tcp_state::BlockEnv { height: height.0, fee_recipient: reward };
        let state_root = h.state_root;
        // Transactions: signatures (known ones from the mempool), then Υ on a scratch state,
        // unless this very body was already executed (our own proposal, a re-proposal).
        let executed = match self.bodies.get(id).and_then(|b| b.executed.clone()) {
            Some(executed) => executed,
            None => {
                let mut verified = Vec::with_capacity(block.transactions.len());
                for tx in block.transactions {
                    let hash = tx.hash();
                    match self.mempool.get(&hash) {
                        Some(known) => verified.push(known.clone()),
                        None => match tx.verify(&self.spec.chain_id) {
                            Ok(v) => verified.push(v),
                            Err(_) => return false,
                        },
                    }
                }
                let gas: u64 = verified.iter().map(|t| tcp_state::accounts::gas_of(&t.tx().action)).sum();
                if gas > params.max_block_gas {
                    return false;
                }
                match Executed::run(&self.state, verified, env, &outcome, false) {
                    Ok(executed) => Arc::new(executed),
                    Err(_) => return false,
                }
            }
        };
        if executed.state_root != state_root {
            return false;
        }
        if let Some(sigma) = data.previous_signature {
            self.ledger.offer_signature(Height(height.0 - 1), sigma);
            if let Some(message) = self.ledger.message(height) {
                self.extension.set_message(message);
            }
        }
        if let Some(body) = self.bodies.get_mut(id) {
            body.executed = Some(executed);
        }
        true
    }

    /// The validator set of `height` (the epoch in force or the previous one), one vote each.
    fn set_at(&self, height: Height) -> Option<ValidatorSet> {
        let members = self.ledger.validators_at(height)?;
        ValidatorSet::new(members.iter().map(|m| tcp_consensus::Validator { public_key: m.key.clone(), voting_power: 1 }).collect()).ok()
    }

    /// The operator account of the height's validator `proposer` (fees go to it).
    fn reward_address(&self, proposer: ValidatorIndex) -> Option<Address> {
        let key = &self.validators.get(proposer)?.public_key;
        self.state.operator_of(key).or_else(|| self.spec.validators.iter().find(|v| &v.key == key).map(|v| v.reward_address))
    }

    /// The commit of `height - 1` this node decided on, for the block it builds.
    fn last_commit(&self, height: Height) -> Result<Option<CommitCertificate>, NodeError> {
        if height.0 <= 1 {
            return Ok(None);
        }
        let previous = Height(height.0 - 1);
        Ok(Some(decode_certificate(&self.store, previous)?))
    }

    /// A block after the first carries a commit of its parent by h-1's validator set: precommits
    /// for (h-1, parent) with valid signatures and more than two thirds of the power, each with
    /// a valid beacon partial — the signers earn efficiency credit, so a precommit whose partial
    /// was withheld or forged may not be carried. Partials this node already verified during
    /// h-1 cost nothing; the rest are checked as one batch.
    fn last_commit_valid(&mut self, height: Height, commit: Option<&CommitCertificate>) -> bool {
        let Some(commit) = commit else { return height.0 == 1 };
        if height.0 == 1 || commit.height.0 != height.0 - 1 || commit.value != self.last_id {
            return false;
        }
        let Some(set) = self.set_at(commit.height) else { return false };
        let extension = if self.previous_extension.height() == commit.height {
            self.previous_extension.clone()
        } else {
            verification_extension(&self.ledger, commit.height)
        };
        let partials: Vec<(ValidatorIndex, &[u8])> = commit.precommits.iter().map(|p| (p.vote.validator, &p.vote.extension[..])).collect();
        if extension.verify_batch(&mut self.rng, &partials).contains(&false) {
            return false;
        }
        commit.verify(&tcp_consensus::ConsensusDomains::new(&self.spec.chain_id), &set, extension.as_ref()).is_ok()
    }

    /// What Ω needs to know about a block of the height in progress, from the ledger.
    fn block_outcome(&self, height: Height, round: Round, proposer: ValidatorIndex, commit: Option<&CommitCertificate>) -> BlockOutcome {
        let members = self.ledger.validators();
        let key_of = |i: ValidatorIndex| members.get(i.as_usize()).map(|m| m.key.clone());
        let (epoch, start) = self.ledger.epoch();
        let previous_members = self.ledger.validators_at(Height(height.0.saturating_sub(1)));
        let signers = commit
            .map(|c| {
                c.precommits
                    .iter()
                    .filter_map(|p| previous_members.and_then(|m| m.get(p.vote.validator.as_usize())).map(|m| m.key.clone()))
                    .collect()
            })
            .unwrap_or_default();
        BlockOutcome {
            height: height.0,
            epoch,
            proposer: key_of(proposer),
            assigned: self.ledger.assigned_proposers(height, round).into_iter().filter_map(key_of).collect(),
            signers,
            signers_same_epoch: height > start,
            epoch_started: (start == height && epoch > 0)
                .then(|| members.iter().map(|m| tcp_state::SetMember { key: m.key.clone(), coin_base: m.coin_base }).collect()),
            plan: self.ledger.plan_due(height).is_some(),
        }
    }

    /// Π and Ω for a decided block: apply its transactions, advance the beacon ledger, commit
    /// it all to the store in one transaction, then prune the WAL and the mempool.
    fn on_decided(
        &mut self,
        height: Height,
        value: ValueId,
        certificate: CommitCertificate,
        queue: &mut VecDeque<Input>,
        replaying: bool,
    ) -> Result<(), NodeError> {
        let body = match self.bodies.get(&value) {
            Some(b) => b.bytes.clone(),
            None => {
                // Dropped under memory pressure (or never received): any peer that committed
                // the height sends its commit, whose block completes this one.
                tracing::warn!(node = %self.name, height = height.0, "decided a block whose body is not here: fetching it from peers");
                self.awaiting_body = Some((height, value, certificate));
                self.send_all(&Wire::Status { height, round: Round::ZERO }, true);
                return Ok(());
            }
        };
        let block = Block::decode(&body, crate::block::MAX_BLOCK_BYTES).map_err(|e| NodeError::Corrupt(format!("decided block: {e}")))?;
        let executed = match self.bodies.get(&value).and_then(|b| b.executed.clone()) {
            Some(executed) => executed,
            None => {
                let mut verified = Vec::with_capacity(block.transactions.len());
                for tx in &block.transactions {
                    verified.push(
                        tx.clone()
                            .verify(&self.spec.chain_id)
                            .map_err(|e| NodeError::Corrupt(format!("decided block holds a bad transaction: {e}")))?,
                    );
                }
                let reward = self
                    .reward_address(block.header.proposer)
                    .ok_or_else(|| NodeError::Corrupt("decided block's proposer unknown".into()))?;
                let outcome = self.block_outcome(height, block.header.round, block.header.proposer, block.last_commit.as_ref());
                let env = tcp_state::BlockEnv { height: height.0, fee_recipient: reward };
                Arc::new(
                    Executed::run(&self.state, verified, env, &outcome, false)
                        .map_err(|e| NodeError::Corrupt(format!("decided block: {e}")))?,
                )
            }
        };
        if executed.state_root != block.header.state_root {
            return Err(NodeError::Corrupt(format!(
                "decided block {height} commits state root {}, its transactions give {}",
                block.header.state_root, executed.state_root
            )));
        }
        let records = executed
            .receipts
            .iter()
            .enumerate()
            .map(|(index, r)| (r.tx_hash, TxRecord { height, index: index as u32, gas_used: r.gas_used, fee: r.fee }))
            .collect();
        let accounts = executed.touched.iter().map(|a| (*a, executed.state.account(a))).collect();
        self.state = executed.state.clone();
        // The ledger's schedule reads a plan this block made from the state after it.
        *self.schedule_state.write().unwrap_or_else(|e| e.into_inner()) = self.state.clone();
        // The beacon: σ_h from the verified partials, the ledger advanced by the block.
        let recovered = self.extension.recover();
        let data = block.beacon_data();
        if let Some(sigma) = data.previous_signature {
            self.ledger.offer_signature(Height(height.0 - 1), sigma);
        }
        let events = self.ledger.apply_block(height, &data, &mut self.rng);
        if let Some(sigma) = recovered {
            self.ledger.offer_signature(height, sigma);
        }
        for event in events {
            self.on_ledger_event(event);
        }
        let ledger = &self.ledger;
        self.pending_logs.retain(|log| ledger.transcript().is_some_and(|t| t.check(log).is_ok()));
        self.track_registered(height);
        if !replaying {
            self.run_reshare();
        }
        self.store.commit(CommitRecord {
            height,
            id: value,
            block: &body,
            certificate: &certificate.encode(),
            transactions: records,
            accounts,
            entries: executed.entries.clone(),
            previous_sigma: data.previous_signature.map(|s| (Height(height.0 - 1), s.to_bytes().to_vec())),
            sigma: recovered.map(|s| s.to_bytes().to_vec()),
        })?;
        self.wal.prune(height)?;
        self.last_id = value;
        self.last_timestamp_ms = block.header.timestamp_ms;
        self.bodies.retain(|_, b| b.height > height);
        let included: std::collections::HashSet<Digest> = executed.transactions.iter().map(|t| t.hash()).collect();
        let dropped: Vec<(Digest, String)> =
            self.mempool.prune(&self.state, height.0 + 1).into_iter().filter(|(h, _)| !included.contains(h)).collect();
        if !dropped.is_empty() {
            let mut log = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
            for (hash, reason) in dropped {
                tracing::info!(node = %self.name, tx = %hash, reason, "dropped a pending transaction");
                log.record(hash, reason);
            }
        }
        self.metrics.committed_transactions.inc_by(executed.transactions.len() as u64);
        self.committed_state.send_replace(Arc::new(CommittedState { height, state: self.state.clone() }));
        let _ = self.heads.send(CommittedHead {
            height,
            id: value,
            timestamp_ms: block.header.timestamp_ms,
            transactions: executed.transactions.iter().map(|t| t.hash()).collect(),
        });
        tracing::info!(node = %self.name, height = height.0, round = certificate.round.0, txs = executed.transactions.len(), "committed");
        self.waiting_start = Some(height);
        // Start the next height one block interval after this one started, unless catching up.
        let interval = self.spec.params().block_interval();
        let elapsed = self.height_started.elapsed();
        let behind = self.pending_commits.contains_key(&height.next());
        if replaying || behind || elapsed >= interval {
            self.start_next_height_into(height, queue)?;
        } else {
            self.schedule(interval - elapsed, Timer::StartHeight(height));
        }
        self.publish_status();
        Ok(())
    }

    fn start_next_height(&mut self, decided: Height) -> Result<(), NodeError> {
        let mut queue = VecDeque::new();
        self.start_next_height_into(decided, &mut queue)?;
        self.drain(queue)
    }

    fn start_next_height_into(&mut self, decided: Height, queue: &mut VecDeque<Input>) -> Result<(), NodeError> {
        if self.waiting_start != Some(decided) {
            return Ok(());
        }
        self.waiting_start = None;
        let next = decided.next();
        let params = self.height_params(next);
        let effects = self.core.start_height(next, params);
        self.height_started = Instant::now();
        queue.extend(self.core.take_buffered());
        self.carry_out(effects, queue, false)?;
        // Commits and proposals that were waiting for this height.
        queue.extend(self.pending_commit_input(next)?);
        queue.extend(self.ready_proposals(next)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::tests::{test_genesis_of, test_key};
    use commonware_runtime::Runner as _;
    use tcp_consensus::{ConsensusDomains, Proposal, Vote};

    /// Validator 0 of a 4-validator chain, booted at height 1 with its peers absent; the tests
    /// hand the adversary's messages to its handlers as the p2p receive task would.
    fn with_node(test: impl FnOnce(&mut Node) + Send + 'static) {
        let home = crate::store::tests::tempdir();
        let genesis = home.join("genesis.json");
        std::fs::write(&genesis, serde_json::to_vec(&test_genesis_of(4)).unwrap()).unwrap();
        let spec = ChainSpec::load(&genesis).unwrap();
        let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let config = NodeConfig {
            name: "v0".into(),
            role: Role::Validator,
            genesis,
            p2p_listen: local(0),
            p2p_address: local(1),
            rpc_listen: local(0),
            metrics_listen: local(0),
            followers: Vec::new(),
            log_level: "info".into(),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let secrets =
            NodeSecrets { consensus_key: test_key(0), bls_key: tcp_beacon::validator_key::generate(&mut rng).0, beacon_share: None };
        let runtime = commonware_runtime::tokio::Config::new().with_storage_directory(home.join("runtime"));
        let dir = home.clone();
        commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
            let (mut node, _handle, _events, _sender) = start(context, &dir, &config, spec, secrets).await.unwrap();
            node.boot(Height(1)).unwrap();
            test(&mut node);
        });
        std::fs::remove_dir_all(home).unwrap();
    }

    /// Bytes that claim `height` (what `claimed_height` reads) and hash to distinct ids.
    fn junk_body(height: u64, tag: u64) -> Vec<u8> {
        let mut body = height.to_be_bytes().to_vec();
        body.extend_from_slice(&tag.to_be_bytes());
        body.resize(4096, 0x5a);
        body
    }

    /// A round of height 1 whose proposer is not us, and that proposer.
    fn other_proposer(node: &Node) -> (Round, ValidatorIndex) {
        (0..64).map(Round).find_map(|r| node.ledger.proposer(Height(1), r).filter(|p| p.0 != 0).map(|p| (r, p))).unwrap()
    }

    fn signed_proposal(node: &Node, signer: u64, height: u64, round: Round, proposer: ValidatorIndex, value: ValueId) -> SignedProposal {
        let proposal = Proposal { height: Height(height), round, value, pol_round: None, proposer };
        ConsensusDomains::new(&node.spec.chain_id).sign_proposal(&test_key(signer), proposal)
    }

    #[test]
    fn a_flood_of_bodies_cannot_evict_the_body_a_proposal_names() {
        with_node(|node| {
            let (round, proposer) = other_proposer(node);
            let body = junk_body(1, u64::MAX);
            let id = block_id(&body);
            node.on_proposal(signed_proposal(node, proposer.0 as u64, 1, round, proposer, id)).unwrap();
            let sender = test_key(proposer.0 as u64).public_key();
            node.on_block(sender, body).unwrap();
            assert!(node.bodies.contains_key(&id));
            let held = node.bodies.len(); // and our own block, if we propose round 0
            let attacker = test_key(3).public_key();
            for tag in 0..600 {
                node.on_block(attacker.clone(), junk_body(1 + tag % 3, tag)).unwrap();
            }
            assert!(node.bodies.contains_key(&id), "the proposal's body is still here");
            assert_eq!(node.bodies.len(), held, "no unnamed body was kept");
            assert_eq!(node.unsolicited.len(), 1, "one early body per peer at most");
        });
    }

    #[test]
    fn unsigned_and_copied_proposals_take_no_place_in_the_queue() {
        with_node(|node| {
            // An honest proposal for the next height waits for its height.
            let proposer = ValidatorIndex(2);
            let honest = signed_proposal(node, 2, 2, Round::ZERO, proposer, Digest([1; 32]));
            node.on_proposal(honest.clone()).unwrap();
            for i in 0..2000u32 {
                let claimed = ValidatorIndex(i % 4);
                let value = Digest([(i % 251) as u8; 32]);
                // Signed by validator 3 under another's index, or a stranger's copy.
                let mut forged = signed_proposal(node, 3, 1 + u64::from(i % 3), Round(i), claimed, value);
                if claimed.0 == 3 {
                    forged.signature = signed_proposal(node, 1, 1, Round(i), claimed, value).signature;
                }
                node.on_proposal(forged).unwrap();
            }
            assert_eq!(node.pending_proposals.iter().collect::<Vec<_>>(), vec![&honest], "only the authentic proposal is queued");
            // Validator 3 flooding validly signed proposals for far rounds of the next height
            // cannot push out the nearer honest one either.
            for r in 1..500 {
                node.on_proposal(signed_proposal(node, 3, 2, Round(r), ValidatorIndex(3), Digest([r as u8; 32]))).unwrap();
            }
            assert!(node.pending_proposals.contains(&honest));
            assert!(node.pending_proposals.len() <= MAX_PENDING_PROPOSALS);
        });
    }

    #[test]
    fn a_decided_height_without_its_body_waits_for_it_instead_of_stopping_the_node() {
        with_node(|node| {
            // A valid block of a round we propose, signed by us as a peer would see it.
            // (If we propose round 0, the node built and proposed it at boot.)
            let round = (0..64).map(Round).find(|r| node.ledger.proposer(Height(1), *r) == Some(ValidatorIndex(0))).unwrap();
            if round != Round::ZERO {
                node.build_value(Height(1), round, &mut VecDeque::new()).unwrap();
            }
            let (&id, body) = node.bodies.iter().next().unwrap();
            let body = body.bytes.to_vec();
            if round != Round::ZERO {
                node.on_proposal(signed_proposal(node, 0, 1, round, ValidatorIndex(0), id)).unwrap();
            }
            assert_eq!(node.core.proposal(round).map(|p| p.proposal.value), Some(id));
            node.bodies.clear(); // as if dropped under memory pressure
            let domains = ConsensusDomains::new(&node.spec.chain_id);
            let precommit = |signer: u64| {
                let vote = Vote {
                    vote_type: VoteType::Precommit,
                    height: Height(1),
                    round,
                    value: Some(id),
                    validator: ValidatorIndex(signer as u32),
                    extension: bytes::Bytes::new(),
                };
                domains.sign_vote(&test_key(signer), vote)
            };
            for signer in 1..4u64 {
                node.on_vote(precommit(signer)).expect("the node keeps running");
            }
            assert!(matches!(&node.awaiting_body, Some((Height(1), v, _)) if *v == id));
            assert_eq!(node.store.height().unwrap(), Height(0));
            // A peer's commit of the height brings the body; the height commits.
            let certificate = CommitCertificate { height: Height(1), round, value: id, precommits: (1..4).map(precommit).collect() };
            node.on_commit(test_key(1).public_key(), certificate, body).unwrap();
            assert_eq!(node.store.height().unwrap(), Height(1));
            assert!(node.awaiting_body.is_none());
        });
    }
}
