//! A precommit's partial signature as it travels: a point of the curve E(Fp) in the ZCash
//! uncompressed encoding (96 bytes), checked on receipt only for being canonical, on the curve
//! and not the identity — not for membership in G1.
//!
//! Why: a node checks about 2·t partials per height. Decompressing one (a square root) and
//! checking its subgroup membership costs about a tenth of a pairing each, which at n = 64 was
//! more than the whole batch check (issue 17 measured 8.8 pairings of decoding against 3.0 of
//! checking). Neither is needed for the check itself:
//!
//! * E(Fp) = G1 ⊕ H with |H| = h₁ (the G1 cofactor) coprime to r, and the pairing is trivial
//!   on H: e(S + T, Q) = e(S, Q) for T ∈ H (the second argument of the reduced Tate pairing
//!   lives in E/rE, and H ⊂ rE). So a partial S + T passes the batch check exactly when its G1
//!   component S is the right partial; the verdict does not depend on T, on the batch it is in
//!   or on the verifier's randomizers (every node agrees; a test shows the pairing identity).
//!   Only the signer can add T: the precommit carrying it is signed with its ed25519 key.
//! * T would matter where partials are combined: σ_h and φ_h must be the unique group
//!   signature. [`PartialPoint::to_partial`] hands interpolation the G1 component only —
//!   commonware's decoding checks membership, and a point outside G1 is first projected onto
//!   it by the scalar c = h₁·(h₁⁻¹ mod r), which is 1 mod r and 0 mod h₁: [c](S + T) = S.
//!   Only the proposer of the next height interpolates, so the membership checks it needs are
//!   one node's in n.

use crate::signature::Partial;
use blst::{
    BLST_ERROR, blst_p1, blst_p1_affine, blst_p1_affine_compress, blst_p1_affine_is_equal, blst_p1_affine_is_inf, blst_p1_affine_serialize,
    blst_p1_deserialize, blst_p1_from_affine, blst_p1_mult, blst_p1_to_affine,
};
use commonware_codec::DecodeExt as _;
use commonware_cryptography::bls12381::primitives::group::G1;
use commonware_utils::Participant;

/// Bytes of one partial on the wire (ZCash uncompressed G1 encoding).
pub const PARTIAL_POINT_BYTES: usize = 96;

/// c = h₁·(h₁⁻¹ mod r) for BLS12-381 (little-endian, 381 bits): [c] is the projection of E(Fp)
/// onto G1. h₁ = 0x396c8c005555e1568c00aaab0000aaab and r from the curve's definition
/// (draft-irtf-cfrg-pairing-friendly-curves, §4.2.1); c computed from them.
const G1_PROJECTION: [u8; 48] = [
    169, 170, 254, 255, 2, 0, 0, 232, 1, 236, 92, 157, 250, 19, 111, 199, 173, 119, 189, 245, 180, 110, 5, 176, 198, 154, 62, 156, 111,
    181, 108, 75, 53, 16, 94, 132, 86, 217, 232, 140, 153, 230, 127, 57, 234, 17, 1, 26,
];

/// A partial's point: on the curve, not the identity, possibly outside G1 (see the module).
#[derive(Clone, Copy, Debug)]
pub struct PartialPoint(blst_p1_affine);

impl PartialEq for PartialPoint {
    fn eq(&self, other: &Self) -> bool {
        // SAFETY: valid pointers to affine points.
        unsafe { blst_p1_affine_is_equal(&self.0, &other.0) }
    }
}

impl Eq for PartialPoint {}

impl PartialPoint {
    /// The point of a partial this node made or decoded (in G1).
    pub fn of(partial: &Partial) -> PartialPoint {
        PartialPoint(G1::batch_to_affine(&[partial.value])[0])
    }

    /// Decode: exactly [`PARTIAL_POINT_BYTES`], the uncompressed form (no flag bits), field
    /// elements below p (one encoding per point), on the curve, not the identity.
    pub fn decode(bytes: &[u8]) -> Option<PartialPoint> {
        if bytes.len() != PARTIAL_POINT_BYTES || bytes[0] & 0xe0 != 0 {
            return None;
        }
        let mut point = blst_p1_affine::default();
        // SAFETY: `bytes` holds 96 bytes, as blst reads for an uncompressed point (no flag).
        let decoded = unsafe { blst_p1_deserialize(&mut point, bytes.as_ptr()) };
        // SAFETY: valid pointer.
        (decoded == BLST_ERROR::BLST_SUCCESS && !unsafe { blst_p1_affine_is_inf(&point) }).then_some(PartialPoint(point))
    }

    pub fn to_bytes(&self) -> [u8; PARTIAL_POINT_BYTES] {
        let mut out = [0u8; PARTIAL_POINT_BYTES];
        // SAFETY: `out` has the 96 bytes blst writes.
        unsafe { blst_p1_affine_serialize(out.as_mut_ptr(), &self.0) };
        out
    }

    pub(crate) fn affine(&self) -> &blst_p1_affine {
        &self.0
    }

    /// The partial for interpolation: this point's G1 component, under `index` (`None` if that
    /// is the identity, which no verified partial's is).
    pub fn to_partial(&self, index: Participant) -> Option<Partial> {
        let in_g1 = |point: &blst_p1_affine| {
            let mut compressed = [0u8; 48];
            // SAFETY: `compressed` has the 48 bytes blst writes.
            unsafe { blst_p1_affine_compress(compressed.as_mut_ptr(), point) };
            // Commonware's decoding checks membership in G1.
            G1::decode(commonware_codec::Copying(&compressed[..])).ok()
        };
        let value = in_g1(&self.0).or_else(|| in_g1(&self.project()))?;
        Some(Partial { index, value })
    }

