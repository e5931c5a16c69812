//! Contract keys (DESIGN §5.5, "Derivation"): the key of contract `cid` at generation `g` is
//! derived, never stored. s = the SSSG's threshold BLS signature under the master secret M, in
//! namespace `tcp/dkmp/contract-key`, on (chain id, cid, g); key material =
//! HKDF-SHA256(s, info = chain id ‖ cid ‖ g); the contract's X25519 key pair is RFC 9180
//! `DeriveKeyPair` of it, and its state key another HKDF label.
//!
//! Each member signs with its share ([`partial_contract_key`]); the enclave that asked
//! verifies the partials in one batch (bisecting to name any member whose partial is bad),
//! recovers s from t good ones, checks s against the master public key, and derives
//! ([`recover_contract_key`], [`ContractKeys::derive`]). M is never rebuilt: s is one signature,
//! which says nothing about M or about any other contract's key.

use commonware_cryptography::bls12381::primitives::group::{G1, Share};
use commonware_cryptography::bls12381::primitives::ops::{self, threshold};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_parallel::Sequential;
use hpke::Kem as _;
use rand_core::CryptoRng;
use tcp_beacon::signature::{Partial, PublicSharing, verify_partials_in};
use tcp_types::ChainId;
use zeroize::Zeroizing;

/// The namespace contract keys are signed under; never one a result identity is encrypted to
/// (`tcp/dkmp/result`), so a result key is never a contract key.
pub const CONTRACT_KEY_NAMESPACE: &[u8] = b"tcp/dkmp/contract-key";
/// The length of s (a compressed G1 point: MinSig, as the beacon).
pub const SEED_LEN: usize = 48;

/// Which key: a contract of a chain at a generation (rotation bumps it; old generations stay
/// derivable for old data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractKeyId {
    pub chain_id: ChainId,
    pub cid: [u8; 32],
    pub generation: u64,
}

impl ContractKeyId {
    /// What the group signs: `len(chain id) u8 ‖ chain id ‖ cid ‖ generation u64 BE`, one
    /// length per chain (chain ids are at most 64 bytes).
    pub fn message(&self) -> Vec<u8> {
        let chain = self.chain_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(1 + chain.len() + 32 + 8);
        out.push(u8::try_from(chain.len()).expect("chain ids are short"));
        out.extend_from_slice(chain);
        out.extend_from_slice(&self.cid);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out
    }
}

/// A contract's id: SHA-256(`tcp/contract/id` ‖ code hash ‖ deployer ‖ deployer's nonce as u64
/// BE) — what a deploy's key request names and every member recomputes (DESIGN §5.5, §5.6).
pub fn contract_id(code_hash: &[u8; 32], deployer: &[u8; 20], nonce: u64) -> [u8; 32] {
    tcp_crypto::sha256(&[b"tcp/contract/id".as_slice(), code_hash, deployer, &nonce.to_be_bytes()]).0
}

