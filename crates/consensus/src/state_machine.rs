//! The Tendermint state machine of one height, as Algorithm 1 of "The latest gossip on BFT
//! consensus" (Buchman, Kwon, Milosevic, 2018, arXiv:1807.04938). Line numbers `Lnn` refer to
//! that algorithm.
//!
//! This module only moves the paper's variables (`round_p`, `step_p`, `lockedValue_p`, ...).
//! Deciding *which* `upon` rule fires (counting votes, matching proposals, "for the first time")
//! is the driver's job; it feeds the result here as a [`RoundInput`]. No I/O, no clock, no
//! signatures: `apply` is a pure function of the state and one input.

use crate::params::TimeoutKind;
use crate::types::{ValueId, VoteType};
use tcp_types::{Height, Round};

/// `step_p` (L4), plus the states before the first round and after the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Unstarted,
    Propose,
    Prevote,
    Precommit,
    Commit,
}

/// A value together with the round it was locked or seen valid in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundValue {
    pub round: Round,
    pub value: ValueId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub height: Height,
    pub round: Round,
    pub step: Step,
    /// `lockedValue_p`, `lockedRound_p` (L6–L7); `None` is the paper's nil / −1.
    pub locked: Option<RoundValue>,
    /// `validValue_p`, `validRound_p` (L8–L9).
    pub valid: Option<RoundValue>,
    /// `decision_p[h_p]` (L5).
    pub decision: Option<RoundValue>,
    /// "for the first time" guards of L34, L36 and L47, for the current round.
    pub prevote_timeout_scheduled: bool,
    pub polka_value_seen: bool,
    pub precommit_timeout_scheduled: bool,
    #[cfg(feature = "fault-injection")]
    pub injected_fault: crate::params::InjectedFault,
}

/// An `upon` rule of the paper whose condition the driver found true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundInput {
    /// StartRound(round) (L11), reached from L10, L54, L56 or L67.
    NewRound { round: Round, is_proposer: bool },
    /// getValue() answered (L18).
    ProposeValue { value: ValueId },
    /// L22: ⟨PROPOSAL, h_p, round_p, v, −1⟩ from the proposer while step_p = propose.
    Proposal { value: ValueId, valid: bool },
    /// L28: ⟨PROPOSAL, h_p, round_p, v, vr⟩ and 2f+1 ⟨PREVOTE, h_p, vr, id(v)⟩, vr < round_p.
    ProposalAndPolkaPrevious { value: ValueId, valid: bool, pol_round: Round },
    /// L34: 2f+1 ⟨PREVOTE, h_p, round_p, ∗⟩ while step_p = prevote, for the first time.
    PolkaAny,
    /// L36: proposal and 2f+1 ⟨PREVOTE, h_p, round_p, id(v)⟩, valid(v), step_p ≥ prevote, first time.
    ProposalAndPolkaCurrent { value: ValueId },
    /// L44: 2f+1 ⟨PREVOTE, h_p, round_p, nil⟩ while step_p = prevote.
    PolkaNil,
    /// L47: 2f+1 ⟨PRECOMMIT, h_p, round_p, ∗⟩ for the first time.
    PrecommitAny,
    /// L49: ⟨PROPOSAL, h_p, r, v, ∗⟩ and 2f+1 ⟨PRECOMMIT, h_p, r, id(v)⟩, decision_p = nil.
    ProposalAndPrecommitValue { round: Round, value: ValueId, valid: bool },
    /// L55: f+1 ⟨∗, h_p, round, ∗, ∗⟩ with round > round_p.
    SkipRound { round: Round },
    /// L57, L61, L65: a timeout scheduled for (h_p, round) expired.
    Timeout { kind: TimeoutKind, round: Round },
}

