//! The simulated application's blocks: enough structure to have a validity predicate that a
//! Byzantine proposer can violate.

use bytes::Bytes;
use tcp_consensus::ValueId;
use tcp_crypto::sha256;
use tcp_types::Height;

pub const BLOCK_BYTES: usize = 8 + 4 + 8 + 32 + 8;
pub const MAX_BLOCK_BYTES: usize = 4096;

/// height ‖ proposer ‖ nonce ‖ payload ‖ checksum (first 8 bytes of SHA-256 of the rest).
pub fn build_block(height: Height, proposer: u32, nonce: u64, payload: [u8; 32]) -> Bytes {
    let mut body = Vec::with_capacity(BLOCK_BYTES);
    body.extend_from_slice(&height.0.to_be_bytes());
    body.extend_from_slice(&proposer.to_be_bytes());
    body.extend_from_slice(&nonce.to_be_bytes());
    body.extend_from_slice(&payload);
    let checksum = sha256(&[&body]);
    body.extend_from_slice(&checksum.0[..8]);
    Bytes::from(body)
}

/// A block with a broken checksum: well-formed bytes that `valid(v)` must refuse.
pub fn build_invalid_block(height: Height, proposer: u32, nonce: u64) -> Bytes {
    let mut body = build_block(height, proposer, nonce, [0xee; 32]).to_vec();
    let last = body.len() - 1;
    body[last] ^= 0xff;
    Bytes::from(body)
}

pub fn value_id(body: &[u8]) -> ValueId {
    sha256(&[body])
}

pub fn block_height(body: &[u8]) -> Option<Height> {
    (body.len() == BLOCK_BYTES).then(|| Height(u64::from_be_bytes(body[..8].try_into().expect("8 bytes"))))
}

/// The paper's `valid(v)` for the simulated application.
pub fn is_valid_block(body: &[u8], height: Height) -> bool {
    if block_height(body) != Some(height) {
        return false;
    }
    let (content, checksum) = body.split_at(BLOCK_BYTES - 8);
    sha256(&[content]).0[..8] == *checksum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_predicate_checks_height_and_checksum() {
        let b = build_block(Height(3), 1, 7, [1; 32]);
        assert!(is_valid_block(&b, Height(3)));
        assert!(!is_valid_block(&b, Height(4)));
        assert!(!is_valid_block(&build_invalid_block(Height(3), 1, 7), Height(3)));
        assert!(!is_valid_block(&b[..10], Height(3)));
    }
}
