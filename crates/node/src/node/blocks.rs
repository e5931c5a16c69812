//! Building and checking blocks: the proposer's block (`build_value`), the paper's `valid(v)`
//! (`block_valid`), the last commit a block carries and what Ω learns from a block.

use super::*;

impl<H: Host> Node<H> {
    /// Build this validator's block for (height, round): σ_{h-1} once the beacon runs (waits
    /// while it cannot be recovered yet), the bootstrap logs not yet on chain, and
    /// transactions from the mempool within the size and gas limits.
    pub(super) fn build_value(&mut self, height: Height, round: Round, queue: &mut VecDeque<Input>) -> Result<(), NodeError> {
        let Some(proposer) = self.validators.index_of(&self.me) else { return Ok(()) };
        let previous = Height(height.0 - 1);
        let previous_signature = if self.ledger.beacon_active(previous) {
            match self.sigma_of(previous)? {
                Some(s) => Some(s),
                None => {
                    self.awaiting_sigma = Some((height, round));
                    return Ok(());
                }
            }
        } else {
            None
        };
        // φ_{h-1} beside σ_{h-1}: always recoverable from the certificate h-1 was decided with.
        let previous_finality = if previous_signature.is_some() {
            match self.finality_of(previous)? {
                Some(finality) => Some(finality),
                None => {
                    self.awaiting_sigma = Some((height, round));
                    return Ok(());
                }
            }
        } else {
            None
        };
        // Dealer logs of both ceremonies (which run at the same time) take at most a quarter of
        // the block: with large groups they would not fit all at once, and the rest goes into
        // the next blocks of the ceremony's window.
        let params = self.spec.params();
        let mut log_budget = params.max_block_bytes / 4;
        let mut take_logs = |transcript: Option<&tcp_beacon::dkg::Transcript>, pending: &[SignedLog]| {
            let mut taken = Vec::new();
            if let Some(transcript) = transcript {
                // Checked, not recorded: no copy of the transcript (megabytes late in a large
                // ceremony); one log per dealer.
                let mut dealers = std::collections::HashSet::new();
                for log in pending {
                    let size = tcp_beacon::dkg::encode_log(log).len() + 4;
                    if taken.len() < MAX_LOGS_PER_BLOCK
                        && size <= log_budget
                        && transcript.check(log).is_ok_and(|dealer| dealers.insert(dealer))
                    {
                        log_budget -= size;
                        taken.push(log.clone());
                    }
                }
            }
            taken
        };
        let logs = take_logs(self.ledger.transcript(), &self.pending_logs);
        let dkmp_logs = take_logs(self.group.ceremony(), &self.pending_dkmp_logs);
        // Release records take at most an eighth.
        let releases = self.take_releases(params.max_block_bytes / 8);
        let header_room = 1024
            + logs.iter().chain(&dkmp_logs).map(|l| tcp_beacon::dkg::encode_log(l).len() + 4).sum::<usize>()
            + releases.iter().map(|r| commonware_codec::EncodeSize::encode_size(r) + 4).sum::<usize>();
        let last_commit = match (self.last_commit(height)?, &self.last_commit_choice) {
            (Some(commit), Some(choose)) => Some(choose(&self.ledger, height, proposer, commit)),
            (commit, _) => commit,
        };
        let header_room = header_room + last_commit.as_ref().map_or(0, |c| c.encode().len());
        let timestamp_ms = self.now_ms().max(self.last_timestamp_ms + 1);
        let Some(reward) = self.reward_address(proposer) else { return Ok(()) };
        let env = tcp_state::BlockEnv { height: height.0, time_secs: timestamp_ms / 1000, fee_recipient: reward };
        let selected = self.mempool.select(&self.state, &env, params.max_block_bytes.saturating_sub(header_room), params.max_block_gas);
        let outcome = self.block_outcome(height, round, proposer, last_commit.as_ref(), previous_signature.as_ref(), &releases);
        // Entries that would not apply (a root-chain endpoint that lied) are left out: our
        // block must build.
        let mut inbox = self.inbox_for_block();
        let mut trial = self.state.clone();
        if trial.apply_inbox(&inbox).is_err() {
            tracing::warn!(node = %self.name, height = height.0, "the root chain's inbox entries seen here do not apply: proposing without them");
            inbox.clear();
        }
        let executed = match Executed::run(&self.state, &inbox, selected, env, &outcome, true) {
            Ok(executed) => executed,
            Err(e) => return Err(NodeError::Corrupt(format!("building block {}: {e}", height.0))),
        };
        let transactions: Vec<_> = executed.transactions.iter().map(|t| t.signed().clone()).collect();
        let block = Block {
            header: Header {
                height,
                round,
                proposer,
                parent: self.last_id,
                timestamp_ms,
                state_root: executed.state_root,
                roots: crate::block::body_roots(last_commit.as_ref(), &logs, &transactions),
                previous_signature,
                previous_finality,
                extra_roots: crate::block::extra_roots(&dkmp_logs, &releases, &inbox),
            },
            last_commit,
            logs,
            transactions,
            dkmp_logs,
            releases,
            inbox,
        };
        let bytes = block.encode();
        let id = block.id();
        self.bodies.insert(id, Body { height, round, bytes: Arc::new(bytes), executed: Some(Arc::new(executed)) });
        self.bound_bodies(Some(id));
        // The body reaches the disk before the WAL names it.
        self.persist_body(&id)?;
        queue.push_back(Input::ProposeValue { height, round, value: id });
        Ok(())
    }

