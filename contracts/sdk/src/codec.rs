//! Little-endian fields in and out of byte buffers: what contracts use for their inputs,
//! records, state and results.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input ended before a field.
    Truncated,
    /// A field held a value the contract refuses.
    Invalid(&'static str),
}

/// Its field readers are `#[inline]`: contracts read records field by field in their hot
/// loops, and a call per field (with its `Result` returned through memory in wasm) would cost
/// more than the read.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() < n {
            return Err(Error::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    #[inline]
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }
    #[inline]
    pub fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_le_bytes)
    }
    #[inline]
    pub fn u64(&mut self) -> Result<u64, Error> {
        self.array().map(u64::from_le_bytes)
    }
    #[inline]
    pub fn i32(&mut self) -> Result<i32, Error> {
        self.array().map(i32::from_le_bytes)
    }
    #[inline]
    pub fn i64(&mut self) -> Result<i64, Error> {
        self.array().map(i64::from_le_bytes)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }
    /// A writer that will not reallocate before `bytes` bytes are written.
    pub fn with_capacity(bytes: usize) -> Self {
        Writer { bytes: Vec::with_capacity(bytes) }
    }
    #[inline]
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.bytes.extend_from_slice(b);
        self
    }
    #[inline]
    pub fn u8(self, v: u8) -> Self {
        self.bytes(&[v])
    }
    #[inline]
    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    #[inline]
    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    #[inline]
    pub fn i32(self, v: i32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    #[inline]
    pub fn i64(self, v: i64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    #[inline]
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}
