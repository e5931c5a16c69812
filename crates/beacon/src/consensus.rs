//! The beacon inside consensus: a non-nil precommit carries the validator's partial for σ_h
//! ([`BeaconExtension`]), and Proposer(h, r) is the weighted draw from R_{h-2}
//! ([`BeaconProposer`]).

use crate::signature::{Partial, recover_signature, verify_partial};
use crate::verifier::{MessagePoint, SharingVerifier};
use crate::{BeaconSignature, signature};
use bytes::Bytes;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_utils::Participant;
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use crate::Ledger;
use tcp_consensus::{HeightParams, PrecommitExtension, ProposerSelector, Validator, ValidatorSet, ValueId};
use tcp_types::{Digest, Height, Round, ValidatorIndex};

/// The precommit extension of one height. Before the beacon runs it is empty (and must be);
/// afterwards it is the signer's partial for σ_h, checked against the signer's share
/// commitment. Partials are independent of the value and round, so each validator has exactly
/// one valid partial per height; verified ones are kept for recovering σ_h.
pub struct BeaconExtension {
    height: Height,
    verifier: Option<Arc<SharingVerifier>>,
    share: Option<Share>,
    /// Share index of each validator (by consensus index); `None` for validators without one.
    participants: Vec<Option<Participant>>,
    /// The bytes σ_h signs, hashed, once σ_{h-1} is known (at the start of the height, or
    /// from the proposal's block).
    message: OnceLock<Arc<MessagePoint>>,
    /// Verified partials with the exact extension bytes they came in, so a repeat is recognised
    /// without decoding (decoding checks the point is in the group, which is not free).
    verified: Mutex<BTreeMap<ValidatorIndex, (Bytes, Partial)>>,
}

impl BeaconExtension {
    /// An extension for a height before the beacon runs: precommits carry nothing.
    pub fn inactive(height: Height) -> Self {
        BeaconExtension {
            height,
            verifier: None,
            share: None,
            participants: Vec::new(),
            message: OnceLock::new(),
            verified: Mutex::new(BTreeMap::new()),
        }
    }

    /// `participants[i]` is the share index of consensus validator `i`; `share` is the local
    /// validator's (None for followers); `message` the bytes σ_h signs if already known.
    pub fn active(
        height: Height,
        verifier: Arc<SharingVerifier>,
        participants: Vec<Option<u32>>,
        share: Option<Share>,
        message: Option<Vec<u8>>,
    ) -> Self {
        let extension = BeaconExtension {
            height,
            verifier: Some(verifier),
            share,
            participants: participants.into_iter().map(|p| p.map(Participant::new)).collect(),
            message: OnceLock::new(),
            verified: Mutex::new(BTreeMap::new()),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ValidatorIndex, (Bytes, Partial)>> {
        // A poisoned lock only means another thread panicked mid-insert of a verified partial;
        // the map is still a set of verified partials.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_known(&self, validator: ValidatorIndex, extension: &[u8]) -> bool {
        self.lock().get(&validator).is_some_and(|(bytes, _)| bytes[..] == *extension)
    }

    /// Decode an extension and check it is `validator`'s (index binding), without the pairing.
    fn parse(&self, validator: ValidatorIndex, extension: &[u8]) -> Option<Partial> {
        let partial = signature::partial_from_bytes(extension).ok()?;
        let expected = self.participants.get(validator.as_usize()).copied().flatten()?;
        (partial.index == expected).then_some(partial)
    }

    /// Verify a batch of precommit extensions at once (one pairing check for the batch when
    /// all are good, see [`SharingVerifier::verify_partials`]) and remember the good ones, so
    /// the core's per-vote [`PrecommitExtension::verify`] finds them verified. Returns, per
    /// item, whether it verified.
    pub fn verify_batch(&self, rng: &mut impl CryptoRng, items: &[(ValidatorIndex, &[u8])]) -> Vec<bool> {
        let (Some(verifier), Some(message)) = (&self.verifier, self.message.get()) else {
            return items.iter().map(|(_, e)| self.verifier.is_none() && e.is_empty()).collect();
        };
        let mut result = vec![false; items.len()];
        let mut pending: Vec<(usize, ValidatorIndex, Partial)> = Vec::new();
        for (i, (validator, extension)) in items.iter().enumerate() {
            if self.is_known(*validator, extension) {
                result[i] = true;
                continue;
            }
            let Some(partial) = self.parse(*validator, extension) else { continue };
            if !pending.iter().any(|(_, v, p)| v == validator && *p == partial) {
                pending.push((i, *validator, partial));
            }
        }
        let partials: Vec<Partial> = pending.iter().map(|(_, _, p)| p.clone()).collect();
        let verdicts = verifier.verify_partials(rng, message, &partials);
        for ((i, validator, partial), ok) in pending.into_iter().zip(verdicts) {
            if ok {
                self.lock().insert(validator, (Bytes::copy_from_slice(items[i].1), partial));
                result[i] = true;
            }
        }
        // Duplicates inside the batch take the verdict of their first copy.
        for (i, (validator, extension)) in items.iter().enumerate() {
            result[i] = result[i] || self.is_known(*validator, extension);
        }
        result
    }

    /// Offer a partial seen outside the core (a precommit that arrived after the decision):
    /// verified and kept if good.
    pub fn offer_late_partial(&self, validator: ValidatorIndex, extension: &[u8]) -> bool {
        self.verify(self.height, Round::ZERO, validator, &Digest([0; 32]), extension)
    }

    /// Partials needed to recover σ_h (0 before the beacon runs).
    pub fn threshold(&self) -> usize {
        self.verifier.as_ref().map_or(0, |v| v.sharing().required() as usize)
    }

    /// How many distinct verified partials are held.
    pub fn verified_count(&self) -> usize {
        self.lock().len()
    }

    /// σ_h from the verified partials, once there are enough.
    pub fn recover(&self) -> Option<BeaconSignature> {
        let sharing = self.verifier.as_ref()?.sharing();
        let known = self.lock();
        if (known.len() as u32) < sharing.required() {
            return None;
        }
        recover_signature(sharing, known.values().map(|(_, p)| p)).ok()
    }
}

impl PrecommitExtension for BeaconExtension {
    fn extend(&self, height: Height, _round: Round, _value: &ValueId) -> Bytes {
        debug_assert_eq!(height, self.height);
        match (&self.share, self.message.get()) {
            (Some(share), Some(message)) => {
                let partial = message.sign(share);
                Bytes::from(signature::partial_to_bytes(&partial))
            }
            _ => Bytes::new(),
        }
    }

    fn verify(&self, height: Height, _round: Round, validator: ValidatorIndex, _value: &ValueId, extension: &[u8]) -> bool {
        if height != self.height {
            return false;
        }
        let Some(verifier) = &self.verifier else { return extension.is_empty() };
        let Some(message) = self.message.get() else { return false };
        if self.is_known(validator, extension) {
            return true;
        }
        let Some(partial) = self.parse(validator, extension) else { return false };
        if !verify_partial(verifier.sharing(), message.message(), &partial) {
            return false;
        }
        self.lock().insert(validator, (Bytes::copy_from_slice(extension), partial));
        true
    }
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
                Arc::new(BeaconExtension::active(height, verifier.clone(), self.participants(height), share, self.message(height)))
            }
            None => Arc::new(BeaconExtension::inactive(height)),
        };
        (HeightParams { validators, proposer, extension: extension.clone() }, extension)
    }
}
