//! `cargo bench -p tcp-enclave`: the same algorithms as contracts in the VM and natively, in
//! the same run (target: VM / native ≤ 1.5), and the latency of one small call from a cold start
//! (compile + instantiate + execute) and warm (instantiate + execute of a compiled contract).

use std::hint::black_box;
use std::time::{Duration, Instant};
use tcp_contract_sdk::{Writer, fixed::ONE};
use tcp_enclave::vm::{CallInput, Vm, VmLimits};

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/wasm/{name}.wasm"))).expect("built contracts")
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
    let call = CallInput { input: vec![], data: data.clone(), state };
    let decoded = credit_score::decode_model(&model).expect("model");
    let native_lr = median(15, || {
        black_box(credit_score::score_all(&decoded, black_box(&data)).expect("scores"));
    });
    let vm_lr = median(15, || {
        black_box(vm.execute(&credit, call.clone()).expect("runs"));
    });
    assert_eq!(vm.execute(&credit, call.clone()).unwrap().result, credit_score::score_all(&decoded, &data).unwrap());

    // SHA-256 over 4 MiB.
    let buffer: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    let digest_contract = vm.compile(&wasm("digest")).expect("compiles");
    let digest_call = CallInput { input: vec![], data: buffer.clone(), state: vec![] };
    let native_sha = median(15, || {
        black_box(digest::digest(black_box(&buffer)));
    });
    let vm_sha = median(15, || {
        black_box(vm.execute(&digest_contract, digest_call.clone()).expect("runs"));
    });
    assert_eq!(vm.execute(&digest_contract, digest_call).unwrap().result, digest::digest(&buffer));

    // Latency of one small call (the auction's bid).
    let auction_code = wasm("sealed-bid-auction");
    let auction = vm.compile(&auction_code).expect("compiles");
    let auction_state = vm.init(&auction, &100u64.to_le_bytes()).expect("init").state;
    let bid = CallInput { input: vec![0], data: Writer::new().bytes(&[7; 32]).u64(500).finish(), state: auction_state };
    let cold = median(21, || {
        let c = vm.compile(black_box(&auction_code)).expect("compiles");
        black_box(vm.execute(&c, bid.clone()).expect("runs"));
    });
    let warm = median(201, || {
        black_box(vm.execute(&auction, bid.clone()).expect("runs"));
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
        "SHA-256 of 4 MiB                 {:>8.2} ms {:>8.2} ms   {:>8.2}   ≤ 1.5",
        native_sha.as_secs_f64() * 1e3,
        vm_sha.as_secs_f64() * 1e3,
        ratio(vm_sha, native_sha)
    );
    println!("small call (auction bid): cold (compile+instantiate+execute) {:.2} ms, warm (instantiate+execute) {:.1} µs", cold.as_secs_f64() * 1e3, warm.as_secs_f64() * 1e6);
}
