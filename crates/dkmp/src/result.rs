//! Results that open only after the execution commits (DESIGN §5.4, §5.5 "Result keys for
//! clients"; issue 20, item 4). The enclave encrypts a result by identity-based encryption to
//! the identity (chain id, cid, request id) under the master public key — Boneh–Franklin with
//! the Fujisaki–Okamoto transform, commonware's `bls12381::tle` — so only the group's threshold
//! signature on that identity, namespace `tcp/dkmp/result` (never a contract key's), opens it.
//! The group's members give their partials of it only for a request committed on their own
//! state, sealed to the result key that request names. A host that runs the enclave off chain,
//! a compute node that is its own client: nobody opens a result before the chain holds it.
//!
//! A sealed result is `TLE ciphertext of a fresh 32-byte key (160 bytes) ‖ nonce (12) ‖
//! ChaCha20-Poly1305 of the plaintext under that key` (the identity as associated data).

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::bls12381::primitives::group::{G1, Share};
use commonware_cryptography::bls12381::primitives::ops::threshold;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::bls12381::tle;
use rand_core::CryptoRng;
use tcp_beacon::signature::{Partial, PublicSharing};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};
use tcp_types::{ChainId, Digest};
use zeroize::Zeroizing;

use crate::derivation::DerivationError;
use crate::request::AnswerError;

/// The namespace result identities are signed under.
pub const RESULT_NAMESPACE: &[u8] = b"tcp/dkmp/result";
/// TLE ciphertext (G2 point, two blocks), nonce, tag.
pub const SEALED_OVERHEAD: usize = 96 + 32 + 32 + 12 + 16;

/// The identity a result is encrypted to: `chain id ‖ 0x00 ‖ cid ‖ request id ‖ result hash`.
/// The result hash commits to a fresh random blinding, so every run of a request has its own
/// identity: the key released for the run that committed opens that run only, not the runs a
/// host made off chain of the same request (on other states, or to use data without paying).
pub fn result_identity(chain: &ChainId, cid: &[u8; 32], request_id: &[u8; 32], result_hash: &[u8; 32]) -> Vec<u8> {
    [chain.as_str().as_bytes(), &[0], cid, request_id, result_hash].concat()
}

/// What a member's answer to a result-key request of the group of `epoch` is bound to (sealed
/// and signed with it): a member of two groups answers each with its share of that group.
pub fn result_request_digest(chain: &ChainId, request_id: &[u8; 32], epoch: u64) -> Digest {
    tcp_crypto::sha256(&[b"tcp/dkmp/result-key", chain.as_str().as_bytes(), &[0], request_id, &epoch.to_be_bytes()])
}

/// A member's partial of the identity's key.
pub fn partial_result_key(share: &Share, identity: &[u8]) -> Partial {
    threshold::sign_message::<MinSig>(share, RESULT_NAMESPACE, identity)
}

/// A member's answer: its partial, signed by its consensus key, sealed to the committed
/// request's result key.
pub fn seal_result_answer(
    rng: &mut impl CryptoRng,
    chain: &ChainId,
    (request_id, epoch): (&[u8; 32], u64),
    result_key: &[u8; 32],
    partial: &Partial,
    member: &Ed25519PrivateKey,
) -> Option<Vec<u8>> {
    crate::request::seal_answer(rng, chain, &result_request_digest(chain, request_id, epoch), result_key, partial, member)
}

/// The client's side: open `member`'s answer with the result key's secret.
pub fn open_result_answer(
    result_secret: &[u8; 32],
    chain: &ChainId,
    (request_id, epoch): (&[u8; 32], u64),
    sealed: &[u8],
    member: &Ed25519PublicKey,
) -> Result<Partial, AnswerError> {
    crate::request::open_answer(result_secret, chain, &result_request_digest(chain, request_id, epoch), sealed, member)
}

/// The group's signature on a result identity: what opens the result. Wiped on drop.
pub struct ResultKey(G1);

impl Drop for ResultKey {
    fn drop(&mut self) {
        self.0 = <G1 as commonware_math::algebra::Additive>::zero();
        std::hint::black_box(&self.0);
    }
}

/// Recover the identity's key from members' answers (verified in a batch, bad members named),
/// checked against the master public key of `sharing`.
pub fn recover_result_key(
    rng: &mut impl CryptoRng,
    sharing: &PublicSharing,
    identity: &[u8],
    answers: &[(u32, Partial)],
) -> Result<(ResultKey, Vec<u32>), DerivationError> {
    let (signature, bad) = crate::derivation::recover_group_signature(rng, sharing, RESULT_NAMESPACE, identity, answers)?;
    Ok((ResultKey(signature), bad))
}

/// Seal `plaintext` to `identity` under the master public key (96 bytes, G2).
pub fn seal_to_identity(rng: &mut impl CryptoRng, master_key: &[u8; 96], identity: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let public = tcp_beacon::signature::group_key_from_bytes(master_key).map_err(|_| "the master public key is not a point of G2")?;
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(key.as_mut());
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let locked = tle::encrypt::<_, MinSig>(rng, public, (RESULT_NAMESPACE, identity), &tle::Block::new(*key)).map_err(|e| e.to_string())?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let ciphertext =
        cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: identity }).map_err(|_| "sealing failed".to_string())?;
    Ok([locked.encode().as_ref(), &nonce, &ciphertext].concat())
}

