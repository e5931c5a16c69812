//! Account keys and addresses: secp256k1 ECDSA with Ethereum-style addresses, so one key
//! controls the same address on TCP and on the root chain (whose contract checks it with
//! `ecrecover`).

use bytes::BufMut;
use commonware_codec::{Buf, Error as CodecError, FixedSize, Read, ReadExt, Write};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use sha3::{Digest as _, Keccak256};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// keccak-256 over the concatenation of `parts`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The last 20 bytes of keccak-256 of the uncompressed public key (without its 0x04 prefix).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("an address is 0x followed by 40 hex digits, got {0:?}")]
    Malformed(String),
}

impl Address {
    pub const ZERO: Address = Address([0; 20]);

    pub fn from_verifying_key(key: &VerifyingKey) -> Address {
        let point = key.to_sec1_point(false);
        let hash = keccak256(&[&point.as_bytes()[1..]]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", tcp_types::hex::encode(&self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    /// `0x` and 40 hex digits, either case (EIP-55 mixed case is accepted, not checked).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || AddressError::Malformed(s.chars().take(64).collect());
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(malformed)?;
        if digits.len() != 40 {
            return Err(malformed());
        }
        let bytes = tcp_types::hex::decode(&digits.to_ascii_lowercase()).map_err(|_| malformed())?;
        let mut out = [0u8; 20];
        out.copy_from_slice(&bytes);
        Ok(Address(out))
    }
}

impl Write for Address {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

impl FixedSize for Address {
    const SIZE: usize = 20;
}

impl Read for Address {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Address(<[u8; 20]>::read(buf)?))
    }
}

/// A recoverable ECDSA signature: r ‖ s ‖ v with v ∈ {0, 1} and s in the lower half of the
/// order (a high-s twin is refused, so a signature cannot be malleated into a second valid one).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoverableSignature(pub [u8; 65]);

impl fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", tcp_types::hex::encode(&self.0))
    }
}

impl Write for RecoverableSignature {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

impl FixedSize for RecoverableSignature {
    const SIZE: usize = 65;
}

impl Read for RecoverableSignature {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(RecoverableSignature(<[u8; 65]>::read(buf)?))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("malformed signature")]
    Malformed,
    #[error("signature s value is in the upper half of the order (malleable form)")]
    HighS,
    #[error("no public key recovers from this signature")]
    Unrecoverable,
}

/// The signer of `digest`, from its signature alone.
pub fn recover_address(digest: &[u8; 32], signature: &RecoverableSignature) -> Result<Address, SignatureError> {
    let sig = Signature::from_slice(&signature.0[..64]).map_err(|_| SignatureError::Malformed)?;
    if sig.normalize_s() != sig {
        return Err(SignatureError::HighS);
    }
    let id = RecoveryId::from_byte(signature.0[64]).filter(|id| !id.is_x_reduced()).ok_or(SignatureError::Malformed)?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, id).map_err(|_| SignatureError::Unrecoverable)?;
    Ok(Address::from_verifying_key(&key))
}

/// An account's secret key. k256 zeroizes it on drop.
#[derive(Clone)]
pub struct AccountKey(SigningKey);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a secp256k1 secret key is 32 bytes in 1..n")]
    Invalid,
}

impl AccountKey {
    pub fn generate(rng: &mut impl CryptoRng) -> AccountKey {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(bytes.as_mut());
            if let Ok(key) = AccountKey::from_bytes(&bytes[..]) {
                return key;
            }
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<AccountKey, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::Invalid);
        }
        SigningKey::from_slice(bytes).map(AccountKey).map_err(|_| KeyError::Invalid)
    }

    /// The secret scalar, for a key file (0600). Zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes().into())
    }

    pub fn address(&self) -> Address {
        Address::from_verifying_key(self.0.verifying_key())
    }

    /// Sign a 32-byte digest (RFC 6979 deterministic nonce, low-s).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> RecoverableSignature {
        let (sig, id) = self.0.sign_prehash_recoverable(digest);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = id.to_byte();
        RecoverableSignature(out)
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        write!(f, "AccountKey({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_matches_ethereum_for_a_known_key() {
        // The well-known key 0x…01 controls 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf.
        let mut secret = [0u8; 32];
        secret[31] = 1;
        let key = AccountKey::from_bytes(&secret).unwrap();
        assert_eq!(key.address().to_string(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
        assert_eq!("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".parse::<Address>().unwrap(), key.address());
    }

    #[test]
    fn signatures_recover_their_signer_and_nothing_else() {
        let key = AccountKey::from_bytes(&[7u8; 32]).unwrap();
        let digest = keccak256(&[b"hello"]);
        let sig = key.sign_digest(&digest);
        assert_eq!(recover_address(&digest, &sig), Ok(key.address()));
        assert_ne!(recover_address(&keccak256(&[b"hellp"]), &sig).ok(), Some(key.address()));
        let mut flipped_v = sig;
        flipped_v.0[64] ^= 1;
        assert_ne!(recover_address(&digest, &flipped_v).ok(), Some(key.address()));
        let mut bad_v = sig;
        bad_v.0[64] = 27;
        assert_eq!(recover_address(&digest, &bad_v), Err(SignatureError::Malformed));
        // The high-s twin (s' = n − s, v flipped) is the same signature mathematically; refused.
        let parsed = Signature::from_slice(&sig.0[..64]).unwrap();
        let (r, s) = parsed.split_scalars();
        let twin = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mut high = [0u8; 65];
        high[..64].copy_from_slice(&twin.to_bytes());
        high[64] = sig.0[64] ^ 1;
        assert_eq!(recover_address(&digest, &RecoverableSignature(high)), Err(SignatureError::HighS));
    }

    #[test]
    fn invalid_secret_keys_are_refused() {
        assert_eq!(AccountKey::from_bytes(&[0u8; 32]).unwrap_err(), KeyError::Invalid);
        assert_eq!(AccountKey::from_bytes(&[0xffu8; 32]).unwrap_err(), KeyError::Invalid);
        assert_eq!(AccountKey::from_bytes(&[1u8; 31]).unwrap_err(), KeyError::Invalid);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in ["", "0x", "7e5f4552091a69125d5dfcb7b8c2659029395bdf", "0x7e5f", "0xzz5f4552091a69125d5dfcb7b8c2659029395bdf"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
