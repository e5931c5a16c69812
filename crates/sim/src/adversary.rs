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

/// What the Byzantine validators of a run share: they act as one.
pub struct Coalition {
    /// Their keys.
    pub members: Vec<Ed25519PublicKey>,
    /// The two groups of honest nodes a split shows different things.
    pub groups: (Vec<Ed25519PublicKey>, Vec<Ed25519PublicKey>),
    /// Per (height, round) the coalition split: the value shown to each group, with the second
    /// value's signed proposal and body (re-sent unchanged).
    splits: std::collections::BTreeMap<(Height, Round), Split>,
    /// Proposals a coalition member sent whose bodies have not gone out yet.
    stashed: Vec<tcp_consensus::SignedProposal>,
    /// (Amnesia) the value each (height, round) was proposed with, as received.
    proposed: std::collections::BTreeMap<(Height, Round), tcp_consensus::ValueId>,
    /// (Amnesia) victims the network should cut off for a while.
    mute: Vec<Ed25519PublicKey>,
}

struct Split {
    first: tcp_consensus::ValueId,
    second: tcp_consensus::ValueId,
    second_proposal: Vec<u8>,
    second_body: Vec<u8>,
}

impl Coalition {
    pub fn new(members: Vec<Ed25519PublicKey>, groups: (Vec<Ed25519PublicKey>, Vec<Ed25519PublicKey>)) -> Coalition {
        Coalition {
            members,
            groups,
            splits: Default::default(),
            stashed: Vec::new(),
            proposed: Default::default(),
            mute: Vec::new(),
        }
    }

    pub fn take_mute_requests(&mut self) -> Vec<Ed25519PublicKey> {
        std::mem::take(&mut self.mute)
    }
}

/// Splits kept (older heights are done).
const SPLITS_KEPT: usize = 64;

pub struct Adversary {
    pub behaviour: Behaviour,
    coalition: std::sync::Arc<std::sync::Mutex<Coalition>>,
    key: Ed25519PrivateKey,
    domains: ConsensusDomains,
    rng: ChaCha20Rng,
    validators: u32,
    /// The last partial this validator attached to a precommit (a valid point, replayed where
    /// it does not belong).
    last_partial: Option<bytes::Bytes>,
    bodies: VecDeque<Vec<u8>>,
    /// (Amnesia) this node's own proposals: (height, round, value).
    own_proposals: Vec<(Height, Round, tcp_consensus::ValueId)>,
    /// (ForgeFinality) its own proposal, held until its body goes out: both are replaced by a forgery.
    held_proposal: Option<tcp_consensus::SignedProposal>,
    /// Messages counted for the report.
    pub sent: u64,
}

