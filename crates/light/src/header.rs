//! The block header: what a block's id (the consensus value) is the hash of, and what a light
//! client, an enclave or the Ethereum contract reads. It commits to the block's body by roots.
//!
//! ```text
//! header = height u64 ‖ round u32 ‖ proposer u32 ‖ parent [32] ‖ timestamp_ms u64 ‖
//!          state_root [32] ‖ tx_root [32] ‖ last_commit_root [32] ‖ logs_root [32] ‖
//!          σ flag u8 [‖ σ_{h-1} 48] ‖ φ flag u8 [‖ round_{h-1} u32 ‖ φ_{h-1} 48] ‖
//!          extra root count u8 ‖ (tag u16 ‖ root [32])*
//! id     = SHA-256(header)
//! ```
//! All integers big-endian. Height (offset 0) and state root (offset 56) sit at fixed offsets,
//! so the Solidity verifier reads them without parsing the rest; roots added later (bridge
//! events, contracts) go in the tagged list at the end and move neither. Decoding is exact:
//! flags other than 0/1, points off the curve, extra roots out of order and trailing bytes are
//! refused.

use tcp_beacon::signature::SIGNATURE_BYTES;
use tcp_beacon::{BeaconSignature, Finality};
use tcp_crypto::sha256;
use tcp_types::{ByteReader, Digest, Height, Round, ValidatorIndex};

/// Byte offset of the height in an encoded header.
pub const HEIGHT_OFFSET: usize = 0;
/// Byte offset of the state root in an encoded header.
pub const STATE_ROOT_OFFSET: usize = 8 + 4 + 4 + 32 + 8;
/// Most extra roots a header may carry.
pub const MAX_EXTRA_ROOTS: usize = 16;
/// The largest encoded header.
pub const MAX_HEADER_BYTES: usize = STATE_ROOT_OFFSET + 4 * 32 + 1 + SIGNATURE_BYTES + 1 + Finality::BYTES + 1 + MAX_EXTRA_ROOTS * 34;

