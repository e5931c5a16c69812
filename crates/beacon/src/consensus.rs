//! The beacon inside consensus: a non-nil precommit carries the validator's partial for σ_h and
//! its partial for φ_h on (chain id, h, round, value) ([`BeaconExtension`]), and
//! Proposer(h, r) is the weighted draw from R_{h-2} ([`BeaconProposer`]).

use crate::finality::{FinalitySignature, finality_message};
use crate::partial_point::{PARTIAL_POINT_BYTES, PartialPoint};
use crate::signature::{Partial, recover_signature};
use crate::verifier::{MessagePoint, SharePair, SharingVerifier};
use crate::{BeaconSignature, Ledger};
use bytes::Bytes;
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

/// Bytes of a precommit's extension once the beacon runs: σ_h's partial ‖ φ_h's partial, each
/// an uncompressed curve point ([`PartialPoint`]); the signer's share index is its validator's.
pub const EXTENSION_BYTES: usize = 2 * PARTIAL_POINT_BYTES;

/// One precommit's extension, parsed: the signer's share index, its partial for σ_h and its
/// partial for φ_h.
struct Shares {
    index: Participant,
    beacon: PartialPoint,
    finality: PartialPoint,
}

/// What a height's verified extensions gave.
#[derive(Default)]
struct Verified {
    /// Each validator's beacon partial (one valid one per height: it does not depend on the
    /// round or value), with its share index.
    beacon: BTreeMap<ValidatorIndex, (Participant, PartialPoint)>,
    /// Finality partials by (round, value), then validator.
    finality: BTreeMap<(Round, ValueId), BTreeMap<ValidatorIndex, (Participant, PartialPoint)>>,
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

