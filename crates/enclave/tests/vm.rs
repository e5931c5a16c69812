//! The contract VM against well-behaved and adversarial contracts (WAT, so each test shows
//! exactly what the contract does). Every failure is a typed error, and the same VM keeps
//! serving other calls afterwards.

use tcp_enclave::vm::{CallInput, Vm, VmError, VmLimits};

/// Counts calls in its state (u32 LE) and returns the sum of the data bytes (u32 LE).
const SUM: &str = r#"
(module
  (import "tcp" "input_len" (func $input_len (result i32)))
  (import "tcp" "input_read" (func $input_read (param i32)))
  (import "tcp" "data_len" (func $data_len (result i32)))
  (import "tcp" "data_read" (func $data_read (param i32 i32 i32)))
  (import "tcp" "state_read" (func $state_read (param i32)))
  (import "tcp" "state_write" (func $state_write (param i32 i32)))
  (import "tcp" "result_write" (func $result_write (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "init")
    ;; state = the input (a u32 counter start)
    (call $input_read (i32.const 0))
    (call $state_write (i32.const 0) (call $input_len)))
  (func (export "execute") (local $i i32) (local $n i32) (local $sum i32)
    (call $state_read (i32.const 0))
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (call $state_write (i32.const 0) (i32.const 4))
    (local.set $n (call $data_len))
    (call $data_read (i32.const 1024) (i32.const 0) (local.get $n))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum) (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.store (i32.const 8) (local.get $sum))
    (call $result_write (i32.const 8) (i32.const 4))))
"#;

fn vm() -> Vm {
    Vm::new(VmLimits { fuel: 50_000_000, max_memory_bytes: 4 << 20, ..VmLimits::default() }).unwrap()
}

