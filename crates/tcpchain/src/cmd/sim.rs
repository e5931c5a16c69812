//! `tcpchain sim`: many seeded runs of the deterministic simulator (the node's own code as
//! host), summarised.

use anyhow::{Result, bail};
use clap::Args;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tcp_consensus::RejectionStats;
use tcp_sim::{Faults, SimConfig, SimReport};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Number of validators (equal voting power).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// How many of them are Byzantine (misbehave when --faults includes byzantine).
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Heights every honest validator must decide in each run.
    #[arg(long, default_value_t = 30)]
    heights: u64,
    /// Number of seeds to run (seeds 0..N).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Replay exactly one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// none, crash, partition, loss, byzantine, all, or a comma-separated list.
    #[arg(long, default_value = "all")]
    faults: Faults,
    /// Pin the Byzantine validators' behaviour (repeatable: silent, equivocate, double-vote,
    /// amnesia, junk, forge-finality, withhold, flood, grind, crash-reshare, bad-partials); by default each
    /// seed draws one per validator (bad-partials only when pinned).
    #[arg(long = "behaviour")]
    behaviours: Vec<tcp_sim::Behaviour>,
    /// Print every decision, signed message and fault of the run(s) to stderr.
    #[arg(long)]
    trace: bool,
    /// Heights per beacon epoch (validator-set changes and weight resets at boundaries).
    #[arg(long = "epoch", default_value_t = 100)]
    epoch_length: u64,
    /// Heights in which the genesis DKG's logs are committed (and each retry's).
    #[arg(long, default_value_t = 8)]
    dkg_window: u64,
    /// Join and remove validators at every epoch boundary (the old set reshares to the new).
    #[arg(long)]
    churn: bool,
    /// Test that round-0 proposer counts match the selection weights (chi-square).
    #[arg(long)]
    fairness: bool,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Run honest validators with a deliberately broken core (shows the checker catches it).
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_parser = parse_injected_fault)]
    inject: Option<tcp_consensus::InjectedFault>,
}

#[cfg(feature = "fault-injection")]
fn parse_injected_fault(s: &str) -> Result<tcp_consensus::InjectedFault, String> {
    match s {
        "broken-locking" => Ok(tcp_consensus::InjectedFault::BrokenLocking),
        other => Err(format!("unknown fault to inject {other:?}: expected broken-locking")),
    }
}

