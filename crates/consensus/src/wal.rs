//! The write-ahead log interface. The host appends every [`Input`] (durably) before handing it
//! to the core; after a crash it starts the last undecided height and replays the log. The core
//! is deterministic and ed25519 signing is deterministic, so replay re-creates exactly the votes
//! signed before the crash and never a conflicting one.

use crate::certificate::CommitCertificate;
use crate::consensus::Input;
use crate::params::TimeoutKind;
use crate::types::{SignedProposal, SignedVote, ValueId};
use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write};
use tcp_types::{Height, Round};

pub trait WriteAheadLog {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Append one input; it must be durable when this returns.
    fn append(&mut self, input: &Input) -> Result<(), Self::Error>;
    /// Every input still in the log, oldest first.
    fn entries(&self) -> Result<Vec<Input>, Self::Error>;
    /// Drop entries for heights at or below `decided` (called once the decision is persisted).
    fn prune(&mut self, decided: Height) -> Result<(), Self::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL entry {index} is corrupt: {source}")]
    Corrupt { index: usize, source: CodecError },
}

/// A WAL in memory, stored encoded exactly as a file-backed one would be. The simulator keeps
/// it across simulated crashes (it models the disk).
#[derive(Clone, Debug, Default)]
pub struct MemoryWal {
    entries: Vec<(Height, Bytes)>,
}

impl MemoryWal {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl WriteAheadLog for MemoryWal {
    type Error = WalError;

    fn append(&mut self, input: &Input) -> Result<(), WalError> {
        self.entries.push((input.height(), input.encode()));
        Ok(())
    }

    fn entries(&self) -> Result<Vec<Input>, WalError> {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, (_, bytes))| {
                <Input as commonware_codec::DecodeExt<()>>::decode(bytes.clone()).map_err(|source| WalError::Corrupt { index, source })
            })
            .collect()
    }

    fn prune(&mut self, decided: Height) -> Result<(), WalError> {
        self.entries.retain(|(h, _)| *h > decided);
        Ok(())
    }
}

impl Write for TimeoutKind {
    fn write(&self, buf: &mut impl BufMut) {
        let tag: u8 = match self {
            TimeoutKind::Propose => 0,
            TimeoutKind::Prevote => 1,
            TimeoutKind::Precommit => 2,
        };
        tag.write(buf);
    }
}
impl FixedSize for TimeoutKind {
    const SIZE: usize = 1;
}
impl Read for TimeoutKind {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(TimeoutKind::Propose),
            1 => Ok(TimeoutKind::Prevote),
            2 => Ok(TimeoutKind::Precommit),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

impl Write for Input {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Input::Proposal { proposal, valid } => {
                0u8.write(buf);
                proposal.write(buf);
                valid.write(buf);
            }
            Input::Vote(v) => {
                1u8.write(buf);
                v.write(buf);
            }
            Input::Timeout { height, round, kind } => {
                2u8.write(buf);
                height.write(buf);
                round.write(buf);
                kind.write(buf);
            }
            Input::ProposeValue { height, round, value } => {
                3u8.write(buf);
                height.write(buf);
                round.write(buf);
                value.write(buf);
            }
            Input::Commit { certificate, valid } => {
                4u8.write(buf);
                certificate.write(buf);
                valid.write(buf);
            }
        }
    }
}
impl EncodeSize for Input {
    fn encode_size(&self) -> usize {
        1 + match self {
            Input::Proposal { proposal, .. } => proposal.encode_size() + 1,
            Input::Vote(v) => v.encode_size(),
            Input::Timeout { .. } => Height::SIZE + Round::SIZE + TimeoutKind::SIZE,
            Input::ProposeValue { .. } => Height::SIZE + Round::SIZE + ValueId::SIZE,
            Input::Commit { certificate, .. } => certificate.encode_size() + 1,
        }
    }
}
impl Read for Input {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(match u8::read(buf)? {
            0 => Input::Proposal { proposal: SignedProposal::read(buf)?, valid: bool::read(buf)? },
            1 => Input::Vote(SignedVote::read(buf)?),
            2 => Input::Timeout { height: Height::read(buf)?, round: Round::read(buf)?, kind: TimeoutKind::read(buf)? },
            3 => Input::ProposeValue { height: Height::read(buf)?, round: Round::read(buf)?, value: ValueId::read(buf)? },
            4 => Input::Commit { certificate: CommitCertificate::read(buf)?, valid: bool::read(buf)? },
            t => return Err(CodecError::InvalidEnum(t)),
        })
    }
}
