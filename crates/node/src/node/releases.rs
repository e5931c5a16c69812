//! Contract-key releases on the live network (DESIGN §5.5 "Release"; issue 19, item 4).
//!
//! * **As a member** of the serving secret-share group, the node answers a peer's key request
//!   on its own committed state (`tcp_dkmp::ReleaseGate`: the enclave's signature first, then
//!   registration, policy, compute node, contract, replay, rate limit) with its partial sealed
//!   to the enclave, signed by its consensus key. A request with a bad signature blocks the peer;
//!   any other refusal is only logged (an expired registration is not an attack).
//! * **As a relay** (a compute node's own node), it carries its enclave's request to every
//!   member and collects their sealed answers until all have answered or [`RELAY_TIMEOUT`]
//!   passes, then hands them back with the group's public sharing. It sees only ciphertext.
//!
//! Bounded: at most [`MAX_RELAYS`] requests are relayed at once; an answer is kept only from a
//! member of the request's group, once, at most `MAX_ANSWER_BYTES`.

use super::*;
use tcp_dkmp::SignedKeyRequest;

/// Requests relayed at once.
pub(super) const MAX_RELAYS: usize = 64;
/// How long a relay waits for the members' answers.
pub(super) const RELAY_TIMEOUT: Duration = Duration::from_secs(3);
/// Release records waiting for a block (each member's rate limit bounds what honest members
/// make; the oldest go first).
pub(super) const MAX_RELEASE_POOL: usize = 4096;
/// Answers kept to send again to another asker of the same request (sealed to the enclave:
/// whoever relays it learns nothing).
pub(super) const MAX_CACHED_ANSWERS: usize = 4096;
/// A member's records in the pool.
pub(super) const MAX_RELEASE_POOL_PER_MEMBER: usize = 512;
/// Result-key asks relayed at once (apart from the enclaves' key requests, which they must not
/// crowd out).
pub(super) const MAX_RESULT_RELAYS: usize = 16;
/// Result-key answers kept to send again.
pub(super) const MAX_CACHED_RESULT_ANSWERS: usize = 1024;

/// What a relayed request gathered: the group it went to and the answers that came back.
#[derive(Clone, Debug)]
pub struct RelayOutcome {
    pub epoch: u64,
    /// The group's public sharing (commonware's encoding): what the enclave verifies partials
    /// against.
    pub sharing: Vec<u8>,
    /// The members in share order (a member's index is its position).
    pub members: Vec<Ed25519PublicKey>,
    /// (index, sealed answer) per member that answered.
    pub answers: Vec<(u32, Vec<u8>)>,
}

pub(super) struct Relay {
    outcome: RelayOutcome,
    reply: oneshot::Sender<Result<RelayOutcome, String>>,
}

impl<H: Host> Node<H> {
    /// Relay our enclave's request to the serving group.
    pub(super) fn relay_key_request(&mut self, signed: SignedKeyRequest, reply: oneshot::Sender<Result<RelayOutcome, String>>) {
        let Some(group) = self.group.serving().cloned() else {
            let _ = reply.send(Err("no secret-share group serves yet (its first DKG has not completed)".into()));
            return;
        };
        if signed.request.epoch != group.epoch {
            let _ = reply.send(Err(format!("the request asks the group of epoch {}; the group of epoch {} serves", signed.request.epoch, group.epoch)));
            return;
        }
        let digest = signed.request.digest();
        if self.relays.contains_key(&digest) {
            let _ = reply.send(Err("this request is being relayed already".into()));
            return;
        }
        if self.relays.len() - self.result_relays.len() >= MAX_RELAYS {
            let _ = reply.send(Err(format!("{MAX_RELAYS} key requests are being relayed: try again")));
            return;
        }
        self.start_relay(&group, digest, reply);
        let wire = Wire::KeyRequest(signed.clone());
        for member in &group.members {
            if *member == self.me {
                if let Some(sealed) = self.sealed_answer(&signed) {
                    self.on_key_answer(self.me.clone(), digest, sealed);
                }
            } else {
                let _ = self.tx_sender.send(Recipients::One(member.clone()), wire.encode(), false);
            }
        }
    }

