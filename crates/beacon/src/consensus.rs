//! The beacon inside consensus: a non-nil precommit carries the validator's partial for σ_h and
//! its partial for φ_h on (chain id, h, round, value) ([`BeaconExtension`]), and
//! Proposer(h, r) is the weighted draw from R_{h-2} ([`BeaconProposer`]).

use crate::finality::{FinalitySignature, finality_message};
use crate::signature::{MAX_PARTIAL_BYTES, Partial, recover_signature};
use crate::verifier::{MessagePoint, SharePair, SharingVerifier};
use crate::{BeaconSignature, Ledger};
use bytes::Bytes;
use commonware_codec::{Encode as _, ReadExt as _};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_utils::Participant;
use rand_core::CryptoRng;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tcp_consensus::{HeightParams, PrecommitExtension, ProposerSelector, Validator, ValidatorSet, ValueId};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

/// Finality partials kept per validator (one per (round, value) it precommitted): an honest
/// validator precommits one value per round, and the decision needs only one round's partials.
const MAX_FINALITY_PARTIALS_PER_VALIDATOR: usize = 4;
/// Hashed finality messages kept (one per (round, value) seen).
const FINALITY_POINTS: usize = 8;
/// Extensions remembered as failing (exact bytes), so a replayed bad precommit costs no
/// pairing again; the set is cleared when full.
const REJECTED_KEPT: usize = 1024;

/// One precommit's extension, parsed: the partial for σ_h and the partial for φ_h.
struct Shares {
    beacon: Partial,
    finality: Partial,
}

/// What a height's verified extensions gave.
#[derive(Default)]
struct Verified {
    /// Each validator's beacon partial (one valid one per height: it does not depend on the
    /// round or value).
    beacon: BTreeMap<ValidatorIndex, Partial>,
    /// Finality partials by (round, value), then validator.
    finality: BTreeMap<(Round, ValueId), BTreeMap<ValidatorIndex, Partial>>,
    /// Exact extension bytes already verified, per (validator, round, value): a repeat is
    /// recognised without decoding (decoding checks the points are in the group, not free).
    known: HashSet<(ValidatorIndex, Round, ValueId, Bytes)>,
    /// Exact extensions that failed (malformed, or a partial that does not verify).
    rejected: HashSet<(ValidatorIndex, Round, ValueId, Bytes)>,
}

impl Verified {
    fn finality_count(&self, validator: ValidatorIndex) -> usize {
        self.finality.values().filter(|m| m.contains_key(&validator)).count()
    }
}

/// The precommit extension of one height. Before the beacon runs it is empty (and must be);
/// afterwards it is the signer's partial for σ_h followed by its partial for φ_h, both checked
/// against the signer's share commitment (one batch, see
/// [`SharingVerifier::verify_share_pairs`]); verified ones are kept for recovering σ_h and φ_h.
pub struct BeaconExtension {
    height: Height,
    chain_id: Option<ChainId>,
    verifier: Option<Arc<SharingVerifier>>,
    share: Option<Share>,
    /// Share index of each validator (by consensus index); `None` for validators without one.
    participants: Vec<Option<Participant>>,
    /// The bytes σ_h signs, hashed, once σ_{h-1} is known (at the start of the height, or
    /// from the proposal's block).
    message: OnceLock<Arc<MessagePoint>>,
    /// H(m) of the finality messages of the few (round, value) pairs seen.
    finality_points: Mutex<VecDeque<((Round, ValueId), Arc<MessagePoint>)>>,
    verified: Mutex<Verified>,
}

impl BeaconExtension {
    /// An extension for a height before the beacon runs: precommits carry nothing.
    pub fn inactive(height: Height) -> Self {
        BeaconExtension {
            height,
            chain_id: None,
            verifier: None,
            share: None,
            participants: Vec::new(),
            message: OnceLock::new(),
            finality_points: Mutex::new(VecDeque::new()),
            verified: Mutex::new(Verified::default()),
        }
    }

