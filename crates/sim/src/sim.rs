//! The discrete-event loop: nodes (hosts wrapping the core), the faulty network, the adversary.

mod beacon_host;

use crate::block::{SimBlock, build_invalid_block, is_well_formed_block, value_id};
use crate::checker::Checker;
use crate::rng::SimRng;
use crate::wire::Wire;
use crate::{Behaviour, SimConfig, SimReport};
use bytes::Bytes;
use commonware_cryptography::Signer as _;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tcp_beacon::dkg::AcceptedDealing;
use tcp_beacon::{BeaconExtension, DealerSession, Ledger, PlayerSession, SignedLog};
use tcp_consensus::{
    Admission, CommitCertificate, Consensus, ConsensusConfig, ConsensusDomains, ConsensusMessage, Effect, Input, MemoryWal, Proposal,
    SignedProposal, SignedVote, ValidatorSet, ValueId, Verified, Vote, VoteType, WriteAheadLog,
};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

/// Virtual time in microseconds.
type Micros = u64;

const MS: Micros = 1_000;
const SEC: Micros = 1_000_000;
const GOSSIP_INTERVAL: Micros = 500 * MS;
const JUNK_INTERVAL: Micros = 300 * MS;
/// Proposals waiting for their block, and commits waiting for their height, per node.
const MAX_PENDING: usize = 16;
/// Blocks kept per undecided height (honest proposers re-send theirs with each gossip).
const MAX_BODIES_PER_HEIGHT: usize = 32;
/// Commits sent to a peer that is behind, per status message.
const SYNC_BATCH: u64 = 4;
/// Probability that a node crashes while handling one input (crash faults only).
const CRASH_PER_INPUT: f64 = 0.0005;
/// How long the amnesia attacker delays its victim's messages (network faults only).
const AMNESIA_MUTE: Micros = 5 * SEC;
/// Hard cap on events per run, far above any healthy run; hitting it is a liveness failure.
const MAX_EVENTS: u64 = 20_000_000;

