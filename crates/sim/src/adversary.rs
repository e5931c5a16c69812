//! Byzantine validators: the node's own code underneath, with what leaves it rewritten here.
//! An adversary holds the validator's real key, so what it sends is as authentic as an honest
//! node's messages — only the choices differ.

use crate::Behaviour;
use commonware_p2p::Recipients;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};
use std::collections::VecDeque;
use tcp_consensus::{ConsensusDomains, ConsensusMessage, Proposal, Vote, VoteType};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};
use tcp_node::wire::Wire;
use tcp_types::{Digest, Height, Round, ValidatorIndex};

/// Messages a flooding adversary adds per message its node sends.
const FLOOD_BURST: usize = 24;
/// Bodies it remembers to replay under copied proposals.
const REMEMBERED_BODIES: usize = 4;

pub struct Adversary {
    pub behaviour: Behaviour,
    key: Ed25519PrivateKey,
    domains: ConsensusDomains,
    rng: ChaCha20Rng,
    validators: u32,
    /// The last partial this validator attached to a precommit (a valid point, replayed where
    /// it does not belong).
    last_partial: Option<bytes::Bytes>,
    bodies: VecDeque<Vec<u8>>,
    /// Messages counted for the report.
    pub sent: u64,
}

impl Adversary {
    pub fn new(behaviour: Behaviour, key: Ed25519PrivateKey, domains: ConsensusDomains, validators: usize, seed: u64) -> Adversary {
        Adversary {
            behaviour,
            key,
            domains,
            rng: ChaCha20Rng::seed_from_u64(seed),
            validators: validators as u32,
            last_partial: None,
            bodies: VecDeque::new(),
            sent: 0,
        }
    }

    /// What to send instead of `bytes`, which the node addressed to `recipients`.
    pub fn rewrite(&mut self, bytes: &[u8], recipients: &[Ed25519PublicKey]) -> Vec<(Recipients<Ed25519PublicKey>, Vec<u8>)> {
        let all = || Recipients::Some(recipients.to_vec());
        let wire = Wire::decode(bytes).ok();
        if let Some(Wire::Block(body)) = &wire {
            if self.bodies.len() == REMEMBERED_BODIES {
                self.bodies.pop_front();
            }
            self.bodies.push_back(body.clone());
        }
        if let Some(Wire::Consensus(ConsensusMessage::Vote(v))) = &wire
            && v.vote.vote_type == VoteType::Precommit
            && !v.vote.extension.is_empty()
        {
            self.last_partial = Some(v.vote.extension.clone());
        }
        let (first, second) = recipients.split_at(recipients.len() / 2);
        let halves = |a: Vec<u8>, b: Vec<u8>| vec![(Recipients::Some(first.to_vec()), a), (Recipients::Some(second.to_vec()), b)];
        let out = match (self.behaviour, wire) {
            (Behaviour::Silent, _) => Vec::new(),
            (Behaviour::Withhold, Some(Wire::Consensus(ConsensusMessage::Vote(v)))) if !v.vote.extension.is_empty() => {
                let vote = Vote { extension: bytes::Bytes::new(), ..v.vote };
                vec![(all(), self.vote(vote))]
            }
            (Behaviour::DoubleVote, Some(Wire::Consensus(ConsensusMessage::Vote(v)))) => {
                let other = Vote { value: self.other_value(v.vote.value), ..v.vote.clone() };
                halves(bytes.to_vec(), self.vote(other))
            }
            (Behaviour::Equivocate, Some(Wire::Consensus(ConsensusMessage::Proposal(p)))) => {
                let other = Proposal { value: self.random_value(), ..p.proposal.clone() };
                let other = Wire::Consensus(ConsensusMessage::Proposal(self.domains.sign_proposal(&self.key, other))).encode();
                halves(bytes.to_vec(), other)
            }
            (Behaviour::Junk, _) => {
                let mut out = vec![(all(), bytes.to_vec())];
                let junk = self.junk();
                out.push((all(), junk));
                out
            }
            (Behaviour::Flood, wire) => {
                let mut out = vec![(all(), bytes.to_vec())];
                if let Some(Wire::Consensus(message)) = wire {
                    for flood in self.flood(&message) {
                        out.push((all(), flood));
                    }
                }
                out
            }
            _ => vec![(all(), bytes.to_vec())],
        };
        self.sent += out.len() as u64;
        out
    }

