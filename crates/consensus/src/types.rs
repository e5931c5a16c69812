//! Consensus messages, the validator set, and their one canonical encoding.

use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write};
use tcp_crypto::{Ed25519PublicKey, Ed25519Signature};
use tcp_types::{Digest, Height, Round, ValidatorIndex};

/// Identity of a proposed value (a block hash). Values travel by id through consensus; full
/// blocks travel separately and the host tells the core whether a value is valid.
pub type ValueId = Digest;

/// Largest precommit extension accepted (the beacon share is 48 bytes plus framing).
pub const MAX_EXTENSION_BYTES: usize = 256;
/// Largest encoded consensus message accepted from the network.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest validator set a height may have.
pub const MAX_VALIDATORS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteType {
    Prevote,
    Precommit,
}

impl VoteType {
    fn tag(self) -> u8 {
        match self {
            VoteType::Prevote => 0,
            VoteType::Precommit => 1,
        }
    }
}

/// ⟨PREVOTE|PRECOMMIT, h, r, id(v) or nil⟩ from one validator. A non-nil precommit may carry an
/// extension (the beacon share); every other vote carries none.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: Option<ValueId>,
    pub validator: ValidatorIndex,
    pub extension: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedVote {
    pub vote: Vote,
    pub signature: Ed25519Signature,
}

/// ⟨PROPOSAL, h, r, id(v), validRound⟩ from the proposer of (h, r).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: ValueId,
    pub pol_round: Option<Round>,
    pub proposer: ValidatorIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub signature: Ed25519Signature,
}

/// What validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConsensusMessage {
    Proposal(SignedProposal),
    Vote(SignedVote),
}

impl ConsensusMessage {
    pub fn height(&self) -> Height {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.height,
            ConsensusMessage::Vote(v) => v.vote.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.round,
            ConsensusMessage::Vote(v) => v.vote.round,
        }
    }

    pub fn sender(&self) -> ValidatorIndex {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.proposer,
            ConsensusMessage::Vote(v) => v.vote.validator,
        }
    }

    /// Decode a message received from the network, refusing oversized input before parsing.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::Oversized { len: bytes.len(), max: MAX_MESSAGE_BYTES });
        }
        <Self as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(bytes)).map_err(DecodeError::Malformed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(CodecError),
}

/// One validator of a height: its vote-signing key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub public_key: Ed25519PublicKey,
    pub voting_power: u64,
}

