//! The consensus core of one validator across heights: it authenticates and bounds input,
//! counts votes, decides which of the paper's `upon` rules fire, runs the state machine, and
//! signs what the state machine says to send. Sans-IO: time, randomness, network and disk
//! belong to the caller, who feeds [`Input`]s and carries out [`Effect`]s.

use crate::certificate::CommitCertificate;
use crate::evidence::Evidence;
use crate::params::{ConsensusConfig, HeightParams, TimeoutKind};
use crate::signing::ConsensusDomains;
use crate::state_machine::{self, Output, RoundInput, State, Step};
use crate::types::{ConsensusMessage, Proposal, SignedProposal, SignedVote, ValueId, Vote, VoteType};
use crate::vote_keeper::{AddVote, VoteKeeper};
use commonware_cryptography::Signer as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tcp_crypto::Ed25519PrivateKey;
use tcp_types::{Height, Round, ValidatorIndex};

/// Everything that can happen to the core. Each input is written to the WAL before it is
/// handed to [`Consensus::handle`], so replaying the WAL rebuilds the same state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A proposal whose full value arrived; `valid` is the host's verdict on it (the paper's
    /// `valid(v)`).
    Proposal {
        proposal: SignedProposal,
        valid: bool,
    },
    Vote(SignedVote),
    /// A timeout scheduled by [`Effect::ScheduleTimeout`] expired.
    Timeout {
        height: Height,
        round: Round,
        kind: TimeoutKind,
    },
    /// The answer to [`Effect::GetValue`]: the id of the value the host built.
    ProposeValue {
        height: Height,
        round: Round,
        value: ValueId,
    },
    /// A commit certificate fetched from a peer while catching up, with the host's verdict on
    /// the full value it certifies.
    Commit {
        certificate: CommitCertificate,
        valid: bool,
    },
}

impl Input {
    pub fn height(&self) -> Height {
        match self {
            Input::Proposal { proposal, .. } => proposal.proposal.height,
            Input::Vote(v) => v.vote.height,
            Input::Timeout { height, .. } | Input::ProposeValue { height, .. } => *height,
            Input::Commit { certificate, .. } => certificate.height,
        }
    }

    fn claimed_sender(&self) -> Option<ValidatorIndex> {
        match self {
            Input::Proposal { proposal, .. } => Some(proposal.proposal.proposer),
            Input::Vote(v) => Some(v.vote.validator),
            _ => None,
        }
    }
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send to every validator (gossip). The core already counted its own message.
    Broadcast(ConsensusMessage),
    /// Feed `Input::Timeout { height, round, kind }` after `after`.
    ScheduleTimeout { height: Height, round: Round, kind: TimeoutKind, after: Duration },
    /// Build a value for this height and answer with `Input::ProposeValue`.
    GetValue { height: Height, round: Round },
    /// The height is decided. Persist it, then call [`Consensus::start_height`] for the next.
    Decided { height: Height, value: ValueId, certificate: CommitCertificate },
    /// A validator equivocated; the pair is checkable by anyone.
    Evidence(Evidence),
}

/// An input that passed every check against the height in progress: bounds, membership,
/// signatures, precommit extension, certificate. Only [`Consensus::admit`] makes one, apart
/// from [`Verified::from_own_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified(Input);

impl Verified {
    pub fn input(&self) -> &Input {
        &self.0
    }

    /// An input read back from this node's own WAL. The WAL only ever receives verified
    /// inputs, so replay does not pay for signatures again; the log itself must detect
    /// corruption (checksums) before handing entries back.
    pub fn from_own_log(input: Input) -> Self {
        Verified(input)
    }
}

/// What the host does with an admitted input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// For the height in progress and authentic: write it to the WAL, then [`Consensus::apply`] it.
    Apply(Verified),
    /// For a later height: the core holds it (bounded) and hands it back through
    /// [`Consensus::take_buffered`] when that height starts; nothing to log now.
    Buffered,
}