enum Event {
    Deliver {
        to: usize,
        bytes: Bytes,
    },
    Timeout {
        node: usize,
        incarnation: u64,
        input: Input,
    },
    Gossip {
        node: usize,
        incarnation: u64,
    },
    Junk {
        node: usize,
    },
    /// Verify the precommits a node has queued, as one batch, then hand them to its core.
    FlushPrecommits {
        node: usize,
        incarnation: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Partition {
        groups: Vec<u8>,
    },
    PartitionEnd,
    Heal,
}

struct Scheduled {
    at: Micros,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // BinaryHeap is a max-heap: invert so the earliest (then first scheduled) pops first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A host: the core plus what a real node keeps on disk (`wal`, `decided`, `bodies`) and in
/// memory (the rest, lost on a crash).
struct Node {
    key: Ed25519PrivateKey,
    behaviour: Option<Behaviour>,
    up: bool,
    incarnation: u64,
    core: Consensus,
    // --- durable
    wal: MemoryWal,
    decided: Vec<(CommitCertificate, Bytes)>,
    bodies: BTreeMap<(Height, ValueId), Bytes>,
    // --- volatile
    pending_proposals: VecDeque<SignedProposal>,
    pending_commits: BTreeMap<Height, (CommitCertificate, Bytes)>,
    beacon: BeaconHost,
}

/// A node's beacon state. The ledger, shares, dealer seeds and accepted dealings are durable
/// (the ledger is a function of the decided blocks); the sessions and queues are lost on a crash.
struct BeaconHost {
    // --- durable
    ledger: Ledger,
    shares: BTreeMap<u64, tcp_beacon::dkg::BeaconShare>,
    dealer_seeds: BTreeMap<u64, [u8; 32]>,
    accepted: BTreeMap<u64, Vec<AcceptedDealing>>,
    // --- volatile
    dealer: Option<(u64, DealerSession)>,
    player: Option<(u64, PlayerSession)>,
    my_log: Option<(u64, SignedLog)>,
    pending_logs: Vec<SignedLog>,
    validators: Arc<ValidatorSet>,
    extension: Arc<BeaconExtension>,
    previous_extension: Arc<BeaconExtension>,
    inbox: Vec<SignedVote>,
    flush_scheduled: bool,
    /// A round whose value waits for σ_{h-1} (more precommits of h-1 needed).
    awaiting_sigma: Option<(Height, Round)>,
}

struct Network {
    latency: Micros,
    jitter: Micros,
    loss: f64,
    duplicate: f64,
    /// Group of each node while a partition is in force.
    partition: Option<Vec<u8>>,
    /// Until when each node's outbound messages are held back by the adversary.
    muted_until: Vec<Micros>,
}

struct Sim {
    cfg: SimConfig,
    rng: SimRng,
    now: Micros,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    keys: Vec<Ed25519PublicKey>,
    node_of_key: HashMap<Ed25519PublicKey, usize>,
    /// The observer's own ledger, fed the first decision of each height: checks every committed
    /// σ and the group key, and maps validator indices to nodes for the checker.
    reference: Ledger,
    /// Honest partials seen per height (share index → partial), for the two-quorum check.
    partials_seen: BTreeMap<Height, BTreeMap<u32, tcp_beacon::Partial>>,
    domains: ConsensusDomains,
    consensus_config: ConsensusConfig,
    net: Network,
    checker: Checker,
    /// Honest groups the equivocating coalition splits the network into.
    split: (Vec<usize>, Vec<usize>),
    /// (height, round) → the two values the coalition shows the two groups.
    split_values: BTreeMap<(Height, Round), (ValueId, ValueId)>,
    /// The second proposal of each split, re-sent unchanged when the equivocator gossips.
    split_proposals: BTreeMap<(Height, Round), SignedProposal>,
    healed_at: Option<Micros>,
    goal: u64,
    deadline: Micros,
    report: SimReport,
}

/// Who validates each epoch: the genesis validators, then (when churning) a rotation of the
/// honest identities through the honest seats, one leaving and one joining per epoch; the
/// Byzantine validators always stay. N₀ varies by identity so the weights differ.
fn set_schedule(cfg: &SimConfig, keys: Vec<Ed25519PublicKey>) -> tcp_beacon::ledger::SetSchedule {
    let (n, b, churn) = (cfg.validators, cfg.byzantine, cfg.churn);
    let honest: Vec<usize> = (0..n - b).chain(n..keys.len()).collect();
    Arc::new(move |epoch: u64, _| {
        let mut chosen: Vec<usize> = if !churn || epoch == 0 || honest.is_empty() {
            (0..n).collect()
        } else {
            (0..n - b).map(|k| honest[(k + epoch as usize) % honest.len()]).chain(n - b..n).collect()
        };
        chosen.sort_unstable();
        chosen.into_iter().map(|i| tcp_beacon::ledger::Member { key: keys[i].clone(), coin_base: coin_base(i) }).collect()
    })
}

/// N₀ of identity `i` in the simulation: 1000 to 4000 stake units.
pub(crate) fn coin_base(i: usize) -> u64 {
    1000 * (1 + (i % 4) as u64)
}

pub fn run(cfg: SimConfig) -> SimReport {
    assert!(cfg.validators >= 1 && cfg.byzantine <= cfg.validators, "invalid simulation size");
    let mut sim = Sim::new(cfg);
    sim.run();
    sim.finish()
}

impl Sim {
    fn new(cfg: SimConfig) -> Self {
        let mut rng = SimRng::new(cfg.seed);
        let n = cfg.validators;
        let pool = cfg.pool_size();
        let chain_id = ChainId::new("tcp-sim").expect("valid chain id");
        let private: Vec<Ed25519PrivateKey> = (0..pool).map(|i| insecure_ed25519_from_seed(i as u64)).collect();
        let keys: Vec<Ed25519PublicKey> = private.iter().map(|k| k.public_key()).collect();
        let node_of_key = keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        let schedule = set_schedule(&cfg, keys.clone());
        let params = tcp_beacon::BeaconParams { epoch_length: cfg.epoch_length, dkg_window: cfg.dkg_window, ..Default::default() };
        let (reference, _) = Ledger::genesis(chain_id.clone(), params, schedule);
        let byzantine_from = n - cfg.byzantine;
        let behaviours = [
            Behaviour::Equivocate,
            Behaviour::Equivocate,
            Behaviour::DoubleVote,
            Behaviour::Amnesia,
            Behaviour::Silent,
            Behaviour::Junk,
            Behaviour::Withhold,
        ];
        let mut report =
            SimReport { seed: cfg.seed, proposer_observed: vec![0; pool], proposer_expected: vec![0.0; pool], ..Default::default() };
        let mut nodes = Vec::with_capacity(pool);
        let mut honest = Vec::with_capacity(pool);
        let empty_set = Arc::new(
            ValidatorSet::new(vec![tcp_consensus::Validator { public_key: keys[0].clone(), voting_power: 1 }]).expect("valid set"),
        );
        for (i, key) in private.into_iter().enumerate() {
            let picked = *rng.pick(&behaviours);
            let pinned = cfg.behaviours.get((i.saturating_sub(byzantine_from)) % cfg.behaviours.len().max(1)).copied();
            let is_byzantine = i >= byzantine_from && i < n;
            let behaviour = (is_byzantine && cfg.faults.byzantine).then(|| pinned.unwrap_or(picked));
            if let Some(b) = behaviour {
                report.behaviours.push(b);
            }
            honest.push(!is_byzantine);
            nodes.push(Node {
                key,
                behaviour,
                up: true,
                incarnation: 0,
                core: Consensus::new(ConsensusConfig::new(chain_id.clone()), None),
                wal: MemoryWal::default(),
                decided: Vec::new(),
                bodies: BTreeMap::new(),
                pending_proposals: VecDeque::new(),
                pending_commits: BTreeMap::new(),
                beacon: BeaconHost {
                    ledger: reference.clone(),
                    shares: BTreeMap::new(),
                    dealer_seeds: BTreeMap::new(),
                    accepted: BTreeMap::new(),
                    dealer: None,
                    player: None,
                    my_log: None,
                    pending_logs: Vec::new(),
                    validators: empty_set.clone(),
                    extension: Arc::new(BeaconExtension::inactive(Height(0))),
                    previous_extension: Arc::new(BeaconExtension::inactive(Height(0))),
                    inbox: Vec::new(),
                    flush_scheduled: false,
                    awaiting_sigma: None,
                },
            });
        }
        #[allow(unused_mut)]
        let mut consensus_config = ConsensusConfig::new(chain_id.clone());
        #[cfg(feature = "fault-injection")]
        {
            consensus_config.injected_fault = cfg.injected_fault;
        }
        let mut split = (Vec::new(), Vec::new());
        for i in (0..pool).filter(|i| honest[*i]) {
            if rng.chance(0.5) { split.0.push(i) } else { split.1.push(i) }
        }
        let domains = ConsensusDomains::new(&chain_id);
        let latency = rng.range(5, 50) * MS;
        let jitter = rng.range(0, 100) * MS;
        let faulty_net = (if cfg.faults.loss { rng.range(5, 30) as f64 / 100.0 } else { 0.0 }, if cfg.faults.loss { 0.05 } else { 0.0 });
        Sim {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            keys,
            node_of_key,
            reference,
            partials_seen: BTreeMap::new(),
            checker: Checker::new(honest, domains.clone()),
            domains,
            consensus_config,
            net: Network { latency, jitter, loss: faulty_net.0, duplicate: faulty_net.1, partition: None, muted_until: vec![0; pool] },
            split,
            split_values: BTreeMap::new(),
            split_proposals: BTreeMap::new(),
            healed_at: None,
            goal: 0,
            deadline: u64::MAX,
            report,
            cfg,
        }
    }

