//! `tcpchain bench compute --seconds 30 [--compute-nodes 2]` (issue 20, item 10): a devnet with
//! compute nodes and a data source; one credit-scoring contract per compute node (a 64-feature
//! model) fed a data owner's encrypted batch of 3000 applicants; then, for the given time, one
//! client per compute node scores the batch again and again through `tcp-client` (request →
//! enclave → commit → result key from the group → opened and checked).
//! Reports submit → opened-result latency (also in block intervals; target p50 ≤ 2), compute
//! transactions per second, and what a validator spends checking a compute transaction (its
//! signatures, measured in this process on an outcome of the same shape) as a fraction of what
//! the enclave spends producing one (the whole enclave call, as the compute nodes timed it in
//! the same run; target ≤ 0.05).

use super::devnet::Network;
use super::init::{InitArgs, init};
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;

#[derive(Args, Clone, Debug)]
pub struct BenchComputeArgs {
    /// Length of the load phase.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Compute nodes, each with its own contract and client.
    #[arg(long, default_value_t = 1)]
    pub compute_nodes: usize,
    #[arg(long, default_value_t = 1000)]
    pub block_interval_ms: u64,
    #[arg(long, default_value_t = 30656)]
    pub base_port: u16,
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The credit-scoring batch of the ratio: a model of `k` features and `n` applicants' records.
fn credit_batch(k: usize, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut model = Vec::new();
    model.extend_from_slice(&(1i32 << 15).to_le_bytes()); // threshold 0.5 (Q16.16)
    model.extend_from_slice(&(-(1i32 << 16)).to_le_bytes()); // bias −1
    model.extend_from_slice(&(k as u32).to_le_bytes());
    for i in 0..k {
        model.extend_from_slice(&(((i as i32 % 5) - 2) << 14).to_le_bytes());
    }
    let mut data = (n as u32).to_le_bytes().to_vec();
    for r in 0..n {
        for i in 0..k {
            data.extend_from_slice(&((((r * 31 + i * 7) % 64) as i32 - 32) << 12).to_le_bytes());
        }
    }
    (model, data)
}

/// Seconds per call of `f`, the median of five rounds of `n` calls (the median, as for the
/// enclave's times it is compared with: a best-of would flatter the validator).
fn time_per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// The credit-scoring batch: 3000 applicants (the most a receipt carries at 5 bytes of result
/// each), 64 features.
const APPLICANTS: usize = 3000;
const FEATURES: usize = 64;

/// What a validator does for a compute transaction beyond a transfer's checks: the enclave's
/// signature over the whole outcome, the client's and one owner's signature recovered, on an
/// outcome the size of the credit-scoring batch's. The median of a few rounds.
fn validator_check_seconds() -> anyhow::Result<f64> {
    use tcp_state::{AccountKey, Call, CallStatus, ComputeOutcome, ComputeRequest, DataTerms};
    let chain = tcp_types::ChainId::new("tcp-bench").expect("valid");
    let client = AccountKey::from_bytes(&[3; 32]).expect("valid");
    let owner = AccountKey::from_bytes(&[4; 32]).expect("valid");
    let signer = tcp_crypto::ed25519_from_secret(&[5; 32]);
    let request = ComputeRequest {
        chain_id: chain.clone(),
        call: Call::Execute { cid: [1; 32], data: vec![[2; 32]] },
        input_hash: [3; 32],
        result_key: [4; 32],
        max_fee: 1,
        nonce: 0,
        valid_until: 10,
    }
    .sign(&client);
    let terms = DataTerms { chain_id: chain.clone(), owner: owner.address(), hash: [2; 32], price: 1, contracts: vec![[1; 32]] }.sign(&owner);
    let mut outcome = ComputeOutcome {
        request,
        enclave: [0; 32],
        cid: [1; 32],
        code: Vec::new(),
        generation: 0,
        public_key: [5; 32],
        pre_state_hash: [6; 32],
        status: CallStatus::Ok,
        state: vec![7; 300],
        result: vec![8; 5 * APPLICANTS + 300],
        result_hash: [9; 32],
        computed: [8; 32],
        fuel_used: 1,
        fee: 1,
        data: vec![terms],
    };
    outcome.enclave = commonware_codec::Encode::encode(&commonware_cryptography::Signer::public_key(&signer)).as_ref().try_into().expect("32");
    let signature = outcome.sign(&chain, &signer);
    Ok(time_per_call(200, || {
        assert!(outcome.verify_signature(&chain, &signature));
        outcome.request.client().expect("recovers");
        outcome.data.iter().for_each(|d| assert!(d.owner().is_some()));
    }))
}

/// Wait until the newest finalized view of `cid` shows its latest state (`compute_view` refuses
/// while the newest block changed the contract).
fn wait_until_finalized(chain: &mut RpcClient, cid: &[u8; 32]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while chain.call("compute_view", json!([tcp_types::hex::encode(cid), "00".repeat(32)])).is_err() {
        if Instant::now() > deadline {
            bail!("the contract's state did not finalize");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn run(args: BenchComputeArgs) -> anyhow::Result<std::process::ExitCode> {
    let dir = std::env::temp_dir().join(format!("tcp-bench-compute-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let defaults = tcp_node::genesis::ChainParams::default();
    let layout = init(&InitArgs {
        validators: args.validators,
        full_nodes: 0,
        compute_nodes: Some(args.compute_nodes),
        dir: dir.clone(),
        chain_id: "tcp-bench".into(),
        base_port: args.base_port,
        block_interval_ms: args.block_interval_ms,
        accounts: 2,
        balance: "1000000000000000000000000".into(),
        load_accounts: 0,
        epoch_length: defaults.epoch_length,
        reshare_window: defaults.reshare_window,
        unbonding_period: tcp_state::StakingParams::default().unbonding_period,
        jail_period: tcp_state::StakingParams::default().jail_period,
        sssg_size: defaults.sssg_size,
        bridge: None,
    })?;
    let genesis = dir.join("genesis.json");
    let spec = tcp_node::genesis::ChainSpec::load(&genesis)?;
    let group_key = spec.bootstrap_group_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let light = tcp_light::LightClient::new(spec.chain_id.clone(), group_key);
    let compute_urls: Vec<String> =
        layout.nodes.iter().filter(|(_, _, c)| c.compute.is_some()).map(|(_, _, c)| format!("http://{}", c.rpc_listen)).collect();
    let datasource = layout.nodes.iter().find_map(|(_, _, c)| c.compute.as_ref()?.datasources.first().cloned()).context("no data source")?;
    let mut network = Network::start(layout)?;
    let rpc = network.rpc_urls()[0].clone();
    network.wait_for_height(2, Duration::from_secs(60)).context("the bench network did not start")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let nodes = RpcClient::new(&rpc)?.call("compute_nodes", json!([]))?;
        let registered = nodes["compute_nodes"].as_array().into_iter().flatten().filter(|n| n["enclaves"].as_array().is_some_and(|e| e.iter().any(|e| e["current"] == true))).count();
        if registered >= args.compute_nodes {
            break;
        }
        if Instant::now() > deadline {
            bail!("the compute nodes' enclaves did not register in time; logs under {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let store = KeyStore::open(&dir)?;
    let (alice, bob) = (store.load("alice")?, store.load("bob")?);
    let code = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/wasm/credit_score.wasm"))
        .context("reading contracts/wasm/credit_score.wasm")?;
    let (model, batch) = credit_batch(FEATURES, APPLICANTS);
    // One contract per compute node (executions of one contract are serial: each runs on the state
    // the previous one committed), each fed bob's encrypted batch.
    let mut contracts = Vec::new();
    for (i, url) in compute_urls.iter().enumerate() {
        let mut chain = RpcClient::new(&rpc)?;
        let deployed = tcp_client::deploy(url, &mut chain, &light, &alice, &code, &model, 1_000 + i as u64, 10_000_000)?;
        if deployed.status != tcp_state::CallStatus::Ok {
            bail!("the credit model did not deploy: {}", String::from_utf8_lossy(&deployed.result));
        }
        let blob = tcp_client::put_data(&datasource, &mut chain, &light, &bob, &deployed.cid, 1, &batch)?;
        contracts.push((url.clone(), deployed.cid, blob));
    }
    eprintln!("{} contract(s) deployed and fed; executing for {} s…", contracts.len(), args.seconds);
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let threads: Vec<_> = contracts
        .into_iter()
        .map(|(url, cid, blob)| {
            let (rpc, alice, chain_id, interval_ms) = (rpc.clone(), alice.clone(), spec.chain_id.clone(), args.block_interval_ms);
            std::thread::spawn(move || -> anyhow::Result<Vec<(Duration, tcp_client::Timings)>> {
                let light = tcp_light::LightClient::new(chain_id, group_key);
                let mut chain = RpcClient::new(&rpc)?;
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    // Each request finds the contract idle — the previous execution's state
                    // finalized (its φ known), as a request on a contract nobody else is running
                    // finds it — and comes at a uniformly random moment of a block interval, as
                    // clients' requests do (sent right as the contract turns idle, it would always
                    // just miss the next proposal).
                    wait_until_finalized(&mut chain, &cid)?;
                    let mut random = [0u8; 8];
                    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("the OS RNG: {e}"))?;
                    std::thread::sleep(Duration::from_millis(u64::from_le_bytes(random) % interval_ms.max(1)));
                    let at = Instant::now();
                    let opened = tcp_client::execute(&url, &mut chain, &light, &alice, &cid, &[], vec![blob], 10_000_000)?;
                    if opened.status != tcp_state::CallStatus::Ok || !opened.verified {
                        bail!("an execution failed: {}", String::from_utf8_lossy(&opened.result));
                    }
                    if opened.result.len() != 5 * APPLICANTS {
                        bail!("the scoring gave {} bytes for {APPLICANTS} applicants", opened.result.len());
                    }
                    latencies.push((at.elapsed(), opened.timings));
                }
                Ok(latencies)
            })
        })
        .collect();
    // The validator's side measured while the devnet and the clients run, as the enclave's is:
    // the same machine under the same load.
    let verify_s = validator_check_seconds()?;
    let mut latencies = Vec::new();
    for t in threads {
        latencies.extend(t.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??);
    }
    let elapsed = start.elapsed();
    network.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let mut enclave: Vec<Duration> = latencies.iter().filter_map(|(_, t)| t.enclave).collect();
    enclave.sort();
    if enclave.is_empty() {
        bail!("no compute node reported its enclave's time");
    }
    let execute_s = percentile(&enclave, 0.5).as_secs_f64();
    let phase = |f: fn(&tcp_client::Timings) -> Duration| {
        let mut v: Vec<Duration> = latencies.iter().map(|(_, t)| f(t)).collect();
        v.sort();
        percentile(&v, 0.5).as_secs_f64() * 1e3
    };
    // p50 of each phase, from when the request was sent.
    let phases = json!({
        "answered_ms": phase(|t| t.answered),
        "proven_ms": phase(|t| t.proven),
        "opened_ms": phase(|t| t.opened),
    });
    let mut latencies: Vec<Duration> = latencies.into_iter().map(|(d, _)| d).collect();
    latencies.sort();
    let interval = Duration::from_millis(args.block_interval_ms);
    let (p50, p90) = (percentile(&latencies, 0.5), percentile(&latencies, 0.9));
    let out = json!({
        "compute_nodes": args.compute_nodes,
        "executions": latencies.len(),
        "seconds": elapsed.as_secs_f64(),
        "executions_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "latency_p50_ms": p50.as_secs_f64() * 1e3,
        "latency_p90_ms": p90.as_secs_f64() * 1e3,
        "latency_p50_blocks": p50.as_secs_f64() / interval.as_secs_f64(),
        "phases_p50": phases,
        "block_interval_ms": args.block_interval_ms,
        "batch": {"applicants": APPLICANTS, "features": FEATURES},
        "validator_check_ms": verify_s * 1e3,
        "enclave_call_p50_ms": execute_s * 1e3,
        "validator_to_enclave_ratio": verify_s / execute_s,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} executions in {:.1} s with {} compute node(s): {:.2}/s; submit → opened result p50 {:.0} ms ({:.2} block intervals; target ≤ 2), p90 {:.0} ms (p50 of the phases: answered {:.0} ms, proven {:.0} ms, opened {:.0} ms); validator check {:.3} ms / enclave call p50 {:.2} ms = {:.4} (target ≤ 0.05)",
            latencies.len(),
            elapsed.as_secs_f64(),
            args.compute_nodes,
            out["executions_per_second"].as_f64().unwrap_or(0.0),
            p50.as_secs_f64() * 1e3,
            out["latency_p50_blocks"].as_f64().unwrap_or(0.0),
            p90.as_secs_f64() * 1e3,
            phases["answered_ms"].as_f64().unwrap_or(0.0),
            phases["proven_ms"].as_f64().unwrap_or(0.0),
            phases["opened_ms"].as_f64().unwrap_or(0.0),
            verify_s * 1e3,
            execute_s * 1e3,
            verify_s / execute_s
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
