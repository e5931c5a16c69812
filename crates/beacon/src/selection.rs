//! Proposer(h, r): a weighted sample over the active validators, drawn with
//! SHA-256(R_{h-2} ‖ r). Weights follow the whitepaper (§4.1.2): block efficiency first, then
//! coin age, with the coin-age term decaying within an epoch as N(t) = N₀·e^(−λt) and reset at
//! the next epoch.
//!
//! Every node must compute identical weights, so all arithmetic is integer: e^(−λ) is fixed at
//! genesis as a Q32 integer and raised to the power t by squaring.

use tcp_crypto::sha256;
use tcp_types::{Digest, Round};

const Q32: u128 = 1 << 32;

/// Genesis parameters of proposer selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightParams {
    /// e^(−λ) per height, as a Q32 fixed-point integer (≤ 2^32). Stored as an integer in genesis
    /// so no node ever evaluates `exp` (whose last bit differs between libms).
    pub decay_per_height_q32: u64,
    /// f(coin age) = `coin_age_weight` × N(t).
    pub coin_age_weight: u64,
    /// g(efficiency) = `efficiency_weight` × efficiency × mean N₀. The whitepaper puts
    /// efficiency first: genesis sets this above `coin_age_weight`.
    pub efficiency_weight: u64,
}

impl WeightParams {
    /// Parameters for decay constant λ (per height). Only genesis creation calls this.
    pub fn with_lambda(lambda: f64, coin_age_weight: u64, efficiency_weight: u64) -> Self {
        assert!(lambda >= 0.0 && lambda.is_finite(), "λ must be a finite non-negative number");
        let decay = ((-lambda).exp() * Q32 as f64).round() as u64;
        WeightParams { decay_per_height_q32: decay.min(Q32 as u64), coin_age_weight, efficiency_weight }
    }
}

impl Default for WeightParams {
    /// λ = 0.01 per height, efficiency weighted twice as much as coin age.
    fn default() -> Self {
        WeightParams::with_lambda(0.01, 1, 2)
    }
}

/// What the chain records per validator for the weights, reset at each epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// N₀: bonded stake plus accumulated rewards at the start of the epoch.
    pub coin_base: u64,
    /// Rounds this epoch in which the validator was the selected proposer, up to the round
    /// each height committed in.
    pub proposals_assigned: u64,
    /// Committed blocks this epoch that it built.
    pub proposals_made: u64,
    /// Heights this epoch whose recorded commit holds its precommit, of `heights` recorded.
    pub precommits_signed: u64,
    pub heights: u64,
}

impl ValidatorRecord {
    /// Block efficiency in Q32: proposals made of those assigned, times precommits signed of
    /// the heights recorded, each with a Laplace prior so a new validator starts at 1.
    pub fn efficiency_q32(&self) -> u128 {
        let made = u128::from(self.proposals_made.min(self.proposals_assigned)) + 1;
        let assigned = u128::from(self.proposals_assigned) + 1;
        let signed = u128::from(self.precommits_signed.min(self.heights)) + 1;
        let heights = u128::from(self.heights) + 1;
        made * Q32 / assigned * signed / heights
    }
}

/// `base^exp` in Q32 fixed point (`base` ≤ 2^32).
fn pow_q32(base: u64, mut exp: u64) -> u128 {
    let mut result = Q32;
    let mut b = u128::from(base).min(Q32);
    while exp > 0 {
        if exp & 1 == 1 {
            result = (result * b) >> 32;
        }
        b = (b * b) >> 32;
        exp >>= 1;
    }
    result
}

/// W_i = g(efficiency_i) + f(N_i(t)), with t the heights since the epoch started. Every weight
/// is at least 1, so every active validator can be chosen.
pub fn proposer_weights(params: &WeightParams, records: &[ValidatorRecord], heights_into_epoch: u64) -> Vec<u128> {
    if records.is_empty() {
        return Vec::new();
    }
    let total_base: u128 = records.iter().map(|r| u128::from(r.coin_base)).sum();
    let mean_base = total_base / records.len() as u128;
    let decay = pow_q32(params.decay_per_height_q32, heights_into_epoch);
    records
        .iter()
        .map(|r| {
            let efficiency = u128::from(params.efficiency_weight) * ((r.efficiency_q32() * mean_base) >> 32);
            let coin_age = u128::from(params.coin_age_weight) * ((u128::from(r.coin_base) * decay) >> 32);
            (efficiency + coin_age).max(1)
        })
        .collect()
}

