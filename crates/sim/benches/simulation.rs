//! `cargo bench -p tcp-sim`: simulated heights per CPU second with the node as host.
//!
//! Whole networks of n = 4 and n = 16 validators run the node's own code (consensus, beacon
//! partials and σ, blocks, the WAL and redb on a disk in memory, sync, gossip) on the
//! deterministic runtime, without faults. Reported against a baseline measured in the same
//! run: one ed25519 vote verification, the unavoidable cost of a vote, so the figure is
//! "CPU per height in verifications" and does not move with the machine's load.

use commonware_cryptography::Signer as _;
use std::time::Duration;
use tcp_sim::{Faults, SimConfig};

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU seconds of one ed25519 vote verification.
fn verification_cost() -> f64 {
    let chain = tcp_types::ChainId::new("bench").unwrap();
    let domains = tcp_consensus::ConsensusDomains::new(&chain);
    let key = tcp_crypto::insecure_ed25519_from_seed(1);
    let set = tcp_consensus::ValidatorSet::new(vec![tcp_consensus::Validator { public_key: key.public_key(), voting_power: 1 }]).unwrap();
    let vote = domains.sign_vote(
        &key,
        tcp_consensus::Vote {
            vote_type: tcp_consensus::VoteType::Prevote,
            height: tcp_types::Height(1),
            round: tcp_types::Round(0),
            value: None,
            validator: tcp_types::ValidatorIndex(0),
            extension: bytes::Bytes::new(),
        },
    );
    let rounds = 2000;
    let start = cpu_time();
    for _ in 0..rounds {
        assert!(std::hint::black_box(domains.verify_vote(&set, &vote)));
    }
    (cpu_time() - start).as_secs_f64() / rounds as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us once as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    println!("tcp-sim benchmark ({} mode): the node as host", if quick { "quick smoke" } else { "full" });
    let verification = verification_cost();
    println!("baseline: one ed25519 vote verification = {:.1} µs CPU", verification * 1e6);
    for (n, heights) in [(4usize, if quick { 10 } else { 200 }), (16, if quick { 5 } else { 60 })] {
        let cfg = SimConfig::new(n, 0, heights, Faults::NONE, 1);
        let start = cpu_time();
        let report = tcp_sim::run(cfg);
        let cpu = (cpu_time() - start).as_secs_f64();
        assert!(report.is_ok(), "{:?} {:?}", report.violations, report.liveness_failure);
        let per_height = cpu / report.heights_decided as f64;
        println!(
            "simulation n = {n:>2}: {} heights in {cpu:.2} CPU s = {:.1} heights per CPU second; {:.0} verifications of CPU per height ({:.0} per node), {} messages",
            report.heights_decided,
            report.heights_decided as f64 / cpu,
            per_height / verification,
            per_height / verification / n as f64,
            report.messages_sent
        );
    }
}
