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

mod blocks;
mod commit;
mod consensus_driver;
mod gossip;
mod group;
mod inbox;
mod releases;
pub use releases::RelayOutcome;
pub use group::{FORGED_RELEASE_RECORD, advance_group, genesis_group, group_logs_valid, release_record_refusal, releases_valid};
mod proposals;
mod reshares;
mod sync;
#[cfg(test)]
mod tests;

use crate::NodeError;
use crate::disk::Disk;
use crate::block::{Block, Header, block_id, claimed_height};
use crate::genesis::{ChainSpec, NodeConfig, Role};
use crate::keystore::NodeSecrets;
use crate::mempool::{Mempool, MempoolError, MempoolLimits};
use crate::reshare::{CeremonyKeys, Outgoing};
use crate::store::{CommitRecord, FileWal, Store, TxRecord};
use crate::wire::{MAX_GOSSIP_TRANSACTIONS, Wire};
use commonware_codec::Encode as _;
use commonware_cryptography::Signer as _;
use commonware_p2p::{Receiver as _, Recipients, Sender as _};
use commonware_runtime::telemetry::metrics::{Counter, Gauge, MetricsExt as _};
use commonware_runtime::{Clock as _, Spawner as _, Supervisor as _};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tcp_beacon::ledger::{LedgerEvent, MAX_LOGS_PER_BLOCK};
use tcp_beacon::{BeaconExtension, BeaconSignature, Finality, Ledger, SignedLog};
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
/// A peer not heard from for this long is not counted as connected (its status comes every
/// gossip interval).
const PEER_SILENCE: Duration = Duration::from_millis(5 * 500);
/// How long precommits gather before their partials are verified as one batch.
const FLUSH_DELAY: Duration = Duration::from_millis(5);
/// Precommits held per validator while they wait for their batch (or for σ_{h-1}): an honest
/// validator precommits one value per round.
const MAX_HELD_PRECOMMITS_PER_VALIDATOR: usize = 4;
/// Transaction gossip batches leave at least this often.
const TX_GOSSIP_INTERVAL: Duration = Duration::from_millis(50);
/// Heights between rebroadcasts of the transactions this node's RPC took.
const REBROADCAST_EVERY: u64 = 5;
/// Transactions remembered for rebroadcast (the oldest are forgotten first).
const MAX_LOCAL_TRANSACTIONS: usize = 1024;
/// Commits sent to a lagging peer per status it sends.
const SYNC_BATCH: u64 = 32;
/// Commits held for heights beyond the one in progress.
const MAX_PENDING_COMMITS: u64 = 64;
/// Authenticated proposals waiting for their body or their height.
const MAX_PENDING_PROPOSALS: usize = 64;
/// Proposals held per (height, round): the proposer's, and one conflicting (the evidence).
const MAX_PROPOSALS_PER_ROUND: usize = 2;
/// Proposals one signer may have queued for heights after the one in progress.
const MAX_FUTURE_PROPOSALS_PER_SIGNER: usize = 8;
/// Proposals of the height in progress already judged by `valid(v)` (a replay is ignored).
const MAX_JUDGED_PROPOSALS: usize = 1024;
/// Bodies that came before their proposal, in bytes, as a multiple of the block size limit.
const MAX_UNSOLICITED_BLOCKS: usize = 4;
/// Uncommitted block bodies held in memory, in bytes (every one named by a signed proposal,
/// our own build or a certificate), as a multiple of the chain's block size limit.
const MAX_BODY_BLOCKS: usize = 16;
/// Commits held for heights beyond the one in progress, in bytes of their blocks, as a
/// multiple of the chain's block size limit.
const MAX_PENDING_COMMIT_BLOCKS: usize = 16;
/// Events queued for the loop (network, RPC); senders wait when it is full.
const EVENT_QUEUE: usize = 4096;
/// Bytes of network messages queued for the loop, per channel; a receive task waits for room,
/// so a peer sending faster than the loop handles fills its own p2p mailbox, not our memory,
/// and a flood of transactions cannot hold up consensus messages.
const CONSENSUS_QUEUE_BYTES: usize = 48 << 20;
const TRANSACTION_QUEUE_BYTES: usize = 16 << 20;
/// A block's timestamp may lead our clock by at most this much.
const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// What a node runs on: a runtime, a network and (passed to [`start`]) a disk. Production is
/// tokio with authenticated p2p ([`crate::p2p::Production`]); the simulator (`tcp-sim`) is
/// commonware's deterministic runtime with its simulated network and a [`crate::disk::MemoryDisk`].
/// The node's code is the same on both.
pub trait Host: 'static {
    type Context: commonware_runtime::Clock + commonware_runtime::Spawner + commonware_runtime::Metrics;
    type Sender: commonware_p2p::Sender<PublicKey = Ed25519PublicKey>;
    type Receiver: commonware_p2p::Receiver<PublicKey = Ed25519PublicKey>;
    type Peers: PeerControl;
}

