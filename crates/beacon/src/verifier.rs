//! The hot path of the beacon's pairing work: checking a batch of partials on σ_h's message
//! and checking σ_h itself, for one sharing (one epoch). Commonware's threshold operations
//! remain the reference (and the slow path when a batch fails); this module adds what a node
//! that verifies every height can precompute once per epoch:
//!
//! * **Weighted partial keys.** The small-exponent batch test checks
//!   e(Σ rᵢ·σᵢ, g₂) = e(H(m), Σ rᵢ·PKᵢ) with secret random 64-bit rᵢ. A sharing's partial
//!   keys PKᵢ (in G2, the expensive group) do not change during an epoch, so the verifier draws
//!   its rᵢ once per sharing and keeps rᵢ·PKᵢ: the G2 side of a batch is then a plain sum.
//!   Soundness: for bad partials σⱼ + Δⱼ the test passes only if Σ rⱼ·Δⱼ = 0. Each rⱼ is
//!   uniform over 2⁶⁴ values and never leaves the verifier, so for any fixed Δ with a nonzero
//!   entry that holds with probability ≤ 2⁻⁶⁴; a rejection tells an adaptive adversary only
//!   that one hyperplane of weight vectors is excluded, which leaves the bound for the next try
//!   at ≤ 2⁻⁶⁴/(1 − T·2⁻⁶⁴) after T tries. The same index twice in one batch would share rⱼ
//!   (σⱼ + Δ and σⱼ − Δ would cancel), so a batch takes each index at most once.
//!   64-bit randomizers are what Ethereum consensus clients use for the same test.
//! * **Precomputed Miller-loop lines** for g₂ and for the group key, the fixed G2 arguments of
//!   every check.
//!
//! All blst calls are on points commonware decoded (on the curve, in the subgroup) or derived
//! from them; identity points never reach blst's MSM, which does not handle them.

use crate::partial_point::PartialPoint;
use crate::signature::{BEACON_NAMESPACE, BeaconSignature, GroupKey, Partial, PublicSharing};
use blst::{
    blst_fp6, blst_fp12, blst_fp12_finalverify, blst_fp12_mul, blst_miller_loop, blst_miller_loop_lines, blst_p1, blst_p1_add_or_double,
    blst_p1_affine, blst_p1_affine_is_inf, blst_p1_from_affine, blst_p1_mult, blst_p1s_mult_pippenger,
    blst_p1s_mult_pippenger_scratch_sizeof, blst_p2, blst_p2_affine, blst_p2_affine_generator, blst_p2_affine_is_inf, blst_p2_from_affine,
    blst_p2_mult, blst_p2_to_affine, blst_p2s_add, blst_precompute_lines,
};
use commonware_cryptography::bls12381::primitives::group::{G1, G2, Share};
use commonware_cryptography::bls12381::primitives::ops::hash_with_namespace;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use commonware_utils::Participant;
use rand_core::CryptoRng;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// Entries of blst's precomputed Miller-loop line table for one G2 point.
const LINE_COUNT: usize = 68;

/// Hashed messages a sharing verifier keeps: σ_h's message is hashed when the height's partials
/// are signed and checked, and again needed when σ_h arrives in the next block.
const RECENT_MESSAGES: usize = 4;

/// Bits of each batch randomizer.
const RANDOMIZER_BITS: usize = 64;

/// Precomputed Miller-loop lines of one fixed G2 point.
struct Lines(Box<[blst_fp6; LINE_COUNT]>);

impl Lines {
    fn of(point: &blst_p2_affine) -> Lines {
        let mut lines = Box::new([blst_fp6::default(); LINE_COUNT]);
        // SAFETY: the table has the LINE_COUNT entries blst writes; the point is a valid affine
        // G2 point (decoded by commonware or the generator).
        unsafe { blst_precompute_lines(lines.as_mut_ptr(), point) };
        Lines(lines)
    }

    /// The Miller loop of e(p, Q) for this table's Q.
    fn miller_loop(&self, p: &blst_p1_affine) -> blst_fp12 {
        let mut out = blst_fp12::default();
        // SAFETY: valid table and point.
        unsafe { blst_miller_loop_lines(&mut out, self.0.as_ptr(), p) };
        out
    }
}

fn generator_lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    // SAFETY: blst's generator is a static valid point.
    LINES.get_or_init(|| Lines::of(unsafe { &*blst_p2_affine_generator() }))
}

fn is_identity(point: &blst_p1_affine) -> bool {
    // SAFETY: valid pointer.
    unsafe { blst_p1_affine_is_inf(point) }
}

/// H(m) of a beacon message, hashed once and used for signing and every check at that height.
#[derive(Clone)]
pub struct MessagePoint {
    namespace: &'static [u8],
    message: Vec<u8>,
    point: G1,
    affine: blst_p1_affine,
}

impl MessagePoint {
    /// H(m) of a beacon message (namespace `tcp/beacon`).
    pub fn new(message: &[u8]) -> MessagePoint {
        MessagePoint::with_namespace(BEACON_NAMESPACE, message)
    }

