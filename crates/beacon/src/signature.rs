//! σ_h: the group's threshold signature on (chain id, h, σ_{h-1}) under the namespace
//! `tcp/beacon`, and R_h = SHA-256(σ_h).
//!
//! We use the `MinSig` variant: signatures (and so partials in precommits and σ in blocks) are
//! 48-byte G1 points, the group key a 96-byte G2 point. Verifying σ against the group key is one
//! pairing check (a product of two Miller loops and one final exponentiation).

use crate::BeaconError;
use commonware_codec::{DecodeExt, Encode, FixedSize, Read, ReadExt, Write};
use commonware_cryptography::bls12381::primitives::{
    group::Share,
    ops::threshold,
    sharing::Sharing,
    variant::{MinSig, PartialSignature, Variant},
};
use commonware_parallel::Sequential;
use commonware_utils::iter::NonEmpty;
use rand_core::CryptoRng;
use std::fmt;
use tcp_crypto::sha256;
use tcp_types::{ChainId, Digest, Height};

/// The namespace of every beacon signature (partials and σ).
pub const BEACON_NAMESPACE: &[u8] = b"tcp/beacon";

/// The pairing-friendly variant the chain uses, fixed for its lifetime.
pub type BeaconVariant = MinSig;
/// The group public key every σ verifies against; reshares never change it.
pub type GroupKey = <MinSig as Variant>::Public;
/// A validator's partial signature on σ_h, carried in its non-nil precommit.
pub type Partial = PartialSignature<MinSig>;
/// The public sharing of the group key: partial verification needs it.
pub type PublicSharing = Sharing<MinSig>;

pub const SIGNATURE_BYTES: usize = <<MinSig as Variant>::Signature as FixedSize>::SIZE;
/// Upper bound on an encoded partial: a varint share index (≤ 5 bytes) and the signature.
pub const MAX_PARTIAL_BYTES: usize = 5 + SIGNATURE_BYTES;
pub const GROUP_KEY_BYTES: usize = <GroupKey as FixedSize>::SIZE;

/// A group signature's 48-byte compressed encoding (σ_h or φ_h).
pub(crate) fn signature_to_bytes(signature: &<MinSig as Variant>::Signature) -> [u8; SIGNATURE_BYTES] {
    let mut out = [0u8; SIGNATURE_BYTES];
    out.copy_from_slice(&signature.encode());
    out
}

/// Decode a group signature and check the point is in the group (never panics on input).
pub(crate) fn signature_from_bytes(bytes: &[u8]) -> Result<<MinSig as Variant>::Signature, BeaconError> {
    <MinSig as Variant>::Signature::decode(commonware_codec::Copying(bytes)).map_err(|_| BeaconError::MalformedSignature)
}

/// A short form for logs: the symbol and the first six bytes.
pub(crate) fn fmt_signature(f: &mut fmt::Formatter<'_>, symbol: &str, signature: &<MinSig as Variant>::Signature) -> fmt::Result {
    let bytes = signature_to_bytes(signature);
    write!(f, "{symbol}({})", bytes[..6].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// σ_h, the recovered group signature of one height.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BeaconSignature(pub <MinSig as Variant>::Signature);

impl BeaconSignature {
    /// R_h = SHA-256(σ_h).
    pub fn randomness(&self) -> Digest {
        sha256(&[&self.0.encode()])
    }

    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        signature_to_bytes(&self.0)
    }

    /// Decode and check the point is in the group (never panics on input).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BeaconError> {
        signature_from_bytes(bytes).map(BeaconSignature)
    }
}

impl fmt::Debug for BeaconSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_signature(f, "σ", &self.0)
    }
}

impl Write for BeaconSignature {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.0.write(buf);
    }
}

impl FixedSize for BeaconSignature {
    const SIZE: usize = SIGNATURE_BYTES;
}

impl Read for BeaconSignature {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        Ok(BeaconSignature(ReadExt::read(buf)?))
    }
}

/// What σ_h chains on: σ_{h-1}, or for the first beacon height a seed fixed when the beacon
/// started (so the chain of signatures has a well-defined start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Previous {
    Seed(Digest),
    Signature(BeaconSignature),
}

impl Previous {
    /// The randomness this link stands for (R of the previous height).
    pub fn randomness(&self) -> Digest {
        match self {
            Previous::Seed(seed) => *seed,
            Previous::Signature(sigma) => sigma.randomness(),
        }
    }
}