    fn trace(&self, node: usize, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let role = if self.checker.is_honest(node) { "" } else { "*" };
            eprintln!("{:>10.3}s node {node}{role}: {}", self.now as f64 / SEC as f64, what());
        }
    }

    fn schedule(&mut self, after: Micros, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled { at: self.now + after, seq: self.seq, event });
    }

    fn run(&mut self) {
        if self.cfg.trace {
            eprintln!("behaviours {:?}, split {:?}", self.nodes.iter().map(|n| n.behaviour).collect::<Vec<_>>(), self.split);
        }
        self.plan_faults();
        for i in 0..self.nodes.len() {
            self.boot(i);
            if self.nodes[i].behaviour == Some(Behaviour::Junk) {
                self.schedule(JUNK_INTERVAL, Event::Junk { node: i });
            }
        }
        let mut events = 0u64;
        while let Some(Scheduled { at, event, .. }) = self.queue.pop() {
            self.now = at;
            events += 1;
            self.dispatch(event);
            if self.healed_at.is_some() && self.checker.min_honest_height() >= self.goal {
                // The beacon must also be running: a DKG that failed under faults is retried
                // after the heal, and the run goes on (within the same liveness bound) until the
                // beacon has produced σ for `liveness_heights` heights.
                let beacon_running = self
                    .reference
                    .beacon_start()
                    .is_some_and(|start| self.checker.min_honest_height() >= start.0 + self.cfg.liveness_heights);
                if beacon_running {
                    return;
                }
            }
            if self.now > self.deadline || events >= MAX_EVENTS {
                break;
            }
        }
        let min = self.checker.min_honest_height();
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "node {i}{}: decided {} round {:?} step {:?} locked {:?}",
                    if n.behaviour.is_some() { " (byzantine)" } else { "" },
                    n.decided.len(),
                    n.core.round().map(|r| r.0),
                    n.core.step(),
                    n.core.locked().map(|l| (l.round.0, l.value)),
                )
            })
            .collect();
        self.report.liveness_failure = Some(format!(
            "after the network healed at {:.1}s, honest nodes reached only height {min} of {} by {:.1}s (bound {:.1}s); {}",
            self.healed_at.unwrap_or(0) as f64 / SEC as f64,
            self.goal,
            self.now as f64 / SEC as f64,
            self.deadline as f64 / SEC as f64,
            nodes.join("; "),
        ));
    }

    fn finish(mut self) -> SimReport {
        self.report.violations = std::mem::take(&mut self.checker.violations);
        self.report.heights_decided = self.checker.min_honest_height();
        self.report.virtual_time = Duration::from_micros(self.now);
        self.report.evidence = self.checker.evidence_seen;
        self.finish_beacon();
        for (i, node) in self.nodes.iter().enumerate() {
            self.report.rejections.merge(node.core.stats());
            // A Byzantine node's core may meet its own conflicting junk votes relayed back; only
            // an honest core refusing to sign means a bug.
            if !self.checker.is_honest(i) {
                continue;
            }
            assert_eq!(
                node.core.refused_double_signs(),
                0,
                "seed {}: the core of node {i} ({:?}) tried to double-sign",
                self.cfg.seed,
                node.behaviour
            );
        }
        self.report
    }

    /// Schedule the fault window: everything heals at its end.
    fn plan_faults(&mut self) {
        let faults = self.cfg.faults;
        if !faults.network_or_crash() {
            self.heal();
            return;
        }
        let window = (10 * SEC).max(self.cfg.heights * 400 * MS);
        let n = self.nodes.len();
        if faults.partition {
            let mut t = self.rng.range(0, 2 * SEC);
            while t < window {
                let duration = self.rng.range(500 * MS, 8 * SEC);
                let group_count = self.rng.range(2, 4) as u8;
                let groups: Vec<u8> = (0..n).map(|_| self.rng.range(0, group_count as u64) as u8).collect();
                self.schedule(t, Event::Partition { groups });
                self.schedule((t + duration).min(window), Event::PartitionEnd);
                t += duration + self.rng.range(500 * MS, 4 * SEC);
            }
        }
        if faults.crash {
            for node in 0..n {
                if !self.checker.is_honest(node) || !self.rng.chance(0.5) {
                    continue;
                }
                for _ in 0..self.rng.range(1, 4) {
                    let at = self.rng.range(0, window);
                    let down = self.rng.range(200 * MS, 5 * SEC);
                    self.schedule(at, Event::Crash { node });
                    self.schedule((at + down).min(window), Event::Restart { node });
                }
            }
        }
        self.schedule(window, Event::Heal);
    }

    fn heal(&mut self) {
        self.net.partition = None;
        self.net.muted_until.iter_mut().for_each(|m| *m = 0);
        self.net.loss = 0.0;
        self.net.duplicate = 0.0;
        self.healed_at = Some(self.now);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                self.restart(i);
            }
        }
        let (lo, hi) = (self.checker.min_honest_height(), self.checker.max_honest_height());
        self.goal = self.cfg.heights.max(hi + self.cfg.liveness_heights);
        let (base, per_height) = self.cfg.liveness_bound;
        self.deadline = self.now + base.as_micros() as u64 + per_height.as_micros() as u64 * (self.goal - lo);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { to, bytes } => self.deliver(to, bytes),
            Event::Timeout { node, incarnation, input } => {
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.feed(node, input);
                }
            }
            Event::Gossip { node, incarnation } => {
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.gossip(node);
                    self.schedule(GOSSIP_INTERVAL, Event::Gossip { node, incarnation });
                }
            }
            Event::FlushPrecommits { node, incarnation } => {
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.flush_precommits(node);
                }
            }
            Event::Junk { node } => {
                self.send_junk(node);
                self.schedule(JUNK_INTERVAL, Event::Junk { node });
            }
            Event::Crash { node } => self.crash(node),
            Event::Restart { node } => {
                if !self.nodes[node].up {
                    self.restart(node);
                }
            }
            Event::Partition { groups } => {
                if self.cfg.trace {
                    eprintln!("{:>10.3}s partition {groups:?}", self.now as f64 / SEC as f64);
                }
                self.report.partitions += 1;
                self.net.partition = Some(groups);
            }
            Event::PartitionEnd => self.net.partition = None,
            Event::Heal => self.heal(),
        }
    }

    // ----------------------------------------------------------------------------- network

    fn send(&mut self, from: usize, to: usize, bytes: Bytes) {
        if from == to {
            return;
        }
        self.report.messages_sent += 1;
        if self.net.muted_until[from] > self.now {
            self.report.messages_dropped += 1;
            return;
        }
        if let Some(groups) = &self.net.partition
            && groups[from] != groups[to]
        {
            self.report.messages_dropped += 1;
            return;
        }
        if self.rng.chance(self.net.loss) {
            self.report.messages_dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.net.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.net.latency + self.rng.range(0, self.net.jitter + 1);
            self.schedule(delay, Event::Deliver { to, bytes: bytes.clone() });
        }
    }

    fn send_to_all(&mut self, from: usize, wire: &Wire) {
        let bytes = wire.encode();
        for to in 0..self.nodes.len() {
            self.send(from, to, bytes.clone());
        }
    }

    fn deliver(&mut self, to: usize, bytes: Bytes) {
        if !self.nodes[to].up {
            self.report.messages_dropped += 1;
            return;
        }
        let wire = match Wire::decode(&bytes) {
            Ok(w) => w,
            Err(_) => {
                self.report.decode_errors += 1;
                return;
            }
        };
        match wire {
            Wire::Block(body) => self.on_block(to, body),
            Wire::Consensus(ConsensusMessage::Vote(v)) => {
                let amnesiac = self.nodes[to].behaviour == Some(Behaviour::Amnesia);
                if amnesiac && v.vote.vote_type == VoteType::Precommit && self.my_index(to) != Some(v.vote.validator) {
                    return; // stays in the height to keep attacking it
                }
                self.on_vote(to, v)
            }
            Wire::Dkg { from, message } => self.on_dkg(to, from as usize, &message),
            Wire::Consensus(ConsensusMessage::Proposal(p)) => {
                let node = &mut self.nodes[to];
                if node.pending_proposals.len() >= MAX_PENDING {
                    node.pending_proposals.pop_front();
                }
                node.pending_proposals.push_back(p);
                self.try_pending_proposals(to);
            }
            Wire::Status { from, height, round } => self.on_status(to, from as usize, height, round),
            Wire::Commit(certificate, body) => {
                let node = &mut self.nodes[to];
                let current = node.core.height().unwrap_or(Height(0));
                if certificate.height >= current && certificate.height.0 < current.0 + MAX_PENDING as u64 {
                    node.pending_commits.insert(certificate.height, (certificate, body));
                }
                self.try_pending_commit(to);
            }
        }
    }

    /// A block arrived: keep it (bounded per height) and release proposals waiting for it.
    fn on_block(&mut self, node: usize, body: Bytes) {
        let Some(height) = crate::block::block_height(&body) else {
            self.report.decode_errors += 1;
            return;
        };
        let n = &mut self.nodes[node];
        let current = n.core.height().unwrap_or(Height(1));
        if height < current || height.0 > current.0 + 2 {
            return;
        }
        let held = n.bodies.range((height, Digest([0; 32]))..=(height, Digest([0xff; 32]))).count();
        if held < MAX_BODIES_PER_HEIGHT {
            n.bodies.insert((height, value_id(&body)), body);
        }
        self.try_pending_proposals(node);
    }

    fn try_pending_proposals(&mut self, node: usize) {
        for input in self.ready_proposals(node) {
            self.feed(node, input);
        }
    }

    /// Proposals for the height in progress whose block is here, judged by `valid(v)`. Later
    /// heights wait (their validity depends on the blocks before them); earlier ones are dropped.
    fn ready_proposals(&mut self, node: usize) -> Vec<Input> {
        let Some(current) = self.nodes[node].core.height() else { return Vec::new() };
        let n = &mut self.nodes[node];
        let mut ready = Vec::new();
        n.pending_proposals.retain(|p| {
            let height = p.proposal.height;
            if height < current {
                return false;
            }
            match n.bodies.get(&(height, p.proposal.value)) {
                Some(body) if height == current => {
                    ready.push((p.clone(), body.clone()));
                    false
                }
                _ => true,
            }
        });
        ready
            .into_iter()
            .map(|(proposal, body)| {
                let valid = self.block_valid(node, &body, Some(proposal.proposal.round));
                Input::Proposal { proposal, valid }
            })
            .collect()
    }

    fn try_pending_commit(&mut self, node: usize) {
        if let Some(input) = self.pending_commit_input(node) {
            self.feed(node, input);
        }
    }

    /// The commit a peer sent for the node's current height, as an input (its block stored
    /// first, like any block the WAL may name).
    fn pending_commit_input(&mut self, node: usize) -> Option<Input> {
        let n = &mut self.nodes[node];
        let current = n.core.height()?;
        n.pending_commits.retain(|h, _| *h >= current);
        let (certificate, body) = n.pending_commits.remove(&current)?;
        if value_id(&body) != certificate.value {
            return None;
        }
        n.bodies.insert((current, certificate.value), body.clone());
        let valid = self.block_valid(node, &body, None);
        Some(Input::Commit { certificate, valid })
    }

    /// A peer says where it is; if we are past it, send what it misses.
    fn on_status(&mut self, node: usize, peer: usize, peer_height: Height, peer_round: Round) {
        let n = &self.nodes[node];
        if n.behaviour == Some(Behaviour::Silent) || peer >= self.nodes.len() {
            return;
        }
        let votes = n.core.catch_up(peer_height, peer_round);
        for vote in votes {
            self.send(node, peer, Wire::Consensus(vote).encode());
        }
        let n = &self.nodes[node];
        let decided = n.decided.len() as u64;
        if peer_height.0 == 0 || peer_height.0 > decided {
            return;
        }
        let commits: Vec<Wire> = (peer_height.0..=decided.min(peer_height.0 + SYNC_BATCH - 1))
            .map(|h| {
                let (c, b) = &n.decided[h as usize - 1];
                Wire::Commit(c.clone(), b.clone())
            })
            .collect();
        for wire in commits {
            self.send(node, peer, wire.encode());
        }
    }

    // ----------------------------------------------------------------------------- host

    fn boot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let key = node.key.clone();
        let config = if node.behaviour.is_none() {
            self.consensus_config.clone()
        } else {
            ConsensusConfig::new(self.consensus_config.chain_id.clone())
        };
        node.core = Consensus::new(config, Some(key));
        node.pending_proposals.clear();
        node.pending_commits.clear();
        self.reset_beacon_session(i);
        let next = Height(self.nodes[i].decided.len() as u64 + 1);
        let params = self.height_params(i, next);
        let effects = self.nodes[i].core.start_height(next, params);
        self.join_ceremony(i);
        let mut queue = VecDeque::new();
        self.carry_out(i, effects, &mut queue, true);
        let entries = self.nodes[i].wal.entries().expect("the simulated disk does not corrupt");
        if !entries.is_empty() {
            self.report.wal_replays += 1;
        }
        for input in entries {
            if let Ok(effects) = self.nodes[i].core.apply(Verified::from_own_log(input)) {
                self.carry_out(i, effects, &mut queue, true);
            }
        }
        if let Some((height, round)) = self.nodes[i].core.awaiting_value() {
            self.build_value(i, height, round, &mut queue);
        }
        self.drain(i, queue);
        let incarnation = self.nodes[i].incarnation;
        let first_gossip = self.rng.range(1, GOSSIP_INTERVAL);
        self.schedule(first_gossip, Event::Gossip { node: i, incarnation });
    }

    fn crash(&mut self, i: usize) {
        self.trace(i, || "crash".into());
        let node = &mut self.nodes[i];
        if node.up {
            node.up = false;
            node.incarnation += 1; // its timers die with it
            self.report.crashes += 1;
        }
    }

    fn restart(&mut self, i: usize) {
        self.nodes[i].up = true;
        self.nodes[i].incarnation += 1;
        self.boot(i);
    }

    /// Log, then apply, one input and everything it causes.
    fn feed(&mut self, i: usize, input: Input) {
        self.drain(i, VecDeque::from([input]));
    }

    fn drain(&mut self, i: usize, mut queue: VecDeque<Input>) {
        while let Some(input) = queue.pop_front() {
            let node = &mut self.nodes[i];
            if !node.up {
                return;
            }
            // Check first (a refusal is counted and changes nothing; an early input is held by
            // the core), log what passed, then apply it.
            let verified = match node.core.admit(input) {
                Ok(Admission::Apply(verified)) => verified,
                Ok(Admission::Buffered) | Err(_) => continue,
            };
            node.wal.append(verified.input()).expect("memory WAL");
            let crash_now =
                self.cfg.faults.crash && self.healed_at.is_none() && self.checker.is_honest(i) && self.rng.chance(CRASH_PER_INPUT);
            if crash_now && self.rng.chance(0.5) {
                self.crash(i); // logged but never applied
                let down = self.rng.range(100 * MS, 2 * SEC);
                self.schedule(down, Event::Restart { node: i });
                return;
            }
            let Ok(effects) = self.nodes[i].core.apply(verified) else { continue };
            if crash_now {
                self.crash(i); // applied, but its effects never left the node
                let down = self.rng.range(100 * MS, 2 * SEC);
                self.schedule(down, Event::Restart { node: i });
                return;
            }
            self.carry_out(i, effects, &mut queue, false);
        }
    }

    fn carry_out(&mut self, i: usize, effects: Vec<Effect>, queue: &mut VecDeque<Input>, replaying: bool) {
        for effect in effects {
            match effect {
                Effect::Broadcast(message) => self.broadcast(i, message),
                Effect::ScheduleTimeout { height, round, kind, after } => {
                    let incarnation = self.nodes[i].incarnation;
                    let input = Input::Timeout { height, round, kind };
                    self.schedule(after.as_micros() as u64, Event::Timeout { node: i, incarnation, input });
                }
                Effect::GetValue { height, round } => {
                    // While replaying, the answer (if there was one) is further down the WAL.
                    if !replaying {
                        self.build_value(i, height, round, queue);
                    }
                }
                Effect::Decided { height, value, certificate } => self.on_decided(i, height, value, certificate, queue, replaying),
                Effect::Evidence(evidence) => {
                    let validators = self.nodes[i].beacon.validators.clone();
                    let accused = validators.get(evidence.offender()).and_then(|v| self.node_of_key.get(&v.public_key)).copied();
                    self.checker.evidence(i, accused, &evidence, &validators);
                }
            }
        }
    }

    fn build_value(&mut self, i: usize, height: Height, round: Round, queue: &mut VecDeque<Input>) {
        let Some(block) = self.beacon_block(i, height, round) else {
            // σ_{h-1} is not recoverable yet: build once more precommits of h-1 arrive.
            self.nodes[i].beacon.awaiting_sigma = Some((height, round));
            return;
        };
        let body = if self.nodes[i].behaviour == Some(Behaviour::Junk) { self.junk_block(i, block) } else { block.encode() };
        let value = value_id(&body);
        // The block reaches the disk before the WAL names it.
        self.nodes[i].bodies.insert((height, value), body);
        queue.push_back(Input::ProposeValue { height, round, value });
    }

    fn on_decided(
        &mut self,
        i: usize,
        height: Height,
        value: ValueId,
        certificate: CommitCertificate,
        queue: &mut VecDeque<Input>,
        replaying: bool,
    ) {
        self.trace(i, || format!("DECIDE h{height} r{} {value:?}", certificate.round));
        let body = self.nodes[i].bodies.get(&(height, value)).cloned().expect("a decided value's block is on disk");
        let validators = self.nodes[i].beacon.validators.clone();
        let extension = self.nodes[i].beacon.extension.clone();
        let body_valid = is_well_formed_block(&body, height).is_some() && value_id(&body) == value;
        self.checker.decided(i, height, value, &certificate, body_valid, &validators, extension.as_ref());
        self.observe_decision(height, &body);
        let round = certificate.round;
        self.report.max_round = self.report.max_round.max(round.0);
        let node = &mut self.nodes[i];
        node.decided.push((certificate, body.clone()));
        node.wal.prune(height).expect("memory WAL");
        node.bodies.retain(|(h, _), _| *h > height);
        self.apply_decided_block(i, height, &body);
        let params = self.height_params(i, height.next());
        let node = &mut self.nodes[i];
        let effects = node.core.start_height(height.next(), params);
        queue.extend(node.core.take_buffered());
        self.carry_out(i, effects, queue, replaying);
        if !replaying {
            queue.extend(self.pending_commit_input(i));
            queue.extend(self.ready_proposals(i));
        }
    }

    fn gossip(&mut self, i: usize) {
        if self.nodes[i].behaviour == Some(Behaviour::Silent) {
            return;
        }
        let (Some(height), Some(round)) = (self.nodes[i].core.height(), self.nodes[i].core.round()) else { return };
        self.send_to_all(i, &Wire::Status { from: i as u32, height, round });
        self.dkg_tick(i);
        for message in self.nodes[i].core.gossip() {
            self.broadcast(i, message);
        }
    }

    // ----------------------------------------------------------------------------- adversary

    /// Send a message the core produced, through the adversary if the node is Byzantine.
    fn broadcast(&mut self, i: usize, message: ConsensusMessage) {
        let behaviour = self.nodes[i].behaviour;
        let signer = self.signer_node(i, &message);
        if signer == Some(i) {
            self.trace(i, || match &message {
                ConsensusMessage::Proposal(p) => {
                    format!("propose h{} r{} {:?} pol {:?}", p.proposal.height, p.proposal.round, p.proposal.value, p.proposal.pol_round)
                }
                ConsensusMessage::Vote(v) => format!("{:?} h{} r{} {:?}", v.vote.vote_type, v.vote.height, v.vote.round, v.vote.value),
            });
        }
        match behaviour {
            // The node-host behaviours; this host runs them as honest validators.
            None | Some(Behaviour::Junk | Behaviour::Flood | Behaviour::Grind | Behaviour::CrashReshare) => {
                if let Some(signer) = signer {
                    self.checker.sent(signer, &message);
                }
                if signer == Some(i) {
                    self.note_partial(&message);
                }
                self.send_with_block(i, &message, None);
            }
            Some(Behaviour::Withhold) => {
                let message = match message {
                    ConsensusMessage::Vote(v) if v.vote.vote_type == VoteType::Precommit && signer == Some(i) => {
                        let bare = Vote { extension: Bytes::new(), ..v.vote.clone() };
                        ConsensusMessage::Vote(self.domains.sign_vote(&self.nodes[i].key, bare))
                    }
                    other => other,
                };
                self.send_with_block(i, &message, None);
            }
            Some(Behaviour::Silent) => {}
            Some(Behaviour::Amnesia) => self.amnesia(i, message),
            Some(Behaviour::Equivocate) => self.equivocate(i, message),
            Some(Behaviour::DoubleVote) => {
                let ConsensusMessage::Vote(signed) = &message else {
                    self.send_with_block(i, &message, None);
                    return;
                };
                let mut other = signed.vote.clone();
                other.value = match other.value {
                    Some(_) => None,
                    None => Some(Digest(self.rng.bytes(32).try_into().expect("32 bytes"))),
                };
                other.extension = self.extension_for(i, &other);
                let other = self.domains.sign_vote(&self.nodes[i].key, other);
                for to in 0..self.nodes.len() {
                    let m = if self.rng.chance(0.5) { message.clone() } else { ConsensusMessage::Vote(other.clone()) };
                    self.send(i, to, Wire::Consensus(m).encode());
                }
            }
        }
    }

    fn send_with_block(&mut self, i: usize, message: &ConsensusMessage, only: Option<&[usize]>) {
        if let ConsensusMessage::Proposal(p) = message
            && let Some(body) = self.nodes[i].bodies.get(&(p.proposal.height, p.proposal.value)).cloned()
        {
            let bytes = Wire::Block(body).encode();
            for to in 0..self.nodes.len() {
                if only.is_none_or(|o| o.contains(&to)) {
                    self.send(i, to, bytes.clone());
                }
            }
        }
        let bytes = Wire::Consensus(message.clone()).encode();
        for to in 0..self.nodes.len() {
            if only.is_none_or(|o| o.contains(&to)) {
                self.send(i, to, bytes.clone());
            }
        }
    }

    /// See [`Behaviour::Amnesia`].
    fn amnesia(&mut self, i: usize, message: ConsensusMessage) {
        let group_a: Vec<usize> =
            self.split.0.iter().copied().chain((0..self.nodes.len()).filter(|n| !self.checker.is_honest(*n))).collect();
        let signed = match message {
            ConsensusMessage::Proposal(_) => return self.send_with_block(i, &message, Some(&group_a)),
            ConsensusMessage::Vote(v) => v,
        };
        let proposal = self.nodes[i].core.proposal(signed.vote.round).map(|p| p.proposal.clone());
        let value = proposal.as_ref().map(|p| p.value).or(signed.vote.value);
        let key = self.nodes[i].key.clone();
        let vote = |value: Option<ValueId>| {
            let vote = Vote { value, ..signed.vote.clone() };
            let extension = self.extension_for(i, &vote);
            ConsensusMessage::Vote(self.domains.sign_vote(&key, Vote { extension, ..vote }))
        };
        let own_round = proposal.is_some_and(|p| Some(p.proposer) == self.my_index(i));
        match (signed.vote.vote_type, own_round, self.split.0.first().copied()) {
            (VoteType::Precommit, true, Some(victim)) if value.is_some() => {
                let (decisive, nil) = (vote(value), vote(None));
                let others: Vec<usize> = (0..self.nodes.len()).filter(|n| *n != victim).collect();
                self.send_with_block(i, &decisive, Some(&[victim]));
                self.send_with_block(i, &nil, Some(&others));
                if self.cfg.faults.partition && self.healed_at.is_none() {
                    self.net.muted_until[victim] = self.now + self.net.latency + self.net.jitter + AMNESIA_MUTE;
                }
            }
            _ => {
                let forgetful = vote(value);
                self.send_with_block(i, &forgetful, None);
            }
        }
    }

    /// Split brain: group A (and the coalition) sees one value, group B another.
    fn equivocate(&mut self, i: usize, message: ConsensusMessage) {
        let byzantine: Vec<usize> = (0..self.nodes.len()).filter(|n| !self.checker.is_honest(*n)).collect();
        let mut group_a = self.split.0.clone();
        group_a.extend(&byzantine);
        let group_b = self.split.1.clone();
        match message {
            ConsensusMessage::Proposal(p) => {
                let (h, r) = (p.proposal.height, p.proposal.round);
                let other = match self.split_proposals.get(&(h, r)) {
                    Some(other) => other.clone(),
                    None => {
                        let mut block = self.beacon_block(i, h, r).expect("the coalition proposes only with σ_{h-1} known");
                        block.payload = [0xbb; 32];
                        let other_body = block.encode();
                        let other_value = value_id(&other_body);
                        self.nodes[i].bodies.insert((h, other_value), other_body);
                        let other = Proposal { value: other_value, ..p.proposal.clone() };
                        let other = self.domains.sign_proposal(&self.nodes[i].key, other);
                        self.split_values.insert((h, r), (p.proposal.value, other_value));
                        self.split_proposals.insert((h, r), other.clone());
                        other
                    }
                };
                self.send_with_block(i, &ConsensusMessage::Proposal(p), Some(&group_a));
                self.send_with_block(i, &ConsensusMessage::Proposal(other), Some(&group_b));
            }
            ConsensusMessage::Vote(v) => {
                let Some(&(a, b)) = self.split_values.get(&(v.vote.height, v.vote.round)) else {
                    self.send_with_block(i, &ConsensusMessage::Vote(v), None);
                    return;
                };
                let vote_a = Vote { value: Some(a), ..v.vote.clone() };
                let vote_a = Vote { extension: self.extension_for(i, &vote_a), ..vote_a };
                let vote_b = Vote { value: Some(b), ..v.vote.clone() };
                let vote_b = Vote { extension: self.extension_for(i, &vote_b), ..vote_b };
                let for_a = self.domains.sign_vote(&self.nodes[i].key, vote_a);
                let for_b = self.domains.sign_vote(&self.nodes[i].key, vote_b);
                self.send_with_block(i, &ConsensusMessage::Vote(for_a), Some(&group_a));
                self.send_with_block(i, &ConsensusMessage::Vote(for_b), Some(&group_b));
            }
        }
    }

    /// Well-formed but wrong input of every kind a real node must shrug off.
    fn send_junk(&mut self, i: usize) {
        let n = self.nodes.len();
        let height = self.nodes[i].core.height().unwrap_or(Height(1)).0;
        let key = self.nodes[i].key.clone();
        let me = self.my_index(i).unwrap_or(ValidatorIndex(i as u32));
        let random_value = |rng: &mut SimRng| (!rng.chance(0.3)).then(|| Digest(rng.bytes(32).try_into().expect("32 bytes")));
        let vote_type = if self.rng.chance(0.5) { VoteType::Prevote } else { VoteType::Precommit };
        let mut junk: Vec<Bytes> = Vec::new();
        // Signed votes for random heights and rounds (near and far).
        let vote = Vote {
            vote_type,
            height: Height(self.rng.range(height.saturating_sub(2), height + 6)),
            round: Round(if self.rng.chance(0.5) { self.rng.range(0, 8) as u32 } else { self.rng.next_u64() as u32 }),
            value: random_value(&mut self.rng),
            validator: me,
            extension: Bytes::new(),
        };
        junk.push(Wire::Consensus(ConsensusMessage::Vote(self.domains.sign_vote(&key, vote.clone()))).encode());
        // Claiming to be an unknown validator, and claiming to be an honest one.
        let as_unknown = Vote { validator: ValidatorIndex(n as u32 + 3), ..vote.clone() };
        junk.push(Wire::Consensus(ConsensusMessage::Vote(self.domains.sign_vote(&key, as_unknown))).encode());
        let as_other = Vote { validator: ValidatorIndex(0), height: Height(height), ..vote.clone() };
        junk.push(Wire::Consensus(ConsensusMessage::Vote(self.domains.sign_vote(&key, as_other))).encode());
        // Signed for another chain.
        let other_chain = ConsensusDomains::new(&ChainId::new("another-chain").expect("valid"));
        junk.push(Wire::Consensus(ConsensusMessage::Vote(other_chain.sign_vote(&key, Vote { height: Height(height), ..vote }))).encode());
        // A proposal for a round it does not propose.
        let proposal = Proposal {
            height: Height(height),
            round: Round(self.rng.range(0, 4) as u32),
            value: Digest([0xab; 32]),
            pol_round: None,
            proposer: me,
        };
        junk.push(Wire::Consensus(ConsensusMessage::Proposal(self.domains.sign_proposal(&key, proposal))).encode());
        // A precommit for the current height whose beacon partial is garbage or another
        // height's: refused and counted (BadExtension) once the beacon runs.
        let precommit = Vote {
            vote_type: VoteType::Precommit,
            height: Height(height),
            round: self.nodes[i].core.round().unwrap_or(Round::ZERO),
            value: Some(Digest(self.rng.bytes(32).try_into().expect("32 bytes"))),
            validator: me,
            extension: if self.rng.chance(0.5) {
                Bytes::from(self.rng.bytes(53))
            } else {
                let previous = self.nodes[i].beacon.previous_extension.clone();
                tcp_consensus::PrecommitExtension::extend(previous.as_ref(), previous.height(), Round::ZERO, &Digest([0; 32]))
            },
        };
        junk.push(Wire::Consensus(ConsensusMessage::Vote(self.domains.sign_vote(&key, precommit))).encode());
        // Malformed DKG messages.
        junk.push(
            Wire::Dkg {
                from: i as u32,
                message: Bytes::from({
                    let len = self.rng.range(0, 300) as usize;
                    self.rng.bytes(len)
                }),
            }
            .encode(),
        );
        // Garbage and oversized messages.
        let len = self.rng.range(0, 200) as usize;
        junk.push(Bytes::from(self.rng.bytes(len)));
        let mut oversized = vec![0u8; crate::block::MAX_BLOCK_BYTES + 64];
        oversized[1] = 1;
        junk.push(Bytes::from(oversized));
        for bytes in junk {
            let to = self.rng.range(0, n as u64) as usize;
            self.send(i, to, bytes);
        }
    }
}
