//! φ_h: the group's threshold signature on (chain id, h, round, header id) under the namespace
//! `tcp/finality` (DESIGN §5.1). q partials on (h, r, id) exist only if a quorum precommitted
//! the header in round r, so φ_h proves the block final to anyone holding the group key, with
//! one pairing check. The round is in the message so partials of different rounds never
//! combine.
//!
//! The same shares sign σ_h and φ_h; a non-nil precommit carries both partials
//! ([`crate::BeaconExtension`]) and they are checked in one batch
//! ([`crate::SharingVerifier::verify_share_pairs`]).

use crate::BeaconError;
use crate::signature::{GroupKey, SIGNATURE_BYTES, fmt_signature, signature_from_bytes, signature_to_bytes};
use crate::verifier::{GroupKeyVerifier, MessagePoint};
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use std::fmt;
use tcp_types::{ChainId, Digest, Height, Round};

/// The namespace of every finality signature (partials and φ).
pub const FINALITY_NAMESPACE: &[u8] = b"tcp/finality";

/// The bytes φ_h signs: chain id (u16 length ‖ UTF-8), height (u64), round (u32) and header id
/// (32 bytes), all big-endian. The Solidity verifier (`crates/bridge`) builds the same bytes.
pub fn finality_message(chain_id: &ChainId, height: Height, round: Round, header_id: &Digest) -> Vec<u8> {
    let chain = chain_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + chain.len() + 8 + 4 + 32);
    out.extend_from_slice(&(chain.len() as u16).to_be_bytes());
    out.extend_from_slice(chain);
    out.extend_from_slice(&height.0.to_be_bytes());
    out.extend_from_slice(&round.0.to_be_bytes());
    out.extend_from_slice(&header_id.0);
    out
}

/// φ_h, the recovered finality signature of one height (48-byte compressed G1 point).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FinalitySignature(pub <MinSig as Variant>::Signature);

impl FinalitySignature {
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        signature_to_bytes(&self.0)
    }

    /// Decode and check the point is in the group (never panics on input).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BeaconError> {
        signature_from_bytes(bytes).map(FinalitySignature)
    }
}

impl fmt::Debug for FinalitySignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_signature(f, "φ", &self.0)
    }
}

/// A block's finality as a light client receives it: the commit round and φ of that round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finality {
    pub round: Round,
    pub signature: FinalitySignature,
}

impl Finality {
    pub const BYTES: usize = 4 + SIGNATURE_BYTES;

    /// round u32 ‖ φ 48.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..4].copy_from_slice(&self.round.0.to_be_bytes());
        out[4..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BeaconError> {
        if bytes.len() != Self::BYTES {
            return Err(BeaconError::MalformedSignature);
        }
        let round = Round(u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")));
        Ok(Finality { round, signature: FinalitySignature::from_bytes(&bytes[4..])? })
    }
}

/// H(m) of a finality message under `tcp/finality`.
pub fn finality_point(message: &[u8]) -> MessagePoint {
    MessagePoint::with_namespace(FINALITY_NAMESPACE, message)
}

/// The light client's check: φ on (chain id, h, round, header id) against the group key alone.
/// One pairing check (two Miller loops, one final exponentiation) after hashing to the curve.
pub fn verify_finality(group_key: &GroupKey, chain_id: &ChainId, height: Height, header_id: &Digest, finality: &Finality) -> bool {
    let message = finality_message(chain_id, height, finality.round, header_id);
    GroupKeyVerifier::new(*group_key).verify_point(&finality_point(&message), &finality.signature.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ceremony;
    use crate::dkg::run_local_ceremony;
    use crate::signature::recover_signature;
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::bls12381::primitives::ops;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use tcp_crypto::insecure_ed25519_from_seed;

    #[test]
    fn partials_of_two_rounds_never_combine() {
        let keys: Vec<_> = (0..4).map(insecure_ed25519_from_seed).collect();
        let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
        let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let sharing = output.public();
        let chain = ChainId::new("finality").unwrap();
        let id = Digest([7; 32]);
        let (h, r0, r1) = (Height(9), Round(0), Round(1));
        let m0 = finality_point(&finality_message(&chain, h, r0, &id));
        let m1 = finality_point(&finality_message(&chain, h, r1, &id));
        let t = sharing.required() as usize;
        assert_eq!(t, 3);
        // A quorum of one round recovers a φ that verifies for that round only.
        let round0: Vec<_> = shares.iter().take(t).map(|(_, s)| m0.sign(s)).collect();
        let phi0 = FinalitySignature(recover_signature(sharing, &round0).unwrap().0);
        let key = sharing.public();
        assert!(verify_finality(key, &chain, h, &id, &Finality { round: r0, signature: phi0 }));
        assert!(!verify_finality(key, &chain, h, &id, &Finality { round: r1, signature: phi0 }));
        // Two partials of round 0 and one of round 1 on the same header: whatever is
        // interpolated verifies for neither round.
        let mixed = vec![m0.sign(&shares[0].1), m0.sign(&shares[1].1), m1.sign(&shares[2].1)];
        let phi = FinalitySignature(recover_signature(sharing, &mixed).unwrap().0);
        for round in [r0, r1] {
            assert!(!verify_finality(key, &chain, h, &id, &Finality { round, signature: phi }));
        }
        // Another chain, height or header: refused too; commonware agrees on the good one.
        assert!(!verify_finality(key, &ChainId::new("other").unwrap(), h, &id, &Finality { round: r0, signature: phi0 }));
        assert!(!verify_finality(key, &chain, Height(10), &id, &Finality { round: r0, signature: phi0 }));
        assert!(!verify_finality(key, &chain, h, &Digest([8; 32]), &Finality { round: r0, signature: phi0 }));
        let message = finality_message(&chain, h, r0, &id);
        assert!(ops::verify_message::<MinSig>(key, FINALITY_NAMESPACE, &message, &phi0.0).is_ok());
    }

    #[test]
    fn finality_bytes_round_trip_and_refuse_garbage() {
        assert!(Finality::from_bytes(&[0u8; Finality::BYTES]).is_err());
        assert!(Finality::from_bytes(&[0u8; 3]).is_err());
    }
}
