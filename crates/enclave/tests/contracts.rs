//! The example contracts (contracts/, built by scripts/build-contracts.sh): the committed
//! .wasm files are the ones their sources build to, and in the VM they compute what their
//! logic computes natively.

use tcp_contract_sdk::{Writer, fixed::ONE};
use tcp_enclave::vm::{CallInput, Contract, Vm, VmLimits};

const CONTRACTS: [&str; 5] = ["credit-score", "sealed-bid-auction", "psi-count", "aggregate-stats", "digest"];

fn contracts_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

fn sha256_hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(&tcp_crypto::sha256(&[bytes]).0)
}

/// The hash scripts/build-contracts.sh records: sha256 of `sha256sum`'s lines for the sources.
fn source_hash(contract: &str) -> String {
    let dir = contracts_dir();
    let mut rs: Vec<String> = Vec::new();
    for sub in ["sdk/src".to_string(), format!("{contract}/src")] {
        let mut stack = vec![dir.join(&sub)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    rs.push(path.strip_prefix(&dir).unwrap().to_str().unwrap().to_string());
                }
            }
        }
    }
    rs.sort();
    rs.extend(["Cargo.toml".into(), "Cargo.lock".into(), "sdk/Cargo.toml".into(), format!("{contract}/Cargo.toml")]);
    let lines: String = rs.iter().map(|f| format!("{}  {f}\n", sha256_hex(&std::fs::read(dir.join(f)).unwrap()))).collect();
    sha256_hex(lines.as_bytes())
}

#[test]
fn contracts_match_their_sources() {
    let manifest = std::fs::read_to_string(contracts_dir().join("wasm/MANIFEST")).unwrap();
    for contract in CONTRACTS {
        let line = manifest.lines().find(|l| l.starts_with(&format!("{contract} "))).unwrap_or_else(|| panic!("{contract} is not in the manifest"));
        let fields: Vec<&str> = line.split(' ').collect();
        let wasm = std::fs::read(contracts_dir().join(format!("wasm/{}.wasm", contract.replace('-', "_")))).unwrap();
        assert_eq!(fields[1], sha256_hex(&wasm), "the wasm of {contract} is not the one the manifest records");
        assert_eq!(fields[2], source_hash(contract), "the sources of {contract} changed: run scripts/build-contracts.sh and commit the result");
    }
}

fn load(vm: &Vm, name: &str) -> Contract {
    vm.compile(&std::fs::read(contracts_dir().join(format!("wasm/{}.wasm", name.replace('-', "_")))).unwrap()).unwrap()
}

fn q(x: f64) -> i32 {
    (x * ONE as f64).round() as i32
}

