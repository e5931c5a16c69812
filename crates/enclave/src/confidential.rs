//! What keeps the host blind (DESIGN §5.4: "the host never sees plaintext data, contract keys
//! or state"):
//!
//! * **Confidential inputs.** A data owner verifies the enclave's quote, whose report data
//!   binds the enclave's X25519 key, and HPKE-seals its input to that key ([`seal_input`]),
//!   bound to the contract's code hash. Only the enclave opens it. (Contracts on the chain
//!   use DKMP's contract keys as recipient instead: `compute.rs`.)
//! * **Sealed state.** Off-chain contract state leaves the enclave encrypted under a key
//!   derived from the platform's sealing root, the enclave's measurement and the contract
//!   ([`Sealer`]): another enclave binary, another contract or another machine cannot open
//!   it. Contracts on the chain seal their state under their DKMP state key (`compute.rs`).
//! * **Signed results.** Every output carries the registered enclave key's signature of
//!   [`execution_digest`], which the enclave computes from the call it ran, so a verifier
//!   holding the enclave's verified registration ties the result to the code, the inputs and
//!   the state it came from with one signature check.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hpke::aead::ChaCha20Poly1305 as HpkeAead;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand_core_09::TryRngCore as _;
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
/// X25519 public key and encapsulated key length.
pub const KEY_LEN: usize = 32;
const SEAL_NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfidentialError {
    #[error("the sealed input is malformed")]
    MalformedInput,
    #[error("the sealed input does not open: not sealed to this enclave for this contract")]
    InputDoesNotOpen,
    #[error("the sealed state is malformed")]
    MalformedState,
    #[error("the sealed state does not open: sealed by another enclave, contract or machine, or altered")]
    StateDoesNotOpen,
    #[error(
        "this platform has no sealing key (configfs-tsm offers none): contract state needs the contract's state key from DKMP; stateless calls only"
    )]
    NoSealingKey,
}

fn input_info(code_hash: &[u8; 32]) -> Vec<u8> {
    [b"tcp/enclave/input".as_slice(), code_hash].concat()
}

/// Data owner's side: seal `plaintext` to the enclave key `enclave_key` (from a verified
/// quote) for the contract `code_hash`. The result is `encapsulated key ‖ ciphertext`.
pub fn seal_input(enclave_key: &[u8; KEY_LEN], code_hash: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(enclave_key).expect("every 32 bytes are an X25519 public key");
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (encapsulated, ciphertext) = hpke::single_shot_seal::<HpkeAead, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &recipient,
        &input_info(code_hash),
        plaintext,
        b"",
        &mut rng,
    )
    .expect("sealing to a valid key succeeds");
    [encapsulated.to_bytes().as_slice(), &ciphertext].concat()
}

/// The enclave's HPKE key pair, made at start-up and never leaving the process.
pub struct EnclaveKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; KEY_LEN],
}

impl EnclaveKey {
    pub fn generate() -> EnclaveKey {
        let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
        let (private, public) = Kem::gen_keypair(&mut rng);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&public.to_bytes());
        EnclaveKey { private, public: bytes }
    }

    pub fn public(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// Open an input sealed with [`seal_input`] for `code_hash`.
    pub fn open_input(&self, code_hash: &[u8; 32], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ConfidentialError> {
        if sealed.len() < KEY_LEN {
            return Err(ConfidentialError::MalformedInput);
        }
        let (encapsulated, ciphertext) = sealed.split_at(KEY_LEN);
        let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated).map_err(|_| ConfidentialError::MalformedInput)?;
        hpke::single_shot_open::<HpkeAead, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &encapsulated,
            &input_info(code_hash),
            ciphertext,
            b"",
        )
        .map(Zeroizing::new)
        .map_err(|_| ConfidentialError::InputDoesNotOpen)
    }
}

/// Seals contract state to (platform sealing root, enclave measurement, contract). On a
/// platform without a sealing key (TDX through configfs-tsm) there is no root, and state is
/// refused rather than sealed to a key that dies with the process: a restart after a crash or
/// timeout would leave the state unreadable. (On-chain contracts' state is sealed under their
/// DKMP state key instead, which survives any restart.)
pub struct Sealer {
    root: Option<Zeroizing<[u8; 32]>>,
    measurement: [u8; 32],
}

