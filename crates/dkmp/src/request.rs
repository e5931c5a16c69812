//! A key request and its answer (DESIGN §5.5, "Release"). The enclave names the key (chain,
//! contract, generation), the SSSG epoch it asks, why (executing a contract or deploying one),
//! its registered signing key, a fresh X25519 key for the answer and a nonce, and signs the
//! whole with its registered key (namespace `tcp/dkmp/key-request` and the chain id). A member
//! answers with its partial, signed by its consensus key, HPKE-sealed to the request's fresh key
//! and bound to the request's digest, so the host that relays both sees only ciphertext, an
//! answer to one request does not open as an answer to another, and no one can answer in a
//! member's name.

use bytes::BufMut;
use commonware_codec::{Buf, DecodeExt as _, Encode as _, EncodeSize, Error as CodecError, Read, ReadExt as _, Write};
use hpke::{Deserializable as _, Serializable as _};
use tcp_beacon::signature::Partial;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey, Ed25519Signature, SigningDomain, namespace, sha256};
use tcp_types::{ChainId, Digest};

use crate::derivation::ContractKeyId;

type Kem = hpke::kem::X25519HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;
type Kdf = hpke::kdf::HkdfSha256;

/// Why an enclave asks for a contract's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// To execute a deployed contract.
    Execute,
    /// To deploy one: the contract does not exist yet, and members recompute its id from what
    /// it is made of ([`crate::contract_id`]).
    Deploy { code_hash: [u8; 32], deployer: [u8; 20], nonce: u64 },
}

impl KeyPurpose {
    /// 0 execute, 1 deploy (the encoding's tag; the ledger's field).
    pub fn code(&self) -> u8 {
        match self {
            KeyPurpose::Execute => 0,
            KeyPurpose::Deploy { .. } => 1,
        }
    }
}

/// What an enclave asks the SSSG for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    pub key: ContractKeyId,
    /// The SSSG epoch asked: a member of another epoch's group refuses it.
    pub epoch: u64,
    pub purpose: KeyPurpose,
    /// The enclave's registered ed25519 key, which signs the request.
    pub enclave_key: Ed25519PublicKey,
    /// A fresh X25519 public key the answers are sealed to; its secret never leaves the enclave.
    pub answer_key: [u8; 32],
    /// Makes every request distinct, so a member can refuse a replay.
    pub nonce: [u8; 16],
}

impl Write for KeyRequest {
    fn write(&self, buf: &mut impl BufMut) {
        self.key.chain_id.write(buf);
        buf.put_slice(&self.key.cid);
        self.key.generation.write(buf);
        self.epoch.write(buf);
        self.purpose.code().write(buf);
        if let KeyPurpose::Deploy { code_hash, deployer, nonce } = &self.purpose {
            buf.put_slice(code_hash);
            buf.put_slice(deployer);
            nonce.write(buf);
        }
        self.enclave_key.write(buf);
        buf.put_slice(&self.answer_key);
        buf.put_slice(&self.nonce);
    }
}

impl EncodeSize for KeyRequest {
    fn encode_size(&self) -> usize {
        let deploy = if matches!(self.purpose, KeyPurpose::Deploy { .. }) { 32 + 20 + 8 } else { 0 };
        self.key.chain_id.encode_size() + 32 + 8 + 8 + 1 + deploy + self.enclave_key.encode_size() + 32 + 16
    }
}

impl Read for KeyRequest {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let chain_id = ChainId::read(buf)?;
        let cid = <[u8; 32]>::read(buf)?;
        let generation = u64::read(buf)?;
        let epoch = u64::read(buf)?;
        let purpose = match u8::read(buf)? {
            0 => KeyPurpose::Execute,
            1 => KeyPurpose::Deploy { code_hash: <[u8; 32]>::read(buf)?, deployer: <[u8; 20]>::read(buf)?, nonce: u64::read(buf)? },
            _ => return Err(CodecError::Invalid("KeyRequest", "purpose")),
        };
        let enclave_key = Ed25519PublicKey::read(buf)?;
        let answer_key = <[u8; 32]>::read(buf)?;
        let nonce = <[u8; 16]>::read(buf)?;
        Ok(KeyRequest { key: ContractKeyId { chain_id, cid, generation }, epoch, purpose, enclave_key, answer_key, nonce })
    }
}

