//! Proposals and block bodies from the network: authenticated before they queue, bodies kept only
//! for ids a signed proposal names and bounded in bytes, judged by `valid(v)` when both are here.

use super::*;

impl<H: Host> Node<H> {
    /// A proposal from the network: authenticated (member, the round's proposer, signature)
    /// before it may hold a place in the queue or make us look at a body; at most
    /// [`MAX_PROPOSALS_PER_ROUND`] per (height, round); when the queue is full the proposal of
    /// the furthest (height, round) makes room for a nearer one.
    pub(super) fn on_proposal(&mut self, proposal: SignedProposal) -> Result<(), NodeError> {
        let p = &proposal.proposal;
        // A replay of what is queued or was already judged costs nothing more.
        if self.pending_proposals.contains(&proposal) || self.judged_proposals.contains(&(p.height, p.round, p.value)) {
            return Ok(());
        }
        if self.core.authenticate(&ConsensusMessage::Proposal(proposal.clone())).is_err() {
            self.metrics.rejected_inputs.inc();
            return Ok(());
        }
        // Per (height, round, proposer): a signer that is not the round's proposer (checkable
        // only once its height starts) cannot take the real proposer's places; and a signer
        // holds at most a few places for later heights.
        let slot = (p.height, p.round);
        let at_slot = self
            .pending_proposals
            .iter()
            .filter(|q| (q.proposal.height, q.proposal.round, q.proposal.proposer) == (p.height, p.round, p.proposer))
            .count();
        let ahead = self
            .pending_proposals
            .iter()
            .filter(|q| q.proposal.proposer == p.proposer && q.proposal.height > self.current_height())
            .count();
        if at_slot >= MAX_PROPOSALS_PER_ROUND || (p.height > self.current_height() && ahead >= MAX_FUTURE_PROPOSALS_PER_SIGNER) {
            return Ok(());
        }
        if self.pending_proposals.len() >= MAX_PENDING_PROPOSALS {
            let furthest = self
                .pending_proposals
                .iter()
                .enumerate()
                .max_by_key(|(_, p)| (p.proposal.height, p.proposal.round))
                .map(|(i, p)| (i, (p.proposal.height, p.proposal.round)));
            match furthest {
                Some((i, far)) if far > slot => {
                    self.pending_proposals.remove(i);
                }
                _ => return Ok(()),
            }
        }
        let id = proposal.proposal.value;
        let round = proposal.proposal.round;
        self.pending_proposals.push_back(proposal);
        debug_assert!(self.pending_proposals.len() <= MAX_PENDING_PROPOSALS);
        // A body that came before its proposal.
        // The smallest peer key among those that sent it: the same choice on every run.
        let early = self.unsolicited.iter().filter(|(_, (v, _, _))| *v == id).map(|(peer, _)| peer.clone()).min();
        if let Some(peer) = early
            && let Some((_, height, bytes)) = self.unsolicited.remove(&peer)
        {
            self.bodies.entry(id).or_insert(Body { height, round, bytes, executed: None });
            self.bound_bodies(Some(id));
        }
        self.try_pending_proposals()
    }

    /// A block body from the network: kept only if a signed proposal names it (otherwise one
    /// per peer waits for its proposal), so a peer can neither evict a proposal's body nor
    /// make us store or execute what nobody proposed.
    pub(super) fn on_block(&mut self, peer: Ed25519PublicKey, body: Vec<u8>) -> Result<(), NodeError> {
        let Some(height) = claimed_height(&body) else { return Ok(()) };
        let current = self.current_height();
        if height < current || height.0 > current.0 + 2 || body.len() > self.spec.params().max_block_bytes {
            return Ok(());
        }
        // The id is the header's hash; decoding checks the body against the header's roots, so
        // a peer cannot pair an honest header with another body and have it held under the
        // honest proposal's id.
        let Some(id) = block_id(&body) else {
            self.metrics.rejected_blocks.inc();
            tracing::debug!(node = %self.name, peer = %peer, "a block body that does not decode or match its roots");
            return Ok(());
        };
        if self.bodies.contains_key(&id) {
            return Ok(());
        }
        let Some(round) = self.pending_proposals.iter().find(|p| p.proposal.value == id).map(|p| p.proposal.round) else {
            self.unsolicited.retain(|_, (_, h, _)| *h >= current);
            self.unsolicited.remove(&peer);
            let held: usize = self.unsolicited.values().map(|(_, _, b)| b.len()).sum();
            if held + body.len() <= MAX_UNSOLICITED_BLOCKS * self.spec.params().max_block_bytes {
                self.unsolicited.insert(peer, (id, height, Arc::new(body)));
            }
            return Ok(());
        };
        self.bodies.insert(id, Body { height, round, bytes: Arc::new(body), executed: None });
        self.bound_bodies(Some(id));
        self.try_pending_proposals()
    }