/// Why an input was refused. Every refusal is counted in [`RejectionStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum Rejection {
    #[error("no height has been started")]
    NotStarted,
    #[error("message for a height already decided")]
    StaleHeight,
    #[error("message for a height beyond the buffering window")]
    FarFutureHeight,
    #[error("buffer for this future height and sender is full")]
    FutureBufferFull,
    #[error("round too far above the current round")]
    FarFutureRound,
    #[error("sender already holds its quota of future rounds")]
    FutureRoundLimit,
    #[error("sender is not in the validator set")]
    UnknownValidator,
    #[error("proposal not from the proposer of its round")]
    WrongProposer,
    #[error("signature does not verify")]
    BadSignature,
    #[error("precommit extension does not verify")]
    BadExtension,
    #[error("already received")]
    Duplicate,
    #[error("equivocation: conflicts with a message already received")]
    Equivocation,
    #[error("commit certificate does not verify or does not match")]
    InvalidCertificate,
    #[error("input does not apply in the current state")]
    Inapplicable,
    #[error("the height is already decided")]
    AlreadyDecided,
}

/// Counts of refused inputs, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectionStats {
    pub counts: BTreeMap<Rejection, u64>,
}

impl RejectionStats {
    pub fn get(&self, r: Rejection) -> u64 {
        self.counts.get(&r).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn merge(&mut self, other: &RejectionStats) {
        for (k, v) in &other.counts {
            *self.counts.entry(*k).or_default() += v;
        }
    }
}

#[derive(Clone, Debug)]
struct StoredProposal {
    signed: SignedProposal,
    valid: bool,
}

/// State of the height in progress.
struct HeightState {
    state: State,
    params: HeightParams,
    me: Option<ValidatorIndex>,
    keeper: VoteKeeper,
    proposals: BTreeMap<Round, StoredProposal>,
    /// Rounds in which the local validator asked for a value and has not proposed yet.
    awaiting_value: Option<Round>,
    /// (validator, round, type) pairs already reported, so evidence is emitted once.
    evidence_reported: BTreeSet<(ValidatorIndex, Round, Option<VoteType>)>,
}

impl HeightState {
    /// Whether an equivocator's vote for `value` may count: nil, or a value a proposal carries.
    fn proposed(proposals: &BTreeMap<Round, StoredProposal>, value: &Option<ValueId>) -> bool {
        value.is_none_or(|v| proposals.values().any(|p| p.signed.proposal.value == v))
    }

    fn value_is_proposed(&self, value: &Option<ValueId>) -> bool {
        Self::proposed(&self.proposals, value)
    }
}

/// The consensus core of one node (a validator when it holds a key in the set, else a
/// follower that decides without voting).
/// The largest vote or proposal the future buffer holds, encoded: a precommit with the
/// largest extension is under 400 bytes.
pub const MAX_BUFFERED_INPUT_BYTES: usize = 512;

pub struct Consensus {
    config: ConsensusConfig,
    domains: ConsensusDomains,
    key: Option<Ed25519PrivateKey>,
    current: Option<HeightState>,
    /// Inputs for heights above the current one, replayed when that height starts.
    future: BTreeMap<Height, Vec<Input>>,
    future_counts: HashMap<(Height, ValidatorIndex), usize>,
    stats: RejectionStats,
    refused_double_signs: u64,
}

/// At most this many rules fire per input; each firing changes the state, so the loop ends
/// long before (the bound only turns a bug into a visible failure).
const MAX_RULE_FIRINGS: usize = 64;

impl Consensus {
    pub fn new(config: ConsensusConfig, key: Option<Ed25519PrivateKey>) -> Self {
        let domains = ConsensusDomains::new(&config.chain_id);
        Consensus {
            config,
            domains,
            key,
            current: None,
            future: BTreeMap::new(),
            future_counts: HashMap::new(),
            stats: RejectionStats::default(),
            refused_double_signs: 0,
        }
    }

    pub fn stats(&self) -> &RejectionStats {
        &self.stats
    }

    /// Votes the core refused to sign because it had signed a conflicting one (always 0
    /// unless the core itself is broken).
    pub fn refused_double_signs(&self) -> u64 {
        self.refused_double_signs
    }

    pub fn height(&self) -> Option<Height> {
        self.current.as_ref().map(|h| h.state.height)
    }

    pub fn round(&self) -> Option<Round> {
        self.current.as_ref().map(|h| h.state.round)
    }

    pub fn step(&self) -> Option<Step> {
        self.current.as_ref().map(|h| h.state.step)
    }

    pub fn locked(&self) -> Option<state_machine::RoundValue> {
        self.current.as_ref().and_then(|h| h.state.locked)
    }