impl KeyRequest {
    /// What identifies the request (a member's replay set, the release ledger, the answer's
    /// binding): SHA-256 of its encoding.
    pub fn digest(&self) -> Digest {
        sha256(&[b"tcp/dkmp/key-request", &self.encode()])
    }

    /// Signed by the enclave's registered key, under the key-request namespace and the chain.
    pub fn sign(self, signing_key: &Ed25519PrivateKey) -> SignedKeyRequest {
        let signature = SigningDomain::new(namespace::DKMP_KEY_REQUEST, &self.key.chain_id).sign(signing_key, &self.encode());
        SignedKeyRequest { request: self, signature }
    }
}

/// A request and the enclave's signature over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedKeyRequest {
    pub request: KeyRequest,
    pub signature: Ed25519Signature,
}

impl Write for SignedKeyRequest {
    fn write(&self, buf: &mut impl BufMut) {
        self.request.write(buf);
        self.signature.write(buf);
    }
}

impl EncodeSize for SignedKeyRequest {
    fn encode_size(&self) -> usize {
        self.request.encode_size() + self.signature.encode_size()
    }
}

impl Read for SignedKeyRequest {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(SignedKeyRequest { request: KeyRequest::read(buf)?, signature: Ed25519Signature::read(buf)? })
    }
}

impl SignedKeyRequest {
    /// Whether the request is signed by the enclave key it names, for `chain`. One ed25519
    /// verification: what a member checks first, before any state lookup or pairing.
    pub fn verify(&self, chain: &ChainId) -> bool {
        &self.request.key.chain_id == chain
            && SigningDomain::new(namespace::DKMP_KEY_REQUEST, chain).verify(
                &self.request.enclave_key,
                &self.request.encode(),
                &self.signature,
            )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("the answer does not open: not for this request or altered")]
    DoesNotOpen,
    #[error("the answer holds no partial signature")]
    Malformed,
    #[error("the answer is not signed by the member it is attributed to")]
    NotFromMember,
    #[error("the answer is {0} bytes, more than any answer")]
    TooLarge(usize),
}

/// An answer's size: encapsulated key, the partial with its index, the member's signature and
/// the AEAD tag, with room to spare. Larger ones are refused before decryption.
pub const MAX_ANSWER_BYTES: usize = 256;

/// What the member signs inside its answer: the request's digest and its partial.
fn answer_message(request: &Digest, partial: &[u8]) -> Vec<u8> {
    [request.0.as_slice(), partial].concat()
}

fn answer_info(request: &Digest) -> Vec<u8> {
    [b"tcp/dkmp/partial".as_slice(), &request.0].concat()
}

/// A member's answer: its partial and its consensus key's signature over (request digest,
/// partial) — under `tcp/dkmp/key-answer` and the chain id, so the enclave knows which member
/// answered and blames only that one — HPKE-sealed (base mode, X25519-HKDF-SHA256,
/// ChaCha20-Poly1305) to the request's answer key with the request digest in the context:
/// `encapsulated key ‖ ciphertext`. Returns None if the answer key is not a valid X25519 key.
pub fn seal_partial(
    rng: &mut impl rand_core::CryptoRng,
    request: &KeyRequest,
    partial: &Partial,
    member: &Ed25519PrivateKey,
) -> Option<Vec<u8>> {
    seal_answer(rng, &request.key.chain_id, &request.digest(), &request.answer_key, partial, member)
}

