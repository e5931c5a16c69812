#![allow(dead_code)]
//! A small in-memory harness: n validators with equal power, cores that can be driven by hand.

use commonware_cryptography::Signer as _;
use std::sync::Arc;
use tcp_consensus::*;
use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

pub fn chain() -> ChainId {
    ChainId::new("test-chain").unwrap()
}

pub fn keys(n: usize) -> Vec<Ed25519PrivateKey> {
    (0..n).map(|i| insecure_ed25519_from_seed(100 + i as u64)).collect()
}

pub fn validator_set(keys: &[Ed25519PrivateKey]) -> Arc<ValidatorSet> {
    Arc::new(ValidatorSet::new(keys.iter().map(|k| Validator { public_key: k.public_key(), voting_power: 1 }).collect()).unwrap())
}

pub fn value(b: u8) -> ValueId {
    Digest([b; 32])
}

pub struct Net {
    pub keys: Vec<Ed25519PrivateKey>,
    pub set: Arc<ValidatorSet>,
    pub domains: ConsensusDomains,
}

impl Net {
    pub fn new(n: usize) -> Self {
        let keys = keys(n);
        Net { set: validator_set(&keys), keys, domains: ConsensusDomains::new(&chain()) }
    }

    pub fn core(&self, i: usize) -> Consensus {
        Consensus::new(ConsensusConfig::new(chain()), Some(self.keys[i].clone()))
    }

    pub fn params(&self) -> HeightParams {
        HeightParams::new(self.set.clone())
    }

    pub fn vote(&self, i: usize, t: VoteType, h: u64, r: u32, v: Option<ValueId>) -> SignedVote {
        let vote = Vote {
            vote_type: t,
            height: Height(h),
            round: Round(r),
            value: v,
            validator: ValidatorIndex(i as u32),
            extension: bytes::Bytes::new(),
        };
        self.domains.sign_vote(&self.keys[i], vote)
    }

    pub fn proposal(&self, i: usize, h: u64, r: u32, v: ValueId, pol: Option<u32>) -> SignedProposal {
        let p = Proposal { height: Height(h), round: Round(r), value: v, pol_round: pol.map(Round), proposer: ValidatorIndex(i as u32) };
        self.domains.sign_proposal(&self.keys[i], p)
    }

    /// Proposer of (h, r) under the default round robin.
    pub fn proposer(&self, h: u64, r: u32) -> usize {
        RoundRobin.proposer(&self.set, Height(h), Round(r)).as_usize()
    }
}

pub fn broadcasts(effects: &[Effect]) -> Vec<ConsensusMessage> {
    effects.iter().filter_map(|e| if let Effect::Broadcast(m) = e { Some(m.clone()) } else { None }).collect()
}

pub fn votes(effects: &[Effect]) -> Vec<Vote> {
    broadcasts(effects).into_iter().filter_map(|m| if let ConsensusMessage::Vote(v) = m { Some(v.vote) } else { None }).collect()
}
