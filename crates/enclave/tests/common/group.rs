//! A DKMP secret-share group dealt in the test: its public sharing, members' shares and
//! consensus keys, and their sealed answers to an enclave's key request.

use commonware_codec::Encode as _;
use commonware_cryptography::Signer as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_utils::N3f1;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use tcp_beacon::signature::PublicSharing;
use tcp_crypto::Ed25519PrivateKey;
use tcp_dkmp::{SignedKeyRequest, partial_contract_key, seal_partial};
use tcp_enclave::keys::RelayedAnswer;

pub const K: u32 = 7;

pub struct Group {
    pub sharing: PublicSharing,
    pub shares: Vec<Share>,
    pub members: Vec<Ed25519PrivateKey>,
}

pub fn group(seed: u64) -> Group {
    let (sharing, shares) =
        deal_anonymous::<MinSig, N3f1>(ChaCha20Rng::seed_from_u64(seed), Mode::NonZeroCounter, std::num::NonZeroU32::new(K).unwrap());
    let members = (0..K).map(|i| tcp_crypto::ed25519_from_secret(&[seed as u8 ^ 0x40, i as u8].repeat(16).try_into().unwrap())).collect();
    Group { sharing, shares, members }
}

pub fn master_key(sharing: &PublicSharing) -> [u8; 96] {
    tcp_beacon::signature::group_key_to_bytes(sharing.public()).try_into().unwrap()
}


/// Each member's sealed answer, as a member answers (its share's partial, sealed to the request).
pub fn answers(group: &Group, signed: &SignedKeyRequest, members: std::ops::Range<usize>) -> Vec<RelayedAnswer> {
    let mut rng = ChaCha20Rng::seed_from_u64(signed.request.nonce[0] as u64);
    members
        .map(|i| {
            let partial = partial_contract_key(&group.shares[i], &signed.request.key);
            RelayedAnswer {
                index: group.shares[i].index.get(),
                member: group.members[i].public_key().encode().as_ref().try_into().unwrap(),
                sealed: seal_partial(&mut rng, &signed.request, &partial, &group.members[i]).unwrap(),
            }
        })
        .collect()
}