/// A member's answer to the request with digest `digest` (a key request's, or a result-key
/// request's), sealed to `answer_key`: as [`seal_partial`] describes.
pub fn seal_answer(
    rng: &mut impl rand_core::CryptoRng,
    chain: &ChainId,
    digest: &Digest,
    answer_key: &[u8; 32],
    partial: &Partial,
    member: &Ed25519PrivateKey,
) -> Option<Vec<u8>> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(answer_key).ok()?;
    let digest = *digest;
    let partial_bytes = partial.encode();
    let signature = SigningDomain::new(namespace::DKMP_KEY_ANSWER, chain).sign(member, &answer_message(&digest, &partial_bytes));
    let plain = zeroize::Zeroizing::new([partial_bytes.as_ref(), &signature.encode()].concat());
    let (encapsulated, ciphertext) =
        hpke::single_shot_seal::<Aead, Kdf, Kem, _>(&hpke::OpModeS::Base, &recipient, &answer_info(&digest), &plain, b"", &mut Rng09(rng))
            .ok()?;
    Some([encapsulated.to_bytes().as_slice(), &ciphertext].concat())
}

/// The workspace's RNG (rand_core 0.10) as the one `hpke` takes (rand_core 0.9).
struct Rng09<'a, R>(&'a mut R);

impl<R: rand_core::CryptoRng> rand_core_09::RngCore for Rng09<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl<R: rand_core::CryptoRng> rand_core_09::CryptoRng for Rng09<'_, R> {}

/// The enclave's side: open `member`'s answer to `request` with the answer key's secret, and
/// check the member signed it.
pub fn open_partial(
    answer_secret: &[u8; 32],
    request: &KeyRequest,
    sealed: &[u8],
    member: &Ed25519PublicKey,
) -> Result<Partial, AnswerError> {
    open_answer(answer_secret, &request.key.chain_id, &request.digest(), sealed, member)
}

