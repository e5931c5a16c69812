//! Gossip: status, the core's own messages, transaction batches, and the node status published
//! to RPC.

use super::*;

impl<H: Host> Node<H> {
    pub(super) fn send_to(&mut self, peer: &Ed25519PublicKey, wire: &Wire) {
        let bytes = wire.encode();
        let _ = self.sender.send(Recipients::One(peer.clone()), bytes, false);
    }

    pub(super) fn send_all(&mut self, wire: &Wire, priority: bool) {
        let bytes = wire.encode();
        let _ = self.sender.send(Recipients::All, bytes, priority);
    }

    pub(super) fn gossip(&mut self) {
        let height = self.current_height();
        let round = self.core.round().unwrap_or(Round::ZERO);
        self.send_all(&Wire::Status { height, round }, false);
        if self.waiting_start.is_none() {
            for message in self.core.gossip() {
                self.broadcast(message);
            }
        }
        // Progress while catching up.
        let target = self.live_peer_heights().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        let committed = height.0.saturating_sub(1);
        if target > committed + 2 && self.since(self.last_sync_log) >= Duration::from_secs(1) {
            self.last_sync_log = self.now();
            tracing::info!(node = %self.name, "syncing: height {committed} / {target}");
        }
        self.publish_status();
    }

    /// Gossip again the transactions this node's RPC took that are still pending (forgetting
    /// those that are not).
    pub(super) fn rebroadcast_local_transactions(&mut self) {
        let mempool = &self.mempool;
        self.local_transactions.retain(|hash| mempool.contains(hash));
        for hash in &self.local_transactions {
            if let Some(tx) = self.mempool.get(hash) {
                self.gossip_queue.push(tx.signed().encode());
            }
        }
    }

    pub(super) fn flush_tx_gossip(&mut self) {
        if self.gossip_queue.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.gossip_queue);
        for chunk in crate::wire::gossip_batches(batch) {
            let bytes = Wire::Transactions(chunk).encode();
            let _ = self.tx_sender.send(Recipients::All, bytes, false);
        }
    }

    /// Every buffer a peer can fill, in bytes, with the limit the node keeps it under.
    pub(super) fn buffer_usage(&self) -> Vec<BufferUsage> {
        use commonware_codec::EncodeSize as _;
        let block = self.spec.params().max_block_bytes;
        let validators = self.validators.len().max(1);
        let vote_limit = tcp_consensus::MAX_BUFFERED_INPUT_BYTES;
        vec![
            BufferUsage {
                name: "consensus_queue",
                bytes: CONSENSUS_QUEUE_BYTES - self.queue_budget.0.available_permits(),
                limit: CONSENSUS_QUEUE_BYTES,
            },
            BufferUsage {
                name: "transaction_queue",
                bytes: TRANSACTION_QUEUE_BYTES - self.queue_budget.1.available_permits(),
                limit: TRANSACTION_QUEUE_BYTES,
            },
            BufferUsage {
                name: "block_bodies",
                bytes: self.bodies.values().map(|b| b.bytes.len()).sum(),
                limit: MAX_BODY_BLOCKS * block,
            },
            BufferUsage {
                name: "early_bodies",
                bytes: self.unsolicited.values().map(|(_, _, b)| b.len()).sum(),
                limit: MAX_UNSOLICITED_BLOCKS * block,
            },
            BufferUsage {
                name: "pending_commits",
                bytes: self.pending_commits.values().map(|(_, b)| b.len()).sum(),
                limit: MAX_PENDING_COMMIT_BLOCKS * block,
            },
            BufferUsage {
                name: "pending_proposals",
                bytes: self.pending_proposals.iter().map(|p| p.encode_size()).sum(),
                limit: MAX_PENDING_PROPOSALS * vote_limit,
            },
            BufferUsage {
                name: "precommit_batch",
                bytes: self.inbox.iter().map(|v| v.encode_size()).sum(),
                limit: 4 * validators * vote_limit,
            },
            BufferUsage {
                name: "future_heights",
                bytes: self.core.future_buffer_bytes(),
                limit: self.core.future_buffer_limit(validators),
            },
            BufferUsage { name: "mempool", bytes: self.mempool.bytes(), limit: MempoolLimits::default().max_bytes },
        ]
    }

    fn sssg_status(&self) -> SssgStatus {
        let group = &self.group;
        let hex_key = |k: &Ed25519PublicKey| crate::genesis::encode_ed25519_public(k);
        let stats = group.stats();
        SssgStatus {
            size: group.params().size,
            serving: group.serving().map(|g| ServingGroup {
                epoch: g.epoch,
                round: g.round,
                members: g.members.iter().map(hex_key).collect(),
                threshold: g.threshold().threshold,
                master_public_key: tcp_types::hex::encode(&tcp_beacon::signature::group_key_to_bytes(&g.master_public_key())),
            }),
            ceremony: group.ceremony().map(|t| {
                let c = t.ceremony();
                GroupCeremonyStatus {
                    round: c.round(),
                    reshare: c.is_reshare(),
                    dealers: c.dealers().len(),
                    players: c.players().len(),
                    logs: c.dealers().iter().filter(|d| t.has_log(d)).count(),
                    deadline: group.ceremony_deadline().map_or(0, |d| d.0),
                }
            }),
            ready_for_epoch: group.ready().map(|g| g.epoch),
            reshares: stats.reshares,
            ceremonies_failed: stats.failures,
            epochs_extended: stats.extensions,
        }
    }

    /// The heights of the peers heard from lately: the connected ones (a peer that went away
    /// stops counting within [`PEER_SILENCE`]).
    pub(super) fn live_peer_heights(&self) -> impl Iterator<Item = Height> + '_ {
        let now = self.now();
        self.peer_heights.values().filter(move |(_, at)| now.duration_since(*at).unwrap_or_default() < PEER_SILENCE).map(|(h, _)| *h)
    }

    pub(super) fn publish_status(&mut self) {
        let committed = self.current_height().0.saturating_sub(1);
        let target = self.live_peer_heights().map(|h| h.0.saturating_sub(1)).max().unwrap_or(0);
        let status = NodeStatus {
            chain_id: self.spec.chain_id.as_str().to_string(),
            node: self.name.clone(),
            role: format!("{:?}", self.role).to_lowercase(),
            height: committed,
            block_id: self.last_id.to_hex(),
            block_time_ms: self.last_timestamp_ms,
            consensus_height: self.core.height().map_or(0, |h| h.0),
            consensus_round: self.core.round().map_or(0, |r| r.0),
            syncing: target > committed + 2,
            sync_target: target.max(committed),
            peers: self.live_peer_heights().count(),
            mempool_size: self.mempool.len(),
            buffers: self.buffer_usage(),
            validator_index: self.validators.index_of(&self.me).map(|i| i.0),
            beacon_active: self.extension.is_active(),
            epoch: self.ledger.epoch().0,
            epoch_start: self.ledger.epoch().1.0,
            validators: self.ledger.validators().len(),
            group_key: self.ledger.group_key().map(|k| tcp_types::hex::encode(&tcp_beacon::signature::group_key_to_bytes(k))),
            reshares: self.ledger.stats().reshares,
            epochs_extended: self.ledger.stats().epochs_extended,
            ceremony_round: self.ledger.ceremony().map(|c| c.round()),
            sssg: self.sssg_status(),
        };
        self.metrics.height.set(committed as i64);
        self.metrics.round.set(status.consensus_round as i64);
        self.metrics.mempool.set(self.mempool.len() as i64);
        let _ = self.status.send(status);
    }
}
