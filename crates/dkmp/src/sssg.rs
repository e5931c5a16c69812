//! The SSSG of an epoch (DESIGN §5.5): k validators sampled by stake without replacement with
//! the beacon's R of the plan height, all of them when fewer than k, with f_s = ⌊(k − 1)/3⌋ for
//! the group's actual size k.
//!
//! The threshold is the quorum of the ceremony engine the group's DKG and reshares run on
//! (commonware's `N3f1`: t = k − f_s), which is DESIGN's 2f_s + 1 at the sizes a chain should
//! choose, k = 3f_s + 1, and at most two more otherwise (a validator set smaller than k). Either
//! way t > f_s keeps the master secret from any f_s members (confidentiality) and t ≤ k − f_s
//! lets the honest members answer without the faulty ones (availability).

use tcp_crypto::sha256;
use tcp_types::Digest;

/// Names the draws that select a group, so they never coincide with another use of R.
pub const SSSG_SELECTION_NAMESPACE: &[u8] = b"tcp/dkmp/sssg";

/// A validator the group may be drawn from: its stake is its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub stake: u64,
}

/// The fault bound and threshold of a group of `size` members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupThreshold {
    pub size: u32,
    /// f_s = ⌊(k − 1)/3⌋: members that may be faulty (crashed or Byzantine).
    pub max_faulty: u32,
    /// t = k − f_s (2f_s + 1 when k = 3f_s + 1): partials needed to derive a key; fewer
    /// reveal nothing.
    pub threshold: u32,
}

impl GroupThreshold {
    /// The threshold of a group of `size` ≥ 1 members.
    pub fn of(size: u32) -> GroupThreshold {
        assert!(size >= 1, "a group has at least one member");
        let max_faulty = (size - 1) / 3;
        GroupThreshold { size, max_faulty, threshold: size - max_faulty }
    }
}

/// The draw in [0, total) for the `index`-th member: SHA-256 of the namespace, R and the draw
/// index; 128 bits reduced modulo a total below 2^64 · 2^7 (stakes are u64, at most 128
/// validators here) has a bias below 2^-57.
fn draw(randomness: &Digest, index: u32, total: u128) -> u128 {
    let hash = sha256(&[SSSG_SELECTION_NAMESPACE, &randomness.0, &index.to_be_bytes()]);
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.0[..16]);
    u128::from_be_bytes(first) % total
}

