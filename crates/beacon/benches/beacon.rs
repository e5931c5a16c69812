//! `cargo bench -p tcp-beacon`: the beacon's per-height work per node and the cost of DKG and
//! reshare, at n = 4, 16, 64, each also in units of one pairing measured in the same run (the
//! machine is shared and noisy: ratios travel, absolute times do not).
//!
//! Per height a validator signs one partial, verifies the others' partials (individually or in
//! one batch), recovers σ_h when it proposes next, and verifies σ_h once in the next block (one
//! pairing check). The target: ≤ 4 pairing-equivalents per height per node at n = 64 with
//! batching.

use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tcp_beacon::dkg::BeaconShare;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::signature::{recover_signature, sign_partial, verify_partial, verify_partials};
use tcp_beacon::{Ceremony, Previous, beacon_message, verify_beacon};
use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height};

/// Median time of `f` over runs lasting at least `budget` in all (and at least 3 runs).
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 3 || (started.elapsed() < budget && samples.len() < 10_000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn one_pairing() -> Duration {
    // e(g1, g2) by blst directly: one Miller loop plus one final exponentiation.
    let (g1, g2) = unsafe { (*blst::blst_p1_affine_generator(), *blst::blst_p2_affine_generator()) };
    measure(Duration::from_secs(2), || {
        black_box(blst::blst_fp12::miller_loop(black_box(&g2), black_box(&g1)).final_exp());
    })
}

fn main() {
    let chain = ChainId::new("bench").expect("valid");
    let pairing = one_pairing();
    let unit = |d: Duration| d.as_secs_f64() / pairing.as_secs_f64();
    println!("one pairing (Miller loop + final exponentiation): {:.3} ms — the unit below", pairing.as_secs_f64() * 1e3);
    println!();
    println!(
        "{:>4} {:>3} | {:>13} {:>15} {:>18} {:>15} {:>13} | {:>24} | {:>12} {:>12}",
        "n", "t", "partial sign", "verify 1 (each)", "batch verify t", "recover σ", "verify σ", "per height per node", "DKG", "reshare"
    );
    for n in [4usize, 16, 64] {
        let keys: Vec<Ed25519PrivateKey> = (0..n as u64).map(insecure_ed25519_from_seed).collect();
        let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = Ceremony::new(0, None, &public, &public).expect("ceremony");
        let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
        let dkg_time = measure(Duration::from_secs(3), || {
            black_box(run_local_ceremony(&ceremony, &keys, &[], &mut rng).expect("honest ceremony"));
        });
        let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut rng).expect("honest ceremony");
        let shares_with_keys = shares;
        let sharing = output.public();
        sharing.precompute_partial_publics();
        let t = sharing.required() as usize;
        // Reshare to the same number of players, one replaced.
        let new_keys: Vec<Ed25519PrivateKey> = (1..=n as u64).map(insecure_ed25519_from_seed).collect();
        let mut all_keys = keys.clone();
        all_keys.push(new_keys.last().expect("non-empty").clone());
        let new_public: Vec<_> = new_keys.iter().map(|k| k.public_key()).collect();
        let reshare = Ceremony::new(1, Some(output.clone()), &public, &new_public).expect("reshare");
        let previous = shares_with_keys.clone();
        let shares: Vec<BeaconShare> = shares_with_keys.into_iter().map(|(_, s)| s).collect();
        let reshare_time = measure(Duration::from_secs(3), || {
            black_box(run_local_ceremony(&reshare, &all_keys, &previous, &mut rng).expect("honest reshare"));
        });

        let message = beacon_message(&chain, Height(42), &Previous::Seed(Digest([9; 32])));
        let sign = measure(Duration::from_secs(1), || {
            black_box(sign_partial(&shares[0], &message));
        });
        let partials: Vec<_> = shares.iter().map(|s| sign_partial(s, &message)).collect();
        let verify_one = measure(Duration::from_secs(1), || {
            assert!(verify_partial(sharing, &message, black_box(&partials[1])));
        });
        let batch = measure(Duration::from_secs(2), || {
            assert!(verify_partials(&mut rng, sharing, &message, black_box(&partials[..t])).iter().all(|ok| *ok));
        });
        let recover = measure(Duration::from_secs(1), || {
            black_box(recover_signature(sharing, &partials[..t]).expect("enough"));
        });
        let sigma = recover_signature(sharing, &partials[..t]).expect("enough");
        let key = *sharing.public();
        let verify_sigma = measure(Duration::from_secs(1), || {
            assert!(verify_beacon(&key, &message, black_box(&sigma)));
        });
        // A node signs once, verifies one batch of the t partials that complete the quorum,
        // and verifies σ in the next block; the next proposer also recovers (1 node in n), so
        // that cost is spread over the nodes.
        let per_node = sign + batch + verify_sigma + recover / n as u32;
        let per_node_unbatched = sign + verify_one * (t as u32) + verify_sigma + recover / n as u32;
        let ms = |d: Duration| format!("{:.3}ms/{:.2}P", d.as_secs_f64() * 1e3, unit(d));
        println!(
            "{:>4} {:>3} | {:>13} {:>15} {:>18} {:>15} {:>13} | {:>24} | {:>12} {:>12}",
            n,
            t,
            ms(sign),
            ms(verify_one),
            ms(batch),
            ms(recover),
            ms(verify_sigma),
            format!("{:.2}P (unbatched {:.2}P)", unit(per_node), unit(per_node_unbatched)),
            format!("{:.1}ms/{:.0}P", dkg_time.as_secs_f64() * 1e3, unit(dkg_time)),
            format!("{:.1}ms/{:.0}P", reshare_time.as_secs_f64() * 1e3, unit(reshare_time)),
        );
        if n == 64 {
            println!();
            println!(
                "target at n = 64 with batching: ≤ 4 pairing-equivalents per height per node — measured {:.2} ({})",
                unit(per_node),
                if unit(per_node) <= 4.0 { "met" } else { "NOT met" }
            );
        }
    }
    println!("(DKG and reshare: all n dealers and n players of one ceremony in one process, acks included; P = pairings)");
}