    /// The paper's validValue/validRound of the height in progress.
    pub fn valid(&self) -> Option<state_machine::RoundValue> {
        self.current.as_ref().and_then(|h| h.state.valid)
    }

    /// The round whose value the host still owes (after replay, the host asks again).
    pub fn awaiting_value(&self) -> Option<(Height, Round)> {
        let hs = self.current.as_ref()?;
        hs.awaiting_value.map(|r| (hs.state.height, r))
    }

    /// Begin `height` (L10 for the first height, L52–L54 afterwards). Buffered messages for it
    /// are handled now.
    pub fn start_height(&mut self, height: Height, params: HeightParams) -> Vec<Effect> {
        if let Some(hs) = &self.current {
            assert!(height > hs.state.height, "heights only move forward");
        }
        let me = self.key.as_ref().and_then(|k| params.validators.index_of(&k.public_key()));
        #[allow(unused_mut)]
        let mut state = State::new(height);
        #[cfg(feature = "fault-injection")]
        {
            state.injected_fault = self.config.injected_fault;
        }
        self.current = Some(HeightState {
            state,
            keeper: VoteKeeper::new(params.validators.clone()),
            params,
            me,
            proposals: BTreeMap::new(),
            awaiting_value: None,
            evidence_reported: BTreeSet::new(),
        });
        let mut effects = Vec::new();
        self.start_round(Round::ZERO, &mut effects);
        effects
    }

    /// Bytes of the messages buffered for later heights (encoded size). At most
    /// `future_heights × validators × future_messages_per_validator` of them, each a vote or
    /// proposal of at most [`MAX_BUFFERED_INPUT_BYTES`].
    pub fn future_buffer_bytes(&self) -> usize {
        use commonware_codec::EncodeSize as _;
        self.future.values().flatten().map(|input| input.encode_size()).sum()
    }

    /// How many distinct validators have authenticated messages buffered for `height`.
    pub fn buffered_senders(&self, height: Height) -> usize {
        self.future_counts.keys().filter(|(h, _)| *h == height).count()
    }

    /// The most the future buffer may hold for a set of `validators`, in bytes.
    pub fn future_buffer_limit(&self, validators: usize) -> usize {
        let limits = &self.config.limits;
        limits.future_heights as usize * validators * limits.future_messages_per_validator * MAX_BUFFERED_INPUT_BYTES
    }

    /// Inputs that arrived early for the height now in progress. The host feeds each through
    /// its usual path (admit, log, handle): an early input is logged only when it is applied,
    /// so a replay applies exactly what the original run applied.
    pub fn take_buffered(&mut self) -> Vec<Input> {
        let Some(height) = self.height() else { return Vec::new() };
        let stale: Vec<Height> = self.future.range(..=height).map(|(h, _)| *h).collect();
        let mut ready = Vec::new();
        for h in stale {
            let inputs = self.future.remove(&h).unwrap_or_default();
            if h == height {
                ready = inputs;
            }
        }
        self.future_counts.retain(|(h, _), _| *h > height);
        ready
    }

    /// Check an input against the height in progress: everything that does not depend on
    /// applying it (bounds, membership, duplicates, signatures, extension, certificate).
    /// A host with a WAL logs the returned [`Verified`] input and then applies it, so neither
    /// garbage nor forgeries reach its disk. Refusals are counted.
    pub fn admit(&mut self, input: Input) -> Result<Admission, Rejection> {
        let result = self.admit_inner(input);
        if let Err(r) = &result {
            self.count(*r);
        }
        result
    }

    /// Admit and apply in one step, for callers without a WAL.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Effect>, Rejection> {
        match self.admit(input)? {
            Admission::Apply(verified) => self.apply(verified),
            Admission::Buffered => Ok(Vec::new()),
        }
    }

    fn count(&mut self, rejection: Rejection) {
        *self.stats.counts.entry(rejection).or_default() += 1;
    }