/// Open what [`seal_to_identity`] sealed, with the identity's key.
pub fn open_with_result_key(key: &ResultKey, identity: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    const LOCKED: usize = 96 + 32 + 32;
    if sealed.len() < SEALED_OVERHEAD {
        return Err("malformed sealed result".into());
    }
    let locked = tle::Ciphertext::<MinSig>::decode(commonware_codec::Copying(&sealed[..LOCKED])).map_err(|_| "malformed sealed result")?;
    let block = tle::decrypt::<MinSig>(&key.0, &locked).ok_or("the result key does not open this result")?;
    let inner = Zeroizing::new(<[u8; 32]>::try_from(block.as_ref()).map_err(|_| "malformed key block")?);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(inner.as_ref()));
    cipher
        .decrypt(Nonce::from_slice(&sealed[LOCKED..LOCKED + 12]), Payload { msg: &sealed[LOCKED + 12..], aad: identity })
        .map(Zeroizing::new)
        .map_err(|_| "the result does not open: altered, or of another identity".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use commonware_utils::N3f1;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    fn chain() -> ChainId {
        ChainId::new("result-test").unwrap()
    }

    #[test]
    fn a_result_opens_with_the_groups_key_of_its_identity_only_and_t_minus_1_partials_give_none() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (sharing, shares) = deal_anonymous::<MinSig, N3f1>(ChaCha20Rng::seed_from_u64(1), Mode::NonZeroCounter, std::num::NonZeroU32::new(7).unwrap());
        let master: [u8; 96] = tcp_beacon::signature::group_key_to_bytes(sharing.public()).try_into().unwrap();
        let identity = result_identity(&chain(), &[1; 32], &[2; 32], &[6; 32]);
        let sealed = seal_to_identity(&mut rng, &master, &identity, b"score 712").unwrap();
        assert_eq!(sealed.len(), SEALED_OVERHEAD + 9);

        // Members answer, sealed to the client's result key; the client opens and recovers.
        let (secret, public) = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::derive_keypair(&[9; 32]);
        let secret: [u8; 32] = hpke::Serializable::to_bytes(&secret).into();
        let public: [u8; 32] = hpke::Serializable::to_bytes(&public).into();
        let members: Vec<_> = (0..7u8).map(|i| tcp_crypto::ed25519_from_secret(&[i + 1; 32])).collect();
        let answers: Vec<(u32, Partial)> = shares
            .iter()
            .zip(&members)
            .map(|(share, member)| {
                let sealed = seal_result_answer(&mut rng, &chain(), (&[2; 32], 4), &public, &partial_result_key(share, &identity), member).unwrap();
                (share.index.get(), open_result_answer(&secret, &chain(), (&[2; 32], 4), &sealed, &member.public_key()).unwrap())
            })
            .collect();
        let (key, bad) = recover_result_key(&mut rng, &sharing, &identity, &answers[..5]).unwrap();
        assert!(bad.is_empty());
        assert_eq!(open_with_result_key(&key, &identity, &sealed).unwrap().as_slice(), b"score 712");

        // Another request's identity key does not open it, nor another run's of the same request
        // (another result hash); t − 1 partials recover nothing.
        let other_run = result_identity(&chain(), &[1; 32], &[2; 32], &[7; 32]);
        let run_answers: Vec<_> = shares.iter().map(|s| (s.index.get(), partial_result_key(s, &other_run))).collect();
        let (run_key, _) = recover_result_key(&mut rng, &sharing, &other_run, &run_answers).unwrap();
        assert!(open_with_result_key(&run_key, &other_run, &sealed).is_err());
        let other = result_identity(&chain(), &[1; 32], &[3; 32], &[6; 32]);
        let other_answers: Vec<_> = shares.iter().map(|s| (s.index.get(), partial_result_key(s, &other))).collect();
        let (other_key, _) = recover_result_key(&mut rng, &sharing, &other, &other_answers).unwrap();
        assert!(open_with_result_key(&other_key, &identity, &sealed).is_err());
        assert!(matches!(recover_result_key(&mut rng, &sharing, &identity, &answers[..4]), Err(DerivationError::NotEnoughPartials { .. })));
        // An answer opens only with the result key it was sealed to, for its request.
        let sealed_answer = seal_result_answer(&mut rng, &chain(), (&[2; 32], 4), &public, &answers[0].1, &members[0]).unwrap();
        assert!(open_result_answer(&secret, &chain(), (&[3; 32], 4), &sealed_answer, &members[0].public_key()).is_err());
        assert!(open_result_answer(&secret, &chain(), (&[2; 32], 5), &sealed_answer, &members[0].public_key()).is_err(), "another epoch's group");
        // A contract key's partial (another namespace) is not a result key's.
        let contract_partials: Vec<_> = shares
            .iter()
            .map(|s| (s.index.get(), threshold::sign_message::<MinSig>(s, crate::derivation::CONTRACT_KEY_NAMESPACE, &identity)))
            .collect();
        let (_, bad) = recover_result_key(&mut rng, &sharing, &identity, &[&contract_partials[..2], &answers[2..7]].concat()).unwrap();
        assert_eq!(bad.len(), 2, "partials of another namespace are bad partials");
    }
}