/// What the node asks of the network beyond its channels.
pub trait PeerControl: Clone + Send + 'static {
    /// Stop talking to a peer that sent something no honest node sends.
    fn block(&mut self, peer: Ed25519PublicKey);
    /// The peers to connect to from now on (set `id`): validators, followers, registered
    /// candidates.
    fn track(&mut self, id: u64, peers: commonware_p2p::AddressableTrackedPeers<Ed25519PublicKey>);
}

/// A started network: the consensus and transaction channels, and its peer control.
pub struct NodeNetwork<H: Host> {
    pub consensus: (H::Sender, H::Receiver),
    pub transactions: (H::Sender, H::Receiver),
    pub peers: H::Peers,
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
    /// What every buffer a peer can fill holds, in bytes, against its limit.
    pub buffers: Vec<BufferUsage>,
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
    /// The round of the beacon ceremony in progress, if one is.
    pub ceremony_round: Option<u64>,
    /// DKMP's secret-share group.
    pub sssg: SssgStatus,
}

/// DKMP's secret-share group as the node's committed blocks define it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SssgStatus {
    /// k, the chain's group size.
    pub size: u32,
    /// The group serving now (none until the first DKG completes).
    pub serving: Option<ServingGroup>,
    /// The ceremony under way: the first DKG or a reshare to the next epoch's group.
    pub ceremony: Option<GroupCeremonyStatus>,
    /// The epoch a completed reshare's group waits for.
    pub ready_for_epoch: Option<u64>,
    pub reshares: u64,
    pub ceremonies_failed: u64,
    pub epochs_extended: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ServingGroup {
    /// The epoch it took over in.
    pub epoch: u64,
    /// The ceremony whose shares it holds.
    pub round: u64,
    /// Its members' consensus keys (hex), in share order.
    pub members: Vec<String>,
    /// Partials needed for a contract key.
    pub threshold: u32,
    /// M's public key (BLS12-381 G2, hex): the same for every group.
    pub master_public_key: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupCeremonyStatus {
    pub round: u64,
    pub reshare: bool,
    pub dealers: usize,
    pub players: usize,
    /// Dealer logs on chain so far.
    pub logs: usize,
    /// The last height whose block may carry its logs.
    pub deadline: u64,
}

/// One bounded buffer's use.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BufferUsage {
    pub name: &'static str,
    pub bytes: usize,
    pub limit: usize,
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
    /// Carry an enclave's key request to the serving secret-share group and bring back the
    /// members' sealed answers.
    RelayKeyRequest { request: tcp_dkmp::SignedKeyRequest, reply: oneshot::Sender<Result<RelayOutcome, String>> },
    /// Ask the serving group for a committed request's result key (the answers are sealed to
    /// the result key the request names).
    RelayResultKey { request_id: [u8; 32], reply: oneshot::Sender<Result<RelayOutcome, String>> },
    /// Inbox entries of the bridge contract that the root-chain follower saw at the
    /// confirmation depth, consecutive by id (any it sent before may be sent again).
    RootInbox { entries: Vec<tcp_state::bridge::InboxEntry> },
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
    /// The role's own RPC methods, if it has any.
    pub extension: Option<Arc<dyn crate::rpc::RpcExtension>>,
    /// The root chain's JSON-RPC URL the `bridge` answer names, when the config advertises it.
    pub root_rpc: Option<String>,
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
    /// The state of the height before (a snapshot shares the tree): its header's φ is known
    /// once `height` committed, so it is the newest state an enclave can be shown with a
    /// finality signature (`compute_view`).
    pub previous: Option<(Height, AccountState)>,
}

/// An event in the loop's queue, holding its bytes of the channel's budget until handled.
pub struct Queued(Event, Option<tokio::sync::OwnedSemaphorePermit>);

impl From<Event> for Queued {
    fn from(event: Event) -> Self {
        Queued(event, None)
    }
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
    KeyRelay(Digest),
}