    fn admit_inner(&mut self, input: Input) -> Result<Admission, Rejection> {
        let Some(hs) = &self.current else { return Err(Rejection::NotStarted) };
        let height = input.height();
        self.check_height_window(hs, height)?;
        if height > hs.state.height {
            // Count and repeats first (free), then the signature, then a place in the buffer.
            self.check_future_room(&input)?;
            self.authenticate_future(&input)?;
            self.buffer_future(input)?;
            return Ok(Admission::Buffered);
        }
        if hs.state.step == Step::Commit {
            return Err(Rejection::AlreadyDecided);
        }
        match &input {
            Input::Vote(signed) => self.check_vote(hs, signed)?,
            Input::Proposal { proposal, .. } => self.check_proposal(hs, proposal)?,
            Input::Timeout { .. } => {}
            Input::ProposeValue { round, .. } => {
                if hs.awaiting_value != Some(*round) || hs.state.round != *round {
                    return Err(Rejection::Inapplicable);
                }
            }
            Input::Commit { certificate, valid } => {
                // More than a third of the power certifying an invalid value leaves nothing
                // safe to do but refuse it and stay.
                if !valid || certificate.verify(&self.domains, &hs.params.validators, hs.params.extension.as_ref()).is_err() {
                    return Err(Rejection::InvalidCertificate);
                }
            }
        }
        Ok(Admission::Apply(Verified(input)))
    }

    /// The height is the one in progress or within the buffering window above it.
    fn check_height_window(&self, hs: &HeightState, height: Height) -> Result<(), Rejection> {
        if height < hs.state.height {
            return Err(Rejection::StaleHeight);
        }
        if height.0 > hs.state.height.0.saturating_add(self.config.limits.future_heights) {
            return Err(Rejection::FarFutureHeight);
        }
        Ok(())
    }

    /// The free refusals, before any signature is looked at: a vote already held, and a
    /// further vote of a validator already proven to equivocate in this slot that would not be
    /// counted (its evidence was reported with the first conflict, so resending it must cost
    /// us nothing: no signature check, nothing for the host to log).
    fn refuse_repeat(hs: &HeightState, vote: &Vote) -> Result<(), Rejection> {
        if hs.keeper.holds(vote.round, vote.vote_type, vote.validator, &vote.value) {
            return Err(Rejection::Duplicate);
        }
        if hs.evidence_reported.contains(&(vote.validator, vote.round, Some(vote.vote_type)))
            && !hs.keeper.would_count(vote.round, vote.vote_type, vote.validator, &vote.value, |v| hs.value_is_proposed(v))
        {
            return Err(Rejection::Equivocation);
        }
        Ok(())
    }

    /// The sender is a member of the height's set and the round is not absurdly far ahead.
    fn check_sender_and_round(&self, hs: &HeightState, sender: ValidatorIndex, round: Round) -> Result<(), Rejection> {
        if hs.params.validators.get(sender).is_none() {
            return Err(Rejection::UnknownValidator);
        }
        if round.0 > hs.state.round.0.saturating_add(self.config.limits.max_round_lookahead) {
            return Err(Rejection::FarFutureRound);
        }
        Ok(())
    }

    fn check_vote(&self, hs: &HeightState, signed: &SignedVote) -> Result<(), Rejection> {
        let limits = &self.config.limits;
        let vote = &signed.vote;
        let current_round = hs.state.round;
        self.check_sender_and_round(hs, vote.validator, vote.round)?;
        Self::refuse_repeat(hs, vote)?;
        if hs.keeper.existing(vote.round, vote.vote_type, vote.validator).is_none()
            && vote.round > current_round
            && !hs.keeper.has_future_round(vote.validator, current_round, vote.round)
            && hs.keeper.future_rounds_of(vote.validator, current_round) >= limits.future_rounds_per_validator
        {
            return Err(Rejection::FutureRoundLimit);
        }
        if !self.domains.verify_vote(&hs.params.validators, signed) {
            return Err(Rejection::BadSignature);
        }
        if let (VoteType::Precommit, Some(value)) = (vote.vote_type, vote.value)
            && !hs.params.extension.verify(vote.height, vote.round, vote.validator, &value, &vote.extension)
        {
            return Err(Rejection::BadExtension);
        }
        Ok(())
    }