#[test]
fn credit_scoring_in_the_vm_matches_the_native_model() {
    let vm = Vm::new(VmLimits::default()).unwrap();
    let contract = load(&vm, "credit-score");
    let weights = [0.8, -1.2, 0.5];
    let mut model = Writer::new().i32(q(0.5)).i32(q(-0.3)).u32(3);
    for w in weights {
        model = model.i32(q(w));
    }
    let model = model.finish();
    let state = vm.init(&contract, &model).unwrap().state;
    let records: Vec<[f64; 3]> = (0..50).map(|i| [i as f64 / 10.0 - 2.5, (i % 7) as f64 / 3.0, ((i * 13) % 11) as f64 / 5.0 - 1.0]).collect();
    let mut data = Writer::new().u32(records.len() as u32);
    for r in &records {
        for f in r {
            data = data.i32(q(*f));
        }
    }
    let data = data.finish();
    let out = vm.execute(&contract, CallInput { input: vec![], data: data.clone(), state: state.clone(), data_ends: Vec::new() }).unwrap();
    let native = credit_score::score_all(&credit_score::decode_model(&model).unwrap(), &data).unwrap();
    assert_eq!(out.result, native);
    assert_eq!(out.state, state);
    assert_eq!(out.result.len(), 50 * 5);
    // Some approved, some not; a malformed batch fails the call.
    let approved = out.result.chunks(5).filter(|c| c[4] == 1).count();
    assert!(approved > 0 && approved < 50, "{approved}");
    assert!(vm.execute(&contract, CallInput { data: data[..data.len() - 1].to_vec(), state: state.clone(), ..Default::default() }).is_err());
    // Two owners' blobs (a call's data is its blobs in order, `data_blob_end` says where each
    // ends): every record scored, blob after blob.
    let mut two = data.clone();
    two.extend_from_slice(&data);
    let ends = vec![data.len(), two.len()];
    let call = |data: Vec<u8>, data_ends: Vec<usize>| CallInput { input: vec![], data, data_ends, state: state.clone() };
    let out = vm.execute(&contract, call(two.clone(), ends.clone())).unwrap();
    assert_eq!(out.result, [native.clone(), native.clone()].concat());
    // One owner's blob can never be read into another's: a first blob whose count claims more
    // records than it holds fails the call instead of scoring the next owner's bytes as its own.
    let mut greedy = two.clone();
    greedy[..4].copy_from_slice(&(records.len() as u32 + 1).to_le_bytes());
    assert!(vm.execute(&contract, call(greedy, ends.clone())).is_err(), "a batch must end with its blob");
    assert!(vm.execute(&contract, call(two.clone(), vec![data.len() - 1, two.len()])).is_err(), "a blob that ends inside a batch");
}

/// A model and `n` records of `k` features, encoded as credit-score takes them.
fn credit_call(vm: &Vm, contract: &Contract, n: u32, k: u32) -> CallInput {
    let mut model = Writer::new().i32(q(0.5)).i32(q(-0.3)).u32(k);
    for j in 0..k {
        model = model.i32(q(f64::from(j % 5) / 4.0 - 0.5));
    }
    let state = vm.init(contract, &model.finish()).unwrap().state;
    let mut data = Writer::with_capacity(4 + (n * k * 4) as usize).u32(n);
    for i in 0..n * k {
        data = data.i32(q(f64::from(i % 41) / 10.0 - 2.0));
    }
    CallInput { input: vec![], data: data.finish(), state, data_ends: Vec::new() }
}

#[test]
fn calls_stay_in_the_initial_memory_where_they_can() {
    // The contracts are linked with a 4 MiB initial memory (1 MiB of it stack) and the SDK's
    // allocator uses it before growing.
    const INITIAL: usize = 4 << 20;
    let vm = Vm::new(VmLimits { max_result_bytes: 1 << 20, ..VmLimits::default() }).unwrap();
    // A contract that reads all its data at once: 1 MiB fits, 4 MiB cannot.
    let digest = load(&vm, "digest");
    for (len, grows) in [(1 << 20, false), (4 << 20, true)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let out = vm.execute(&digest, CallInput { data: data.clone(), ..Default::default() }).unwrap();
        assert_eq!(out.result, digest::digest(&data));
        assert_eq!(out.memory_bytes > INITIAL, grows, "{len} bytes of data: {} bytes of memory", out.memory_bytes);
    }
    // Credit scoring takes its records a piece at a time: 5 MB of them, more than its whole
    // memory, go through without growing it.
    let credit = load(&vm, "credit-score");
    let call = credit_call(&vm, &credit, 80_000, 16);
    let out = vm.execute(&credit, call.clone()).unwrap();
    let model = credit_score::decode_model(&call.state).unwrap();
    assert_eq!(out.result, credit_score::score_all(&model, &call.data).unwrap());
    assert_eq!(out.memory_bytes, INITIAL);
}

