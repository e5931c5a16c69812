//! The contract VM: wasmtime with no WASI and no imports but the contract ABI, a fuel budget
//! per call, bounded memory, tables, stack and outputs, and canonical NaNs (so a contract's
//! result does not depend on the machine). Whatever a contract does — loop forever, grow
//! memory without end, recurse too deep, import something else, write too much, trap — the
//! call ends with a typed [`VmError`] and nothing else is affected: every call gets a fresh
//! store and instance.
//!
//! The ABI (module `tcp`), all lengths and pointers `i32`:
//! * `input_len() -> i32`, `input_read(ptr)`: the caller's input;
//! * `data_len() -> i32`, `data_read(ptr, offset, len)`: the (decrypted) data the call runs
//!   over, read in whatever pieces the contract wants (`len` bytes from `offset`), so that it
//!   can go through more data than its memory holds and needs no copy of what it has finished;
//! * `data_blob_end(index) -> i32`: where blob `index` of the data ends (the data is the
//!   call's blobs, one per data owner, in the request's order), or -1 past the last blob, so a
//!   contract reads each owner's blob as its own and one owner's bytes can never be read as
//!   another's;
//! * `state_len() -> i32`, `state_read(ptr)`, `state_write(ptr, len)`: the contract state;
//! * `result_write(ptr, len)`: the call's result.
//!
//! A contract exports its `memory` and two functions without parameters: `init` (builds the
//! initial state from the input) and `execute` (reads state, input and data; writes the new
//! state and the result).

use std::sync::Arc;
use wasmtime::{Config, Engine, Instance, InstancePre, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};

