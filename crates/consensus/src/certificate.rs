//! Commit certificates: the > 2/3 precommits that decided a height, checkable by anyone who
//! knows the chain id and the validator set of that height.

use crate::params::PrecommitExtension;
use crate::signing::ConsensusDomains;
use crate::types::{MAX_VALIDATORS, SignedVote, ValidatorSet, ValueId, VoteType};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write};
use tcp_types::{Height, Round, ValidatorIndex};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitCertificate {
    pub height: Height,
    pub round: Round,
    pub value: ValueId,
    /// Sorted by validator index, one per validator.
    pub precommits: Vec<SignedVote>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("precommit {0} is not a precommit for the certified height, round and value")]
    Mismatch(usize),
    #[error("precommits are not sorted by validator or repeat a validator at position {0}")]
    NotSortedOrDuplicate(usize),
    #[error("precommit {0} names validator {1}, who is not in the validator set")]
    UnknownValidator(usize, ValidatorIndex),
    #[error("precommit {0} has an invalid signature")]
    BadSignature(usize),
    #[error("precommit {0} has an invalid extension")]
    BadExtension(usize),
    #[error("precommits hold {power} of {total} voting power, not more than two thirds")]
    NoQuorum { power: u64, total: u64 },
}

impl CommitCertificate {
    /// Check the certificate as a third party: every precommit is for this (height, round,
    /// value), signed by a distinct member, with a valid extension, and together they hold
    /// more than two thirds of the power.
    pub fn verify(
        &self,
        domains: &ConsensusDomains,
        validators: &ValidatorSet,
        extension: &dyn PrecommitExtension,
    ) -> Result<(), CertificateError> {
        let mut power = 0u64;
        let mut previous: Option<ValidatorIndex> = None;
        for (i, signed) in self.precommits.iter().enumerate() {
            let vote = &signed.vote;
            if vote.vote_type != VoteType::Precommit
                || vote.height != self.height
                || vote.round != self.round
                || vote.value != Some(self.value)
            {
                return Err(CertificateError::Mismatch(i));
            }
            if previous.is_some_and(|p| p >= vote.validator) {
                return Err(CertificateError::NotSortedOrDuplicate(i));
            }
            previous = Some(vote.validator);
            if validators.get(vote.validator).is_none() {
                return Err(CertificateError::UnknownValidator(i, vote.validator));
            }
            if !domains.verify_vote(validators, signed) {
                return Err(CertificateError::BadSignature(i));
            }
            if !extension.verify(self.height, self.round, vote.validator, &self.value, &vote.extension) {
                return Err(CertificateError::BadExtension(i));
            }
            power += validators.power(vote.validator);
        }
        if !validators.is_quorum(power) {
            return Err(CertificateError::NoQuorum { power, total: validators.total_power() });
        }
        Ok(())
    }
}

impl Write for CommitCertificate {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.round.write(buf);
        self.value.write(buf);
        self.precommits.write(buf);
    }
}
impl EncodeSize for CommitCertificate {
    fn encode_size(&self) -> usize {
        Height::SIZE + Round::SIZE + ValueId::SIZE + self.precommits.encode_size()
    }
}
impl Read for CommitCertificate {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(CommitCertificate {
            height: Height::read(buf)?,
            round: Round::read(buf)?,
            value: ValueId::read(buf)?,
            precommits: Vec::<SignedVote>::read_cfg(buf, &(RangeCfg::from(1..=MAX_VALIDATORS), ()))?,
        })
    }
}
