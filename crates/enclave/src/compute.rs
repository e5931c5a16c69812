//! Deploy and execute as the chain settles them (DESIGN §5.4, §5.6; issue 20): what the enclave
//! checks before it runs a client's request, how it keeps a contract's secrets under the
//! contract's DKMP keys, and the outcome it signs for the chain (`tcp_state::ComputeOutcome`).
//!
//! * **Inputs and data** are HPKE-sealed to the contract's published X25519 key of a named
//!   generation ([`seal_to_contract`]); a data blob is sealed with its owner's signed terms as
//!   associated data, so it opens only under them (no host can swap in a lower price or
//!   another payee).
//! * **State** is encrypted under the contract's state key (ChaCha20-Poly1305; the chain id,
//!   contract and generation as associated data): any registered enclave that obtains the key
//!   continues a contract another one ran; a rotation re-encrypts under the new generation.
//! * **Results** open only after the execution commits: the envelope (status, a random
//!   blinding, the bytes) is encrypted by identity-based encryption to (chain id, cid, request
//!   id) under the master public key (`tcp_dkmp::result`), then sealed to the client's result
//!   key. The group's members release that identity's key only for a request committed on their
//!   state, sealed to the result key it names. The chain holds [`result_hash`], which reveals
//!   nothing of a low-entropy result (a credit score) yet lets the client check what it opened.
//! * **The chain as the enclave sees it**: a header with its finality signature φ under the
//!   group key pinned at registration, and state proofs against its root — the contract's
//!   record (code, generations, state hash) and the request id's absence. A host that shows an
//!   old header makes the enclave run on a state the chain refuses as stale.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hpke::aead::ChaCha20Poly1305 as HpkeAead;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256 as Kem;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use rand_core_09::TryRngCore as _;
use tcp_state::CallStatus;
use tcp_types::ChainId;
use zeroize::Zeroizing;

/// What a sealed value is for: each has its own HPKE info, so none opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed {
    Input,
    Data,
}

fn contract_info(purpose: Sealed, chain: &ChainId, cid: &[u8; 32], generation: u64) -> Vec<u8> {
    let tag: &[u8] = match purpose {
        Sealed::Input => b"tcp/contract/input",
        Sealed::Data => b"tcp/contract/data",
    };
    [tag, &[0], chain.as_str().as_bytes(), &[0], cid, &generation.to_be_bytes()].concat()
}

fn os_rng() -> rand_core_09::UnwrapErr<rand_core_09::OsRng> {
    rand_core_09::UnwrapErr(rand_core_09::OsRng)
}

/// Client's or data owner's side: seal `plaintext` to the contract `cid`'s public key of
/// `generation` (from a verified state proof). `aad`: a data blob's terms digest, empty for an
/// input. The result is `generation (uint64) ‖ encapsulated key (32) ‖ ciphertext`.
pub fn seal_to_contract(
    purpose: Sealed,
    chain: &ChainId,
    cid: &[u8; 32],
    generation: u64,
    public_key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(public_key).expect("every 32 bytes are an X25519 public key");
    let (encapsulated, ciphertext) = hpke::single_shot_seal::<HpkeAead, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &recipient,
        &contract_info(purpose, chain, cid, generation),
        plaintext,
        aad,
        &mut os_rng(),
    )
    .expect("sealing to a valid key succeeds");
    [generation.to_be_bytes().as_slice(), &encapsulated.to_bytes(), &ciphertext].concat()
}

/// The generation a value sealed by [`seal_to_contract`] names.
pub fn sealed_generation(sealed: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(sealed.get(..8)?.try_into().ok()?))
}

/// Open a value sealed by [`seal_to_contract`] with the contract's keys of the generation it names.
pub fn open_from_contract(
    purpose: Sealed,
    chain: &ChainId,
    cid: &[u8; 32],
    keys: &tcp_dkmp::ContractKeys,
    generation: u64,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, String> {
    if sealed.len() < 8 + 32 || sealed_generation(sealed) != Some(generation) {
        return Err("malformed sealed value".into());
    }
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(keys.secret_key()).map_err(|_| "contract key")?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[8..40]).map_err(|_| "malformed sealed value")?;
    hpke::single_shot_open::<HpkeAead, HkdfSha256, Kem>(
        &OpModeR::Base,
        &private,
        &encapsulated,
        &contract_info(purpose, chain, cid, generation),
        &sealed[40..],
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| "the sealed value does not open: not sealed to this contract's key of that generation, or altered".into())
}