/// The functions a contract may import, all from module `tcp`.
pub const ABI_MODULE: &str = "tcp";
pub const ABI_FUNCTIONS: [&str; 9] =
    ["input_len", "input_read", "data_len", "data_read", "data_blob_end", "state_len", "state_read", "state_write", "result_write"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmLimits {
    /// Fuel per call (about one unit per wasm instruction).
    pub fuel: u64,
    /// Linear memory a contract may have, in bytes.
    pub max_memory_bytes: usize,
    /// Native stack for wasm frames (deep recursion traps before it is exhausted).
    pub max_stack_bytes: usize,
    pub max_table_elements: usize,
    pub max_state_bytes: usize,
    pub max_result_bytes: usize,
    /// The largest contract code accepted.
    pub max_code_bytes: usize,
}

impl Default for VmLimits {
    fn default() -> Self {
        VmLimits {
            fuel: 2_000_000_000,
            max_memory_bytes: 64 << 20,
            max_stack_bytes: 512 << 10,
            max_table_elements: 10_000,
            max_state_bytes: 1 << 20,
            max_result_bytes: 64 << 10,
            max_code_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VmError {
    #[error("contract code of {0} bytes exceeds the limit of {1}")]
    CodeTooLarge(usize, usize),
    #[error("not a valid contract module: {0}")]
    InvalidModule(String),
    #[error("the contract imports {0}, which is not part of the contract ABI")]
    ForbiddenImport(String),
    #[error("the contract does not export {0}")]
    MissingExport(String),
    #[error("the contract ran out of fuel ({0} units)")]
    OutOfFuel(u64),
    #[error("the contract exceeded its memory limit ({0} bytes)")]
    MemoryLimit(usize),
    #[error("the contract overflowed its stack (recursion too deep)")]
    StackOverflow,
    #[error("the contract wrote {what} of {len} bytes, more than the limit of {limit}")]
    OutputTooLarge { what: &'static str, len: usize, limit: usize },
    #[error("the contract passed an out-of-bounds buffer to {0}")]
    BadPointer(&'static str),
    #[error("the contract asked for {len} bytes of data at offset {offset}, outside the call's {data_len} bytes")]
    DataRange { offset: i64, len: i64, data_len: usize },
    #[error("the contract trapped: {0}")]
    Trap(String),
}

/// What a call runs over.
#[derive(Clone, Debug, Default)]
pub struct CallInput {
    pub input: Vec<u8>,
    pub data: Vec<u8>,
    /// Where each blob of `data` ends, ascending, the last at `data.len()`; empty: the data is
    /// one blob (none if it is empty).
    pub data_ends: Vec<usize>,
    pub state: Vec<u8>,
}

impl CallInput {
    /// The end of blob `index`, as the ABI's `data_blob_end` answers it.
    fn blob_end(&self, index: i32) -> i32 {
        let index = match usize::try_from(index) {
            Ok(i) => i,
            Err(_) => return -1,
        };
        let end = if self.data_ends.is_empty() { (index == 0 && !self.data.is_empty()).then_some(self.data.len()) } else { self.data_ends.get(index).copied() };
        end.map_or(-1, len_i32)
    }
}

/// What a call produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOutput {
    pub state: Vec<u8>,
    pub result: Vec<u8>,
    pub fuel_used: u64,
    /// The contract's linear memory when the call ended (the most it held: wasm memory does
    /// not shrink).
    pub memory_bytes: usize,
}

struct CallContext {
    call: CallInput,
    state: Option<Vec<u8>>,
    result: Vec<u8>,
    limits: VmLimits,
    store_limits: StoreLimits,
    /// Set by a host function refusing what the contract asked (typed, not a string trap).
    error: Option<VmError>,
}

/// A compiled contract, ready to instantiate (compilation is the expensive, cacheable part).
#[derive(Clone)]
pub struct Contract {
    /// The module with its imports resolved against the ABI once, not on every call.
    pre: InstancePre<CallContext>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract").field("name", &self.pre.module().name()).finish_non_exhaustive()
    }
}

/// The VM: one engine (compiled code cache, pooling allocator) for every contract.
#[derive(Clone)]
pub struct Vm {
    engine: Engine,
    linker: Arc<Linker<CallContext>>,
    limits: VmLimits,
}

impl Vm {
    pub fn new(limits: VmLimits) -> Result<Vm, VmError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.cranelift_nan_canonicalization(true);
        config.max_wasm_stack(limits.max_stack_bytes);
        // Relaxed SIMD may differ between machines; threads are not compiled in.
        config.wasm_relaxed_simd(false);
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling.total_memories(64);
        pooling.total_tables(64);
        pooling.total_core_instances(64);
        pooling.max_memory_size(limits.max_memory_bytes);
        // Zero the first MiBs of a freed memory slot in place rather than returning them to
        // the kernel: a call that copies megabytes in would otherwise page-fault through
        // fresh memory every time (SHA-256 of 4 MiB: 1.52 → 1.35 × native).
        pooling.linear_memory_keep_resident(8 << 20);
        // Where the kernel has PAGEMAP_SCAN (Linux ≥ 6.7), reset only the pages a call dirtied
        // instead of all the resident ones (a small call: 16 → 4 µs); elsewhere the memset stays.
        pooling.pagemap_scan(wasmtime::Enabled::Auto);
        // Reserve 4 GiB of address space (plus a guard) per memory slot: every 32-bit address a
        // contract can form then lands in the slot or its guard, so compiled code needs no
        // explicit bounds checks (the store limiter still caps what is committed).
        config.memory_reservation(1 << 32);
        config.memory_guard_size(2 << 30);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(|e| VmError::InvalidModule(format!("engine: {e}")))?;
        let linker = Arc::new(abi_linker(&engine)?);
        Ok(Vm { engine, linker, limits })
    }

    pub fn limits(&self) -> VmLimits {
        self.limits
    }

    /// Compile a contract (wasm binary, or WAT text for tests and tools), refusing any import
    /// outside the ABI.
    pub fn compile(&self, code: &[u8]) -> Result<Contract, VmError> {
        if code.len() > self.limits.max_code_bytes {
            return Err(VmError::CodeTooLarge(code.len(), self.limits.max_code_bytes));
        }
        let module = Module::new(&self.engine, code).map_err(|e| VmError::InvalidModule(format!("{e:#}")))?;
        for import in module.imports() {
            let allowed = import.module() == ABI_MODULE && ABI_FUNCTIONS.contains(&import.name()) && import.ty().func().is_some();
            if !allowed {
                return Err(VmError::ForbiddenImport(format!("{}::{}", import.module(), import.name())));
            }
        }
        for export in ["memory", "init", "execute"] {
            if module.get_export(export).is_none() {
                return Err(VmError::MissingExport(export.into()));
            }
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| VmError::InvalidModule(format!("{e:#}")))?;
        Ok(Contract { pre })
    }

    /// `init(input) -> state`.
    pub fn init(&self, contract: &Contract, input: &[u8]) -> Result<CallOutput, VmError> {
        self.call(contract, "init", CallInput { input: input.to_vec(), ..Default::default() })
    }

    /// `execute(state, input, data) -> (state, result)`.
    pub fn execute(&self, contract: &Contract, call: CallInput) -> Result<CallOutput, VmError> {
        self.call(contract, "execute", call)
    }

    fn call(&self, contract: &Contract, entry: &str, call: CallInput) -> Result<CallOutput, VmError> {
        let limits = self.limits;
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.max_memory_bytes)
            .table_elements(limits.max_table_elements)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let context = CallContext { call, state: None, result: Vec::new(), limits, store_limits, error: None };
        let mut store = Store::new(&self.engine, context);
        store.limiter(|c| &mut c.store_limits);
        store.set_fuel(limits.fuel).expect("fuel is enabled");
        let mut memory_bytes = 0;
        let outcome = contract.pre.instantiate(&mut store).and_then(|instance: Instance| {
            let outcome = instance.get_typed_func::<(), ()>(&mut store, entry).and_then(|f| f.call(&mut store, ()));
            memory_bytes = instance.get_memory(&mut store, "memory").map_or(0, |m| m.data_size(&store));
            outcome
        });
        let fuel_left = store.get_fuel().unwrap_or(0);
        let mut context = store.into_data();
        // The inputs may be confidential plaintext the enclave opened: wipe the VM's copies
        // (the linear memory they were copied into is zeroed by the pooling allocator).
        zeroize::Zeroize::zeroize(context.call.input.as_mut_slice());
        zeroize::Zeroize::zeroize(context.call.data.as_mut_slice());
        if let Err(e) = outcome {
            // Nothing of a failed call leaves the VM: wipe what the contract wrote as well.
            zeroize::Zeroize::zeroize(context.call.state.as_mut_slice());
            zeroize::Zeroize::zeroize(context.result.as_mut_slice());
            if let Some(written) = context.state.as_mut() {
                zeroize::Zeroize::zeroize(written.as_mut_slice());
            }
            return Err(classify(e, context.error, &limits));
        }
        let state = match context.state {
            Some(written) => {
                zeroize::Zeroize::zeroize(context.call.state.as_mut_slice());
                written
            }
            None => context.call.state,
        };
        Ok(CallOutput { state, result: context.result, fuel_used: limits.fuel - fuel_left, memory_bytes })
    }
}

/// Turn a failed call into its typed reason.
fn classify(error: wasmtime::Error, host: Option<VmError>, limits: &VmLimits) -> VmError {
    if let Some(host) = host {
        return host;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => VmError::OutOfFuel(limits.fuel),
        Some(Trap::StackOverflow) => VmError::StackOverflow,
        Some(Trap::AllocationTooLarge) => VmError::MemoryLimit(limits.max_memory_bytes),
        Some(trap) => VmError::Trap(trap.to_string()),
        None => {
            let text = format!("{error:#}");
            if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
                VmError::MemoryLimit(limits.max_memory_bytes)
            } else {
                VmError::Trap(text)
            }
        }
    }
}

fn memory(caller: &mut wasmtime::Caller<'_, CallContext>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(|e| e.into_memory())
}

/// Which of the call's buffers a `*_read` import copies into the contract.
#[derive(Clone, Copy)]
enum Source {
    Input,
    Data,
    State,
}

impl Source {
    /// The import that reads it (named in a `BadPointer` error).
    fn import(self) -> &'static str {
        match self {
            Source::Input => "input_read",
            Source::Data => "data_read",
            Source::State => "state_read",
        }
    }
}

