//! Votes of one height, tallied by voting power per (round, vote type, value).
//!
//! A second, different vote from one validator in the same (round, type) is equivocation: the
//! keeper returns the conflicting pair so the caller can report it. As in the paper, which
//! counts *messages*, the second vote still counts toward its own value when the caller deems
//! that value relevant (nil, or a value some proposal carries): an equivocator can achieve as
//! much by sending each vote to different nodes, so quorum intersection is unaffected, and
//! refusing it would let the equivocator hide a proof of lock from the nodes that saw its
//! other vote first, stalling the chain. Tallies of "any value" count each validator once.
//! Votes reach the keeper already authenticated; the keeper only counts.

use crate::types::{SignedVote, ValidatorSet, ValueId, VoteType};
use std::collections::BTreeMap;
use std::sync::Arc;
use tcp_types::{Round, ValidatorIndex};

#[derive(Debug)]
pub enum AddVote {
    Added,
    /// The same vote (same value) was already counted.
    Duplicate,
    /// The validator already voted differently in this (round, type): equivocation. `counted`
    /// says whether the new vote counts toward its value.
    Conflict {
        first: Box<SignedVote>,
        counted: bool,
    },
}

/// At most this many different votes of one validator are kept per (round, type).
const MAX_VOTES_PER_SLOT: usize = 4;

#[derive(Debug)]
struct Tally {
    /// Per validator: its first vote, then any counted conflicting ones.
    votes: Vec<Vec<SignedVote>>,
    /// Power per value; `None` is nil. Few distinct values exist, so a vector beats a map.
    by_value: Vec<(Option<ValueId>, u64)>,
    total: u64,
}

impl Tally {
    fn new(n: usize) -> Self {
        Tally { votes: vec![Vec::new(); n], by_value: Vec::new(), total: 0 }
    }

    fn power_for(&self, value: &Option<ValueId>) -> u64 {
        self.by_value.iter().find(|(v, _)| v == value).map_or(0, |(_, p)| *p)
    }
}

#[derive(Debug)]
struct RoundVotes {
    prevotes: Tally,
    precommits: Tally,
    /// Validators with any vote in this round, and their power (for L55).
    senders: Vec<bool>,
    sender_power: u64,
}

impl RoundVotes {
    fn new(n: usize) -> Self {
        RoundVotes { prevotes: Tally::new(n), precommits: Tally::new(n), senders: vec![false; n], sender_power: 0 }
    }

    fn tally(&self, vote_type: VoteType) -> &Tally {
        match vote_type {
            VoteType::Prevote => &self.prevotes,
            VoteType::Precommit => &self.precommits,
        }
    }
}

#[derive(Debug)]
pub struct VoteKeeper {
    validators: Arc<ValidatorSet>,
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    pub fn new(validators: Arc<ValidatorSet>) -> Self {
        VoteKeeper { validators, rounds: BTreeMap::new() }
    }

    pub fn existing(&self, round: Round, vote_type: VoteType, validator: ValidatorIndex) -> Option<&SignedVote> {
        self.rounds.get(&round)?.tally(vote_type).votes.get(validator.as_usize())?.first()
    }

    /// Whether another vote of this validator for (round, type) with `value` would be counted
    /// by [`VoteKeeper::add`] (the slot has room and the value is relevant), or only refused
    /// as an equivocation. Lets the caller refuse a repeat equivocation before paying for its
    /// signature.
    pub fn would_count(
        &self,
        round: Round,
        vote_type: VoteType,
        validator: ValidatorIndex,
        value: &Option<ValueId>,
        relevant: impl Fn(&Option<ValueId>) -> bool,
    ) -> bool {
        let held = self.rounds.get(&round).and_then(|r| r.tally(vote_type).votes.get(validator.as_usize()));
        match held {
            None => true,
            Some(held) if held.is_empty() => true,
            Some(held) => held.len() < MAX_VOTES_PER_SLOT && relevant(value),
        }
    }

    /// Whether this validator's vote for exactly this value is already held.
    pub fn holds(&self, round: Round, vote_type: VoteType, validator: ValidatorIndex, value: &Option<ValueId>) -> bool {
        self.rounds
            .get(&round)
            .and_then(|r| r.tally(vote_type).votes.get(validator.as_usize()))
            .is_some_and(|votes| votes.iter().any(|v| v.vote.value == *value))
    }