/// A contract whose `execute` body is `body` (its `init` does nothing).
fn contract(imports: &str, body: &str, extra: &str) -> String {
    format!(r#"(module {imports} (memory (export "memory") 1) (func (export "init")) (func (export "execute") {body}) {extra})"#)
}

fn run(vm: &Vm, wat: &str) -> Result<tcp_enclave::vm::CallOutput, VmError> {
    let c = vm.compile(wat.as_bytes())?;
    vm.execute(&c, CallInput::default())
}

#[test]
fn a_contract_initialises_and_executes_over_state_input_and_data() {
    let vm = vm();
    let c = vm.compile(SUM.as_bytes()).unwrap();
    let init = vm.init(&c, &7u32.to_le_bytes()).unwrap();
    assert_eq!(init.state, 7u32.to_le_bytes());
    let out = vm.execute(&c, CallInput { input: vec![], data: vec![1, 2, 3, 250], state: init.state, data_ends: Vec::new() }).unwrap();
    assert_eq!(out.state, 8u32.to_le_bytes());
    assert_eq!(out.result, 256u32.to_le_bytes());
    assert!(out.fuel_used > 0 && out.fuel_used < 1_000, "{}", out.fuel_used);
}

#[test]
fn adversarial_contracts_end_in_typed_errors_and_the_vm_carries_on() {
    let vm = vm();
    let loop_forever = contract("", "(loop $l (br $l))", "");
    assert_eq!(run(&vm, &loop_forever).unwrap_err(), VmError::OutOfFuel(50_000_000));

    let memory_bomb = contract("", "(loop $l (drop (memory.grow (i32.const 16))) (br $l))", "");
    assert_eq!(run(&vm, &memory_bomb).unwrap_err(), VmError::MemoryLimit(4 << 20));

    let recursion = contract("", "(call $deep)", "(func $deep (call $deep))");
    assert_eq!(run(&vm, &recursion).unwrap_err(), VmError::StackOverflow);

    let wasi = contract(r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#, "", "");
    assert_eq!(run(&vm, &wasi).unwrap_err(), VmError::ForbiddenImport("wasi_snapshot_preview1::fd_write".into()));
    let unknown_abi = contract(r#"(import "tcp" "open_socket" (func))"#, "", "");
    assert_eq!(run(&vm, &unknown_abi).unwrap_err(), VmError::ForbiddenImport("tcp::open_socket".into()));

    let huge_result =
        contract(r#"(import "tcp" "result_write" (func $w (param i32 i32)))"#, "(call $w (i32.const 0) (i32.const 65537))", "");
    assert_eq!(run(&vm, &huge_result).unwrap_err(), VmError::OutputTooLarge { what: "result", len: 65537, limit: 65536 });

    let out_of_bounds =
        contract(r#"(import "tcp" "result_write" (func $w (param i32 i32)))"#, "(call $w (i32.const 65530) (i32.const 100))", "");
    assert_eq!(run(&vm, &out_of_bounds).unwrap_err(), VmError::BadPointer("result"));

    // The read imports check the whole span they copy into: data that would run past the end of
    // memory, or a negative pointer, is refused; so is a range outside the call's data.
    let reader = |ptr: i32, offset: i32, len: i32| {
        contract(
            r#"(import "tcp" "data_read" (func $r (param i32 i32 i32)))"#,
            &format!("(call $r (i32.const {ptr}) (i32.const {offset}) (i32.const {len}))"),
            "",
        )
    };
    let with_data = |wat: &str| vm.execute(&vm.compile(wat.as_bytes()).unwrap(), CallInput { data: vec![9; 100], ..Default::default() });
    assert!(with_data(&reader(65_436, 0, 100)).is_ok(), "the last 100 bytes of the page");
    assert!(with_data(&reader(65_535, 99, 1)).is_ok(), "the last byte of the data into the last byte of the page");
    assert!(with_data(&reader(0, 100, 0)).is_ok(), "nothing, from the end of the data");
    assert_eq!(with_data(&reader(65_437, 0, 100)).unwrap_err(), VmError::BadPointer("data_read"));
    assert_eq!(with_data(&reader(-4, 0, 100)).unwrap_err(), VmError::BadPointer("data_read"));
    assert_eq!(with_data(&reader(0, 1, 100)).unwrap_err(), VmError::DataRange { offset: 1, len: 100, data_len: 100 });
    assert_eq!(with_data(&reader(0, -1, 10)).unwrap_err(), VmError::DataRange { offset: -1, len: 10, data_len: 100 });
    assert_eq!(with_data(&reader(0, 0, -1)).unwrap_err(), VmError::DataRange { offset: 0, len: -1, data_len: 100 });
    assert_eq!(
        with_data(&reader(0, i32::MAX, i32::MAX)).unwrap_err(),
        VmError::DataRange { offset: i32::MAX.into(), len: i32::MAX.into(), data_len: 100 }
    );

    let trap = contract("", "unreachable", "");
    assert!(matches!(run(&vm, &trap).unwrap_err(), VmError::Trap(t) if t.contains("unreachable")));

    assert!(matches!(vm.compile(b"\0asm garbage"), Err(VmError::InvalidModule(_))));
    let no_execute = r#"(module (memory (export "memory") 1) (func (export "init")))"#;
    assert_eq!(vm.compile(no_execute.as_bytes()).unwrap_err(), VmError::MissingExport("execute".into()));

    // The same VM still runs a good contract.
    let c = vm.compile(SUM.as_bytes()).unwrap();
    assert_eq!(
        vm.execute(&c, CallInput { data: vec![5, 5], state: 0u32.to_le_bytes().to_vec(), ..Default::default() }).unwrap().result,
        10u32.to_le_bytes()
    );
}

#[test]
fn nans_are_canonical() {
    let vm = vm();
    // x86 computes 0/0 as the negative quiet NaN (0xffc00000), ARM as the positive one:
    // canonicalisation makes every machine return 0x7fc00000.
    let nan = contract(
        r#"(import "tcp" "result_write" (func $w (param i32 i32)))"#,
        "(f32.store (i32.const 0) (f32.div (f32.const 0) (f32.const 0))) (call $w (i32.const 0) (i32.const 4))",
        "",
    );
    assert_eq!(run(&vm, &nan).unwrap().result, 0x7fc0_0000u32.to_le_bytes());
}

/// Every host copy is charged by its bytes (issue 18): a contract that reads a 1 MiB input over
/// and over pays for each copy, so the loop ends in `OutOfFuel` after about fuel / 1 MiB reads
/// — not after 2 000 reads that each cost a few instructions, nor at the host's timeout.
#[test]
fn a_loop_of_reads_runs_out_of_fuel_in_proportion_to_the_bytes_copied() {
    let vm = vm();
    let reads = |n: u32| {
        contract(
            r#"(import "tcp" "input_read" (func $r (param i32)))"#,
            &format!("(local $i i32) (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (i32.const {n}))) (call $r (i32.const 0)) (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))"),
            "",
        )
        .replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 17)")
    };
    let input = vec![7u8; 1 << 20];
    let call = |wat: &str| vm.execute(&vm.compile(wat.as_bytes()).unwrap(), CallInput { input: input.clone(), ..Default::default() });
    let ten = call(&reads(10)).unwrap();
    assert!(ten.fuel_used >= 10 << 20, "ten 1 MiB copies cost at least 10 Mi units: {}", ten.fuel_used);
    assert!(ten.fuel_used < (10 << 20) + 10_000, "and little more: {}", ten.fuel_used);
    assert_eq!(call(&reads(2_000)).unwrap_err(), VmError::OutOfFuel(50_000_000));

    // The same for the owners' data and the contract's state: each copy is charged by its bytes.
    let looped = |import: &str, read: &str| {
        contract(
            import,
            &format!("(local $i i32) (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (i32.const 2000))) {read} (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))"),
            "",
        )
        .replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 17)")
    };
    let data_reads = looped(r#"(import "tcp" "data_read" (func $r (param i32 i32 i32)))"#, "(call $r (i32.const 0) (i32.const 0) (i32.const 1048576))");
    let state_reads = looped(r#"(import "tcp" "state_read" (func $r (param i32)))"#, "(call $r (i32.const 0))");
    for (name, wat, call) in [
        ("data_read", &data_reads, CallInput { data: input.clone(), ..Default::default() }),
        ("state_read", &state_reads, CallInput { state: input.clone(), ..Default::default() }),
    ] {
        assert_eq!(vm.execute(&vm.compile(wat.as_bytes()).unwrap(), call).unwrap_err(), VmError::OutOfFuel(50_000_000), "{name}");
    }
}