struct Metrics {
    height: Gauge,
    round: Gauge,
    committed_transactions: Counter,
    mempool: Gauge,
    rejected_inputs: Counter,
    sync_target: Gauge,
    wal_replayed: Counter,
    /// Blocks refused: bodies that do not match their header's roots, bad σ or φ, another
    /// round's φ (each logged with its reason).
    rejected_blocks: Counter,
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
    /// The root chain's inbox entries (deposits before the transactions that may spend them),
    /// then Π and Ω: apply `transactions` to `parent` (Υ each, fees to the proposer's operator),
    /// then finalize the block. With `skip_failing`, a transaction that does not apply is left
    /// out (building); otherwise it fails the block. Inbox entries that are not the next ones
    /// always fail it.
    fn run(
        parent: &AccountState,
        inbox: &[tcp_state::bridge::InboxEntry],
        candidates: Vec<VerifiedTransaction>,
        env: tcp_state::BlockEnv,
        outcome: &BlockOutcome,
        skip_failing: bool,
    ) -> Result<Executed, String> {
        debug_assert!(parent.pending_writes().next().is_none(), "a parent state has its root computed");
        let mut state = parent.clone();
        state.apply_inbox(inbox).map_err(|e| format!("inbox: {e}"))?;
        let (transactions, receipts) = state.apply_block(candidates, &env, outcome, skip_failing).map_err(|e| e.to_string())?;
        // Exactly what Π and Ω wrote (the parent's overlay is empty: its root was computed).
        let touched: Vec<Address> = state.pending_writes().map(|(a, _)| *a).collect();
        let entries = state.pending_entries().map(|(k, v)| (*k, v.clone())).collect();
        let state_root = Digest(state.state_root());
        Ok(Executed { transactions, receipts, state, state_root, touched, entries })
    }
}

pub struct Node<H: Host> {
    context: H::Context,
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
    beacon_keys: CeremonyKeys,
    /// DKMP's secret-share group, from committed blocks, and this node's part in its ceremonies.
    group: tcp_dkmp::GroupLedger,
    dkmp_keys: CeremonyKeys,
    pending_dkmp_logs: Vec<SignedLog>,
    /// As a member of the serving group: the requests answered this epoch and each compute
    /// node's recent releases.
    release_gate: tcp_dkmp::ReleaseGate,
    /// Key requests of our compute node's enclave being relayed to the group.
    relays: HashMap<Digest, releases::Relay>,
    /// Which of `relays` are result-key asks (a budget of their own).
    result_relays: std::collections::HashSet<Digest>,
    /// Release records (ours and gossiped) waiting for a block, oldest first.
    release_pool: VecDeque<tcp_dkmp::ReleaseRecord>,
    /// The root chain's inbox entries this node's follower saw confirmed and the chain has not
    /// processed yet, consecutive by id: what a block may carry (docs/bridge.md).
    root_inbox: VecDeque<(tcp_state::bridge::InboxEntry, u64)>,
    /// Our answers to recent requests (a second asker gets the same one), oldest first.
    answer_cache: HashMap<Digest, Vec<u8>>,
    answer_cache_order: VecDeque<Digest>,
    /// Result-key answers made (their own cache: asks anyone can make must not push out the key
    /// answers that keep an enclave's relay from being refused as a replay).
    result_answer_cache: HashMap<Digest, Vec<u8>>,
    result_answer_cache_order: VecDeque<Digest>,
    /// (request, member) of every pooled record.
    release_pool_index: std::collections::HashSet<(Digest, Ed25519PublicKey)>,
    last_commit_choice: Option<LastCommitChoice>,
    peers: H::Peers,
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
    /// (height, round, value) of proposals already judged by `valid(v)` at this height.
    judged_proposals: std::collections::HashSet<(Height, Round, ValueId)>,
    /// One body per peer that arrived before anything signed named it (the proposal normally
    /// comes first); taken when an authenticated proposal names it.
    unsolicited: HashMap<Ed25519PublicKey, (ValueId, Height, Arc<Vec<u8>>)>,
    /// A height the core decided whose body this node no longer holds: the commit a peer
    /// sends (its block must hash to the value) completes it.
    awaiting_body: Option<(Height, ValueId, CommitCertificate)>,
    /// When each peer was last served blocks for its `Status` (at most once per gossip
    /// interval each, so a 13-byte message cannot make us read and send blocks at will).
    last_served: HashMap<Ed25519PublicKey, SystemTime>,
    pending_commits: BTreeMap<Height, (CommitCertificate, Vec<u8>)>,
    inbox: Vec<SignedVote>,
    flush_scheduled: bool,
    awaiting_sigma: Option<(Height, Round)>,
    /// Set while a decided height waits for its successor's start (the block interval).
    waiting_start: Option<Height>,
    mempool: Mempool,
    gossip_queue: Vec<Vec<u8>>,
    /// Transactions this node's RPC took, gossiped again every [`REBROADCAST_EVERY`] heights
    /// while pending: the first gossip may have reached no peer (a node that just started).
    local_transactions: VecDeque<Digest>,
    /// Each peer's latest height and when it said so (its status comes every gossip interval).
    peer_heights: HashMap<Ed25519PublicKey, (Height, SystemTime)>,
    timers: BinaryHeap<Reverse<(SystemTime, u64, Timer)>>,
    timer_seq: u64,
    rng: ChaCha20Rng,
    sender: H::Sender,
    tx_sender: H::Sender,
    status: watch::Sender<NodeStatus>,
    /// Room left in the event queue, in bytes, for consensus and for transaction messages.
    queue_budget: (Arc<tokio::sync::Semaphore>, Arc<tokio::sync::Semaphore>),
    heads: broadcast::Sender<CommittedHead>,
    committed_state: watch::Sender<Arc<CommittedState>>,
    metrics: Metrics,
    last_sync_log: SystemTime,
    /// When the height in progress started (the next starts one block interval later).
    height_started: SystemTime,
}

