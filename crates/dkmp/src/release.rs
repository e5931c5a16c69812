//! A member's decision on a key request (DESIGN §5.5, "Release"), on its own committed state:
//! the request is signed by the enclave key it names; it asks this member's epoch; the enclave
//! is registered, its registration unexpired and made under the current policy, its identity
//! and TCB still allowed, not a debug enclave; its compute node bonded and not jailed; the
//! contract and generation exist (a deploy: the contract does not exist yet, generation 0);
//! the request is not a replay; the compute node is under its rate limit. Each refusal has its
//! own error. The order puts the cheap, stateless checks first: one ed25519 verification is
//! all an unauthenticated request costs.
//!
//! The state is read through [`ReleaseView`], which the node implements over its committed
//! state (the registry comes with the compute and enclave transactions of this issue).

use std::collections::{BTreeMap, HashSet, VecDeque};

use tcp_crypto::Ed25519PublicKey;
use tcp_types::{ChainId, Digest};

use crate::request::{KeyPurpose, SignedKeyRequest};

/// An enclave registration as the chain holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveRecord {
    /// The compute node's operator that registered it.
    pub operator: [u8; 20],
    /// MRENCLAVE or TD identity, as verified at registration.
    pub measurement: [u8; 32],
    /// The TCB status at registration, Intel's rank (0 = UpToDate; see `tcp_attestation::TcbRank`).
    pub tcb_rank: u8,
    /// The TCB evaluation data number of the collateral it was verified against: a policy that
    /// raises the minimum after a TCB recovery stops releases to enclaves judged before it.
    pub tcb_evaluation_data_number: u32,
    pub debug: bool,
    /// The last height at which the registration is current.
    pub expires_at: u64,
    /// The attestation policy version it was verified under: a policy change lapses it.
    pub policy_version: u64,
}

/// A compute node as the chain holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComputeNodeRecord {
    pub bonded: u128,
    pub jailed: bool,
}

/// What the chain currently allows (genesis policy and parameters, as updated on chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasePolicy {
    pub policy_version: u64,
    pub measurements: Vec<[u8; 32]>,
    /// The worst TCB rank accepted.
    pub max_tcb_rank: u8,
    /// The oldest TCB evaluation data number a registration may have been judged under.
    pub min_tcb_evaluation_data_number: u32,
    pub min_bond: u128,
    /// Releases per compute node within `rate_window` heights.
    pub rate_limit: u32,
    pub rate_window: u64,
}