impl Sealer {
    pub fn new(root: Zeroizing<[u8; 32]>, measurement: [u8; 32]) -> Sealer {
        Sealer { root: Some(root), measurement }
    }

    /// A sealer for a platform with no sealing key: only the empty state passes.
    pub fn without_key(measurement: [u8; 32]) -> Sealer {
        Sealer { root: None, measurement }
    }

    fn key(&self, code_hash: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, ConfidentialError> {
        let root = self.root.as_ref().ok_or(ConfidentialError::NoSealingKey)?;
        Ok(Zeroizing::new(tcp_crypto::sha256(&[b"tcp/enclave/seal", root.as_ref(), &self.measurement, code_hash]).0))
    }

    /// `nonce ‖ ciphertext ‖ tag`, with the code hash as associated data. Without a sealing
    /// key, the empty state is the empty blob and any other state is refused.
    pub fn seal(&self, code_hash: &[u8; 32], state: &[u8]) -> Result<Vec<u8>, ConfidentialError> {
        if self.root.is_none() && state.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.key(code_hash)?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        let mut nonce = [0u8; SEAL_NONCE_LEN];
        rand_core_09::OsRng.try_fill_bytes(&mut nonce).expect("the OS RNG works");
        let ciphertext =
            cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: state, aad: code_hash }).expect("in-memory encryption succeeds");
        Ok([nonce.as_slice(), &ciphertext].concat())
    }

    /// The state sealed by [`Sealer::seal`]; an empty blob is the empty state (a contract
    /// before `init`).
    pub fn open(&self, code_hash: &[u8; 32], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ConfidentialError> {
        if sealed.is_empty() {
            return Ok(Zeroizing::new(Vec::new()));
        }
        if sealed.len() < SEAL_NONCE_LEN + 16 {
            return Err(ConfidentialError::MalformedState);
        }
        let (nonce, ciphertext) = sealed.split_at(SEAL_NONCE_LEN);
        let key = self.key(code_hash)?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: code_hash })
            .map(Zeroizing::new)
            .map_err(|_| ConfidentialError::StateDoesNotOpen)
    }
}

/// Which entry point of a contract a call ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Init,
    Execute,
}

/// What an output's signature covers: the entry point, the contract, the request as the host
/// sent it (sealed state, input and data, and the host's nonce), and the answer (sealed state,
/// result and the fuel it used — the fee is charged by it).
#[allow(clippy::too_many_arguments)]
pub fn execution_digest(
    entry: Entry,
    code_hash: &[u8; 32],
    nonce: &[u8; 32],
    state_in: &[u8],
    input: &[u8],
    data: &[u8],
    state_out: &[u8],
    result: &[u8],
    fuel_used: u64,
) -> [u8; 32] {
    let h = |bytes: &[u8]| tcp_crypto::sha256(&[bytes]).0;
    let entry = [match entry {
        Entry::Init => 0u8,
        Entry::Execute => 1,
    }];
    tcp_crypto::sha256(&[
        b"tcp/enclave/execution",
        &entry,
        code_hash,
        nonce,
        &h(state_in),
        &h(input),
        &h(data),
        &h(state_out),
        &h(result),
        &fuel_used.to_be_bytes(),
    ])
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under configfs-tsm there is no sealing key: state sealed to a per-process key would be
    /// lost at the first crash or timeout, so it is refused instead (issue 18, item 6).
    #[test]
    fn a_sealer_without_a_key_refuses_state_instead_of_sealing_it_to_the_process() {
        let code = [7u8; 32];
        let keyless = Sealer::without_key([1; 32]);
        assert_eq!(keyless.seal(&code, b"balance=10"), Err(ConfidentialError::NoSealingKey));
        assert_eq!(keyless.seal(&code, b""), Ok(Vec::new()), "the empty state needs no key");
        assert_eq!(keyless.open(&code, b"").unwrap().as_slice(), b"");
        let sealed = Sealer::new(Zeroizing::new([9; 32]), [1; 32]).seal(&code, b"balance=10").unwrap();
        assert_eq!(keyless.open(&code, &sealed), Err(ConfidentialError::NoSealingKey));

        // With a platform root, state survives the process: another sealer on the same root
        // (a restarted enclave) opens it.
        let restarted = Sealer::new(Zeroizing::new([9; 32]), [1; 32]);
        assert_eq!(restarted.open(&code, &sealed).unwrap().as_slice(), b"balance=10");
    }
}
