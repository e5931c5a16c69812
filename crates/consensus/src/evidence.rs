//! Equivocation evidence: two messages one validator signed for the same (height, round, type)
//! with different values. Anyone can check it with the chain id and the validator set.

use crate::signing::ConsensusDomains;
use crate::types::{SignedProposal, SignedVote, ValidatorSet};
use tcp_types::{Height, ValidatorIndex};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    ConflictingVotes(Box<SignedVote>, Box<SignedVote>),
    ConflictingProposals(Box<SignedProposal>, Box<SignedProposal>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    #[error("the two messages are not from the same validator, height, round and type")]
    NotComparable,
    #[error("the two messages agree on the value: no equivocation")]
    SameValue,
    #[error("a signature does not verify")]
    BadSignature,
}

impl Evidence {
    pub fn offender(&self) -> ValidatorIndex {
        match self {
            Evidence::ConflictingVotes(a, _) => a.vote.validator,
            Evidence::ConflictingProposals(a, _) => a.proposal.proposer,
        }
    }

    pub fn height(&self) -> Height {
        match self {
            Evidence::ConflictingVotes(a, _) => a.vote.height,
            Evidence::ConflictingProposals(a, _) => a.proposal.height,
        }
    }

    pub fn verify(&self, domains: &ConsensusDomains, validators: &ValidatorSet) -> Result<(), EvidenceError> {
        match self {
            Evidence::ConflictingVotes(a, b) => {
                let (x, y) = (&a.vote, &b.vote);
                if (x.validator, x.height, x.round, x.vote_type) != (y.validator, y.height, y.round, y.vote_type) {
                    return Err(EvidenceError::NotComparable);
                }
                if x.value == y.value {
                    return Err(EvidenceError::SameValue);
                }
                if !domains.verify_vote(validators, a) || !domains.verify_vote(validators, b) {
                    return Err(EvidenceError::BadSignature);
                }
            }
            Evidence::ConflictingProposals(a, b) => {
                let (x, y) = (&a.proposal, &b.proposal);
                if (x.proposer, x.height, x.round) != (y.proposer, y.height, y.round) {
                    return Err(EvidenceError::NotComparable);
                }
                if (x.value, x.pol_round) == (y.value, y.pol_round) {
                    return Err(EvidenceError::SameValue);
                }
                if !domains.verify_proposal(validators, a) || !domains.verify_proposal(validators, b) {
                    return Err(EvidenceError::BadSignature);
                }
            }
        }
        Ok(())
    }
}