    /// H(m) under `namespace`, exactly as commonware's `sign_message(namespace, m)` hashes.
    pub fn with_namespace(namespace: &'static [u8], message: &[u8]) -> MessagePoint {
        let point = hash_with_namespace::<MinSig>(MinSig::MESSAGE, namespace, message);
        let affine = G1::batch_to_affine(&[point])[0];
        MessagePoint { namespace, message: message.to_vec(), point, affine }
    }

    pub fn namespace(&self) -> &'static [u8] {
        self.namespace
    }

    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// The local validator's partial on this message; identical to commonware's
    /// `threshold::sign_message` (deterministic BLS).
    pub fn sign(&self, share: &Share) -> Partial {
        Partial { index: share.index, value: share.private.expose(|scalar| self.point * scalar) }
    }
}

/// Checks σ against the group key: one Miller loop per side with precomputed lines and one
/// final exponentiation.
pub struct GroupKeyVerifier {
    key: GroupKey,
    lines: Lines,
}

impl GroupKeyVerifier {
    pub fn new(key: GroupKey) -> GroupKeyVerifier {
        let affine = G2::batch_to_affine(&[key])[0];
        GroupKeyVerifier { key, lines: Lines::of(&affine) }
    }

    pub fn key(&self) -> &GroupKey {
        &self.key
    }

    /// e(σ, g₂) = e(H(m), PK).
    pub fn verify(&self, message: &MessagePoint, sigma: &BeaconSignature) -> bool {
        self.verify_point(message, &sigma.0)
    }

    /// e(s, g₂) = e(H(m), PK) for a group signature `s` on `message` (σ or φ).
    pub fn verify_point(&self, message: &MessagePoint, signature: &G1) -> bool {
        let signature = G1::batch_to_affine(&[*signature])[0];
        if is_identity(&signature) || is_identity(&message.affine) {
            return false;
        }
        let left = generator_lines().miller_loop(&signature);
        let right = self.lines.miller_loop(&message.affine);
        // SAFETY: valid Fp12 values.
        unsafe { blst_fp12_finalverify(&left, &right) }
    }

    /// σ_h and φ_h of one block in one pairing check: with a secret random 64-bit c,
    /// e(σ + c·φ, g₂) = e(H(m_σ) + c·H(m_φ), PK). Both hold, or (but for a 2⁻⁶⁴ chance over c)
    /// the check fails: a wrong σ off by Δ₁ and a wrong φ off by Δ₂ pass only if Δ₁ + c·Δ₂ = 0.
    pub fn verify_pair(&self, rng: &mut impl CryptoRng, sigma: (&MessagePoint, &G1), phi: (&MessagePoint, &G1)) -> bool {
        let points = G1::batch_to_affine(&[*sigma.1, *phi.1]);
        if points.iter().chain([&sigma.0.affine, &phi.0.affine]).any(is_identity) {
            return false;
        }
        let mut c = [0u8; 8];
        while c == [0; 8] {
            rng.fill_bytes(&mut c);
        }
        // SAFETY: valid, non-identity affine points; an 8-byte scalar of RANDOMIZER_BITS bits.
        unsafe {
            let combine = |first: &blst_p1_affine, second: &blst_p1_affine| {
                let mut a = blst_p1::default();
                blst_p1_from_affine(&mut a, first);
                let mut b = blst_p1::default();
                blst_p1_from_affine(&mut b, second);
                let mut scaled = blst_p1::default();
                blst_p1_mult(&mut scaled, &b, c.as_ptr(), RANDOMIZER_BITS);
                let mut sum = blst_p1::default();
                blst_p1_add_or_double(&mut sum, &a, &scaled);
                let mut out = blst_p1_affine::default();
                blst::blst_p1_to_affine(&mut out, &sum);
                out
            };
            let signatures = combine(&points[0], &points[1]);
            let messages = combine(&sigma.0.affine, &phi.0.affine);
            if is_identity(&signatures) || is_identity(&messages) {
                return false;
            }
            let left = generator_lines().miller_loop(&signatures);
            let right = self.lines.miller_loop(&messages);
            blst_fp12_finalverify(&left, &right)
        }
    }
}

/// Commonware's encoding tag of the sharing mode that evaluates share i at i + 1.
const COUNTER_MODE_TAG: u8 = 0;

/// Bytes of a compressed G2 point.
const G2_BYTES: usize = 96;

