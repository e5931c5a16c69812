//! `cargo bench -p tcp-enclave`: the same algorithms as contracts in the VM and natively, in
//! the same run (target: VM / native ≤ 1.5), and the latency of one small call from a cold start
//! (compile + instantiate + execute) and warm (instantiate + execute of a compiled contract);
//! simulated quotes generated and verified per second, against one P-256 ECDSA verification
//! measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};
use tcp_contract_sdk::{Writer, fixed::ONE};
use p256::elliptic_curve::Generate as _;
use rand_core::SeedableRng as _;
use tcp_attestation::QuoteBackend as _;
use tcp_enclave::vm::{CallInput, Vm, VmLimits};

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    median_of(runs, || (), |()| f())
}

/// Median of `runs` timings of `f` on a fresh `setup()` each (made outside the timing: a call
/// arrives in the enclave as an owned buffer, so copying it is not the VM's cost).
fn median_of<T>(runs: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let input = setup();
            let start = Instant::now();
            f(input);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// A contract that only takes delivery, as credit scoring takes it: a 4 MiB memory (the SDK
/// contracts' `--initial-memory`), the data read in 64 KiB pieces into one buffer, and a result
/// of 5 bytes per 64-byte record written out of memory the contract filled.
const DELIVER_ONLY: &str = r#"(module
  (import "tcp" "data_len" (func $data_len (result i32)))
  (import "tcp" "data_read" (func $data_read (param i32 i32 i32)))
  (import "tcp" "result_write" (func $result_write (param i32 i32)))
  (memory (export "memory") 64)
  (func (export "init"))
  (func (export "execute")
    (local $n i32)
    (local $at i32)
    (local $piece i32)
    (local $result i32)
    (local.set $n (call $data_len))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $at) (local.get $n)))
      (local.set $piece (i32.sub (local.get $n) (local.get $at)))
      (if (i32.gt_u (local.get $piece) (i32.const 65536)) (then (local.set $piece (i32.const 65536))))
      (call $data_read (i32.const 1114112) (local.get $at) (local.get $piece))
      (local.set $at (i32.add (local.get $at) (local.get $piece)))
      (br $next)))
    (local.set $result (i32.div_u (i32.mul (local.get $n) (i32.const 5)) (i32.const 64)))
    (memory.fill (i32.const 1179648) (i32.const 0) (local.get $result))
    (call $result_write (i32.const 1179648) (local.get $result))))"#;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/wasm/{}.wasm", name.replace('-', "_")))).expect("built contracts")
}