    /// Wait (at most [`RELAY_TIMEOUT`]) for the answers of `group`'s members to the request
    /// with this digest.
    fn start_relay(&mut self, group: &tcp_dkmp::Group, digest: Digest, reply: oneshot::Sender<Result<RelayOutcome, String>>) {
        let outcome = RelayOutcome {
            epoch: group.epoch,
            sharing: commonware_codec::Encode::encode(group.output.public()).to_vec(),
            members: group.members.clone(),
            answers: Vec::new(),
        };
        self.relays.insert(digest, Relay { outcome, reply });
        self.schedule(RELAY_TIMEOUT, Timer::KeyRelay(digest));
    }

    /// A peer's key request: answer it if we serve and it passes every check.
    pub(super) fn on_key_request(&mut self, peer: Ed25519PublicKey, signed: SignedKeyRequest) {
        // Members only: anyone else spends nothing on it.
        if !self.group.serving().is_some_and(|g| g.members.contains(&self.me)) {
            return;
        }
        if !signed.verify(&self.spec.chain_id) {
            tracing::warn!(node = %self.name, peer = %peer, "a key request not signed by the enclave it names: blocking the peer");
            self.peers.block(peer);
            return;
        }
        if let Some(sealed) = self.sealed_answer(&signed) {
            let wire = Wire::KeyAnswer { request: signed.request.digest(), sealed };
            let _ = self.tx_sender.send(Recipients::One(peer), wire.encode(), false);
        }
    }

    /// Our answer to `signed`: the one we made already (the request reached us first from
    /// someone else — a member gossips the request inside its record — and that copy must not
    /// make us refuse the enclave's own relay), else a new one.
    fn sealed_answer(&mut self, signed: &SignedKeyRequest) -> Option<Vec<u8>> {
        let digest = signed.request.digest();
        if let Some(sealed) = self.answer_cache.get(&digest) {
            return Some(sealed.clone());
        }
        let sealed = self.answer_key_request(signed)?;
        if self.answer_cache_order.len() >= MAX_CACHED_ANSWERS
            && let Some(old) = self.answer_cache_order.pop_front()
        {
            self.answer_cache.remove(&old);
        }
        self.answer_cache_order.push_back(digest);
        self.answer_cache.insert(digest, sealed.clone());
        Some(sealed)
    }

    /// Our sealed partial for `signed`, if we are a member of the serving group holding its
    /// share and the request passes the release rules on our committed state.
    fn answer_key_request(&mut self, signed: &SignedKeyRequest) -> Option<Vec<u8>> {
        let group = self.group.serving()?;
        group.members.iter().position(|m| *m == self.me)?;
        let share = self.dkmp_keys.share(group.round)?;
        self.release_gate.enter_epoch(group.epoch);
        let committed = self.current_height().0.saturating_sub(1);
        let view = tcp_state::ReleaseStateView::new(&self.state, committed)?.for_member(self.me.clone());
        let enclave = match self.release_gate.admit(&view, signed) {
            Ok(enclave) => enclave,
            Err(refused) => {
                tracing::debug!(node = %self.name, cid = %tcp_types::hex::encode(&signed.request.key.cid), reason = %refused, "key request refused");
                return None;
            }
        };
        let partial = tcp_dkmp::partial_contract_key(&share, &signed.request.key);
        let sealed = tcp_dkmp::seal_partial(&mut self.rng, &signed.request, &partial, self.dkmp_keys.signing_key());
        let Some(sealed) = sealed else {
            tracing::debug!(node = %self.name, "a key request's answer key is not an X25519 key");
            return None;
        };
        // On the record before the answer leaves: the ledger entry goes to every validator.
        let record = tcp_dkmp::ReleaseRecord::sign(signed.clone(), tcp_dkmp::ReleasedTo::from(&enclave), self.dkmp_keys.signing_key());
        let _ = self.tx_sender.send(Recipients::All, Wire::ReleaseRecords(vec![record.clone()]).encode(), false);
        self.pool_release(record);
        Some(sealed)
    }