/// What a transition asks the driver to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// broadcast ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩ (L19).
    Proposal { round: Round, value: ValueId, pol_round: Option<Round> },
    /// proposal ← getValue() (L18): the host builds a block and answers with `ProposeValue`.
    GetValue { round: Round },
    /// broadcast ⟨PREVOTE|PRECOMMIT, h_p, round_p, id(v) or nil⟩.
    Vote { vote_type: VoteType, round: Round, value: Option<ValueId> },
    /// schedule OnTimeout…(h_p, round_p) after timeout…(round_p) (L21, L35, L48).
    ScheduleTimeout { kind: TimeoutKind, round: Round },
    /// StartRound(round) must run next (L54, L56, L67): the driver asks who proposes.
    StartRound { round: Round },
    /// decision_p[h_p] = v (L51).
    Decide { round: Round, value: ValueId },
}

impl State {
    pub fn new(height: Height) -> Self {
        State {
            height,
            round: Round::ZERO,
            step: Step::Unstarted,
            locked: None,
            valid: None,
            decision: None,
            prevote_timeout_scheduled: false,
            polka_value_seen: false,
            precommit_timeout_scheduled: false,
            #[cfg(feature = "fault-injection")]
            injected_fault: Default::default(),
        }
    }

    /// L23 / L29: may we prevote for `value`, given a proof of lock from `pol_round`?
    fn lock_allows(&self, value: &ValueId, pol_round: Option<Round>) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.injected_fault == crate::params::InjectedFault::BrokenLocking {
            return true;
        }
        match (self.locked, pol_round) {
            (None, _) => true,                                   // lockedRound_p = −1
            (Some(locked), _) if locked.value == *value => true, // lockedValue_p = v
            (Some(locked), Some(vr)) => locked.round <= vr,      // lockedRound_p ≤ vr
            (Some(_), None) => false,
        }
    }

    fn prevote(&mut self, value: Option<ValueId>, out: &mut Vec<Output>) {
        out.push(Output::Vote { vote_type: VoteType::Prevote, round: self.round, value });
        self.step = Step::Prevote;
    }

    fn precommit(&mut self, value: Option<ValueId>, out: &mut Vec<Output>) {
        out.push(Output::Vote { vote_type: VoteType::Precommit, round: self.round, value });
        self.step = Step::Precommit;
    }
}

