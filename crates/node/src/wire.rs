//! What nodes send each other over the authenticated p2p channels. The sender is the
//! authenticated peer identity, never a field of the message. Decoding is bounded and exact;
//! a peer whose message does not decode is blocked.

use bytes::BufMut;
use commonware_codec::{DecodeExt as _, Encode as _};
use tcp_beacon::DkgMessage;
use tcp_consensus::{CommitCertificate, ConsensusMessage};
use tcp_types::{Height, Round};

/// Consensus messages, block bodies, status and commits.
pub const CONSENSUS_CHANNEL: u64 = 0;
/// Transaction gossip.
pub const TRANSACTION_CHANNEL: u64 = 1;
/// Transactions per gossip message.
pub const MAX_GOSSIP_TRANSACTIONS: usize = 512;
/// Transaction bytes per gossip message, inside the p2p message limit (a block plus 256 KiB)
/// whatever the block size: a batch of large transactions (collateral postings, up to
/// `MAX_TRANSACTION_BYTES` each) is split.
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;

/// Split `txs` into gossip messages' worth: at most [`MAX_GOSSIP_TRANSACTIONS`] and
/// [`MAX_GOSSIP_BYTES`] each (a transaction larger than that goes alone).
pub fn gossip_batches(txs: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut batches: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    for tx in txs {
        let full = batches.last().is_none_or(|b| b.len() >= MAX_GOSSIP_TRANSACTIONS || bytes + tx.len() > MAX_GOSSIP_BYTES);
        if full {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += tx.len();
        batches.last_mut().expect("pushed").push(tx);
    }
    batches
}

#[derive(Clone, Debug)]
pub enum Wire {
    Consensus(ConsensusMessage),
    /// A proposed block's body (values travel by id inside consensus).
    Block(Vec<u8>),
    /// "I am at this height and round": peers ahead answer with commits, peers in the same
    /// height with the votes of that round.
    Status { height: Height, round: Round },
    /// A decided height for a peer that is behind: the certificate and the block.
    Commit { certificate: CommitCertificate, block: Vec<u8> },
    /// Signed transactions (their canonical bytes).
    Transactions(Vec<Vec<u8>>),
    /// A beacon reshare message: a dealing or an ack (point to point), or a dealer log.
    Dkg(DkgMessage),
    /// The same for DKMP's master-secret ceremonies (their namespace keeps the two apart).
    Dkmp(DkgMessage),
    /// An enclave's key request, relayed by its compute node to a member of the secret-share
    /// group (transaction channel).
    KeyRequest(tcp_dkmp::SignedKeyRequest),
    /// A member's answer to the request with this digest, sealed to the enclave (transaction
    /// channel, back to the relaying peer).
    KeyAnswer { request: tcp_types::Digest, sealed: Vec<u8> },
    /// Members' release records, gossiped so that any proposer can put them in a block
    /// (transaction channel).
    ReleaseRecords(Vec<tcp_dkmp::ReleaseRecord>),
    /// A relay asks the serving group for the key of a committed request's result identity
    /// (members answer with `KeyAnswer` under `tcp_dkmp::result::result_request_digest`).
    ResultKeyRequest { request_id: [u8; 32], epoch: u64 },
}

/// Release records per gossip message.
pub const MAX_GOSSIP_RELEASES: usize = 64;

impl Wire {
    /// Whether the message travels on the transaction channel (everything not consensus-critical).
    pub fn on_transaction_channel(&self) -> bool {
        matches!(
            self,
            Wire::Transactions(_) | Wire::KeyRequest(_) | Wire::KeyAnswer { .. } | Wire::ReleaseRecords(_) | Wire::ResultKeyRequest { .. }
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("truncated")]
    Truncated,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("too many items ({0})")]
    TooMany(usize),
}

impl Wire {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Wire::Consensus(m) => {
                out.put_u8(0);
                out.put_slice(&m.encode());
            }
            Wire::Block(b) => {
                out.put_u8(1);
                out.put_slice(b);
            }
            Wire::Status { height, round } => {
                out.put_u8(2);
                out.put_u64(height.0);
                out.put_u32(round.0);
            }
            Wire::Commit { certificate, block } => {
                out.put_u8(3);
                let c = certificate.encode();
                out.put_u32(c.len() as u32);
                out.put_slice(&c);
                out.put_slice(block);
            }
            Wire::Transactions(txs) => {
                out.put_u8(4);
                out.put_u16(txs.len() as u16);
                for tx in txs {
                    out.put_u32(tx.len() as u32);
                    out.put_slice(tx);
                }
            }
            Wire::Dkg(message) => {
                out.put_u8(5);
                out.put_slice(&message.encode());
            }
            Wire::Dkmp(message) => {
                out.put_u8(6);
                out.put_slice(&message.encode());
            }
            Wire::KeyRequest(request) => {
                out.put_u8(7);
                out.put_slice(&request.encode());
            }
            Wire::KeyAnswer { request, sealed } => {
                out.put_u8(8);
                out.put_slice(&request.0);
                out.put_slice(sealed);
            }
            Wire::ResultKeyRequest { request_id, epoch } => {
                out.put_u8(10);
                out.put_slice(request_id);
                out.put_u64(*epoch);
            }
            Wire::ReleaseRecords(records) => {
                out.put_u8(9);
                out.put_u16(records.len() as u16);
                for record in records {
                    let bytes = record.encode();
                    out.put_u32(bytes.len() as u32);
                    out.put_slice(&bytes);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Wire, WireError> {
        let (&tag, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        match tag {
            0 => Ok(Wire::Consensus(ConsensusMessage::decode_bounded(rest).map_err(|e| WireError::Malformed(e.to_string()))?)),
            1 => Ok(Wire::Block(rest.to_vec())),
            2 => {
                if rest.len() != 12 {
                    return Err(if rest.len() < 12 { WireError::Truncated } else { WireError::Trailing(rest.len() - 12) });
                }
                Ok(Wire::Status {
                    height: Height(u64::from_be_bytes(rest[..8].try_into().expect("8"))),
                    round: Round(u32::from_be_bytes(rest[8..].try_into().expect("4"))),
                })
            }
            3 => {
                let len = u32::from_be_bytes(rest.get(..4).ok_or(WireError::Truncated)?.try_into().expect("4")) as usize;
                let c = rest.get(4..4 + len).ok_or(WireError::Truncated)?;
                let certificate = CommitCertificate::decode(commonware_codec::Copying(c)).map_err(|e| WireError::Malformed(e.to_string()))?;
                Ok(Wire::Commit { certificate, block: rest[4 + len..].to_vec() })
            }
            4 => {
                let count = u16::from_be_bytes(rest.get(..2).ok_or(WireError::Truncated)?.try_into().expect("2")) as usize;
                if count > MAX_GOSSIP_TRANSACTIONS {
                    return Err(WireError::TooMany(count));
                }
                let mut at = 2;
                let mut txs = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = u32::from_be_bytes(rest.get(at..at + 4).ok_or(WireError::Truncated)?.try_into().expect("4")) as usize;
                    if len > tcp_state::transaction::MAX_TRANSACTION_BYTES {
                        return Err(WireError::Malformed(format!("transaction of {len} bytes")));
                    }
                    txs.push(rest.get(at + 4..at + 4 + len).ok_or(WireError::Truncated)?.to_vec());
                    at += 4 + len;
                }
                if at != rest.len() {
                    return Err(WireError::Trailing(rest.len() - at));
                }
                Ok(Wire::Transactions(txs))
            }
            5 => Ok(Wire::Dkg(DkgMessage::decode(rest).map_err(|e| WireError::Malformed(e.to_string()))?)),
            6 => Ok(Wire::Dkmp(DkgMessage::decode(rest).map_err(|e| WireError::Malformed(e.to_string()))?)),
            7 => Ok(Wire::KeyRequest(
                tcp_dkmp::SignedKeyRequest::decode(commonware_codec::Copying(rest)).map_err(|e| WireError::Malformed(e.to_string()))?,
            )),
            8 => {
                let request = tcp_types::Digest(rest.get(..32).ok_or(WireError::Truncated)?.try_into().expect("32"));
                let sealed = &rest[32..];
                if sealed.len() > tcp_dkmp::request::MAX_ANSWER_BYTES {
                    return Err(WireError::Malformed(format!("a key answer of {} bytes", sealed.len())));
                }
                Ok(Wire::KeyAnswer { request, sealed: sealed.to_vec() })
            }
            9 => {
                let mut r = tcp_types::ByteReader(rest);
                let count = r.u16().ok_or(WireError::Truncated)? as usize;
                if count > MAX_GOSSIP_RELEASES {
                    return Err(WireError::TooMany(count));
                }
                let mut records = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = r.u32().ok_or(WireError::Truncated)? as usize;
                    if len > tcp_dkmp::record::MAX_RECORD_BYTES {
                        return Err(WireError::Malformed(format!("a release record of {len} bytes")));
                    }
                    let bytes = r.take(len).ok_or(WireError::Truncated)?;
                    records.push(
                        tcp_dkmp::ReleaseRecord::decode(commonware_codec::Copying(bytes)).map_err(|e| WireError::Malformed(e.to_string()))?,
                    );
                }
                if !r.0.is_empty() {
                    return Err(WireError::Trailing(r.0.len()));
                }
                Ok(Wire::ReleaseRecords(records))
            }
            10 => {
                if rest.len() != 40 {
                    return Err(WireError::Malformed(format!("a result-key request of {} bytes", rest.len())));
                }
                let request_id: [u8; 32] = rest[..32].try_into().expect("32");
                Ok(Wire::ResultKeyRequest { request_id, epoch: u64::from_be_bytes(rest[32..].try_into().expect("8")) })
            }
            t => Err(WireError::UnknownTag(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Large transactions (collateral postings) are split so no gossip message outgrows the p2p
    /// limit; small ones still go 512 to a message; order is kept.
    #[test]
    fn gossip_batches_respect_the_count_and_byte_limits() {
        let big = tcp_state::transaction::MAX_TRANSACTION_BYTES;
        let txs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; big]).collect();
        let batches = gossip_batches(txs.clone());
        assert!(batches.iter().all(|b| b.iter().map(Vec::len).sum::<usize>() <= MAX_GOSSIP_BYTES));
        assert_eq!(batches.concat(), txs);
        let small: Vec<Vec<u8>> = (0..1030).map(|i| vec![(i % 256) as u8; 100]).collect();
        let lens: Vec<usize> = gossip_batches(small).iter().map(Vec::len).collect();
        assert_eq!(lens, vec![512, 512, 6]);
        assert!(gossip_batches(Vec::new()).is_empty());
    }

    #[test]
    fn round_trips() {
        let status = Wire::Status { height: Height(9), round: Round(2) };
        assert!(matches!(Wire::decode(&status.encode()), Ok(Wire::Status { height: Height(9), round: Round(2) })));
        let txs = Wire::Transactions(vec![vec![1, 2, 3], vec![]]);
        match Wire::decode(&txs.encode()) {
            Ok(Wire::Transactions(t)) => assert_eq!(t, vec![vec![1, 2, 3], vec![]]),
            other => panic!("{other:?}"),
        }
        let mut bytes = txs.encode();
        bytes.push(0);
        assert_eq!(Wire::decode(&bytes).unwrap_err(), WireError::Trailing(1));
        assert_eq!(Wire::decode(&[]).unwrap_err(), WireError::Empty);
        assert_eq!(Wire::decode(&[11]).unwrap_err(), WireError::UnknownTag(11));
        // A result-key request is exactly a request id and an epoch.
        let ask = Wire::ResultKeyRequest { request_id: [7; 32], epoch: 3 };
        assert!(matches!(Wire::decode(&ask.encode()), Ok(Wire::ResultKeyRequest { request_id, epoch: 3 }) if request_id == [7; 32]));
        assert!(matches!(Wire::decode(&[10, 1, 2]), Err(WireError::Malformed(_))));
        assert!(ask.on_transaction_channel());
        // A release-record batch round-trips; more than a batch holds is refused unread.
        assert!(matches!(Wire::decode(&Wire::ReleaseRecords(Vec::new()).encode()), Ok(Wire::ReleaseRecords(r)) if r.is_empty()));
        let mut many = vec![9u8];
        many.extend_from_slice(&((MAX_GOSSIP_RELEASES + 1) as u16).to_be_bytes());
        assert_eq!(Wire::decode(&many).unwrap_err(), WireError::TooMany(MAX_GOSSIP_RELEASES + 1));
        // A key answer longer than any answer is refused.
        let mut long = vec![8u8];
        long.extend_from_slice(&[0; 32 + 257]);
        assert!(matches!(Wire::decode(&long), Err(WireError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Wire::decode(&bytes);
        }
    }
}
