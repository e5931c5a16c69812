//! One simulated run: N instances of the node's own event loop (`tcp_node::node`, the code
//! `tcpchain node` runs) on commonware's deterministic runtime and simulated network, each
//! with a [`MemoryDisk`] that loses unsynced writes when its node crashes. The simulator owns
//! only the fault schedule, the adversaries (`crate::adversary`) and the observation: the
//! checker sees every consensus message an honest node sends, and after the run reads every
//! node's chain from its own store.

use crate::adversary::Adversary;
use crate::chain::SimChain;
use crate::checker::Checker;
use crate::host::{SimHost, SimPeers, Tap, TappedReceiver, TappedSender};
use crate::rng::SimRng;
use crate::{Behaviour, SimConfig, SimReport};
use commonware_p2p::simulated::{self, Link};
use commonware_runtime::{Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _, deterministic};
use futures::FutureExt as _;
use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};
use tcp_consensus::{CommitCertificate, ConsensusDomains, ValueId};
use tcp_crypto::Ed25519PublicKey;
use tcp_node::NodeError;
use tcp_node::disk::MemoryDisk;
use tcp_node::node::{NodeHandle, NodeNetwork, Request};
use tcp_node::wire::{CONSENSUS_CHANNEL, TRANSACTION_CHANNEL};
use tcp_types::Height;

mod compute;

/// How often the simulator looks at its nodes and applies due faults.
const TICK: Duration = Duration::from_millis(50);
/// How long the amnesia attacker's victim is cut off (before the network heals).
const AMNESIA_MUTE: Duration = Duration::from_secs(5);
/// Messages per second a peer may send on a simulated channel (as in production, bursts are
/// what a height needs).
const QUOTA_PER_SECOND: u32 = 5_000;

enum Fault {
    /// Kill the process; with `Some(k)`, the machine loses power after `k` more disk operations
    /// instead (the node dies at its next write, possibly between two steps of a commit).
    Crash {
        node: usize,
        power_cut_after: Option<u64>,
        down: Duration,
    },
    Partition {
        groups: Vec<u8>,
    },
    PartitionEnd,
    Heal,
}

struct SimNode {
    disk: Arc<MemoryDisk>,
    task: Option<Handle<Result<(), NodeError>>>,
    handle_rx: Option<futures::channel::oneshot::Receiver<NodeHandle>>,
    handle: Option<NodeHandle>,
    /// When a crashed node comes back.
    restart_at: Option<Duration>,
    incarnation: u64,
    honest: bool,
    /// Carries the quorum of precommits that helps its coalition (the grind behaviour).
    grinds: bool,
    /// Crashed in the middle of every beacon ceremony (the crash-reshare behaviour).
    crash_in_reshares: bool,
    /// The ceremony round it was last crashed in.
    crashed_in_ceremony: Option<u64>,
    adversary: Option<Arc<Mutex<Adversary>>>,
    committed: u64,
    /// When this node was restarted: its own committed height, and the highest any honest
    /// node had committed.
    restarts: Vec<(u64, u64)>,
    /// The highest height any honest node had committed when this node crashed.
    crashes: Vec<u64>,
}

/// A precommit an honest node sent, with its partial: the restarted-validator check reads them.
pub(crate) struct SentPrecommit {
    pub node: usize,
    pub vote: tcp_consensus::SignedVote,
}


struct Run {
    context: deterministic::Context,
    cfg: SimConfig,
    chain: Arc<SimChain>,
    rng: SimRng,
    oracle: simulated::Oracle<Ed25519PublicKey, deterministic::Context>,
    keys: Vec<Ed25519PublicKey>,
    nodes: Vec<SimNode>,
    checker: Arc<Mutex<Checker>>,
    precommits: Arc<Mutex<Vec<SentPrecommit>>>,
    messages_sent: Arc<AtomicU64>,
    link: Link,
    partition: Option<Vec<u8>>,
    coalition: Arc<Mutex<crate::adversary::Coalition>>,
    /// Nodes whose outgoing links are cut, until when.
    muted: Vec<(usize, Duration)>,
    faults: Vec<(Duration, Fault)>,
    healed_at: Option<Duration>,
    goal: u64,
    deadline: Duration,
    report: SimReport,
    /// Churn: which bond and unbond transactions were submitted.
    /// Churn transactions sent: (identity, bonds) → the chain height when last sent.
    churn_done: BTreeMap<(usize, bool), u64>,
    /// The compute node the simulator plays (releases).
    compute: Option<compute::ComputeClient>,
}

/// Where the virtual clock starts: blocks carry real-looking dates, which dated attestation
/// collateral needs.
fn start_time() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(crate::chain::START_SECS)
}

/// Run one simulation to its end and report what the checker found.
pub fn run(cfg: SimConfig) -> SimReport {
    assert!(cfg.validators >= 1 && cfg.byzantine <= cfg.validators, "invalid simulation size");
    let chain = Arc::new(SimChain::new(&cfg));
    let runtime = deterministic::Config::new().with_seed(cfg.seed).with_catch_panics(true).with_start_time(start_time());
    deterministic::Runner::new(runtime).start(|context| async move {
        let mut run = Run::new(context, cfg, chain).await;
        run.drive().await;
        run.finish()
    })
}

