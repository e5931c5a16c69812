//! The TCP contract SDK. A contract implements [`Contract`] and exports it with
//! [`export_contract!`]; the SDK reads the call's input, data and state through the contract
//! ABI (module `tcp`, see `tcp_enclave::vm`) and writes the new state and the result.
//!
//! ```ignore
//! struct Counter;
//! impl tcp_contract_sdk::Contract for Counter {
//!     fn init(_input: &[u8]) -> Result<Vec<u8>, Error> { Ok(0u64.to_le_bytes().to_vec()) }
//!     fn execute(state: &[u8], _input: &[u8], _data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
//!         let n = Reader::new(state).u64()? + 1;
//!         Ok((n.to_le_bytes().to_vec(), n.to_le_bytes().to_vec()))
//!     }
//! }
//! tcp_contract_sdk::export_contract!(Counter);
//! ```
//!
//! A contract that returns an error traps: the call fails and nothing it wrote counts.

pub mod codec;
pub mod fixed;

pub use codec::{Error, Reader, Writer};

/// What a contract does.
pub trait Contract {
    /// The initial state from the deployer's input.
    fn init(input: &[u8]) -> Result<Vec<u8>, Error>;
    /// One call: the new state and the result. The data is read as the contract goes
    /// ([`Data::read_to_end`] for all of it at once).
    fn execute(state: &[u8], input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error>;
}

/// The call's data, read in order, in pieces of the contract's choosing. Data is the bulk of a
/// call (records from many owners): a contract that takes it a piece at a time into one reused
/// buffer can go through more than its memory holds, and leaves the VM fewer pages to wipe.
pub struct Data<'a> {
    source: Source<'a>,
    len: usize,
    position: usize,
    /// Where each blob ends (one per data owner, in the request's order).
    ends: Vec<usize>,
}

/// The most blobs a call's data holds (the chain's limit of data uses per call).
pub const MAX_BLOBS: usize = 16;

enum Source<'a> {
    /// The host's copy, through the ABI's `data_read`.
    #[cfg(target_arch = "wasm32")]
    Host,
    Bytes(&'a [u8]),
}

impl<'a> Data<'a> {
    /// Data held in memory already, as one blob (a contract's logic run natively, or in tests).
    pub fn new(bytes: &'a [u8]) -> Data<'a> {
        let ends = if bytes.is_empty() { Vec::new() } else { vec![bytes.len()] };
        Data { source: Source::Bytes(bytes), len: bytes.len(), position: 0, ends }
    }

    /// Data held in memory whose blobs end at `ends` (ascending, the last at `bytes.len()`).
    pub fn with_blobs(bytes: &'a [u8], ends: &[usize]) -> Result<Data<'a>, Error> {
        if ends.windows(2).any(|w| w[0] > w[1]) || ends.last().is_some_and(|&e| e != bytes.len()) || ends.len() > MAX_BLOBS {
            return Err(Error::Invalid("blob ends"));
        }
        Ok(Data { source: Source::Bytes(bytes), len: bytes.len(), position: 0, ends: ends.to_vec() })
    }

    #[cfg(target_arch = "wasm32")]
    fn from_host() -> Data<'static> {
        // SAFETY: ABI calls with an index argument or none.
        let len = unsafe { abi::data_len() }.max(0) as usize;
        let ends = (0..MAX_BLOBS as i32).map_while(|i| usize::try_from(unsafe { abi::data_blob_end(i) }).ok()).collect();
        Data { source: Source::Host, len, position: 0, ends }
    }

    /// Where each blob of the data ends: one per data owner, in the order the request names
    /// them. A contract that reads each blob as a unit of its own keeps one owner's bytes from
    /// ever being read as another's.
    pub fn blob_ends(&self) -> &[usize] {
        &self.ends
    }

    /// Where the read position is (bytes read so far).
    pub fn position(&self) -> usize {
        self.position
    }

    /// All of the call's data, read or not.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What is left to read.
    pub fn remaining(&self) -> usize {
        self.len - self.position
    }

    /// Fill `buffer` with the next `buffer.len()` bytes, or fail with `Truncated` (reading
    /// nothing) if fewer are left.
    pub fn read_into(&mut self, buffer: &mut [u8]) -> Result<(), Error> {
        if buffer.len() > self.remaining() {
            return Err(Error::Truncated);
        }
        match self.source {
            #[cfg(target_arch = "wasm32")]
            // SAFETY: the host writes exactly `buffer.len()` bytes at its pointer, from a range
            // of the data checked above; it traps instead if either is out of bounds.
            Source::Host => unsafe { abi::data_read(buffer.as_mut_ptr(), self.position as i32, buffer.len() as i32) },
            Source::Bytes(bytes) => buffer.copy_from_slice(bytes.get(self.position..self.position + buffer.len()).ok_or(Error::Truncated)?),
        }
        self.position += buffer.len();
        Ok(())
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut bytes = [0u8; N];
        self.read_into(&mut bytes)?;
        Ok(bytes)
    }

    /// Everything not yet read.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let len = self.remaining();
        let rest = match self.source {
            // SAFETY: `data_read` writes exactly `len` bytes of the data at `position`, the rest
            // of it, or traps.
            #[cfg(target_arch = "wasm32")]
            Source::Host => unsafe { host_buffer(len, |at| abi::data_read(at, self.position as i32, len as i32)) },
            Source::Bytes(bytes) => bytes.get(self.position..).unwrap_or_default().to_vec(),
        };
        self.position = self.len;
        rest
    }
}

