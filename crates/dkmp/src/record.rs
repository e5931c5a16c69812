//! The key-release ledger's entries (DESIGN §5.5 "Key-release ledger"; issue 19, item 5): a
//! member that released a contract key records it on chain — the enclave's signed request
//! (so no member can record a release nobody asked for), what the member's state said of the
//! enclave (its compute node, identity and TCB: what `query exposure` answers from after an
//! advisory), signed by the member's consensus key. Every release needs t > f_s members, so at
//! least one honest member records it.

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt as _, Write};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey, Ed25519Signature, SigningDomain, namespace};
use tcp_types::{ChainId, Digest};

use crate::release::EnclaveRecord;
use crate::request::SignedKeyRequest;

/// A record's encoding is about 320 bytes; more is refused.
pub const MAX_RECORD_BYTES: usize = 1024;

/// What the member's committed state said of the enclave when it released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasedTo {
    pub operator: [u8; 20],
    pub measurement: [u8; 32],
    pub tcb_rank: u8,
    pub tcb_evaluation_data_number: u32,
}

impl From<&EnclaveRecord> for ReleasedTo {
    fn from(r: &EnclaveRecord) -> ReleasedTo {
        ReleasedTo {
            operator: r.operator,
            measurement: r.measurement,
            tcb_rank: r.tcb_rank,
            tcb_evaluation_data_number: r.tcb_evaluation_data_number,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub request: SignedKeyRequest,
    pub released_to: ReleasedTo,
    pub member: Ed25519PublicKey,
    pub signature: Ed25519Signature,
}

fn message(request: &Digest, to: &ReleasedTo) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + 20 + 32 + 1 + 4);
    out.extend_from_slice(&request.0);
    out.extend_from_slice(&to.operator);
    out.extend_from_slice(&to.measurement);
    out.push(to.tcb_rank);
    out.extend_from_slice(&to.tcb_evaluation_data_number.to_be_bytes());
    out
}

impl ReleaseRecord {
    /// `member`'s record of its release for `request`.
    pub fn sign(request: SignedKeyRequest, released_to: ReleasedTo, member: &Ed25519PrivateKey) -> ReleaseRecord {
        let domain = SigningDomain::new(namespace::DKMP_RELEASE_RECORD, &request.request.key.chain_id);
        let signature = domain.sign(member, &message(&request.request.digest(), &released_to));
        ReleaseRecord { request, released_to, member: commonware_cryptography::Signer::public_key(member), signature }
    }

    /// Both signatures, for `chain`: the enclave's on its request, the member's on the record.
    pub fn verify(&self, chain: &ChainId) -> bool {
        self.request.verify(chain)
            && SigningDomain::new(namespace::DKMP_RELEASE_RECORD, chain).verify(
                &self.member,
                &message(&self.request.request.digest(), &self.released_to),
                &self.signature,
            )
    }
}

impl Write for ReleaseRecord {
    fn write(&self, buf: &mut impl BufMut) {
        self.request.write(buf);
        buf.put_slice(&self.released_to.operator);
        buf.put_slice(&self.released_to.measurement);
        buf.put_u8(self.released_to.tcb_rank);
        buf.put_u32(self.released_to.tcb_evaluation_data_number);
        self.member.write(buf);
        self.signature.write(buf);
    }
}

impl EncodeSize for ReleaseRecord {
    fn encode_size(&self) -> usize {
        self.request.encode_size() + 20 + 32 + 1 + 4 + self.member.encode_size() + self.signature.encode_size()
    }
}

impl Read for ReleaseRecord {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let request = SignedKeyRequest::read(buf)?;
        let released_to = ReleasedTo {
            operator: <[u8; 20]>::read(buf)?,
            measurement: <[u8; 32]>::read(buf)?,
            tcb_rank: u8::read(buf)?,
            tcb_evaluation_data_number: u32::read(buf)?,
        };
        Ok(ReleaseRecord { request, released_to, member: Ed25519PublicKey::read(buf)?, signature: Ed25519Signature::read(buf)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derivation::ContractKeyId;
    use crate::request::{KeyPurpose, KeyRequest};
    use commonware_codec::{DecodeExt as _, Encode as _};
    use proptest::prelude::*;

    fn record() -> ReleaseRecord {
        let enclave = tcp_crypto::ed25519_from_secret(&[1; 32]);
        let request = KeyRequest {
            key: ContractKeyId { chain_id: ChainId::new("dkmp-test").unwrap(), cid: [3; 32], generation: 1 },
            epoch: 2,
            purpose: KeyPurpose::Execute,
            enclave_key: commonware_cryptography::Signer::public_key(&enclave),
            answer_key: [4; 32],
            nonce: [5; 16],
        }
        .sign(&enclave);
        let to = ReleasedTo { operator: [6; 20], measurement: [7; 32], tcb_rank: 0, tcb_evaluation_data_number: 17 };
        ReleaseRecord::sign(request, to, &tcp_crypto::ed25519_from_secret(&[2; 32]))
    }

    proptest! {
        /// A record round-trips, and any changed byte either does not decode or does not verify.
        #[test]
        fn a_record_round_trips_and_any_changed_byte_is_refused(at in 0usize..400, bit in 0u8..8) {
            let chain = ChainId::new("dkmp-test").unwrap();
            let r = record();
            let bytes = r.encode();
            prop_assert!(bytes.len() <= MAX_RECORD_BYTES);
            prop_assert_eq!(&ReleaseRecord::decode(commonware_codec::Copying(bytes.as_ref())).unwrap(), &r);
            prop_assert!(r.verify(&chain));
            let mut changed = bytes.to_vec();
            let at = at % changed.len();
            changed[at] ^= 1 << bit;
            if let Ok(decoded) = ReleaseRecord::decode(commonware_codec::Copying(changed.as_slice())) {
                prop_assert!(!decoded.verify(&chain), "byte {} changed and still verifies", at);
            }
        }
    }

    #[test]
    fn a_record_is_bound_to_its_chain() {
        assert!(!record().verify(&ChainId::new("another").unwrap()));
    }
}
