//! `cargo bench -p tcp-state`: state commit throughput — accounts updated per second with the
//! root recomputed — next to keccak-256 hashes per second measured in the same run, so the cost
//! of an update is reported in hash units (the machine is shared and noisy: ratios travel,
//! absolute times do not).
//!
//! An update is the node's path for one touched account: write it into the state's overlay,
//! then commit the batch (account key hash, value hash, leaf hash, and the rebuilt path) and
//! read the new root. Batches of 1 (one account per commit, the worst case), 100 and 1000 (a
//! block of transfers). Target: ≤ 2 × (log₂(accounts) + 8) hash units per updated account at
//! 1M accounts.
//!
//! `TCP_BENCH_ACCOUNTS=100000 cargo bench -p tcp-state` runs a smaller tree.

use std::hint::black_box;
use std::time::{Duration, Instant};
use tcp_state::accounts::{Account, AccountState, StateConfig};
use tcp_types::ChainId;
use tcp_state::{Address, keccak256};

/// Median time of `f` over runs lasting at least `budget` in all (and at least 3 runs).
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 3 || (started.elapsed() < budget && samples.len() < 100_000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// One keccak-256 of an internal node's input (65 bytes), the tree's commonest hash.
fn one_hash() -> Duration {
    let mut input = [7u8; 32];
    let per_1000 = measure(Duration::from_secs(2), || {
        for _ in 0..1000 {
            input = keccak256(&[&[1], black_box(&input), black_box(&[9u8; 32])]);
        }
    });
    per_1000 / 1000
}

fn address(i: u64) -> Address {
    let h = keccak256(&[b"bench-account", &i.to_be_bytes()]);
    Address(h[..20].try_into().expect("20 bytes"))
}

fn main() {
    let accounts: u64 = std::env::var("TCP_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let hash = one_hash();
    println!("keccak-256 (65-byte input): {:.0} ns = 1 hash unit; {:.2} M hashes/s", hash.as_secs_f64() * 1e9, 1e-6 / hash.as_secs_f64());

    let started = Instant::now();
    let mut state = AccountState::restore(
        StateConfig { chain_id: ChainId::new("bench").expect("valid"), min_gas_price: 1, staking: Default::default(), enclaves: None },
        (0..accounts).map(|i| (address(i), Account { balance: 1_000_000, nonce: 0 })),
        Vec::new(),
    ).expect("distinct");
    let root = state.state_root();
    let built = started.elapsed();
    println!(
        "built a tree of {accounts} accounts in {:.2} s ({:.1} hash units per account); root {}",
        built.as_secs_f64(),
        built.as_secs_f64() / accounts as f64 / hash.as_secs_f64(),
        root[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );

    let log2 = (accounts as f64).log2();
    let target = 2.0 * (log2 + 8.0);
    println!();
    println!("{:>8} | {:>12} | {:>14} | {:>18} | target ≤ 2 × (log₂ {accounts} + 8) = {target:.1}", "batch", "per update", "updates/s", "hash units/update");
    let mut next: u64 = 0;
    let mut worst: f64 = 0.0;
    for batch in [1u64, 100, 1000] {
        let per_batch = measure(Duration::from_secs(3), || {
            for _ in 0..batch {
                // Spread over the whole tree: a multiplicative walk through the indices.
                let i = next.wrapping_mul(0x9E37_79B9_7F4A_7C15) % accounts;
                next += 1;
                state_write(&mut state, address(i), next);
            }
            black_box(state.state_root());
        });
        let per_update = per_batch.as_secs_f64() / batch as f64;
        let units = per_update / hash.as_secs_f64();
        worst = worst.max(units);
        println!("{batch:>8} | {:>9.2} µs | {:>14.0} | {units:>18.1} |", per_update * 1e6, 1.0 / per_update);
    }
    println!();
    println!(
        "worst case {worst:.1} hash units per updated account at {accounts} accounts: {} the target ({target:.1})",
        if worst <= target { "meets" } else { "MISSES" }
    );
}

/// Write one account the way Υ does (through the overlay).
fn state_write(state: &mut AccountState, address: Address, nonce: u64) {
    let mut account = state.account(&address);
    account.nonce = nonce;
    state.set_account(address, account).expect("the balance is unchanged");
}