    /// Count an authenticated vote from a member of the validator set. `relevant` says whether
    /// an equivocating vote's value may count (see the module comment).
    pub fn add(&mut self, signed: SignedVote, relevant: impl Fn(&Option<ValueId>) -> bool) -> AddVote {
        let vote = &signed.vote;
        let index = vote.validator.as_usize();
        let power = self.validators.power(vote.validator);
        assert!(power > 0, "the caller admits only members of the validator set");
        let n = self.validators.len();
        let round = self.rounds.entry(vote.round).or_insert_with(|| RoundVotes::new(n));
        let tally = match vote.vote_type {
            VoteType::Prevote => &mut round.prevotes,
            VoteType::Precommit => &mut round.precommits,
        };
        let held = &tally.votes[index];
        if held.iter().any(|v| v.vote.value == vote.value) {
            return AddVote::Duplicate;
        }
        let conflict = held.first().cloned();
        if let Some(first) = &conflict {
            if held.len() >= MAX_VOTES_PER_SLOT || !relevant(&vote.value) {
                return AddVote::Conflict { first: Box::new(first.clone()), counted: false };
            }
        } else {
            tally.total += power;
        }
        match tally.by_value.iter_mut().find(|(v, _)| *v == vote.value) {
            Some((_, p)) => *p += power,
            None => tally.by_value.push((vote.value, power)),
        }
        tally.votes[index].push(signed);
        if !round.senders[index] {
            round.senders[index] = true;
            round.sender_power += power;
        }
        debug_assert!(round.prevotes.total <= self.validators.total_power());
        debug_assert!(round.precommits.total <= self.validators.total_power());
        match conflict {
            Some(first) => AddVote::Conflict { first: Box::new(first), counted: true },
            None => AddVote::Added,
        }
    }

    fn tally(&self, round: Round, vote_type: VoteType) -> Option<&Tally> {
        self.rounds.get(&round).map(|r| r.tally(vote_type))
    }

    /// 2f+1 votes of `vote_type` in `round` for `value` (nil when `None`).
    pub fn has_quorum_for(&self, round: Round, vote_type: VoteType, value: &Option<ValueId>) -> bool {
        self.tally(round, vote_type).is_some_and(|t| self.validators.is_quorum(t.power_for(value)))
    }

    /// 2f+1 votes of `vote_type` in `round`, for anything.
    pub fn has_quorum_any(&self, round: Round, vote_type: VoteType) -> bool {
        self.tally(round, vote_type).is_some_and(|t| self.validators.is_quorum(t.total))
    }

    /// The value (not nil) with 2f+1 votes of `vote_type` in `round`, if any. At most one
    /// value can have a quorum unless more than a third of the power equivocates.
    pub fn quorum_value(&self, round: Round, vote_type: VoteType) -> Option<ValueId> {
        let tally = self.tally(round, vote_type)?;
        tally.by_value.iter().find(|(v, p)| v.is_some() && self.validators.is_quorum(*p)).and_then(|(v, _)| *v)
    }