fn state_aad(chain: &ChainId, cid: &[u8; 32], generation: u64) -> Vec<u8> {
    [b"tcp/contract/state".as_slice(), &[0], chain.as_str().as_bytes(), &[0], cid, &generation.to_be_bytes()].concat()
}

/// Encrypt a contract's state under its state key of `generation`: `nonce (12) ‖ ciphertext`.
/// An empty state is sealed too, so that every state hash names the one generation its state is
/// under (what keys the commitment of a call on it, `ComputeOutcome::computed`); a nothing
/// stored would be the same under every generation.
pub fn seal_state(chain: &ChainId, cid: &[u8; 32], generation: u64, keys: &tcp_dkmp::ContractKeys, state: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(keys.state_key()));
    let mut nonce = [0u8; 12];
    rand_core_09::OsRng.try_fill_bytes(&mut nonce).expect("the OS RNG works");
    let aad = state_aad(chain, cid, generation);
    let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: state, aad: &aad }).expect("in-memory encryption succeeds");
    [nonce.as_slice(), &ciphertext].concat()
}

pub fn open_state(chain: &ChainId, cid: &[u8; 32], generation: u64, keys: &tcp_dkmp::ContractKeys, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    // Nothing stored: a contract deployed before empty states were sealed.
    if sealed.is_empty() {
        return Ok(Zeroizing::new(Vec::new()));
    }
    if sealed.len() < 12 + 16 {
        return Err("malformed contract state".into());
    }
    let cipher = ChaCha20Poly1305::new(Key::from_slice(keys.state_key()));
    let aad = state_aad(chain, cid, generation);
    cipher
        .decrypt(Nonce::from_slice(&sealed[..12]), Payload { msg: &sealed[12..], aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| "the contract state does not open under its key: altered, or of another contract".into())
}

/// The commitment to a result the chain keeps: SHA-256 of the request id, the status, the
/// envelope's random blinding and the result's bytes.
pub fn result_hash(request_id: &[u8; 32], status: CallStatus, blinding: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    tcp_crypto::sha256(&[b"tcp/compute/result", request_id, &[status as u8], blinding, bytes]).0
}

fn result_info(request_id: &[u8; 32]) -> Vec<u8> {
    [b"tcp/compute/result".as_slice(), request_id].concat()
}

/// Which result: the chain, the contract and the request (its identity).
#[derive(Clone, Copy, Debug)]
pub struct ResultOf<'a> {
    pub chain: &'a ChainId,
    pub cid: &'a [u8; 32],
    pub request_id: &'a [u8; 32],
}

impl ResultOf<'_> {
    /// The identity of the run whose result hash is `result_hash`.
    pub fn identity(&self, result_hash: &[u8; 32]) -> Vec<u8> {
        tcp_dkmp::result::result_identity(self.chain, self.cid, self.request_id, result_hash)
    }
}

/// Seal a call's result (or error): `encapsulated key ‖ HPKE(IBE(status ‖ blinding ‖ bytes))`,
/// the inner layer to the result's identity under `master_key`, the outer to the client's result
/// key; and its commitment. A result key HPKE cannot seal to (a low-order point: the shared
/// secret would be zero) is an error, never a panic — the client chooses it.
pub fn seal_result(
    rng: &mut impl rand_core::CryptoRng,
    of: ResultOf<'_>,
    master_key: &[u8; 96],
    result_key: &[u8; 32],
    status: CallStatus,
    bytes: &[u8],
) -> Result<(Vec<u8>, [u8; 32]), String> {
    let mut blinding = [0u8; 32];
    rng.fill_bytes(&mut blinding);
    let envelope = Zeroizing::new([&[status as u8], blinding.as_slice(), bytes].concat());
    let hash = result_hash(of.request_id, status, &blinding, bytes);
    let locked = tcp_dkmp::result::seal_to_identity(rng, master_key, &of.identity(&hash), &envelope)?;
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(result_key).map_err(|_| "the request's result key is not an X25519 key")?;
    let (encapsulated, ciphertext) =
        hpke::single_shot_seal::<HpkeAead, HkdfSha256, Kem, _>(&OpModeS::Base, &recipient, &result_info(of.request_id), &locked, b"", &mut os_rng())
            .map_err(|_| "the request's result key cannot be sealed to (a low-order point)")?;
    Ok(([encapsulated.to_bytes().as_slice(), &ciphertext].concat(), hash))
}