    /// Keep the bodies within [`MAX_BODY_BLOCKS`] blocks' worth of bytes. Bodies of later
    /// heights go first (furthest first), then the current height's oldest rounds; the bodies
    /// of the core's locked and valid values and of its current round are never dropped.
    pub(super) fn bound_bodies(&mut self, keep: Option<ValueId>) {
        let limit = MAX_BODY_BLOCKS * self.spec.params().max_block_bytes;
        let current = self.current_height();
        let round = self.core.round().unwrap_or(Round::ZERO);
        let kept: Vec<ValueId> = [self.core.locked(), self.core.valid()].into_iter().flatten().map(|v| v.value).chain(keep).collect();
        while self.bodies.values().map(|b| b.bytes.len()).sum::<usize>() > limit {
            let victim = self
                .bodies
                .iter()
                .filter(|(id, b)| !kept.contains(id) && !(b.height == current && b.round == round))
                // Ties broken by id: the victim does not depend on the map's iteration order.
                .max_by_key(|(id, b)| (if b.height > current { (1, b.height.0, b.round.0) } else { (0, 0, u32::MAX - b.round.0) }, **id))
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    self.bodies.remove(&id);
                }
                None => break,
            }
        }
    }

    pub(super) fn try_pending_proposals(&mut self) -> Result<(), NodeError> {
        if self.waiting_start.is_some() {
            return Ok(());
        }
        let Some(current) = self.core.height() else { return Ok(()) };
        for input in self.ready_proposals(current)? {
            self.feed(input)?;
        }
        Ok(())
    }

    /// Proposals for `height` whose body is here, judged by `valid(v)` (valid bodies made
    /// durable first). Proposals for earlier heights are dropped; later ones wait.
    pub(super) fn ready_proposals(&mut self, height: Height) -> Result<Vec<Input>, NodeError> {
        // Queued before their height started: now the round's proposer can be checked.
        let queued = std::mem::take(&mut self.pending_proposals);
        for proposal in queued {
            if proposal.proposal.height != height || self.core.authenticate(&ConsensusMessage::Proposal(proposal.clone())).is_ok() {
                self.pending_proposals.push_back(proposal);
            }
        }
        let bodies = &self.bodies;
        let mut ready = Vec::new();
        self.pending_proposals.retain(|p| {
            if p.proposal.height < height {
                return false;
            }
            if p.proposal.height == height && bodies.contains_key(&p.proposal.value) {
                ready.push(p.clone());
                return false;
            }
            true
        });
        let mut inputs = Vec::with_capacity(ready.len());
        for proposal in ready {
            let p = &proposal.proposal;
            if self.judged_proposals.len() < MAX_JUDGED_PROPOSALS {
                self.judged_proposals.insert((p.height, p.round, p.value));
            }
            let valid = self.block_valid(&proposal.proposal.value, Some(proposal.proposal.round));
            if valid {
                self.persist_body(&proposal.proposal.value)?;
            }
            inputs.push(Input::Proposal { proposal, valid });
        }
        Ok(inputs)
    }

    pub(super) fn persist_body(&mut self, id: &ValueId) -> Result<(), NodeError> {
        if let Some(body) = self.bodies.get(id) {
            self.store.put_pending(*id, body.height, &body.bytes)?;
        }
        Ok(())
    }
}
