//! Driving the consensus core: admit → WAL → apply for every input, the effects carried out, and
//! precommits gathered so their beacon partials are verified as one batch (after each one's
//! ed25519 signature).

use super::*;

impl<H: Host> Node<H> {
    /// Precommits of the height in progress queue for one batch check of their partials; late
    /// precommits of the height just decided still help recover its σ.
    pub(super) fn on_vote(&mut self, vote: SignedVote) -> Result<(), NodeError> {
        let current = self.core.height();
        if self.batches_partials(&vote) {
            // Its ed25519 signature before its partial joins a batch of pairings: a copied or
            // forged precommit costs one signature check, never a pairing.
            if self.core.authenticate(&ConsensusMessage::Vote(vote.clone())).is_err() {
                self.metrics.rejected_inputs.inc();
                return Ok(());
            }
            self.hold_precommit(vote);
            // (While σ_{h-1} is unknown it waits: it comes with the height's proposal.)
            return self.flush_held_if_ready();
        }
        if vote.vote.vote_type == VoteType::Precommit
            && current.is_some_and(|c| vote.vote.height.next() == c)
            && self.awaiting_sigma.is_some()
            && self.previous_extension.is_active()
            && self
                .set_at(vote.vote.height)
                .is_some_and(|set| tcp_consensus::ConsensusDomains::new(&self.spec.chain_id).verify_vote(&set, &vote))
            && let Some(value) = vote.vote.value
            && self.previous_extension.offer_late_partial(vote.vote.validator, vote.vote.round, &value, &vote.vote.extension)
        {
            self.retry_awaiting_sigma()?;
        }
        self.feed(Input::Vote(vote))
    }

    /// Whether `vote` is a non-nil precommit of the height in progress whose partials this node
    /// checks in a batch (the beacon runs at this height).
    pub(super) fn batches_partials(&self, vote: &SignedVote) -> bool {
        vote.vote.vote_type == VoteType::Precommit
            && vote.vote.value.is_some()
            && self.waiting_start.is_none()
            && Some(vote.vote.height) == self.core.height()
            && self.extension.is_active()
    }

    /// Hold an authenticated precommit for the next batch: at most
    /// [`MAX_HELD_PRECOMMITS_PER_VALIDATOR`] per validator (an honest one precommits one value
    /// per round; a faulty one's extra rounds replace its own lowest), identical copies once.
    pub(super) fn hold_precommit(&mut self, vote: SignedVote) {
        // Precommits of a height already decided would only take room.
        self.inbox.retain(|v| v.vote.height == vote.vote.height);
        if self.inbox.contains(&vote) {
            return;
        }
        let from = vote.vote.validator;
        let held = self.inbox.iter().filter(|v| v.vote.validator == from).count();
        if held >= MAX_HELD_PRECOMMITS_PER_VALIDATOR {
            let lowest = self
                .inbox
                .iter()
                .enumerate()
                .filter(|(_, v)| v.vote.validator == from)
                .min_by_key(|(_, v)| v.vote.round)
                .map(|(i, v)| (i, v.vote.round));
            match lowest {
                Some((i, round)) if round < vote.vote.round => {
                    self.inbox.remove(i);
                }
                _ => return,
            }
        }
        self.inbox.push(vote);
        debug_assert!(self.inbox.len() <= MAX_HELD_PRECOMMITS_PER_VALIDATOR * self.validators.len().max(1));
    }

    /// Check the held precommits' partials as one batch, then hand them to the core. While
    /// σ_{h-1} is unknown (the message their partials sign) they keep waiting.
    pub(super) fn flush_precommits(&mut self) -> Result<(), NodeError> {
        self.flush_scheduled = false;
        if self.extension.is_active() && self.extension.message().is_none() {
            return Ok(());
        }
        let height = self.extension.height();
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.retain(|v| v.vote.height == height);
        let extension = self.extension.clone();
        let items: Vec<(ValidatorIndex, Round, ValueId, &[u8])> =
            inbox.iter().filter_map(|v| Some((v.vote.validator, v.vote.round, v.vote.value?, &v.vote.extension[..]))).collect();
        extension.verify_batch(&mut self.rng, &items);
        for vote in inbox {
            self.feed(Input::Vote(vote))?;
        }
        Ok(())
    }