impl Adversary {
    pub fn new(
        behaviour: Behaviour,
        key: Ed25519PrivateKey,
        domains: ConsensusDomains,
        validators: usize,
        seed: u64,
        coalition: std::sync::Arc<std::sync::Mutex<Coalition>>,
    ) -> Adversary {
        Adversary {
            behaviour,
            coalition,
            key,
            domains,
            rng: ChaCha20Rng::seed_from_u64(seed),
            validators: validators as u32,
            last_partial: None,
            bodies: VecDeque::new(),
            own_proposals: Vec::new(),
            held_proposal: None,
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
            // As a member of the secret-share group: withhold the partial, or send one the
            // enclave cannot use (it names the member and recovers from the others).
            (Behaviour::Withhold, Some(Wire::KeyAnswer { .. })) => Vec::new(),
            (Behaviour::BadPartials, Some(Wire::KeyAnswer { request, mut sealed })) => {
                if let Some(last) = sealed.last_mut() {
                    *last ^= 0x5a;
                }
                vec![(all(), Wire::KeyAnswer { request, sealed }.encode())]
            }
            (Behaviour::Withhold, Some(Wire::Consensus(ConsensusMessage::Vote(v)))) if !v.vote.extension.is_empty() => {
                let vote = Vote { extension: bytes::Bytes::new(), ..v.vote };
                vec![(all(), self.vote(vote))]
            }
            (Behaviour::DoubleVote, Some(Wire::Consensus(ConsensusMessage::Vote(v)))) => {
                let other = Vote { value: self.other_value(v.vote.value), ..v.vote.clone() };
                halves(bytes.to_vec(), self.vote(other))
            }
            (Behaviour::Equivocate, Some(wire)) => self.equivocate(bytes, wire, recipients),
            (Behaviour::Amnesia, Some(wire)) => self.amnesia(bytes, wire, recipients),
            (Behaviour::ForgeFinality, Some(Wire::Consensus(ConsensusMessage::Proposal(p)))) => {
                self.held_proposal = Some(p);
                Vec::new()
            }
            (Behaviour::ForgeFinality, Some(Wire::Block(body)))
                if self.held_proposal.as_ref().is_some_and(|p| tcp_node::block::block_id(&body) == Some(p.proposal.value)) =>
            {
                let proposal = self.held_proposal.take().expect("checked");
                self.forged_block(proposal, &body).into_iter().map(|m| (all(), m)).collect()
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

    /// What a Byzantine node receives: (amnesia) proposals are remembered, and others'
    /// precommits ignored so that it stays in the height. Returns whether the node sees it.
    pub fn incoming(&mut self, bytes: &[u8]) -> bool {
        if self.behaviour != Behaviour::Amnesia {
            return true;
        }
        match Wire::decode(bytes) {
            Ok(Wire::Consensus(ConsensusMessage::Proposal(p))) => {
                let mut coalition = self.coalition.lock().unwrap_or_else(|e| e.into_inner());
                coalition.proposed.insert((p.proposal.height, p.proposal.round), p.proposal.value);
                while coalition.proposed.len() > SPLITS_KEPT {
                    coalition.proposed.pop_first();
                }
                true
            }
            Ok(Wire::Consensus(ConsensusMessage::Vote(v))) => v.vote.vote_type != VoteType::Precommit,
            _ => true,
        }
    }

    /// Coordinated split brain: a coalition member's proposal shows one block to one honest
    /// group and a twin (one millisecond later, equally valid) to the other; every member's
    /// votes for either tell each group it voted for what that group saw.
    fn equivocate(&mut self, bytes: &[u8], wire: Wire, recipients: &[Ed25519PublicKey]) -> Vec<(Recipients<Ed25519PublicKey>, Vec<u8>)> {
        let mut coalition = self.coalition.lock().unwrap_or_else(|e| e.into_inner());
        let (first_group, second_group) = coalition.groups.clone();
        let to = |group: &[Ed25519PublicKey], extra: &[Ed25519PublicKey]| {
            Recipients::Some(recipients.iter().filter(|r| group.contains(r) || extra.contains(r)).cloned().collect())
        };
        let members = coalition.members.clone();
        match wire {
            Wire::Consensus(ConsensusMessage::Proposal(p)) => {
                if let Some(split) = coalition.splits.get(&(p.proposal.height, p.proposal.round))
                    && split.first == p.proposal.value
                {
                    return vec![(to(&first_group, &members), bytes.to_vec()), (to(&second_group, &[]), split.second_proposal.clone())];
                }
                // Held until its body goes out: the twin is built from it.
                coalition.stashed.retain(|s| s.proposal.height >= p.proposal.height);
                coalition.stashed.push(p);
                Vec::new()
            }
            Wire::Block(body) => {
                let Some(id) = tcp_node::block::block_id(&body) else {
                    return vec![(Recipients::Some(recipients.to_vec()), bytes.to_vec())];
                };
                let Some(position) = coalition.stashed.iter().position(|s| s.proposal.value == id) else {
                    if let Some(split) = coalition.splits.values().find(|s| s.first == id) {
                        return vec![(to(&first_group, &members), bytes.to_vec()), (to(&second_group, &[]), split.second_body.clone())];
                    }
                    return vec![(Recipients::Some(recipients.to_vec()), bytes.to_vec())];
                };
                let proposal = coalition.stashed.remove(position);
                let original = Wire::Consensus(ConsensusMessage::Proposal(proposal.clone())).encode();
                let Ok(mut twin) = tcp_node::block::Block::decode(&body, tcp_node::block::MAX_BLOCK_BYTES) else {
                    return vec![(Recipients::Some(recipients.to_vec()), original), (Recipients::Some(recipients.to_vec()), bytes.to_vec())];
                };
                twin.header.timestamp_ms += 1;
                let twin_body = twin.encode();
                let twin_id = twin.id();
                let twin_proposal = self.domains.sign_proposal(&self.key, Proposal { value: twin_id, ..proposal.proposal.clone() });
                let split = Split {
                    first: id,
                    second: twin_id,
                    second_proposal: Wire::Consensus(ConsensusMessage::Proposal(twin_proposal)).encode(),
                    second_body: Wire::Block(twin_body).encode(),
                };
                let out = vec![
                    (to(&first_group, &members), original),
                    (to(&first_group, &members), bytes.to_vec()),
                    (to(&second_group, &[]), split.second_proposal.clone()),
                    (to(&second_group, &[]), split.second_body.clone()),
                ];
                coalition.splits.insert((proposal.proposal.height, proposal.proposal.round), split);
                while coalition.splits.len() > SPLITS_KEPT {
                    coalition.splits.pop_first();
                }
                out
            }
            Wire::Consensus(ConsensusMessage::Vote(v)) => {
                let Some(split) = coalition.splits.get(&(v.vote.height, v.vote.round)) else {
                    return vec![(Recipients::Some(recipients.to_vec()), bytes.to_vec())];
                };
                let (first, second) = (split.first, split.second);
                if v.vote.value != Some(first) && v.vote.value != Some(second) {
                    return vec![(Recipients::Some(recipients.to_vec()), bytes.to_vec())];
                }
                drop(coalition);
                let for_first = self.vote(Vote { value: Some(first), ..v.vote.clone() });
                let for_second = self.vote(Vote { value: Some(second), ..v.vote.clone() });
                vec![(to(&first_group, &members), for_first), (to(&second_group, &[]), for_second)]
            }
            _ => vec![(Recipients::Some(recipients.to_vec()), bytes.to_vec())],
        }
    }

    /// The amnesia attack: it forgets its lock (votes for whatever was proposed in the round),
    /// and in a round it proposes shows the value only to the first honest group and gives
    /// its precommit for it to one node of that group (the victim) and nil to everyone else.
    fn amnesia(&mut self, bytes: &[u8], wire: Wire, recipients: &[Ed25519PublicKey]) -> Vec<(Recipients<Ed25519PublicKey>, Vec<u8>)> {
        let coalition = self.coalition.lock().unwrap_or_else(|e| e.into_inner());
        let first_group = coalition.groups.0.clone();
        let victim = first_group.first().cloned();
        let mut members = coalition.members.clone();
        let proposed = |h: Height, r: Round| coalition.proposed.get(&(h, r)).copied();
        let all = Recipients::Some(recipients.to_vec());
        let shown: Vec<Ed25519PublicKey> = recipients.iter().filter(|r| first_group.contains(r) || members.contains(r)).cloned().collect();
        match wire {
            Wire::Consensus(ConsensusMessage::Proposal(p)) => {
                drop(coalition);
                self.own_proposals.push((p.proposal.height, p.proposal.round, p.proposal.value));
                if self.own_proposals.len() > SPLITS_KEPT {
                    self.own_proposals.remove(0);
                }
                vec![(Recipients::Some(shown), bytes.to_vec())]
            }
            Wire::Block(body) => {
                let id = tcp_node::block::block_id(&body).unwrap_or_default();
                let ours = self.own_proposals.iter().any(|(_, _, v)| *v == id);
                drop(coalition);
                vec![(if ours { Recipients::Some(shown) } else { all }, bytes.to_vec())]
            }
            Wire::Consensus(ConsensusMessage::Vote(v)) => {
                let (h, r) = (v.vote.height, v.vote.round);
                let seen = proposed(h, r);
                drop(coalition);
                let own = self.own_proposals.iter().find(|(ph, pr, _)| *ph == h && *pr == r).map(|(_, _, value)| *value);
                // Forget the lock: vote for what this round proposed.
                let value = own.or(seen).or(v.vote.value);
                // The beacon partial signs the height, not the value: it stays valid for any value.
                let extension = if v.vote.vote_type == VoteType::Precommit && value.is_some() { v.vote.extension.clone() } else { bytes::Bytes::new() };
                let voted = Vote { value, extension, ..v.vote.clone() };
                match (v.vote.vote_type, own, victim) {
                    (VoteType::Precommit, Some(_), Some(victim)) if recipients.contains(&victim) => {
                        members.push(victim.clone());
                        let mut coalition = self.coalition.lock().unwrap_or_else(|e| e.into_inner());
                        if !coalition.mute.contains(&victim) {
                            coalition.mute.push(victim.clone());
                        }
                        drop(coalition);
                        let nil = Vote { value: None, extension: bytes::Bytes::new(), ..v.vote.clone() };
                        let rest: Vec<Ed25519PublicKey> = recipients.iter().filter(|r| **r != victim).cloned().collect();
                        vec![(Recipients::One(victim), self.vote(voted)), (Recipients::Some(rest), self.vote(nil))]
                    }
                    _ => vec![(all, self.vote(voted))],
                }
            }
            _ => {
                drop(coalition);
                vec![(all, bytes.to_vec())]
            }
        }
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
    /// Its own block, forged where the header meets finality (issue 17): φ_{h-1} relabelled
    /// with another round, σ_{h-1} passed off as φ_{h-1}, or the honest header with a body that
    /// does not match its roots. Returns the proposal and body to send instead of the real ones.
    fn forged_block(&mut self, proposal: tcp_consensus::SignedProposal, body: &[u8]) -> Vec<Vec<u8>> {
        let original = || vec![Wire::Consensus(ConsensusMessage::Proposal(proposal.clone())).encode(), Wire::Block(body.to_vec()).encode()];
        let Ok(mut block) = tcp_node::block::Block::decode(body, tcp_node::block::MAX_BLOCK_BYTES) else { return original() };
        let (Some(finality), Some(sigma)) = (block.header.previous_finality, block.header.previous_signature) else { return original() };
        let variant = self.rng.next_u32() % 3;
        match variant {
            0 => block.header.previous_finality = Some(tcp_beacon::Finality { round: Round(finality.round.0 + 1), ..finality }),
            1 => block.header.previous_finality = Some(tcp_beacon::Finality { signature: tcp_beacon::FinalitySignature(sigma.0), ..finality }),
            _ => {
                // Same header (same id, the signed proposal unchanged), another body.
                block.last_commit = None;
                return vec![Wire::Consensus(ConsensusMessage::Proposal(proposal)).encode(), Wire::Block(block.encode()).encode()];
            }
        }
        let forged = self.domains.sign_proposal(&self.key, tcp_consensus::Proposal { value: block.id(), ..proposal.proposal });
        vec![Wire::Consensus(ConsensusMessage::Proposal(forged)).encode(), Wire::Block(block.encode()).encode()]
    }

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
                parent: ledger.finality(Height(height.0 - 1)).map(|(id, _)| id).unwrap_or_default(),
                previous_finality: ledger.finality(Height(height.0 - 1)).map(|(_, f)| f),
                commit_round: None,
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
