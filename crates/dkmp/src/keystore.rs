//! The enclave's side of a key request (DESIGN §5.5 "Release"; issue 19, item 4), sans-IO: the
//! caller supplies the randomness (`tcp-enclave` draws it from the OS; the simulator from its
//! seed). The enclave asks
//! the secret-share group through its host: it makes a key request signed by its registered key,
//! with a fresh X25519 key whose secret never leaves this process; the host carries the request
//! to the group's members and their sealed answers back, and sees only ciphertext. The enclave
//! opens each answer (it must be signed by the member the host attributes it to), verifies the
//! partials in one batch against the group's public sharing, recovers s, checks s against the
//! master public key it pinned at registration, derives the contract's keys and wipes the
//! partials. The host chooses nothing that matters: a sharing for another master key is refused
//! before any pairing, and a forged partial only names its member as bad.
//!
//! Bounded: at most [`MAX_PENDING`] requests wait for answers and [`MAX_CACHED`] contract keys
//! are kept (one per contract and generation; the oldest go first).

use std::collections::VecDeque;

use rand_core::CryptoRng;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};
use tcp_types::{ChainId, Digest};
use zeroize::Zeroizing;

use crate::derivation::{ContractKeyId, ContractKeys};
use crate::request::{KeyPurpose, KeyRequest, SignedKeyRequest};

/// Requests waiting for their answers; a newer one pushes the oldest out.
pub const MAX_PENDING: usize = 16;
/// Contract keys kept (the enclave asks again for one it dropped).
pub const MAX_CACHED: usize = 64;
/// Answers a request takes: one per member of the largest group.
pub const MAX_ANSWERS: usize = crate::derivation::MAX_GROUP_MEMBERS as usize;

struct Pending {
    digest: Digest,
    request: KeyRequest,
    answer_secret: Zeroizing<[u8; 32]>,
}

/// One member's answer as the host relays it: the member's index in the sharing, its consensus
/// key, the sealed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayedAnswer {
    pub index: u32,
    pub member: [u8; 32],
    pub sealed: Vec<u8>,
}

/// What a request gave: the contract's public key, the members whose answers were bad or did not
/// open (by index).
pub struct Obtained {
    pub key: ContractKeyId,
    pub public_key: [u8; 32],
    pub bad: Vec<u32>,
}

#[derive(Default)]
pub struct KeyStore {
    pending: VecDeque<Pending>,
    cached: VecDeque<(ContractKeyId, ContractKeys)>,
    /// The last group's sharing, decoded (its members' public keys computed once), by the
    /// SHA-256 of its encoding: a group serves a whole epoch.
    sharing: Option<(Digest, tcp_beacon::signature::PublicSharing)>,
}

impl KeyStore {
    /// A new request for `key`, asked of the group serving `epoch`, signed by the enclave's
    /// registered key. `entropy`: 48 fresh secret random bytes (the answer key's seed, the
    /// nonce).
    pub fn request(
        &mut self,
        signing: &Ed25519PrivateKey,
        key: ContractKeyId,
        epoch: u64,
        purpose: KeyPurpose,
        entropy: &Zeroizing<[u8; 48]>,
    ) -> SignedKeyRequest {
        let (secret, public) = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::derive_keypair(&entropy[..32]);
        let mut answer_secret = Zeroizing::new([0u8; 32]);
        answer_secret.copy_from_slice(&hpke::Serializable::to_bytes(&secret));
        let mut answer_key = [0u8; 32];
        answer_key.copy_from_slice(&hpke::Serializable::to_bytes(&public));
        let nonce: [u8; 16] = entropy[32..].try_into().expect("16 bytes");
        let request = KeyRequest {
            key,
            epoch,
            purpose,
            enclave_key: commonware_cryptography::Signer::public_key(signing),
            answer_key,
            nonce,
        };
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending { digest: request.digest(), request: request.clone(), answer_secret });
        request.sign(signing)
    }

    /// Open the answers to the pending request `digest`, recover and keep the contract's keys.
    /// `master_key` is the key pinned at registration; `sharing` the group's public sharing as
    /// the host gives it.
    pub fn answer(
        &mut self,
        rng: &mut impl CryptoRng,
        chain: &ChainId,
        master_key: &[u8; 96],
        digest: &Digest,
        sharing: &[u8],
        answers: &[RelayedAnswer],
    ) -> Result<Obtained, String> {
        let at = self.pending.iter().position(|p| p.digest == *digest).ok_or("no such pending key request (answered, or pushed out)")?;
        if answers.len() > MAX_ANSWERS {
            return Err(format!("{} answers, more than any group has members", answers.len()));
        }
        let id = tcp_crypto::sha256(&[sharing]);
        let sharing = match &self.sharing {
            Some((cached, decoded)) if *cached == id => decoded.clone(),
            _ => {
                let decoded = crate::derivation::decode_sharing(sharing).ok_or("the group's sharing does not decode")?;
                self.sharing = Some((id, decoded.clone()));
                decoded
            }
        };
        if tcp_beacon::signature::group_key_to_bytes(sharing.public()).as_slice() != master_key.as_slice() {
            return Err("the sharing is not of the master key this enclave pinned at registration".into());
        }
        let pending = self.pending.remove(at).expect("found above");
        if pending.request.key.chain_id != *chain {
            return Err("the request is for another chain".into());
        }
        let mut bad = Vec::new();
        let mut partials = Vec::with_capacity(answers.len());
        for answer in answers {
            let member = <Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&answer.member[..]));
            match member.ok().map(|m| crate::request::open_partial(&pending.answer_secret, &pending.request, &answer.sealed, &m)) {
                Some(Ok(partial)) => partials.push((answer.index, partial)),
                _ => bad.push(answer.index),
            }
        }
        let recovered = crate::derivation::recover_contract_key(rng, &sharing, &pending.request.key, &partials);
        for (_, partial) in &mut partials {
            crate::derivation::wipe_partial(partial);
        }
        let (s, also_bad) = recovered.map_err(|e| e.to_string())?;
        bad.extend(also_bad);
        bad.sort_unstable();
        bad.dedup();
        let keys = ContractKeys::derive(&s, &pending.request.key);
        let public_key = keys.public_key;
        let id = pending.request.key.clone();
        self.cached.retain(|(cached, _)| *cached != id);
        if self.cached.len() >= MAX_CACHED {
            self.cached.pop_front();
        }
        self.cached.push_back((id.clone(), keys));
        Ok(Obtained { key: id, public_key, bad })
    }

    /// The keys of a contract at a generation, if obtained and still kept.
    pub fn get(&self, key: &ContractKeyId) -> Option<&ContractKeys> {
        self.cached.iter().find(|(id, _)| id == key).map(|(_, k)| k)
    }
}