    /// The paper's `valid(v)`: decodes, is for the height in progress and the round it is
    /// proposed in (or earlier), extends our last block, has a sane timestamp and tx root,
    /// valid beacon content, and transactions that all apply in order within the gas limit.
    pub(super) fn block_valid(&mut self, id: &ValueId, proposal_round: Option<Round>) -> bool {
        let Some(height) = self.core.height() else { return false };
        let Some(body) = self.bodies.get(id) else { return false };
        let bytes = body.bytes.clone();
        let params = self.spec.params().clone();
        // Decoding checks the body against the header's roots.
        let block = match Block::decode(&bytes, params.max_block_bytes) {
            Ok(block) => block,
            Err(e) => {
                self.metrics.rejected_blocks.inc();
                tracing::warn!(node = %self.name, error = %e, "proposed block does not decode");
                return false;
            }
        };
        let h = &block.header;
        if h.height != height || proposal_round.is_some_and(|r| h.round > r) || h.parent != self.last_id {
            return false;
        }
        if h.timestamp_ms <= self.last_timestamp_ms || (proposal_round.is_some() && h.timestamp_ms > self.now_ms() + MAX_CLOCK_DRIFT_MS) {
            return false;
        }
        // The master-secret logs and release records (the only later body sections; decoding
        // refused any other).
        if let Err(e) = group_logs_valid(&self.group, &block.dkmp_logs) {
            self.metrics.rejected_blocks.inc();
            tracing::warn!(node = %self.name, height = height.0, error = %e, "proposed block's master-secret logs are invalid");
            return false;
        }
        if let Err(e) = releases_valid(&self.group, &self.state, &self.spec.chain_id, &block.releases) {
            self.metrics.rejected_blocks.inc();
            tracing::warn!(node = %self.name, height = height.0, error = %e, "proposed block's release records are invalid");
            return false;
        }
        // A live proposal's inbox entries must be the next ones of this validator's own view of
        // the root chain. A committed block (sync: its certificate carries 2/3 of the power) is
        // not judged by this node's view, which may lag or be missing (a full node has none).
        if proposal_round.is_some() && self.role == Role::Validator {
            if let Err(e) = self.inbox_valid(&block.inbox) {
                self.metrics.rejected_blocks.inc();
                tracing::warn!(node = %self.name, height = height.0, error = %e, "proposed block's root-chain inbox entries are not ours");
                return false;
            }
        }
        let data = block.beacon_data();
        let validated = self.ledger.validate_block(height, &data, &mut self.rng);
        // σ_{h-1} may be known now even if the block is refused below.
        self.learn_message();
        if let Err(e) = validated {
            self.metrics.rejected_blocks.inc();
            tracing::warn!(node = %self.name, height = height.0, error = %e, "proposed block's beacon content is invalid");
            return false;
        }
        if !self.last_commit_valid(height, block.last_commit.as_ref()) {
            return false;
        }
        let Some(reward) = self.reward_address(h.proposer) else { return false };
        let outcome =
            self.block_outcome(height, h.round, h.proposer, block.last_commit.as_ref(), h.previous_signature.as_ref(), &block.releases);
        let env = tcp_state::BlockEnv { height: height.0, time_secs: h.timestamp_ms / 1000, fee_recipient: reward };
        let state_root = h.state_root;
        // Transactions: signatures (known ones from the mempool), then Υ on a scratch state,
        // unless this very body was already executed (our own proposal, a re-proposal).
        let executed = match self.bodies.get(id).and_then(|b| b.executed.clone()) {
            Some(executed) => executed,
            None => {
                let mut verified = Vec::with_capacity(block.transactions.len());
                for tx in block.transactions {
                    let hash = tx.hash();
                    match self.mempool.get(&hash) {
                        Some(known) => verified.push(known.clone()),
                        None => match tx.verify(&self.spec.chain_id) {
                            Ok(v) => verified.push(v),
                            Err(_) => return false,
                        },
                    }
                }
                let gas: u64 = verified.iter().map(|t| tcp_state::accounts::gas_of(&t.tx().action)).sum();
                if gas > params.max_block_gas {
                    return false;
                }
                match Executed::run(&self.state, &block.inbox, verified, env, &outcome, false) {
                    Ok(executed) => Arc::new(executed),
                    Err(_) => return false,
                }
            }
        };
        if executed.state_root != state_root {
            return false;
        }
        if let Some(body) = self.bodies.get_mut(id) {
            body.executed = Some(executed);
        }
        true
    }

