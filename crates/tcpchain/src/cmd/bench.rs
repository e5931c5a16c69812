//! `tcpchain bench --validators 4 --seconds 30`: start a devnet, load it with signed transfers
//! over RPC from this process at a fixed offered rate, and report committed tx/s and the
//! submit-to-commit latency, next to this machine's limit measured in the same run:
//! secp256k1 signature verifications per second × cores ÷ validators (every validator
//! verifies every transaction once). Target: committed ≥ 50 % of that limit, p50 ≤ 1 s.

use super::devnet::Network;
use super::init::{InitArgs, init};
use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Address, SignedTransaction, Transaction};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum BenchKind {
    /// Confidential contracts on a devnet: submit → opened-result latency, executions per
    /// second, and a validator's check against the enclave's execution.
    Compute(super::bench_compute::BenchComputeArgs),
}

#[derive(Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: Option<BenchKind>,
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Length of the load phase.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Offered load in tx/s; default: 60 % of the same-run limit (1.2 × the target).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Sending accounts (each keeps its pending nonces within the mempool's per-sender bound).
    #[arg(long, default_value_t = 256)]
    pub accounts: usize,
    #[arg(long, default_value_t = 1000)]
    pub block_interval_ms: u64,
    #[arg(long, default_value_t = 28656)]
    pub base_port: u16,
    /// Keep the network's directory (under the system temp dir) afterwards.
    #[arg(long)]
    pub keep: bool,
    #[arg(long)]
    pub json: bool,
}