    fn vote(&self, vote: Vote) -> Vec<u8> {
        Wire::Consensus(ConsensusMessage::Vote(self.domains.sign_vote(&self.key, vote))).encode()
    }

    fn random_value(&mut self) -> tcp_consensus::ValueId {
        let mut d = [0u8; 32];
        self.rng.fill_bytes(&mut d);
        tcp_consensus::ValueId::from(Digest(d))
    }

    fn other_value(&mut self, value: Option<tcp_consensus::ValueId>) -> Option<tcp_consensus::ValueId> {
        match value {
            Some(_) => None,
            None => Some(self.random_value()),
        }
    }

    /// Garbage and well-formed nonsense: random bytes, a truncated message, a vote for a random
    /// height and round.
    fn junk(&mut self) -> Vec<u8> {
        match self.rng.next_u32() % 3 {
            0 => {
                let mut bytes = vec![0u8; 1 + (self.rng.next_u32() % 512) as usize];
                self.rng.fill_bytes(&mut bytes);
                bytes
            }
            1 => vec![0, 1, 2],
            _ => {
                let vote = Vote {
                    vote_type: VoteType::Prevote,
                    height: Height(1 + u64::from(self.rng.next_u32() % 10_000)),
                    round: Round(self.rng.next_u32() % 50),
                    value: Some(self.random_value()),
                    validator: ValidatorIndex(self.rng.next_u32() % self.validators),
                    extension: bytes::Bytes::new(),
                };
                self.vote(vote)
            }
        }
    }

    /// A burst of every message type a connected peer can send (issue 16's `flood`), built
    /// around the message `base` the node just sent.
    fn flood(&mut self, base: &ConsensusMessage) -> Vec<Vec<u8>> {
        let (height, round) = match base {
            ConsensusMessage::Vote(v) => (v.vote.height, v.vote.round),
            ConsensusMessage::Proposal(p) => (p.proposal.height, p.proposal.round),
        };
        let mut out = Vec::with_capacity(FLOOD_BURST);
        while out.len() < FLOOD_BURST {
            let message = match self.rng.next_u32() % 7 {
                // Bodies for the current and future heights (claimed height, random content).
                0 => {
                    let claimed = height.0 + u64::from(self.rng.next_u32() % 4);
                    let mut body = claimed.to_be_bytes().to_vec();
                    let mut rest = vec![0u8; 1024 + (self.rng.next_u32() % 8192) as usize];
                    self.rng.fill_bytes(&mut rest);
                    body.extend_from_slice(&rest);
                    Wire::Block(body).encode()
                }
                // A status claiming height 1: asks for the whole chain.
                1 => Wire::Status { height: Height(1), round: Round::ZERO }.encode(),
                // A precommit whose partial is a valid point, but for another message.
                2 => {
                    let Some(partial) = self.last_partial.clone() else { continue };
                    let vote = Vote {
                        vote_type: VoteType::Precommit,
                        height,
                        round,
                        value: Some(self.random_value()),
                        validator: self.own_index(base),
                        extension: partial,
                    };
                    self.vote(vote)
                }
                // A copied proposal, its signature no longer matching, with a real body.
                3 => {
                    let Some(body) = self.bodies.back().cloned() else { continue };
                    if let ConsensusMessage::Proposal(p) = base {
                        let mut copy = p.clone();
                        copy.proposal.round = Round(p.proposal.round.0 + 1);
                        let _ = Wire::Block(body.clone());
                        Wire::Consensus(ConsensusMessage::Proposal(copy)).encode()
                    } else {
                        Wire::Block(body).encode()
                    }
                }
                // Votes for future heights under other validators' indices.
                4 => {
                    let vote = Vote {
                        vote_type: VoteType::Prevote,
                        height: Height(height.0 + 1 + u64::from(self.rng.next_u32() % 3)),
                        round: Round::ZERO,
                        value: Some(self.random_value()),
                        validator: ValidatorIndex(self.rng.next_u32() % self.validators),
                        extension: bytes::Bytes::new(),
                    };
                    self.vote(vote)
                }
                // The same equivocating vote, again and again.
                5 => {
                    let vote = Vote {
                        vote_type: VoteType::Prevote,
                        height,
                        round,
                        value: Some(tcp_consensus::ValueId::from(Digest([0xee; 32]))),
                        validator: self.own_index(base),
                        extension: bytes::Bytes::new(),
                    };
                    self.vote(vote)
                }
                // An unsigned proposal (a signature of zeros).
                _ => {
                    let proposal = Proposal {
                        height,
                        round,
                        value: self.random_value(),
                        pol_round: None,
                        proposer: ValidatorIndex(self.rng.next_u32() % self.validators),
                    };
                    let mut signed = self.domains.sign_proposal(&self.key, proposal);
                    signed.signature = self.domains.sign_proposal(&self.key, Proposal { height: Height(0), ..signed.proposal.clone() }).signature;
                    Wire::Consensus(ConsensusMessage::Proposal(signed)).encode()
                }
            };
            out.push(message);
        }
        out
    }