/// A member's committed state, as the release rules read it.
pub trait ReleaseView {
    fn chain_id(&self) -> &ChainId;
    /// The committed height the member decides at.
    fn height(&self) -> u64;
    fn policy(&self) -> &ReleasePolicy;
    fn enclave(&self, key: &Ed25519PublicKey) -> Option<EnclaveRecord>;
    fn compute_node(&self, operator: &[u8; 20]) -> Option<ComputeNodeRecord>;
    /// The contract's current generation, if it exists.
    fn contract_generation(&self, cid: &[u8; 32]) -> Option<u64>;
    /// Whether this member's release for the request with this digest is on chain already
    /// (a replay the gate's memory may have dropped, or made before a restart).
    fn released_by_me(&self, _request: &Digest) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseRefused {
    #[error("the request is not signed by the enclave key it names, for this chain")]
    BadSignature,
    #[error("the request asks epoch {asked}; this member serves epoch {serving}")]
    WrongEpoch { asked: u64, serving: u64 },
    #[error("no enclave is registered with this key")]
    UnregisteredEnclave,
    #[error("the enclave's registration expired at height {0}")]
    RegistrationExpired(u64),
    #[error("the enclave registered under attestation policy {0}, which has since changed")]
    PolicyChanged(u64),
    #[error("the enclave's identity is no longer allowed")]
    MeasurementNotAllowed,
    #[error("the enclave runs in debug mode")]
    DebugEnclave,
    #[error("the enclave's TCB is below what the chain accepts")]
    TcbTooLow,
    #[error("the enclave was judged under TCB evaluation data number {number}, older than the minimum {minimum}: register again")]
    TcbEvaluationTooOld { number: u32, minimum: u32 },
    #[error("the enclave's compute node is not registered")]
    UnknownComputeNode,
    #[error("the compute node's bond is below the minimum")]
    NotBonded,
    #[error("the compute node is jailed")]
    Jailed,
    #[error("no contract with this id")]
    UnknownContract,
    #[error("generation {asked} of the contract does not exist (current {current})")]
    UnknownGeneration { asked: u64, current: u64 },
    #[error("a deploy asks for a contract that already exists, or for a generation other than 0")]
    DeployOfExistingContract,
    #[error("a deploy's contract id is not the hash of its code, deployer and nonce")]
    DeployIdMismatch,
    #[error("this request was answered already")]
    Replayed,
    #[error("the compute node made {0} requests within the rate window")]
    RateLimited(u32),
}

/// What a member keeps between requests within its epoch: the requests it answered recently
/// (replays are refused) and each compute node's recent releases (the rate limit). Bounded: a
/// request is remembered only once it passed every state check, so only registered, bonded
/// nodes under their rate limit add to it — at most `rate_limit` per node per window — and it
/// is forgotten two windows later (by then the member's release record is on chain, which the
/// host checks too: `ReleaseView::released_by_me`); both are cleared when the member's epoch
/// changes (a request names its epoch).
#[derive(Default)]
pub struct ReleaseGate {
    epoch: u64,
    answered: HashSet<Digest>,
    /// (height, digest) of `answered`, oldest first.
    answered_order: VecDeque<(u64, Digest)>,
    recent: BTreeMap<[u8; 20], VecDeque<u64>>,
}

impl ReleaseGate {
    pub fn new(epoch: u64) -> ReleaseGate {
        ReleaseGate { epoch, ..ReleaseGate::default() }
    }

    /// The member now serves `epoch` (its group took over, or it joined another).
    pub fn enter_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            *self = ReleaseGate::new(epoch);
        }
    }

    /// Decide on `signed` on the member's committed state; on success the release is counted
    /// against the compute node and the request remembered. Returns the enclave's record (what
    /// the member's release-ledger entry names).
    pub fn admit(&mut self, view: &impl ReleaseView, signed: &SignedKeyRequest) -> Result<EnclaveRecord, ReleaseRefused> {
        let request = &signed.request;
        if !signed.verify(view.chain_id()) {
            return Err(ReleaseRefused::BadSignature);
        }
        if request.epoch != self.epoch {
            return Err(ReleaseRefused::WrongEpoch { asked: request.epoch, serving: self.epoch });
        }
        let policy = view.policy();
        let height = view.height();
        let enclave = check_enclave(view, &request.enclave_key)?;
        let current = view.contract_generation(&request.key.cid);
        match (request.purpose, current) {
            (KeyPurpose::Execute, None) => return Err(ReleaseRefused::UnknownContract),
            (KeyPurpose::Execute, Some(current)) if request.key.generation > current => {
                return Err(ReleaseRefused::UnknownGeneration { asked: request.key.generation, current });
            }
            (KeyPurpose::Deploy { .. }, Some(_)) => return Err(ReleaseRefused::DeployOfExistingContract),
            (KeyPurpose::Deploy { .. }, None) if request.key.generation != 0 => return Err(ReleaseRefused::DeployOfExistingContract),
            (KeyPurpose::Deploy { code_hash, deployer, nonce }, None) if crate::contract_id(&code_hash, &deployer, nonce) != request.key.cid => {
                return Err(ReleaseRefused::DeployIdMismatch);
            }
            _ => {}
        }
        let digest = request.digest();
        let window_start = height.saturating_sub(policy.rate_window.saturating_sub(1));
        while self.answered_order.front().is_some_and(|(at, _)| at.saturating_add(2 * policy.rate_window) < height) {
            let (_, old) = self.answered_order.pop_front().expect("checked");
            self.answered.remove(&old);
        }
        if self.answered.contains(&digest) || view.released_by_me(&digest) {
            return Err(ReleaseRefused::Replayed);
        }
        let recent = self.recent.entry(enclave.operator).or_default();
        while recent.front().is_some_and(|&at| at < window_start) {
            recent.pop_front();
        }
        if recent.len() >= policy.rate_limit as usize {
            return Err(ReleaseRefused::RateLimited(recent.len() as u32));
        }
        recent.push_back(height);
        self.answered.insert(digest);
        self.answered_order.push_back((height, digest));
        Ok(enclave)
    }
}