/// A result as the client opens it.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedResult {
    pub status: CallStatus,
    /// The contract's result, or the failed call's error message.
    pub bytes: Vec<u8>,
}

/// Client's side: open a sealed result with the result key's secret and the identity's key the
/// group released once the request committed, and check it against the commitment the chain
/// holds.
pub fn open_result(
    of: ResultOf<'_>,
    result_secret: &[u8; 32],
    identity_key: &tcp_dkmp::result::ResultKey,
    sealed: &[u8],
    committed_hash: &[u8; 32],
) -> Result<OpenedResult, String> {
    if sealed.len() < 32 {
        return Err("malformed sealed result".into());
    }
    let request_id = of.request_id;
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(result_secret).map_err(|_| "result key")?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..32]).map_err(|_| "malformed sealed result")?;
    let locked = hpke::single_shot_open::<HpkeAead, HkdfSha256, Kem>(&OpModeR::Base, &private, &encapsulated, &result_info(request_id), &sealed[32..], b"")
        .map(Zeroizing::new)
        .map_err(|_| "the result does not open with this result key")?;
    let envelope = tcp_dkmp::result::open_with_result_key(identity_key, &of.identity(committed_hash), &locked)?;
    if envelope.len() < 33 {
        return Err("malformed result envelope".into());
    }
    let status = match envelope[0] {
        0 => CallStatus::Ok,
        1 => CallStatus::Failed,
        _ => return Err("malformed result envelope".into()),
    };
    let blinding: [u8; 32] = envelope[1..33].try_into().expect("32 bytes");
    let bytes = envelope[33..].to_vec();
    if result_hash(request_id, status, &blinding, &bytes) != *committed_hash {
        return Err("the opened result does not match the hash on chain".into());
    }
    Ok(OpenedResult { status, bytes })
}