impl Run {
    async fn new(context: deterministic::Context, cfg: SimConfig, chain: Arc<SimChain>) -> Run {
        let mut rng = SimRng::new(cfg.seed);
        let pool = cfg.pool_size();
        let keys: Vec<Ed25519PublicKey> = chain.identities.iter().map(|id| id.public_key()).collect();
        let network_config = simulated::Config {
            max_size: (chain.spec.params().max_block_bytes + 256 * 1024) as u32,
            max_peers_per_set: NonZeroUsize::new(pool).expect("a node"),
            disconnect_on_block: true,
            tracked_peer_sets: NonZeroUsize::new(1).expect("one"),
        };
        let (network, oracle) = simulated::Network::new_with_peers(context.child("network"), network_config, keys.clone()).await;
        network.start();
        let latency = Duration::from_millis(rng.range(5, 50));
        let jitter = Duration::from_millis(rng.range(0, 40));
        let lost_percent = if cfg.faults.loss { rng.range(5, 20) } else { 0 };
        let success_rate = commonware_utils::Probability::new(100 - lost_percent, 100).expect("a probability");
        let link = Link { latency, jitter, success_rate };

        let byzantine_from = cfg.validators - cfg.byzantine;
        // The coalition of Byzantine validators, and the two honest groups its splits show
        // different things.
        let mut groups = (Vec::new(), Vec::new());
        for (i, key) in keys.iter().enumerate().filter(|(i, _)| *i < byzantine_from || *i >= cfg.validators) {
            if i % 2 == 0 || rng.chance(0.3) { groups.0.push(key.clone()) } else { groups.1.push(key.clone()) }
        }
        let coalition = Arc::new(Mutex::new(crate::adversary::Coalition::new(keys[byzantine_from..cfg.validators].to_vec(), groups)));
        let picks = [
            Behaviour::Equivocate,
            Behaviour::Equivocate,
            Behaviour::DoubleVote,
            Behaviour::Amnesia,
            Behaviour::Silent,
            Behaviour::Junk,
            Behaviour::Withhold,
            Behaviour::Flood,
            Behaviour::ForgeFinality,
        ];
        let domains = ConsensusDomains::new(&chain.spec.chain_id);
        let mut report =
            SimReport { seed: cfg.seed, proposer_observed: vec![0; pool], proposer_expected: vec![0.0; pool], ..Default::default() };
        let mut honest = Vec::with_capacity(pool);
        let mut nodes = Vec::with_capacity(pool);
        for i in 0..pool {
            let picked = *rng.pick(&picks);
            let pinned = cfg.behaviours.get(i.saturating_sub(byzantine_from) % cfg.behaviours.len().max(1)).copied();
            let is_byzantine = i >= byzantine_from && i < cfg.validators;
            // Crash-reshare is a crash schedule: pinned, it runs whatever --faults says.
            let behaviour = if is_byzantine && pinned == Some(Behaviour::CrashReshare) {
                pinned
            } else {
                (is_byzantine && cfg.faults.byzantine).then(|| pinned.unwrap_or(picked))
            };
            if let Some(b) = behaviour {
                report.behaviours.push(b);
            }
            // Crash-reshare is a fault schedule, not a rewrite: its validators run honestly.
            let rewrites = behaviour.filter(|b| !matches!(b, Behaviour::CrashReshare | Behaviour::Grind));
            let adversary = rewrites.map(|b| {
                Arc::new(Mutex::new(Adversary::new(
                    b,
                    chain.identities[i].consensus_key.clone(),
                    domains.clone(),
                    cfg.validators,
                    cfg.seed ^ (i as u64) << 32,
                    coalition.clone(),
                )))
            });
            // Crash-reshare validators run the honest code and only crash: they are held to
            // everything an honest node is.
            let honest_code = !is_byzantine || behaviour == Some(Behaviour::CrashReshare);
            honest.push(honest_code);
            nodes.push(SimNode {
                disk: Arc::new(MemoryDisk::new()),
                task: None,
                handle_rx: None,
                handle: None,
                restart_at: None,
                incarnation: 0,
                honest: honest_code,
                crash_in_reshares: behaviour == Some(Behaviour::CrashReshare),
                grinds: behaviour == Some(Behaviour::Grind),
                crashed_in_ceremony: None,
                adversary,
                committed: 0,
                restarts: Vec::new(),
                crashes: Vec::new(),
            });
        }
        let mut run = Run {
            context,
            checker: Arc::new(Mutex::new(Checker::new(honest, domains))),
            precommits: Arc::new(Mutex::new(Vec::new())),
            messages_sent: Arc::new(AtomicU64::new(0)),
            chain,
            rng,
            oracle,
            keys,
            nodes,
            link,
            partition: None,
            coalition,
            muted: Vec::new(),
            faults: Vec::new(),
            healed_at: None,
            goal: 0,
            deadline: Duration::MAX,
            report,
            churn_done: BTreeMap::new(),
            compute: cfg.releases.then(compute::ComputeClient::new),
            cfg,
        };
        run.connect_all().await;
        run
    }