/// Copy one of the call's buffers (or, for the data, the part `range` of it: `None` is all of
/// it) into the contract's memory at `ptr`, straight from the call context: no intermediate
/// copy of (possibly confidential) bytes is made on the host.
fn write_guest(caller: &mut wasmtime::Caller<'_, CallContext>, ptr: i32, source: Source, range: Option<(i32, i32)>) -> wasmtime::Result<()> {
    let Some(mem) = memory(caller) else { return fail(caller, VmError::MissingExport("memory".into())) };
    // Paid before it is done: at most the whole buffer (a bad range fails below anyway).
    let context = caller.data();
    let whole_len = match source {
        Source::Input => context.call.input.len(),
        Source::Data => context.call.data.len(),
        Source::State => context.state.as_deref().unwrap_or(&context.call.state).len(),
    };
    let copied = match range {
        None => whole_len,
        Some((_, len)) => usize::try_from(len).unwrap_or(0).min(whole_len),
    };
    charge(caller, copied)?;
    let (guest, context) = mem.data_and_store_mut(&mut *caller);
    let whole: &[u8] = match source {
        Source::Input => &context.call.input,
        Source::Data => &context.call.data,
        Source::State => context.state.as_deref().unwrap_or(&context.call.state),
    };
    let bytes = match range {
        None => whole,
        Some((offset, len)) => {
            let part = usize::try_from(offset).ok().zip(usize::try_from(len).ok()).and_then(|(o, l)| whole.get(o..o.checked_add(l)?));
            match part {
                Some(part) => part,
                None => {
                    let data_len = whole.len();
                    return fail(caller, VmError::DataRange { offset: offset.into(), len: len.into(), data_len });
                }
            }
        }
    };
    let target = usize::try_from(ptr).ok().and_then(|start| guest.get_mut(start..start.checked_add(bytes.len())?));
    match target {
        Some(target) => {
            target.copy_from_slice(bytes);
            Ok(())
        }
        None => fail(caller, VmError::BadPointer(source.import())),
    }
}