    /// σ of the committed height `height` (the last one): from the ledger (recovered at the
    /// decision by the next proposer, read back at start, or checked in a block proposed since),
    /// or interpolated from the partials this node verified while deciding it (no pairing).
    /// `None` while those are fewer than the threshold.
    pub(super) fn sigma_of(&mut self, height: Height) -> Result<Option<BeaconSignature>, NodeError> {
        if let Some(sigma) = self.ledger.signature(height) {
            self.learn_message();
            return Ok(Some(sigma));
        }
        if self.previous_extension.height() != height || !self.previous_extension.is_active() {
            return Ok(None);
        }
        let Some(sigma) = self.previous_extension.recover() else { return Ok(None) };
        self.ledger.accept_recovered(height, Some(sigma), None);
        self.store.put_sigma(height, &sigma.to_bytes())?;
        self.learn_message();
        Ok(Some(sigma))
    }

    /// Give the height's extension the message its partials sign once the ledger knows σ_{h-1}
    /// (from whatever path: a proposal's block, our own interpolation, a commit), so this node
    /// never precommits without its partials and checks the precommits it holds.
    pub(super) fn learn_message(&mut self) {
        if self.extension.is_active()
            && self.extension.message().is_none()
            && let Some(message) = self.ledger.message(self.extension.height())
        {
            self.extension.set_message(message);
        }
    }

    /// φ of the committed height `height` (the last one), from the ledger, or recovered from
    /// the certificate it was decided with (stored with it) if the ledger does not have it.
    pub(super) fn finality_of(&mut self, height: Height) -> Result<Option<Finality>, NodeError> {
        if let Some((id, finality)) = self.ledger.finality(height)
            && id == self.last_id
        {
            return Ok(Some(finality));
        }
        let certificate = decode_certificate(&self.store, height)?;
        let extension = if self.previous_extension.height() == height && self.previous_extension.is_active() {
            self.previous_extension.clone()
        } else {
            verification_extension(&self.ledger, height)
        };
        // Interpolated from partials verified against their keys: exact, no further check.
        let recovered = recover_finality(&self.ledger, &extension, &certificate, &mut self.rng);
        match recovered {
            Some(finality) if certificate.value == self.last_id => {
                self.ledger.accept_recovered(height, None, Some((certificate.value, finality)));
                self.store.put_finality(height, &finality.to_bytes())?;
                Ok(Some(finality))
            }
            _ => {
                tracing::warn!(node = %self.name, height = height.0, "φ of the last committed height cannot be recovered from its certificate");
                Ok(None)
            }
        }
    }

    /// The validator set of `height` (the epoch in force or the previous one), one vote each.
    pub(super) fn set_at(&self, height: Height) -> Option<ValidatorSet> {
        let members = self.ledger.validators_at(height)?;
        ValidatorSet::new(members.iter().map(|m| tcp_consensus::Validator { public_key: m.key.clone(), voting_power: 1 }).collect()).ok()
    }

    /// The operator account of the height's validator `proposer` (fees go to it).
    pub(super) fn reward_address(&self, proposer: ValidatorIndex) -> Option<Address> {
        let key = &self.validators.get(proposer)?.public_key;
        self.state.operator_of(key).or_else(|| self.spec.validators.iter().find(|v| &v.key == key).map(|v| v.reward_address))
    }

