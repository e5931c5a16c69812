//! Deterministic simulation of whole TCP networks, with the node's own code as the host.
//!
//! N instances of `tcp_node`'s event loop — the code `tcpchain node` runs — run on
//! commonware's deterministic runtime and simulated network, each on a disk in memory that
//! loses unsynced writes when its node crashes. What stays here is what the node must not
//! know about: the fault schedule (crashes at any await point and between the steps of a
//! commit, partitions, loss, churn), the adversaries (Byzantine validators are the node's code
//! with what they send rewritten, `adversary`), and the [`checker`]. A run is a pure function
//! of its [`SimConfig`]: the same seed replays the same run.
//!
//! After each run the checker reports agreement, validity, honest double-sign and certificate
//! violations; honest nodes that exit or panic; buffers a peer can fill that pass their limit
//! in bytes; restarted validators that sign no valid partial again within their epoch; and
//! liveness: once the network heals, every honest node must decide
//! [`SimConfig::liveness_heights`] more heights within the bound [`SimConfig::liveness_bound`].

mod adversary;
mod chain;
pub mod checker;
mod host;
pub mod rng;
mod run;

pub use checker::Violation;
pub use run::run;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tcp_consensus::RejectionStats;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub crash: bool,
    pub partition: bool,
    pub loss: bool,
    /// The `byzantine` validators misbehave; without it they follow the protocol.
    pub byzantine: bool,
}

impl Behaviour {
    /// The name `--behaviour` takes.
    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::Silent => "silent",
            Behaviour::Equivocate => "equivocate",
            Behaviour::DoubleVote => "double-vote",
            Behaviour::Amnesia => "amnesia",
            Behaviour::Junk => "junk",
            Behaviour::ForgeFinality => "forge-finality",
            Behaviour::Withhold => "withhold",
            Behaviour::Flood => "flood",
            Behaviour::Grind => "grind",
            Behaviour::CrashReshare => "crash-reshare",
            Behaviour::BadPartials => "bad-partials",
        }
    }
}

impl FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "silent" => Behaviour::Silent,
            "equivocate" => Behaviour::Equivocate,
            "double-vote" => Behaviour::DoubleVote,
            "amnesia" => Behaviour::Amnesia,
            "junk" => Behaviour::Junk,
            "forge-finality" => Behaviour::ForgeFinality,
            "withhold" => Behaviour::Withhold,
            "flood" => Behaviour::Flood,
            "grind" => Behaviour::Grind,
            "crash-reshare" => Behaviour::CrashReshare,
            "bad-partials" => Behaviour::BadPartials,
            other => {
                return Err(format!(
                    "unknown behaviour {other:?}: expected silent, equivocate, double-vote, amnesia, junk, forge-finality, withhold, flood, grind, crash-reshare or bad-partials"
                ));
            }
        })
    }
}

impl Faults {
    pub const ALL: Faults = Faults { crash: true, partition: true, loss: true, byzantine: true };
    pub const NONE: Faults = Faults { crash: false, partition: false, loss: false, byzantine: false };

    pub fn network_or_crash(&self) -> bool {
        self.crash || self.partition || self.loss
    }
}

impl FromStr for Faults {
    type Err = String;
    /// `none`, `all`, or a comma-separated list of `crash`, `partition`, `loss`, `byzantine`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut faults = Faults::NONE;
        for part in s.split(',').map(str::trim) {
            match part {
                "none" => {}
                "all" => faults = Faults::ALL,
                "crash" => faults.crash = true,
                "partition" => faults.partition = true,
                "loss" => faults.loss = true,
                "byzantine" => faults.byzantine = true,
                other => return Err(format!("unknown fault {other:?}: expected none, crash, partition, loss, byzantine or all")),
            }
        }
        Ok(faults)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Faults::ALL {
            return f.write_str("all");
        }
        let names: Vec<&str> = [(self.crash, "crash"), (self.partition, "partition"), (self.loss, "loss"), (self.byzantine, "byzantine")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(if names.is_empty() { "none" } else { "" })?;
        f.write_str(&names.join(","))
    }
}