    /// Whether this node's precommits carry partials (it holds a share of the sharing).
    pub fn signs(&self) -> bool {
        self.verifier.is_some() && self.share.is_some()
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

    /// Decode an extension (σ partial ‖ φ partial: exactly [`EXTENSION_BYTES`], canonical
    /// points of the curve, neither the identity) of `validator` (which must hold a share),
    /// without any pairing and without the costly G1 membership checks (see
    /// [`crate::partial_point`]).
    fn parse(&self, validator: ValidatorIndex, extension: &[u8]) -> Option<Shares> {
        if extension.len() != EXTENSION_BYTES {
            return None;
        }
        let index = self.participants.get(validator.as_usize()).copied().flatten()?;
        let (beacon, finality) = extension.split_at(PARTIAL_POINT_BYTES);
        Some(Shares { index, beacon: PartialPoint::decode(beacon)?, finality: PartialPoint::decode(finality)? })
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
            pairs.push(SharePair { index: shares.index, beacon: shares.beacon, finality: shares.finality, message: slot });
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
        verified.beacon.entry(validator).or_insert((shares.index, shares.beacon));
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
        verified.finality.entry((round, value)).or_default().insert(validator, (shares.index, shares.finality));
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

    /// σ_h from the verified partials, once there are enough: a threshold of them, each taken
    /// by its G1 component, interpolated (the unique σ_h).
    pub fn recover(&self) -> Option<BeaconSignature> {
        let sharing = self.verifier.as_ref()?.sharing();
        let partials = interpolation_set(sharing.required(), self.lock().beacon.values())?;
        recover_signature(sharing, &partials).ok()
    }

    /// φ_h on (round, value) from the verified partials of that round and value, once there
    /// are enough (a commit certificate of that round always carries enough).
    pub fn recover_finality(&self, round: Round, value: &ValueId) -> Option<FinalitySignature> {
        let sharing = self.verifier.as_ref()?.sharing();
        let partials = interpolation_set(sharing.required(), self.lock().finality.get(&(round, *value))?.values())?;
        recover_signature(sharing, &partials).ok().map(|s| FinalitySignature(s.0))
    }
}

impl PrecommitExtension for BeaconExtension {
    fn extend(&self, height: Height, round: Round, value: &ValueId) -> Bytes {
        debug_assert_eq!(height, self.height);
        let (Some(share), Some(message), Some(verifier)) = (&self.share, self.message.get(), &self.verifier) else {
            return Bytes::new();
        };
        let Some(finality) = self.finality_point(round, value) else { return Bytes::new() };
        let shares = Shares {
            index: share.index,
            beacon: PartialPoint::of(&message.sign(share)),
            finality: PartialPoint::of(&finality.sign(share)),
        };
        let mut out = Vec::with_capacity(EXTENSION_BYTES);
        out.extend_from_slice(&shares.beacon.to_bytes());
        out.extend_from_slice(&shares.finality.to_bytes());
        // Our own precommit never comes back from the network, yet σ_h may need its partials
        // when exactly a quorum precommits. Made here with a share already seen to verify under
        // this sharing, they are kept as verified without a pairing; the first ones of a
        // sharing are checked (one pairing per epoch).
        let me = self.participants.iter().position(|p| *p == Some(share.index)).map(|i| ValidatorIndex(i as u32));
        if let Some(me) = me {
            if verifier.share_checked(share.index) {
                self.remember(me, round, *value, &out, shares);
            } else if self.verify(height, round, me, value, &out) {
                verifier.mark_share_checked(share.index);
            }
        }
        Bytes::from(out)
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

/// The first `threshold` verified partials as commonware's, for interpolation (`None` if fewer).
fn interpolation_set<'a>(threshold: u32, verified: impl Iterator<Item = &'a (Participant, PartialPoint)>) -> Option<Vec<Partial>> {
    let partials: Vec<Partial> = verified.take(threshold as usize).map(|(index, point)| point.to_partial(*index)).collect::<Option<_>>()?;
    (partials.len() == threshold as usize).then_some(partials)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partial_point::tests::{add, torsion_point};
    use crate::{Ceremony, Previous, beacon_message, dkg::run_local_ceremony};
    use commonware_cryptography::Signer as _;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;
    use tcp_types::Digest;

    /// A validator may add a point of order dividing the cofactor to its partials (only it can:
    /// its precommit is signed). The batch accepts them — the pairing cannot see it — and σ_h
    /// and φ_h recovered with them among the threshold are still the unique ones.
    #[test]
    fn a_partial_with_a_torsion_component_verifies_and_sigma_stays_unique() {
        let keys: Vec<_> = (0..4).map(tcp_crypto::insecure_ed25519_from_seed).collect();
        let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
        let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
        let verifier = Arc::new(SharingVerifier::new(output.public().clone(), None));
        let chain = ChainId::new("torsion").unwrap();
        let height = Height(3);
        let message = beacon_message(&chain, height, &Previous::Seed(Digest([2; 32])));
        let participants: Vec<Option<u32>> = public.iter().map(|k| crate::dkg::share_index(&output, k)).collect();
        let extension = |share: Option<Share>| {
            BeaconExtension::active(chain.clone(), height, verifier.clone(), participants.clone(), share, Some(message.clone()))
        };
        let value = Digest([7; 32]);
        let signed: Vec<Vec<u8>> = public
            .iter()
            .map(|k| {
                let share = shares.iter().find(|(key, _)| key == k).map(|(_, s)| s.clone());
                extension(share).extend(height, Round(0), &value).to_vec()
            })
            .collect();
        let torsion = torsion_point();
        let mut tainted = Vec::new();
        for half in signed[0].chunks(PARTIAL_POINT_BYTES) {
            tainted.extend_from_slice(&add(&PartialPoint::decode(half).unwrap(), &torsion).to_bytes());
        }
        assert_ne!(tainted, signed[0]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let honest = extension(None);
        let items: Vec<_> = signed.iter().enumerate().map(|(i, e)| (ValidatorIndex(i as u32), Round(0), value, &e[..])).collect();
        assert_eq!(honest.verify_batch(&mut rng, &items), vec![true; 4]);
        // A quorum of three, the tainted precommit among them.
        let observer = extension(None);
        let mut items: Vec<_> = items[..3].to_vec();
        items[0].3 = &tainted;
        assert_eq!(observer.verify_batch(&mut rng, &items), vec![true; 3]);
        assert_eq!(observer.recover(), honest.recover());
        assert_eq!(observer.recover_finality(Round(0), &value), honest.recover_finality(Round(0), &value));
        let sigma = observer.recover().unwrap();
        assert!(verifier.verify_signature(&verifier.message_point(&message), &sigma));
        assert!(crate::BeaconSignature::from_bytes(&sigma.to_bytes()).is_ok(), "σ_h is in G1 and encodes canonically");
    }
}