    /// `participants[i]` is the share index of consensus validator `i`; `share` is the local
    /// validator's (None for followers); `message` the bytes σ_h signs if already known.
    pub fn active(
        chain_id: ChainId,
        height: Height,
        verifier: Arc<SharingVerifier>,
        participants: Vec<Option<u32>>,
        share: Option<Share>,
        message: Option<Vec<u8>>,
    ) -> Self {
        let extension = BeaconExtension {
            height,
            chain_id: Some(chain_id),
            verifier: Some(verifier),
            share,
            participants: participants.into_iter().map(|p| p.map(Participant::new)).collect(),
            message: OnceLock::new(),
            finality_points: Mutex::new(VecDeque::new()),
            verified: Mutex::new(Verified::default()),
        };
        if let Some(m) = message {
            extension.set_message(m);
        }
        extension
    }

    pub fn height(&self) -> Height {
        self.height
    }

    pub fn is_active(&self) -> bool {
        self.verifier.is_some()
    }

    /// Supply the bytes σ_h signs once σ_{h-1} is known. Later calls are ignored (σ_{h-1} is
    /// unique, so every correct caller passes the same bytes).
    pub fn set_message(&self, message: Vec<u8>) {
        if let Some(verifier) = &self.verifier
            && self.message.get().is_none()
        {
            let _ = self.message.set(verifier.message_point(&message));
        }
    }

    pub fn message(&self) -> Option<&[u8]> {
        self.message.get().map(|m| m.message())
    }