/// The builder's free choice of which precommits of h−1 its block of h carries: any subset of
/// the certificate with more than two thirds of the power is valid. Given the ledger at h−1,
/// the height, our index and the certificate, returns the certificate to carry. Honest nodes
/// carry the certificate they decided with; the simulator's grinding builder chooses to help
/// itself (weights at h depend only on blocks ≤ h−2, so it cannot).
pub type LastCommitChoice = Arc<dyn Fn(&Ledger, Height, ValidatorIndex, CommitCertificate) -> CommitCertificate + Send + Sync>;

/// Everything a node starts from besides its runtime and network.
pub struct NodeSetup {
    pub disk: Arc<dyn Disk>,
    pub home: std::path::PathBuf,
    pub config: NodeConfig,
    pub spec: ChainSpec,
    pub secrets: NodeSecrets,
    /// Seeds the node's own randomness (the OS's in production, the run's in the simulator).
    pub seed: [u8; 32],
    /// Carry another quorum of h−1's precommits than the decided certificate (see
    /// [`LastCommitChoice`]); `None` for every real node.
    pub last_commit_choice: Option<LastCommitChoice>,
    /// Test-only sabotage of the consensus core (the simulator shows its checker catches it).
    #[cfg(feature = "fault-injection")]
    pub injected_fault: tcp_consensus::InjectedFault,
}

impl NodeSetup {
    pub fn new(disk: Arc<dyn Disk>, home: std::path::PathBuf, config: NodeConfig, spec: ChainSpec, secrets: NodeSecrets, seed: [u8; 32]) -> Self {
        NodeSetup {
            disk,
            home,
            config,
            spec,
            secrets,
            seed,
            last_commit_choice: None,
            #[cfg(feature = "fault-injection")]
            injected_fault: Default::default(),
        }
    }
}