    fn check_proposal(&self, hs: &HeightState, signed: &SignedProposal) -> Result<(), Rejection> {
        let limits = &self.config.limits;
        let p = &signed.proposal;
        let current_round = hs.state.round;
        self.check_sender_and_round(hs, p.proposer, p.round)?;
        if hs.params.proposer.proposer(&hs.params.validators, p.height, p.round) != p.proposer {
            return Err(Rejection::WrongProposer);
        }
        match hs.proposals.get(&p.round) {
            Some(existing) if existing.signed == *signed => return Err(Rejection::Duplicate),
            Some(_) => {} // a conflicting one: verified below, reported when applied
            None => {
                let future_rounds =
                    hs.proposals.range(current_round.next()..).filter(|(_, s)| s.signed.proposal.proposer == p.proposer).count();
                if p.round > current_round && future_rounds >= limits.future_rounds_per_validator {
                    return Err(Rejection::FutureRoundLimit);
                }
            }
        }
        if !self.domains.verify_proposal(&hs.params.validators, signed) {
            return Err(Rejection::BadSignature);
        }
        Ok(())
    }

    /// A message for a later height is buffered under its sender's slot only once it is known
    /// to come from that sender: a member of the current set whose signature verifies. Within
    /// an epoch the next heights have the same set; a message of a new epoch's member arriving
    /// before its height is refused and reaches us again by gossip. Without this a peer could
    /// fill the buffer under every validator's index and crowd out their real messages.
    fn authenticate_future(&self, input: &Input) -> Result<(), Rejection> {
        let hs = self.current.as_ref().ok_or(Rejection::NotStarted)?;
        let validators = &hs.params.validators;
        let authentic = match input {
            Input::Vote(v) => {
                validators.get(v.vote.validator).ok_or(Rejection::UnknownValidator)?;
                self.domains.verify_vote(validators, v)
            }
            Input::Proposal { proposal, .. } => {
                validators.get(proposal.proposal.proposer).ok_or(Rejection::UnknownValidator)?;
                self.domains.verify_proposal(validators, proposal)
            }
            _ => return Err(Rejection::Inapplicable),
        };
        if !authentic {
            return Err(Rejection::BadSignature);
        }
        Ok(())
    }

    /// The checks a host runs on a network message before it spends anything else on it
    /// (a batch of BLS partials, executing a block body, a disk write): the sender is a
    /// member of the set of its height (current or buffered), a proposal comes from the
    /// round's proposer, and the ed25519 signature verifies. Stale and far-future messages are
    /// refused. Counted like any refusal.
    pub fn authenticate(&mut self, message: &ConsensusMessage) -> Result<(), Rejection> {
        let result = self.authenticate_inner(message);
        if let Err(r) = &result {
            self.count(*r);
        }
        result
    }

    fn authenticate_inner(&self, message: &ConsensusMessage) -> Result<(), Rejection> {
        let hs = self.current.as_ref().ok_or(Rejection::NotStarted)?;
        let input = match message {
            ConsensusMessage::Vote(v) => Input::Vote(v.clone()),
            ConsensusMessage::Proposal(p) => Input::Proposal { proposal: p.clone(), valid: false },
        };
        let height = input.height();
        self.check_height_window(hs, height)?;
        if height > hs.state.height {
            self.check_future_room(&input)?;
            return self.authenticate_future(&input);
        }
        let validators = &hs.params.validators;
        match message {
            ConsensusMessage::Vote(v) => {
                let vote = &v.vote;
                self.check_sender_and_round(hs, vote.validator, vote.round)?;
                Self::refuse_repeat(hs, vote)?;
                if !self.domains.verify_vote(validators, v) {
                    return Err(Rejection::BadSignature);
                }
            }
            ConsensusMessage::Proposal(p) => {
                let proposal = &p.proposal;
                self.check_sender_and_round(hs, proposal.proposer, proposal.round)?;
                if hs.params.proposer.proposer(validators, proposal.height, proposal.round) != proposal.proposer {
                    return Err(Rejection::WrongProposer);
                }
                if !self.domains.verify_proposal(validators, p) {
                    return Err(Rejection::BadSignature);
                }
            }
        }
        Ok(())
    }

    fn check_future_room(&self, input: &Input) -> Result<(), Rejection> {
        let sender = input.claimed_sender().ok_or(Rejection::Inapplicable)?;
        let height = input.height();
        if self.future.get(&height).is_some_and(|held| held.contains(input)) {
            return Err(Rejection::Duplicate);
        }
        if self.future_counts.get(&(height, sender)).is_some_and(|n| *n >= self.config.limits.future_messages_per_validator) {
            return Err(Rejection::FutureBufferFull);
        }
        Ok(())
    }