    /// Rounds in which some value has 2f+1 precommits (candidates for L49).
    pub fn precommit_quorums(&self) -> impl Iterator<Item = (Round, ValueId)> + '_ {
        self.rounds.keys().filter_map(|r| self.quorum_value(*r, VoteType::Precommit).map(|v| (*r, v)))
    }

    /// L55: the highest round above `current` in which validators with > 1/3 of the power voted.
    pub fn skip_round(&self, current: Round) -> Option<Round> {
        self.rounds.range(current.next()..).rev().find(|(_, votes)| self.validators.is_one_third(votes.sender_power)).map(|(r, _)| *r)
    }

    /// How many rounds above `current` hold a vote of `validator` (bounds future-round state).
    pub fn future_rounds_of(&self, validator: ValidatorIndex, current: Round) -> usize {
        let i = validator.as_usize();
        self.rounds.range(current.next()..).filter(|(_, votes)| votes.senders[i]).count()
    }

    pub fn has_future_round(&self, validator: ValidatorIndex, current: Round, round: Round) -> bool {
        round > current && self.rounds.get(&round).is_some_and(|v| v.senders[validator.as_usize()])
    }

    /// Every vote held for one round (each validator's first vote per type).
    pub fn votes_in_round(&self, round: Round) -> Vec<SignedVote> {
        let Some(r) = self.rounds.get(&round) else { return Vec::new() };
        r.prevotes.votes.iter().chain(r.precommits.votes.iter()).filter_map(|held| held.first()).cloned().collect()
    }

    /// The votes of one type in one round for one value.
    pub fn votes_for(&self, round: Round, vote_type: VoteType, value: &Option<ValueId>) -> Vec<SignedVote> {
        self.tally(round, vote_type)
            .map(|t| t.votes.iter().filter_map(|held| held.iter().find(|s| s.vote.value == *value)).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Validator, Vote};
    use bytes::Bytes;
    use commonware_cryptography::Signer as _;
    use tcp_crypto::{Ed25519Signature, insecure_ed25519_from_seed};
    use tcp_types::{Digest, Height};

    fn set(powers: &[u64]) -> Arc<ValidatorSet> {
        let validators = powers
            .iter()
            .enumerate()
            .map(|(i, p)| Validator { public_key: insecure_ed25519_from_seed(i as u64).public_key(), voting_power: *p })
            .collect();
        Arc::new(ValidatorSet::new(validators).unwrap())
    }

    fn vote(t: VoteType, round: u32, value: Option<u8>, validator: u32) -> SignedVote {
        let key = insecure_ed25519_from_seed(0);
        let signature: Ed25519Signature = key.sign(b"x", b"y");
        SignedVote {
            vote: Vote {
                vote_type: t,
                height: Height(1),
                round: Round(round),
                value: value.map(|b| Digest([b; 32])),
                validator: ValidatorIndex(validator),
                extension: Bytes::new(),
            },
            signature,
        }
    }

    #[test]
    fn quorum_is_by_power_not_count() {
        // One heavy validator (power 7) and three light ones (1 each): total 10.
        let mut keeper = VoteKeeper::new(set(&[7, 1, 1, 1]));
        for i in 1..4 {
            keeper.add(vote(VoteType::Prevote, 0, Some(1), i), |_| false);
        }
        assert!(!keeper.has_quorum_for(Round(0), VoteType::Prevote, &Some(Digest([1; 32]))));
        keeper.add(vote(VoteType::Prevote, 0, Some(1), 0), |_| false);
        assert!(keeper.has_quorum_for(Round(0), VoteType::Prevote, &Some(Digest([1; 32]))));
    }

    #[test]
    fn equivocation_is_reported_and_counts_only_for_relevant_values() {
        let mut keeper = VoteKeeper::new(set(&[1, 1, 1, 1]));
        let only_nil = |v: &Option<ValueId>| v.is_none();
        assert!(matches!(keeper.add(vote(VoteType::Precommit, 0, Some(1), 2), only_nil), AddVote::Added));
        assert!(matches!(keeper.add(vote(VoteType::Precommit, 0, Some(1), 2), only_nil), AddVote::Duplicate));
        // An irrelevant conflicting value is reported but not counted.
        assert!(matches!(keeper.add(vote(VoteType::Precommit, 0, Some(9), 2), only_nil), AddVote::Conflict { counted: false, .. }));
        keeper.add(vote(VoteType::Precommit, 0, None, 0), only_nil);
        keeper.add(vote(VoteType::Precommit, 0, None, 1), only_nil);
        assert!(!keeper.has_quorum_for(Round(0), VoteType::Precommit, &None));
        // A relevant one (nil) is reported and counts toward nil, but "any" counts 2 once.
        assert!(matches!(keeper.add(vote(VoteType::Precommit, 0, None, 2), only_nil), AddVote::Conflict { counted: true, .. }));
        assert!(keeper.has_quorum_for(Round(0), VoteType::Precommit, &None));
        assert!(!keeper.has_quorum_any(Round(1), VoteType::Precommit));
        assert_eq!(keeper.votes_for(Round(0), VoteType::Precommit, &None).len(), 3);
        assert_eq!(keeper.votes_for(Round(0), VoteType::Precommit, &Some(Digest([1; 32]))).len(), 1);
    }

    #[test]
    fn any_tally_counts_each_validator_once() {
        let mut keeper = VoteKeeper::new(set(&[1, 1, 1, 1]));
        let all = |_: &Option<ValueId>| true;
        keeper.add(vote(VoteType::Prevote, 0, Some(1), 0), all);
        keeper.add(vote(VoteType::Prevote, 0, Some(2), 0), all);
        keeper.add(vote(VoteType::Prevote, 0, None, 0), all);
        keeper.add(vote(VoteType::Prevote, 0, None, 1), all);
        assert!(!keeper.has_quorum_any(Round(0), VoteType::Prevote));
        keeper.add(vote(VoteType::Prevote, 0, None, 2), all);
        assert!(keeper.has_quorum_any(Round(0), VoteType::Prevote));
    }

    #[test]
    fn skip_round_needs_more_than_a_third() {
        let mut keeper = VoteKeeper::new(set(&[1, 1, 1, 1]));
        keeper.add(vote(VoteType::Prevote, 5, None, 0), |_| false);
        assert_eq!(keeper.skip_round(Round(0)), None);
        keeper.add(vote(VoteType::Precommit, 5, None, 1), |_| false);
        assert_eq!(keeper.skip_round(Round(0)), Some(Round(5)));
        assert_eq!(keeper.skip_round(Round(5)), None);
        assert_eq!(keeper.future_rounds_of(ValidatorIndex(0), Round(0)), 1);
    }
}
