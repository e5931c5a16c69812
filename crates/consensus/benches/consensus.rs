//! `cargo bench -p tcp-consensus`
//!
//! Reports, measured in the same run on the same machine:
//! * ed25519 vote verifications per second (the baseline: the unavoidable cost of a vote);
//! * votes per second through the vote keeper and state machine (`Consensus::apply`: tally,
//!   rule evaluation, state machine, certificate at the decision) for n = 4, 32 and 100, and
//!   that work per vote in units of one verification — target ≤ 0.1;
//! * the whole path of a received vote (`admit`, which verifies, plus `apply`) in those units;
//! * duplicate votes (gossip re-sends) per second, which skip verification.
//!
//! Whole networks (the node as host) are measured by `cargo bench -p tcp-sim`.

use commonware_cryptography::Signer as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcp_consensus::*;
use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

const HEIGHTS: u64 = 40;
const REPEATS: usize = 15;

struct Workload {
    set: Arc<ValidatorSet>,
    domains: ConsensusDomains,
    /// Per height: the proposal, then every other validator's prevote and precommit.
    heights: Vec<(SignedProposal, Vec<SignedVote>)>,
}

fn workload(n: usize) -> Workload {
    let keys: Vec<Ed25519PrivateKey> = (0..n).map(|i| insecure_ed25519_from_seed(i as u64)).collect();
    let set =
        Arc::new(ValidatorSet::new(keys.iter().map(|k| Validator { public_key: k.public_key(), voting_power: 1 }).collect()).unwrap());
    let domains = ConsensusDomains::new(&ChainId::new("bench").unwrap());
    let heights = (1..=HEIGHTS)
        .map(|h| {
            let value = Digest([h as u8; 32]);
            let proposer = RoundRobin.proposer(&set, Height(h), Round(0)).as_usize();
            let p = Proposal { height: Height(h), round: Round(0), value, pol_round: None, proposer: ValidatorIndex(proposer as u32) };
            let proposal = domains.sign_proposal(&keys[proposer], p);
            let mut votes = Vec::new();
            // Every prevote, and precommits up to the quorum: each of them must be verified
            // (precommits after the decision are dropped unverified and would flatter the core).
            let quorum = 2 * n / 3 + 1;
            for (t, count) in [(VoteType::Prevote, n), (VoteType::Precommit, quorum)] {
                for (i, key) in keys.iter().enumerate().take(count) {
                    let v = Vote {
                        vote_type: t,
                        height: Height(h),
                        round: Round(0),
                        value: Some(value),
                        validator: ValidatorIndex(i as u32),
                        extension: bytes::Bytes::new(),
                    };
                    votes.push(domains.sign_vote(key, v));
                }
            }
            (proposal, votes)
        })
        .collect();
    Workload { set, domains, heights }
}

fn vote_count(w: &Workload) -> usize {
    w.heights.iter().map(|(_, v)| v.len()).sum()
}

struct Timings {
    /// Signature checks alone.
    verify: Duration,
    /// `admit`: bounds, membership, duplicate check, signature.
    admit: Duration,
    /// `apply`: vote keeper, rule evaluation, state machine, certificate at the decision.
    apply: Duration,
    duplicate: Duration,
}

/// Feed every height through a core (a follower, so it signs nothing of its own and every vote
/// it counts is one it received): proposal then votes, to the decision. Right before, the same
/// votes' signatures are verified alone, so baseline and core see the same machine conditions.
fn time_core(w: &Workload) -> Timings {
    let config = ConsensusConfig::new(ChainId::new("bench").unwrap());
    let mut core = Consensus::new(config, None);
    let mut t = Timings { verify: Duration::ZERO, admit: Duration::ZERO, apply: Duration::ZERO, duplicate: Duration::ZERO };
    for (h, (proposal, votes)) in w.heights.iter().enumerate() {
        let start = Instant::now();
        for v in votes {
            assert!(black_box(w.domains.verify_vote(&w.set, v)));
        }
        t.verify += start.elapsed();

        let height = Height(h as u64 + 1);
        core.start_height(height, HeightParams::new(w.set.clone()));
        core.handle(Input::Proposal { proposal: proposal.clone(), valid: true }).unwrap();
        let start = Instant::now();
        let admitted: Vec<Verified> = votes
            .iter()
            .map(|v| match core.admit(Input::Vote(v.clone())) {
                Ok(Admission::Apply(verified)) => verified,
                other => panic!("vote not admitted: {other:?}"),
            })
            .collect();
        t.admit += start.elapsed();
        let start = Instant::now();
        let mut decided = false;
        for verified in admitted {
            let effects = core.apply(verified).unwrap();
            decided |= effects.iter().any(|e| matches!(e, Effect::Decided { .. }));
        }
        t.apply += start.elapsed();
        assert!(decided, "height {height} decides");

        // Re-sent copies (gossip) of the prevotes of a height still in progress.
        let mut scratch = Consensus::new(ConsensusConfig::new(ChainId::new("bench").unwrap()), None);
        scratch.start_height(height, HeightParams::new(w.set.clone()));
        let prevotes = &votes[..w.set.len()];
        for v in prevotes {
            let _ = scratch.handle(Input::Vote(v.clone()));
        }
        let start = Instant::now();
        for v in prevotes {
            assert_eq!(scratch.handle(Input::Vote(v.clone())), Err(Rejection::Duplicate));
        }
        t.duplicate += start.elapsed();
    }
    t
}


fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us once as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    println!("tcp-consensus benchmark ({} mode)", if quick { "quick smoke" } else { "full" });
    for n in [4usize, 32, 100] {
        let w = workload(n);
        let votes = vote_count(&w) as f64;
        let mut best = Timings { verify: Duration::MAX, admit: Duration::MAX, apply: Duration::MAX, duplicate: Duration::MAX };
        for _ in 0..if quick { 1 } else { REPEATS } {
            let t = time_core(&w);
            best.verify = best.verify.min(t.verify);
            best.admit = best.admit.min(t.admit);
            best.apply = best.apply.min(t.apply);
            best.duplicate = best.duplicate.min(t.duplicate);
        }
        let per_vote = |d: Duration| d.as_secs_f64() / votes;
        let (verify, admit, apply) = (per_vote(best.verify), per_vote(best.admit), per_vote(best.apply));
        let duplicate = best.duplicate.as_secs_f64() / (n as f64 * HEIGHTS as f64);
        println!(
            "n = {n:>3}: ed25519 verifications/s {:>6.0} | votes/s through keeper + state machine {:>8.0}: {:.2} µs per vote = {:.3} verifications (target <= 0.1) | admit+apply {:.2} verifications | duplicates {:.4} verifications",
            1.0 / verify,
            1.0 / apply,
            apply * 1e6,
            apply / verify,
            (admit + apply) / verify,
            duplicate / verify,
        );
    }
}
