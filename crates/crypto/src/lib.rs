//! Hashing and domain-separated signatures used across TCP.
//!
//! Every signature in TCP is made under a [`SigningDomain`]: a fixed namespace (one per kind of
//! signed object, listed in [`namespace`]) bound to the chain id. A vote signed on one chain, or
//! a proposal signature replayed as a vote, never verifies.

use commonware_cryptography::{Hasher as _, Signer as _, Verifier as _};
use tcp_types::{ChainId, Digest};

pub use commonware_cryptography::ed25519::{PrivateKey as Ed25519PrivateKey, PublicKey as Ed25519PublicKey, Signature as Ed25519Signature};

/// The namespaces of every signature TCP makes. Each kind of signed object has its own.
pub mod namespace {
    pub const CONSENSUS_PROPOSAL: &str = "tcp/consensus/proposal";
    pub const CONSENSUS_VOTE: &str = "tcp/consensus/vote";
    /// Account transactions (secp256k1, keccak-256 digest; see `tcp-state`).
    pub const TRANSACTION: &str = "tcp/tx";
    /// A validator's consensus key proving it consents to being bonded by an account.
    pub const STAKING_BOND: &str = "tcp/staking/bond";
    /// An enclave's result (its execution digest), signed by its registered key.
    pub const ENCLAVE_OUTPUT: &str = "tcp/enclave/output";
    /// An enclave's request for a contract key, signed by its registered key (DKMP).
    pub const DKMP_KEY_REQUEST: &str = "tcp/dkmp/key-request";
    /// An SSSG member's answer to a key request (its partial, bound to the request), signed by
    /// its consensus key inside the sealed answer.
    pub const DKMP_KEY_ANSWER: &str = "tcp/dkmp/key-answer";
    /// An SSSG member's record of a release it made (the key-release ledger).
    pub const DKMP_RELEASE_RECORD: &str = "tcp/dkmp/release-record";
    /// A client's compute request (secp256k1, keccak-256 digest, like transactions).
    pub const COMPUTE_REQUEST: &str = "tcp/compute/request";
    /// A data owner's terms for a blob: price per use and the contracts it is for (secp256k1).
    pub const DATA_TERMS: &str = "tcp/data/terms";
    /// An enclave's outcome of a deploy or execution, signed by its registered key.
    pub const COMPUTE_OUTCOME: &str = "tcp/compute/outcome";
    /// The commitment of what a call computed (keyed by the contract's state key; not a
    /// signature: two different ones for one request and state are evidence).
    pub const COMPUTE_COMPUTED: &str = "tcp/compute/computed";
    /// A compute node's request to a data source for a blob (secp256k1, by its operator key).
    pub const DATA_FETCH: &str = "tcp/data/fetch";
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Digest {
    let digest = commonware_cryptography::Sha256::hash(parts);
    Digest(digest.0)
}

/// A namespace bound to a chain id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningDomain {
    /// `namespace ‖ 0x00 ‖ chain_id`; namespaces never contain 0x00, so this is unambiguous, and
    /// commonware length-prefixes the whole domain before the message.
    bytes: Vec<u8>,
}

impl SigningDomain {
    pub fn new(namespace: &'static str, chain_id: &ChainId) -> Self {
        debug_assert!(!namespace.as_bytes().contains(&0));
        let mut bytes = Vec::with_capacity(namespace.len() + 1 + chain_id.as_str().len());
        bytes.extend_from_slice(namespace.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(chain_id.as_str().as_bytes());
        SigningDomain { bytes }
    }

    pub fn sign(&self, key: &Ed25519PrivateKey, message: &[u8]) -> Ed25519Signature {
        key.sign(&self.bytes, message)
    }

    pub fn verify(&self, key: &Ed25519PublicKey, message: &[u8], signature: &Ed25519Signature) -> bool {
        key.verify(&self.bytes, message, signature)
    }
}

/// The ed25519 key whose 32-byte secret is `secret` (drawn by the caller from the operating
/// system's RNG).
pub fn ed25519_from_secret(secret: &[u8; 32]) -> Ed25519PrivateKey {
    <Ed25519PrivateKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&secret[..]))
        .expect("every 32 bytes are an ed25519 secret key")
}

/// A deterministic ed25519 key for tests and simulations only (insecure: the seed is tiny).
pub fn insecure_ed25519_from_seed(seed: u64) -> Ed25519PrivateKey {
    Ed25519PrivateKey::from_seed(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(sha256(&[b"ab", b"c"]).to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn signatures_are_bound_to_namespace_and_chain() {
        let key = insecure_ed25519_from_seed(1);
        let pk = key.public_key();
        let chain_a = ChainId::new("chain-a").unwrap();
        let chain_b = ChainId::new("chain-b").unwrap();
        let vote_a = SigningDomain::new(namespace::CONSENSUS_VOTE, &chain_a);
        let vote_b = SigningDomain::new(namespace::CONSENSUS_VOTE, &chain_b);
        let proposal_a = SigningDomain::new(namespace::CONSENSUS_PROPOSAL, &chain_a);
        let sig = vote_a.sign(&key, b"msg");
        assert!(vote_a.verify(&pk, b"msg", &sig));
        assert!(!vote_a.verify(&pk, b"msh", &sig));
        assert!(!vote_b.verify(&pk, b"msg", &sig));
        assert!(!proposal_a.verify(&pk, b"msg", &sig));
        assert!(!vote_a.verify(&insecure_ed25519_from_seed(2).public_key(), b"msg", &sig));
    }
}