/// The validators of one height. Thresholds are by voting power: a quorum is > 2/3 of the
/// total, a "skip" set is > 1/3 (the paper's 2f+1 and f+1 with f the faulty power).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("a validator set needs 1..={MAX_VALIDATORS} validators, got {0}")]
    Size(usize),
    #[error("validator {0} has zero voting power")]
    ZeroPower(usize),
    #[error("total voting power overflows (must stay below 2^60)")]
    PowerOverflow,
    #[error("validator {0} repeats the key of validator {1}")]
    DuplicateKey(usize, usize),
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() || validators.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::Size(validators.len()));
        }
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(ValidatorSetError::ZeroPower(i));
            }
            total = total.checked_add(v.voting_power).filter(|t| *t < 1 << 60).ok_or(ValidatorSetError::PowerOverflow)?;
            if let Some(j) = validators[..i].iter().position(|w| w.public_key == v.public_key) {
                return Err(ValidatorSetError::DuplicateKey(i, j));
            }
        }
        Ok(ValidatorSet { validators, total_power: total })
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn get(&self, index: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(index.as_usize())
    }

    pub fn iter(&self) -> impl Iterator<Item = (ValidatorIndex, &Validator)> {
        self.validators.iter().enumerate().map(|(i, v)| (ValidatorIndex(i as u32), v))
    }

    pub fn index_of(&self, key: &Ed25519PublicKey) -> Option<ValidatorIndex> {
        self.validators.iter().position(|v| &v.public_key == key).map(|i| ValidatorIndex(i as u32))
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    pub fn power(&self, index: ValidatorIndex) -> u64 {
        self.get(index).map_or(0, |v| v.voting_power)
    }

    /// More than two thirds of the total power (the paper's 2f + 1).
    pub fn is_quorum(&self, power: u64) -> bool {
        // power and total are < 2^60, so the products cannot overflow.
        power * 3 > self.total_power * 2
    }

    /// More than one third of the total power (the paper's f + 1): at least one honest member.
    pub fn is_one_third(&self, power: u64) -> bool {
        power * 3 > self.total_power
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical encoding.

impl Write for VoteType {
    fn write(&self, buf: &mut impl BufMut) {
        self.tag().write(buf);
    }
}
impl FixedSize for VoteType {
    const SIZE: usize = 1;
}
impl Read for VoteType {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(VoteType::Prevote),
            1 => Ok(VoteType::Precommit),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

impl Write for Vote {
    fn write(&self, buf: &mut impl BufMut) {
        self.vote_type.write(buf);
        self.height.write(buf);
        self.round.write(buf);
        self.value.write(buf);
        self.validator.write(buf);
        self.extension.write(buf);
    }
}
impl EncodeSize for Vote {
    fn encode_size(&self) -> usize {
        VoteType::SIZE + Height::SIZE + Round::SIZE + self.value.encode_size() + ValidatorIndex::SIZE + self.extension.encode_size()
    }
}
impl Read for Vote {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let vote = Vote {
            vote_type: VoteType::read(buf)?,
            height: Height::read(buf)?,
            round: Round::read(buf)?,
            value: Option::<ValueId>::read_cfg(buf, &())?,
            validator: ValidatorIndex::read(buf)?,
            extension: Bytes::read_cfg(buf, &RangeCfg::from(..=MAX_EXTENSION_BYTES))?,
        };
        let extension_allowed = vote.vote_type == VoteType::Precommit && vote.value.is_some();
        if !extension_allowed && !vote.extension.is_empty() {
            return Err(CodecError::Invalid("Vote", "only non-nil precommits carry an extension"));
        }
        Ok(vote)
    }
}

impl Write for SignedVote {
    fn write(&self, buf: &mut impl BufMut) {
        self.vote.write(buf);
        self.signature.write(buf);
    }
}
impl EncodeSize for SignedVote {
    fn encode_size(&self) -> usize {
        self.vote.encode_size() + Ed25519Signature::SIZE
    }
}
impl Read for SignedVote {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(SignedVote { vote: Vote::read(buf)?, signature: Ed25519Signature::read(buf)? })
    }
}

impl Write for Proposal {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.round.write(buf);
        self.value.write(buf);
        self.pol_round.write(buf);
        self.proposer.write(buf);
    }
}
impl EncodeSize for Proposal {
    fn encode_size(&self) -> usize {
        Height::SIZE + Round::SIZE + ValueId::SIZE + self.pol_round.encode_size() + ValidatorIndex::SIZE
    }
}
impl Read for Proposal {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let proposal = Proposal {
            height: Height::read(buf)?,
            round: Round::read(buf)?,
            value: ValueId::read(buf)?,
            pol_round: Option::<Round>::read_cfg(buf, &())?,
            proposer: ValidatorIndex::read(buf)?,
        };
        if proposal.pol_round.is_some_and(|vr| vr >= proposal.round) {
            return Err(CodecError::Invalid("Proposal", "proof-of-lock round must precede the proposal round"));
        }
        Ok(proposal)
    }
}

impl Write for SignedProposal {
    fn write(&self, buf: &mut impl BufMut) {
        self.proposal.write(buf);
        self.signature.write(buf);
    }
}
impl EncodeSize for SignedProposal {
    fn encode_size(&self) -> usize {
        self.proposal.encode_size() + Ed25519Signature::SIZE
    }
}
impl Read for SignedProposal {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(SignedProposal { proposal: Proposal::read(buf)?, signature: Ed25519Signature::read(buf)? })
    }
}

impl Write for ConsensusMessage {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            ConsensusMessage::Proposal(p) => {
                0u8.write(buf);
                p.write(buf);
            }
            ConsensusMessage::Vote(v) => {
                1u8.write(buf);
                v.write(buf);
            }
        }
    }
}
impl EncodeSize for ConsensusMessage {
    fn encode_size(&self) -> usize {
        1 + match self {
            ConsensusMessage::Proposal(p) => p.encode_size(),
            ConsensusMessage::Vote(v) => v.encode_size(),
        }
    }
}
impl Read for ConsensusMessage {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(ConsensusMessage::Proposal(SignedProposal::read(buf)?)),
            1 => Ok(ConsensusMessage::Vote(SignedVote::read(buf)?)),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

/// The bytes a vote's signature covers (its canonical encoding; the domain adds the chain).
pub fn vote_sign_bytes(vote: &Vote) -> Bytes {
    vote.encode()
}

/// The bytes a proposal's signature covers.
pub fn proposal_sign_bytes(proposal: &Proposal) -> Bytes {
    proposal.encode()
}
