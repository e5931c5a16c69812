//! `cargo bench -p tcp-beacon`: the beacon's per-height work per node and the cost of DKG and
//! reshare, at n = 4, 16, 64, each also in units of one pairing measured in the same run (the
//! machine is shared and noisy: ratios travel, absolute times do not).
//!
//! Per height a validator that does not propose the next height: checks σ_{h-1} and φ_{h-1} in
//! the proposal (one combined pairing check), which gives the message σ_h signs; hashes σ_h's
//! and φ_h's messages and signs its two partials (kept without a check); decodes the t − 1
//! other precommits' partials from their wire bytes and checks them in one combined batch (one
//! multi-pairing, one final exponentiation). The next proposer (1 in n) also interpolates σ_h
//! and φ_h. The headline figure times exactly that, with the node's own objects
//! ([`BeaconExtension`], [`SharingVerifier`]), over consecutive heights; the components are
//! also timed alone and summed, as a cross-check. The per-epoch setup (partial keys from the
//! commitment, randomized keys, Miller-loop lines) is measured separately and spread over an
//! epoch of the default length. "commonware" columns are the library's own batch verifier and
//! σ check (beacon partials alone), for comparison. The target (issue 17): ≤ 5
//! pairing-equivalents per height per node at n = 64 for the beacon and finality together.

use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcp_beacon::dkg::BeaconShare;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::finality::finality_point;
use tcp_beacon::signature::{recover_signature, sign_partial, verify_partial, verify_partials};
use tcp_beacon::{BeaconExtension, PartialPoint};
use tcp_beacon::{
    BeaconParams, Ceremony, MessagePoint, Previous, SharePair, SharingVerifier, beacon_message, finality_message, verify_beacon,
};
use tcp_consensus::{PrecommitExtension as _, ValueId};
use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

/// Consecutive heights the node's path is timed over.
const NODE_PATH_HEIGHTS: usize = 6;

/// One height as the network produced it: the message σ_h signs, the decided value, the other
/// validators' precommit extensions (t − 1 of them, and all of them), and σ_h, φ_h.
struct HeightFixture {
    height: Height,
    message: Vec<u8>,
    value: ValueId,
    others: Vec<(ValidatorIndex, Vec<u8>)>,
    all: Vec<(ValidatorIndex, Vec<u8>)>,
    sigma: tcp_beacon::BeaconSignature,
    phi: tcp_beacon::BeaconSignature,
}

/// `heights` consecutive heights from the seed, every validator signing (validator i holds
/// `shares[i]`); validator 0 is the node being measured.
fn chain_of_heights(chain: &ChainId, verifier: &SharingVerifier, shares: &[BeaconShare], t: usize, heights: usize) -> Vec<HeightFixture> {
    let mut previous = Previous::Seed(Digest([9; 32]));
    let mut out = Vec::new();
    for h in 1..=heights as u64 {
        let height = Height(h);
        let message = beacon_message(chain, height, &previous);
        let value: ValueId = Digest([h as u8; 32]);
        let sigma_point = MessagePoint::new(&message);
        let phi_point = finality_point(&finality_message(chain, height, Round(0), &value));
        let mut all = Vec::new();
        let (mut betas, mut phis) = (Vec::new(), Vec::new());
        for (i, share) in shares.iter().enumerate() {
            let (beta, phi) = (sigma_point.sign(share), phi_point.sign(share));
            let mut bytes = PartialPoint::of(&beta).to_bytes().to_vec();
            bytes.extend_from_slice(&PartialPoint::of(&phi).to_bytes());
            all.push((ValidatorIndex(i as u32), bytes));
            betas.push(beta);
            phis.push(phi);
        }
        let sigma = recover_signature(verifier.sharing(), &betas[..t]).expect("enough");
        let phi = recover_signature(verifier.sharing(), &phis[..t]).expect("enough");
        let others = all[1..t].to_vec();
        previous = Previous::Signature(sigma);
        out.push(HeightFixture { height, message, value, others, all, sigma, phi });
    }
    out
}

