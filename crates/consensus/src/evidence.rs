//! Equivocation evidence: two messages one validator signed for the same (height, round, type)
//! with different values. Anyone can check it with the chain id and the validator set.

use crate::signing::ConsensusDomains;
use crate::types::{MAX_MESSAGE_BYTES, SignedProposal, SignedVote, ValidatorSet};
use commonware_codec::{Copying, ReadExt, Write};
use tcp_types::{Height, Round, ValidatorIndex};

/// The largest encoded evidence: a tag and two consensus messages.
pub const MAX_EVIDENCE_BYTES: usize = 1 + 2 * MAX_MESSAGE_BYTES;
const TAG_VOTES: u8 = 0;
const TAG_PROPOSALS: u8 = 1;

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
    #[error("malformed evidence: {0}")]
    Malformed(String),
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

    pub fn round(&self) -> Round {
        match self {
            Evidence::ConflictingVotes(a, _) => a.vote.round,
            Evidence::ConflictingProposals(a, _) => a.proposal.round,
        }
    }

    /// `tag u8 ‖ first message ‖ second message` (tag 0: votes, 1: proposals).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            Evidence::ConflictingVotes(a, b) => {
                TAG_VOTES.write(&mut out);
                a.write(&mut out);
                b.write(&mut out);
            }
            Evidence::ConflictingProposals(a, b) => {
                TAG_PROPOSALS.write(&mut out);
                a.write(&mut out);
                b.write(&mut out);
            }
        }
        out
    }

    /// Decode exactly one evidence (bounded, no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(EvidenceError::Malformed(format!("{} bytes, more than {MAX_EVIDENCE_BYTES}", bytes.len())));
        }
        let mut buf = Copying(bytes);
        let malformed = |e: commonware_codec::Error| EvidenceError::Malformed(e.to_string());
        let evidence = match u8::read(&mut buf).map_err(malformed)? {
            TAG_VOTES => Evidence::ConflictingVotes(
                Box::new(SignedVote::read(&mut buf).map_err(malformed)?),
                Box::new(SignedVote::read(&mut buf).map_err(malformed)?),
            ),
            TAG_PROPOSALS => Evidence::ConflictingProposals(
                Box::new(SignedProposal::read(&mut buf).map_err(malformed)?),
                Box::new(SignedProposal::read(&mut buf).map_err(malformed)?),
            ),
            tag => return Err(EvidenceError::Malformed(format!("unknown evidence kind {tag}"))),
        };
        if !buf.0.is_empty() {
            return Err(EvidenceError::Malformed(format!("{} trailing bytes", buf.0.len())));
        }
        Ok(evidence)
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
