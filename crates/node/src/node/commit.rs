//! Committing a decided height: Π and Ω applied, the beacon ledger advanced, everything stored in
//! one transaction (σ_h with it), the WAL pruned, and the next height started after the block
//! interval.

use super::*;

impl<H: Host> Node<H> {
    /// Π and Ω for a decided block: apply its transactions, advance the beacon ledger, commit
    /// it all to the store in one transaction, then prune the WAL and the mempool.
    pub(super) fn on_decided(
        &mut self,
        height: Height,
        value: ValueId,
        certificate: CommitCertificate,
        queue: &mut VecDeque<Input>,
        replaying: bool,
    ) -> Result<(), NodeError> {
        if !self.bodies.contains_key(&value)
            && let Some(bytes) = self.store.pending_block(&value)?
        {
            // Dropped from memory; durable since before the WAL named it.
            self.bodies.insert(value, Body { height, round: certificate.round, bytes: Arc::new(bytes), executed: None });
        }
        let body = match self.bodies.get(&value) {
            Some(b) => b.bytes.clone(),
            None => {
                // Never durable here (decided from others' precommits): any peer that committed
                // the height sends its commit, whose block completes this one.
                tracing::warn!(node = %self.name, height = height.0, "decided a block whose body is not here: fetching it from peers");
                self.awaiting_body = Some((height, value, certificate));
                self.send_all(&Wire::Status { height, round: Round::ZERO }, true);
                return Ok(());
            }
        };
        let block = Block::decode(&body, crate::block::MAX_BLOCK_BYTES).map_err(|e| NodeError::Corrupt(format!("decided block: {e}")))?;
        let executed = match self.bodies.get(&value).and_then(|b| b.executed.clone()) {
            Some(executed) => executed,
            None => {
                let mut verified = Vec::with_capacity(block.transactions.len());
                for tx in &block.transactions {
                    verified.push(
                        tx.clone()
                            .verify(&self.spec.chain_id)
                            .map_err(|e| NodeError::Corrupt(format!("decided block holds a bad transaction: {e}")))?,
                    );
                }
                let reward = self
                    .reward_address(block.header.proposer)
                    .ok_or_else(|| NodeError::Corrupt("decided block's proposer unknown".into()))?;
                let outcome = self.block_outcome(
                    height,
                    block.header.round,
                    block.header.proposer,
                    block.last_commit.as_ref(),
                    block.header.previous_signature.as_ref(),
                    &block.releases,
                );
                let env = tcp_state::BlockEnv { height: height.0, time_secs: block.header.timestamp_ms / 1000, fee_recipient: reward };
                Arc::new(
                    Executed::run(&self.state, &block.inbox, verified, env, &outcome, false)
                        .map_err(|e| NodeError::Corrupt(format!("decided block: {e}")))?,
                )
            }
        };
        if executed.state_root != block.header.state_root {
            return Err(NodeError::Corrupt(format!(
                "decided block {height} commits state root {}, its transactions give {}",
                block.header.state_root, executed.state_root
            )));
        }
        let records = executed
            .receipts
            .iter()
            .enumerate()
            .map(|(index, r)| (r.tx_hash, TxRecord { height, index: index as u32, gas_used: r.gas_used, fee: r.fee }))
            .collect();
        let accounts = executed.touched.iter().map(|a| (*a, executed.state.account(a))).collect();
        self.state = executed.state.clone();
        self.prune_root_inbox();
        // The ledger's schedule reads a plan this block made from the state after it.
        *self.schedule_state.write().unwrap_or_else(|e| e.into_inner()) = self.state.clone();
        // The beacon: the ledger advanced by the block.
        let data = block.beacon_data();
        if let Some(sigma) = data.previous_signature {
            self.ledger.offer_signature(Height(height.0 - 1), sigma);
        }
        let planned = self.ledger.plan_due(height);
        let events = self.ledger.apply_block(height, &data, &mut self.rng);
        let group_events = advance_group(&mut self.group, &self.ledger, height, &block, planned, &events, &mut self.rng);
        self.prune_release_pool();
        // σ_h from the verified beacon partials and φ_h from the certificate's finality
        // partials (a quorum of precommits for exactly this round and value carries them).
        // Only the proposer of h+1 needs them now, for its header. The others learn both from
        // that proposal (one pairing check for the two, which they need anyway to judge it)
        // and store them when h+1 commits; a proposer of a later round interpolates them then
        // (`sigma_of`, `finality_of`). Two interpolations saved at n − 1 of n nodes.
        let proposes_next = self
            .ledger
            .proposer(height.next(), Round::ZERO)
            .and_then(|i| self.ledger.validators().get(i.as_usize()))
            .is_some_and(|m| m.key == self.me);
        let (recovered, finality) = if self.extension.is_active() && proposes_next {
            let extension = self.extension.clone();
            let finality = recover_finality(&self.ledger, &extension, &certificate, &mut self.rng);
            if finality.is_none() {
                // Cannot happen: the core admits a precommit only with valid partials.
                // Proposing h+1 retries from the stored certificate.
                tracing::error!(node = %self.name, height = height.0, "the decision's certificate does not yield φ");
            }
            (extension.recover(), finality)
        } else {
            (None, None)
        };
        // Both interpolated from partials verified as they arrived: no further pairing.
        self.ledger.accept_recovered(height, recovered, finality.map(|f| (value, f)));
        for event in events {
            self.on_ledger_event(event);
        }
        for event in group_events {
            self.on_group_event(event);
        }
        let ledger = &self.ledger;
        self.pending_logs.retain(|log| ledger.transcript().is_some_and(|t| t.check(log).is_ok()));
        let group = &self.group;
        self.pending_dkmp_logs.retain(|log| group.check_log(log).is_ok());
        self.track_registered(height);
        if !replaying {
            self.run_reshare();
            self.run_group_ceremony();
        }
        self.store.commit(CommitRecord {
            height,
            id: value,
            block: &body,
            certificate: &certificate.encode(),
            transactions: records,
            accounts,
            entries: executed.entries.clone(),
            previous_sigma: data.previous_signature.map(|s| (Height(height.0 - 1), s.to_bytes().to_vec())),
            sigma: recovered.map(|s| s.to_bytes().to_vec()),
            finality: finality.map(|f| f.to_bytes().to_vec()),
            previous_finality: data.previous_finality.map(|f| (Height(height.0 - 1), f.to_bytes().to_vec())),
        })?;
        self.wal.prune(height)?;
        self.last_id = value;
        self.last_timestamp_ms = block.header.timestamp_ms;
        self.bodies.retain(|_, b| b.height > height);
        self.judged_proposals.clear();
        let included: std::collections::HashSet<Digest> = executed.transactions.iter().map(|t| t.hash()).collect();
        let dropped: Vec<(Digest, String)> =
            self.mempool.prune(&self.state, &self.mempool_env()).into_iter().filter(|(h, _)| !included.contains(h)).collect();
        if !dropped.is_empty() {
            let mut log = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
            for (hash, reason) in dropped {
                tracing::info!(node = %self.name, tx = %hash, reason, "dropped a pending transaction");
                log.record(hash, reason);
            }
        }
        if height.0 % REBROADCAST_EVERY == 0 {
            self.rebroadcast_local_transactions();
        }
        self.metrics.committed_transactions.inc_by(executed.transactions.len() as u64);
        let previous = {
            let last = self.committed_state.borrow();
            (last.height.0 + 1 == height.0).then(|| (last.height, last.state.clone()))
        };
        self.committed_state.send_replace(Arc::new(CommittedState { height, state: self.state.clone(), previous }));
        let _ = self.heads.send(CommittedHead {
            height,
            id: value,
            timestamp_ms: block.header.timestamp_ms,
            transactions: executed.transactions.iter().map(|t| t.hash()).collect(),
        });
        tracing::info!(node = %self.name, height = height.0, round = certificate.round.0, txs = executed.transactions.len(), "committed");
        self.waiting_start = Some(height);
        // Start the next height one block interval after this one started — or at once when
        // catching up, or when the network is already there (see `network_ahead`).
        let interval = self.spec.params().block_interval();
        let elapsed = self.since(self.height_started);
        let behind = self.pending_commits.contains_key(&height.next());
        if replaying || behind || elapsed >= interval || self.network_ahead(height) {
            self.start_next_height_into(height, queue)?;
        } else {
            self.schedule(interval - elapsed, Timer::StartHeight(height));
        }
        self.publish_status();
        Ok(())
    }