    fn buffer_future(&mut self, input: Input) -> Result<(), Rejection> {
        let height = input.height();
        // Timeouts and our own value answers never target a future height; certificates are
        // fed by the host in height order, so only network messages are buffered.
        let Some(sender) = input.claimed_sender() else { return Err(Rejection::Inapplicable) };
        let count = self.future_counts.entry((height, sender)).or_default();
        if *count >= self.config.limits.future_messages_per_validator {
            return Err(Rejection::FutureBufferFull);
        }
        *count += 1;
        self.future.entry(height).or_default().push(input);
        Ok(())
    }

    /// Apply an admitted input: count it, fire every `upon` rule it enables, run the state
    /// machine, and return what to do. Deterministic: the same inputs in the same order give
    /// the same effects, which is what makes WAL replay safe.
    pub fn apply(&mut self, verified: Verified) -> Result<Vec<Effect>, Rejection> {
        let result = self.apply_inner(verified.0);
        if let Err(r) = &result {
            self.count(*r);
        }
        result
    }

    fn apply_inner(&mut self, input: Input) -> Result<Vec<Effect>, Rejection> {
        let Some(hs) = &mut self.current else { return Err(Rejection::NotStarted) };
        if input.height() != hs.state.height {
            return Err(Rejection::Inapplicable);
        }
        if hs.state.step == Step::Commit {
            return Err(Rejection::AlreadyDecided);
        }
        let mut effects = Vec::new();
        match input {
            Input::Vote(signed) => self.apply_vote(signed, &mut effects)?,
            Input::Proposal { proposal, valid } => self.apply_proposal(proposal, valid, &mut effects)?,
            Input::Timeout { round, kind, .. } => self.run(RoundInput::Timeout { kind, round }, &mut effects),
            Input::ProposeValue { round, value, .. } => {
                if hs.awaiting_value != Some(round) || hs.state.round != round {
                    return Err(Rejection::Inapplicable);
                }
                hs.awaiting_value = None;
                self.run(RoundInput::ProposeValue { value }, &mut effects);
            }
            Input::Commit { certificate, .. } => {
                // L49 with the 2f+1 precommits carried by the certificate and the value
                // fetched with it.
                let input = RoundInput::ProposalAndPrecommitValue { round: certificate.round, value: certificate.value, valid: true };
                for output in state_machine::apply(&mut hs.state, input) {
                    if let Output::Decide { .. } = output {
                        effects.push(Effect::Decided {
                            height: certificate.height,
                            value: certificate.value,
                            certificate: certificate.clone(),
                        });
                    }
                }
            }
        }
        self.evaluate(&mut effects);
        Ok(effects)
    }

    fn apply_vote(&mut self, signed: SignedVote, effects: &mut Vec<Effect>) -> Result<(), Rejection> {
        let hs = self.current.as_mut().expect("started");
        let vote = &signed.vote;
        let key = (vote.validator, vote.round, Some(vote.vote_type));
        let proposals = &hs.proposals;
        let relevant = |value: &Option<ValueId>| HeightState::proposed(proposals, value);
        match hs.keeper.add(signed.clone(), relevant) {
            AddVote::Added => Ok(()),
            AddVote::Duplicate => Err(Rejection::Duplicate),
            AddVote::Conflict { first, .. } => {
                // The evidence must reach the caller even though this counts as a refusal.
                if hs.evidence_reported.insert(key) {
                    effects.push(Effect::Evidence(Evidence::ConflictingVotes(first, Box::new(signed))));
                }
                self.count(Rejection::Equivocation);
                Ok(())
            }
        }
    }

    fn apply_proposal(&mut self, signed: SignedProposal, valid: bool, effects: &mut Vec<Effect>) -> Result<(), Rejection> {
        let hs = self.current.as_mut().expect("started");
        let p = &signed.proposal;
        if let Some(existing) = hs.proposals.get(&p.round) {
            if (existing.signed.proposal.value, existing.signed.proposal.pol_round) == (p.value, p.pol_round) {
                return Err(Rejection::Duplicate);
            }
            if hs.evidence_reported.insert((p.proposer, p.round, None)) {
                let evidence = Evidence::ConflictingProposals(Box::new(existing.signed.clone()), Box::new(signed));
                effects.push(Effect::Evidence(evidence));
            }
            self.count(Rejection::Equivocation);
            return Ok(());
        }
        hs.proposals.insert(p.round, StoredProposal { signed, valid });
        Ok(())
    }