/// Open `member`'s answer to the request with digest `digest` and check the member signed it.
pub fn open_answer(
    answer_secret: &[u8; 32],
    chain: &ChainId,
    digest: &Digest,
    sealed: &[u8],
    member: &Ed25519PublicKey,
) -> Result<Partial, AnswerError> {
    if sealed.len() > MAX_ANSWER_BYTES {
        return Err(AnswerError::TooLarge(sealed.len()));
    }
    let digest = *digest;
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(answer_secret).map_err(|_| AnswerError::DoesNotOpen)?;
    let (encapsulated, ciphertext) = sealed.split_at_checked(32).ok_or(AnswerError::DoesNotOpen)?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated).map_err(|_| AnswerError::DoesNotOpen)?;
    let plain = zeroize::Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(&hpke::OpModeR::Base, &secret, &encapsulated, &answer_info(&digest), ciphertext, b"")
            .map_err(|_| AnswerError::DoesNotOpen)?,
    );
    let split = plain.len().checked_sub(64).ok_or(AnswerError::Malformed)?;
    let (partial_bytes, signature) = plain.split_at(split);
    let signature = Ed25519Signature::decode(commonware_codec::Copying(signature)).map_err(|_| AnswerError::Malformed)?;
    if !SigningDomain::new(namespace::DKMP_KEY_ANSWER, chain).verify(
        member,
        &answer_message(&digest, partial_bytes),
        &signature,
    ) {
        return Err(AnswerError::NotFromMember);
    }
    Partial::decode(commonware_codec::Copying(partial_bytes)).map_err(|_| AnswerError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derivation::partial_contract_key;
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use commonware_cryptography::bls12381::primitives::variant::MinSig;
    use commonware_utils::N3f1;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    fn key(seed: u8) -> Ed25519PrivateKey {
        tcp_crypto::ed25519_from_secret(&[seed; 32])
    }

    fn enclave(seed: u8) -> Ed25519PrivateKey {
        tcp_crypto::ed25519_from_secret(&[seed; 32])
    }

    fn request(nonce: [u8; 16], answer_key: [u8; 32]) -> KeyRequest {
        KeyRequest {
            key: ContractKeyId { chain_id: ChainId::new("dkmp-test").unwrap(), cid: [3; 32], generation: 2 },
            epoch: 5,
            purpose: KeyPurpose::Execute,
            enclave_key: enclave(1).public_key(),
            answer_key,
            nonce,
        }
    }

    fn answer_keys(seed: u8) -> ([u8; 32], [u8; 32]) {
        let (secret, public) = <Kem as hpke::Kem>::derive_keypair(&[seed; 32]);
        (secret.to_bytes().into(), public.to_bytes().into())
    }

    proptest! {
        #[test]
        fn a_signed_request_round_trips_and_any_changed_byte_is_refused(nonce in any::<[u8; 16]>(), at in 0usize..200, bit in 0u8..8) {
            let chain = ChainId::new("dkmp-test").unwrap();
            let signed = request(nonce, answer_keys(1).1).sign(&enclave(1));
            let bytes = signed.encode();
            prop_assert_eq!(&SignedKeyRequest::decode(commonware_codec::Copying(bytes.as_ref())).unwrap(), &signed);
            prop_assert!(signed.verify(&chain));
            let at = at % bytes.len();
            let mut changed = bytes.to_vec();
            changed[at] ^= 1 << bit;
            if let Ok(decoded) = SignedKeyRequest::decode(commonware_codec::Copying(changed.as_slice())) {
                prop_assert!(!decoded.verify(&chain), "byte {} changed and still verifies", at);
            }
        }
    }

    #[test]
    fn a_request_is_bound_to_its_chain_and_its_signer() {
        let signed = request([0; 16], answer_keys(1).1).sign(&enclave(1));
        assert!(!signed.verify(&ChainId::new("another-chain").unwrap()), "another chain");
        let forged = request([0; 16], answer_keys(1).1).sign(&enclave(2));
        assert!(!forged.verify(&ChainId::new("dkmp-test").unwrap()), "signed by a key other than the one it names");
        assert_ne!(request([0; 16], answer_keys(1).1).digest(), request([1; 16], answer_keys(1).1).digest(), "the nonce");
    }

    /// What the host relays holds no partial in the clear, and an answer opens only for its
    /// own request and answer key.
    #[test]
    fn an_answer_opens_only_for_its_request_and_the_host_sees_ciphertext() {
        let (_, shares) =
            deal_anonymous::<MinSig, N3f1>(ChaCha20Rng::seed_from_u64(1), Mode::NonZeroCounter, std::num::NonZeroU32::new(4).unwrap());
        let (secret, public) = answer_keys(7);
        let asked = request([9; 16], public);
        let partial = partial_contract_key(&shares[2], &asked.key);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let member = key(3);
        let sealed = seal_partial(&mut rng, &asked, &partial, &member).unwrap();
        assert!(sealed.len() <= MAX_ANSWER_BYTES);
        let clear = partial.encode();
        assert!(!sealed.windows(12).any(|w| clear.windows(12).any(|c| c == w)), "no 12-byte run of the partial is visible");
        assert_eq!(open_partial(&secret, &asked, &sealed, &member.public_key()).unwrap(), partial);
        // Anyone can seal to the answer key (it is in the request): an answer sealed by the
        // host, or by one member in another's name, does not pass as that member's.
        let impostor = seal_partial(&mut rng, &asked, &partial, &key(4)).unwrap();
        assert_eq!(open_partial(&secret, &asked, &impostor, &member.public_key()), Err(AnswerError::NotFromMember));
        assert_eq!(open_partial(&secret, &asked, &[0; 257], &member.public_key()), Err(AnswerError::TooLarge(257)));
        let member = member.public_key();

        let other = request([8; 16], public);
        assert_eq!(open_partial(&secret, &other, &sealed, &member), Err(AnswerError::DoesNotOpen), "another request");
        assert_eq!(open_partial(&answer_keys(8).0, &asked, &sealed, &member), Err(AnswerError::DoesNotOpen), "another answer key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open_partial(&secret, &asked, &altered, &member), Err(AnswerError::DoesNotOpen));
        assert_eq!(open_partial(&secret, &asked, &sealed[..20], &member), Err(AnswerError::DoesNotOpen));
    }
}
