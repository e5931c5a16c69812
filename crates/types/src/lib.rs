//! Plain data types shared by every TCP crate.
//!
//! Everything here has one canonical binary encoding (commonware-codec, big-endian fixed-width
//! integers) because these values are hashed and signed.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write};
use std::fmt;

/// A block height. Height 0 is genesis; the first decided height is 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl Height {
    pub const fn next(self) -> Self {
        Height(self.0 + 1)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A consensus round inside one height. "No round" (the paper's −1) is `Option::<Round>::None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Round(pub u32);

impl Round {
    pub const ZERO: Round = Round(0);

    /// The next round; saturates rather than wrapping (a round that large is rejected earlier).
    pub const fn next(self) -> Self {
        Round(self.0.saturating_add(1))
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Index of a validator in the validator set of one height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorIndex(pub u32);

impl ValidatorIndex {
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValidatorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A 32-byte digest (SHA-256 inside TCP).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub const LEN: usize = 32;

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// Lower-case hex for keys, signatures and digests on the command line and in logs.
pub mod hex {
    pub fn encode(bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Decode hex (an optional `0x` prefix is accepted); the error says what is wrong.
    pub fn decode(s: &str) -> Result<Vec<u8>, String> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if !s.len().is_multiple_of(2) {
            return Err(format!("odd number of hex digits ({})", s.len()));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or("not ASCII hex")?, 16).map_err(|_| format!("not hex at position {i}")))
            .collect()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The chain identifier; part of every signature's domain so a vote or transaction from one
/// chain is worthless on another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChainId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainIdError {
    #[error("chain id must be 1..={max} bytes of [a-z0-9-_.], got {0:?}", max = ChainId::MAX_LEN)]
    Invalid(String),
}

impl ChainId {
    pub const MAX_LEN: usize = 64;

    pub fn new(id: impl Into<String>) -> Result<Self, ChainIdError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if ok { Ok(ChainId(id)) } else { Err(ChainIdError::Invalid(id)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! fixed_int_codec {
    ($ty:ident, $inner:ty) => {
        impl Write for $ty {
            fn write(&self, buf: &mut impl BufMut) {
                self.0.write(buf);
            }
        }
        impl FixedSize for $ty {
            const SIZE: usize = <$inner as FixedSize>::SIZE;
        }
        impl Read for $ty {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
                Ok($ty(<$inner>::read(buf)?))
            }
        }
    };
}

fixed_int_codec!(Height, u64);
fixed_int_codec!(Round, u32);
fixed_int_codec!(ValidatorIndex, u32);

impl Write for Digest {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}
impl FixedSize for Digest {
    const SIZE: usize = 32;
}
impl Read for Digest {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Digest(<[u8; 32]>::read(buf)?))
    }
}

impl Write for ChainId {
    fn write(&self, buf: &mut impl BufMut) {
        (self.0.len() as u8).write(buf);
        buf.put_slice(self.0.as_bytes());
    }
}
impl EncodeSize for ChainId {
    fn encode_size(&self) -> usize {
        1 + self.0.len()
    }
}

impl Read for ChainId {
    type Cfg = ();
    /// A length byte and the name, checked like [`ChainId::new`].
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let len = u8::read(buf)? as usize;
        if len > ChainId::MAX_LEN || buf.remaining() < len {
            return Err(CodecError::Invalid("ChainId", "length"));
        }
        let mut bytes = vec![0u8; len];
        buf.copy_to_slice(&mut bytes);
        String::from_utf8(bytes).ok().and_then(|s| ChainId::new(s).ok()).ok_or(CodecError::Invalid("ChainId", "name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    #[test]
    fn chain_id_rejects_bad_names() {
        assert!(ChainId::new("tcp-devnet-1").is_ok());
        assert!(ChainId::new("").is_err());
        assert!(ChainId::new("Upper").is_err());
        assert!(ChainId::new("x".repeat(65)).is_err());
        assert!(ChainId::new("with space").is_err());
    }

    #[test]
    fn integers_encode_big_endian_and_round_trip() {
        let h = Height(0x0102_0304_0506_0708);
        let bytes = h.encode();
        assert_eq!(&bytes[..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Height::decode(bytes).unwrap(), h);
        let d = Digest([7u8; 32]);
        assert_eq!(Digest::decode(d.encode()).unwrap(), d);
        assert!(Round::decode(bytes::Bytes::from_static(&[0, 0, 1])).is_err());
    }
}

/// Reads big-endian fields off a byte slice, front to back: the one cursor every hand-written
/// decoder in TCP uses (blocks, state entries). `None` means the input ended early.
pub struct ByteReader<'a>(pub &'a [u8]);

impl<'a> ByteReader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("N bytes"))
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
    pub fn u128(&mut self) -> Option<u128> {
        self.array().map(u128::from_be_bytes)
    }
    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }
}