/// Single-core secp256k1 verifications (public-key recovery from a signed transfer) per second.
fn verifications_per_second(chain_id: &tcp_types::ChainId) -> f64 {
    let key = tcp_state::AccountKey::from_bytes(&[3; 32]).expect("valid key");
    let txs: Vec<SignedTransaction> = (0..2000u64)
        .map(|nonce| Transaction { chain_id: chain_id.clone(), nonce, gas_price: 1, gas_limit: 21_000, action: Action::Transfer { to: Address([1; 20]), amount: 1 } }.sign(&key))
        .collect();
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut ok = 0;
        for tx in &txs {
            ok += usize::from(tx.clone().verify(chain_id).is_ok());
        }
        assert_eq!(ok, txs.len());
        best = best.max(txs.len() as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// A process's peak resident set (`VmHWM` in `/proc/<pid>/status`), in kB.
fn peak_resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(BenchKind::Compute(compute)) = args.kind {
        return super::bench_compute::run(compute);
    }
    let chain_id = tcp_types::ChainId::new("tcp-bench").expect("valid id");
    let per_core = verifications_per_second(&chain_id);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let limit = per_core * cores as f64 / args.validators as f64;
    let target = 0.5 * limit;
    let rate = args.rate.unwrap_or((0.6 * limit).ceil() as u64).max(1);
    eprintln!("limit: {per_core:.0} verifications/s per core × {cores} cores ÷ {} validators = {limit:.0} tx/s; target {target:.0} tx/s; offering {rate} tx/s", args.validators);

    let dir = std::env::temp_dir().join(format!("tcp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = init(&InitArgs {
        validators: args.validators,
        full_nodes: 0,
        compute_nodes: Some(0),
        dir: dir.clone(),
        chain_id: chain_id.as_str().into(),
        base_port: args.base_port,
        block_interval_ms: args.block_interval_ms,
        accounts: 0,
        balance: "1000000000000000000000000".into(),
        load_accounts: args.accounts,
        epoch_length: tcp_node::genesis::ChainParams::default().epoch_length,
        reshare_window: tcp_node::genesis::ChainParams::default().reshare_window,
        unbonding_period: tcp_state::StakingParams::default().unbonding_period,
        jail_period: tcp_state::StakingParams::default().jail_period,
        sssg_size: tcp_node::genesis::ChainParams::default().sssg_size,
        bridge: None,
    })?;
    // Sign everything before the clock starts: the load generator must not be the bottleneck.
    let store = KeyStore::open(&dir)?;
    let keys: Vec<_> = (0..args.accounts).map(|i| store.load(&format!("load-{i}"))).collect::<Result<_, _>>()?;
    let total = (rate * args.seconds) as usize;
    let sink = Address([0xee; 20]);
    let mut planned: Vec<(String, String)> = Vec::with_capacity(total);
    for n in 0..total {
        let key = &keys[n % keys.len()];
        let nonce = (n / keys.len()) as u64;
        let tx = Transaction { chain_id: chain_id.clone(), nonce, gas_price: 1, gas_limit: 21_000, action: Action::Transfer { to: sink, amount: 1 } }.sign(key);
        planned.push((tx.hash().to_hex(), tcp_types::hex::encode(&tx.encode())));
    }
    let mut network = Network::start(layout)?;
    network.wait_for_height(3, Duration::from_secs(60)).context("the bench network did not start")?;
    let urls = network.rpc_urls();

    // Commit observer: polls node 0 for new blocks and timestamps their transactions.
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let committed = committed.clone();
        let stop = stop.clone();
        let url = urls[0].clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut client = RpcClient::new(&url)?;
            let mut seen = client.call("status", json!([]))?["height"].as_u64().unwrap_or(0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let height = client.call("status", json!([]))?["height"].as_u64().unwrap_or(seen);
                for h in seen + 1..=height {
                    let block = client.call("block", json!([h]))?;
                    let now = Instant::now();
                    let mut c = committed.lock().expect("not poisoned");
                    for tx in block["transactions"].as_array().into_iter().flatten() {
                        if let Some(hash) = tx.as_str() {
                            c.insert(hash.to_string(), now);
                        }
                    }
                }
                seen = height;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };

    // Open-loop load in 20 ms ticks, round-robin over the nodes, one batch call per tick.
    let mut clients: Vec<RpcClient> = urls.iter().map(|u| RpcClient::new(u)).collect::<Result<_, _>>()?;
    let mut submitted: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut rejected = 0usize;
    let start = Instant::now();
    let tick = Duration::from_millis(20);
    let mut sent = 0usize;
    let mut k = 0usize;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(total).min(sent + tcp_node::rpc::MAX_BATCH);
        if due > sent {
            let batch: Vec<(&str, serde_json::Value)> = planned[sent..due].iter().map(|(_, hex)| ("send_transaction", json!([hex]))).collect();
            let at = Instant::now();
            let client = &mut clients[k % urls.len()];
            k += 1;
            for (i, r) in client.batch(&batch)?.into_iter().enumerate() {
                match r {
                    Ok(_) => {
                        submitted.insert(planned[sent + i].0.clone(), at);
                    }
                    Err(_) => rejected += 1,
                }
            }
            sent = due;
        }
        std::thread::sleep(tick.saturating_sub(Instant::now().duration_since(start + tick * (start.elapsed().as_millis() as u32 / 20))));
    }
    let load_time = start.elapsed();
    // Let the tail commit.
    let drain_deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < drain_deadline {
        let c = committed.lock().expect("not poisoned");
        if submitted.keys().all(|h| c.contains_key(h)) {
            break;
        }
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    observer.join().map_err(|_| anyhow::anyhow!("observer thread panicked"))??;
    // Each node's peak resident memory over the whole run (the kernel's high-water mark).
    let peak_rss_kb: Vec<Option<u64>> =
        network.children.iter().map(|c| c.as_ref().and_then(|c| peak_resident_kb(c.id()))).collect();
    network.stop();

    let c = committed.lock().expect("not poisoned");
    let mut latencies: Vec<Duration> = submitted.iter().filter_map(|(h, at)| c.get(h).map(|done| done.saturating_duration_since(*at))).collect();
    latencies.sort();
    let committed_count = latencies.len();
    // Steady state: commits observed between the end of a warm-up and the end of the load.
    let warm_up = Duration::from_secs(2).min(load_time / 4);
    let window = (load_time - warm_up).as_secs_f64();
    let in_window = submitted.keys().filter_map(|h| c.get(h)).filter(|t| **t >= start + warm_up && **t <= start + load_time).count();
    let tps = in_window as f64 / window;
    let span = window;
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let report = json!({
        "validators": args.validators,
        "cores": cores,
        "verifications_per_second_per_core": per_core.round(),
        "limit_tx_per_second": limit.round(),
        "target_tx_per_second": target.round(),
        "offered_tx_per_second": rate,
        "submitted": submitted.len(),
        "rejected": rejected,
        "committed": committed_count,
        "committed_tx_per_second": (tps * 10.0).round() / 10.0,
        "ratio_to_limit": (tps / limit * 1000.0).round() / 1000.0,
        "latency_p50_ms": p50.as_millis() as u64,
        "latency_p99_ms": p99.as_millis() as u64,
        "block_interval_ms": args.block_interval_ms,
        "peak_rss_mb": peak_rss_kb.iter().map(|k| k.map(|k| k / 1024)).collect::<Vec<_>>(),
        "target_met": tps >= target && p50 <= Duration::from_secs(1),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "committed {committed_count}/{} transfers ({rejected} rejected); steady state over {span:.1} s: {tps:.0} tx/s = {:.2} × the limit ({limit:.0} tx/s = {per_core:.0} verifications/s × {cores} cores ÷ {} validators); latency p50 {} ms, p99 {} ms; target (≥ 0.5 × limit, p50 ≤ 1 s) {}",
            submitted.len(),
            tps / limit,
            args.validators,
            p50.as_millis(),
            p99.as_millis(),
            if report["target_met"] == true { "met" } else { "NOT met" }
        );
        let peaks: Vec<String> = peak_rss_kb.iter().enumerate().map(|(i, k)| match k {
            Some(k) => format!("validator-{i} {} MB", k / 1024),
            None => format!("validator-{i} unknown"),
        }).collect();
        println!("peak resident memory: {}", peaks.join(", "));
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
