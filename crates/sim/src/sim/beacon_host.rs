//! The beacon side of a simulated host: height parameters from the ledger, DKG sessions and
//! messages, batched partial verification, blocks carrying σ_{h-1} and dealer logs, and the
//! observer's beacon checks.

use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_beacon::dkg::DkgMessage;
use tcp_beacon::ledger::{LedgerEvent, MAX_LOGS_PER_BLOCK};
use tcp_beacon::selection::selection_probabilities;
use tcp_beacon::signature::{partial_from_bytes, recover_signature};
use tcp_beacon::Ceremony;
use tcp_consensus::{HeightParams, PrecommitExtension};

/// How long a node lets precommits gather before verifying their partials as one batch, unless
/// the queue already holds enough to complete a quorum.
const FLUSH_DELAY: Micros = 20 * MS;
/// Dealer logs a node holds for proposing.
const MAX_PENDING_LOGS: usize = 128;

impl Sim {
    fn node_rng(&mut self) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.rng.bytes(32).try_into().expect("32 bytes"))
    }

    fn beacon_failure(&mut self, node: usize, what: String) {
        if self.checker.is_honest(node) {
            self.report.beacon_failures.push(what);
        }
    }

    /// The node's validator index at the height it is working on.
    pub(super) fn my_index(&self, i: usize) -> Option<ValidatorIndex> {
        self.nodes[i].beacon.validators.index_of(&self.keys[i])
    }

    /// The node that signed a message, by the sending node's view of the validator set.
    pub(super) fn signer_node(&self, i: usize, message: &ConsensusMessage) -> Option<usize> {
        let validator = self.nodes[i].beacon.validators.get(message.sender())?;
        self.node_of_key.get(&validator.public_key).copied()
    }

    /// The partial a (possibly re-signed) precommit of node `i` carries.
    pub(super) fn extension_for(&self, i: usize, vote: &Vote) -> Bytes {
        let extension = &self.nodes[i].beacon.extension;
        match (vote.vote_type, vote.value) {
            (VoteType::Precommit, Some(value)) if vote.height == extension.height() => extension.extend(vote.height, vote.round, &value),
            _ => Bytes::new(),
        }
    }

    /// Remember an honest precommit's partial for the observer's two-quorum check.
    pub(super) fn note_partial(&mut self, message: &ConsensusMessage) {
        let ConsensusMessage::Vote(v) = message else { return };
        if v.vote.vote_type != VoteType::Precommit || v.vote.value.is_none() || v.vote.extension.is_empty() {
            return;
        }
        if let Ok(partial) = partial_from_bytes(&v.vote.extension) {
            let seen = self.partials_seen.entry(v.vote.height).or_default();
            if seen.len() < 1024 {
                seen.insert(usize::from(partial.index) as u32, partial);
            }
        }
    }

    pub(super) fn reset_beacon_session(&mut self, i: usize) {
        let b = &mut self.nodes[i].beacon;
        b.dealer = None;
        b.player = None;
        b.my_log = None;
        b.pending_logs.clear();
        b.inbox.clear();
        b.flush_scheduled = false;
        b.awaiting_sigma = None;
    }

    /// Validator set, proposer selection and precommit extension of `height`, from the ledger.
    pub(super) fn height_params(&mut self, i: usize, height: Height) -> HeightParams {
        let b = &mut self.nodes[i].beacon;
        let shares = &b.shares;
        let (params, extension) = b.ledger.height_params(height, |round| shares.get(&round).cloned());
        b.previous_extension = std::mem::replace(&mut b.extension, extension);
        b.validators = params.validators.clone();
        params
    }

    // ------------------------------------------------------------------------- DKG sessions

    /// Start (or, after a restart, resume) this node's part in the ceremony in progress.
    pub(super) fn join_ceremony(&mut self, i: usize) {
        if self.nodes[i].behaviour == Some(Behaviour::Silent) {
            return;
        }
        let Some(ceremony) = self.nodes[i].beacon.ledger.ceremony().cloned() else { return };
        let round = ceremony.round();
        let me = self.keys[i].clone();
        let key = self.nodes[i].key.clone();
        if ceremony.is_player(&me) && !matches!(&self.nodes[i].beacon.player, Some((r, _)) if *r == round) {
            let accepted = self.nodes[i].beacon.accepted.get(&round).cloned().unwrap_or_default();
            match PlayerSession::resume(&ceremony, key.clone(), accepted) {
                Ok(player) => self.nodes[i].beacon.player = Some((round, player)),
                Err(e) => self.beacon_failure(i, format!("node {i} cannot resume as a player of ceremony {round}: {e}")),
            }
        }
        let b = &self.nodes[i].beacon;
        let already = matches!(&b.dealer, Some((r, _)) if *r == round)
            || matches!(&b.my_log, Some((r, _)) if *r == round)
            || b.ledger.transcript().is_some_and(|t| t.has_log(&me));
        if !ceremony.is_dealer(&me) || already {
            return;
        }
        let seed = match self.nodes[i].beacon.dealer_seeds.get(&round) {
            Some(seed) => *seed,
            None => {
                // Drawn fresh and persisted before anything is sent.
                let seed: [u8; 32] = self.rng.bytes(32).try_into().expect("32 bytes");
                self.nodes[i].beacon.dealer_seeds.insert(round, seed);
                seed
            }
        };
        let b = &self.nodes[i].beacon;
        let previous_share = if ceremony.is_reshare() {
            b.ledger.output_round(b.ledger.height().next()).and_then(|r| b.shares.get(&r)).cloned()
        } else {
            None
        };
        match DealerSession::start(&ceremony, key, previous_share, seed) {
            Ok(dealer) => {
                self.nodes[i].beacon.dealer = Some((round, dealer));
                self.send_dealings(i);
            }
            Err(e) => self.beacon_failure(i, format!("node {i} cannot deal in ceremony {round}: {e}")),
        }
    }

    fn send_dkg(&mut self, from: usize, to: usize, message: &DkgMessage) {
        let bytes = message.encode();
        if from == to {
            self.on_dkg(to, from, &bytes);
        } else {
            self.send(from, to, Wire::Dkg { from: from as u32, message: Bytes::from(bytes) }.encode());
        }
    }

    /// (Re)send the dealings not yet acknowledged. A Junk dealer gives every other player a
    /// share that does not match its commitment.
    fn send_dealings(&mut self, i: usize) {
        let Some((round, dealer)) = &self.nodes[i].beacon.dealer else { return };
        let round = *round;
        let junk = self.nodes[i].behaviour == Some(Behaviour::Junk);
        let pending: Vec<_> = dealer.pending().cloned().collect();
        let commitment = dealer.commitment().clone();
        let mut messages = Vec::with_capacity(pending.len());
        for (k, (player, share)) in pending.iter().enumerate() {
            let share = if junk && k % 2 == 1 { pending[k - 1].1.clone() } else { share.clone() };
            messages.push((self.node_of_key[player], DkgMessage::Dealing { round, commitment: commitment.clone(), share }));
        }
        for (to, message) in messages {
            self.send_dkg(i, to, &message);
        }
    }

    fn finalize_dealer(&mut self, i: usize) {
        let Some((round, dealer)) = self.nodes[i].beacon.dealer.take() else { return };
        let log = dealer.finalize();
        self.nodes[i].beacon.my_log = Some((round, log));
        self.broadcast_log(i);
    }

    fn broadcast_log(&mut self, i: usize) {
        let Some((round, log)) = self.nodes[i].beacon.my_log.clone() else { return };
        let message = DkgMessage::Log { round, log: Box::new(log) };
        for to in 0..self.nodes.len() {
            self.send_dkg(i, to, &message);
        }
    }

    /// Periodic DKG work: resend dealings, close the dealing when everyone acked or time is up,
    /// and keep gossiping our log until it is on chain.
    pub(super) fn dkg_tick(&mut self, i: usize) {
        self.join_ceremony(i);
        let b = &self.nodes[i].beacon;
        // Close when everyone acked; from halfway through the window once the log would be
        // usable (at most f reveals); and in any case one height before the deadline, so the
        // log can still reach the chain.
        let height = b.ledger.height();
        let halfway = b.ledger.dealing_closes_at().is_some_and(|c| height >= c);
        let last_chance = b.ledger.ceremony_deadline().is_some_and(|d| height.next() >= d);
        let max_reveals = b.ledger.ceremony().map_or(0, Ceremony::max_reveals);
        let close = match &b.dealer {
            Some((_, dealer)) => dealer.all_acked() || (halfway && dealer.unacked() <= max_reveals) || last_chance,
            None => false,
        };
        if close {
            self.finalize_dealer(i);
        } else {
            self.send_dealings(i);
        }
        let b = &self.nodes[i].beacon;
        let on_chain = b.ledger.transcript().is_none_or(|t| t.has_log(&self.keys[i]));
        let current = b.ledger.ceremony().map(Ceremony::round);
        if !on_chain && b.my_log.as_ref().is_some_and(|(r, _)| Some(*r) == current) {
            self.broadcast_log(i);
        }
    }

    pub(super) fn on_dkg(&mut self, to: usize, from: usize, bytes: &[u8]) {
        let (Ok(message), Some(from_key)) = (DkgMessage::decode(bytes), self.keys.get(from).cloned()) else {
            self.report.dkg_rejected += 1;
            return;
        };
        match message {
            DkgMessage::Dealing { round, commitment, share } => {
                let b = &mut self.nodes[to].beacon;
                let Some((r, player)) = &mut b.player else { return };
                if *r != round {
                    return;
                }
                match player.on_dealing(&from_key, commitment, share) {
                    Ok(ack) => {
                        b.accepted.insert(round, player.accepted());
                        self.send_dkg(to, from, &DkgMessage::Ack { round, ack });
                    }
                    Err(_) => self.report.dkg_rejected += 1,
                }
            }
            DkgMessage::Ack { round, ack } => {
                let Some((r, dealer)) = &mut self.nodes[to].beacon.dealer else { return };
                if *r != round {
                    return;
                }
                match dealer.receive_ack(&from_key, ack) {
                    Ok(_) if dealer.all_acked() => self.finalize_dealer(to),
                    Ok(_) => {}
                    Err(_) => self.report.dkg_rejected += 1,
                }
            }
            DkgMessage::Log { round, log } => {
                let b = &mut self.nodes[to].beacon;
                let Some(transcript) = b.ledger.transcript() else { return };
                if transcript.ceremony().round() != round || b.pending_logs.len() >= MAX_PENDING_LOGS || b.pending_logs.contains(&log) {
                    return;
                }
                match transcript.check(&log) {
                    Ok(_) => b.pending_logs.push(*log),
                    Err(tcp_beacon::dkg::LogRejection::Duplicate) => {}
                    Err(_) => self.report.dkg_rejected += 1,
                }
            }
        }
    }

    fn finalize_share(&mut self, i: usize, round: u64) {
        if self.nodes[i].behaviour == Some(Behaviour::Silent) {
            return;
        }
        let mut rng = self.node_rng();
        let key = self.nodes[i].key.clone();
        let b = &mut self.nodes[i].beacon;
        let Some(transcript) = b.ledger.completed_transcript().cloned() else { return };
        if transcript.ceremony().round() != round || !transcript.ceremony().is_player(&self.keys[i]) {
            return;
        }
        let session = match b.player.take() {
            Some((r, player)) if r == round => Ok(player),
            _ => PlayerSession::resume(transcript.ceremony(), key, b.accepted.get(&round).cloned().unwrap_or_default()),
        };
        match session.and_then(|player| player.finalize(&transcript, &mut rng)) {
            Ok((_, share)) => {
                b.shares.insert(round, share);
                // Two outputs can be in use around a boundary; older shares are wiped.
                while b.shares.len() > 2 {
                    b.shares.pop_first();
                }
            }
            Err(e) => self.beacon_failure(i, format!("honest node {i} could not finalize its share of ceremony {round}: {e}")),
        }
        let b = &mut self.nodes[i].beacon;
        b.accepted.remove(&round);
        b.dealer_seeds.remove(&round);
    }

    // ------------------------------------------------------------------------- precommits

    /// A vote arrived. Precommits of the height in progress queue up for one batch check of
    /// their partials; late precommits of the height just decided still help recover its σ.
    pub(super) fn on_vote(&mut self, to: usize, vote: SignedVote) {
        let current = self.nodes[to].core.height();
        let b = &mut self.nodes[to].beacon;
        if vote.vote.vote_type == VoteType::Precommit && vote.vote.value.is_some() {
            if Some(vote.vote.height) == current && b.extension.is_active() && b.inbox.len() < 4 * self.keys.len() {
                b.inbox.push(vote);
                // Enough queued to complete the beacon quorum with what is verified: check now.
                if b.inbox.len() + b.extension.verified_count() >= b.extension.threshold() {
                    self.flush_precommits(to);
                    return;
                }
                if !b.flush_scheduled {
                    b.flush_scheduled = true;
                    let incarnation = self.nodes[to].incarnation;
                    self.schedule(FLUSH_DELAY, Event::FlushPrecommits { node: to, incarnation });
                }
                return;
            }
            // Only while σ_{h-1} is still missing: once known, late partials add nothing.
            if current.is_some_and(|c| vote.vote.height.next() == c)
                && b.awaiting_sigma.is_some()
                && b.previous_extension.is_active()
                && b.previous_extension.offer_late_partial(vote.vote.validator, &vote.vote.extension)
            {
                self.retry_awaiting_sigma(to);
            }
        }
        self.feed(to, Input::Vote(vote));
    }

    pub(super) fn flush_precommits(&mut self, i: usize) {
        let b = &mut self.nodes[i].beacon;
        b.flush_scheduled = false;
        let inbox = std::mem::take(&mut b.inbox);
        let extension = b.extension.clone();
        let items: Vec<(ValidatorIndex, &[u8])> = inbox.iter().map(|v| (v.vote.validator, &v.vote.extension[..])).collect();
        let mut rng = self.node_rng();
        // The verdicts are remembered by the extension; the core's own check then finds them.
        extension.verify_batch(&mut rng, &items);
        for vote in inbox {
            self.feed(i, Input::Vote(vote));
        }
    }

    fn retry_awaiting_sigma(&mut self, i: usize) {
        let Some((height, round)) = self.nodes[i].beacon.awaiting_sigma else { return };
        if self.nodes[i].core.awaiting_value() != Some((height, round)) {
            self.nodes[i].beacon.awaiting_sigma = None;
            return;
        }
        let b = &mut self.nodes[i].beacon;
        let Some(sigma) = b.previous_extension.recover() else { return };
        if !b.ledger.offer_signature(Height(height.0 - 1), sigma) {
            return;
        }
        if let Some(message) = b.ledger.message(height) {
            b.extension.set_message(message);
        }
        b.awaiting_sigma = None;
        let mut queue = VecDeque::new();
        self.build_value(i, height, round, &mut queue);
        self.drain(i, queue);
    }

    // ------------------------------------------------------------------------- blocks

    /// The paper's `valid(v)`: well-formed, for the height in progress, built for a round not
    /// after the one it is proposed in, and with valid beacon content (builder, σ_{h-1}, logs).
    pub(super) fn block_valid(&mut self, node: usize, body: &[u8], proposal_round: Option<Round>) -> bool {
        let Some(height) = self.nodes[node].core.height() else { return false };
        let Some(block) = is_well_formed_block(body, height) else { return false };
        if proposal_round.is_some_and(|r| block.round > r) {
            return false;
        }
        let data = block.beacon_data();
        let b = &mut self.nodes[node].beacon;
        if b.ledger.validate_block(height, &data).is_err() {
            return false;
        }
        if let Some(sigma) = data.previous_signature {
            b.ledger.offer_signature(Height(height.0 - 1), sigma);
            if let Some(message) = b.ledger.message(height) {
                b.extension.set_message(message);
            }
        }
        true
    }

    /// The block node `i` proposes at (height, round): σ_{h-1} once the beacon runs (None while
    /// it cannot be recovered yet) and the dealer logs not yet on chain.
    pub(super) fn beacon_block(&mut self, i: usize, height: Height, round: Round) -> Option<SimBlock> {
        let proposer = self.my_index(i)?.0;
        let b = &self.nodes[i].beacon;
        let previous = Height(height.0 - 1);
        let previous_signature = if b.ledger.beacon_active(previous) { Some(b.ledger.signature(previous)?) } else { None };
        let mut logs = Vec::new();
        if let Some(transcript) = b.ledger.transcript() {
            let mut transcript = transcript.clone();
            for log in &b.pending_logs {
                if logs.len() >= MAX_LOGS_PER_BLOCK {
                    break;
                }
                if transcript.record(log.clone()).is_ok() {
                    logs.push(log.clone());
                }
            }
        }
        let nonce = self.rng.next_u64();
        let payload: [u8; 32] = self.rng.bytes(32).try_into().expect("32 bytes");
        Some(SimBlock { height, round, proposer, nonce, payload, previous_signature, logs })
    }

    /// A Junk proposer's block: a broken checksum, or a well-formed block whose σ_{h-1} is
    /// another height's.
    pub(super) fn junk_block(&mut self, i: usize, mut block: SimBlock) -> Bytes {
        let older = Height(block.height.0.saturating_sub(2));
        match self.nodes[i].beacon.ledger.signature(older) {
            Some(stale) if block.previous_signature.is_some() && self.rng.chance(0.5) => {
                block.previous_signature = Some(stale);
                block.encode()
            }
            _ => build_invalid_block(&block),
        }
    }

    /// After deciding `height`: advance the ledger, learn σ_h, act on ceremony events.
    pub(super) fn apply_decided_block(&mut self, i: usize, height: Height, body: &[u8]) {
        let block = SimBlock::decode(body).expect("a decided block passed valid(v)");
        let mut rng = self.node_rng();
        let b = &mut self.nodes[i].beacon;
        let recovered = b.extension.recover();
        let events = b.ledger.apply_block(height, &block.beacon_data(), &mut rng);
        if let Some(sigma) = recovered {
            let known = b.ledger.offer_signature(height, sigma);
            debug_assert!(known, "σ recovered from verified partials verifies");
        }
        let ledger = &b.ledger;
        b.pending_logs.retain(|log| ledger.transcript().is_some_and(|t| t.check(log).is_ok()));
        for event in events {
            match event {
                LedgerEvent::CeremonyCompleted { round, .. } => self.finalize_share(i, round),
                LedgerEvent::CeremonyFailed { round, .. } => {
                    let b = &mut self.nodes[i].beacon;
                    b.accepted.remove(&round);
                    b.dealer_seeds.remove(&round);
                }
                _ => {}
            }
        }
        let b = &mut self.nodes[i].beacon;
        let current = b.ledger.ceremony().map(Ceremony::round);
        if b.dealer.as_ref().is_some_and(|(r, _)| Some(*r) != current) {
            b.dealer = None;
        }
        if b.player.as_ref().is_some_and(|(r, _)| Some(*r) != current) {
            b.player = None;
        }
        self.join_ceremony(i);
    }

    // ------------------------------------------------------------------------- observer

    /// The observer applies the first decision of each height to its own ledger and checks the
    /// beacon: the committed σ_{h-1} verifies (with the block), two different quorums of the
    /// honest partials recover exactly it, and the proposer draws are tallied for fairness.
    pub(super) fn observe_decision(&mut self, height: Height, body: &[u8]) {
        if height != self.reference.height().next() {
            return;
        }
        let Some(block) = SimBlock::decode(body) else { return }; // a validity violation, reported by the checker
        let data = block.beacon_data();
        if let Err(e) = self.reference.validate_block(height, &data) {
            // (Only after an agreement violation: the observer follows the first decision of
            // each height, which then need not form one chain.) It stops following.
            self.report.beacon_failures.push(format!("height {height}: the committed block's beacon content is invalid: {e}"));
            return;
        }
        if self.reference.beacon_active(Height(height.0.saturating_sub(2)))
            && let (Some(chosen), Some(randomness)) =
                (self.reference.proposer(height, Round::ZERO), self.reference.selection_randomness(height))
        {
            let weights = self.reference.weights(height);
            let members = self.reference.validators();
            for (k, p) in selection_probabilities(&weights).into_iter().enumerate() {
                self.report.proposer_expected[self.node_of_key[&members[k].key]] += p;
            }
            let chosen = self.node_of_key[&members[chosen.as_usize()].key];
            self.report.proposer_observed[chosen] += 1;
            self.report.beacon_trace.push((height.0, chosen, randomness));
        }
        let previous = Height(height.0 - 1);
        if let Some(sigma) = data.previous_signature {
            self.report.beacon_heights += 1;
            if let (Some(sharing), Some(seen)) = (self.reference.sharing(previous), self.partials_seen.get(&previous)) {
                let t = sharing.required() as usize;
                if seen.len() >= t {
                    let low = recover_signature(sharing, seen.values().take(t));
                    let high = recover_signature(sharing, seen.values().skip(seen.len() - t));
                    if low.as_ref() != Ok(&sigma) || high.as_ref() != Ok(&sigma) {
                        self.report
                            .beacon_failures
                            .push(format!("height {previous}: quorums of honest partials do not recover the committed σ"));
                    } else if seen.len() > t {
                        self.report.quorum_checks += 1;
                    }
                }
            }
        }
        let mut rng = self.node_rng();
        self.reference.apply_block(height, &data, &mut rng);
        self.partials_seen.retain(|h, _| *h >= height);
    }

    pub(super) fn finish_beacon(&mut self) {
        let stats = self.reference.stats();
        self.report.reshares = stats.reshares;
        self.report.epochs_extended = stats.epochs_extended;
        self.report.ceremonies_failed = stats.ceremonies_failed;
        self.report.group_key_changed = stats.group_key_changes > 0;
        if self.report.group_key_changed {
            self.report.beacon_failures.push(format!("the group key changed {} times across reshares", stats.group_key_changes));
        }
        let last = Height(self.reference.height().0.saturating_sub(1));
        if let (Some(signature), Some(previous), Some(key)) =
            (self.reference.signature(last), self.reference.previous_link(last), self.reference.group_key())
        {
            self.report.beacon_sample = Some(crate::BeaconSample {
                chain_id: self.consensus_config.chain_id.as_str().to_string(),
                height: last,
                previous,
                signature,
                group_key: tcp_beacon::signature::group_key_to_bytes(key),
            });
        }
        if self.reference.beacon_start().is_none() && self.report.liveness_failure.is_none() {
            self.report.beacon_failures.push("the beacon never started: the DKG did not complete".into());
        }
    }
}