fn main() {
    let vm = Vm::new(VmLimits { fuel: u64::MAX / 2, max_result_bytes: 1 << 20, ..VmLimits::default() }).expect("engine");

    // Logistic regression: 20 000 records × 16 features.
    let (n, k) = (20_000u32, 16u32);
    let mut model = Writer::new().i32(ONE as i32 / 2).i32(-(ONE as i32) / 4).u32(k);
    for j in 0..k {
        model = model.i32(((j as i32 % 5) - 2) * ONE as i32 / 7);
    }
    let model = model.finish();
    let mut data = Writer::new().u32(n);
    for i in 0..n * k {
        data = data.i32(((i.wrapping_mul(2_654_435_761) >> 8) % (4 * ONE as u32)) as i32 - 2 * ONE as i32);
    }
    let data = data.finish();
    let credit = vm.compile(&wasm("credit-score")).expect("compiles");
    let state = vm.init(&credit, &model).expect("init").state;
    let call = CallInput { input: vec![], data: data.clone(), state, data_ends: Vec::new() };
    let decoded = credit_score::decode_model(&model).expect("model");
    let native_lr = median(101, || {
        black_box(credit_score::score_all(&decoded, black_box(&data)).expect("scores"));
    });
    let vm_lr = median_of(101, || call.clone(), |call| {
        black_box(vm.execute(&credit, call).expect("runs"));
    });
    let lr_output = vm.execute(&credit, call.clone()).unwrap();
    assert_eq!(lr_output.result, credit_score::score_all(&decoded, &data).unwrap());
    // What the VM spends on delivering the same call, with no work: a contract that copies the
    // data in and writes a result the size of the scores.
    let deliver = vm.compile(DELIVER_ONLY.as_bytes()).expect("compiles");
    let vm_deliver = median_of(101, || call.clone(), |call| {
        black_box(vm.execute(&deliver, call).expect("runs"));
    });

    // SHA-256 over 4 MiB.
    let buffer: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    let digest_contract = vm.compile(&wasm("digest")).expect("compiles");
    let digest_call = CallInput { input: vec![], data: buffer.clone(), state: vec![], data_ends: Vec::new() };
    let native_sha = median(15, || {
        black_box(digest::digest(black_box(&buffer)));
    });
    let vm_sha = median_of(15, || digest_call.clone(), |call| {
        black_box(vm.execute(&digest_contract, call).expect("runs"));
    });
    assert_eq!(vm.execute(&digest_contract, digest_call).unwrap().result, digest::digest(&buffer));

    // Latency of one small call (the auction's bid).
    let auction_code = wasm("sealed-bid-auction");
    let auction = vm.compile(&auction_code).expect("compiles");
    let auction_state = vm.init(&auction, &100u64.to_le_bytes()).expect("init").state;
    let bid = CallInput { input: vec![0], data: Writer::new().bytes(&[7; 32]).u64(500).finish(), state: auction_state, data_ends: Vec::new() };
    let cold = median(21, || {
        let c = vm.compile(black_box(&auction_code)).expect("compiles");
        black_box(vm.execute(&c, bid.clone()).expect("runs"));
    });
    let warm = median(201, || {
        black_box(vm.execute(&auction, bid.clone()).expect("runs"));
    });

    // Quotes: the simulated backend (one ECDSA signature per quote) and the full verification
    // (chain, CRLs, collateral signatures, QE report, TCB matching, policy).
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let pki = tcp_attestation::DevPki::generate(&mut rng, now - 3600, Duration::from_secs(86_400)).expect("pki");
    let platform = pki.issue_platform(&mut rng, tcp_attestation::PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).expect("platform");
    let backend = tcp_attestation::SimulatedBackend::new(platform, tcp_attestation::Tee::Sgx, &mut rng);
    let enclave = tcp_attestation::EnclaveIdentity { measurement: [7; 32], debug: false };
    let expected = tcp_attestation::Registration { chain_id: tcp_types::ChainId::new("bench").expect("valid"), freshness: [2; 32], chain_keys: [4; 32], signing_key: [1; 32], x25519_key: [3; 32] }.report_data();
    let policy = tcp_attestation::Policy { measurements: vec![[7; 32]], ..tcp_attestation::Policy::default() };
    let verifier = tcp_attestation::Verifier::new(vec![pki.root_ca_der()], policy, false).expect("verifier");
    let evidence = backend.quote(&enclave, &expected).expect("quotes");
    verifier.verify(&evidence.quote, &evidence.collateral, now, &expected).expect("verifies");
    let quote_gen = median(201, || {
        black_box(backend.quote(&enclave, black_box(&expected)).expect("quotes"));
    });
    let quote_verify = median(51, || {
        black_box(verifier.verify(&evidence.quote, &evidence.collateral, now, &expected).expect("verifies"));
    });
    let ecdsa_key = p256::ecdsa::SigningKey::generate_from_rng(&mut rng);
    let ecdsa_sig: p256::ecdsa::Signature = signature::Signer::sign(&ecdsa_key, b"baseline");
    let ecdsa_verify = median(201, || {
        black_box(signature::Verifier::verify(ecdsa_key.verifying_key(), black_box(b"baseline"), &ecdsa_sig).is_ok());
    });

    let ratio = |vm: Duration, native: Duration| vm.as_secs_f64() / native.as_secs_f64();
    println!("                                  native        VM   VM/native   target");
    println!(
        "logistic regression {n}×{k}   {:>8.2} ms {:>8.2} ms   {:>8.2}   ≤ 1.5",
        native_lr.as_secs_f64() * 1e3,
        vm_lr.as_secs_f64() * 1e3,
        ratio(vm_lr, native_lr)
    );
    println!(
        "  of which delivery (copy in by pieces, page reset, wiping the host's copy) {:.2} ms; the rest {:.2} ms = {:.2} × native; memory at the end {:.1} MiB",
        vm_deliver.as_secs_f64() * 1e3,
        vm_lr.saturating_sub(vm_deliver).as_secs_f64() * 1e3,
        ratio(vm_lr.saturating_sub(vm_deliver), native_lr),
        lr_output.memory_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "SHA-256 of 4 MiB                 {:>8.2} ms {:>8.2} ms   {:>8.2}   ≤ 1.5",
        native_sha.as_secs_f64() * 1e3,
        vm_sha.as_secs_f64() * 1e3,
        ratio(vm_sha, native_sha)
    );
    println!("small call (auction bid): cold (compile+instantiate+execute) {:.2} ms, warm (instantiate+execute) {:.1} µs", cold.as_secs_f64() * 1e3, warm.as_secs_f64() * 1e6);
    println!(
        "simulated SGX quotes: generated {:.0}/s ({:.1} µs each), verified {:.0}/s ({:.2} ms each = {:.1} P-256 verifications of {:.1} µs)",
        1.0 / quote_gen.as_secs_f64(),
        quote_gen.as_secs_f64() * 1e6,
        1.0 / quote_verify.as_secs_f64(),
        quote_verify.as_secs_f64() * 1e3,
        ratio(quote_verify, ecdsa_verify),
        ecdsa_verify.as_secs_f64() * 1e6
    );
}