/// The uniform draw in [0, total) that SHA-256(R ‖ round) stands for. 128 bits of hash reduced
/// modulo a total below 2^100 has a bias below 2^-28 per draw; weights are far smaller in
/// practice (stake units), making it negligible.
fn draw(randomness: &Digest, round: Round, total: u128) -> u128 {
    let h = sha256(&[&randomness.0, &round.0.to_be_bytes()]);
    let mut first = [0u8; 16];
    first.copy_from_slice(&h.0[..16]);
    u128::from_be_bytes(first) % total
}

/// Index of the proposer: a sample proportional to `weights`.
pub fn select_proposer(weights: &[u128], randomness: &Digest, round: Round) -> usize {
    assert!(!weights.is_empty(), "no validators to select from");
    let total: u128 = weights.iter().sum();
    let mut point = draw(randomness, round, total);
    for (i, w) in weights.iter().enumerate() {
        if point < *w {
            return i;
        }
        point -= w;
    }
    unreachable!("point < total weight")
}

/// Each validator's probability of being drawn (for fairness checks).
pub fn selection_probabilities(weights: &[u128]) -> Vec<f64> {
    let total: u128 = weights.iter().sum();
    weights.iter().map(|w| *w as f64 / total as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_matches_float_decay() {
        let p = WeightParams::with_lambda(0.05, 1, 2);
        for t in [0u64, 1, 7, 100] {
            let fixed = pow_q32(p.decay_per_height_q32, t) as f64 / Q32 as f64;
            let float = (-0.05 * t as f64).exp();
            assert!((fixed - float).abs() < 1e-6, "t={t}: {fixed} vs {float}");
        }
    }

    #[test]
    fn coin_age_term_decays_and_efficiency_counts_more() {
        let params = WeightParams::with_lambda(0.1, 1, 2);
        let rich = ValidatorRecord { coin_base: 4000, proposals_assigned: 0, proposals_made: 0, ..Default::default() };
        let poor = ValidatorRecord { coin_base: 1000, proposals_assigned: 0, proposals_made: 0, ..Default::default() };
        let start = proposer_weights(&params, &[rich, poor], 0);
        let late = proposer_weights(&params, &[rich, poor], 50);
        assert!(start[0] > start[1]);
        // Late in the epoch coin age has decayed: the weights move towards the (equal) efficiency term.
        let ratio = |w: &Vec<u128>| w[0] as f64 / w[1] as f64;
        assert!(ratio(&late) < ratio(&start));
        assert!((ratio(&late) - 1.0).abs() < 0.05);
        // A validator that missed its proposals loses weight.
        let lazy = ValidatorRecord { coin_base: 1000, proposals_assigned: 9, proposals_made: 0, ..Default::default() };
        let w = proposer_weights(&params, &[poor, lazy], 0);
        assert!(w[0] > w[1]);
        // So does one that signed half of the precommits it could have.
        let absent = ValidatorRecord { coin_base: 1000, precommits_signed: 5, heights: 10, ..Default::default() };
        let present = ValidatorRecord { coin_base: 1000, precommits_signed: 10, heights: 10, ..Default::default() };
        let w = proposer_weights(&params, &[present, absent], 0);
        assert!(w[0] > w[1]);
        assert_eq!(present.efficiency_q32(), 1 << 32);
        assert_eq!(absent.efficiency_q32(), (1u128 << 32) * 6 / 11);
    }

    #[test]
    fn selection_follows_weights() {
        let weights = [1u128, 3, 6];
        let mut counts = [0u32; 3];
        for h in 0..30_000u64 {
            let r = sha256(&[&h.to_be_bytes()]);
            counts[select_proposer(&weights, &r, Round(0))] += 1;
        }
        assert!((counts[0] as f64 / 3000.0 - 1.0).abs() < 0.1, "{counts:?}");
        assert!((counts[2] as f64 / 18000.0 - 1.0).abs() < 0.05, "{counts:?}");
        // The round changes the draw.
        let r = sha256(&[b"x"]);
        let picks: std::collections::BTreeSet<usize> = (0..20).map(|round| select_proposer(&weights, &r, Round(round))).collect();
        assert!(picks.len() > 1);
    }
}
