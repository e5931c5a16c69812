//! A compute node under simulation (issue 19, item 7). The simulator plays one compute node and
//! its enclave against the nodes' own code: it bonds the operator, posts its development
//! platform's collateral and registers the enclave (a simulated SGX quote that every validator
//! verifies in Υ), then keeps asking the serving group for contract keys through an honest
//! node's relay (`Request::RelayKeyRequest`, the path `dkmp_relay` takes) and recovers them with
//! the enclave's own rules (`tcp_dkmp::KeyStore`). The checker adds:
//! * a request made while at least t honest members of the serving group are up, with no
//!   partition, crash, loss or epoch change while it was answered, gives the key (Byzantine
//!   members may withhold their answers or send bad ones: they are named, not needed);
//! * every key obtained is on the chain's release ledger at the end of the run.

use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use tcp_attestation::QuoteBackend as _;
use tcp_node::node::RelayOutcome;

/// Heights between two key requests.
const REQUEST_EVERY: u64 = 3;
/// Heights before a transaction that did not take effect is sent again.
const RESEND_AFTER: u64 = 4;
/// A release made this close to the end may not be in a block yet.
const RECORD_GRACE: u64 = 6;

struct PendingRelay {
    digest: tcp_types::Digest,
    asked_at: Duration,
    epoch: u64,
    /// Whether the request must succeed (enough honest members up, nothing disturbed).
    expected: bool,
    /// Crashes, partitions and restarts so far when it was sent.
    disturbances: u64,
    reply: tokio::sync::oneshot::Receiver<Result<RelayOutcome, String>>,
}

pub(super) struct ComputeClient {
    keys: tcp_dkmp::KeyStore,
    pending: Option<PendingRelay>,
    /// Keys obtained: the request's digest and the committed height then.
    obtained: Vec<(tcp_types::Digest, u64)>,
    /// The last transaction sent: its nonce and the height then.
    last_tx: Option<(u64, u64)>,
    last_request_height: u64,
    made: u64,
    /// The serving group's ceremony round and the height it was first seen serving: members
    /// finalize their shares from the ceremony's last block, so a group is held to answering
    /// only a few heights after it took over.
    group_since: Option<(u64, u64)>,
}

/// Heights a group serves before its requests must succeed.
const GROUP_SETTLING: u64 = 3;

impl ComputeClient {
    pub(super) fn new() -> ComputeClient {
        ComputeClient {
            keys: tcp_dkmp::KeyStore::default(),
            pending: None,
            obtained: Vec::new(),
            last_tx: None,
            last_request_height: 0,
            made: 0,
            group_since: None,
        }
    }
}

fn key_bytes(key: &Ed25519PublicKey) -> [u8; 32] {
    commonware_codec::Encode::encode(key).as_ref().try_into().expect("ed25519 keys are 32 bytes")
}

impl Run {
    fn disturbances(&self) -> u64 {
        self.report.crashes + self.report.partitions + self.report.wal_replays + self.muted.len() as u64
    }

    /// An honest validator that runs now, to submit through and relay by.
    fn honest_up_node(&self) -> Option<usize> {
        (0..self.cfg.validators).find(|&j| self.nodes[j].honest && self.nodes[j].handle.is_some() && self.nodes[j].restart_at.is_none())
    }

    /// One look: collect an answer, or take the next step (bond, collateral, registration, a
    /// key request).
    pub(super) fn compute_step(&mut self) {
        let Some(mut client) = self.compute.take() else { return };
        self.compute_step_with(&mut client);
        self.compute = Some(client);
    }