/// Median time of `f` over runs lasting at least `budget` in all (and at least 3 runs).
fn measure_raw(budget: Duration, mut f: impl FnMut()) -> Duration {
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

fn pairing() {
    // e(g1, g2) by blst directly: one Miller loop plus one final exponentiation.
    let (g1, g2) = unsafe { (*blst::blst_p1_affine_generator(), *blst::blst_p2_affine_generator()) };
    black_box(blst::blst_fp12::miller_loop(black_box(&g2), black_box(&g1)).final_exp());
}

/// One pairing's time at the start of the run: the unit every figure is printed in.
static REFERENCE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

fn one_pairing() -> Duration {
    *REFERENCE.get_or_init(|| measure_raw(Duration::from_secs(2), pairing))
}

/// `f` in units of a pairing timed right after each run of it (the machine is shared: its speed
/// drifts, and a ratio of neighbouring samples does not), as the median ratio times the
/// reference pairing.
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    let reference = one_pairing();
    let mut ratios = Vec::new();
    let started = Instant::now();
    while ratios.len() < 3 || (started.elapsed() < budget && ratios.len() < 10_000) {
        let t = Instant::now();
        f();
        let op = t.elapsed();
        let t = Instant::now();
        pairing();
        pairing();
        let unit = t.elapsed() / 2;
        ratios.push(op.as_secs_f64() / unit.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    reference.mul_f64(ratios[ratios.len() / 2])
}

fn main() {
    let chain = ChainId::new("bench").expect("valid");
    let pairing = one_pairing();
    let unit = |d: Duration| d.as_secs_f64() / pairing.as_secs_f64();
    println!(
        "one pairing (Miller loop + final exponentiation): {:.3} ms — the unit below (each figure is the median ratio to a pairing timed beside it)",
        pairing.as_secs_f64() * 1e3
    );
    println!();
    let epoch_length = BeaconParams::default().epoch_length;
    println!(
        "{:>4} {:>3} | {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} | {:>10} {:>9} | {:>34} | {:>10} {:>10}",
        "n",
        "t",
        "hash",
        "sign",
        "verify 1",
        "pairs t",
        "(cw σ)",
        "recover",
        "σ+φ",
        "(cw σ)",
        "epoch set",
        "per hgt",
        "per height/node",
        "DKG",
        "reshare"
    );
    let mut target = None;
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

        // The epoch's setup: a new verifier derives everything from the sharing's commitment.
        let epoch_setup = measure(Duration::from_secs(2), || {
            SharingVerifier::new(output.public().clone(), None).prepare(&mut rng);
        });
        let verifier = Arc::new(SharingVerifier::new(output.public().clone(), None));
        verifier.prepare(&mut rng);
        let sharing = verifier.sharing();
        let t = sharing.required() as usize;

        let message = beacon_message(&chain, Height(42), &Previous::Seed(Digest([9; 32])));
        let hash = measure(Duration::from_secs(1), || {
            black_box(MessagePoint::new(black_box(&message)));
        });
        let point = MessagePoint::new(&message);
        let sign = measure(Duration::from_secs(1), || {
            black_box(point.sign(&shares[0]));
        });
        let partials: Vec<_> = shares.iter().map(|s| sign_partial(s, &message)).collect();
        let verify_one = measure(Duration::from_secs(1), || {
            assert!(verify_partial(sharing, &message, black_box(&partials[1])));
        });
        let finality_bytes = finality_message(&chain, Height(42), Round(0), &Digest([7; 32]));
        let finality = vec![Arc::new(finality_point(&finality_bytes))];
        let pairs: Vec<SharePair> = shares
            .iter()
            .map(|s| SharePair {
                index: s.index,
                beacon: PartialPoint::of(&point.sign(s)),
                finality: PartialPoint::of(&finality[0].sign(s)),
                message: 0,
            })
            .collect();
        let batch = measure(Duration::from_secs(2), || {
            assert!(verifier.verify_share_pairs(&mut rng, &point, &finality, black_box(&pairs[..t])).iter().all(|ok| *ok));
        });
        let batch_commonware = measure(Duration::from_secs(2), || {
            assert!(verify_partials(&mut rng, sharing, &message, black_box(&partials[..t])).iter().all(|ok| *ok));
        });
        let recover = measure(Duration::from_secs(1), || {
            black_box(recover_signature(sharing, &partials[..t]).expect("enough"));
        });
        let sigma = recover_signature(sharing, &partials[..t]).expect("enough");
        let finality_partials: Vec<_> = shares.iter().map(|s| finality[0].sign(s)).collect();
        let phi = recover_signature(sharing, &finality_partials[..t]).expect("enough");
        let key = *sharing.public();
        let verify_sigma = measure(Duration::from_secs(1), || {
            assert!(verifier.group().verify_pair(&mut rng, (&point, black_box(&sigma.0)), (&finality[0], black_box(&phi.0))));
        });
        let verify_sigma_commonware = measure(Duration::from_secs(1), || {
            assert!(verify_beacon(&key, &message, black_box(&sigma)));
        });
        // The node's own path over consecutive heights, as a validator that does not propose
        // the next height runs it: the height's extension made without σ_{h-1}; the proposal's
        // σ_{h-1} and φ_{h-1} checked in one pairing check (`Ledger::validate_block`), which
        // supplies the message; its own precommit's two partials (`extend`: one hash, two
        // signatures, kept without a check); the t − 1 other precommits that complete the quorum
        // decoded and checked in one batch (`verify_batch`, from their wire bytes). The next
        // proposer (1 node in n) also interpolates σ_h and φ_h; the epoch's setup is spread
        // over its heights. The other precommits are made outside the timing (others' work).
        let me = &shares[0];
        let participants: Vec<Option<u32>> = shares.iter().map(|s| Some(usize::from(s.index) as u32)).collect();
        // Once per sharing a node checks its own first partials (then trusts its share).
        let first = BeaconExtension::active(
            chain.clone(),
            Height(1),
            verifier.clone(),
            participants.clone(),
            Some(me.clone()),
            Some(message.clone()),
        );
        first.extend(Height(1), Round(0), &Digest([0; 32]));
        let fixtures = chain_of_heights(&chain, &verifier, &shares, t, NODE_PATH_HEIGHTS);
        let node_path = measure(Duration::from_secs(3), || {
            let mut previous: Option<&HeightFixture> = None;
            for fixture in &fixtures {
                let extension =
                    BeaconExtension::active(chain.clone(), fixture.height, verifier.clone(), participants.clone(), Some(me.clone()), None);
                if let Some(previous) = previous {
                    let sigma_point = verifier.message_point(&previous.message);
                    let phi_point = verifier.finality_point(&finality_message(&chain, previous.height, Round(0), &previous.value));
                    assert!(verifier.group().verify_pair(&mut rng, (&sigma_point, &previous.sigma.0), (&phi_point, &previous.phi.0)));
                }
                extension.set_message(fixture.message.clone());
                black_box(extension.extend(fixture.height, Round(0), &fixture.value));
                let items: Vec<(ValidatorIndex, Round, ValueId, &[u8])> =
                    fixture.others.iter().map(|(v, e)| (*v, Round(0), fixture.value, &e[..])).collect();
                assert!(extension.verify_batch(&mut rng, &items).iter().all(|ok| *ok));
                assert!(extension.verified_count() >= t);
                previous = Some(fixture);
            }
        }) / NODE_PATH_HEIGHTS as u32;
        // The next proposer's interpolations, from an extension holding the quorum's partials.
        let last = fixtures.last().expect("heights");
        let holder =
            BeaconExtension::active(chain.clone(), last.height, verifier.clone(), participants.clone(), None, Some(last.message.clone()));
        let items: Vec<(ValidatorIndex, Round, ValueId, &[u8])> =
            last.all.iter().map(|(v, e)| (*v, Round(0), last.value, &e[..])).collect();
        holder.verify_batch(&mut rng, &items);
        let recover_both = measure(Duration::from_secs(1), || {
            black_box(holder.recover().expect("enough"));
            black_box(holder.recover_finality(Round(0), &last.value).expect("enough"));
        });
        let setup_per_height = epoch_setup / epoch_length as u32;
        let per_node = node_path + recover_both / n as u32;
        let per_node_with_setup = per_node + setup_per_height;
        let modelled = hash * 2 + sign * 2 + batch + verify_sigma + recover * 2 / n as u32;
        let per_node_unbatched = hash * 2 + sign * 2 + verify_one * (2 * t as u32) + verify_sigma + recover * 2 / n as u32;
        let p = |d: Duration| format!("{:.2}P", unit(d));
        println!(
            "{:>4} {:>3} | {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} | {:>10} {:>9} | {:>34} | {:>10} {:>10}",
            n,
            t,
            p(hash),
            p(sign),
            p(verify_one),
            p(batch),
            p(batch_commonware),
            p(recover),
            p(verify_sigma),
            p(verify_sigma_commonware),
            format!("{:.0}P", unit(epoch_setup)),
            p(setup_per_height),
            format!("{:.2}P (sum {:.2}P, unbatched {:.0}P)", unit(per_node), unit(modelled), unit(per_node_unbatched)),
            format!("{:.0}P", unit(dkg_time)),
            format!("{:.0}P", unit(reshare_time)),
        );
        if n == 64 {
            target = Some((unit(per_node), unit(per_node_with_setup)));
        }
    }
    println!();
    println!(
        "columns: P = pairings measured in this run; pairs t = t precommits' σ and φ partials in one combined batch; σ+φ = both in one check;"
    );
    println!("(cw σ) = commonware's own batch verifier / σ check, beacon partials alone, for comparison;");
    println!("epoch set = the verifier's setup once per new sharing (after a DKG or reshare, like the reshare columns);");
    println!("per hgt = that spread over an epoch of {epoch_length} heights;");
    println!(
        "per height/node = the node's own path timed over {NODE_PATH_HEIGHTS} consecutive heights (BeaconExtension + the block's σ+φ check, partials decoded from"
    );
    println!("  their wire bytes, t − 1 others' precommits, its own made and kept) + the next proposer's two interpolations / n;");
    println!("  sum = the components added up: 2·hash + 2·sign + pairs t + σ+φ + 2·recover/n");
    if let Some((measured, with_setup)) = target {
        println!(
            "target at n = 64, beacon and finality with batching: ≤ 5 pairing-equivalents per height per node — measured {:.2} ({}); {:.2} with the epoch setup spread over the epoch",
            measured,
            if measured <= 5.0 { "met" } else { "NOT met" },
            with_setup
        );
    }
    println!("(DKG and reshare: all n dealers and n players of one ceremony in one process, acks included; P = pairings)");
    // A light client's whole check of one header's φ: the message hashed to G1, the group
    // key's Miller-loop lines, one pairing check (what `tcp_light::LightClient` does per header,
    // but for the lines, which it builds once).
    let keys: Vec<Ed25519PrivateKey> = (0..4).map(insecure_ed25519_from_seed).collect();
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ceremony = Ceremony::new(0, None, &public, &public).expect("ceremony");
    let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(9)).expect("honest ceremony");
    let id = Digest([5; 32]);
    let point = finality_point(&finality_message(&chain, Height(7), Round(1), &id));
    let partials: Vec<_> = shares.iter().map(|(_, s)| point.sign(s)).collect();
    let phi = tcp_beacon::Finality {
        round: Round(1),
        signature: tcp_beacon::FinalitySignature(recover_signature(output.public(), &partials).expect("enough").0),
    };
    let key = *output.public().public();
    let light = measure(Duration::from_secs(2), || {
        assert!(tcp_beacon::verify_finality(&key, &chain, Height(7), black_box(&id), black_box(&phi)));
    });
    println!(
        "light client, one header's φ (hash to G1 + key lines + 1 pairing check): {:.3} ms = {:.2}P",
        light.as_secs_f64() * 1e3,
        unit(light)
    );
}
