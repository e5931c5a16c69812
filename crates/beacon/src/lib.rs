//! The random beacon of TCP (whitepaper §4.1.2, DESIGN §5.2), sans-IO.
//!
//! * [`dkg`]: DKG among the genesis validators and reshares to new sets at epoch boundaries,
//!   on commonware's `feldman_desmedt`, with dealer logs ordered by the chain.
//! * [`signature`]: σ_h on (chain id, h, σ_{h-1}) under `tcp/beacon`; partials, batch
//!   verification, recovery, and the light client's one-pairing check.
//! * [`finality`]: φ_h on (chain id, h, round, header id) under `tcp/finality`, signed by the
//!   same shares in the same precommits; one pairing check for a light client.
//! * [`ledger`]: the chain-side schedule every node derives from committed blocks: when
//!   ceremonies start and end, epochs, the set and sharing in force at each height, and the
//!   proposer weights.
//! * [`consensus`]: the adapters that plug the beacon into the consensus core
//!   ([`tcp_consensus::PrecommitExtension`] and [`tcp_consensus::ProposerSelector`]).
//! * [`selection`] and [`fairness`]: the weighted proposer draw and the chi-square test of it.

pub mod consensus;
pub mod dkg;
pub mod fairness;
pub mod finality;
pub mod ledger;
pub mod selection;
pub mod signature;
pub mod validator_key;
pub mod partial_point;
pub mod verifier;

pub use consensus::{BeaconExtension, BeaconProposer};
pub use dkg::{Ceremony, DealerSession, DkgMessage, DkgOutput, PlayerSession, SignedLog, Transcript};
pub use ledger::{BeaconParams, BlockBeaconData, Ledger, LedgerEvent};
pub use selection::{ValidatorRecord, WeightParams, select_proposer};
pub use signature::{BeaconSignature, GroupKey, Partial, Previous, PublicSharing, beacon_message, verify_beacon};
pub use finality::{FINALITY_NAMESPACE, Finality, FinalitySignature, finality_message, verify_finality};
pub use partial_point::PartialPoint;
pub use verifier::{GroupKeyVerifier, MessagePoint, SharePair, SharingVerifier};

/// Everything the beacon refuses, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("malformed beacon signature")]
    MalformedSignature,
    #[error("malformed group key")]
    MalformedGroupKey,
    #[error("malformed partial signature")]
    MalformedPartial,
    #[error("not enough valid partials to recover the beacon signature")]
    NotEnoughPartials,
    #[error("malformed DKG message: {0}")]
    MalformedDkgMessage(String),
    #[error("dealing refused: {0}")]
    BadDealing(String),
    #[error("ack refused: {0}")]
    BadAck(String),
    #[error("ceremony: {0}")]
    Ceremony(String),
}