    fn compute_step_with(&mut self, client: &mut ComputeClient) {
        let Some(identity) = self.chain.compute.as_ref() else { return };
        let Some(j) = self.honest_up_node() else { return };
        let handle = self.nodes[j].handle.clone().expect("an up node");
        let committed = handle.committed_state.borrow().clone();
        let (height, state) = (committed.height.0, &committed.state);
        let chain_id = self.chain.spec.chain_id.clone();
        if let Some(pending) = &mut client.pending {
            let answer = match pending.reply.try_recv() {
                Ok(answer) => answer,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) if self.now() < pending.asked_at + Duration::from_secs(10) => return,
                Err(_) => Err("the relaying node went away".into()),
            };
            let pending = client.pending.take().expect("present");
            let serving_epoch = handle.status.borrow().sssg.serving.as_ref().map(|g| g.epoch);
            let undisturbed = pending.disturbances == self.disturbances() && serving_epoch == Some(pending.epoch);
            let obtained = answer.and_then(|outcome| {
                let master = state.chain_keys().ok_or("no master key in the state")?.master_key;
                let answers: Vec<tcp_dkmp::RelayedAnswer> = outcome
                    .answers
                    .iter()
                    .filter_map(|(index, sealed)| {
                        let member = outcome.members.get(*index as usize)?;
                        Some(tcp_dkmp::RelayedAnswer { index: *index, member: key_bytes(member), sealed: sealed.clone() })
                    })
                    .collect();
                let mut rng = ChaCha20Rng::seed_from_u64(self.rng.next_u64());
                client.keys.answer(&mut rng, &chain_id, &master, &pending.digest, &outcome.sharing, &answers)
            });
            match obtained {
                Ok(o) => {
                    self.report.dkmp_releases += 1;
                    self.report.dkmp_bad_answers += o.bad.len() as u64;
                    client.obtained.push((pending.digest, height));
                    self.trace(|| format!("compute: obtained a key from the group of epoch {} ({} bad answers)", pending.epoch, o.bad.len()));
                }
                Err(e) if pending.expected && undisturbed => {
                    let at = pending.asked_at.as_secs_f64();
                    self.report.release_failures.push(format!(
                        "a key request at {at:.1}s to the group of epoch {}, with enough honest members up, failed: {e}",
                        pending.epoch
                    ));
                }
                Err(e) => self.trace(|| format!("compute: a key request failed (not required to succeed): {e}")),
            }
            return;
        }
        let operator = identity.operator.address();
        let signing = key_bytes(&commonware_cryptography::Signer::public_key(&identity.enclave));
        let witness = || {
            identity.backend.quote(&tcp_attestation::EnclaveIdentity { measurement: crate::chain::ENCLAVE_MEASUREMENT, debug: false }, &[0; 64])
        };
        let action = if state.compute_node(&operator).is_none() {
            let min = state.staking_params().min_compute_bond;
            Some(tcp_state::Action::RegisterCompute { endpoint: "https://compute.sim".into(), amount: min })
        } else if let Ok(quote) = witness().map(|e| e.quote)
            && let Ok((tee, fmspc, pck_ca)) = tcp_attestation::quote_platform(&quote)
            && state.collateral(&tcp_dkmp::CollateralKey { tee, fmspc, pck_ca }).is_none()
        {
            Some(tcp_state::Action::PostCollateral { collateral: identity.collateral.clone(), witness: quote })
        } else if !state.enclave(&signing).is_some_and(|e| height <= e.record.expires_at) {
            let window = state.enclave_rules().map_or(0, |r| r.freshness_window);
            let fresh = (height.saturating_sub(window)..=height).rev().find_map(|h| state.registration_randomness(h).map(|r| (h, r)));
            match (fresh, state.chain_keys()) {
                (Some((at, r)), Some(keys)) => {
                    let registration = tcp_attestation::Registration {
                        chain_id: chain_id.clone(),
                        freshness: tcp_dkmp::registration_freshness(&r, &operator.0),
                        chain_keys: keys.digest(),
                        signing_key: signing,
                        x25519_key: [0x25; 32],
                    };
                    let identity_of = tcp_attestation::EnclaveIdentity { measurement: crate::chain::ENCLAVE_MEASUREMENT, debug: false };
                    identity.backend.quote(&identity_of, &registration.report_data()).ok().map(|e| tcp_state::Action::RegisterEnclave {
                        freshness_height: at,
                        signing_key: signing,
                        x25519_key: [0x25; 32],
                        quote: e.quote,
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(action) = action {
            let nonce = state.account(&operator).nonce;
            if client.last_tx.is_some_and(|(n, at)| n == nonce && height < at + RESEND_AFTER) {
                return;
            }
            let tx = tcp_state::Transaction { chain_id: chain_id.clone(), nonce, gas_price: 1, gas_limit: 10_000_000, action };
            let Ok(verified) = tx.sign(&identity.operator).verify(&chain_id) else { return };
            let (reply, _answer) = tokio::sync::oneshot::channel();
            if handle.requests.try_send(Request::Submit { tx: verified, reply }).is_ok() {
                client.last_tx = Some((nonce, height));
                self.trace(|| format!("compute: sent transaction {nonce}"));
            }
            return;
        }
        // Registered: ask for a key every few heights.
        if height < client.last_request_height + REQUEST_EVERY {
            return;
        }
        let serving = handle.status.borrow().sssg.serving.clone();
        let Some(group) = serving else { return };
        if client.group_since.is_none_or(|(round, _)| round != group.round) {
            client.group_since = Some((group.round, height));
        }
        let settled = client.group_since.is_some_and(|(_, since)| height >= since + GROUP_SETTLING);
        client.made += 1;
        let code_hash = tcp_crypto::sha256(&[b"sim contract", &client.made.to_be_bytes()]).0;
        let purpose = tcp_dkmp::KeyPurpose::Deploy { code_hash, deployer: operator.0, nonce: client.made };
        let key = tcp_dkmp::ContractKeyId { chain_id: chain_id.clone(), cid: tcp_dkmp::contract_id(&code_hash, &operator.0, client.made), generation: 0 };
        let mut entropy = zeroize::Zeroizing::new([0u8; 48]);
        entropy.copy_from_slice(&self.rng.bytes(48));
        let request = client.keys.request(&identity.enclave, key, group.epoch, purpose, &entropy);
        let digest = request.request.digest();
        // Enough honest members up, and nothing in the way?
        let up = group
            .members
            .iter()
            .filter_map(|m| self.keys.iter().position(|k| tcp_types::hex::encode(&key_bytes(k)) == *m))
            .filter(|&i| self.nodes[i].honest && self.nodes[i].handle.is_some() && self.nodes[i].restart_at.is_none())
            .count();
        let expected =
            settled && up >= group.threshold as usize && self.partition.is_none() && self.muted.is_empty() && !self.cfg.faults.loss;
        let (reply, answer) = tokio::sync::oneshot::channel();
        if handle.requests.try_send(Request::RelayKeyRequest { request, reply }).is_ok() {
            client.last_request_height = height;
            client.pending =
                Some(PendingRelay { digest, asked_at: self.now(), epoch: group.epoch, expected, disturbances: self.disturbances(), reply: answer });
        }
    }

    /// At the end: every key obtained (early enough to be in a block) is on the release ledger.
    pub(super) fn check_releases_recorded(&mut self) {
        let Some(client) = &self.compute else { return };
        let reference = (0..self.cfg.validators)
            .filter(|&i| self.nodes[i].honest)
            .filter_map(|i| self.nodes[i].handle.as_ref().map(|h| h.committed_state.borrow().clone()))
            .max_by_key(|c| c.height.0);
        let Some(reference) = reference else { return };
        let Some(identity) = self.chain.compute.as_ref() else { return };
        let honest: Vec<[u8; 32]> = (0..self.nodes.len()).filter(|&i| self.nodes[i].honest).map(|i| key_bytes(&self.keys[i])).collect();
        let mut failures = Vec::new();
        for (digest, at) in &client.obtained {
            if at + RECORD_GRACE > reference.height.0 {
                continue;
            }
            // On the record, by at least one honest member, with the enclave's true facts.
            match reference.state.release(&digest.0) {
                None => failures.push(format!("a key obtained at height {at} is not on the release ledger at height {}", reference.height.0)),
                Some(r) if !r.members.iter().any(|m| honest.contains(m)) => {
                    failures.push(format!("a key obtained at height {at} is recorded by no honest member"))
                }
                Some(r) if r.measurement != crate::chain::ENCLAVE_MEASUREMENT || r.operator != identity.operator.address().0 => {
                    failures.push(format!("a key obtained at height {at} is recorded with facts other than the enclave's"))
                }
                Some(_) => {}
            }
        }
        self.report.release_failures.extend(failures);
    }
}
