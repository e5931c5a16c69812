//! Blocks: a header, the dealer logs the beacon commits, and the transactions. A block's id
//! (the consensus value) is the SHA-256 of its canonical encoding.
//!
//! ```text
//! header = height u64 ‖ round u32 ‖ proposer u32 ‖ parent [32] ‖ timestamp_ms u64 ‖
//!          tx_root [32] ‖ state_root [32] ‖ σ flag u8 [‖ σ_{h-1} 48]
//! block  = header ‖ commit flag u8 [‖ len u32 ‖ commit certificate of h-1] ‖
//!          log count u16 ‖ (len u32 ‖ log)* ‖ tx count u32 ‖ (len u32 ‖ signed tx)*
//! ```
//! The previous height's commit (its precommits, as the proposer holds them) is in every block
//! after the first: Ω rewards its signers and credits their efficiency from it.
//! `tx_root` = SHA-256 over the transactions' ids in order; `state_root` = the world state's
//! sparse Merkle root after the block's transactions (docs/state-proofs.md). Decoding is bounded
//! and exact: trailing bytes are refused.

use bytes::BufMut;
use tcp_beacon::dkg::{decode_log, encode_log};
use tcp_beacon::ledger::MAX_LOGS_PER_BLOCK;
use tcp_beacon::signature::SIGNATURE_BYTES;
use tcp_beacon::{BeaconSignature, BlockBeaconData, SignedLog};
use commonware_codec::{DecodeExt as _, Encode as _};
use tcp_consensus::{CommitCertificate, ValueId};
use tcp_crypto::sha256;
use tcp_state::SignedTransaction;
use tcp_state::transaction::MAX_TRANSACTION_BYTES;
use tcp_types::{Digest, Height, Round, ValidatorIndex};