/// PKᵢ = C(i + 1) for every share index i, by Horner's rule on the sharing's commitment C: each
/// step multiplies by a small integer (a few doublings) where commonware's general evaluation
/// does a full-width multi-scalar multiplication per key. Returns `None` if the sharing is not
/// in the counter mode this relies on; the caller then falls back to commonware.
fn derive_partial_keys(sharing: &PublicSharing) -> Option<Vec<blst_p2_affine>> {
    use commonware_codec::Encode as _;
    let total = sharing.total().get() as usize;
    let degree_plus_one = sharing.required() as usize;
    // The encoding is the mode tag (0: share i is evaluated at i + 1), the total (u32), the
    // coefficient count (varint) and the coefficients, fixed-size, constant term first. A test
    // checks the result against commonware's own evaluation.
    let encoded = sharing.encode();
    let start = encoded.len().checked_sub(degree_plus_one * G2_BYTES)?;
    if encoded.first() != Some(&COUNTER_MODE_TAG) || !(1 + 4 + 1..=1 + 4 + 5).contains(&start) {
        return None;
    }
    let mut coefficients = Vec::with_capacity(degree_plus_one);
    for chunk in encoded[start..].chunks_exact(G2_BYTES) {
        let mut point = blst_p2_affine::default();
        // SAFETY: a 96-byte buffer. The bytes are commonware's re-encoding of points it checked
        // when the sharing was built, so decompression alone suffices.
        if unsafe { blst::blst_p2_uncompress(&mut point, chunk.as_ptr()) } != blst::BLST_ERROR::BLST_SUCCESS {
            return None;
        }
        coefficients.push(point);
    }
    let (highest, rest) = coefficients.split_last()?;
    let mut keys = Vec::with_capacity(total);
    for i in 0..total {
        let x = i as u64 + 1;
        // SAFETY: all pointers refer to live, valid points; blst's add-or-double functions
        // handle equal inputs and the point at infinity.
        let key = unsafe {
            let mut acc = blst_p2::default();
            blst_p2_from_affine(&mut acc, highest);
            for coefficient in rest.iter().rev() {
                // acc ← x·acc + coefficient, x by double-and-add from its top bit.
                let base = acc;
                for bit in (0..(63 - x.leading_zeros())).rev() {
                    blst::blst_p2_double(&mut acc, &acc);
                    if (x >> bit) & 1 == 1 {
                        // acc is k·base with 2 ≤ k < x, never ±base in a group of prime order
                        // > x, so the plain (non-doubling) addition is exact.
                        blst::blst_p2_add(&mut acc, &acc, &base);
                    }
                }
                blst::blst_p2_add_or_double_affine(&mut acc, &acc, coefficient);
            }
            acc
        };
        keys.push(key);
    }
    let pointers: Vec<*const blst_p2> = keys.iter().map(|k| k as *const _).collect();
    let mut affine = vec![blst_p2_affine::default(); total];
    // SAFETY: `total` valid input points and as many outputs.
    unsafe { blst::blst_p2s_to_affine(affine.as_mut_ptr(), pointers.as_ptr(), total) };
    Some(affine)
}

/// Per-sharing randomizers and the partial keys they weight, drawn on first use: one set for
/// beacon partials and an independent one for finality partials (with one set for both, a
/// σ-partial off by +Δ and a φ-partial off by −Δ would cancel in the sum).
struct Weighted {
    /// rᵢ little-endian, by share index.
    randomizers: Vec<[u8; 8]>,
    /// rᵢ·PKᵢ in affine form, by share index; `None` where PKᵢ is the identity.
    keys: Vec<Option<blst_p2_affine>>,
    /// sᵢ and sᵢ·PKᵢ for finality partials.
    finality_randomizers: Vec<[u8; 8]>,
    finality_keys: Vec<Option<blst_p2_affine>>,
}

/// Secret nonzero 64-bit randomizers and the keys they weight (`None` for identity keys).
fn weigh_keys(rng: &mut impl CryptoRng, affine: &[blst_p2_affine]) -> (Vec<[u8; 8]>, Vec<Option<blst_p2_affine>>) {
    let mut randomizers = Vec::with_capacity(affine.len());
    let mut weighted = Vec::with_capacity(affine.len());
    for key in affine {
        let mut r = [0u8; 8];
        while r == [0; 8] {
            rng.fill_bytes(&mut r);
        }
        randomizers.push(r);
        // SAFETY: valid pointers; blst reads RANDOMIZER_BITS bits of the 8-byte scalar.
        let point = unsafe {
            if blst_p2_affine_is_inf(key) {
                None
            } else {
                let mut projective = blst_p2::default();
                blst_p2_from_affine(&mut projective, key);
                let mut product = blst_p2::default();
                blst_p2_mult(&mut product, &projective, r.as_ptr(), RANDOMIZER_BITS);
                let mut out = blst_p2_affine::default();
                blst_p2_to_affine(&mut out, &product);
                Some(out)
            }
        };
        weighted.push(point);
    }
    (randomizers, weighted)
}

/// One precommit's two partials for a batch check: the beacon partial on the height's beacon
/// message and the finality partial on `finality[message]` (one entry per (round, value)).
/// One precommit's two partials as checked together: σ_h's and φ_h's (on the finality message
/// `finality[message]` of the batch), both by the share of `index`.
#[derive(Clone, Debug)]
pub struct SharePair {
    pub index: Participant,
    pub beacon: PartialPoint,
    pub finality: PartialPoint,
    pub message: usize,
}