    /// Held precommits go to their batch once σ_{h-1} is known: at once when they complete a
    /// quorum, otherwise after [`FLUSH_DELAY`] like any.
    pub(super) fn flush_held_if_ready(&mut self) -> Result<(), NodeError> {
        if self.inbox.is_empty() || self.extension.message().is_none() {
            return Ok(());
        }
        if self.inbox.len() + self.extension.verified_count() >= self.extension.threshold() {
            return self.flush_precommits();
        }
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            self.schedule(FLUSH_DELAY, Timer::FlushPrecommits);
        }
        Ok(())
    }

    /// A proposer that could not build its block for want of σ_{h-1} tries again (a late
    /// precommit of h-1 may have completed its partials).
    pub(super) fn retry_awaiting_sigma(&mut self) -> Result<(), NodeError> {
        let Some((height, round)) = self.awaiting_sigma else { return Ok(()) };
        if self.core.awaiting_value() != Some((height, round)) {
            self.awaiting_sigma = None;
            return Ok(());
        }
        if self.sigma_of(Height(height.0 - 1))?.is_none() {
            return Ok(());
        }
        self.awaiting_sigma = None;
        let mut queue = VecDeque::new();
        self.build_value(height, round, &mut queue)?;
        self.drain(queue)
    }

    pub(super) fn feed(&mut self, input: Input) -> Result<(), NodeError> {
        self.drain(VecDeque::from([input]))
    }

    /// Admit (check), log (durably), then apply each input and everything it causes.
    pub(super) fn drain(&mut self, mut queue: VecDeque<Input>) -> Result<(), NodeError> {
        while let Some(input) = queue.pop_front() {
            if self.waiting_start.is_some() && matches!(input, Input::Timeout { .. }) {
                continue;
            }
            let verified = match self.core.admit(input) {
                Ok(Admission::Apply(verified)) => verified,
                Ok(Admission::Buffered) => continue,
                Err(_) => {
                    self.metrics.rejected_inputs.inc();
                    continue;
                }
            };
            self.wal.append(verified.input())?;
            let Ok(effects) = self.core.apply(verified) else { continue };
            self.carry_out(effects, &mut queue, false)?;
        }
        // What was just handled may have made σ_{h-1} known (a proposal's block, our own
        // recovery as proposer, a peer's commit): precommits waiting for it go now.
        self.learn_message();
        self.flush_held_if_ready()
    }

    pub(super) fn carry_out(&mut self, effects: Vec<Effect>, queue: &mut VecDeque<Input>, replaying: bool) -> Result<(), NodeError> {
        for effect in effects {
            match effect {
                Effect::Broadcast(message) => self.broadcast(message),
                Effect::ScheduleTimeout { height, round, kind, after } => {
                    let k = match kind {
                        tcp_consensus::TimeoutKind::Propose => 0,
                        tcp_consensus::TimeoutKind::Prevote => 1,
                        tcp_consensus::TimeoutKind::Precommit => 2,
                    };
                    self.schedule(after, Timer::Consensus(height, round, k));
                }
                Effect::GetValue { height, round } => {
                    if !replaying {
                        self.build_value(height, round, queue)?;
                    }
                }
                Effect::Decided { height, value, certificate } => self.on_decided(height, value, certificate, queue, replaying)?,
                Effect::Evidence(evidence) => {
                    tracing::warn!(node = %self.name, offender = evidence.offender().0, height = evidence.height().0, "equivocation evidence");
                }
            }
        }
        Ok(())
    }

    pub(super) fn broadcast(&mut self, message: ConsensusMessage) {
        // (Our own precommit's partials joined the verified ones when `extend` made them.)
        if let ConsensusMessage::Vote(v) = &message
            && v.vote.vote_type == VoteType::Precommit
            && v.vote.value.is_some()
            && v.vote.extension.is_empty()
            && v.vote.height == self.extension.height()
            && self.extension.is_active()
            && self.extension.signs()
        {
            // Every path that lets the core precommit a value makes σ_{h-1} known first.
            debug_assert!(false, "a precommit without partials at height {}", v.vote.height.0);
            tracing::error!(node = %self.name, height = v.vote.height.0, "precommitting without partials: σ_{{h-1}} unknown");
        }
        // The signed proposal first: a peer accepts a body only once something signed names it.
        let body = match &message {
            ConsensusMessage::Proposal(p) => self.bodies.get(&p.proposal.value).map(|b| Wire::Block(b.bytes.to_vec())),
            ConsensusMessage::Vote(_) => None,
        };
        self.send_all(&Wire::Consensus(message), true);
        if let Some(body) = body {
            self.send_all(&body, true);
        }
    }
}