    /// More than f validators already sent messages (authenticated, buffered) for the height
    /// after `decided`: at least one honest node started it after its own interval, so we are
    /// the ones late — a node that learned the decision late (restarted, slow link) would
    /// otherwise trail the others by its delay forever, and a trailing node's heights are
    /// always decided by the others' buffered precommits before it precommits itself. f or
    /// fewer Byzantine validators cannot make anyone start early.
    pub(super) fn network_ahead(&self, decided: Height) -> bool {
        let n = self.validators.len();
        self.core.buffered_senders(decided.next()) > n.saturating_sub(1) / 3
    }

    pub(super) fn start_next_height(&mut self, decided: Height) -> Result<(), NodeError> {
        let mut queue = VecDeque::new();
        self.start_next_height_into(decided, &mut queue)?;
        self.drain(queue)
    }

    pub(super) fn start_next_height_into(&mut self, decided: Height, queue: &mut VecDeque<Input>) -> Result<(), NodeError> {
        if self.waiting_start != Some(decided) {
            return Ok(());
        }
        self.waiting_start = None;
        let next = decided.next();
        let params = self.height_params(next);
        let effects = self.core.start_height(next, params);
        self.height_started = self.now();
        // Early precommits wait with the others for σ_h (their partials sign over it), then
        // join one batch check.
        for input in self.core.take_buffered() {
            match input {
                // Buffered under the set of the height before: authenticated again under this
                // height's before they may take a place.
                Input::Vote(vote) if self.batches_partials(&vote) => {
                    if self.core.authenticate(&ConsensusMessage::Vote(vote.clone())).is_ok() {
                        self.hold_precommit(vote);
                    } else {
                        self.metrics.rejected_inputs.inc();
                    }
                }
                other => queue.push_back(other),
            }
        }
        self.carry_out(effects, queue, false)?;
        // Commits and proposals that were waiting for this height.
        queue.extend(self.pending_commit_input(next)?);
        queue.extend(self.ready_proposals(next)?);
        Ok(())
    }
}