/// The verifier of one sharing: the partials of every height of an epoch and σ.
pub struct SharingVerifier {
    sharing: PublicSharing,
    group: Arc<GroupKeyVerifier>,
    weighted: OnceLock<Weighted>,
    recent: Mutex<VecDeque<Arc<MessagePoint>>>,
    /// The local share's index once one of its partials verified under this sharing.
    checked_share: OnceLock<Participant>,
}

impl SharingVerifier {
    /// `group` is reused when it is the verifier of `sharing`'s group key (reshares keep the
    /// key, so one serves the whole chain); otherwise a new one is built.
    pub fn new(sharing: PublicSharing, group: Option<&Arc<GroupKeyVerifier>>) -> SharingVerifier {
        let group = match group {
            Some(g) if g.key() == sharing.public() => g.clone(),
            _ => Arc::new(GroupKeyVerifier::new(*sharing.public())),
        };
        SharingVerifier {
            sharing,
            group,
            weighted: OnceLock::new(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_MESSAGES)),
            checked_share: OnceLock::new(),
        }
    }

    /// Whether the local share of `index` already produced a partial that verified under this
    /// sharing. A process holds one share per sharing, so once is enough: its later partials
    /// are kept without a pairing, while a share that does not match the commitment (a
    /// damaged key file) is never trusted.
    pub fn share_checked(&self, index: Participant) -> bool {
        self.checked_share.get() == Some(&index)
    }

    pub fn mark_share_checked(&self, index: Participant) {
        let _ = self.checked_share.set(index);
    }

    /// H(message) of a beacon message, from the few most recent messages if it is one of them.
    pub fn message_point(&self, message: &[u8]) -> Arc<MessagePoint> {
        self.cached_point(BEACON_NAMESPACE, message)
    }

    /// H(message) of a finality message (namespace `tcp/finality`), cached likewise.
    pub fn finality_point(&self, message: &[u8]) -> Arc<MessagePoint> {
        self.cached_point(crate::finality::FINALITY_NAMESPACE, message)
    }

    fn cached_point(&self, namespace: &'static [u8], message: &[u8]) -> Arc<MessagePoint> {
        // A poisoned lock only means a panic elsewhere mid-push; the cache is still valid.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(point) = recent.iter().find(|p| p.namespace == namespace && p.message == message) {
            return point.clone();
        }
        let point = Arc::new(MessagePoint::with_namespace(namespace, message));
        if recent.len() == RECENT_MESSAGES {
            recent.pop_front();
        }
        recent.push_back(point.clone());
        point
    }

    pub fn sharing(&self) -> &PublicSharing {
        &self.sharing
    }

    pub fn group(&self) -> &Arc<GroupKeyVerifier> {
        &self.group
    }

    /// The partial keys and randomizers of this sharing. The first call does the epoch's setup
    /// (partial keys from the commitment, then one 64-bit G2 multiplication each).
    fn weighted(&self, rng: &mut impl CryptoRng) -> &Weighted {
        self.weighted.get_or_init(|| {
            let affine = derive_partial_keys(&self.sharing).unwrap_or_else(|| {
                let total = self.sharing.total().get();
                self.sharing.precompute_partial_publics();
                let keys: Vec<G2> = (0..total).map(|i| self.sharing.partial_public(Participant::new(i)).expect("i < total")).collect();
                G2::batch_to_affine(&keys)
            });
            let (randomizers, keys) = weigh_keys(rng, &affine);
            let (finality_randomizers, finality_keys) = weigh_keys(rng, &affine);
            Weighted { randomizers, keys, finality_randomizers, finality_keys }
        })
    }

    /// Do the epoch's setup now rather than at the first batch.
    pub fn prepare(&self, rng: &mut impl CryptoRng) {
        self.weighted(rng);
    }

    /// Check partials on one message. Returns, for each input, whether it verified (the same
    /// answer as checking each alone, up to the 2⁻⁶⁴ bound above). One batch test for the
    /// good case; if it fails, commonware's bisecting batch verifier (fresh randomizers) finds
    /// the bad ones.
    pub fn verify_partials(&self, rng: &mut impl CryptoRng, message: &MessagePoint, partials: &[Partial]) -> Vec<bool> {
        let weighted = self.weighted(rng);
        let mut verdicts = vec![false; partials.len()];
        // A batch takes each index once, with a nonzero key and a non-identity partial; the
        // rest go through the slow path.
        let values: Vec<G1> = partials.iter().map(|p| p.value).collect();
        let affine = G1::batch_to_affine(&values);
        let mut in_batch = vec![false; weighted.keys.len()];
        let mut batch: Vec<usize> = Vec::with_capacity(partials.len());
        let mut slow: Vec<usize> = Vec::new();
        for (i, partial) in partials.iter().enumerate() {
            let index = usize::from(partial.index);
            let eligible = index < in_batch.len() && !in_batch[index] && weighted.keys[index].is_some() && !is_identity(&affine[i]);
            if eligible {
                in_batch[index] = true;
                batch.push(i);
            } else {
                slow.push(i);
            }
        }
        if batch.len() >= 2 && !is_identity(&message.affine) && self.batch_holds(weighted, message, &affine, partials, &batch) {
            for &i in &batch {
                verdicts[i] = true;
            }
        } else {
            slow.extend(batch);
        }
        if !slow.is_empty() {
            let candidates: Vec<Partial> = slow.iter().map(|&i| partials[i].clone()).collect();
            let checked = reference_verify_partials(rng, &self.sharing, message, &candidates);
            for (&i, ok) in slow.iter().zip(checked) {
                verdicts[i] = ok;
            }
        }
        verdicts
    }

    /// e(Σ rᵢ·σᵢ, g₂) = e(H(m), Σ rᵢ·PKᵢ) over the batch.
    fn batch_holds(
        &self,
        weighted: &Weighted,
        message: &MessagePoint,
        affine: &[blst_p1_affine],
        partials: &[Partial],
        batch: &[usize],
    ) -> bool {
        let points: Vec<*const blst_p1_affine> = batch.iter().map(|&i| &affine[i] as *const _).collect();
        let scalars: Vec<*const u8> = batch.iter().map(|&i| weighted.randomizers[usize::from(partials[i].index)].as_ptr()).collect();
        let keys: Vec<*const blst_p2_affine> = batch
            .iter()
            .map(|&i| weighted.keys[usize::from(partials[i].index)].as_ref().expect("eligible keys are not the identity") as *const _)
            .collect();
        // SAFETY: every pointer refers to a live, valid, non-identity affine point or an 8-byte
        // scalar; the scratch buffer has the size blst asks for.
        unsafe {
            let mut scratch = vec![0u64; blst_p1s_mult_pippenger_scratch_sizeof(points.len()).div_ceil(8)];
            let mut sum = blst_p1::default();
            blst_p1s_mult_pippenger(&mut sum, points.as_ptr(), points.len(), scalars.as_ptr(), RANDOMIZER_BITS, scratch.as_mut_ptr());
            let mut sum_affine = blst_p1_affine::default();
            blst::blst_p1_to_affine(&mut sum_affine, &sum);
            let mut key_sum = blst_p2::default();
            blst_p2s_add(&mut key_sum, keys.as_ptr(), keys.len());
            let mut key_sum_affine = blst_p2_affine::default();
            blst_p2_to_affine(&mut key_sum_affine, &key_sum);
            if blst_p1_affine_is_inf(&sum_affine) || blst_p2_affine_is_inf(&key_sum_affine) {
                return false;
            }
            let left = generator_lines().miller_loop(&sum_affine);
            let mut right = blst_fp12::default();
            blst_miller_loop(&mut right, &key_sum_affine, &message.affine);
            blst_fp12_finalverify(&left, &right)
        }
    }

    /// Check precommits' partial pairs: each pair's beacon partial on `beacon` and its finality
    /// partial on `finality[pair.message]`, both under the partial key of `pair.index`. When all
    /// are good this is one multi-pairing with one final exponentiation for the whole batch:
    /// e(Σ rᵢ·σᵢ + Σ sᵢ·φᵢ, g₂) = e(H(m_σ), Σ rᵢ·PKᵢ) · Πₘ e(H(m), Σ_{i on m} sᵢ·PKᵢ),
    /// 2 + (distinct finality messages) Miller loops, not two separate batch checks. The rᵢ and
    /// sᵢ are independent secret randomizers (see [`Weighted`]); each index at most once per
    /// batch (a repeated index is checked alone). If the test fails, the batch is halved until
    /// the bad pairs are found (the same test on fewer pairs, so every pair gets the verdict of
    /// the same rule: correct in its G1 component, see [`crate::partial_point`]). Returns, per
    /// pair, whether both partials verified.
    pub fn verify_share_pairs(
        &self,
        rng: &mut impl CryptoRng,
        beacon: &MessagePoint,
        finality: &[Arc<MessagePoint>],
        pairs: &[SharePair],
    ) -> Vec<bool> {
        let weighted = self.weighted(rng);
        let mut verdicts = vec![false; pairs.len()];
        if is_identity(&beacon.affine) || finality.iter().any(|m| is_identity(&m.affine)) {
            return verdicts;
        }
        let mut in_batch = vec![false; weighted.keys.len()];
        let mut batch: Vec<usize> = Vec::with_capacity(pairs.len());
        let mut alone: Vec<usize> = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            let index = usize::from(pair.index);
            let checkable = index < in_batch.len()
                && weighted.keys[index].is_some()
                && weighted.finality_keys[index].is_some()
                && pair.message < finality.len();
            if !checkable {
                continue;
            }
            if in_batch[index] {
                alone.push(i);
            } else {
                in_batch[index] = true;
                batch.push(i);
            }
        }
        self.settle(weighted, beacon, finality, pairs, &batch, &mut verdicts);
        for i in alone {
            self.settle(weighted, beacon, finality, pairs, &[i], &mut verdicts);
        }
        verdicts
    }

    /// The verdicts of `batch` (distinct indexes): all good if the combined test holds,
    /// otherwise each half settled on its own, down to single pairs.
    fn settle(
        &self,
        weighted: &Weighted,
        beacon: &MessagePoint,
        finality: &[Arc<MessagePoint>],
        pairs: &[SharePair],
        batch: &[usize],
        verdicts: &mut [bool],
    ) {
        if batch.is_empty() {
            return;
        }
        if self.pairs_hold(weighted, beacon, finality, pairs, batch) {
            for &i in batch {
                verdicts[i] = true;
            }
            return;
        }
        if batch.len() > 1 {
            let (left, right) = batch.split_at(batch.len() / 2);
            self.settle(weighted, beacon, finality, pairs, left, verdicts);
            self.settle(weighted, beacon, finality, pairs, right, verdicts);
        }
    }

    /// The combined batch test of [`Self::verify_share_pairs`].
    fn pairs_hold(
        &self,
        weighted: &Weighted,
        beacon: &MessagePoint,
        finality: &[Arc<MessagePoint>],
        pairs: &[SharePair],
        batch: &[usize],
    ) -> bool {
        let index = |i: usize| usize::from(pairs[i].index);
        let mut points: Vec<*const blst_p1_affine> = Vec::with_capacity(2 * batch.len());
        let mut scalars: Vec<*const u8> = Vec::with_capacity(2 * batch.len());
        for &i in batch {
            points.push(pairs[i].beacon.affine());
            scalars.push(weighted.randomizers[index(i)].as_ptr());
            points.push(pairs[i].finality.affine());
            scalars.push(weighted.finality_randomizers[index(i)].as_ptr());
        }
        let key = |keys: &[Option<blst_p2_affine>], i: usize| -> *const blst_p2_affine {
            keys[index(i)].as_ref().expect("checkable keys are not the identity")
        };
        let beacon_keys: Vec<*const blst_p2_affine> = batch.iter().map(|&i| key(&weighted.keys, i)).collect();
        // SAFETY: every pointer refers to a live, valid affine point of the curve that is not
        // the identity (partials are decoded so), or to an 8-byte scalar; the scratch buffer
        // has the size blst asks for. blst's Pippenger uses the plain group law, correct on all
        // of E(Fp).
        unsafe {
            let sum_keys = |keys: &[*const blst_p2_affine]| {
                let mut sum = blst_p2::default();
                blst_p2s_add(&mut sum, keys.as_ptr(), keys.len());
                let mut out = blst_p2_affine::default();
                blst_p2_to_affine(&mut out, &sum);
                out
            };
            let mut scratch = vec![0u64; blst_p1s_mult_pippenger_scratch_sizeof(points.len()).div_ceil(8)];
            let mut sum = blst_p1::default();
            blst_p1s_mult_pippenger(&mut sum, points.as_ptr(), points.len(), scalars.as_ptr(), RANDOMIZER_BITS, scratch.as_mut_ptr());
            let mut sum_affine = blst_p1_affine::default();
            blst::blst_p1_to_affine(&mut sum_affine, &sum);
            let beacon_key = sum_keys(&beacon_keys);
            if blst_p1_affine_is_inf(&sum_affine) || blst_p2_affine_is_inf(&beacon_key) {
                return false;
            }
            let left = generator_lines().miller_loop(&sum_affine);
            let mut right = blst_fp12::default();
            blst_miller_loop(&mut right, &beacon_key, &beacon.affine);
            for (m, point) in finality.iter().enumerate() {
                let keys: Vec<*const blst_p2_affine> =
                    batch.iter().filter(|&&i| pairs[i].message == m).map(|&i| key(&weighted.finality_keys, i)).collect();
                if keys.is_empty() {
                    continue;
                }
                let finality_key = sum_keys(&keys);
                if blst_p2_affine_is_inf(&finality_key) {
                    return false;
                }
                let mut loop_m = blst_fp12::default();
                blst_miller_loop(&mut loop_m, &finality_key, &point.affine);
                let product = right;
                blst_fp12_mul(&mut right, &product, &loop_m);
            }
            blst_fp12_finalverify(&left, &right)
        }
    }

    /// σ of a height signed under this sharing.
    pub fn verify_signature(&self, message: &MessagePoint, sigma: &BeaconSignature) -> bool {
        self.group.verify(message, sigma)
    }
}