/// Whether the enclave with this key may act for the chain now, on `view`: registered, its
/// registration unexpired and made under the current policy, its identity and TCB still
/// allowed, not a debug enclave, its compute node bonded and not jailed. The one rule for key
/// releases and for compute transactions (an enclave a member would refuse a key cannot have
/// its results committed either). Returns the enclave's record.
pub fn check_enclave(view: &impl ReleaseView, key: &Ed25519PublicKey) -> Result<EnclaveRecord, ReleaseRefused> {
    let policy = view.policy();
    let height = view.height();
    let enclave = view.enclave(key).ok_or(ReleaseRefused::UnregisteredEnclave)?;
    if height > enclave.expires_at {
        return Err(ReleaseRefused::RegistrationExpired(enclave.expires_at));
    }
    if enclave.policy_version != policy.policy_version {
        return Err(ReleaseRefused::PolicyChanged(enclave.policy_version));
    }
    if !policy.measurements.contains(&enclave.measurement) {
        return Err(ReleaseRefused::MeasurementNotAllowed);
    }
    if enclave.debug {
        return Err(ReleaseRefused::DebugEnclave);
    }
    if enclave.tcb_rank > policy.max_tcb_rank {
        return Err(ReleaseRefused::TcbTooLow);
    }
    if enclave.tcb_evaluation_data_number < policy.min_tcb_evaluation_data_number {
        return Err(ReleaseRefused::TcbEvaluationTooOld {
            number: enclave.tcb_evaluation_data_number,
            minimum: policy.min_tcb_evaluation_data_number,
        });
    }
    let node = view.compute_node(&enclave.operator).ok_or(ReleaseRefused::UnknownComputeNode)?;
    if node.jailed {
        return Err(ReleaseRefused::Jailed);
    }
    if node.bonded < policy.min_bond {
        return Err(ReleaseRefused::NotBonded);
    }
    Ok(enclave)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derivation::ContractKeyId;
    use crate::request::KeyRequest;
    use commonware_cryptography::Signer as _;
    use tcp_crypto::Ed25519PrivateKey;

    const OPERATOR: [u8; 20] = [0xaa; 20];
    const MEASUREMENT: [u8; 32] = [0x5a; 32];

    struct View {
        chain: ChainId,
        height: u64,
        policy: ReleasePolicy,
        enclaves: Vec<(Ed25519PublicKey, EnclaveRecord)>,
        nodes: Vec<([u8; 20], ComputeNodeRecord)>,
        contracts: Vec<([u8; 32], u64)>,
        /// Requests this member's records put on chain.
        recorded: Vec<Digest>,
    }

    impl ReleaseView for View {
        fn chain_id(&self) -> &ChainId {
            &self.chain
        }
        fn height(&self) -> u64 {
            self.height
        }
        fn policy(&self) -> &ReleasePolicy {
            &self.policy
        }
        fn enclave(&self, key: &Ed25519PublicKey) -> Option<EnclaveRecord> {
            self.enclaves.iter().find(|(k, _)| k == key).map(|(_, r)| r.clone())
        }
        fn compute_node(&self, operator: &[u8; 20]) -> Option<ComputeNodeRecord> {
            self.nodes.iter().find(|(o, _)| o == operator).map(|(_, r)| *r)
        }
        fn contract_generation(&self, cid: &[u8; 32]) -> Option<u64> {
            self.contracts.iter().find(|(c, _)| c == cid).map(|(_, g)| *g)
        }
        fn released_by_me(&self, request: &Digest) -> bool {
            self.recorded.contains(request)
        }
    }

    fn key(seed: u8) -> Ed25519PrivateKey {
        tcp_crypto::ed25519_from_secret(&[seed; 32])
    }

    fn view() -> View {
        View {
            chain: ChainId::new("dkmp-test").unwrap(),
            height: 100,
            policy: ReleasePolicy {
                policy_version: 3,
                measurements: vec![MEASUREMENT],
                max_tcb_rank: 0,
                min_tcb_evaluation_data_number: 17,
                min_bond: 1_000,
                rate_limit: 3,
                rate_window: 10,
            },
            enclaves: vec![(
                key(1).public_key(),
                EnclaveRecord {
                    operator: OPERATOR,
                    measurement: MEASUREMENT,
                    tcb_rank: 0,
                    tcb_evaluation_data_number: 17,
                    debug: false,
                    expires_at: 500,
                    policy_version: 3,
                },
            )],
            nodes: vec![(OPERATOR, ComputeNodeRecord { bonded: 5_000, jailed: false })],
            contracts: vec![([7; 32], 2)],
            recorded: Vec::new(),
        }
    }

    fn request(nonce: u8, cid: u8, generation: u64, purpose: KeyPurpose) -> SignedKeyRequest {
        KeyRequest {
            key: ContractKeyId { chain_id: ChainId::new("dkmp-test").unwrap(), cid: [cid; 32], generation },
            epoch: 4,
            purpose,
            enclave_key: key(1).public_key(),
            answer_key: [9; 32],
            nonce: [nonce; 16],
        }
        .sign(&key(1))
    }

    const DEPLOY: KeyPurpose = KeyPurpose::Deploy { code_hash: [0xc0; 32], deployer: [0xde; 20], nonce: 1 };

    /// A deploy's request, for the contract id its code, deployer and nonce make.
    fn deploy(nonce: u8) -> SignedKeyRequest {
        let mut r = request(nonce, 0, 0, DEPLOY).request;
        r.key.cid = crate::contract_id(&[0xc0; 32], &[0xde; 20], 1);
        r.sign(&key(1))
    }

    fn admit(view: &View, signed: &SignedKeyRequest) -> Result<EnclaveRecord, ReleaseRefused> {
        ReleaseGate::new(4).admit(view, signed)
    }

    #[test]
    fn a_current_enclave_of_a_bonded_node_gets_every_existing_generation() {
        for generation in 0..=2 {
            assert!(admit(&view(), &request(1, 7, generation, KeyPurpose::Execute)).is_ok(), "generation {generation}");
        }
        assert!(admit(&view(), &deploy(1)).is_ok(), "a deploy of a new contract");
    }

    /// Each way a request can be wrong is refused with its own error (issue 19, item 8).
    #[test]
    fn each_refusal_has_its_own_error() {
        let good = request(1, 7, 2, KeyPurpose::Execute);
        let with = |change: fn(&mut View)| {
            let mut v = view();
            change(&mut v);
            admit(&v, &good)
        };
        let mut forged = good.clone();
        forged.request.nonce = [2; 16];
        assert_eq!(admit(&view(), &forged), Err(ReleaseRefused::BadSignature));
        let unregistered = KeyRequest { enclave_key: key(2).public_key(), ..good.request.clone() }.sign(&key(2));
        assert_eq!(admit(&view(), &unregistered), Err(ReleaseRefused::UnregisteredEnclave));
        assert_eq!(ReleaseGate::new(5).admit(&view(), &good), Err(ReleaseRefused::WrongEpoch { asked: 4, serving: 5 }));
        assert_eq!(with(|v| v.height = 501), Err(ReleaseRefused::RegistrationExpired(500)));
        assert_eq!(with(|v| v.policy.policy_version = 4), Err(ReleaseRefused::PolicyChanged(3)));
        assert_eq!(with(|v| v.policy.measurements = vec![[1; 32]]), Err(ReleaseRefused::MeasurementNotAllowed));
        assert_eq!(with(|v| v.enclaves[0].1.debug = true), Err(ReleaseRefused::DebugEnclave));
        assert_eq!(with(|v| v.enclaves[0].1.tcb_rank = 6), Err(ReleaseRefused::TcbTooLow));
        // A TCB recovery: the policy's minimum evaluation number rises past the registration's.
        assert_eq!(
            with(|v| v.policy.min_tcb_evaluation_data_number = 18),
            Err(ReleaseRefused::TcbEvaluationTooOld { number: 17, minimum: 18 })
        );
        assert_eq!(with(|v| v.nodes.clear()), Err(ReleaseRefused::UnknownComputeNode));
        assert_eq!(with(|v| v.nodes[0].1.jailed = true), Err(ReleaseRefused::Jailed));
        assert_eq!(with(|v| v.nodes[0].1.bonded = 999), Err(ReleaseRefused::NotBonded));
        assert_eq!(admit(&view(), &request(1, 8, 0, KeyPurpose::Execute)), Err(ReleaseRefused::UnknownContract));
        assert_eq!(admit(&view(), &request(1, 7, 3, KeyPurpose::Execute)), Err(ReleaseRefused::UnknownGeneration { asked: 3, current: 2 }));
        assert_eq!(admit(&view(), &request(1, 7, 0, DEPLOY)), Err(ReleaseRefused::DeployOfExistingContract));
        assert_eq!(admit(&view(), &request(1, 8, 1, DEPLOY)), Err(ReleaseRefused::DeployOfExistingContract));
        // A deploy naming a contract id its code, deployer and nonce do not make: refused, so an
        // enclave cannot ask for the first key of any id it likes.
        assert_eq!(admit(&view(), &request(1, 8, 0, DEPLOY)), Err(ReleaseRefused::DeployIdMismatch));
    }

    #[test]
    fn a_replay_is_refused_and_the_rate_limit_holds_per_window_and_resets_with_the_epoch() {
        let mut gate = ReleaseGate::new(4);
        let mut v = view();
        let first = request(1, 7, 2, KeyPurpose::Execute);
        assert!(gate.admit(&v, &first).is_ok());
        assert_eq!(gate.admit(&v, &first), Err(ReleaseRefused::Replayed));
        assert!(gate.admit(&v, &request(2, 7, 2, KeyPurpose::Execute)).is_ok());
        assert!(gate.admit(&v, &request(3, 7, 2, KeyPurpose::Execute)).is_ok());
        assert_eq!(gate.admit(&v, &request(4, 7, 2, KeyPurpose::Execute)), Err(ReleaseRefused::RateLimited(3)));
        // Refused requests are not remembered: the same one passes once the window has moved.
        v.height += 10;
        assert!(gate.admit(&v, &request(4, 7, 2, KeyPurpose::Execute)).is_ok());
        // A new epoch forgets both: requests name their epoch, so an old one cannot come back.
        gate.enter_epoch(5);
        assert_eq!(gate.admit(&v, &first), Err(ReleaseRefused::WrongEpoch { asked: 4, serving: 5 }));
    }

    /// The gate forgets answered requests two windows later (its memory stays bounded however
    /// long an epoch is extended); a replay after that, or after a restart, is refused by the
    /// member's own record on chain.
    #[test]
    fn an_old_or_restarted_replay_is_refused_by_the_members_record_on_chain() {
        let mut gate = ReleaseGate::new(4);
        let mut v = view();
        let first = request(1, 7, 2, KeyPurpose::Execute);
        assert!(gate.admit(&v, &first).is_ok());
        v.height += 25;
        assert!(gate.admit(&v, &request(2, 7, 2, KeyPurpose::Execute)).is_ok());
        assert_eq!(gate.answered.len(), 1, "the first request was forgotten");
        assert!(gate.admit(&v.clone_with_recorded(first.request.digest()), &first) == Err(ReleaseRefused::Replayed));
        // A restarted member (a new gate) refuses it the same way.
        let mut restarted = ReleaseGate::new(4);
        assert_eq!(restarted.admit(&v.clone_with_recorded(first.request.digest()), &first), Err(ReleaseRefused::Replayed));
    }

    impl View {
        fn clone_with_recorded(&self, digest: Digest) -> View {
            View {
                chain: self.chain.clone(),
                height: self.height,
                policy: self.policy.clone(),
                enclaves: self.enclaves.clone(),
                nodes: self.nodes.clone(),
                contracts: self.contracts.clone(),
                recorded: vec![digest],
            }
        }
    }
}