/// How a Byzantine validator misbehaves (one per validator per run, chosen by the seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Sends nothing at all.
    Silent,
    /// Coordinated split brain: as proposer it sends one block to one group of honest nodes
    /// and another block to the rest, and it votes for whichever value each group saw.
    Equivocate,
    /// Sends its vote to half the network and a conflicting vote to the other half.
    DoubleVote,
    /// The amnesia attack. In a round it proposes, it shows its value only to one group of
    /// honest nodes, and gives its precommit for that value to one node of the group (the
    /// victim, who then decides) and a nil precommit to everyone else (who then move on to the
    /// next round, whose proposer never saw the value). In every round it forgets its lock,
    /// prevoting and precommitting for whatever is proposed, and it ignores others' precommits
    /// so it stays in the height. While the network is faulty (before GST the adversary
    /// schedules delivery) it also holds back the victim's messages for a few seconds.
    /// Harmless to a correct core; fatal to one whose locking rule is broken.
    Amnesia,
    /// Follows the protocol but proposes invalid blocks (bad checksum, bad σ), deals
    /// inconsistent DKG shares, and floods well-formed signed votes for random heights and
    /// rounds, precommits with invalid partials, votes as unknown validators or for another
    /// chain, garbage and oversized messages.
    Junk,
    /// Follows the protocol but withholds its beacon share (its precommits carry no partial)
    /// and, as a member of the secret-share group, its answers to key requests.
    Withhold,
    /// Floods every message type from a connected peer: bodies for current and future heights,
    /// `Status` for height 1, precommits with valid points as partials for other messages,
    /// copied and unsigned proposals, future-height votes under other validators' indices, the
    /// same equivocating vote again and again.
    Flood,
    /// As builder, picks which precommits its `last_commit` carries (any subset that still
    /// verifies) to maximise its own proposals.
    Grind,
    /// Follows the protocol, but is crashed (and restarted) between accepting dealings and
    /// finishing a reshare.
    CrashReshare,
    /// Follows the protocol, but as proposer replaces its block with a forgery where the
    /// header meets finality: φ_{h-1} relabelled with another round, σ_{h-1} passed off as
    /// φ_{h-1} (a valid point, the wrong message), or its honest header with a body that does
    /// not match the header's roots.
    ForgeFinality,
    /// Follows the protocol, but as a member of the secret-share group answers key requests
    /// with answers the enclave cannot use (it names the member and recovers from the others).
    /// Pinned only (`--behaviour bad-partials`).
    BadPartials,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validators: usize,
    /// How many validators are Byzantine (the last ones by index).
    pub byzantine: usize,
    /// Heights every honest node must decide.
    pub heights: u64,
    pub faults: Faults,
    pub seed: u64,
    /// After the network heals, every honest node decides this many more heights...
    pub liveness_heights: u64,
    /// ...within `liveness_bound.0 + liveness_bound.1 × heights to go` of virtual time.
    pub liveness_bound: (Duration, Duration),
    /// Pin the Byzantine behaviours (validator k of the Byzantine ones gets entry k mod len);
    /// empty: the seed picks one per validator.
    pub behaviours: Vec<Behaviour>,
    /// Print the run's decisions, votes, faults and round changes to stderr.
    pub trace: bool,
    /// Beacon schedule: heights per epoch and per DKG window.
    pub epoch_length: u64,
    pub dkg_window: u64,
    /// Validators join and leave at every epoch boundary (the Byzantine ones stay): the old set
    /// reshares to the new one.
    pub churn: bool,
    /// Record the round-0 proposer draws and their probabilities for the fairness test.
    pub fairness: bool,
    /// The chain's block interval (the node's own timing follows from it).
    pub block_interval: Duration,
    /// A compute node registers an enclave and asks the group for contract keys throughout.
    pub releases: bool,
    /// Test-only protocol sabotage applied to honest cores.
    #[cfg(feature = "fault-injection")]
    pub injected_fault: tcp_consensus::InjectedFault,
}

impl SimConfig {
    pub fn new(validators: usize, byzantine: usize, heights: u64, faults: Faults, seed: u64) -> Self {
        SimConfig {
            validators,
            byzantine,
            heights,
            faults,
            seed,
            liveness_heights: 5,
            liveness_bound: (Duration::from_secs(60), Duration::from_secs(5)),
            behaviours: Vec::new(),
            trace: false,
            epoch_length: 100,
            dkg_window: 8,
            churn: false,
            fairness: false,
            block_interval: Duration::from_millis(500),
            releases: true,
            #[cfg(feature = "fault-injection")]
            injected_fault: Default::default(),
        }
    }