proptest::proptest! {
    /// The blocked dot product equals the plain sum of per-feature products, for any length
    /// (whole blocks of four and a remainder) and any values.
    #[test]
    fn the_blocked_dot_product_is_the_plain_sum(pairs in proptest::collection::vec((proptest::num::i32::ANY, proptest::num::i32::ANY), 0..40), extra in 0usize..3) {
        let weights: Vec<i32> = pairs.iter().map(|p| p.0).collect();
        let mut features: Vec<u8> = pairs.iter().flat_map(|p| p.1.to_le_bytes()).collect();
        // Bytes beyond the weights (or a partial feature) are not read.
        features.extend(std::iter::repeat_n(0x7f, extra));
        let plain: i64 = pairs.iter().map(|&(w, x)| tcp_contract_sdk::fixed::mul(i64::from(w), i64::from(x))).sum();
        proptest::prop_assert_eq!(tcp_contract_sdk::fixed::dot(&weights, &features), plain);
    }
}

#[test]
fn the_auction_reveals_only_the_winner_and_the_second_price() {
    let vm = Vm::new(VmLimits::default()).unwrap();
    let contract = load(&vm, "sealed-bid-auction");
    let mut state = vm.init(&contract, &100u64.to_le_bytes()).unwrap().state;
    for (bidder, amount) in [(1u8, 150u64), (2, 420), (3, 300), (4, 90)] {
        let data = Writer::new().bytes(&[bidder; 32]).u64(amount).finish();
        let out = vm.execute(&contract, CallInput { input: vec![0], data, state, data_ends: Vec::new() }).unwrap();
        assert_eq!(out.result, vec![1], "the bid is accepted and nothing else is said");
        state = out.state;
    }
    let out = vm.execute(&contract, CallInput { input: vec![1], data: vec![], state, data_ends: Vec::new() }).unwrap();
    assert_eq!(out.result, Writer::new().u8(1).bytes(&[2; 32]).u64(300).finish());
    let late = vm.execute(&contract, CallInput { input: vec![0], data: Writer::new().bytes(&[5; 32]).u64(1000).finish(), state: out.state, data_ends: Vec::new() }).unwrap();
    assert_eq!(late.result, vec![0], "no bids after the close");
}

#[test]
fn psi_counts_the_shared_identifiers_only() {
    let vm = Vm::new(VmLimits::default()).unwrap();
    let contract = load(&vm, "psi-count");
    let state = vm.init(&contract, &[]).unwrap().state;
    let id = |i: u32| tcp_crypto::sha256(&[&i.to_le_bytes()]).0;
    let a: Vec<u32> = (0..500).collect();
    let b: Vec<u32> = (400..1000).collect();
    let mut data = Writer::new().u32(a.len() as u32);
    for i in &a {
        data = data.bytes(&id(*i));
    }
    data = data.u32(b.len() as u32);
    for i in &b {
        data = data.bytes(&id(*i));
    }
    let data = data.finish();
    let out = vm.execute(&contract, CallInput { data: data.clone(), state, ..Default::default() }).unwrap();
    assert_eq!(out.result, 100u32.to_le_bytes());
    assert_eq!(psi_count::intersection_count(&data).unwrap(), 100);
    assert_eq!(out.state, 1u64.to_le_bytes());
}

#[test]
fn aggregate_statistics_accumulate_across_calls() {
    let vm = Vm::new(VmLimits::default()).unwrap();
    let contract = load(&vm, "aggregate-stats");
    let mut state = vm.init(&contract, &[]).unwrap().state;
    let batches: [&[i64]; 2] = [&[10, 20, 30], &[40, 50]];
    let mut result = Vec::new();
    for batch in batches {
        let mut data = Writer::new().u32(batch.len() as u32);
        for v in batch {
            data = data.i64(*v);
        }
        let out = vm.execute(&contract, CallInput { data: data.finish(), state, ..Default::default() }).unwrap();
        state = out.state;
        result = out.result;
    }
    // count 5, sum 150, mean 30, population variance 200.
    assert_eq!(result, Writer::new().u64(5).i64(150).i64(30).i64(200).finish());
    let totals = aggregate_stats::Totals::decode(&state).unwrap();
    assert_eq!(totals.moments(), (30, 200));
}