    /// [c]P: the G1 component. A generic windowed multiplication (more than 256 bits), not
    /// blst's GLV path, which assumes its input already lies in G1.
    fn project(&self) -> blst_p1_affine {
        let mut point = blst_p1::default();
        let mut projected = blst_p1::default();
        let mut out = blst_p1_affine::default();
        // SAFETY: valid pointers; the scalar has the 48 bytes (384 bits) passed.
        unsafe {
            blst_p1_from_affine(&mut point, &self.0);
            blst_p1_mult(&mut projected, &point, G1_PROJECTION.as_ptr(), 8 * G1_PROJECTION.len());
            blst_p1_to_affine(&mut out, &projected);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use blst::{
        blst_fp12, blst_p1_add_or_double, blst_p1_affine_generator, blst_p1_affine_in_g1, blst_p1_uncompress, blst_p2_affine_generator,
    };

    /// A point of E(Fp) of order dividing h₁ (outside G1, not the identity): [r]P for a curve
    /// point P found by decompressing small x coordinates.
    pub(crate) fn torsion_point() -> PartialPoint {
        let r: [u8; 32] = [
            1, 0, 0, 0, 255, 255, 255, 255, 254, 91, 254, 255, 2, 164, 189, 83, 5, 216, 161, 9, 8, 216, 57, 51, 72, 125, 157, 41, 83, 167,
            237, 115,
        ];
        for x in 1u8..=255 {
            let mut compressed = [0u8; 48];
            compressed[0] = 0x80;
            compressed[47] = x;
            let mut p = blst_p1_affine::default();
            // SAFETY: valid pointers; 48 bytes.
            unsafe {
                if blst_p1_uncompress(&mut p, compressed.as_ptr()) != BLST_ERROR::BLST_SUCCESS || blst_p1_affine_in_g1(&p) {
                    continue;
                }
                let mut scalar = [0u8; 48];
                scalar[..32].copy_from_slice(&r);
                let (mut jacobian, mut t) = (blst_p1::default(), blst_p1::default());
                blst_p1_from_affine(&mut jacobian, &p);
                blst_p1_mult(&mut t, &jacobian, scalar.as_ptr(), 384);
                let mut out = blst_p1_affine::default();
                blst_p1_to_affine(&mut out, &t);
                assert!(!blst_p1_affine_is_inf(&out) && !blst_p1_affine_in_g1(&out));
                return PartialPoint(out);
            }
        }
        unreachable!("half of all x give a curve point, almost none in G1")
    }

    /// S + T as affine.
    pub(crate) fn add(a: &PartialPoint, b: &PartialPoint) -> PartialPoint {
        let (mut x, mut y, mut sum, mut out) = (blst_p1::default(), blst_p1::default(), blst_p1::default(), blst_p1_affine::default());
        // SAFETY: valid pointers.
        unsafe {
            blst_p1_from_affine(&mut x, &a.0);
            blst_p1_from_affine(&mut y, &b.0);
            blst_p1_add_or_double(&mut sum, &x, &y);
            blst_p1_to_affine(&mut out, &sum);
        }
        PartialPoint(out)
    }

    #[test]
    fn the_pairing_ignores_torsion_and_the_projection_removes_it() {
        // SAFETY: static generators.
        let (g1, g2) = unsafe { (PartialPoint(*blst_p1_affine_generator()), *blst_p2_affine_generator()) };
        let torsion = torsion_point();
        let mixed = add(&g1, &torsion);
        let pairing = |p: &PartialPoint| blst_fp12::miller_loop(&g2, &p.0).final_exp();
        assert!(pairing(&mixed) == pairing(&g1), "e(S + T, Q) = e(S, Q)");
        assert_eq!(PartialPoint(mixed.project()), g1);
        assert_eq!(PartialPoint(g1.project()), g1);
        assert_eq!(PartialPoint::of(&mixed.to_partial(Participant::new(0)).unwrap()), g1);
        assert!(torsion.to_partial(Participant::new(0)).is_none(), "its G1 component is the identity");
    }

    #[test]
    fn decoding_takes_one_encoding_per_point() {
        // SAFETY: static generator.
        let g1 = unsafe { PartialPoint(*blst_p1_affine_generator()) };
        let bytes = g1.to_bytes();
        assert_eq!(PartialPoint::decode(&bytes), Some(g1));
        // Compressed, infinity or sort flags; short, long; x ≥ p; off the curve: refused.
        for flag in [0x80u8, 0x40, 0x20] {
            let mut flagged = bytes;
            flagged[0] |= flag;
            assert_eq!(PartialPoint::decode(&flagged), None);
        }
        assert_eq!(PartialPoint::decode(&bytes[..95]), None);
        assert_eq!(PartialPoint::decode(&[&bytes[..], &[0]].concat()), None);
        let mut big = bytes;
        big[..48].copy_from_slice(&[0x1f; 48]);
        assert_eq!(PartialPoint::decode(&big), None);
        let mut off = bytes;
        off[95] ^= 1;
        assert_eq!(PartialPoint::decode(&off), None);
        assert_eq!(PartialPoint::decode(&[0u8; 96]), None, "(0, 0) is not on the curve; the identity is refused");
        // A point outside G1 decodes (its check is the pairing's).
        let torsion = torsion_point();
        assert_eq!(PartialPoint::decode(&torsion.to_bytes()), Some(torsion));
    }
}