    fn own_index(&self, base: &ConsensusMessage) -> ValidatorIndex {
        match base {
            ConsensusMessage::Vote(v) => v.vote.validator,
            ConsensusMessage::Proposal(p) => p.proposal.proposer,
        }
    }
}

/// Candidate subsets a grinding builder tries per block.
const GRIND_CANDIDATES: usize = 8;

/// The grinding builder (issue 16's `grind`): of the quorum subsets of h−1's precommits, it
/// carries the one under which the beacon would pick one of the `coalition` to propose at the
/// next height whose randomness it already knows (h+1, drawn with σ_{h−1}); failing that, the
/// one that credits the fewest honest validators. It tries dropping each single precommit the
/// quorum can spare, and pairs of them, evaluated on a copy of its ledger.
pub fn grinding_builder(coalition: Vec<Ed25519PublicKey>) -> tcp_node::node::LastCommitChoice {
    std::sync::Arc::new(move |ledger: &tcp_beacon::Ledger, height: Height, proposer: ValidatorIndex, commit: tcp_consensus::CommitCertificate| {
        let Some(members) = ledger.validators_at(Height(height.0 - 1)).map(<[_]>::to_vec) else { return commit };
        let quorum = members.len() * 2 / 3 + 1;
        let spare = commit.precommits.len().saturating_sub(quorum);
        let is_ally = |i: ValidatorIndex| members.get(i.as_usize()).is_some_and(|m| coalition.contains(&m.key));
        // Honest signers only: dropping an ally's precommit would cost the coalition credit.
        let droppable: Vec<usize> = (0..commit.precommits.len()).filter(|k| !is_ally(commit.precommits[*k].vote.validator)).collect();
        let mut candidates: Vec<Vec<usize>> = vec![Vec::new()];
        for (a, first) in droppable.iter().enumerate() {
            if spare >= 1 {
                candidates.push(vec![*first]);
            }
            if spare >= 2 {
                candidates.extend(droppable[a + 1..].iter().map(|second| vec![*first, *second]));
            }
        }
        candidates.truncate(GRIND_CANDIDATES);
        let score = |dropped: &[usize]| -> (bool, usize) {
            let signers: Vec<ValidatorIndex> =
                (0..commit.precommits.len()).filter(|k| !dropped.contains(k)).map(|k| commit.precommits[k].vote.validator).collect();
            let mut copy = ledger.clone();
            let data = tcp_beacon::ledger::BlockBeaconData {
                round: commit.round,
                proposer,
                previous_signature: ledger.signature(Height(height.0 - 1)),
                logs: Vec::new(),
                signers: Some(signers),
            };
            let mut rng = ChaCha20Rng::seed_from_u64(height.0);
            copy.apply_block(height, &data, &mut rng);
            let next = copy.proposer(height.next(), Round::ZERO).and_then(|i| copy.validators().get(i.as_usize()).map(|m| m.key.clone()));
            (next.is_some_and(|k| coalition.contains(&k)), dropped.len())
        };
        let best = candidates.into_iter().max_by_key(|dropped| score(dropped)).unwrap_or_default();
        let mut chosen = commit;
        let mut k = 0;
        chosen.precommits.retain(|_| {
            k += 1;
            !best.contains(&(k - 1))
        });
        chosen
    })
}
