//! ABI encoding for the light client, and TCP's BLS points (compressed, as commonware encodes
//! them) in EIP-2537's encoding: each base-field element as 64 bytes big-endian (16 zero bytes
//! of padding), G2 coordinates as c0 ‖ c1.

use crate::BridgeError;
use blst::{BLST_ERROR, blst_bendian_from_fp, blst_fp, blst_p1_affine, blst_p1_uncompress, blst_p2_affine, blst_p2_uncompress};
use tcp_beacon::{FinalitySignature, GroupKey};

/// A G1 point in EIP-2537 encoding.
pub type G1Bytes = [u8; 128];
/// A G2 point in EIP-2537 encoding.
pub type G2Bytes = [u8; 256];

fn fp(out: &mut [u8], value: &blst_fp) {
    debug_assert_eq!(out.len(), 64);
    // SAFETY: 48 bytes of room after the 16 bytes of padding; a valid field element.
    unsafe { blst_bendian_from_fp(out[16..].as_mut_ptr(), value) };
}

/// φ (or any G1 point TCP encodes, 48 bytes compressed) in EIP-2537 encoding.
pub fn g1_from_compressed(compressed: &[u8]) -> Result<G1Bytes, BridgeError> {
    if compressed.len() != 48 {
        return Err(BridgeError::BadPoint("a compressed G1 point is 48 bytes"));
    }
    let mut point = blst_p1_affine::default();
    // SAFETY: a 48-byte input; blst checks the encoding and that the point is on the curve.
    if unsafe { blst_p1_uncompress(&mut point, compressed.as_ptr()) } != BLST_ERROR::BLST_SUCCESS {
        return Err(BridgeError::BadPoint("not a G1 point"));
    }
    let mut out = [0u8; 128];
    fp(&mut out[..64], &point.x);
    fp(&mut out[64..], &point.y);
    Ok(out)
}

/// The group key (96 bytes compressed) in EIP-2537 encoding.
pub fn g2_from_compressed(compressed: &[u8]) -> Result<G2Bytes, BridgeError> {
    if compressed.len() != 96 {
        return Err(BridgeError::BadPoint("a compressed G2 point is 96 bytes"));
    }
    let mut point = blst_p2_affine::default();
    // SAFETY: a 96-byte input; blst checks the encoding and that the point is on the curve.
    if unsafe { blst_p2_uncompress(&mut point, compressed.as_ptr()) } != BLST_ERROR::BLST_SUCCESS {
        return Err(BridgeError::BadPoint("not a G2 point"));
    }
    let mut out = [0u8; 256];
    fp(&mut out[..64], &point.x.fp[0]);
    fp(&mut out[64..128], &point.x.fp[1]);
    fp(&mut out[128..192], &point.y.fp[0]);
    fp(&mut out[192..], &point.y.fp[1]);
    Ok(out)
}

pub fn finality_point(signature: &FinalitySignature) -> G1Bytes {
    g1_from_compressed(&signature.to_bytes()).expect("a decoded signature is a point")
}

pub fn group_key_point(key: &GroupKey) -> G2Bytes {
    g2_from_compressed(&tcp_beacon::signature::group_key_to_bytes(key)).expect("a decoded key is a point")
}

/// The first four bytes of keccak-256 of a function's signature.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = tcp_state::keccak256(&[signature.as_bytes()]);
    [hash[0], hash[1], hash[2], hash[3]]
}

fn word(value: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&value.to_be_bytes());
    out
}

/// ABI head/tail encoding of a tuple of `bytes`/`string` (dynamic) and `uint` (static) values.
pub enum Token<'a> {
    Bytes(&'a [u8]),
    Uint(u64),
}

pub fn encode(tokens: &[Token<'_>]) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let head_size = 32 * tokens.len() as u64;
    for token in tokens {
        match token {
            Token::Uint(v) => head.extend_from_slice(&word(*v)),
            Token::Bytes(b) => {
                head.extend_from_slice(&word(head_size + tail.len() as u64));
                tail.extend_from_slice(&word(b.len() as u64));
                tail.extend_from_slice(b);
                tail.resize(tail.len().next_multiple_of(32), 0);
            }
        }
    }
    head.extend_from_slice(&tail);
    head
}

/// `verifyHeader(bytes header, uint32 round, bytes signature)`.
pub fn verify_header(header: &[u8], round: u32, signature: &G1Bytes) -> Vec<u8> {
    verify_header_raw(header, round, signature)
}

/// [`verify_header`] with a signature of any length (tests of malformed input).
pub fn verify_header_raw(header: &[u8], round: u32, signature: &[u8]) -> Vec<u8> {
    let mut out = selector("verifyHeader(bytes,uint32,bytes)").to_vec();
    out.extend_from_slice(&encode(&[Token::Bytes(header), Token::Uint(round as u64), Token::Bytes(signature)]));
    out
}

/// `hashToG1(bytes message, bytes dst)`.
pub fn hash_to_g1(message: &[u8], dst: &[u8]) -> Vec<u8> {
    let mut out = selector("hashToG1(bytes,bytes)").to_vec();
    out.extend_from_slice(&encode(&[Token::Bytes(message), Token::Bytes(dst)]));
    out
}

/// Creation code of the light client for `chain_id` and `group_key`.
pub fn light_client_creation(code: &[u8], chain_id: &str, group_key: &G2Bytes) -> Vec<u8> {
    let mut out = code.to_vec();
    out.extend_from_slice(&encode(&[Token::Bytes(chain_id.as_bytes()), Token::Bytes(group_key)]));
    out
}

/// Decode the ABI `bytes` a function returned (a single dynamic value).
pub fn decode_bytes(output: &[u8]) -> Option<Vec<u8>> {
    let offset = usize::try_from(u64::from_be_bytes(output.get(24..32)?.try_into().ok()?)).ok()?;
    let len_word = output.get(offset..offset.checked_add(32)?)?;
    let len = usize::try_from(u64::from_be_bytes(len_word[24..].try_into().ok()?)).ok()?;
    let start = offset.checked_add(32)?;
    output.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
}

/// What `verifyHeader` returns: (height, state root, header id).
pub fn decode_verified(output: &[u8]) -> Option<(u64, [u8; 32], [u8; 32])> {
    if output.len() != 96 {
        return None;
    }
    let height = u64::from_be_bytes(output[24..32].try_into().ok()?);
    Some((height, output[32..64].try_into().ok()?, output[64..96].try_into().ok()?))
}

/// The name of a custom error a revert carries, among `names` (by selector).
pub fn revert_reason<'a>(output: &[u8], names: &[&'a str]) -> Option<&'a str> {
    let selector_bytes = output.get(..4)?;
    names.iter().copied().find(|name| selector(name) == selector_bytes)
}