/// The roots of a block's body sections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyRoots {
    /// SHA-256 over the transactions' ids, in order.
    pub transactions: Digest,
    /// SHA-256 of the encoded commit of h-1 (all zero when the block carries none).
    pub last_commit: Digest,
    /// SHA-256 of the encoded DKG log section.
    pub logs: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub height: Height,
    /// The round the block was built for, and its builder (efficiency records).
    pub round: Round,
    pub proposer: ValidatorIndex,
    /// The previous block's id (the genesis hash for height 1).
    pub parent: Digest,
    pub timestamp_ms: u64,
    /// The state root after this block's transactions (keccak-256 sparse Merkle tree,
    /// docs/state-proofs.md).
    pub state_root: Digest,
    pub roots: BodyRoots,
    /// σ_{h-1}, once the beacon runs.
    pub previous_signature: Option<BeaconSignature>,
    /// φ_{h-1} on block h-1's id, of the round h-1 was committed in, once the beacon runs.
    pub previous_finality: Option<Finality>,
    /// Roots of later body sections, by tag, strictly increasing. None are defined yet.
    pub extra_roots: Vec<(u16, Digest)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderDecodeError {
    #[error("header truncated")]
    Truncated,
    #[error("bad {0} flag {1}")]
    BadFlag(&'static str, u8),
    #[error("malformed beacon signature")]
    BadSignature,
    #[error("malformed finality signature")]
    BadFinality,
    #[error("{0} extra roots; at most {MAX_EXTRA_ROOTS}")]
    TooManyRoots(usize),
    #[error("extra roots not in strictly increasing tag order")]
    RootOrder,
    #[error("{0} trailing bytes after the header")]
    Trailing(usize),
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.height.0.to_be_bytes());
        out.extend_from_slice(&self.round.0.to_be_bytes());
        out.extend_from_slice(&self.proposer.0.to_be_bytes());
        out.extend_from_slice(&self.parent.0);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        debug_assert_eq!(out.len(), STATE_ROOT_OFFSET);
        out.extend_from_slice(&self.state_root.0);
        out.extend_from_slice(&self.roots.transactions.0);
        out.extend_from_slice(&self.roots.last_commit.0);
        out.extend_from_slice(&self.roots.logs.0);
        match &self.previous_signature {
            Some(sigma) => {
                out.push(1);
                out.extend_from_slice(&sigma.to_bytes());
            }
            None => out.push(0),
        }
        match &self.previous_finality {
            Some(finality) => {
                out.push(1);
                out.extend_from_slice(&finality.to_bytes());
            }
            None => out.push(0),
        }
        out.push(self.extra_roots.len() as u8);
        for (tag, root) in &self.extra_roots {
            out.extend_from_slice(&tag.to_be_bytes());
            out.extend_from_slice(&root.0);
        }
        out
    }

    /// The block id: SHA-256 of the encoded header.
    pub fn id(&self) -> Digest {
        sha256(&[&self.encode()])
    }

    /// Decode a header from the front of `bytes`; returns it and the bytes after it.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Header, &[u8]), HeaderDecodeError> {
        use HeaderDecodeError::*;
        let mut r = ByteReader(bytes);
        let height = Height(r.u64().ok_or(Truncated)?);
        let round = Round(r.u32().ok_or(Truncated)?);
        let proposer = ValidatorIndex(r.u32().ok_or(Truncated)?);
        let parent = Digest(r.array().ok_or(Truncated)?);
        let timestamp_ms = r.u64().ok_or(Truncated)?;
        let state_root = Digest(r.array().ok_or(Truncated)?);
        let roots = BodyRoots {
            transactions: Digest(r.array().ok_or(Truncated)?),
            last_commit: Digest(r.array().ok_or(Truncated)?),
            logs: Digest(r.array().ok_or(Truncated)?),
        };
        let previous_signature = match r.u8().ok_or(Truncated)? {
            0 => None,
            1 => Some(BeaconSignature::from_bytes(r.take(SIGNATURE_BYTES).ok_or(Truncated)?).map_err(|_| BadSignature)?),
            f => return Err(BadFlag("σ", f)),
        };
        let previous_finality = match r.u8().ok_or(Truncated)? {
            0 => None,
            1 => Some(Finality::from_bytes(r.take(Finality::BYTES).ok_or(Truncated)?).map_err(|_| BadFinality)?),
            f => return Err(BadFlag("φ", f)),
        };
        let count = r.u8().ok_or(Truncated)? as usize;
        if count > MAX_EXTRA_ROOTS {
            return Err(TooManyRoots(count));
        }
        let mut extra_roots: Vec<(u16, Digest)> = Vec::with_capacity(count);
        for _ in 0..count {
            let tag = r.u16().ok_or(Truncated)?;
            if extra_roots.last().is_some_and(|(last, _)| *last >= tag) {
                return Err(RootOrder);
            }
            extra_roots.push((tag, Digest(r.array().ok_or(Truncated)?)));
        }
        let header = Header { height, round, proposer, parent, timestamp_ms, state_root, roots, previous_signature, previous_finality, extra_roots };
        Ok((header, r.0))
    }

    /// Decode exactly one header (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderDecodeError> {
        let (header, rest) = Header::decode_prefix(bytes)?;
        if !rest.is_empty() {
            return Err(HeaderDecodeError::Trailing(rest.len()));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Header {
        Header {
            height: Height(5),
            round: Round(1),
            proposer: ValidatorIndex(2),
            parent: Digest([1; 32]),
            timestamp_ms: 1_700_000_000_000,
            state_root: Digest([4; 32]),
            roots: BodyRoots { transactions: Digest([5; 32]), last_commit: Digest([6; 32]), logs: Digest([7; 32]) },
            previous_signature: None,
            previous_finality: None,
            extra_roots: vec![(1, Digest([8; 32])), (7, Digest([9; 32]))],
        }
    }

    #[test]
    fn fixed_offsets_and_exact_round_trip() {
        let header = sample();
        let bytes = header.encode();
        assert_eq!(&bytes[HEIGHT_OFFSET..HEIGHT_OFFSET + 8], &5u64.to_be_bytes());
        assert_eq!(&bytes[STATE_ROOT_OFFSET..STATE_ROOT_OFFSET + 32], &[4; 32]);
        assert_eq!(Header::decode(&bytes).unwrap(), header);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Header::decode(&longer), Err(HeaderDecodeError::Trailing(1)));
        assert_eq!(Header::decode(&bytes[..bytes.len() - 1]), Err(HeaderDecodeError::Truncated));
        let swapped = Header { extra_roots: vec![(7, Digest([9; 32])), (1, Digest([8; 32]))], ..header };
        assert_eq!(Header::decode(&swapped.encode()), Err(HeaderDecodeError::RootOrder));
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_decoded_headers_reencode(bytes in proptest::collection::vec(any::<u8>(), 0..400), flip in 0usize..400) {
            if let Ok(header) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes.clone());
            }
            let mut mutated = sample().encode();
            let at = flip % mutated.len();
            mutated[at] ^= 0x41;
            if let Ok(header) = Header::decode(&mutated) {
                prop_assert_eq!(header.encode(), mutated);
            }
        }
    }
}