/// Start a node in `context`: open the store, start the network `connect` returns (given the
/// registered validators' addresses), replay the WAL, and return the handle for the RPC layer
/// and the loop to run.
pub fn start<H: Host>(
    context: H::Context,
    setup: NodeSetup,
    connect: impl FnOnce(&[(Ed25519PublicKey, std::net::SocketAddr)]) -> Result<NodeNetwork<H>, NodeError>,
) -> Result<(Node<H>, NodeHandle, mpsc::Receiver<Queued>, mpsc::Sender<Queued>), NodeError> {
    #[cfg(feature = "fault-injection")]
    let injected_fault = setup.injected_fault;
    let NodeSetup { disk, home, config, spec, secrets, seed, last_commit_choice, .. } = setup;
    let config = &config;
    let spec = Arc::new(spec);
    let data = home.join("data");
    let store = Store::open(disk.as_ref(), &data, &spec)?;
    let (wal, cut) = FileWal::open(disk.as_ref(), &data.join("consensus.wal"))?;
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
    let NodeNetwork { peers, consensus: (sender, receiver), transactions: (tx_sender, tx_receiver) } = connect(&bonded_peers(&state))?;

    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let bad_messages = context.counter("p2p_bad_messages", "undecodable or invalid messages; their senders are blocked");
    let queue_budget = (
        Arc::new(tokio::sync::Semaphore::new(CONSENSUS_QUEUE_BYTES)),
        Arc::new(tokio::sync::Semaphore::new(TRANSACTION_QUEUE_BYTES)),
    );
    let receive = Receive {
        events: events_tx.clone(),
        budget: queue_budget.0.clone(),
        budget_bytes: CONSENSUS_QUEUE_BYTES,
        peers: peers.clone(),
        spec: spec.clone(),
        bad_messages,
    };
    spawn_receiver::<H>(&context, receiver, receive.clone(), false);
    let transactions = Receive { budget: queue_budget.1.clone(), budget_bytes: TRANSACTION_QUEUE_BYTES, ..receive };
    spawn_receiver::<H>(&context, tx_receiver, transactions, true);

    // --- beacon ledger: replay the committed blocks' beacon content.
    let committed = store.height()?;
    let schedule_state = Arc::new(RwLock::new(state.clone()));
    let mut ledger = genesis_ledger(&spec, schedule_state.clone());
    let mut group = genesis_group(&spec);
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut last_id = spec.hash;
    let mut last_timestamp_ms = spec.genesis.genesis_time_ms;
    for h in 1..=committed.0 {
        let bytes = store.block(Height(h))?.ok_or_else(|| NodeError::Corrupt(format!("block {h} is missing")))?;
        let (block, _, _) = replay_committed(&mut ledger, &mut group, Height(h), &bytes, &mut rng)?;
        last_id = block.id();
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
            extension.verify_batch(&mut rng, &precommit_extensions(&certificate));
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

    // φ of the last committed height, likewise: stored with its block, or recovered from the
    // stored certificate (its precommits carry a quorum of finality partials).
    if committed.0 > 0 && ledger.beacon_active(committed) {
        match store.finality(committed)? {
            Some(bytes) => {
                let finality = Finality::from_bytes(&bytes)
                    .map_err(|e| NodeError::Corrupt(format!("φ of height {} in the store: {e}", committed.0)))?;
                if !ledger.offer_finality(committed, last_id, finality) {
                    return Err(NodeError::Corrupt(format!("φ of height {} in the store does not verify", committed.0)));
                }
            }
            None => {
                let certificate = decode_certificate(&store, committed)?;
                let extension = verification_extension(&ledger, committed);
                match recover_finality(&ledger, &extension, &certificate, &mut rng) {
                    Some(finality) if ledger.offer_finality(committed, last_id, finality) => {
                        store.put_finality(committed, &finality.to_bytes())?;
                    }
                    _ => return Err(NodeError::Corrupt(format!("φ of height {} cannot be recovered from its certificate", committed.0))),
                }
            }
        }
    }

    let (status, status_rx) = watch::channel(NodeStatus::default());
    let (heads, _) = broadcast::channel(1024);
    let (requests_tx, mut requests_rx) = mpsc::channel::<Request>(EVENT_QUEUE);
    {
        let events = events_tx.clone();
        context.child("requests").spawn(|_| async move {
            while let Some(r) = requests_rx.recv().await {
                if events.send(Event::Request(r).into()).await.is_err() {
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
        rejected_blocks: context.counter(
            "rejected_blocks",
            "blocks refused: body not matching the header's roots, bad beacon or finality signature, finality of another round",
        ),
    };
    let mut config_consensus = ConsensusConfig::new(spec.chain_id.clone());
    config_consensus.timeouts = params.timeouts();
    #[cfg(feature = "fault-injection")]
    {
        config_consensus.injected_fault = injected_fault;
    }
    let key = (role == Role::Validator).then(|| secrets.consensus_key.clone());
    let mempool_limits = MempoolLimits::default();
    let pending_logs = spec.bootstrap_logs.clone();
    let dropped = Arc::new(std::sync::Mutex::new(DroppedTransactions::default()));
    let (committed_state, committed_state_rx) = watch::channel(Arc::new(CommittedState { height: committed, state: state.clone(), previous: None }));
    let handle = NodeHandle {
        spec: spec.clone(),
        store: store.clone(),
        requests: requests_tx,
        status: status_rx,
        heads: heads.clone(),
        committed_state: committed_state_rx,
        dropped: dropped.clone(),
        extension: None,
        root_rpc: config.bridge.as_ref().filter(|b| b.advertise_root_rpc).map(|b| b.root_rpc.clone()),
    };
    let validators = Arc::new(ledger.validator_set());
    let tracked_registry = state.registry();
    let mut beacon_keys =
        CeremonyKeys::load(disk.clone(), &home, "beacon", "beacon", secrets.consensus_key.clone(), secrets.beacon_share).map_err(NodeError::Config)?;
    match beacon_keys.finish_interrupted(&ledger, &mut rng) {
        Ok(true) => tracing::info!("finalized our share of a reshare that completed while the node was down"),
        Ok(false) => {}
        Err(e) => {
            return Err(NodeError::Corrupt(format!("cannot finalize the share of a reshare that completed while the node was down: {e}")));
        }
    }
    let mut dkmp_keys =
        CeremonyKeys::load(disk.clone(), &home, "dkmp", "master secret", secrets.consensus_key.clone(), None).map_err(NodeError::Config)?;
    match dkmp_keys.finish_interrupted(&group, &mut rng) {
        Ok(true) => tracing::info!("finalized our share of a master-secret ceremony that completed while the node was down"),
        Ok(false) => {}
        Err(e) => {
            return Err(NodeError::Corrupt(format!("cannot finalize the master-secret share of a ceremony that completed while the node was down: {e}")));
        }
    }
    let now = context.current();
    let node = Node {
        context,
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
        group,
        dkmp_keys,
        pending_dkmp_logs: Vec::new(),
        release_gate: tcp_dkmp::ReleaseGate::default(),
        relays: HashMap::new(),
        result_relays: std::collections::HashSet::new(),
        release_pool: VecDeque::new(),
        root_inbox: VecDeque::new(),
        release_pool_index: std::collections::HashSet::new(),
        answer_cache: HashMap::new(),
        answer_cache_order: VecDeque::new(),
        result_answer_cache: HashMap::new(),
        result_answer_cache_order: VecDeque::new(),
        last_commit_choice,
        peers,
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
        judged_proposals: std::collections::HashSet::new(),
        unsolicited: HashMap::new(),
        awaiting_body: None,
        last_served: HashMap::new(),
        pending_commits: BTreeMap::new(),
        inbox: Vec::new(),
        flush_scheduled: false,
        awaiting_sigma: None,
        waiting_start: None,
        mempool: Mempool::new(mempool_limits),
        gossip_queue: Vec::new(),
        local_transactions: VecDeque::new(),
        peer_heights: HashMap::new(),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        rng,
        sender,
        tx_sender,
        status,
        queue_budget,
        heads,
        committed_state,
        metrics,
        last_sync_log: now,
        height_started: now,
    };
    Ok((node, handle, events_rx, events_tx))
}

/// The beacon ledger at genesis. Epoch 0's set is the genesis validators; later sets are read
/// from the plans Ω wrote into `plans` (kept by plan height, so a replay from genesis over the
/// latest committed state reads each plan as it was made).
pub fn genesis_ledger(spec: &ChainSpec, plans: Arc<RwLock<AccountState>>) -> Ledger {
    let members: Vec<tcp_beacon::ledger::Member> =
        spec.validators.iter().map(|v| tcp_beacon::ledger::Member { key: v.key.clone(), coin_base: v.coin_base }).collect();
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
    Ledger::genesis(spec.chain_id.clone(), spec.params().beacon(), schedule).0
}

/// Feed committed block `height` to `ledger`, as at start: its beacon content checked, the σ it
/// carries offered, then applied. Returns the decoded block and what the ledger did.
pub fn replay_committed(
    ledger: &mut Ledger,
    group: &mut tcp_dkmp::GroupLedger,
    height: Height,
    bytes: &[u8],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<(Block, Vec<LedgerEvent>, Vec<tcp_dkmp::GroupEvent>), NodeError> {
    let h = height.0;
    let block = Block::decode(bytes, crate::block::MAX_BLOCK_BYTES).map_err(|e| NodeError::Corrupt(format!("block {h}: {e}")))?;
    ledger.validate_block(height, &block.beacon_data(), rng).map_err(|e| NodeError::Corrupt(format!("block {h}: {e}")))?;
    if let Some(sigma) = block.header.previous_signature {
        ledger.offer_signature(Height(h - 1), sigma);
    }
    let planned = ledger.plan_due(height);
    let events = ledger.apply_block(height, &block.beacon_data(), rng);
    let group_events = advance_group(group, ledger, height, &block, planned, &events, rng);
    Ok((block, events, group_events))
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
        Some(verifier) => Arc::new(BeaconExtension::active(
            ledger.chain_id().clone(),
            height,
            verifier.clone(),
            ledger.participants(height),
            None,
            ledger.message(height),
        )),
        None => Arc::new(BeaconExtension::inactive(height)),
    }
}

/// A certificate's precommits as the extension batch-verifies them.
fn precommit_extensions(certificate: &CommitCertificate) -> Vec<(ValidatorIndex, Round, ValueId, &[u8])> {
    certificate.precommits.iter().map(|p| (p.vote.validator, p.vote.round, certificate.value, &p.vote.extension[..])).collect()
}

/// φ of a decided height from the finality partials its certificate's precommits carry
/// (partials this extension already verified cost nothing; the rest are one batch check). If
/// the extension cannot (it dropped some of a busy validator's partials), a fresh one for the
/// height checks the certificate's partials alone.
fn recover_finality(
    ledger: &Ledger,
    extension: &BeaconExtension,
    certificate: &CommitCertificate,
    rng: &mut impl rand_core::CryptoRng,
) -> Option<Finality> {
    let recover = |extension: &BeaconExtension, rng: &mut _| {
        extension.verify_batch(rng, &precommit_extensions(certificate));
        extension.recover_finality(certificate.round, &certificate.value).map(|signature| Finality { round: certificate.round, signature })
    };
    recover(extension, rng).or_else(|| recover(&verification_extension(ledger, certificate.height), rng))
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

/// 32 bytes from the operating system's RNG: a production node's seed.
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's RNG works");
    seed
}

/// Decode (and for transactions, verify) what a peer sends; block peers that send garbage.
/// What a receive task needs: where events go, the queue's byte budget, and how to block.
struct Receive<P> {
    events: mpsc::Sender<Queued>,
    budget: Arc<tokio::sync::Semaphore>,
    /// The budget's size: no message waits for more.
    budget_bytes: usize,
    peers: P,
    spec: Arc<ChainSpec>,
    bad_messages: Counter,
}

impl<P: Clone> Clone for Receive<P> {
    fn clone(&self) -> Self {
        Receive {
            events: self.events.clone(),
            budget: self.budget.clone(),
            budget_bytes: self.budget_bytes,
            peers: self.peers.clone(),
            spec: self.spec.clone(),
            bad_messages: self.bad_messages.clone(),
        }
    }
}

/// Decode (and for transactions, verify) what a peer sends; block peers that send garbage.
fn spawn_receiver<H: Host>(context: &H::Context, mut receiver: H::Receiver, receive: Receive<H::Peers>, transactions: bool) {
    let Receive { events, budget, budget_bytes, peers: mut oracle, spec, bad_messages } = receive;
    context.child("receiver").spawn(move |_| async move {
        while let Ok((peer, message)) = receiver.recv().await {
            let bytes: Vec<u8> = message.as_ref().to_vec();
            // Room in the loop's queue first: waiting here leaves the backlog in the p2p
            // mailbox, which is bounded per peer.
            let cost = bytes.len().clamp(1, budget_bytes) as u32;
            let Ok(permit) = budget.clone().acquire_many_owned(cost).await else { break };
            let wire = match Wire::decode(&bytes) {
                Ok(w) if transactions == w.on_transaction_channel() => w,
                Ok(_) | Err(_) => {
                    tracing::warn!(peer = %peer, "undecodable p2p message: blocking the peer");
                    bad_messages.inc();
                    oracle.block(peer);
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
                        oracle.block(peer);
                    }
                    Event::Transactions(verified)
                }
                other => Event::Net(peer, other),
            };
            if events.send(Queued(event, Some(permit))).await.is_err() {
                break;
            }
        }
    });
}

impl<H: Host> Node<H> {
    /// Start the next uncommitted height, replay the WAL, then run until `shutdown` fires.
    pub async fn run(mut self, mut events: mpsc::Receiver<Queued>, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let next = self.store.height()?.next();
        self.boot(next)?;
        self.schedule(GOSSIP_INTERVAL, Timer::Gossip);
        self.schedule(TX_GOSSIP_INTERVAL, Timer::TxGossip);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            let sleep = match next_timer {
                Some(at) => futures::future::Either::Left(self.context.sleep_until(at)),
                None => futures::future::Either::Right(std::future::pending()),
            };
            // Biased: the order in which ready branches run must not depend on an RNG outside
            // the runtime's (the simulator replays runs from a seed). Shutdown, then due timers
            // (bounded), then events: a queue that never empties (a flood) must not starve the
            // timeouts and height starts.
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    tracing::info!(node = %self.name, "shutting down");
                    return Ok(());
                }
                _ = sleep => self.fire_timers()?,
                event = events.recv() => match event {
                    // The event's bytes go back to the queue's budget once it is handled.
                    Some(Queued(event, _bytes)) => {
                        self.on_event(event)?;
                        // Messages of the next height may show the network already there.
                        if let Some(decided) = self.waiting_start
                            && self.network_ahead(decided)
                        {
                            self.start_next_height(decided)?;
                        }
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    fn now(&self) -> SystemTime {
        self.context.current()
    }

    fn now_ms(&self) -> u64 {
        self.now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Time since `then` (zero if the clock went back).
    fn since(&self, then: SystemTime) -> Duration {
        self.now().duration_since(then).unwrap_or_default()
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        let at = self.now() + after;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    fn fire_timers(&mut self) -> Result<(), NodeError> {
        let now = self.now();
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
                Timer::KeyRelay(request) => self.finish_relay(request),
            }
        }
        Ok(())
    }

    fn boot(&mut self, next: Height) -> Result<(), NodeError> {
        for (id, bytes) in self.store.pending_blocks()? {
            if let Some(height) = claimed_height(&bytes).filter(|h| *h >= next) {
                self.bodies.insert(id, Body { height, round: Round::ZERO, bytes: Arc::new(bytes), executed: None });
            }
        }
        self.bound_bodies(None);
        let params = self.height_params(next);
        if next.0 > 1 {
            // The last commit of the blocks proposed at `next` is checked against it.
            self.previous_extension = verification_extension(&self.ledger, Height(next.0 - 1));
        }
        let effects = self.core.start_height(next, params);
        self.height_started = self.now();
        let mut queue = VecDeque::new();
        self.carry_out(effects, &mut queue, true)?;
        let entries = self.wal.entries()?;
        let replayed = entries.len();
        // Replayed precommits bypass `on_vote`: their partials join the verified set here, or a
        // restart mid-height could leave this node unable to recover σ_h when it proposes next.
        if self.extension.is_active() {
            let partials: Vec<(ValidatorIndex, Round, ValueId, &[u8])> = entries
                .iter()
                .filter_map(|input| match input {
                    Input::Vote(v) if v.vote.vote_type == VoteType::Precommit && v.vote.height == next && !v.vote.extension.is_empty() => {
                        Some((v.vote.validator, v.vote.round, v.vote.value?, &v.vote.extension[..]))
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

    /// What the mempool checks a transaction against: the next block, at the last one's time
    /// (the block that includes it checks again at its own).
    fn mempool_env(&self) -> tcp_state::BlockEnv {
        tcp_state::BlockEnv { height: self.current_height().0, time_secs: self.last_timestamp_ms / 1000, fee_recipient: Address::ZERO }
    }

    fn on_event(&mut self, event: Event) -> Result<(), NodeError> {
        match event {
            Event::Net(peer, wire) => self.on_wire(peer, wire),
            Event::Transactions(txs) => {
                let env = self.mempool_env();
                for tx in txs {
                    let _ = self.mempool.insert(tx, &self.state, &env);
                }
                self.metrics.mempool.set(self.mempool.len() as i64);
                Ok(())
            }
            Event::Request(Request::Submit { tx, reply }) => {
                let bytes = tx.signed().encode();
                let hash = tx.hash();
                let result = match self.mempool.insert(tx, &self.state, &self.mempool_env()) {
                    Ok(_) => {
                        if self.local_transactions.len() >= MAX_LOCAL_TRANSACTIONS {
                            self.local_transactions.pop_front();
                        }
                        self.local_transactions.push_back(hash);
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
            Event::Request(Request::RelayKeyRequest { request, reply }) => {
                self.relay_key_request(request, reply);
                Ok(())
            }
            Event::Request(Request::RelayResultKey { request_id, reply }) => {
                self.relay_result_key(request_id, reply);
                Ok(())
            }
            Event::Request(Request::RootInbox { entries }) => {
                self.learn_root_inbox(entries);
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
            Wire::KeyRequest(request) => {
                self.on_key_request(peer, request);
                Ok(())
            }
            Wire::KeyAnswer { request, sealed } => {
                self.on_key_answer(peer, request, sealed);
                Ok(())
            }
            Wire::ReleaseRecords(records) => {
                self.on_release_records(peer, records);
                Ok(())
            }
            Wire::ResultKeyRequest { request_id, epoch } => {
                self.on_result_key_request(peer, request_id, epoch);
                Ok(())
            }
            Wire::Dkg(message) => {
                match self.beacon_keys.on_message(&self.ledger, &peer, message, &mut self.pending_logs) {
                    Ok(out) => self.send_ceremony(out, false),
                    Err(e) => {
                        tracing::warn!(node = %self.name, peer = %peer, error = %e, "bad beacon reshare message: blocking the peer");
                        self.peers.block(peer);
                    }
                }
                Ok(())
            }
            Wire::Dkmp(message) => {
                match self.dkmp_keys.on_message(&self.group, &peer, message, &mut self.pending_dkmp_logs) {
                    Ok(out) => self.send_ceremony(out, true),
                    Err(e) => {
                        tracing::warn!(node = %self.name, peer = %peer, error = %e, "bad master-secret ceremony message: blocking the peer");
                        self.peers.block(peer);
                    }
                }
                Ok(())
            }
        }
    }

    /// The height consensus works on (or the one waiting to start).
    fn current_height(&self) -> Height {
        match self.waiting_start {
            Some(h) => h.next(),
            None => self.core.height().unwrap_or(Height(1)),
        }
    }
}