/// Read `len` bytes at `ptr` from the contract's memory, at most `limit`.
fn read_guest(caller: &mut wasmtime::Caller<'_, CallContext>, what: &'static str, ptr: i32, len: i32, limit: usize) -> wasmtime::Result<Vec<u8>> {
    if len < 0 || ptr < 0 {
        fail(caller, VmError::BadPointer(what))?;
    }
    if len as usize > limit {
        fail(caller, VmError::OutputTooLarge { what, len: len as usize, limit })?;
    }
    charge(caller, len as usize)?;
    let Some(mem) = memory(caller) else { return fail(caller, VmError::MissingExport("memory".into())).map(|_| Vec::new()) };
    let (start, len) = (ptr as usize, len as usize);
    match mem.data(&*caller).get(start..start + len) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => fail(caller, VmError::BadPointer(what)).map(|_| Vec::new()),
    }
}

/// Fuel every host call costs, on top of one unit per byte it copies.
const HOST_CALL_FUEL: u64 = 64;

/// Charge a host call that copies `bytes`: a contract pays for the work it makes the host do,
/// so fuel bounds a call — a loop of reads runs out of fuel in proportion to the bytes copied,
/// not at the host's request timeout.
fn charge(caller: &mut wasmtime::Caller<'_, CallContext>, bytes: usize) -> wasmtime::Result<()> {
    let cost = HOST_CALL_FUEL.saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    let left = caller.get_fuel()?;
    if left < cost {
        caller.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    caller.set_fuel(left - cost)?;
    Ok(())
}

/// Record the typed reason and trap.
fn fail(caller: &mut wasmtime::Caller<'_, CallContext>, error: VmError) -> wasmtime::Result<()> {
    let message = error.to_string();
    caller.data_mut().error = Some(error);
    Err(wasmtime::Error::msg(message))
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

fn abi_linker(engine: &Engine) -> Result<Linker<CallContext>, VmError> {
    let mut linker: Linker<CallContext> = Linker::new(engine);
    let err = |e: wasmtime::Error| VmError::InvalidModule(format!("linker: {e}"));
    linker
        .func_wrap(ABI_MODULE, "input_len", |mut c: wasmtime::Caller<'_, CallContext>| {
            charge(&mut c, 0)?;
            Ok(len_i32(c.data().call.input.len()))
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "data_len", |mut c: wasmtime::Caller<'_, CallContext>| {
            charge(&mut c, 0)?;
            Ok(len_i32(c.data().call.data.len()))
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "data_blob_end", |mut c: wasmtime::Caller<'_, CallContext>, index: i32| {
            charge(&mut c, 0)?;
            Ok(c.data().call.blob_end(index))
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "state_len", |mut c: wasmtime::Caller<'_, CallContext>| {
            charge(&mut c, 0)?;
            let d = c.data();
            Ok(len_i32(d.state.as_ref().unwrap_or(&d.call.state).len()))
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "input_read", |mut c: wasmtime::Caller<'_, CallContext>, ptr: i32| write_guest(&mut c, ptr, Source::Input, None))
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "data_read", |mut c: wasmtime::Caller<'_, CallContext>, ptr: i32, offset: i32, len: i32| {
            write_guest(&mut c, ptr, Source::Data, Some((offset, len)))
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "state_read", |mut c: wasmtime::Caller<'_, CallContext>, ptr: i32| write_guest(&mut c, ptr, Source::State, None))
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "state_write", |mut c: wasmtime::Caller<'_, CallContext>, ptr: i32, len: i32| {
            let limit = c.data().limits.max_state_bytes;
            let bytes = read_guest(&mut c, "state", ptr, len, limit)?;
            // A contract may write its state (or result) more than once: wipe what it replaces.
            if let Some(mut replaced) = c.data_mut().state.replace(bytes) {
                zeroize::Zeroize::zeroize(replaced.as_mut_slice());
            }
            Ok(())
        })
        .map_err(err)?;
    linker
        .func_wrap(ABI_MODULE, "result_write", |mut c: wasmtime::Caller<'_, CallContext>, ptr: i32, len: i32| {
            let limit = c.data().limits.max_result_bytes;
            let bytes = read_guest(&mut c, "result", ptr, len, limit)?;
            let mut replaced = std::mem::replace(&mut c.data_mut().result, bytes);
            zeroize::Zeroize::zeroize(replaced.as_mut_slice());
            Ok(())
        })
        .map_err(err)?;
    Ok(linker)
}