    /// Find the `upon` rule whose condition now holds, if any. Every input returned changes the
    /// state when applied, so [`Consensus::evaluate`] terminates.
    fn next_rule(hs: &HeightState) -> Option<RoundInput> {
        let s = &hs.state;
        let round = s.round;
        if matches!(s.step, Step::Unstarted | Step::Commit) {
            return None;
        }
        // L49: a proposal and 2f+1 precommits for its value, in any round.
        for (r, value) in hs.keeper.precommit_quorums() {
            if let Some(p) = hs.proposals.get(&r)
                && p.signed.proposal.value == value
                && p.valid
            {
                return Some(RoundInput::ProposalAndPrecommitValue { round: r, value, valid: true });
            }
        }
        // L55: f+1 validators are in a higher round.
        if let Some(r) = hs.keeper.skip_round(round) {
            return Some(RoundInput::SkipRound { round: r });
        }
        let proposal = hs.proposals.get(&round).map(|p| (p.signed.proposal.value, p.signed.proposal.pol_round, p.valid));
        if s.step == Step::Propose {
            match proposal {
                // L22
                Some((value, None, valid)) => return Some(RoundInput::Proposal { value, valid }),
                // L28
                Some((value, Some(vr), valid)) if vr < round && hs.keeper.has_quorum_for(vr, VoteType::Prevote, &Some(value)) => {
                    return Some(RoundInput::ProposalAndPolkaPrevious { value, valid, pol_round: vr });
                }
                _ => {}
            }
        }
        // L36
        if s.step >= Step::Prevote
            && !s.polka_value_seen
            && let Some((value, _, true)) = proposal
            && hs.keeper.has_quorum_for(round, VoteType::Prevote, &Some(value))
        {
            return Some(RoundInput::ProposalAndPolkaCurrent { value });
        }
        if s.step == Step::Prevote {
            // L44
            if hs.keeper.has_quorum_for(round, VoteType::Prevote, &None) {
                return Some(RoundInput::PolkaNil);
            }
            // L34
            if !s.prevote_timeout_scheduled && hs.keeper.has_quorum_any(round, VoteType::Prevote) {
                return Some(RoundInput::PolkaAny);
            }
        }
        // L47
        if !s.precommit_timeout_scheduled && hs.keeper.has_quorum_any(round, VoteType::Precommit) {
            return Some(RoundInput::PrecommitAny);
        }
        None
    }

    fn evaluate(&mut self, effects: &mut Vec<Effect>) {
        for _ in 0..MAX_RULE_FIRINGS {
            let Some(input) = Self::next_rule(self.current.as_ref().expect("started")) else { return };
            self.run(input, effects);
        }
        debug_assert!(false, "rule evaluation did not reach a fixed point");
    }

    fn start_round(&mut self, round: Round, effects: &mut Vec<Effect>) {
        let hs = self.current.as_ref().expect("started");
        let is_proposer = hs.me.is_some() && hs.me == Some(hs.params.proposer.proposer(&hs.params.validators, hs.state.height, round));
        self.run(RoundInput::NewRound { round, is_proposer }, effects);
    }

    /// Run the state machine on one input and carry out its outputs.
    fn run(&mut self, input: RoundInput, effects: &mut Vec<Effect>) {
        let hs = self.current.as_mut().expect("started");
        let height = hs.state.height;
        let outputs = state_machine::apply(&mut hs.state, input);
        for output in outputs {
            match output {
                Output::StartRound { round } => self.start_round(round, effects),
                Output::GetValue { round } => {
                    let hs = self.current.as_mut().expect("started");
                    hs.awaiting_value = Some(round);
                    effects.push(Effect::GetValue { height, round });
                }
                Output::ScheduleTimeout { kind, round } => {
                    let after = self.config.timeouts.duration(kind, round);
                    effects.push(Effect::ScheduleTimeout { height, round, kind, after });
                }
                Output::Proposal { round, value, pol_round } => self.send_proposal(round, value, pol_round, effects),
                Output::Vote { vote_type, round, value } => self.send_vote(vote_type, round, value, effects),
                Output::Decide { round, value } => {
                    let hs = self.current.as_ref().expect("started");
                    let precommits = hs.keeper.votes_for(round, VoteType::Precommit, &Some(value));
                    let certificate = CommitCertificate { height, round, value, precommits };
                    debug_assert!(certificate.verify(&self.domains, &hs.params.validators, hs.params.extension.as_ref()).is_ok());
                    effects.push(Effect::Decided { height, value, certificate });
                }
            }
        }
    }

