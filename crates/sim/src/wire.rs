//! What simulated nodes send each other, as bytes: every message crosses the same decoder a
//! real node would run on network input.

use crate::block::MAX_BLOCK_BYTES;
use bytes::{BufMut, Bytes, BytesMut};
use commonware_codec::{Encode, RangeCfg, Read, ReadExt};
use tcp_consensus::{CommitCertificate, ConsensusMessage, DecodeError};
use tcp_types::{Height, Round};

#[derive(Clone, Debug)]
pub enum Wire {
    Consensus(ConsensusMessage),
    /// A full block; values travel by id inside consensus and as bodies here.
    Block(Bytes),
    /// "Node `from` is working on this height and round": peers that are ahead answer with
    /// commits (other height) or with the votes of that round (same height).
    Status {
        from: u32,
        height: Height,
        round: Round,
    },
    /// A decided height for a peer that is behind.
    Commit(CommitCertificate, Bytes),
    /// A beacon DKG message (dealing, ack or log) from node `from`; the simulated transport
    /// stands for an authenticated, encrypted channel.
    Dkg {
        from: u32,
        message: Bytes,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error(transparent)]
    Consensus(#[from] DecodeError),
    #[error("malformed: {0}")]
    Malformed(#[from] commonware_codec::Error),
}

const TAG_CONSENSUS: u8 = 0;
const TAG_BLOCK: u8 = 1;
const TAG_STATUS: u8 = 2;
const TAG_COMMIT: u8 = 3;
const TAG_DKG: u8 = 4;
const MAX_DKG_BYTES: usize = 64 * 1024;

impl Wire {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Wire::Consensus(m) => {
                out.put_u8(TAG_CONSENSUS);
                out.put_slice(&m.encode());
            }
            Wire::Block(body) => {
                out.put_u8(TAG_BLOCK);
                out.put_slice(&body.encode());
            }
            Wire::Status { from, height, round } => {
                out.put_u8(TAG_STATUS);
                out.put_slice(&from.encode());
                out.put_slice(&height.encode());
                out.put_slice(&round.encode());
            }
            Wire::Commit(cert, body) => {
                out.put_u8(TAG_COMMIT);
                out.put_slice(&cert.encode());
                out.put_slice(&body.encode());
            }
            Wire::Dkg { from, message } => {
                out.put_u8(TAG_DKG);
                out.put_slice(&from.encode());
                out.put_slice(&message.encode());
            }
        }
        out.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<Wire, WireError> {
        let (&tag, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        let block_cfg = RangeCfg::from(..=MAX_BLOCK_BYTES);
        match tag {
            TAG_CONSENSUS => Ok(Wire::Consensus(ConsensusMessage::decode_bounded(rest)?)),
            TAG_BLOCK => Ok(Wire::Block(<Bytes as commonware_codec::Decode>::decode_cfg(commonware_codec::Copying(rest), &block_cfg)?)),
            TAG_STATUS => {
                let (from, height, round) =
                    <(u32, Height, Round) as commonware_codec::Decode>::decode_cfg(commonware_codec::Copying(rest), &((), (), ()))?;
                Ok(Wire::Status { from, height, round })
            }
            TAG_COMMIT => {
                let mut buf = commonware_codec::Copying(rest);
                let cert = CommitCertificate::read(&mut buf)?;
                let body = Bytes::read_cfg(&mut buf, &block_cfg)?;
                if bytes::Buf::remaining(&buf) != 0 {
                    return Err(WireError::Malformed(commonware_codec::Error::ExtraData(bytes::Buf::remaining(&buf))));
                }
                Ok(Wire::Commit(cert, body))
            }
            TAG_DKG => {
                let (from, message) = <(u32, Bytes) as commonware_codec::Decode>::decode_cfg(
                    commonware_codec::Copying(rest),
                    &((), RangeCfg::from(..=MAX_DKG_BYTES)),
                )?;
                Ok(Wire::Dkg { from, message })
            }
            t => Err(WireError::UnknownTag(t)),
        }
    }
}
