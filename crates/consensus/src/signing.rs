//! Signing and verifying consensus messages under their chain-bound namespaces.

use crate::types::{Proposal, SignedProposal, SignedVote, ValidatorSet, Vote, proposal_sign_bytes, vote_sign_bytes};
use tcp_crypto::{Ed25519PrivateKey, SigningDomain, namespace};
use tcp_types::ChainId;

/// The two signing domains of consensus, bound to one chain.
#[derive(Clone, Debug)]
pub struct ConsensusDomains {
    vote: SigningDomain,
    proposal: SigningDomain,
}

impl ConsensusDomains {
    pub fn new(chain_id: &ChainId) -> Self {
        ConsensusDomains {
            vote: SigningDomain::new(namespace::CONSENSUS_VOTE, chain_id),
            proposal: SigningDomain::new(namespace::CONSENSUS_PROPOSAL, chain_id),
        }
    }

    pub fn sign_vote(&self, key: &Ed25519PrivateKey, vote: Vote) -> SignedVote {
        let signature = self.vote.sign(key, &vote_sign_bytes(&vote));
        SignedVote { vote, signature }
    }

    pub fn sign_proposal(&self, key: &Ed25519PrivateKey, proposal: Proposal) -> SignedProposal {
        let signature = self.proposal.sign(key, &proposal_sign_bytes(&proposal));
        SignedProposal { proposal, signature }
    }

    /// The signature is valid and from the validator the vote names. False for non-members.
    pub fn verify_vote(&self, validators: &ValidatorSet, signed: &SignedVote) -> bool {
        validators
            .get(signed.vote.validator)
            .is_some_and(|v| self.vote.verify(&v.public_key, &vote_sign_bytes(&signed.vote), &signed.signature))
    }

    pub fn verify_proposal(&self, validators: &ValidatorSet, signed: &SignedProposal) -> bool {
        validators
            .get(signed.proposal.proposer)
            .is_some_and(|v| self.proposal.verify(&v.public_key, &proposal_sign_bytes(&signed.proposal), &signed.signature))
    }
}