/// Commonware's batch verifier (fresh 128-bit randomizers, bisection on failure): the slow path.
fn reference_verify_partials(rng: &mut impl CryptoRng, sharing: &PublicSharing, message: &MessagePoint, partials: &[Partial]) -> Vec<bool> {
    crate::signature::verify_partials_in(rng, sharing, message.namespace, &message.message, partials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkg::run_local_ceremony;
    use crate::signature::{beacon_message, verify_partial};
    use crate::{Ceremony, Previous};
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::bls12381::primitives::ops::{self, threshold};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use tcp_crypto::insecure_ed25519_from_seed;
    use tcp_types::{ChainId, Digest, Height};

    struct Fixture {
        verifier: SharingVerifier,
        shares: Vec<Share>,
    }

    fn fixture(n: u64) -> Fixture {
        let keys: Vec<_> = (0..n).map(insecure_ed25519_from_seed).collect();
        let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
        let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(n)).unwrap();
        let sharing = output.public().clone();
        Fixture { verifier: SharingVerifier::new(sharing, None), shares: shares.into_iter().map(|(_, s)| s).collect() }
    }

    fn message(height: u64) -> Vec<u8> {
        beacon_message(&ChainId::new("verifier").unwrap(), Height(height), &Previous::Seed(Digest([3; 32])))
    }

    #[test]
    fn signing_and_signature_checks_agree_with_commonware() {
        let f = fixture(4);
        let m = message(5);
        let point = MessagePoint::new(&m);
        for share in &f.shares {
            assert_eq!(point.sign(share), threshold::sign_message::<MinSig>(share, BEACON_NAMESPACE, &m));
        }
        let partials: Vec<_> = f.shares.iter().map(|s| point.sign(s)).collect();
        let sigma = crate::signature::recover_signature(f.verifier.sharing(), &partials).unwrap();
        let key = f.verifier.sharing().public();
        assert!(f.verifier.verify_signature(&point, &sigma));
        assert!(ops::verify_message::<MinSig>(key, BEACON_NAMESPACE, &m, &sigma.0).is_ok());
        let other = MessagePoint::new(&message(6));
        assert!(!f.verifier.verify_signature(&other, &sigma));
        // A partial is not σ.
        assert!(!f.verifier.verify_signature(&point, &BeaconSignature(partials[0].value)));
    }

    #[test]
    fn derived_partial_keys_are_commonwares() {
        let f = fixture(7);
        let derived = derive_partial_keys(f.verifier.sharing()).expect("counter mode");
        let expected: Vec<G2> = (0..7).map(|i| f.verifier.sharing().partial_public(Participant::new(i)).unwrap()).collect();
        assert_eq!(derived, G2::batch_to_affine(&expected));
    }

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        None,
        WrongMessage,
        /// Claims the next share's index.
        WrongIndex,
        /// Sent twice under its own index: σ + Δ and σ − Δ, which cancel in a sum.
        CancellingPair,
        Identity,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            6 => Just(Fault::None),
            1 => Just(Fault::WrongMessage),
            1 => Just(Fault::WrongIndex),
            1 => Just(Fault::CancellingPair),
            1 => Just(Fault::Identity),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum PairFault {
        None,
        /// σ-partial off by +Δ, φ-partial off by −Δ: their sum is right, each is wrong.
        CrossCancel,
        /// The φ-partial of another round (another message) presented for this one.
        OtherRound,
        /// Both halves of a pair signed for σ's message.
        BeaconTwice,
        /// The same validator's pair twice in a batch, σ-partials off by ±Δ.
        CancellingTwin,
        /// Right partials plus a point of order dividing the cofactor: right in G1.
        Torsion,
        /// A torsion point alone as the σ-partial.
        OnlyTorsion,
    }

    fn pair_fault() -> impl Strategy<Value = PairFault> {
        prop_oneof![
            6 => Just(PairFault::None),
            1 => Just(PairFault::CrossCancel),
            1 => Just(PairFault::OtherRound),
            1 => Just(PairFault::BeaconTwice),
            1 => Just(PairFault::CancellingTwin),
            1 => Just(PairFault::Torsion),
            1 => Just(PairFault::OnlyTorsion),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The combined σ/φ batch's verdicts are exactly those of checking each partial's G1
        /// component alone (commonware's check), whatever else is in the batch.
        #[test]
        fn pair_verdicts_match_individual_checks(faults in proptest::collection::vec(pair_fault(), 1..9), seed in any::<u64>()) {
            use crate::finality::{FINALITY_NAMESPACE, finality_message, finality_point};
            use crate::partial_point::tests::{add, torsion_point};
            let f = fixture(10);
            let chain = ChainId::new("verifier").unwrap();
            let m = message(7);
            let beacon = MessagePoint::new(&m);
            let finality_messages: Vec<Vec<u8>> =
                (0..2).map(|r| finality_message(&chain, Height(7), tcp_types::Round(r), &Digest([5; 32]))).collect();
            let finality: Vec<Arc<MessagePoint>> = finality_messages.iter().map(|m| Arc::new(finality_point(m))).collect();
            let delta = MessagePoint::new(&message(8)).point;
            let torsion = torsion_point();
            // (the pair, its G1 components as commonware partials)
            let mut pairs: Vec<(SharePair, Partial, Partial)> = Vec::new();
            let pair = |b: &Partial, f: &Partial, slot: usize| {
                (SharePair { index: b.index, beacon: PartialPoint::of(b), finality: PartialPoint::of(f), message: slot }, b.clone(), f.clone())
            };
            for (i, fault) in faults.iter().enumerate() {
                let share = &f.shares[i % f.shares.len()];
                let slot = i % 2;
                let (mut b, mut phi) = (beacon.sign(share), finality[slot].sign(share));
                match fault {
                    PairFault::None => {}
                    PairFault::CrossCancel => {
                        b.value += &delta;
                        phi.value -= &delta;
                    }
                    PairFault::OtherRound => phi = finality[1 - slot].sign(share),
                    PairFault::BeaconTwice => phi = beacon.sign(share),
                    PairFault::CancellingTwin => {
                        let mut twin = b.clone();
                        b.value += &delta;
                        twin.value -= &delta;
                        pairs.push(pair(&twin, &phi, slot));
                    }
                    PairFault::Torsion | PairFault::OnlyTorsion => {
                        let mut p = pair(&b, &phi, slot);
                        p.0.beacon = if matches!(fault, PairFault::Torsion) { add(&p.0.beacon, &torsion) } else { torsion };
                        if matches!(fault, PairFault::OnlyTorsion) {
                            // Its G1 component is the identity: not σ's partial.
                            p.1.value = delta;
                            p.1.value -= &delta;
                        }
                        pairs.push(p);
                        continue;
                    }
                }
                pairs.push(pair(&b, &phi, slot));
            }
            let expected: Vec<bool> = pairs
                .iter()
                .map(|(p, b, phi)| {
                    verify_partial(f.verifier.sharing(), &m, b)
                        && threshold::verify_message::<MinSig>(f.verifier.sharing(), FINALITY_NAMESPACE, &finality_messages[p.message], phi).is_ok()
                })
                .collect();
            let batch: Vec<SharePair> = pairs.iter().map(|(p, _, _)| p.clone()).collect();
            let got = f.verifier.verify_share_pairs(&mut ChaCha20Rng::seed_from_u64(seed), &beacon, &finality, &batch);
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn sigma_and_phi_checked_together_fail_if_either_is_wrong() {
        use crate::finality::{finality_message, finality_point};
        let f = fixture(4);
        let m = message(5);
        let beacon = MessagePoint::new(&m);
        let finality =
            finality_point(&finality_message(&ChainId::new("verifier").unwrap(), Height(5), tcp_types::Round(0), &Digest([1; 32])));
        let sigma = crate::signature::recover_signature(f.verifier.sharing(), &f.shares.iter().map(|s| beacon.sign(s)).collect::<Vec<_>>())
            .unwrap()
            .0;
        let phi = crate::signature::recover_signature(f.verifier.sharing(), &f.shares.iter().map(|s| finality.sign(s)).collect::<Vec<_>>())
            .unwrap()
            .0;
        let group = f.verifier.group();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        assert!(group.verify_pair(&mut rng, (&beacon, &sigma), (&finality, &phi)));
        assert!(!group.verify_pair(&mut rng, (&beacon, &phi), (&finality, &sigma)));
        assert!(!group.verify_pair(&mut rng, (&beacon, &sigma), (&finality, &sigma)));
        assert!(!group.verify_pair(&mut rng, (&beacon, &phi), (&finality, &phi)));
        let delta = MessagePoint::new(&message(8)).point;
        assert!(!group.verify_pair(&mut rng, (&beacon, &(sigma + &delta)), (&finality, &phi)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The batch's verdicts are exactly those of checking each partial alone.
        #[test]
        fn batch_verdicts_match_individual_checks(faults in proptest::collection::vec(fault(), 2..10), seed in any::<u64>()) {
            let f = fixture(10);
            let m = message(7);
            let point = MessagePoint::new(&m);
            let delta = MessagePoint::new(&message(8)).point;
            let mut partials = Vec::new();
            for (i, fault) in faults.iter().enumerate() {
                let share = &f.shares[i % f.shares.len()];
                let mut partial = point.sign(share);
                match fault {
                    Fault::None => {}
                    Fault::WrongMessage => partial = MessagePoint::new(&message(9)).sign(share),
                    Fault::WrongIndex => partial.index = f.shares[(i + 1) % f.shares.len()].index,
                    Fault::CancellingPair => {
                        let mut twin = partial.clone();
                        partial.value += &delta;
                        twin.value -= &delta;
                        partials.push(twin);
                    }
                    Fault::Identity => partial.value = partial.value - &partial.value.clone(),
                }
                partials.push(partial);
            }
            let expected: Vec<bool> = partials.iter().map(|p| verify_partial(f.verifier.sharing(), &m, p)).collect();
            let got = f.verifier.verify_partials(&mut ChaCha20Rng::seed_from_u64(seed), &point, &partials);
            prop_assert_eq!(got, expected);
        }
    }
}