    /// The commit of `height - 1` this node decided on, for the block it builds.
    pub(super) fn last_commit(&self, height: Height) -> Result<Option<CommitCertificate>, NodeError> {
        if height.0 <= 1 {
            return Ok(None);
        }
        let previous = Height(height.0 - 1);
        Ok(Some(decode_certificate(&self.store, previous)?))
    }

    /// A block after the first carries a commit of its parent by h-1's validator set: precommits
    /// for (h-1, parent) with valid signatures and more than two thirds of the power, each with
    /// a valid beacon partial — the signers earn efficiency credit, so a precommit whose partial
    /// was withheld or forged may not be carried. Partials this node already verified during
    /// h-1 cost nothing; the rest are checked as one batch.
    pub(super) fn last_commit_valid(&mut self, height: Height, commit: Option<&CommitCertificate>) -> bool {
        let Some(commit) = commit else { return height.0 == 1 };
        if height.0 == 1 || commit.height.0 != height.0 - 1 || commit.value != self.last_id {
            return false;
        }
        let Some(set) = self.set_at(commit.height) else { return false };
        let extension = if self.previous_extension.height() == commit.height {
            self.previous_extension.clone()
        } else {
            verification_extension(&self.ledger, commit.height)
        };
        // Cheap structure first: every precommit of the commit's own height, round and value
        // (one finality message), before any pairing.
        if commit.precommits.iter().any(|p| p.vote.height != commit.height || p.vote.round != commit.round || p.vote.value != Some(commit.value)) {
            return false;
        }
        if extension.verify_batch(&mut self.rng, &precommit_extensions(commit)).contains(&false) {
            return false;
        }
        commit.verify(&tcp_consensus::ConsensusDomains::new(&self.spec.chain_id), &set, extension.as_ref()).is_ok()
    }

    /// What Ω needs to know about a block of the height in progress, from the ledger.
    pub(super) fn block_outcome(
        &self,
        height: Height,
        round: Round,
        proposer: ValidatorIndex,
        commit: Option<&CommitCertificate>,
        previous_signature: Option<&BeaconSignature>,
        releases: &[tcp_dkmp::ReleaseRecord],
    ) -> BlockOutcome {
        let members = self.ledger.validators();
        let key_of = |i: ValidatorIndex| members.get(i.as_usize()).map(|m| m.key.clone());
        let (epoch, start) = self.ledger.epoch();
        let previous_members = self.ledger.validators_at(Height(height.0.saturating_sub(1)));
        let signers = commit
            .map(|c| {
                c.precommits
                    .iter()
                    .filter_map(|p| previous_members.and_then(|m| m.get(p.vote.validator.as_usize())).map(|m| m.key.clone()))
                    .collect()
            })
            .unwrap_or_default();
        BlockOutcome {
            height: height.0,
            epoch,
            proposer: key_of(proposer),
            assigned: self.ledger.assigned_proposers(height, round).into_iter().filter_map(key_of).collect(),
            signers,
            signers_same_epoch: height > start,
            epoch_started: (start == height && epoch > 0)
                .then(|| members.iter().map(|m| tcp_state::SetMember { key: m.key.clone(), coin_base: m.coin_base }).collect()),
            plan: self.ledger.plan_due(height).is_some(),
            // σ_{h-1}, checked with the block's beacon content before any state is touched.
            randomness: previous_signature.map(|sigma| (height.0 - 1, sigma.randomness().0)),
            chain_keys: chain_keys(&self.ledger, &self.group),
            releases: releases.to_vec(),
        }
    }
}

/// The chain's two constant keys once both exist, as the ledgers stand before the block (so
/// every node, building, judging or replaying it, reports the same).
pub(super) fn chain_keys(ledger: &Ledger, group: &tcp_dkmp::GroupLedger) -> Option<tcp_attestation::ChainKeys> {
    let bytes = |key: &tcp_beacon::signature::GroupKey| -> Option<[u8; 96]> { tcp_beacon::signature::group_key_to_bytes(key).try_into().ok() };
    Some(tcp_attestation::ChainKeys {
        group_key: bytes(ledger.group_key()?)?,
        master_key: bytes(&group.serving()?.master_public_key())?,
    })
}