    fn lock(&self) -> MutexGuard<'_, Verified> {
        // A poisoned lock only means another thread panicked mid-insert of a verified partial;
        // the sets still hold verified partials only.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_known(&self, validator: ValidatorIndex, round: Round, value: &ValueId, extension: &[u8]) -> bool {
        self.lock().known.contains(&(validator, round, *value, Bytes::copy_from_slice(extension)))
    }

    fn is_rejected(&self, validator: ValidatorIndex, round: Round, value: &ValueId, extension: &[u8]) -> bool {
        self.lock().rejected.contains(&(validator, round, *value, Bytes::copy_from_slice(extension)))
    }

    fn reject(&self, validator: ValidatorIndex, round: Round, value: ValueId, extension: &[u8]) {
        let mut verified = self.lock();
        if verified.rejected.len() >= REJECTED_KEPT {
            verified.rejected.clear();
        }
        verified.rejected.insert((validator, round, value, Bytes::copy_from_slice(extension)));
    }

    /// H(m) of φ_h's message for (round, value).
    fn finality_point(&self, round: Round, value: &ValueId) -> Option<Arc<MessagePoint>> {
        let (verifier, chain_id) = (self.verifier.as_ref()?, self.chain_id.as_ref()?);
        let mut points = self.finality_points.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, point)) = points.iter().find(|(key, _)| *key == (round, *value)) {
            return Some(point.clone());
        }
        let point = verifier.finality_point(&finality_message(chain_id, self.height, round, value));
        if points.len() == FINALITY_POINTS {
            points.pop_front();
        }
        points.push_back(((round, *value), point.clone()));
        Some(point)
    }

    /// Decode an extension (σ partial ‖ φ partial, bounded, no trailing bytes, points in the
    /// group) and check both are `validator`'s (index binding), without any pairing.
    fn parse(&self, validator: ValidatorIndex, extension: &[u8]) -> Option<Shares> {
        if extension.len() > 2 * MAX_PARTIAL_BYTES {
            return None;
        }
        let mut buf = commonware_codec::Copying(extension);
        let beacon = Partial::read(&mut buf).ok()?;
        let finality = Partial::read(&mut buf).ok()?;
        if !buf.0.is_empty() {
            return None;
        }
        let expected = self.participants.get(validator.as_usize()).copied().flatten()?;
        (beacon.index == expected && finality.index == expected).then_some(Shares { beacon, finality })
    }

    /// Verify a batch of precommit extensions — (validator, round, value, extension) — at once
    /// (one multi-pairing for the batch when all are good) and remember the good ones, so the
    /// core's per-vote [`PrecommitExtension::verify`] finds them verified. Returns, per item,
    /// whether it verified.
    pub fn verify_batch(&self, rng: &mut impl CryptoRng, items: &[(ValidatorIndex, Round, ValueId, &[u8])]) -> Vec<bool> {
        let (Some(verifier), Some(message)) = (&self.verifier, self.message.get()) else {
            return items.iter().map(|(_, _, _, e)| self.verifier.is_none() && e.is_empty()).collect();
        };
        let mut result = vec![false; items.len()];
        let mut points: Vec<((Round, ValueId), Arc<MessagePoint>)> = Vec::new();
        let mut pending: Vec<(usize, Shares)> = Vec::new();
        let mut pairs: Vec<SharePair> = Vec::new();
        for (i, (validator, round, value, extension)) in items.iter().enumerate() {
            if self.is_known(*validator, *round, value, extension) {
                result[i] = true;
                continue;
            }
            if self.is_rejected(*validator, *round, value, extension) {
                continue;
            }
            let Some(shares) = self.parse(*validator, extension) else {
                self.reject(*validator, *round, *value, extension);
                continue;
            };
            let duplicate = pending.iter().any(|(j, s)| {
                let (v, r, x, _) = items[*j];
                v == *validator && r == *round && x == *value && s.beacon == shares.beacon && s.finality == shares.finality
            });
            if duplicate {
                continue;
            }
            let slot = match points.iter().position(|(key, _)| *key == (*round, *value)) {
                Some(slot) => slot,
                None => {
                    let Some(point) = self.finality_point(*round, value) else { continue };
                    points.push(((*round, *value), point));
                    points.len() - 1
                }
            };
            pairs.push(SharePair { beacon: shares.beacon.clone(), finality: shares.finality.clone(), message: slot });
            pending.push((i, shares));
        }
        let finality: Vec<Arc<MessagePoint>> = points.iter().map(|(_, p)| p.clone()).collect();
        let verdicts = verifier.verify_share_pairs(rng, message, &finality, &pairs);
        for ((i, shares), ok) in pending.into_iter().zip(verdicts) {
            let (validator, round, value, extension) = items[i];
            if ok {
                self.remember(validator, round, value, extension, shares);
                result[i] = true;
            } else {
                self.reject(validator, round, value, extension);
            }
        }
        // Duplicates inside the batch take the verdict of their first copy.
        for (i, (validator, round, value, extension)) in items.iter().enumerate() {
            result[i] = result[i] || self.is_known(*validator, *round, value, extension);
        }
        result
    }

    fn remember(&self, validator: ValidatorIndex, round: Round, value: ValueId, extension: &[u8], shares: Shares) {
        let mut verified = self.lock();
        verified.beacon.entry(validator).or_insert(shares.beacon);
        let kept = verified.finality.get(&(round, value)).is_some_and(|m| m.contains_key(&validator));
        if !kept && verified.finality_count(validator) >= MAX_FINALITY_PARTIALS_PER_VALIDATOR {
            // A validator that precommitted many values: its partial of the oldest round goes
            // (the decision is in a recent round; a certificate of an older one carries its
            // own partials, which the host verifies again).
            let oldest = verified.finality.iter().filter(|(_, m)| m.contains_key(&validator)).map(|(key, _)| *key).min();
            if let Some(oldest) = oldest {
                if let Some(partials) = verified.finality.get_mut(&oldest) {
                    partials.remove(&validator);
                    if partials.is_empty() {
                        verified.finality.remove(&oldest);
                    }
                }
                verified.known.retain(|(v, r, x, _)| !(*v == validator && (*r, *x) == oldest));
            }
        }
        verified.finality.entry((round, value)).or_default().insert(validator, shares.finality);
        verified.known.insert((validator, round, value, Bytes::copy_from_slice(extension)));
    }

    /// Offer a precommit seen outside the core (one that arrived after the decision):
    /// verified and kept if good.
    pub fn offer_late_partial(&self, validator: ValidatorIndex, round: Round, value: &ValueId, extension: &[u8]) -> bool {
        self.verify(self.height, round, validator, value, extension)
    }

    /// Partials needed to recover σ_h or φ_h (0 before the beacon runs).
    pub fn threshold(&self) -> usize {
        self.verifier.as_ref().map_or(0, |v| v.sharing().required() as usize)
    }

    /// How many distinct verified beacon partials are held.
    pub fn verified_count(&self) -> usize {
        self.lock().beacon.len()
    }

    /// σ_h from the verified partials, once there are enough.
    pub fn recover(&self) -> Option<BeaconSignature> {
        let sharing = self.verifier.as_ref()?.sharing();
        let known = self.lock();
        if (known.beacon.len() as u32) < sharing.required() {
            return None;
        }
        recover_signature(sharing, known.beacon.values()).ok()
    }

    /// φ_h on (round, value) from the verified partials of that round and value, once there
    /// are enough (a commit certificate of that round always carries enough).
    pub fn recover_finality(&self, round: Round, value: &ValueId) -> Option<FinalitySignature> {
        let sharing = self.verifier.as_ref()?.sharing();
        let known = self.lock();
        let partials = known.finality.get(&(round, *value))?;
        if (partials.len() as u32) < sharing.required() {
            return None;
        }
        recover_signature(sharing, partials.values()).ok().map(|s| FinalitySignature(s.0))
    }
}