/// The group: indices into `candidates` (the epoch's validators in consensus order) of `k`
/// members drawn by stake without replacement using `randomness`, returned in ascending order
/// (the ceremony's player order). Every candidate weighs at least 1, so a validator with no
/// stake left can still be drawn but is as unlikely as the chain can make it. With `k` at least
/// the number of candidates, all of them.
pub fn select_sssg(candidates: &[Candidate], randomness: &Digest, k: u32) -> Vec<usize> {
    let k = (k as usize).min(candidates.len());
    let mut remaining: Vec<(usize, u128)> = candidates.iter().enumerate().map(|(i, c)| (i, u128::from(c.stake.max(1)))).collect();
    let mut total: u128 = remaining.iter().map(|(_, weight)| weight).sum();
    let mut chosen = Vec::with_capacity(k);
    for index in 0..k as u32 {
        let mut point = draw(randomness, index, total);
        let at = remaining
            .iter()
            .position(|(_, weight)| {
                if point < *weight {
                    true
                } else {
                    point -= weight;
                    false
                }
            })
            .expect("the point lies below the total weight");
        // `remove`, not `swap_remove`: the rest stay in consensus order, as docs/dkmp.md states.
        let (candidate, weight) = remaining.remove(at);
        total -= weight;
        chosen.push(candidate);
    }
    chosen.sort_unstable();
    debug_assert!(chosen.windows(2).all(|w| w[0] < w[1]), "members are distinct");
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_utils::{Faults as _, N3f1};
    use proptest::prelude::*;

    fn randomness(seed: u64) -> Digest {
        sha256(&[b"test randomness", &seed.to_be_bytes()])
    }

    #[test]
    fn the_threshold_keeps_confidentiality_and_availability_and_is_commonwares_quorum_at_3f_plus_1() {
        for size in 1..=256u32 {
            let t = GroupThreshold::of(size);
            assert!(t.threshold > t.max_faulty, "k = {size}: f_s members must learn nothing");
            assert!(t.threshold <= size - t.max_faulty, "k = {size}: the honest members must suffice");
            assert_eq!((t.max_faulty, t.threshold), (N3f1::max_faults(size), N3f1::quorum(size)), "k = {size}");
            if size % 3 == 1 {
                assert_eq!(t.threshold, 2 * t.max_faulty + 1, "k = {size} = 3f + 1: DESIGN's 2f_s + 1");
            }
            assert!(t.threshold <= 2 * t.max_faulty + 3, "k = {size}");
        }
        assert_eq!(GroupThreshold::of(7), GroupThreshold { size: 7, max_faulty: 2, threshold: 5 });
        assert_eq!(GroupThreshold::of(16), GroupThreshold { size: 16, max_faulty: 5, threshold: 11 });
    }

    proptest! {
        #[test]
        fn a_group_is_k_distinct_validators_in_order_and_the_same_on_every_node(
            stakes in proptest::collection::vec(0u64..1_000_000, 1..40),
            k in 1u32..50,
            seed in any::<u64>(),
        ) {
            let candidates: Vec<Candidate> = stakes.iter().map(|&stake| Candidate { stake }).collect();
            let group = select_sssg(&candidates, &randomness(seed), k);
            prop_assert_eq!(group.len(), (k as usize).min(candidates.len()));
            prop_assert!(group.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(group.iter().all(|&i| i < candidates.len()));
            prop_assert_eq!(&group, &select_sssg(&candidates, &randomness(seed), k));
        }
    }

    /// With k = 1 the draw is one stake-weighted sample: over many values of R each validator's
    /// frequency is its stake's share (within 5 standard deviations).
    #[test]
    fn one_member_is_drawn_in_proportion_to_stake() {
        let candidates: Vec<Candidate> = [1u64, 2, 3, 4, 10].iter().map(|&stake| Candidate { stake }).collect();
        let total: u64 = candidates.iter().map(|c| c.stake).sum();
        let draws = 40_000u64;
        let mut counts = [0u64; 5];
        for seed in 0..draws {
            counts[select_sssg(&candidates, &randomness(seed), 1)[0]] += 1;
        }
        for (i, c) in candidates.iter().enumerate() {
            let p = c.stake as f64 / total as f64;
            let expected = p * draws as f64;
            let sd = (draws as f64 * p * (1.0 - p)).sqrt();
            assert!((counts[i] as f64 - expected).abs() < 5.0 * sd, "validator {i}: {} draws, expected {expected:.0} ± {sd:.0}", counts[i]);
        }
    }

    /// Without replacement: a heavy validator is in almost every group, and the rest share the
    /// other seats by stake; the group changes with R.
    #[test]
    fn heavier_validators_sit_more_often_and_groups_change_with_r() {
        let stakes = [100u64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 50, 50];
        let candidates: Vec<Candidate> = stakes.iter().map(|&stake| Candidate { stake }).collect();
        let mut seats = [0u32; 12];
        let mut distinct = std::collections::BTreeSet::new();
        for seed in 0..2_000 {
            let group = select_sssg(&candidates, &randomness(seed), 4);
            for &i in &group {
                seats[i] += 1;
            }
            distinct.insert(group);
        }
        assert!(seats[0] > 1_950, "the heaviest sits nearly always: {seats:?}");
        assert!(seats[10] > 1_700 && seats[11] > 1_700, "{seats:?}");
        assert!(seats[1..10].iter().all(|&s| s < 400), "{seats:?}");
        assert!(distinct.len() > 5, "the group depends on R");
    }
}
