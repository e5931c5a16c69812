//! The TCP light client (DESIGN §5.1, "Finality signature"): it holds only the chain id and the
//! chain's group key (constant for the chain's life) and checks
//!
//! * a header with its finality signature φ — one hash-to-curve and one pairing check;
//! * a state proof against a verified header's state root;
//! * the ancestors of a verified header, by parent links (each header's id is the hash of its
//!   bytes, and a verified header names its parent's id).
//!
//! No I/O: the caller fetches headers, φ and proofs from anyone (an RPC it does not trust, a
//! peer, a relayer) and nothing it is given is believed unless it verifies here. Used by
//! `tcpchain light verify` and `tcpchain query proof --verify`; the enclave and the Ethereum
//! contract (`crates/bridge`) check the same bytes the same way.

pub mod header;

pub use header::{BodyRoots, Header, HeaderDecodeError, MAX_HEADER_BYTES};
use tcp_beacon::finality::finality_point;
use tcp_beacon::{Finality, GroupKey, GroupKeyVerifier, finality_message};
use tcp_crypto::sha256;
use tcp_state::smt::{ProofError, StateProof};
use tcp_types::{ChainId, Digest, Height};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LightError {
    #[error("header of {0} bytes exceeds the limit of {MAX_HEADER_BYTES}")]
    TooLarge(usize),
    #[error("malformed header: {0}")]
    Malformed(#[from] HeaderDecodeError),
    #[error("the finality signature does not verify for height {height}, round {round}, header {id} under the group key")]
    BadFinality { height: u64, round: u32, id: Digest },
    #[error("malformed group key")]
    BadGroupKey,
    #[error("header {height} is not the parent named by header {child} ({expected}, got {got})")]
    BrokenLink { height: u64, child: u64, expected: Digest, got: Digest },
    #[error("state proof: {0}")]
    Proof(#[from] ProofError),
}

/// A header this client verified (only [`LightClient`] makes one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHeader {
    header: Header,
    id: Digest,
}

impl VerifiedHeader {
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn id(&self) -> Digest {
        self.id
    }
    pub fn height(&self) -> Height {
        self.header.height
    }
    pub fn state_root(&self) -> Digest {
        self.header.state_root
    }
}

pub struct LightClient {
    chain_id: ChainId,
    group: GroupKeyVerifier,
}

impl LightClient {
    pub fn new(chain_id: ChainId, group_key: GroupKey) -> LightClient {
        LightClient { chain_id, group: GroupKeyVerifier::new(group_key) }
    }

    /// From the group key's 96-byte encoding (checked to be a point of G2).
    pub fn from_group_key_bytes(chain_id: ChainId, group_key: &[u8]) -> Result<LightClient, LightError> {
        let key = tcp_beacon::signature::group_key_from_bytes(group_key).map_err(|_| LightError::BadGroupKey)?;
        Ok(LightClient::new(chain_id, key))
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// Check `header` (its exact bytes) with its φ: φ must be the group's signature on
    /// (chain id, height, φ's round, SHA-256(header)). One pairing check.
    pub fn verify_header(&self, header: &[u8], finality: &Finality) -> Result<VerifiedHeader, LightError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(LightError::TooLarge(header.len()));
        }
        let decoded = Header::decode(header)?;
        let id = sha256(&[header]);
        let message = finality_message(&self.chain_id, decoded.height, finality.round, &id);
        if !self.group.verify_point(&finality_point(&message), &finality.signature.0) {
            return Err(LightError::BadFinality { height: decoded.height.0, round: finality.round.0, id });
        }
        Ok(VerifiedHeader { header: decoded, id })
    }

    /// Check a state proof against a verified header's state root; returns the proven value
    /// (`None`: the key is proven absent).
    pub fn verify_state_proof<'a>(&self, header: &VerifiedHeader, proof: &'a StateProof) -> Result<Option<&'a [u8]>, LightError> {
        Ok(proof.verify(&header.state_root().0)?)
    }

    /// Verify the ancestors of `from`, given newest first (heights h-1, h-2, …): each must hash
    /// to the parent its child names. Returns them verified, in the order given.
    pub fn verify_ancestors(&self, from: &VerifiedHeader, ancestors: &[Vec<u8>]) -> Result<Vec<VerifiedHeader>, LightError> {
        let mut out = Vec::with_capacity(ancestors.len());
        let mut child = from.clone();
        for bytes in ancestors {
            if bytes.len() > MAX_HEADER_BYTES {
                return Err(LightError::TooLarge(bytes.len()));
            }
            let header = Header::decode(bytes)?;
            let id = sha256(&[bytes]);
            if id != child.header.parent || header.height.next() != child.header.height {
                return Err(LightError::BrokenLink { height: header.height.0, child: child.header.height.0, expected: child.header.parent, got: id });
            }
            let verified = VerifiedHeader { header, id };
            out.push(verified.clone());
            child = verified;
        }
        Ok(out)
    }
}
