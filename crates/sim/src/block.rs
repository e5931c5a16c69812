//! The simulated application's blocks: a payload plus what the beacon needs on chain (the
//! round and builder for efficiency records, σ_{h-1}, committed DKG logs), with a checksum so a
//! Byzantine proposer can build structurally invalid blocks.

use bytes::{BufMut, Bytes};
use tcp_beacon::dkg::{decode_log, encode_log};
use tcp_beacon::{BeaconSignature, BlockBeaconData, SignedLog};
use tcp_consensus::ValueId;
use tcp_crypto::sha256;
use tcp_types::{Height, Round, ValidatorIndex};

pub const MAX_BLOCK_BYTES: usize = 256 * 1024;
const MAX_LOG_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct SimBlock {
    pub height: Height,
    pub round: Round,
    pub proposer: u32,
    pub nonce: u64,
    pub payload: [u8; 32],
    pub previous_signature: Option<BeaconSignature>,
    pub logs: Vec<SignedLog>,
}

impl SimBlock {
    /// height ‖ round ‖ proposer ‖ nonce ‖ payload ‖ σ flag [‖ σ] ‖ log count ‖ (len ‖ log)* ‖
    /// checksum (first 8 bytes of SHA-256 of the rest).
    pub fn encode(&self) -> Bytes {
        let mut body = Vec::with_capacity(128);
        body.put_u64(self.height.0);
        body.put_u32(self.round.0);
        body.put_u32(self.proposer);
        body.put_u64(self.nonce);
        body.put_slice(&self.payload);
        match &self.previous_signature {
            Some(sigma) => {
                body.put_u8(1);
                body.put_slice(&sigma.to_bytes());
            }
            None => body.put_u8(0),
        }
        body.put_u16(self.logs.len() as u16);
        for log in &self.logs {
            let bytes = encode_log(log);
            body.put_u32(bytes.len() as u32);
            body.put_slice(&bytes);
        }
        let checksum = sha256(&[&body]);
        body.put_slice(&checksum.0[..8]);
        Bytes::from(body)
    }

    /// Parse and check the checksum; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<SimBlock> {
        if bytes.len() > MAX_BLOCK_BYTES || bytes.len() < 8 {
            return None;
        }
        let (content, checksum) = bytes.split_at(bytes.len() - 8);
        if sha256(&[content]).0[..8] != *checksum {
            return None;
        }
        let mut r = tcp_types::ByteReader(content);
        let height = Height(r.u64()?);
        let round = Round(r.u32()?);
        let proposer = r.u32()?;
        let nonce = r.u64()?;
        let payload: [u8; 32] = r.take(32)?.try_into().ok()?;
        let previous_signature = match r.u8()? {
            0 => None,
            1 => Some(BeaconSignature::from_bytes(r.take(tcp_beacon::signature::SIGNATURE_BYTES)?).ok()?),
            _ => return None,
        };
        let count = r.u16()? as usize;
        let mut logs = Vec::with_capacity(count.min(tcp_beacon::ledger::MAX_LOGS_PER_BLOCK));
        for _ in 0..count {
            let len = r.u32()? as usize;
            if len > MAX_LOG_BYTES {
                return None;
            }
            logs.push(decode_log(r.take(len)?).ok()?);
        }
        r.0.is_empty().then_some(SimBlock { height, round, proposer, nonce, payload, previous_signature, logs })
    }

    pub fn beacon_data(&self) -> BlockBeaconData {
        BlockBeaconData {
            round: self.round,
            proposer: ValidatorIndex(self.proposer),
            previous_signature: self.previous_signature,
            logs: self.logs.clone(),
            signers: None,
        }
    }
}

/// A block with a broken checksum: well-formed bytes that `valid(v)` must refuse.
pub fn build_invalid_block(block: &SimBlock) -> Bytes {
    let mut body = block.encode().to_vec();
    let last = body.len() - 1;
    body[last] ^= 0xff;
    Bytes::from(body)
}

pub fn value_id(body: &[u8]) -> ValueId {
    sha256(&[body])
}

/// The height a block claims (for routing before it is validated).
pub fn block_height(body: &[u8]) -> Option<Height> {
    (body.len() >= 8).then(|| Height(u64::from_be_bytes(body[..8].try_into().expect("8 bytes"))))
}

/// The structural part of `valid(v)`: well-formed, right height. The beacon part (proposer,
/// σ_{h-1}, logs) needs the chain state: see [`tcp_beacon::Ledger::validate_block`].
pub fn is_well_formed_block(body: &[u8], height: Height) -> Option<SimBlock> {
    SimBlock::decode(body).filter(|b| b.height == height)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> SimBlock {
        SimBlock { height: Height(3), round: Round(1), proposer: 2, nonce: 7, payload: [1; 32], previous_signature: None, logs: Vec::new() }
    }

    #[test]
    fn blocks_round_trip_and_corruption_is_refused() {
        let b = block();
        let bytes = b.encode();
        let back = is_well_formed_block(&bytes, Height(3)).unwrap();
        assert_eq!((back.round, back.proposer, back.nonce, back.payload), (Round(1), 2, 7, [1; 32]));
        assert!(is_well_formed_block(&bytes, Height(4)).is_none());
        assert!(is_well_formed_block(&build_invalid_block(&b), Height(3)).is_none());
        assert!(is_well_formed_block(&bytes[..10], Height(3)).is_none());
        for i in 0..bytes.len() {
            let mut corrupted = bytes.to_vec();
            corrupted[i] ^= 0x10;
            assert!(SimBlock::decode(&corrupted).is_none(), "flip at {i} accepted");
        }
    }
}
