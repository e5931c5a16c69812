//! Tendermint consensus ("The latest gossip on BFT consensus", Buchman, Kwon, Milosevic 2018)
//! as a pure, deterministic state machine: `input → (new state, effects)`.
//!
//! * [`state_machine`]: the paper's Algorithm 1, each transition citing its line numbers;
//! * [`vote_keeper`]: votes tallied by voting power, equivocation detected;
//! * [`Consensus`]: authenticates and bounds input, decides which `upon` rule fires, signs;
//! * [`CommitCertificate`], [`Evidence`]: checkable by third parties;
//! * [`wal`]: the write-ahead-log contract that makes crash recovery double-sign free.
//!
//! The proposer of each (height, round) and the extension carried by precommits (the random
//! beacon's share) are supplied by the caller through [`ProposerSelector`] and
//! [`PrecommitExtension`].

pub mod certificate;
pub mod consensus;
pub mod evidence;
pub mod params;
pub mod signing;
pub mod state_machine;
pub mod types;
pub mod vote_keeper;
pub mod wal;

pub use certificate::{CertificateError, CommitCertificate};
pub use consensus::{Admission, Consensus, Effect, Input, MAX_BUFFERED_INPUT_BYTES, Rejection, RejectionStats, Verified};
pub use evidence::{Evidence, EvidenceError};
#[cfg(feature = "fault-injection")]
pub use params::InjectedFault;
pub use params::{
    ConsensusConfig, HeightParams, Limits, NoExtension, PrecommitExtension, ProposerSelector, RoundRobin, TimeoutConfig, TimeoutKind,
};
pub use signing::ConsensusDomains;
pub use state_machine::Step;
pub use types::*;
pub use wal::{MemoryWal, WalError, WriteAheadLog};