/// A member's answer to a key request: its partial signature on the key's message.
pub fn partial_contract_key(share: &Share, id: &ContractKeyId) -> Partial {
    threshold::sign_message::<MinSig>(share, CONTRACT_KEY_NAMESPACE, &id.message())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DerivationError {
    #[error("{valid} valid partials of the {required} needed (members with bad partials: {bad:?})")]
    NotEnoughPartials { valid: usize, required: u32, bad: Vec<u32> },
    #[error("the recovered signature does not verify under the master public key")]
    RecoveredKeyInvalid,
}

/// s: the group's signature on a key's message, the seed its keys are derived from. Wiped on
/// drop.
pub struct ContractKeySeed(Zeroizing<[u8; SEED_LEN]>);

/// Recover a key from members' answers: `answers` pairs the index of the member that answered
/// (authenticated: the answer was signed by that member, [`crate::open_partial`]) with its
/// partial. Only the first answer of each member counts and a partial must carry its member's
/// own index, so the work is bounded by the group's size whatever arrives and no member can be
/// blamed for another's answer. The partials are verified in one batch (a bad one is found by
/// bisection and its member named in `bad`), s is recovered from t valid ones and checked
/// against the master public key. A request succeeds while at least t members answer honestly.
pub fn recover_contract_key(
    rng: &mut impl CryptoRng,
    sharing: &PublicSharing,
    id: &ContractKeyId,
    answers: &[(u32, Partial)],
) -> Result<(ContractKeySeed, Vec<u32>), DerivationError> {
    let (mut signature, bad) = recover_group_signature(rng, sharing, CONTRACT_KEY_NAMESPACE, &id.message(), answers)?;
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    commonware_codec::Write::write(&signature, &mut seed.as_mut_slice());
    signature = <G1 as commonware_math::algebra::Additive>::zero();
    std::hint::black_box(&signature);
    Ok((ContractKeySeed(seed), bad))
}

/// The group's signature on (`namespace`, `message`), recovered from members' answers as
/// [`recover_contract_key`] describes and checked against the master public key; with the
/// members whose partials were bad. The caller wipes the signature when it is a secret.
pub fn recover_group_signature(
    rng: &mut impl CryptoRng,
    sharing: &PublicSharing,
    namespace: &[u8],
    message: &[u8],
    answers: &[(u32, Partial)],
) -> Result<(G1, Vec<u32>), DerivationError> {
    let total = sharing.total().get();
    let mut seen = std::collections::BTreeSet::new();
    let mut members = Vec::with_capacity(answers.len());
    // Sized once: a reallocation would leave copies of partials in freed memory.
    let mut partials = Vec::with_capacity(answers.len());
    let mut bad = Vec::new();
    for (member, partial) in answers {
        if *member >= total || !seen.insert(*member) {
            continue;
        }
        if partial.index.get() != *member {
            bad.push(*member);
            continue;
        }
        members.push(*member);
        partials.push(partial.clone());
    }
    let verdicts = verify_partials_in(rng, sharing, namespace, message, &partials);
    let mut valid: Vec<&Partial> = Vec::with_capacity(partials.len());
    for ((member, partial), ok) in members.iter().zip(&partials).zip(verdicts) {
        if ok {
            valid.push(partial);
        } else {
            bad.push(*member);
        }
    }
    bad.sort_unstable();
    let required = sharing.required();
    let signature = if valid.len() < required as usize {
        Err(DerivationError::NotEnoughPartials { valid: valid.len(), required, bad: bad.clone() })
    } else {
        threshold::recover::<MinSig, _>(sharing, valid, &Sequential).map_err(|_| DerivationError::NotEnoughPartials {
            valid: 0,
            required,
            bad: bad.clone(),
        })
    };
    // The copies made here are wiped whatever the outcome; the caller wipes its own.
    for partial in &mut partials {
        wipe_partial(partial);
    }
    let signature = signature?;
    ops::verify_message::<MinSig>(sharing.public(), namespace, message, &signature).map_err(|_| DerivationError::RecoveredKeyInvalid)?;
    Ok((signature, bad))
}

/// The most members a group may have as a sharing is read from outside (the group's size k is
/// a chain parameter, 7 by default).
pub const MAX_GROUP_MEMBERS: u32 = 256;

/// A group's public sharing as it travels (commonware's encoding), at most
/// [`MAX_GROUP_MEMBERS`] members.
pub fn decode_sharing(bytes: &[u8]) -> Option<PublicSharing> {
    use commonware_codec::Decode as _;
    let max = std::num::NonZeroU32::new(MAX_GROUP_MEMBERS).expect("non-zero");
    let cfg = (max, commonware_cryptography::bls12381::primitives::sharing::ModeVersion::v0());
    PublicSharing::decode_cfg(commonware_codec::Copying(bytes), &cfg).ok()
}

/// Overwrite a partial's point (the enclave's copies of members' answers, once used).
pub fn wipe_partial(partial: &mut Partial) {
    partial.value = <G1 as commonware_math::algebra::Additive>::zero();
    std::hint::black_box(&partial.value);
}

/// A contract's keys at one generation. Secrets are wiped on drop.
pub struct ContractKeys {
    /// Data owners HPKE-seal to this key (published on chain).
    pub public_key: [u8; 32],
    secret_key: Zeroizing<[u8; 32]>,
    state_key: Zeroizing<[u8; 32]>,
}

impl ContractKeys {
    /// The keys s derives for `id`: key material = HKDF-SHA256(salt none, IKM s, info =
    /// "tcp/dkmp/key-material" ‖ message); the X25519 pair is `DeriveKeyPair(key material)`
    /// (RFC 9180 §7.1.3); the state key is HKDF with info "tcp/dkmp/state-key" ‖ message.
    pub fn derive(seed: &ContractKeySeed, id: &ContractKeyId) -> ContractKeys {
        let message = id.message();
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, seed.0.as_ref());
        let expand = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            hkdf.expand_multi_info(&[label, &message], out.as_mut()).expect("32 bytes is a valid HKDF-SHA256 length");
            out
        };
        let material = expand(b"tcp/dkmp/key-material");
        let (secret, public) = hpke::kem::X25519HkdfSha256::derive_keypair(material.as_ref());
        let mut secret_key = Zeroizing::new([0u8; 32]);
        secret_key.copy_from_slice(&hpke::Serializable::to_bytes(&secret));
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&hpke::Serializable::to_bytes(&public));
        ContractKeys { public_key, secret_key, state_key: expand(b"tcp/dkmp/state-key") }
    }

    pub fn secret_key(&self) -> &[u8; 32] {
        &self.secret_key
    }

    pub fn state_key(&self) -> &[u8; 32] {
        &self.state_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use commonware_utils::N3f1;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    fn group(seed: u64, k: u32) -> (PublicSharing, Vec<Share>) {
        deal_anonymous::<MinSig, N3f1>(ChaCha20Rng::seed_from_u64(seed), Mode::NonZeroCounter, std::num::NonZeroU32::new(k).unwrap())
    }

    fn id(cid: u8, generation: u64) -> ContractKeyId {
        ContractKeyId { chain_id: ChainId::new("dkmp-test").unwrap(), cid: [cid; 32], generation }
    }

    fn answers(shares: &[Share], id: &ContractKeyId) -> Vec<(u32, Partial)> {
        shares.iter().map(|share| (share.index.get(), partial_contract_key(share, id))).collect()
    }

    #[test]
    fn any_t_members_give_the_same_keys_and_other_contracts_or_generations_other_keys() {
        let (sharing, shares) = group(1, 7);
        assert_eq!(sharing.required(), 5);
        let key = |partials: &[(u32, Partial)], id: &ContractKeyId| {
            let (seed, bad) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(3), &sharing, id, partials).unwrap();
            assert!(bad.is_empty());
            ContractKeys::derive(&seed, id)
        };
        let all = answers(&shares, &id(1, 0));
        let first = key(&all[..5], &id(1, 0));
        let last = key(&all[2..], &id(1, 0));
        assert_eq!(first.public_key, last.public_key);
        assert_eq!(first.secret_key(), last.secret_key());
        assert_eq!(first.state_key(), last.state_key());
        assert_ne!(first.state_key(), first.secret_key());
        // The public key is the secret's, as HPKE's X25519 computes it.
        let secret =
            <<hpke::kem::X25519HkdfSha256 as hpke::Kem>::PrivateKey as hpke::Deserializable>::from_bytes(first.secret_key()).unwrap();
        let public = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::sk_to_pk(&secret);
        assert_eq!(hpke::Serializable::to_bytes(&public).as_slice(), first.public_key.as_slice());
        let next_generation = key(&answers(&shares, &id(1, 1))[..5], &id(1, 1));
        let other_contract = key(&answers(&shares, &id(2, 0))[..5], &id(2, 0));
        assert_ne!(first.public_key, next_generation.public_key);
        assert_ne!(first.public_key, other_contract.public_key);
    }

    /// t − 1 partials never give a key, whichever t − 1.
    #[test]
    fn t_minus_one_partials_never_give_a_key() {
        let (sharing, shares) = group(4, 7);
        let all = answers(&shares, &id(1, 0));
        for skip in 0..7 {
            let four: Vec<(u32, Partial)> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip && *i != (skip + 1) % 7 && *i != (skip + 2) % 7)
                .map(|(_, p)| p.clone())
                .collect();
            assert_eq!(four.len(), 4);
            let result = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(5), &sharing, &id(1, 0), &four);
            assert!(matches!(result, Err(DerivationError::NotEnoughPartials { valid: 4, required: 5, .. })), "{:?}", result.err());
        }
    }

    /// A member that answers with a bad partial (another contract's, another group's, or a
    /// duplicate of another member's index) is named, and the request still succeeds with the
    /// other members; two bad of seven leave exactly t.
    #[test]
    fn bad_partials_are_named_and_the_request_succeeds_with_the_honest_members() {
        let (sharing, shares) = group(6, 7);
        let (_, other_shares) = group(7, 7);
        let mut partials = answers(&shares, &id(1, 0));
        partials[1].1 = partial_contract_key(&shares[1], &id(9, 0)); // signs another contract
        partials[4].1 = partial_contract_key(&other_shares[4], &id(1, 0)); // another group's share
        let (seed, bad) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(8), &sharing, &id(1, 0), &partials).unwrap();
        assert_eq!(bad, vec![1, 4]);
        let honest = answers(&shares, &id(1, 0));
        let (reference, _) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(9), &sharing, &id(1, 0), &honest[..5]).unwrap();
        assert_eq!(ContractKeys::derive(&seed, &id(1, 0)).public_key, ContractKeys::derive(&reference, &id(1, 0)).public_key);
        // A third bad one leaves t − 1.
        partials[6].1 = partial_contract_key(&shares[6], &id(1, 1));
        let result = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(10), &sharing, &id(1, 0), &partials);
        assert_eq!(result.err(), Some(DerivationError::NotEnoughPartials { valid: 4, required: 5, bad: vec![1, 4, 6] }));
    }

    /// Partials from another group (a previous epoch's, or a forged group) do not verify under
    /// this group's sharing, so mixing them in never yields a key.
    #[test]
    fn another_groups_partials_do_not_mix_in() {
        let (sharing, shares) = group(11, 7);
        let (_, other_shares) = group(12, 7);
        let mixed: Vec<(u32, Partial)> = (0..7)
            .map(|i| {
                let share = if i < 3 { &shares[i] } else { &other_shares[i] };
                (i as u32, partial_contract_key(share, &id(1, 0)))
            })
            .collect();
        let result = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(13), &sharing, &id(1, 0), &mixed);
        assert_eq!(result.err(), Some(DerivationError::NotEnoughPartials { valid: 3, required: 5, bad: vec![3, 4, 5, 6] }));
    }

    /// A member cannot be blamed for an answer it did not give, and a flood of answers costs
    /// no more than one per member: a partial under another member's index is the sender's
    /// fault, repeated answers of a member are ignored, unknown members are dropped.
    #[test]
    fn answers_are_bounded_per_member_and_blame_only_their_sender() {
        let (sharing, shares) = group(14, 7);
        let honest = answers(&shares, &id(1, 0));
        let mut flood: Vec<(u32, Partial)> = Vec::new();
        // Member 0 answers with member 2's partial (impersonation): 0 is to blame, not 2.
        flood.push((0, honest[2].1.clone()));
        // Then a thousand more answers from member 0 and from members that do not exist.
        for _ in 0..1_000 {
            flood.push((0, honest[0].1.clone()));
            flood.push((99, honest[3].1.clone()));
        }
        flood.extend(honest[1..].iter().cloned());
        let (seed, bad) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(15), &sharing, &id(1, 0), &flood).unwrap();
        assert_eq!(bad, vec![0]);
        let (reference, _) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(16), &sharing, &id(1, 0), &honest).unwrap();
        assert_eq!(ContractKeys::derive(&seed, &id(1, 0)).public_key, ContractKeys::derive(&reference, &id(1, 0)).public_key);
    }

    #[test]
    fn the_message_names_chain_contract_and_generation_unambiguously() {
        let a = ContractKeyId { chain_id: ChainId::new("ab").unwrap(), cid: [1; 32], generation: 0 };
        let b = ContractKeyId { chain_id: ChainId::new("abc").unwrap(), cid: [1; 32], generation: 0 };
        assert_ne!(a.message(), b.message());
        assert_eq!(a.message().len(), 1 + 2 + 32 + 8);
        assert_ne!(id(1, 0).message(), id(1, 1).message());
    }
}