    /// Heights before an epoch's end at which the next set is planned and reshared to.
    pub fn reshare_window(&self) -> u64 {
        (self.epoch_length / 2).max(4).min(self.epoch_length)
    }

    /// Largest number of Byzantine validators (equal power) the protocol tolerates.
    pub fn tolerated_faults(&self) -> usize {
        (self.validators - 1) / 3
    }

    /// Identities that may validate: the genesis validators, plus joiners when churning.
    pub fn pool_size(&self) -> usize {
        if self.churn { self.validators + (self.validators / 3).max(2) } else { self.validators }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut command = format!(
            "cargo run --release -p tcpchain -- sim --validators {} --byzantine {} --heights {} --faults {} --seed {} --epoch {}",
            self.validators, self.byzantine, self.heights, self.faults, self.seed, self.epoch_length
        );
        if self.churn {
            command.push_str(" --churn");
        }
        for b in &self.behaviours {
            command.push_str(" --behaviour ");
            command.push_str(b.name());
        }
        command
    }
}

#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub liveness_failure: Option<String>,
    /// Lowest height decided by every honest node.
    pub heights_decided: u64,
    pub virtual_time: Duration,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub decode_errors: u64,
    pub rejections: RejectionStats,
    pub evidence: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub wal_replays: u64,
    pub behaviours: Vec<Behaviour>,
    pub max_round: u32,
    /// What went wrong with the beacon (σ not verifying, quorums disagreeing, group key
    /// changing, an honest player without its share, the beacon never starting).
    pub beacon_failures: Vec<String>,
    /// Heights whose committed σ verified against the group key.
    pub beacon_heights: u64,
    /// Committed blocks (per node) whose stored φ verified against the group key.
    pub finality_checked: u64,
    /// Heights where two different quorums of partials recovered the identical σ.
    pub quorum_checks: u64,
    pub reshares: u64,
    pub epochs_extended: u64,
    pub ceremonies_failed: u64,
    pub group_key_changed: bool,
    /// DKMP's secret-share group, replayed from the reference chain: reshares of M that
    /// completed, failed master-secret ceremonies, epochs the group's service was extended,
    /// whether M's public key ever changed (a failure), and whether a group serves at the end.
    pub dkmp_reshares: u64,
    pub dkmp_ceremonies_failed: u64,
    pub dkmp_epochs_extended: u64,
    pub master_key_changed: bool,
    pub dkmp_serving: bool,
    /// DKG messages refused (malformed, inconsistent dealings, bad acks, bad logs).
    pub dkg_rejected: u64,
    /// Contract keys the simulated compute node's enclave obtained from the group, answers it
    /// found bad (named members), requests made while enough honest members were up that
    /// failed (failures), and successful releases missing from the chain's ledger at the end.
    pub dkmp_releases: u64,
    pub dkmp_bad_answers: u64,
    pub release_failures: Vec<String>,
    /// Per node: round-0 proposer draws while the beacon drove selection, and the sum of the
    /// drawn probabilities (the expected count).
    pub proposer_observed: Vec<u64>,
    pub proposer_expected: Vec<f64>,
    /// (height, round-0 proposer node, R_{h-2}) for every height the beacon drove, in order.
    pub beacon_trace: Vec<(u64, usize, tcp_types::Digest)>,
    /// The last committed σ with what a light client needs to check it.
    pub beacon_sample: Option<BeaconSample>,
    /// Honest nodes that exited or panicked (a node never stops on input from outside).
    pub node_failures: Vec<String>,
    /// Buffers a peer can fill that went past their limit in bytes.
    pub memory_violations: Vec<String>,
    /// The most each buffer held in any node (bytes, limit).
    pub buffer_peaks: std::collections::BTreeMap<String, (usize, usize)>,
}

/// One committed σ_h and its context, for `tcpchain beacon verify`.
#[derive(Clone, Debug)]
pub struct BeaconSample {
    pub chain_id: String,
    pub height: tcp_types::Height,
    pub previous: tcp_beacon::Previous,
    pub signature: tcp_beacon::BeaconSignature,
    pub group_key: Vec<u8>,
}

impl SimReport {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
            && self.liveness_failure.is_none()
            && self.beacon_failures.is_empty()
            && self.node_failures.is_empty()
            && self.memory_violations.is_empty()
            && self.release_failures.is_empty()
    }
}