/// A client's result key pair: the secret stays with the client.
pub fn result_key_pair() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let (secret, public) = <Kem as hpke::Kem>::gen_keypair(&mut os_rng());
    let mut s = Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&secret.to_bytes());
    (s, public.to_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contract 1's keys at `generation`, as a real group's threshold signature derives them.
    fn keys(generation: u64) -> tcp_dkmp::ContractKeys {
        use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
        use commonware_cryptography::bls12381::primitives::{sharing::Mode, variant::MinSig};
        use rand_core::SeedableRng as _;
        let (sharing, shares) = deal_anonymous::<MinSig, commonware_utils::N3f1>(
            rand_chacha::ChaCha20Rng::seed_from_u64(1),
            Mode::NonZeroCounter,
            std::num::NonZeroU32::new(4).unwrap(),
        );
        let id = tcp_dkmp::ContractKeyId { chain_id: ChainId::new("compute-test").unwrap(), cid: [1; 32], generation };
        let partials: Vec<_> = shares.iter().map(|s| (s.index.get(), tcp_dkmp::partial_contract_key(s, &id))).collect();
        let (seed, _) = tcp_dkmp::recover_contract_key(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2), &sharing, &id, &partials).unwrap();
        tcp_dkmp::ContractKeys::derive(&seed, &id)
    }

    #[test]
    fn sealed_values_open_only_for_their_contract_generation_purpose_and_terms() {
        let chain = ChainId::new("compute-test").unwrap();
        let (k0, k1) = (keys(0), keys(1));
        let sealed = seal_to_contract(Sealed::Data, &chain, &[1; 32], 0, &k0.public_key, b"terms", b"records");
        assert_eq!(open_from_contract(Sealed::Data, &chain, &[1; 32], &k0, 0, b"terms", &sealed).unwrap().as_slice(), b"records");
        assert!(open_from_contract(Sealed::Data, &chain, &[1; 32], &k0, 0, b"other terms", &sealed).is_err(), "swapped terms");
        assert!(open_from_contract(Sealed::Input, &chain, &[1; 32], &k0, 0, b"terms", &sealed).is_err(), "another purpose");
        assert!(open_from_contract(Sealed::Data, &chain, &[2; 32], &k0, 0, b"terms", &sealed).is_err(), "another contract");
        assert!(open_from_contract(Sealed::Data, &chain, &[1; 32], &k1, 1, b"terms", &sealed).is_err(), "another generation");
        let state = seal_state(&chain, &[1; 32], 0, &k0, b"balance");
        assert_eq!(open_state(&chain, &[1; 32], 0, &k0, &state).unwrap().as_slice(), b"balance");
        assert!(open_state(&chain, &[2; 32], 0, &k0, &state).is_err());
        assert!(open_state(&chain, &[1; 32], 1, &k1, &state).is_err());
    }

    #[test]
    fn a_result_opens_for_its_client_with_the_groups_key_of_its_identity_and_matches_its_commitment_only() {
        use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
        use commonware_cryptography::bls12381::primitives::{sharing::Mode, variant::MinSig};
        use rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let (sharing, shares) = deal_anonymous::<MinSig, commonware_utils::N3f1>(
            rand_chacha::ChaCha20Rng::seed_from_u64(1),
            Mode::NonZeroCounter,
            std::num::NonZeroU32::new(4).unwrap(),
        );
        let master: [u8; 96] = tcp_beacon::signature::group_key_to_bytes(sharing.public()).try_into().unwrap();
        let chain = &ChainId::new("compute-test").unwrap();
        let of = |request_id: &'static [u8; 32]| ResultOf { chain, cid: &[1; 32], request_id };
        let identity_key = |of: ResultOf<'_>, hash: &[u8; 32]| {
            let identity = of.identity(hash);
            let partials: Vec<_> = shares.iter().map(|s| (s.index.get(), tcp_dkmp::result::partial_result_key(s, &identity))).collect();
            tcp_dkmp::result::recover_result_key(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2), &sharing, &identity, &partials).unwrap().0
        };
        let (secret, public) = result_key_pair();
        let (sealed, hash) = seal_result(&mut rng, of(&[7; 32]), &master, &public, CallStatus::Ok, b"score 712").unwrap();
        let key = identity_key(of(&[7; 32]), &hash);
        let opened = open_result(of(&[7; 32]), &secret, &key, &sealed, &hash).unwrap();
        assert_eq!(opened, OpenedResult { status: CallStatus::Ok, bytes: b"score 712".to_vec() });
        // The client's key alone, another request's identity key, another commitment: nothing.
        assert!(open_result(of(&[7; 32]), &secret, &identity_key(of(&[8; 32]), &hash), &sealed, &hash).is_err(), "another identity");
        // Another run of the same request (the key released for the run that committed).
        let (other_run, other_hash) = seal_result(&mut rng, of(&[7; 32]), &master, &public, CallStatus::Ok, b"score 712").unwrap();
        assert!(open_result(of(&[7; 32]), &secret, &key, &other_run, &other_hash).is_err(), "another run's identity");
        assert!(open_result(of(&[8; 32]), &secret, &key, &sealed, &hash).is_err(), "another request");
        assert!(open_result(of(&[7; 32]), &secret, &key, &sealed, &[0; 32]).is_err(), "another commitment");
        let (other_secret, _) = result_key_pair();
        assert!(open_result(of(&[7; 32]), &other_secret, &key, &sealed, &hash).is_err(), "another client");
        // The commitment hides a low-entropy result: the same result seals to another hash.
        let (_, again) = seal_result(&mut rng, of(&[7; 32]), &master, &public, CallStatus::Ok, b"score 712").unwrap();
        assert_ne!(hash, again);
        // A low-order result key (chosen by a client to crash the enclave) is an error.
        assert!(seal_result(&mut rng, of(&[7; 32]), &master, &[0; 32], CallStatus::Ok, b"x").is_err());
    }
}