/// The bytes σ_h signs: chain id, height and the previous link, each unambiguous.
pub fn beacon_message(chain_id: &ChainId, height: Height, previous: &Previous) -> Vec<u8> {
    let chain = chain_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + chain.len() + 8 + 1 + SIGNATURE_BYTES);
    out.extend_from_slice(&(chain.len() as u16).to_be_bytes());
    out.extend_from_slice(chain);
    out.extend_from_slice(&height.0.to_be_bytes());
    match previous {
        Previous::Seed(seed) => {
            out.push(0);
            out.extend_from_slice(&seed.0);
        }
        Previous::Signature(sigma) => {
            out.push(1);
            out.extend_from_slice(&sigma.to_bytes());
        }
    }
    out
}

/// The local validator's partial for σ_h. Deterministic (BLS), so a replayed precommit carries
/// the identical partial.
pub fn sign_partial(share: &Share, message: &[u8]) -> Partial {
    crate::verifier::MessagePoint::new(message).sign(share)
}

/// Check one partial against the share commitment of its index (one pairing check).
pub fn verify_partial(sharing: &PublicSharing, message: &[u8], partial: &Partial) -> bool {
    threshold::verify_message::<MinSig>(sharing, BEACON_NAMESPACE, message, partial).is_ok()
}

/// Check many partials on the same message at once with commonware's batch verifier: fresh
/// 128-bit randomizers, one pairing check for the whole batch; on failure it bisects to find the
/// bad ones. Returns, for each input, whether it verified. A node verifying every height uses
/// [`crate::SharingVerifier`], which precomputes per epoch and falls back to this.
pub fn verify_partials(rng: &mut impl CryptoRng, sharing: &PublicSharing, message: &[u8], partials: &[Partial]) -> Vec<bool> {
    verify_partials_in(rng, sharing, BEACON_NAMESPACE, message, partials)
}

/// [`verify_partials`] under any namespace (`tcp/beacon` or `tcp/finality`).
pub fn verify_partials_in(
    rng: &mut impl CryptoRng,
    sharing: &PublicSharing,
    namespace: &[u8],
    message: &[u8],
    partials: &[Partial],
) -> Vec<bool> {
    let Some(entries) = NonEmpty::try_new(partials.iter()) else { return Vec::new() };
    match threshold::batch_verify_same_message::<_, MinSig, _>(rng, sharing, namespace, message, entries, &Sequential) {
        Ok(()) => vec![true; partials.len()],
        Err(invalid) => partials.iter().map(|p| !invalid.iter().any(|bad| std::ptr::eq(*bad, p))).collect(),
    }
}

/// Interpolate σ_h from at least `sharing.required()` partials with distinct indices. The
/// partials must have been verified: recovery from unverified ones can yield garbage.
pub fn recover_signature<'a>(
    sharing: &PublicSharing,
    partials: impl IntoIterator<Item = &'a Partial>,
) -> Result<BeaconSignature, BeaconError> {
    threshold::recover::<MinSig, _>(sharing, partials, &Sequential).map(BeaconSignature).map_err(|_| BeaconError::NotEnoughPartials)
}

/// Light verification: σ_h against the group key alone, one pairing check. This is all a light
/// client needs to follow the beacon.
pub fn verify_beacon(group_key: &GroupKey, message: &[u8], sigma: &BeaconSignature) -> bool {
    crate::verifier::GroupKeyVerifier::new(*group_key).verify(&crate::verifier::MessagePoint::new(message), sigma)
}

/// Decode a group key (96 bytes, checked to be in G2).
pub fn group_key_from_bytes(bytes: &[u8]) -> Result<GroupKey, BeaconError> {
    GroupKey::decode(commonware_codec::Copying(bytes)).map_err(|_| BeaconError::MalformedGroupKey)
}

pub fn group_key_to_bytes(key: &GroupKey) -> Vec<u8> {
    key.encode().to_vec()
}

/// Encode a partial as the bytes a precommit's extension carries.
pub fn partial_to_bytes(partial: &Partial) -> Vec<u8> {
    partial.encode().to_vec()
}

/// Decode a precommit extension as a partial (bounded, no trailing bytes, point in the group).
pub fn partial_from_bytes(bytes: &[u8]) -> Result<Partial, BeaconError> {
    if bytes.len() > MAX_PARTIAL_BYTES {
        return Err(BeaconError::MalformedPartial);
    }
    Partial::decode(commonware_codec::Copying(bytes)).map_err(|_| BeaconError::MalformedPartial)
}