impl PrecommitExtension for BeaconExtension {
    fn extend(&self, height: Height, round: Round, value: &ValueId) -> Bytes {
        debug_assert_eq!(height, self.height);
        match (&self.share, self.message.get(), self.finality_point(round, value)) {
            (Some(share), Some(message), Some(finality)) => {
                let mut out = message.sign(share).encode().to_vec();
                out.extend_from_slice(&finality.sign(share).encode());
                Bytes::from(out)
            }
            _ => Bytes::new(),
        }
    }

    fn verify(&self, height: Height, round: Round, validator: ValidatorIndex, value: &ValueId, extension: &[u8]) -> bool {
        if height != self.height {
            return false;
        }
        if self.verifier.is_none() {
            return extension.is_empty();
        }
        // One pair is one multi-pairing of three Miller loops: cheaper than two checks.
        use rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(verification_seed(validator, round, value, extension));
        self.verify_batch(&mut rng, &[(validator, round, *value, extension)])[0]
    }
}

/// The batch randomizers are drawn once per sharing from the host's RNG (the first batch);
/// this seed only feeds commonware's slow path on a single failing pair, whose fresh 128-bit
/// randomizers must be unpredictable to the sender: derived from the process's random state.
fn verification_seed(validator: ValidatorIndex, round: Round, value: &ValueId, extension: &[u8]) -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let state = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        hasher.write_u32(validator.0);
        hasher.write_u32(round.0);
        hasher.write(&value.0);
        hasher.write(extension);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    seed
}

/// Proposer(h, r) = the validator drawn by [`crate::select_proposer`] from the weights of the
/// height and SHA-256(R_{h-2} ‖ r).
pub struct BeaconProposer {
    height: Height,
    weights: Vec<u128>,
    randomness: Digest,
}

impl BeaconProposer {
    pub fn new(height: Height, weights: Vec<u128>, randomness: Digest) -> Self {
        assert!(!weights.is_empty(), "no validators");
        BeaconProposer { height, weights, randomness }
    }
}

impl ProposerSelector for BeaconProposer {
    fn proposer(&self, validators: &ValidatorSet, height: Height, round: Round) -> ValidatorIndex {
        debug_assert_eq!(height, self.height, "a selector serves one height");
        debug_assert_eq!(validators.len(), self.weights.len(), "one weight per validator");
        ValidatorIndex(crate::select_proposer(&self.weights, &self.randomness, round) as u32)
    }
}

impl Ledger {
    /// The consensus validator set of the epoch in force, in the schedule's order (one vote
    /// each: the beacon quorum counts validators).
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(self.validators().iter().map(|m| Validator { public_key: m.key.clone(), voting_power: 1 }).collect())
            .expect("the schedule gives a non-empty set within bounds")
    }

    /// What the consensus core needs to run `height`: the set, Proposer(h, r) from R_{h-2},
    /// and the precommit extension, holding the local share of the sharing in force when
    /// `share_of(ceremony round)` has it. The extension is also returned typed, for the host's
    /// batch verification and recovery of σ_h. Every host (node, simulator) builds its
    /// heights here.
    pub fn height_params(&self, height: Height, share_of: impl Fn(u64) -> Option<Share>) -> (HeightParams, Arc<BeaconExtension>) {
        let validators = Arc::new(self.validator_set());
        let randomness = self.selection_randomness(height).expect("σ_{h-2} is known on the host's own chain");
        let proposer = Arc::new(BeaconProposer::new(height, self.weights(height), randomness));
        let extension = match self.verifier(height) {
            Some(verifier) => {
                let share = self.output_round(height).and_then(share_of);
                Arc::new(BeaconExtension::active(
                    self.chain_id().clone(),
                    height,
                    verifier.clone(),
                    self.participants(height),
                    share,
                    self.message(height),
                ))
            }
            None => Arc::new(BeaconExtension::inactive(height)),
        };
        (HeightParams { validators, proposer, extension: extension.clone() }, extension)
    }
}