/// The allocator. Contracts are linked with a larger initial memory than they need at start
/// (`scripts/build-contracts.sh`: `--initial-memory`), and this allocator hands out that memory
/// before it grows any: a call's buffers usually fit, so memory is not grown. Growing costs
/// more than it seems, because the VM must unmap grown pages again before the next call
/// (20 000 records: 0.12 → 0.07 ms to deliver).
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[cfg(target_arch = "wasm32")]
mod abi {
    #[link(wasm_import_module = "tcp")]
    unsafe extern "C" {
        pub fn input_len() -> i32;
        pub fn input_read(ptr: *mut u8);
        pub fn data_len() -> i32;
        pub fn data_read(ptr: *mut u8, offset: i32, len: i32);
        pub fn data_blob_end(index: i32) -> i32;
        pub fn state_len() -> i32;
        pub fn state_read(ptr: *mut u8);
        pub fn state_write(ptr: *const u8, len: i32);
        pub fn result_write(ptr: *const u8, len: i32);
    }
}

/// A buffer of `len` bytes that `fill` has the host write through its pointer. Not zeroed
/// first: that would write every byte twice, megabytes for a call's data.
///
/// # Safety
/// `fill` must have exactly `len` bytes written at the pointer, or trap (the call then ends
/// before the buffer is read).
#[cfg(target_arch = "wasm32")]
unsafe fn host_buffer(len: usize, fill: impl FnOnce(*mut u8)) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(len);
    fill(buffer.as_mut_ptr());
    // SAFETY: the caller's promise: `len` bytes were written.
    unsafe { buffer.set_len(len) };
    buffer
}

#[cfg(target_arch = "wasm32")]
fn read(len: unsafe extern "C" fn() -> i32, read: unsafe extern "C" fn(*mut u8)) -> Vec<u8> {
    // SAFETY: ABI calls; the host writes exactly `len()` bytes at the pointer or traps.
    unsafe {
        let len = len().max(0) as usize;
        host_buffer(len, |at| read(at))
    }
}

/// Run `C::init` against the ABI (called by the exported `init`).
#[cfg(target_arch = "wasm32")]
pub fn run_init<C: Contract>() {
    let input = read(abi::input_len, abi::input_read);
    match C::init(&input) {
        // SAFETY: a valid slice for the duration of the call.
        Ok(state) => unsafe { abi::state_write(state.as_ptr(), state.len() as i32) },
        Err(_) => core::arch::wasm32::unreachable(),
    }
}

/// Run `C::execute` against the ABI (called by the exported `execute`).
#[cfg(target_arch = "wasm32")]
pub fn run_execute<C: Contract>() {
    let input = read(abi::input_len, abi::input_read);
    let state = read(abi::state_len, abi::state_read);
    match C::execute(&state, &input, &mut Data::from_host()) {
        // SAFETY: valid slices for the duration of the calls.
        Ok((state, result)) => unsafe {
            abi::state_write(state.as_ptr(), state.len() as i32);
            abi::result_write(result.as_ptr(), result.len() as i32);
        },
        Err(_) => core::arch::wasm32::unreachable(),
    }
}

/// Export a [`Contract`] as the module's `init` and `execute`.
#[macro_export]
macro_rules! export_contract {
    ($contract:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn init() {
            $crate::run_init::<$contract>()
        }
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn execute() {
            $crate::run_execute::<$contract>()
        }
    };
}