pub fn run(args: SimArgs) -> Result<ExitCode> {
    if args.validators == 0 || args.validators > 256 {
        bail!("--validators must be between 1 and 256, got {}", args.validators);
    }
    if args.byzantine > args.validators {
        bail!("--byzantine ({}) cannot exceed --validators ({})", args.byzantine, args.validators);
    }
    if args.heights == 0 {
        bail!("--heights must be at least 1");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.epoch_length < 2 {
        bail!("--epoch must be at least 2 heights, got {}", args.epoch_length);
    }
    if args.dkg_window < 2 || args.dkg_window >= args.epoch_length {
        bail!("--dkg-window must be at least 2 and below --epoch ({}), got {}", args.epoch_length, args.dkg_window);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (0..args.seeds).collect(),
    };
    #[allow(unused_mut)]
    let mut template = SimConfig::new(args.validators, args.byzantine, args.heights, args.faults, 0);
    template.trace = args.trace;
    template.behaviours = args.behaviours.clone();
    template.epoch_length = args.epoch_length;
    template.dkg_window = args.dkg_window;
    template.churn = args.churn;
    template.fairness = args.fairness;
    #[cfg(feature = "fault-injection")]
    if let Some(fault) = args.inject {
        println!("note: honest validators run a deliberately broken core ({fault:?})");
        template.injected_fault = fault;
    }
    let tolerated = template.tolerated_faults();
    println!(
        "simulating {} seed(s): {} validators, {} byzantine (tolerated: {}), faults: {}, {} heights each, epoch {} heights{}",
        seeds.len(),
        args.validators,
        args.byzantine,
        tolerated,
        args.faults,
        args.heights,
        args.epoch_length,
        if args.churn { ", validators join and leave every epoch" } else { "" }
    );
    if args.byzantine > tolerated && args.faults.byzantine {
        println!("note: more than f = {tolerated} Byzantine validators; the protocol promises nothing, violations are expected");
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let reports = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(seeds.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&seed) = seeds.get(i) else { break };
                    let report = tcp_sim::run(SimConfig { seed, ..template.clone() });
                    reports.lock().expect("no panics while holding the lock").push(report);
                }
            });
        }
    });
    let mut reports: Vec<SimReport> = reports.into_inner().expect("no poisoned lock");
    reports.sort_by_key(|r| r.seed);

    let mut rejections = RejectionStats::default();
    let (mut safety, mut liveness, mut heights, mut min_heights) = (0usize, 0usize, 0u64, u64::MAX);
    let (mut sent, mut dropped, mut decode_errors, mut evidence, mut crashes, mut partitions, mut replays, mut max_round) =
        (0, 0, 0, 0, 0, 0, 0, 0);
    let mut virtual_secs = 0.0;
    for r in &reports {
        rejections.merge(&r.rejections);
        heights += r.heights_decided;
        min_heights = min_heights.min(r.heights_decided);
        sent += r.messages_sent;
        dropped += r.messages_dropped;
        decode_errors += r.decode_errors;
        evidence += r.evidence;
        crashes += r.crashes;
        partitions += r.partitions;
        replays += r.wal_replays;
        max_round = max_round.max(r.max_round);
        virtual_secs += r.virtual_time.as_secs_f64();
        if !r.is_ok() {
            let cfg = SimConfig { seed: r.seed, ..template.clone() };
            for v in &r.violations {
                println!("seed {}: SAFETY VIOLATION: {v}", r.seed);
            }
            for f in r.beacon_failures.iter().take(5) {
                println!("seed {}: BEACON FAILURE: {f}", r.seed);
            }
            if let Some(l) = &r.liveness_failure {
                println!("seed {}: LIVENESS FAILURE: {l}", r.seed);
            }
            for f in r.node_failures.iter().take(5) {
                println!("seed {}: NODE FAILURE: {f}", r.seed);
            }
            for f in r.memory_violations.iter().take(5) {
                println!("seed {}: MEMORY BOUND VIOLATION: {f}", r.seed);
            }
            for f in r.release_failures.iter().take(5) {
                println!("seed {}: RELEASE FAILURE: {f}", r.seed);
            }
            println!("seed {}: byzantine behaviours {:?}; replay with:\n  {}", r.seed, r.behaviours, cfg.replay_command());
        }
        safety += r.violations.len();
        liveness += usize::from(r.liveness_failure.is_some());
    }
    let seeds_failed = reports.iter().filter(|r| !r.is_ok()).count();
    println!("seeds run: {}", reports.len());
    println!("heights decided: {heights} (every honest node, summed over seeds; fewest in one seed: {min_heights})");
    println!(
        "liveness bound: after the network heals, every honest node decides {} more heights (and at least {} in all) within {}s + {}s per height",
        template.liveness_heights,
        template.heights,
        template.liveness_bound.0.as_secs(),
        template.liveness_bound.1.as_secs()
    );
    println!("virtual time: {virtual_secs:.0}s, wall time: {:.1}s on {threads} thread(s)", started.elapsed().as_secs_f64());
    println!("messages: {sent} sent, {dropped} dropped by faults, {decode_errors} undecodable");
    println!("faults: {crashes} crashes, {replays} WAL replays, {partitions} partitions, highest deciding round {max_round}");
    println!("evidence of equivocation reported by honest nodes: {evidence}");
    let listed: Vec<String> = rejections.counts.iter().map(|(k, v)| format!("{k:?}={v}")).collect();
    println!("rejected inputs: {} ({})", rejections.total(), listed.join(", "));
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    println!(
        "beacon: {} heights with a committed σ verified against the group key, {} heights where two different quorums recovered the identical σ",
        sum(|r| r.beacon_heights),
        sum(|r| r.quorum_checks)
    );
    println!(
        "finality: {} committed blocks (summed over honest nodes) with a stored φ verified against the group key",
        sum(|r| r.finality_checked)
    );
    println!(
        "beacon ceremonies: {} failed and retried, {} epochs extended, {} DKG messages refused",
        sum(|r| r.ceremonies_failed),
        sum(|r| r.epochs_extended),
        sum(|r| r.dkg_rejected)
    );
    println!("reshares: {}", sum(|r| r.reshares));
    println!(
        "DKMP: {} reshares of the master secret, {} ceremonies failed and retried, {} epochs of extended service, a group serves at the end in {} of {} seeds, master public key changed: {}",
        sum(|r| r.dkmp_reshares),
        sum(|r| r.dkmp_ceremonies_failed),
        sum(|r| r.dkmp_epochs_extended),
        reports.iter().filter(|r| r.dkmp_serving).count(),
        reports.len(),
        if reports.iter().any(|r| r.master_key_changed) { "yes" } else { "no" }
    );
    println!(
        "DKMP releases: {} contract keys obtained by the simulated compute node's enclave, {} bad answers named, {} release failures",
        sum(|r| r.dkmp_releases),
        sum(|r| r.dkmp_bad_answers),
        reports.iter().map(|r| r.release_failures.len()).sum::<usize>()
    );
    if let Some(sample) = reports.first().and_then(|r| r.beacon_sample.as_ref()) {
        println!("last σ of seed {} (check it with one pairing):\n  {}", reports[0].seed, super::beacon::verify_command(sample));
    }
    println!("group key changed: {}", if reports.iter().any(|r| r.group_key_changed) { "yes" } else { "no" });
    let mut fairness_failed = false;
    if args.fairness {
        fairness_failed = !print_fairness(&reports);
    }
    let beacon_failures = reports.iter().map(|r| r.beacon_failures.len()).sum::<usize>();
    println!("seeds failed: {seeds_failed}");
    println!("safety violations: {safety}");
    println!("liveness failures: {liveness}");
    println!("beacon failures: {beacon_failures}");
    println!("node failures: {}", reports.iter().map(|r| r.node_failures.len()).sum::<usize>());
    let mut peaks: std::collections::BTreeMap<&str, (usize, usize)> = std::collections::BTreeMap::new();
    for r in &reports {
        for (name, (bytes, limit)) in &r.buffer_peaks {
            let peak = peaks.entry(name.as_str()).or_insert((0, *limit));
            *peak = ((*peak).0.max(*bytes), *limit);
        }
    }
    let listed: Vec<String> = peaks.iter().map(|(name, (bytes, limit))| format!("{name} {bytes}/{limit}")).collect();
    if !listed.is_empty() {
        println!("buffer peaks (bytes/limit, any node): {}", listed.join(", "));
    }
    println!("memory bound violations: {}", reports.iter().map(|r| r.memory_violations.len()).sum::<usize>());
    Ok(if seeds_failed == 0 && !fairness_failed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Chi-square of round-0 proposer counts against the expected counts from the weights, summed
/// over all seeds' beacon-driven heights. Returns whether p ≥ 0.01.
fn print_fairness(reports: &[SimReport]) -> bool {
    let nodes = reports.iter().map(|r| r.proposer_observed.len()).max().unwrap_or(0);
    let mut observed = vec![0u64; nodes];
    let mut expected = vec![0f64; nodes];
    for r in reports {
        for (k, (o, e)) in r.proposer_observed.iter().zip(&r.proposer_expected).enumerate() {
            observed[k] += o;
            expected[k] += e;
        }
    }
    let draws: u64 = observed.iter().sum();
    let (statistic, dof) = tcp_beacon::fairness::chi_square(&observed, &expected);
    let p = tcp_beacon::fairness::chi_square_p_value(statistic, dof);
    println!("fairness: {draws} round-0 proposer draws from the beacon; per node observed/expected:");
    for (k, (o, e)) in observed.iter().zip(&expected).enumerate() {
        println!("  node {k}: {o} / {e:.1}");
    }
    println!("fairness chi-square: {statistic:.2} with {dof} degrees of freedom");
    println!("fairness p-value: {p:.4}");
    p >= 0.01
}