/// The most any genesis may allow.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
const MAX_LOG_BYTES: usize = 64 * 1024;
/// A commit of the largest validator set, with extensions.
const MAX_COMMIT_BYTES: usize = tcp_consensus::MAX_VALIDATORS * 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub height: Height,
    /// The round the block was built for, and its builder (efficiency records).
    pub round: Round,
    pub proposer: ValidatorIndex,
    /// The previous block's id (the genesis hash for height 1).
    pub parent: Digest,
    pub timestamp_ms: u64,
    pub tx_root: Digest,
    /// The state root after this block's transactions (keccak-256 sparse Merkle tree,
    /// docs/state-proofs.md).
    pub state_root: Digest,
    /// σ_{h-1}, once the beacon runs.
    pub previous_signature: Option<BeaconSignature>,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub header: Header,
    /// The commit certificate of h-1 (none in block 1).
    pub last_commit: Option<CommitCertificate>,
    pub logs: Vec<SignedLog>,
    pub transactions: Vec<SignedTransaction>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockDecodeError {
    #[error("block of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("block truncated")]
    Truncated,
    #[error("bad σ flag {0}")]
    BadFlag(u8),
    #[error("malformed beacon signature")]
    BadSignature,
    #[error("malformed last commit: {0}")]
    BadCommit(String),
    #[error("too many DKG logs ({0})")]
    TooManyLogs(usize),
    #[error("malformed DKG log: {0}")]
    BadLog(String),
    #[error("transaction {0}: {1}")]
    BadTransaction(usize, String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

pub fn tx_root(transactions: &[SignedTransaction]) -> Digest {
    let ids: Vec<[u8; 32]> = transactions.iter().map(|t| t.hash().0).collect();
    let parts: Vec<&[u8]> = ids.iter().map(|h| &h[..]).collect();
    sha256(&parts)
}

pub fn block_id(bytes: &[u8]) -> ValueId {
    sha256(&[bytes])
}

impl Block {
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.header;
        let mut out = Vec::with_capacity(256 + self.transactions.len() * 160);
        out.put_u64(h.height.0);
        out.put_u32(h.round.0);
        out.put_u32(h.proposer.0);
        out.put_slice(&h.parent.0);
        out.put_u64(h.timestamp_ms);
        out.put_slice(&h.tx_root.0);
        out.put_slice(&h.state_root.0);
        match &h.previous_signature {
            Some(sigma) => {
                out.put_u8(1);
                out.put_slice(&sigma.to_bytes());
            }
            None => out.put_u8(0),
        }
        match &self.last_commit {
            Some(commit) => {
                let bytes = commit.encode();
                out.put_u8(1);
                out.put_u32(bytes.len() as u32);
                out.put_slice(&bytes);
            }
            None => out.put_u8(0),
        }
        out.put_u16(self.logs.len() as u16);
        for log in &self.logs {
            let bytes = encode_log(log);
            out.put_u32(bytes.len() as u32);
            out.put_slice(&bytes);
        }
        out.put_u32(self.transactions.len() as u32);
        for tx in &self.transactions {
            let bytes = tx.encode();
            out.put_u32(bytes.len() as u32);
            out.put_slice(&bytes);
        }
        out
    }

    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Block, BlockDecodeError> {
        if bytes.len() > max_bytes {
            return Err(BlockDecodeError::TooLarge(bytes.len(), max_bytes));
        }
        let mut r = tcp_types::ByteReader(bytes);
        let height = Height(r.u64().ok_or(BlockDecodeError::Truncated)?);
        let round = Round(r.u32().ok_or(BlockDecodeError::Truncated)?);
        let proposer = ValidatorIndex(r.u32().ok_or(BlockDecodeError::Truncated)?);
        let parent = Digest(r.array().ok_or(BlockDecodeError::Truncated)?);
        let timestamp_ms = r.u64().ok_or(BlockDecodeError::Truncated)?;
        let tx_root = Digest(r.array().ok_or(BlockDecodeError::Truncated)?);
        let state_root = Digest(r.array().ok_or(BlockDecodeError::Truncated)?);
        let previous_signature = match r.u8().ok_or(BlockDecodeError::Truncated)? {
            0 => None,
            1 => Some(BeaconSignature::from_bytes(r.take(SIGNATURE_BYTES).ok_or(BlockDecodeError::Truncated)?).map_err(|_| BlockDecodeError::BadSignature)?),
            f => return Err(BlockDecodeError::BadFlag(f)),
        };
        let last_commit = match r.u8().ok_or(BlockDecodeError::Truncated)? {
            0 => None,
            1 => {
                let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
                if len > MAX_COMMIT_BYTES {
                    return Err(BlockDecodeError::BadCommit(format!("{len} bytes")));
                }
                let bytes = r.take(len).ok_or(BlockDecodeError::Truncated)?;
                Some(CommitCertificate::decode(commonware_codec::Copying(bytes)).map_err(|e| BlockDecodeError::BadCommit(e.to_string()))?)
            }
            f => return Err(BlockDecodeError::BadFlag(f)),
        };
        let log_count = r.u16().ok_or(BlockDecodeError::Truncated)? as usize;
        if log_count > MAX_LOGS_PER_BLOCK {
            return Err(BlockDecodeError::TooManyLogs(log_count));
        }
        let mut logs = Vec::with_capacity(log_count);
        for _ in 0..log_count {
            let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
            if len > MAX_LOG_BYTES {
                return Err(BlockDecodeError::BadLog(format!("{len} bytes")));
            }
            logs.push(decode_log(r.take(len).ok_or(BlockDecodeError::Truncated)?).map_err(|e| BlockDecodeError::BadLog(e.to_string()))?);
        }
        let tx_count = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
        // Each transaction takes at least 4 + 1 bytes: a count above that is a lie.
        if tx_count > r.0.len() / 5 {
            return Err(BlockDecodeError::Truncated);
        }
        let mut transactions = Vec::with_capacity(tx_count);
        for i in 0..tx_count {
            let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
            if len > MAX_TRANSACTION_BYTES {
                return Err(BlockDecodeError::BadTransaction(i, format!("{len} bytes")));
            }
            let tx = SignedTransaction::decode(r.take(len).ok_or(BlockDecodeError::Truncated)?).map_err(|e| BlockDecodeError::BadTransaction(i, e.to_string()))?;
            transactions.push(tx);
        }
        if !r.0.is_empty() {
            return Err(BlockDecodeError::Trailing(r.0.len()));
        }
        Ok(Block { header: Header { height, round, proposer, parent, timestamp_ms, tx_root, state_root, previous_signature }, last_commit, logs, transactions })
    }

    pub fn beacon_data(&self) -> BlockBeaconData {
        BlockBeaconData {
            round: self.header.round,
            proposer: self.header.proposer,
            previous_signature: self.header.previous_signature,
            logs: self.logs.clone(),
            signers: self.last_commit.as_ref().map(|c| c.precommits.iter().map(|p| p.vote.validator).collect()),
        }
    }
}

/// The height a block claims, read before anything else is decoded (routing).
pub fn claimed_height(bytes: &[u8]) -> Option<Height> {
    bytes.get(..8).map(|b| Height(u64::from_be_bytes(b.try_into().expect("8 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tcp_state::{AccountKey, Action, Address, Transaction};
    use tcp_types::ChainId;

    fn block(txs: usize) -> Block {
        let key = AccountKey::from_bytes(&[7; 32]).unwrap();
        let chain_id = ChainId::new("test").unwrap();
        let transactions: Vec<_> = (0..txs)
            .map(|n| {
                Transaction {
                    chain_id: chain_id.clone(),
                    nonce: n as u64,
                    gas_price: 1,
                    gas_limit: 21_000,
                    action: Action::Transfer { to: Address([9; 20]), amount: 5 },
                }
                .sign(&key)
            })
            .collect();
        Block {
            header: Header {
                height: Height(3),
                round: Round(1),
                proposer: ValidatorIndex(2),
                parent: Digest([1; 32]),
                timestamp_ms: 1_700_000_000_000,
                tx_root: tx_root(&transactions),
                state_root: Digest([4; 32]),
                previous_signature: None,
            },
            last_commit: None,
            logs: vec![],
            transactions,
        }
    }

    #[test]
    fn round_trips_exactly() {
        let b = block(3);
        let bytes = b.encode();
        let back = Block::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
        assert_eq!(back.header, b.header);
        assert_eq!(back.transactions, b.transactions);
        assert_eq!(back.encode(), bytes);
        assert_eq!(claimed_height(&bytes), Some(Height(3)));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Block::decode(&longer, MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Trailing(1));
        assert_eq!(Block::decode(&bytes[..bytes.len() - 1], MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Truncated);
        assert!(matches!(Block::decode(&bytes, 100), Err(BlockDecodeError::TooLarge(_, 100))));
    }

    proptest! {
        #[test]
        fn garbage_and_mutations_never_panic(cut in 0usize..2000, flip in 0usize..2000, junk in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Block::decode(&junk, MAX_BLOCK_BYTES);
            let mut bytes = block(2).encode();
            let at = flip % bytes.len();
            bytes[at] ^= 0x5a;
            let _ = Block::decode(&bytes, MAX_BLOCK_BYTES);
            let _ = Block::decode(&bytes[..cut.min(bytes.len())], MAX_BLOCK_BYTES);
        }
    }
}
