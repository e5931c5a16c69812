//! Sync: serving committed blocks with their certificates to peers that are behind (once per
//! gossip interval each), and taking peers' commits when we are behind (certificate checked
//! before the block is held).

use super::*;

impl<H: Host> Node<H> {
    pub(super) fn on_status(&mut self, peer: Ed25519PublicKey, peer_height: Height, peer_round: Round) -> Result<(), NodeError> {
        let heard = self.now();
        self.peer_heights.insert(peer.clone(), (peer_height, heard));
        let target = self.live_peer_heights().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        self.metrics.sync_target.set(target as i64);
        for vote in self.core.catch_up(peer_height, peer_round) {
            self.send_to(&peer, &Wire::Consensus(vote));
        }
        let committed = Height(self.current_height().0 - 1);
        if peer_height.0 == 0 || peer_height > committed {
            return Ok(());
        }
        // Serving reads blocks from disk and sends megabytes: once per gossip interval per peer.
        let now = self.now();
        let age = |at: &SystemTime| now.duration_since(*at).unwrap_or_default();
        if self.last_served.get(&peer).is_some_and(|at| age(at) < GOSSIP_INTERVAL) {
            return Ok(());
        }
        self.last_served.insert(peer.clone(), now);
        self.last_served.retain(|_, at| age(at) < 10 * GOSSIP_INTERVAL);
        let last = committed.0.min(peer_height.0 + SYNC_BATCH - 1);
        for h in peer_height.0..=last {
            let (Some(block), Some(cert)) = (self.store.block(Height(h))?, self.store.certificate(Height(h))?) else { break };
            let Ok(certificate) = <CommitCertificate as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&cert[..]))
            else {
                break;
            };
            self.send_to(&peer, &Wire::Commit { certificate, block });
        }
        Ok(())
    }

    /// A commit a peer sent (it is ahead of us). Its certificate's signatures are checked
    /// against the set before its block is held; a peer that sends one that does not verify
    /// is blocked. One commit per height; the blocks held are bounded in bytes.
    pub(super) fn on_commit(&mut self, peer: Ed25519PublicKey, certificate: CommitCertificate, block: Vec<u8>) -> Result<(), NodeError> {
        if let Some((height, value, _)) = &self.awaiting_body
            && certificate.height == *height
            && block_id(&block) == Some(*value)
        {
            let (height, value, decided) = self.awaiting_body.take().expect("checked");
            tracing::info!(node = %self.name, height = height.0, "fetched the body of a decided height from a peer");
            self.bodies.insert(value, Body { height, round: decided.round, bytes: Arc::new(block), executed: None });
            let mut queue = VecDeque::new();
            self.on_decided(height, value, decided, &mut queue, false)?;
            return self.drain(queue);
        }
        let current = self.current_height();
        if certificate.height < current
            || certificate.height.0 >= current.0 + MAX_PENDING_COMMITS
            || self.pending_commits.contains_key(&certificate.height)
        {
            return self.try_pending_commit();
        }
        if block_id(&block) != Some(certificate.value) {
            tracing::warn!(node = %self.name, peer = %peer, height = certificate.height.0, "a commit whose block is not the one certified: blocking the peer");
            self.peers.block(peer);
            return Ok(());
        }
        let Some(set) = self.set_at(certificate.height) else { return Ok(()) };
        let signed = certificate.verify(&tcp_consensus::ConsensusDomains::new(&self.spec.chain_id), &set, &SignaturesOnly);
        if let Err(e) = signed {
            // Within the epoch in force the set is certain; a certificate of a later epoch
            // (a set we cannot know yet) is dropped and comes again when the peer resends it.
            if certificate.height <= self.ledger.epoch_end() {
                tracing::warn!(node = %self.name, peer = %peer, error = %e, "commit certificate does not verify: blocking the peer");
                self.peers.block(peer);
            }
            return Ok(());
        }
        let limit = MAX_PENDING_COMMIT_BLOCKS * self.spec.params().max_block_bytes;
        self.pending_commits.insert(certificate.height, (certificate, block));
        while self.pending_commits.values().map(|(_, b)| b.len()).sum::<usize>() > limit {
            self.pending_commits.pop_last();
        }
        self.try_pending_commit()
    }

    pub(super) fn try_pending_commit(&mut self) -> Result<(), NodeError> {
        if self.waiting_start.is_some() {
            // A peer already has the next height: no need to wait out the block interval.
            if let Some(h) = self.waiting_start
                && self.pending_commits.contains_key(&h.next())
            {
                self.start_next_height(h)?;
            }
            return Ok(());
        }
        let Some(current) = self.core.height() else { return Ok(()) };
        match self.pending_commit_input(current)? {
            Some(input) => self.feed(input),
            None => Ok(()),
        }
    }

    /// The commit a peer sent for `height`, as an input: its block judged by `valid(v)` and
    /// (if valid) made durable first, like any block the WAL may name. Older commits are dropped.
    pub(super) fn pending_commit_input(&mut self, height: Height) -> Result<Option<Input>, NodeError> {
        self.pending_commits.retain(|h, _| *h >= height);
        let Some((certificate, body)) = self.pending_commits.remove(&height) else { return Ok(None) };
        let id = certificate.value;
        if block_id(&body) != Some(id) {
            return Ok(None);
        }
        self.bodies.insert(id, Body { height, round: certificate.round, bytes: Arc::new(body), executed: None });
        self.bound_bodies(Some(id));
        let valid = self.block_valid(&id, None);
        if valid {
            self.persist_body(&id)?;
            // The certificate's partials in one batch (σ_{h-1} is known now, from the block),
            // not one check per precommit when the core admits it.
            let extension = self.extension.clone();
            if extension.height() == height {
                extension.verify_batch(&mut self.rng, &precommit_extensions(&certificate));
            }
        }
        Ok(Some(Input::Commit { certificate, valid }))
    }
}
