//! What the caller supplies: timeouts, the proposer of each (height, round), and the precommit
//! extension (the random beacon's share plugs in here without touching the core).

use crate::types::{ValidatorSet, ValueId};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tcp_types::{ChainId, Height, Round, ValidatorIndex};

/// Round timeouts grow linearly with the round so that, after GST, some round is long enough
/// for every honest validator to hear the proposal and the votes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    pub propose: Duration,
    pub propose_delta: Duration,
    pub prevote: Duration,
    pub prevote_delta: Duration,
    pub precommit: Duration,
    pub precommit_delta: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            propose: Duration::from_millis(1000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(500),
            prevote_delta: Duration::from_millis(250),
            precommit: Duration::from_millis(500),
            precommit_delta: Duration::from_millis(250),
        }
    }
}

/// Which of the paper's three timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
}

impl TimeoutConfig {
    pub fn duration(&self, kind: TimeoutKind, round: Round) -> Duration {
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose, self.propose_delta),
            TimeoutKind::Prevote => (self.prevote, self.prevote_delta),
            TimeoutKind::Precommit => (self.precommit, self.precommit_delta),
        };
        base.saturating_add(delta.saturating_mul(round.0))
    }
}

/// Bounds on everything the core buffers for input from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages for heights in (h, h + future_heights] are buffered; higher ones are rejected.
    pub future_heights: u64,
    /// At most this many buffered messages per (future height, claimed sender).
    pub future_messages_per_validator: usize,
    /// Rounds more than this far above the current round are rejected.
    pub max_round_lookahead: u32,
    /// A validator may hold votes in at most this many rounds above the current round.
    pub future_rounds_per_validator: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { future_heights: 2, future_messages_per_validator: 8, max_round_lookahead: 10_000, future_rounds_per_validator: 2 }
    }
}

/// Test-only sabotage, to show the simulator's checker finds real violations.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InjectedFault {
    #[default]
    None,
    /// Lines 23 and 29 ignore the lock: prevote for any valid proposal.
    BrokenLocking,
}

#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub chain_id: ChainId,
    pub timeouts: TimeoutConfig,
    pub limits: Limits,
    #[cfg(feature = "fault-injection")]
    pub injected_fault: InjectedFault,
}

impl ConsensusConfig {
    pub fn new(chain_id: ChainId) -> Self {
        ConsensusConfig {
            chain_id,
            timeouts: TimeoutConfig::default(),
            limits: Limits::default(),
            #[cfg(feature = "fault-injection")]
            injected_fault: InjectedFault::None,
        }
    }
}

/// The paper's `proposer(h, r)`. Must be deterministic: every validator asks the same question
/// and must get the same answer.
pub trait ProposerSelector: Send + Sync {
    fn proposer(&self, validators: &ValidatorSet, height: Height, round: Round) -> ValidatorIndex;
}

/// Weighted round robin over voting power (CometBFT-style "proposer priority" is stateful;
/// this is a stateless stand-in until the random beacon supplies proposers).
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobin;

impl ProposerSelector for RoundRobin {
    fn proposer(&self, validators: &ValidatorSet, height: Height, round: Round) -> ValidatorIndex {
        let slot = (height.0.wrapping_add(round.0 as u64)) % validators.total_power();
        let mut acc = 0;
        for (index, v) in validators.iter() {
            acc += v.voting_power;
            if slot < acc {
                return index;
            }
        }
        unreachable!("slot < total power")
    }
}

/// The opaque data a non-nil precommit carries, produced by the local validator and checked
/// for everyone else's precommits before they count.
pub trait PrecommitExtension: Send + Sync {
    /// The local validator's extension for its precommit on `value`. Must be deterministic in
    /// its arguments (replay from the WAL re-signs the same precommit).
    fn extend(&self, height: Height, round: Round, value: &ValueId) -> Bytes;
    /// Whether `extension`, carried by `validator`'s precommit on `value`, is acceptable.
    fn verify(&self, height: Height, round: Round, validator: ValidatorIndex, value: &ValueId, extension: &[u8]) -> bool;
}

/// No extension: precommits carry nothing and must carry nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExtension;

impl PrecommitExtension for NoExtension {
    fn extend(&self, _: Height, _: Round, _: &ValueId) -> Bytes {
        Bytes::new()
    }
    fn verify(&self, _: Height, _: Round, _: ValidatorIndex, _: &ValueId, extension: &[u8]) -> bool {
        extension.is_empty()
    }
}

/// What the core needs to run one height.
#[derive(Clone)]
pub struct HeightParams {
    pub validators: Arc<ValidatorSet>,
    pub proposer: Arc<dyn ProposerSelector>,
    pub extension: Arc<dyn PrecommitExtension>,
}

impl HeightParams {
    pub fn new(validators: Arc<ValidatorSet>) -> Self {
        HeightParams { validators, proposer: Arc::new(RoundRobin), extension: Arc::new(NoExtension) }
    }
}