    /// Keep a record for our blocks: once per (request, member), and at most a share of the
    /// pool per member, so no member's records push out the others'.
    fn pool_release(&mut self, record: tcp_dkmp::ReleaseRecord) {
        let key = (record.request.request.digest(), record.member.clone());
        if self.release_pool_index.contains(&key) {
            return;
        }
        let of_member = self.release_pool.iter().filter(|r| r.member == record.member).count();
        if of_member >= MAX_RELEASE_POOL_PER_MEMBER {
            return;
        }
        if self.release_pool.len() >= MAX_RELEASE_POOL
            && let Some(old) = self.release_pool.pop_front()
        {
            self.release_pool_index.remove(&(old.request.request.digest(), old.member));
        }
        self.release_pool_index.insert(key);
        self.release_pool.push_back(record);
    }

    /// Records a validator gossiped: the cheap checks first (pooled already, its member's
    /// group, the enclave on the state, already on chain), then the signatures; kept for our
    /// blocks if admissible. A forged record blocks the peer; others' records from a peer that
    /// is not a validator are ignored.
    pub(super) fn on_release_records(&mut self, peer: Ed25519PublicKey, records: Vec<tcp_dkmp::ReleaseRecord>) {
        if self.validators.index_of(&peer).is_none() {
            return;
        }
        for record in records {
            if self.release_pool_index.contains(&(record.request.request.digest(), record.member.clone())) {
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            match release_record_refusal(&self.group, &self.state, &self.spec.chain_id, &record, &mut seen) {
                None => self.pool_release(record),
                Some(why) if why == FORGED_RELEASE_RECORD => {
                    tracing::warn!(node = %self.name, peer = %peer, "a forged release record: blocking the peer");
                    self.peers.block(peer);
                    return;
                }
                Some(_) => {}
            }
        }
    }

    /// The pooled records a block of ours carries: admissible at this height, within the
    /// count and `budget` bytes.
    pub(super) fn take_releases(&self, mut budget: usize) -> Vec<tcp_dkmp::ReleaseRecord> {
        let mut seen = std::collections::HashSet::new();
        let mut taken = Vec::new();
        for record in &self.release_pool {
            let size = commonware_codec::EncodeSize::encode_size(record) + 4;
            if taken.len() >= crate::block::MAX_RELEASES_PER_BLOCK || size > budget {
                break;
            }
            if release_record_refusal(&self.group, &self.state, &self.spec.chain_id, record, &mut seen).is_none() {
                budget -= size;
                taken.push(record.clone());
            }
        }
        taken
    }

    /// After a commit: drop the records now on chain or no longer admissible.
    pub(super) fn prune_release_pool(&mut self) {
        let (group, state, index) = (&self.group, &self.state, &mut self.release_pool_index);
        // Signatures were checked when each record was pooled.
        self.release_pool.retain(|r| {
            let digest = r.request.request.digest();
            let keep = !state.release_recorded_by(&digest.0, &r.member) && group.group_of_epoch(r.request.request.epoch).is_some();
            if !keep {
                index.remove(&(digest, r.member.clone()));
            }
            keep
        });
    }

    /// Relay a client's ask for a committed request's result key to the serving group (DESIGN
    /// §5.5 "Result keys for clients"): the answers are sealed to the result key the committed
    /// request names, so only its client opens them, and whoever relays learns nothing. At most
    /// [`MAX_RESULT_RELAYS`] at once, apart from the enclaves' key relays.
    pub(super) fn relay_result_key(&mut self, request_id: [u8; 32], reply: oneshot::Sender<Result<RelayOutcome, String>>) {
        let Some(group) = self.group.serving().cloned() else {
            let _ = reply.send(Err("no secret-share group serves yet (its first DKG has not completed)".into()));
            return;
        };
        if self.state.compute_request(&request_id).is_none() {
            let _ = reply.send(Err("the request is not committed: its result key is released only once it is".into()));
            return;
        }
        let digest = tcp_dkmp::result::result_request_digest(&self.spec.chain_id, &request_id, group.epoch);
        if self.relays.contains_key(&digest) {
            let _ = reply.send(Err("this result key is being asked for already: try again in a moment".into()));
            return;
        }
        if self.result_relays.len() >= MAX_RESULT_RELAYS || self.relays.len() >= MAX_RELAYS + MAX_RESULT_RELAYS {
            let _ = reply.send(Err(format!("{MAX_RESULT_RELAYS} result keys are being asked for: try again")));
            return;
        }
        self.start_relay(&group, digest, reply);
        self.result_relays.insert(digest);
        let wire = Wire::ResultKeyRequest { request_id, epoch: group.epoch };
        for member in &group.members {
            if *member == self.me {
                if let Some(sealed) = self.sealed_result_answer(&request_id, group.epoch) {
                    self.on_key_answer(self.me.clone(), digest, sealed);
                }
            } else {
                let _ = self.tx_sender.send(Recipients::One(member.clone()), wire.encode(), false);
            }
        }
    }

    /// A peer asks for a result key of the group of `epoch`: answer if we are of the group
    /// serving it and the request is committed on our state. Anyone may ask; only the request's
    /// client opens the answer.
    pub(super) fn on_result_key_request(&mut self, peer: Ed25519PublicKey, request_id: [u8; 32], epoch: u64) {
        if !self.group.serving().is_some_and(|g| g.epoch == epoch && g.members.contains(&self.me)) {
            return;
        }
        if let Some(sealed) = self.sealed_result_answer(&request_id, epoch) {
            let request = tcp_dkmp::result::result_request_digest(&self.spec.chain_id, &request_id, epoch);
            let _ = self.tx_sender.send(Recipients::One(peer), Wire::KeyAnswer { request, sealed }.encode(), false);
        }
    }

    /// Our partial of a committed request's result identity (its committed result hash names
    /// the run), sealed to the result key the request names; made once per request and group.
    fn sealed_result_answer(&mut self, request_id: &[u8; 32], epoch: u64) -> Option<Vec<u8>> {
        let digest = tcp_dkmp::result::result_request_digest(&self.spec.chain_id, request_id, epoch);
        if let Some(sealed) = self.result_answer_cache.get(&digest) {
            return Some(sealed.clone());
        }
        let group = self.group.serving()?;
        if group.epoch != epoch {
            return None;
        }
        group.members.iter().position(|m| *m == self.me)?;
        let share = self.dkmp_keys.share(group.round)?;
        // Our committed state: the request, its contract, the run that committed, its client's
        // result key.
        let entry = self.state.compute_request(request_id)?;
        let identity = tcp_dkmp::result::result_identity(&self.spec.chain_id, &entry.cid, request_id, &entry.result_hash);
        let mut partial = tcp_dkmp::result::partial_result_key(&share, &identity);
        let sealed = tcp_dkmp::result::seal_result_answer(
            &mut self.rng,
            &self.spec.chain_id,
            (request_id, epoch),
            &entry.result_key,
            &partial,
            self.dkmp_keys.signing_key(),
        );
        tcp_dkmp::wipe_partial(&mut partial);
        let sealed = sealed?;
        if self.result_answer_cache_order.len() >= MAX_CACHED_RESULT_ANSWERS
            && let Some(old) = self.result_answer_cache_order.pop_front()
        {
            self.result_answer_cache.remove(&old);
        }
        self.result_answer_cache_order.push_back(digest);
        self.result_answer_cache.insert(digest, sealed.clone());
        Some(sealed)
    }

    /// A member's answer to a request we relay.
    pub(super) fn on_key_answer(&mut self, peer: Ed25519PublicKey, request: Digest, sealed: Vec<u8>) {
        let Some(relay) = self.relays.get_mut(&request) else { return };
        let Some(index) = relay.outcome.members.iter().position(|m| *m == peer) else { return };
        let index = index as u32;
        if relay.outcome.answers.iter().any(|(i, _)| *i == index) {
            return;
        }
        relay.outcome.answers.push((index, sealed));
        if relay.outcome.answers.len() == relay.outcome.members.len() {
            self.finish_relay(request);
        }
    }

    /// Hand back what a relay gathered (all members answered, or the time is up).
    pub(super) fn finish_relay(&mut self, request: Digest) {
        self.result_relays.remove(&request);
        if let Some(relay) = self.relays.remove(&request) {
            let _ = relay.reply.send(Ok(relay.outcome));
        }
    }
}