    /// Virtual time since the run started.
    fn now(&self) -> Duration {
        self.context.current().duration_since(start_time()).unwrap_or_default()
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            eprintln!("{:>10.3}s {}", self.now().as_secs_f64(), what());
        }
    }

    /// Links between every pair of identities, except across the current partition.
    async fn connect_all(&mut self) {
        let n = self.keys.len();
        let muted: Vec<usize> = self.muted.iter().map(|(m, _)| *m).collect();
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let _ = self.oracle.remove_link(self.keys[a].clone(), self.keys[b].clone()).await;
                let split = self.partition.as_ref().is_some_and(|g| g[a] != g[b]) || muted.contains(&a);
                if !split {
                    let _ = self.oracle.add_link(self.keys[a].clone(), self.keys[b].clone(), self.link.clone()).await;
                }
            }
        }
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.cfg.seed.to_be_bytes());
        seed[8..16].copy_from_slice(&(i as u64).to_be_bytes());
        seed[16..24].copy_from_slice(&node.incarnation.to_be_bytes());
        let disk = node.disk.clone();
        let grinds = node.grinds;
        let mut setup = self.chain.setup(&self.cfg, i, disk, seed);
        if grinds {
            let coalition = (0..self.cfg.validators).filter(|j| !self.nodes[*j].honest).map(|j| self.keys[j].clone()).collect();
            setup.last_commit_choice = Some(crate::adversary::grinding_builder(coalition));
        }
        let node = &mut self.nodes[i];
        let tap = Arc::new(Tap {
            node: i,
            key: self.chain.identities[i].consensus_key.clone(),
            domains: ConsensusDomains::new(&self.chain.spec.chain_id),
            checker: self.checker.clone(),
            adversary: node.adversary.clone(),
            messages_sent: self.messages_sent.clone(),
            precommits: node.honest.then(|| self.precommits.clone()),
        });
        let control = self.oracle.control(self.keys[i].clone());
        let (handle_tx, handle_rx) = futures::channel::oneshot::channel();
        node.handle_rx = Some(handle_rx);
        node.handle = None;
        let quota = Quota::per_second(NonZeroU32::new(QUOTA_PER_SECOND).expect("non-zero"));
        let task = self.context.child("node").with_attribute("index", i).spawn(move |context| async move {
            let closed = |e: commonware_p2p::simulated::Error| NodeError::Network(e.to_string());
            let (consensus, consensus_rx) = control.register(CONSENSUS_CHANNEL, quota).await.map_err(closed)?;
            let (transactions, transactions_rx) = control.register(TRANSACTION_CHANNEL, quota).await.map_err(closed)?;
            let adversary = tap.adversary.clone();
            let network = NodeNetwork::<SimHost> {
                consensus: (
                    TappedSender { raw: consensus, tap: tap.clone() },
                    TappedReceiver { inner: consensus_rx, adversary: adversary.clone() },
                ),
                transactions: (TappedSender { raw: transactions, tap }, TappedReceiver { inner: transactions_rx, adversary }),
                peers: SimPeers { control },
            };
            let (node, handle, events, _events) = tcp_node::node::start::<SimHost>(context, setup, |_| Ok(network))?;
            let _ = handle_tx.send(handle);
            let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
            let result = node.run(events, shutdown_rx).await;
            drop(shutdown);
            result
        });
        node.task = Some(task);
    }

    /// Kill node `i` now: its disk keeps what was synced and a random prefix of the rest.
    fn crash(&mut self, i: usize, down: Duration) {
        let keep_seed = self.rng.range(0, u64::MAX);
        let mut keep_rng = SimRng::new(keep_seed);
        let now = self.now();
        let node = &mut self.nodes[i];
        // The disk first: the dying process's handles fail before anything of it runs again.
        node.disk.crash(|n| keep_rng.range(0, n as u64 + 1) as usize);
        if let Some(task) = node.task.take() {
            task.abort();
        }
        node.handle = None;
        node.handle_rx = None;
        node.restart_at = Some(now + down);
        self.report.crashes += 1;
        let network = self.honest_heights().1;
        self.nodes[i].crashes.push(network);
    }

    fn plan_faults(&mut self) {
        let faults = self.cfg.faults;
        if !faults.network_or_crash() && !self.nodes.iter().any(|n| n.crash_in_reshares) {
            // Nothing to heal from: the liveness bound runs from the start.
            self.faults = vec![(Duration::ZERO, Fault::Heal)];
            return;
        }
        let window = Duration::from_secs(10).max(self.cfg.block_interval * (self.cfg.heights as u32) * 2);
        let n = self.cfg.validators;
        let mut planned = Vec::new();
        if faults.partition {
            let mut t = Duration::from_millis(self.rng.range(0, 2000));
            while t < window {
                let duration = Duration::from_millis(self.rng.range(500, 8000));
                let group_count = self.rng.range(2, 4);
                let groups: Vec<u8> = (0..self.keys.len()).map(|_| self.rng.range(0, group_count) as u8).collect();
                planned.push((t, Fault::Partition { groups }));
                planned.push(((t + duration).min(window), Fault::PartitionEnd));
                t += duration + Duration::from_millis(self.rng.range(500, 4000));
            }
        }
        if faults.crash {
            for node in 0..n {
                if !self.nodes[node].honest || !self.rng.chance(0.5) {
                    continue;
                }
                for _ in 0..self.rng.range(1, 4) {
                    let at = Duration::from_millis(self.rng.range(0, window.as_millis() as u64));
                    let down = Duration::from_millis(self.rng.range(200, 5000));
                    let power_cut_after = self.rng.chance(0.5).then(|| self.rng.range(0, 40));
                    planned.push((at, Fault::Crash { node, power_cut_after, down }));
                }
            }
        }
        planned.push((window, Fault::Heal));
        planned.sort_by_key(|(at, _)| *at);
        planned.reverse();
        self.faults = planned;
    }

    async fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Crash { node, power_cut_after, down } => {
                if self.nodes[node].task.is_none() || self.nodes[node].restart_at.is_some() {
                    return;
                }
                match power_cut_after {
                    Some(k) => {
                        self.trace(|| format!("node {node}: power cut after {k} disk operations"));
                        self.nodes[node].disk.cut_power_after(k);
                        // It dies at its next write; if it has not by then, it is killed.
                        self.nodes[node].restart_at = Some(self.now() + down);
                    }
                    None => {
                        self.trace(|| format!("node {node}: killed for {down:?}"));
                        self.crash(node, down);
                    }
                }
            }
            Fault::Partition { groups } => {
                self.trace(|| format!("partition {groups:?}"));
                self.partition = Some(groups);
                self.report.partitions += 1;
                self.connect_all().await;
            }
            Fault::PartitionEnd => {
                self.partition = None;
                self.connect_all().await;
            }
            Fault::Heal => self.heal().await,
        }
    }

    /// The amnesia attacker's accomplice, the network: before it heals, the victim of a split
    /// round is cut off for a while, so its decision reaches the others late.
    async fn mute_victims(&mut self) {
        let victims = self.coalition.lock().unwrap_or_else(|e| e.into_inner()).take_mute_requests();
        if self.healed_at.is_some() || !self.cfg.faults.network_or_crash() {
            return;
        }
        let now = self.now();
        for victim in victims {
            let Some(v) = self.keys.iter().position(|k| *k == victim) else { continue };
            if self.muted.iter().any(|(m, _)| *m == v) {
                continue;
            }
            self.trace(|| format!("node {v}: muted (amnesia victim)"));
            for other in 0..self.keys.len() {
                if other != v {
                    let _ = self.oracle.remove_link(self.keys[v].clone(), self.keys[other].clone()).await;
                }
            }
            self.muted.push((v, now + AMNESIA_MUTE));
        }
        if self.muted.iter().any(|(_, until)| *until <= now) {
            self.muted.retain(|(_, until)| *until > now);
            self.connect_all().await;
        }
    }

    async fn heal(&mut self) {
        self.trace(|| "heal".into());
        self.partition = None;
        self.muted.clear();
        self.link.success_rate = commonware_utils::Probability::new(1, 1).expect("a probability");
        self.connect_all().await;
        let now = self.now();
        for node in &mut self.nodes {
            if node.restart_at.is_some() {
                node.restart_at = Some(now);
            }
        }
        self.healed_at = Some(now);
        let (lo, hi) = self.honest_heights();
        self.goal = self.cfg.heights.max(hi + self.cfg.liveness_heights);
        let (base, per_height) = self.cfg.liveness_bound;
        self.deadline = now + base + per_height * (self.goal.saturating_sub(lo)) as u32;
    }

    fn honest_heights(&self) -> (u64, u64) {
        let heights = self.nodes.iter().take(self.cfg.validators).filter(|n| n.honest).map(|n| n.committed);
        (heights.clone().min().unwrap_or(0), heights.max().unwrap_or(0))
    }

    /// Look at every node: collect handles, notice exits, restart those whose time came.
    fn poll_nodes(&mut self) {
        let now = self.now();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if let Some(rx) = &mut node.handle_rx
                && let Ok(Some(handle)) = rx.try_recv()
            {
                node.handle = Some(handle);
                node.handle_rx = None;
            }
            if let Some(task) = &mut node.task
                && let Some(result) = task.now_or_never()
            {
                node.task = None;
                node.handle = None;
                node.handle_rx = None;
                let power_cut = node.disk.power_cut();
                match result {
                    Ok(Err(_)) | Ok(Ok(())) if power_cut => {
                        // The simulated power cut: the process died at a failing write.
                        if node.restart_at.is_none() {
                            node.restart_at = Some(now);
                        }
                        self.report.crashes += 1;
                        let network = self.honest_heights().1;
                        self.nodes[i].crashes.push(network);
                        let keep_seed = self.rng.range(0, u64::MAX);
                        let mut keep_rng = SimRng::new(keep_seed);
                        self.nodes[i].disk.crash(|n| keep_rng.range(0, n as u64 + 1) as usize);
                    }
                    Ok(Err(e)) => self.report.node_failures.push(format!("node {i} exited with an error: {e}")),
                    Ok(Ok(())) => self.report.node_failures.push(format!("node {i} stopped by itself")),
                    Err(e) => self.report.node_failures.push(format!("node {i} panicked ({e})")),
                }
            }
            let node = &self.nodes[i];
            if let Some(at) = node.restart_at
                && at <= now
            {
                if self.nodes[i].task.is_some() {
                    // A power cut that no write met before its time: kill it now.
                    self.crash(i, Duration::ZERO);
                }
                self.nodes[i].restart_at = None;
                let committed = self.nodes[i].committed;
                let network = self.honest_heights().1;
                self.nodes[i].restarts.push((committed, network));
                self.report.wal_replays += 1;
                self.trace(|| format!("node {i}: restarted at committed height {committed}"));
                self.spawn(i);
            }
            let seen = self.nodes[i].handle.as_ref().and_then(|h| {
                let status = h.status.borrow();
                Some((h.store.height().ok()?, status.buffers.clone(), status.epoch, status.validators))
            });
            if let Some((height, buffers, epoch, validators)) = seen {
                if height.0 > self.nodes[i].committed {
                    self.trace(|| format!("node {i}: committed {} (epoch {epoch}, {validators} validators)", height.0));
                }
                self.nodes[i].committed = self.nodes[i].committed.max(height.0);
                self.check_buffers(i, &buffers);
            }
        }
    }

    /// The crash-reshare behaviour: a validator whose node sees a ceremony in progress is
    /// crashed once per ceremony, at a random moment of it (often after it accepted dealings
    /// and before its share is final), and restarted soon after.
    fn crash_in_reshares(&mut self) {
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if !node.crash_in_reshares || node.task.is_none() || node.restart_at.is_some() {
                continue;
            }
            let Some(round) = node.handle.as_ref().and_then(|h| h.status.borrow().ceremony_round) else { continue };
            if node.crashed_in_ceremony == Some(round) || !self.rng.chance(0.1) {
                continue;
            }
            self.nodes[i].crashed_in_ceremony = Some(round);
            let down = Duration::from_millis(self.rng.range(100, 1500));
            if self.rng.chance(0.5) {
                let k = self.rng.range(0, 30);
                self.trace(|| format!("node {i}: power cut after {k} disk operations in ceremony {round}"));
                self.nodes[i].disk.cut_power_after(k);
                self.nodes[i].restart_at = Some(self.now() + down);
            } else {
                self.trace(|| format!("node {i}: killed in ceremony {round} for {down:?}"));
                self.crash(i, down);
            }
        }
    }

    /// Every buffer a peer can fill stays within its limit in bytes (the node reports them).
    fn check_buffers(&mut self, node: usize, buffers: &[tcp_node::node::BufferUsage]) {
        for b in buffers {
            let peak = self.report.buffer_peaks.entry(b.name.to_string()).or_insert((0, b.limit));
            if b.bytes > peak.0 {
                *peak = (b.bytes, b.limit);
            }
            if b.bytes > b.limit && self.nodes[node].honest {
                let at = self.now().as_secs_f64();
                self.report
                    .memory_violations
                    .push(format!("node {node} at {at:.1}s: {} holds {} bytes, limit {}", b.name, b.bytes, b.limit));
            }
        }
    }

    /// Churn: the candidates bond as soon as the chain runs (they join at the next plan), and
    /// from the second epoch on one honest genesis validator per epoch unbonds, so every epoch
    /// boundary changes the set and the beacon reshares to it.
    fn churn(&mut self) {
        if !self.cfg.churn {
            return;
        }
        let (_, chain) = self.honest_heights();
        if chain < 2 {
            return;
        }
        let epoch = chain / self.cfg.epoch_length;
        let mut submissions = Vec::new();
        for candidate in self.cfg.validators..self.cfg.pool_size() {
            submissions.push((candidate, true));
        }
        let leavers: Vec<usize> = (0..self.cfg.validators - self.cfg.byzantine).collect();
        for (k, leaver) in leavers.iter().enumerate().take(epoch as usize) {
            // Keep more than two thirds of the set honest: at most as many leave as joined.
            if k + 1 >= self.cfg.pool_size() - self.cfg.validators + 1 {
                break;
            }
            submissions.push((*leaver, false));
        }
        for (who, bond) in submissions {
            // A bond is sent once. An unbond is sent again every few heights until the
            // validator has left: the node it went to may crash before gossiping it (sending the
            // same transaction again is harmless: nodes that have it refuse the duplicate).
            if let Some(sent_at) = self.churn_done.get(&(who, bond)) {
                if bond || chain < sent_at + 3 {
                    continue;
                }
                let key = self.chain.identities[who].public_key();
                let left = self.nodes.iter().filter(|n| n.honest).filter_map(|n| n.handle.as_ref()).any(|h| {
                    let state = h.committed_state.borrow().clone();
                    state.state.validators().iter().find(|v| v.consensus_key == key).is_none_or(|v| v.bonded == 0)
                        || state.state.unbondings().iter().any(|u| u.operator == self.chain.identities[who].operator.address())
                });
                if left {
                    continue;
                }
            }
            let Some(submitter) = (0..self.cfg.validators).find(|j| self.nodes[*j].honest && self.nodes[*j].handle.is_some()) else {
                return;
            };
            let identity = &self.chain.identities[who];
            let chain_id = &self.chain.spec.chain_id;
            let action = if bond {
                use tcp_beacon::validator_key::{public_key, public_key_bytes, sign_possession};
                tcp_state::Action::Bond {
                    consensus_key: identity.public_key(),
                    bls_key: public_key_bytes(&public_key(&identity.bls_key)),
                    p2p: crate::chain::p2p_address(who).to_string(),
                    amount: u128::from(crate::chain::coin_base(who)),
                    possession: tcp_state::staking::sign_bond(&identity.consensus_key, chain_id, &identity.operator.address()),
                    bls_possession: sign_possession(&identity.bls_key, chain_id, &identity.operator.address().0),
                }
            } else {
                // All of it, as bonded when the transaction applies (rewards compound into the
                // bond every block, so any amount read now would leave a rest): it leaves.
                tcp_state::Action::Unbond { amount: tcp_state::transaction::UNBOND_ALL }
            };
            // Each operator sends at most these two transactions, in this order.
            let nonce = u64::from(!bond && who >= self.cfg.validators);
            let tx = tcp_state::Transaction { chain_id: chain_id.clone(), nonce, gas_price: 1, gas_limit: 1_000_000, action };
            let Ok(verified) = tx.sign(&identity.operator).verify(chain_id) else { continue };
            let (reply, _answer) = tokio::sync::oneshot::channel();
            let handle = self.nodes[submitter].handle.as_ref().expect("found with a handle");
            if handle.requests.try_send(Request::Submit { tx: verified, reply }).is_ok() {
                self.trace(|| format!("churn: identity {who} {}", if bond { "bonds" } else { "unbonds" }));
                self.churn_done.insert((who, bond), chain);
            }
        }
    }

    async fn drive(&mut self) {
        self.plan_faults();
        for i in 0..self.nodes.len() {
            self.spawn(i);
        }
        loop {
            self.context.sleep(TICK).await;
            let now = self.now();
            while self.faults.last().is_some_and(|(at, _)| *at <= now) {
                let (_, fault) = self.faults.pop().expect("peeked");
                self.apply(fault).await;
            }
            self.mute_victims().await;
            self.poll_nodes();
            self.churn();
            self.compute_step();
            self.crash_in_reshares();
            if let Some(healed) = self.healed_at {
                let (lo, _) = self.honest_heights();
                if lo >= self.goal {
                    return;
                }
                if now > self.deadline {
                    let heights: Vec<String> = self.nodes.iter().enumerate().map(|(i, n)| format!("{i}:{}", n.committed)).collect();
                    self.report.liveness_failure = Some(format!(
                        "after the network healed at {:.1}s, honest nodes reached only height {lo} of {} by {:.1}s (committed: {})",
                        healed.as_secs_f64(),
                        self.goal,
                        now.as_secs_f64(),
                        heights.join(" ")
                    ));
                    return;
                }
            }
        }
    }

    /// After the run: every honest node's chain read from its own store and checked height by
    /// height against a reference ledger replayed from the longest honest chain.
    fn finish(mut self) -> SimReport {
        self.check_releases_recorded();
        for node in &mut self.nodes {
            if let Some(task) = node.task.take() {
                task.abort();
            }
        }
        self.report.virtual_time = self.now();
        self.report.messages_sent = self.messages_sent.load(std::sync::atomic::Ordering::Relaxed);
        // Every node's chain from its own disk: a node down at the end is read as it would
        // restart.
        let spec = self.chain.spec.clone();
        let mut stores: Vec<Option<tcp_node::store::Store>> = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            stores.push(match &node.handle {
                Some(h) => Some(h.store.clone()),
                None => match tcp_node::store::Store::open(node.disk.as_ref(), &crate::chain::data_dir(i), &spec) {
                    Ok(store) => Some(store),
                    Err(e) => {
                        if node.honest {
                            self.report.node_failures.push(format!("node {i}'s data does not reopen: {e}"));
                        }
                        None
                    }
                },
            });
        }
        let reference = (0..self.cfg.validators)
            .filter(|i| self.nodes[*i].honest)
            .filter_map(|i| Some((stores[i].as_ref()?.height().ok()?.0, i)))
            .max();
        if let Some((top, reference)) = reference {
            self.check_chains(&stores, reference, top);
        }
        let checker = self.checker.lock().unwrap_or_else(|e| e.into_inner());
        self.report.violations = checker.violations.clone();
        self.report.heights_decided = checker.min_honest_height();
        self.report.evidence = checker.evidence_seen;
        drop(checker);
        self.report
    }

    /// The round-0 proposer the beacon drew for `height`, and the probabilities it drew with
    /// (the fairness test compares the two over a run).
    fn tally_proposer(&mut self, ledger: &tcp_beacon::Ledger, height: Height) {
        if !ledger.beacon_active(Height(height.0.saturating_sub(2))) {
            return;
        }
        let (Some(chosen), Some(randomness)) = (ledger.proposer(height, tcp_types::Round::ZERO), ledger.selection_randomness(height))
        else {
            return;
        };
        let members = ledger.validators();
        let identity = |key: &Ed25519PublicKey| self.keys.iter().position(|k| k == key);
        for (k, p) in tcp_beacon::selection::selection_probabilities(&ledger.weights(height)).into_iter().enumerate() {
            if let Some(i) = identity(&members[k].key) {
                self.report.proposer_expected[i] += p;
            }
        }
        if let Some(i) = identity(&members[chosen.as_usize()].key) {
            self.report.proposer_observed[i] += 1;
            self.report.beacon_trace.push((height.0, i, randomness));
        }
    }

    fn check_chains(&mut self, stores: &[Option<tcp_node::store::Store>], reference: usize, top: u64) {
        let spec = &self.chain.spec;
        let store = stores[reference].as_ref().expect("the reference has a store");
        let Ok(state) = store.account_state(spec.state_config()) else {
            self.report.beacon_failures.push("the reference node's state cannot be read".into());
            return;
        };
        let mut ledger = tcp_node::node::genesis_ledger(spec, Arc::new(RwLock::new(state)));
        let mut group = tcp_node::node::genesis_group(spec);
        let mut master_key: Option<Vec<u8>> = None;
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(self.cfg.seed);
        let mut sent_by_height: BTreeMap<u64, Vec<&SentPrecommit>> = BTreeMap::new();
        let precommits = self.precommits.clone();
        let precommits = precommits.lock().unwrap_or_else(|e| e.into_inner());
        for p in precommits.iter() {
            sent_by_height.entry(p.vote.vote.height.0).or_default().push(p);
        }
        // Restarted validators owe a precommit with a valid partial before their epoch ends.
        // (node, epoch end, precommits seen without a partial, with one that failed)
        let mut owed: Vec<(usize, u64, u32, u32)> = Vec::new();
        // φ already checked, so each distinct one costs one pairing check, not one per node.
        let mut verified_finality: std::collections::HashSet<(Height, ValueId, [u8; tcp_beacon::Finality::BYTES])> = Default::default();
        for h in 1..=top {
            let height = Height(h);
            let Ok(Some(bytes)) = store.block(height) else { break };
            // σ_{h-1}, which the partials of h sign over, is carried by block h.
            if let Ok(block) = tcp_node::block::Block::decode(&bytes, tcp_node::block::MAX_BLOCK_BYTES)
                && let Some(sigma) = block.header.previous_signature
            {
                ledger.offer_signature(Height(h - 1), sigma);
            }
            // φ_{h-1} in header h, checked here on its own (not through the node's validity
            // rules): present once the beacon ran at h-1, signed by the group key over the parent
            // header, of the round of the commit the block carries.
            if let Ok(block) = tcp_node::block::Block::decode(&bytes, tcp_node::block::MAX_BLOCK_BYTES)
                && h > 1
                && ledger.beacon_active(Height(h - 1))
            {
                let key = ledger.group_key().copied();
                let problem = match (block.header.previous_finality, key) {
                    (None, _) => Some("carries no φ of its parent".to_string()),
                    (Some(_), None) => Some("the reference ledger has no group key".to_string()),
                    (Some(f), Some(key)) => {
                        if block.last_commit.as_ref().is_some_and(|c| c.round != f.round) {
                            Some(format!("carries φ of round {} for a commit of another round", f.round.0))
                        } else if !tcp_beacon::verify_finality(&key, ledger.chain_id(), Height(h - 1), &block.header.parent, &f) {
                            Some("carries a φ of its parent that does not verify".to_string())
                        } else {
                            None
                        }
                    }
                };
                if let Some(problem) = problem {
                    self.report.beacon_failures.push(format!("committed block {h} {problem}"));
                }
            }
            let (params, extension) = ledger.height_params(height, |_| None);
            let epoch_end = ledger.epoch_end().0;
            self.tally_proposer(&ledger, height);
            for (i, node) in self.nodes.iter().enumerate() {
                for (_, network) in node.restarts.iter().filter(|(own, network)| own.max(network) + 1 == h) {
                    let in_set = params.validators.index_of(&self.keys[i]).is_some();
                    // Held to it with room left in the epoch once caught up: a few heights.
                    if node.honest && in_set && extension.is_active() && epoch_end >= network + 5 && !owed.iter().any(|o| o.0 == i) {
                        owed.push((i, epoch_end, 0, 0));
                    }
                }
            }
            // A node that crashes again owes nothing for the restart before: its next restart
            // opens a new debt.
            owed.retain(|o| !self.nodes[o.0].crashes.iter().any(|c| c + 1 == h));
            // Settle what this height's precommits pay.
            if extension.is_active() {
                for sent in sent_by_height.get(&h).map(Vec::as_slice).unwrap_or_default() {
                    let v = &sent.vote.vote;
                    let Some(value) = v.value else { continue };
                    if params.validators.index_of(&self.keys[sent.node]) != Some(v.validator) {
                        continue;
                    }
                    let valid = !v.extension.is_empty()
                        && tcp_consensus::PrecommitExtension::verify(
                            extension.as_ref(),
                            height,
                            v.round,
                            v.validator,
                            &value,
                            &v.extension,
                        );
                    // An honest validator of the sharing that never lost its disk always signs
                    // its partials: a non-nil precommit without them means it precommitted
                    // before it knew σ_{h-1} (a certificate could then carry it).
                    let node = &self.nodes[sent.node];
                    let holds_share = ledger.participants(height).get(v.validator.as_usize()).is_some_and(|p| p.is_some());
                    if v.extension.is_empty() && node.crashes.is_empty() && holds_share {
                        self.report.beacon_failures.push(format!(
                            "node {} precommitted a value at height {h} round {} without its partials",
                            sent.node, v.round.0
                        ));
                    }
                    if valid {
                        owed.retain(|o| o.0 != sent.node);
                    } else if let Some(o) = owed.iter_mut().find(|o| o.0 == sent.node) {
                        if v.extension.is_empty() { o.2 += 1 } else { o.3 += 1 }
                    }
                }
            }
            for (node, end, bare, bad) in &owed {
                if *end == h {
                    self.report.beacon_failures.push(format!(
                        "node {node} was restarted in the epoch ending at height {end} and signed no precommit with a valid partial in it \
                         ({bare} without a partial, {bad} with an invalid one)"
                    ));
                }
            }
            owed.retain(|o| o.1 != h);
            let mut checker = self.checker.lock().unwrap_or_else(|e| e.into_inner());
            for (i, store) in stores.iter().enumerate() {
                let Some(store) = store else { continue };
                if i >= self.nodes.len() || !self.nodes[i].honest {
                    continue;
                }
                let committed = store.height().map_or(0, |h| h.0);
                if committed < h {
                    continue;
                }
                let (Ok(Some(body)), Ok(Some(certificate))) = (store.block(height), store.certificate(height)) else {
                    checker.violations.push(crate::Violation::Certificate {
                        node: i,
                        height,
                        reason: format!("committed up to {committed} but its block or certificate of {h} is gone"),
                    });
                    continue;
                };
                let Ok(certificate) =
                    <CommitCertificate as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&certificate[..]))
                else {
                    checker.violations.push(crate::Violation::Certificate { node: i, height, reason: "undecodable".into() });
                    continue;
                };
                let decoded = tcp_node::block::Block::decode(&body, tcp_node::block::MAX_BLOCK_BYTES);
                let body_valid = decoded.as_ref().is_ok_and(|b| b.header.height == height);
                // The id is the header's hash; a body that does not decode keeps a distinct id.
                let value = decoded.map(|b| b.id()).unwrap_or_else(|_| tcp_crypto::sha256(&[b"undecodable", &body]));
                checker.decided(i, height, value, &certificate, body_valid, &params.validators, extension.as_ref());
                self.report.max_round = self.report.max_round.max(certificate.round.0);
                // Every committed block of a beacon height has a valid φ in the node's store.
                if let Some(verifier) = ledger.verifier(height) {
                    let stored = store.finality(height).ok().flatten();
                    let valid = stored.as_ref().and_then(|b| tcp_beacon::Finality::from_bytes(b).ok()).is_some_and(|f| {
                        if verified_finality.contains(&(height, value, f.to_bytes())) {
                            return true;
                        }
                        let message = tcp_beacon::finality_message(ledger.chain_id(), height, f.round, &value);
                        let ok = verifier.group().verify_point(&verifier.finality_point(&message), &f.signature.0);
                        if ok {
                            verified_finality.insert((height, value, f.to_bytes()));
                        }
                        ok
                    });
                    if valid {
                        self.report.finality_checked += 1;
                    } else if stored.is_none() && height.0 == committed {
                        // The node's last height: its φ arrives with the next block (only the
                        // next proposer recovers it at once).
                    } else {
                        checker.violations.push(crate::Violation::Certificate {
                            node: i,
                            height,
                            reason: if stored.is_some() { "its stored φ does not verify".into() } else { "no φ stored".into() },
                        });
                    }
                }
            }
            drop(checker);
            match tcp_node::node::replay_committed(&mut ledger, &mut group, height, &bytes, &mut rng) {
                Ok((block, _, group_events)) => {
                    // M's public key: the first group's, and every later group's the same.
                    if group_events.iter().any(|e| matches!(e, tcp_dkmp::GroupEvent::GroupServes { .. }))
                        && let Some(serving) = group.serving()
                    {
                        let key = tcp_beacon::signature::group_key_to_bytes(&serving.master_public_key());
                        match &master_key {
                            None => master_key = Some(key),
                            Some(first) if *first != key => self.report.master_key_changed = true,
                            Some(_) => {}
                        }
                    }
                    if block.header.previous_signature.is_some() {
                        self.report.beacon_heights += 1;
                    }
                }
                Err(e) => {
                    self.report.beacon_failures.push(format!("the reference chain does not replay at height {h}: {e}"));
                    break;
                }
            }
        }
        let group_stats = group.stats();
        self.report.dkmp_reshares = group_stats.reshares;
        self.report.dkmp_ceremonies_failed = group_stats.failures;
        self.report.dkmp_epochs_extended = group_stats.extensions;
        self.report.dkmp_serving = group.serving().is_some();
        if self.report.master_key_changed {
            self.report.beacon_failures.push("the master secret's public key changed across reshares".into());
        }
        let stats = ledger.stats();
        self.report.reshares = stats.reshares;
        self.report.epochs_extended = stats.epochs_extended;
        self.report.ceremonies_failed = stats.ceremonies_failed;
        self.report.group_key_changed = stats.group_key_changes > 0;
        if self.report.group_key_changed {
            self.report.beacon_failures.push(format!("the group key changed {} times across reshares", stats.group_key_changes));
        }
        // The last σ with what a light client needs to check it (`tcpchain beacon verify`).
        let last = Height(ledger.height().0.saturating_sub(1));
        if let (Some(signature), Some(previous), Some(key)) = (ledger.signature(last), ledger.previous_link(last), ledger.group_key()) {
            self.report.beacon_sample = Some(crate::BeaconSample {
                chain_id: self.chain.spec.chain_id.as_str().to_string(),
                height: last,
                previous,
                signature,
                group_key: tcp_beacon::signature::group_key_to_bytes(key),
            });
        }
        if ledger.beacon_start().is_none() {
            self.report.beacon_failures.push("the beacon never started".into());
        }
    }
}