/// Apply one input. Inputs whose guard does not hold in `state` leave it unchanged and output
/// nothing, so the driver may offer an input speculatively.
pub fn apply(state: &mut State, input: RoundInput) -> Vec<Output> {
    let mut out = Vec::new();
    if state.step == Step::Commit {
        return out; // L49 "while decision_p[h_p] = nil": nothing moves after the decision.
    }
    match input {
        RoundInput::NewRound { round, is_proposer } => {
            if state.step != Step::Unstarted && round <= state.round {
                return out; // rounds only move forward
            }
            // L12–L13
            state.round = round;
            state.step = Step::Propose;
            state.prevote_timeout_scheduled = false;
            state.polka_value_seen = false;
            state.precommit_timeout_scheduled = false;
            if is_proposer {
                match state.valid {
                    // L15–L16, L19
                    Some(valid) => out.push(Output::Proposal { round, value: valid.value, pol_round: Some(valid.round) }),
                    // L18
                    None => out.push(Output::GetValue { round }),
                }
            }
            // L21. Deviation: the proposer schedules it too, so a host that never answers
            // getValue cannot stall the round.
            out.push(Output::ScheduleTimeout { kind: TimeoutKind::Propose, round });
        }
        RoundInput::ProposeValue { value } => {
            // L18–L19, only while still waiting in the propose step of this round.
            if state.step == Step::Propose && state.valid.is_none() {
                out.push(Output::Proposal { round: state.round, value, pol_round: None });
            }
        }
        RoundInput::Proposal { value, valid } => {
            // L22
            if state.step == Step::Propose {
                // L23–L26
                if valid && state.lock_allows(&value, None) {
                    state.prevote(Some(value), &mut out); // L24, L27
                } else {
                    state.prevote(None, &mut out); // L26, L27
                }
            }
        }
        RoundInput::ProposalAndPolkaPrevious { value, valid, pol_round } => {
            // L28
            if state.step == Step::Propose && pol_round < state.round {
                // L29–L32
                if valid && state.lock_allows(&value, Some(pol_round)) {
                    state.prevote(Some(value), &mut out); // L30, L33
                } else {
                    state.prevote(None, &mut out); // L32, L33
                }
            }
        }
        RoundInput::PolkaAny => {
            // L34–L35
            if state.step == Step::Prevote && !state.prevote_timeout_scheduled {
                state.prevote_timeout_scheduled = true;
                out.push(Output::ScheduleTimeout { kind: TimeoutKind::Prevote, round: state.round });
            }
        }
        RoundInput::ProposalAndPolkaCurrent { value } => {
            // L36
            if state.step >= Step::Prevote && !state.polka_value_seen {
                state.polka_value_seen = true;
                if state.step == Step::Prevote {
                    // L37–L41
                    state.locked = Some(RoundValue { round: state.round, value });
                    state.precommit(Some(value), &mut out);
                }
                // L42–L43
                state.valid = Some(RoundValue { round: state.round, value });
            }
        }
        RoundInput::PolkaNil => {
            // L44–L46
            if state.step == Step::Prevote {
                state.precommit(None, &mut out);
            }
        }
        RoundInput::PrecommitAny => {
            // L47–L48
            if !state.precommit_timeout_scheduled {
                state.precommit_timeout_scheduled = true;
                out.push(Output::ScheduleTimeout { kind: TimeoutKind::Precommit, round: state.round });
            }
        }
        RoundInput::ProposalAndPrecommitValue { round, value, valid } => {
            // L49–L51. Moving to h_p + 1 (L52–L54) is the caller's: it starts a new height.
            if valid && state.decision.is_none() {
                state.decision = Some(RoundValue { round, value });
                state.step = Step::Commit;
                out.push(Output::Decide { round, value });
            }
        }
        RoundInput::SkipRound { round } => {
            // L55–L56
            if round > state.round {
                out.push(Output::StartRound { round });
            }
        }
        RoundInput::Timeout { kind, round } => {
            if round != state.round {
                return out; // L58, L62, L66: height = h_p ∧ round = round_p
            }
            match kind {
                // L57–L60
                TimeoutKind::Propose if state.step == Step::Propose => state.prevote(None, &mut out),
                // L61–L64
                TimeoutKind::Prevote if state.step == Step::Prevote => state.precommit(None, &mut out),
                // L65–L67
                TimeoutKind::Precommit => out.push(Output::StartRound { round: round.next() }),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp_types::Digest;

    fn v(b: u8) -> ValueId {
        Digest([b; 32])
    }

    fn started(round: u32, is_proposer: bool) -> (State, Vec<Output>) {
        let mut s = State::new(Height(1));
        let out = apply(&mut s, RoundInput::NewRound { round: Round(round), is_proposer });
        (s, out)
    }

    #[test]
    fn proposer_without_valid_value_asks_for_one() {
        let (s, out) = started(0, true);
        assert_eq!(s.step, Step::Propose);
        assert_eq!(out[0], Output::GetValue { round: Round(0) });
    }

    #[test]
    fn proposer_reproposes_valid_value_with_its_round() {
        let mut s = State::new(Height(1));
        s.step = Step::Precommit;
        s.valid = Some(RoundValue { round: Round(2), value: v(9) });
        let out = apply(&mut s, RoundInput::NewRound { round: Round(3), is_proposer: true });
        assert_eq!(out[0], Output::Proposal { round: Round(3), value: v(9), pol_round: Some(Round(2)) });
    }

    #[test]
    fn locked_validator_prevotes_nil_for_other_fresh_value() {
        let (mut s, _) = started(1, false);
        s.locked = Some(RoundValue { round: Round(0), value: v(1) });
        let out = apply(&mut s, RoundInput::Proposal { value: v(2), valid: true });
        assert_eq!(out, vec![Output::Vote { vote_type: VoteType::Prevote, round: Round(1), value: None }]);
        assert_eq!(s.step, Step::Prevote);
    }

    #[test]
    fn newer_proof_of_lock_unlocks() {
        let (mut s, _) = started(3, false);
        s.locked = Some(RoundValue { round: Round(0), value: v(1) });
        let out = apply(&mut s, RoundInput::ProposalAndPolkaPrevious { value: v(2), valid: true, pol_round: Round(2) });
        assert_eq!(out, vec![Output::Vote { vote_type: VoteType::Prevote, round: Round(3), value: Some(v(2)) }]);
        // An older proof of lock does not.
        let (mut s, _) = started(3, false);
        s.locked = Some(RoundValue { round: Round(2), value: v(1) });
        let out = apply(&mut s, RoundInput::ProposalAndPolkaPrevious { value: v(2), valid: true, pol_round: Round(1) });
        assert_eq!(out, vec![Output::Vote { vote_type: VoteType::Prevote, round: Round(3), value: None }]);
    }

    #[test]
    fn invalid_value_gets_nil_prevote() {
        let (mut s, _) = started(0, false);
        let out = apply(&mut s, RoundInput::Proposal { value: v(2), valid: false });
        assert_eq!(out, vec![Output::Vote { vote_type: VoteType::Prevote, round: Round(0), value: None }]);
    }

    #[test]
    fn polka_locks_and_precommits_once() {
        let (mut s, _) = started(0, false);
        apply(&mut s, RoundInput::Proposal { value: v(2), valid: true });
        let out = apply(&mut s, RoundInput::ProposalAndPolkaCurrent { value: v(2) });
        assert_eq!(out, vec![Output::Vote { vote_type: VoteType::Precommit, round: Round(0), value: Some(v(2)) }]);
        assert_eq!(s.locked, Some(RoundValue { round: Round(0), value: v(2) }));
        assert_eq!(s.valid, s.locked);
        assert!(apply(&mut s, RoundInput::ProposalAndPolkaCurrent { value: v(2) }).is_empty());
    }

    #[test]
    fn polka_after_precommit_only_updates_valid_value() {
        let (mut s, _) = started(0, false);
        apply(&mut s, RoundInput::Timeout { kind: TimeoutKind::Propose, round: Round(0) });
        apply(&mut s, RoundInput::Timeout { kind: TimeoutKind::Prevote, round: Round(0) });
        assert_eq!(s.step, Step::Precommit);
        let out = apply(&mut s, RoundInput::ProposalAndPolkaCurrent { value: v(5) });
        assert!(out.is_empty());
        assert_eq!(s.locked, None);
        assert_eq!(s.valid, Some(RoundValue { round: Round(0), value: v(5) }));
    }

    #[test]
    fn stale_timeouts_are_ignored_and_precommit_timeout_advances() {
        let (mut s, _) = started(2, false);
        assert!(apply(&mut s, RoundInput::Timeout { kind: TimeoutKind::Propose, round: Round(1) }).is_empty());
        assert_eq!(
            apply(&mut s, RoundInput::Timeout { kind: TimeoutKind::Precommit, round: Round(2) }),
            vec![Output::StartRound { round: Round(3) }]
        );
    }

    #[test]
    fn decision_is_final() {
        let (mut s, _) = started(0, false);
        let out = apply(&mut s, RoundInput::ProposalAndPrecommitValue { round: Round(0), value: v(3), valid: true });
        assert_eq!(out, vec![Output::Decide { round: Round(0), value: v(3) }]);
        assert!(apply(&mut s, RoundInput::NewRound { round: Round(5), is_proposer: true }).is_empty());
        assert!(apply(&mut s, RoundInput::ProposalAndPrecommitValue { round: Round(1), value: v(4), valid: true }).is_empty());
        assert_eq!(s.decision.unwrap().value, v(3));
    }
}