    fn send_proposal(&mut self, round: Round, value: ValueId, pol_round: Option<Round>, effects: &mut Vec<Effect>) {
        let hs = self.current.as_mut().expect("started");
        let (Some(me), Some(key)) = (hs.me, self.key.as_ref()) else { return };
        hs.awaiting_value = None;
        let proposal = Proposal { height: hs.state.height, round, value, pol_round, proposer: me };
        let signed = self.domains.sign_proposal(key, proposal);
        // Our own proposal: the host built (or already validated) the value.
        hs.proposals.insert(round, StoredProposal { signed: signed.clone(), valid: true });
        effects.push(Effect::Broadcast(ConsensusMessage::Proposal(signed)));
    }

    fn send_vote(&mut self, vote_type: VoteType, round: Round, value: Option<ValueId>, effects: &mut Vec<Effect>) {
        let hs = self.current.as_mut().expect("started");
        let (Some(me), Some(key)) = (hs.me, self.key.as_ref()) else { return };
        if let Some(existing) = hs.keeper.existing(round, vote_type, me) {
            // The state machine votes once per (round, type); a second vote would be a double
            // sign. Refuse it whatever happens.
            debug_assert!(existing.vote.value == value, "state machine tried to double-sign");
            self.refused_double_signs += u64::from(existing.vote.value != value);
            return;
        }
        let height = hs.state.height;
        let extension = match (vote_type, value) {
            (VoteType::Precommit, Some(v)) => hs.params.extension.extend(height, round, &v),
            _ => bytes::Bytes::new(),
        };
        let vote = Vote { vote_type, height, round, value, validator: me, extension };
        let signed = self.domains.sign_vote(key, vote);
        let added = hs.keeper.add(signed.clone(), |_| false);
        debug_assert!(matches!(added, AddVote::Added));
        effects.push(Effect::Broadcast(ConsensusMessage::Vote(signed)));
    }

    /// What to re-send so peers that lost messages can catch up: our proposal and votes of the
    /// current round, and the prevotes that justify our valid value (its proof of lock).
    pub fn gossip(&self) -> Vec<ConsensusMessage> {
        let Some(hs) = &self.current else { return Vec::new() };
        let mut out = Vec::new();
        if hs.state.step == Step::Commit {
            return out;
        }
        let round = hs.state.round;
        if let Some(p) = hs.proposals.get(&round)
            && Some(p.signed.proposal.proposer) == hs.me
        {
            out.push(ConsensusMessage::Proposal(p.signed.clone()));
        }
        if let Some(me) = hs.me {
            for t in [VoteType::Prevote, VoteType::Precommit] {
                if let Some(v) = hs.keeper.existing(round, t, me) {
                    out.push(ConsensusMessage::Vote(v.clone()));
                }
            }
        }
        if let Some(valid) = hs.state.valid {
            for v in hs.keeper.votes_for(valid.round, VoteType::Prevote, &Some(valid.value)) {
                out.push(ConsensusMessage::Vote(v));
            }
        }
        out
    }

    /// What a peer working on our height but in an older round needs to catch up: the votes
    /// we hold for its round (enough for its L47 timeout or L49 decision), and our proposal
    /// for our round if we are the proposer. Empty when the peer is not behind us.
    pub fn catch_up(&self, peer_height: Height, peer_round: Round) -> Vec<ConsensusMessage> {
        let Some(hs) = &self.current else { return Vec::new() };
        if peer_height != hs.state.height || peer_round >= hs.state.round || hs.state.step == Step::Commit {
            return Vec::new();
        }
        hs.keeper.votes_in_round(peer_round).into_iter().map(ConsensusMessage::Vote).collect()
    }

    /// The signed proposal stored for a round of the current height, if any.
    pub fn proposal(&self, round: Round) -> Option<&SignedProposal> {
        self.current.as_ref()?.proposals.get(&round).map(|p| &p.signed)
    }
}
