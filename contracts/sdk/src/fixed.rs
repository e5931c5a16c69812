//! Q16.16 fixed-point arithmetic: bit-exact on every machine (contract results are attested
//! and compared, so floats are avoided where a result must reproduce).

/// 1.0 in Q16.16.
pub const ONE: i64 = 1 << 16;

#[inline]
pub fn mul(a: i64, b: i64) -> i64 {
    (a * b) >> 16
}

/// `Σ mul(weights[i], x[i])` over features as they arrive: `x[i]` is the little-endian Q16.16
/// `i32` at `features[4i..4i + 4]`, read in place (pairs stop at the shorter side).
///
/// Summed in blocks of four: the VM checks fuel once per loop iteration, and the cold path of
/// that check is a call that clobbers every vector register, so a vector accumulator is spilled
/// and reloaded on each iteration. A four-wide block gives LLVM a loop it vectorises over
/// several blocks at a time, which amortises the spill (20 000 × 16 scores: 0.27 → 0.18 ms in
/// the VM); natively the blocks cost nothing (0.19 → 0.18 ms).
#[inline]
pub fn dot(weights: &[i32], features: &[u8]) -> i64 {
    let weight_blocks = weights.chunks_exact(4);
    let feature_blocks = features.chunks_exact(16);
    let (weights_left, features_left) = (weight_blocks.remainder(), feature_blocks.remainder());
    let mut sum = 0;
    for (w, x) in weight_blocks.zip(feature_blocks) {
        let mut block = 0;
        for i in 0..4 {
            block += mul(i64::from(w[i]), i64::from(le_i32(&x[4 * i..4 * i + 4])));
        }
        sum += block;
    }
    for (w, x) in weights_left.iter().zip(features_left.chunks_exact(4)) {
        sum += mul(i64::from(*w), i64::from(le_i32(x)));
    }
    sum
}

#[inline]
fn le_i32(x: &[u8]) -> i32 {
    i32::from_le_bytes([x[0], x[1], x[2], x[3]])
}

/// The logistic function σ(x) = 1 / (1 + e^(−x)) in Q16.16, by a piecewise-linear
/// approximation (PLAN, Amin & Curtis 1997; error below 0.019), saturating at 0 and 1.
#[inline]
pub fn sigmoid(x: i64) -> i64 {
    let ax = x.abs();
    let y = if ax >= 5 * ONE {
        ONE
    } else if ax >= 154_468 {
        // 2.375 ≤ |x| < 5: 0.03125·|x| + 0.84375
        (ax >> 5) + 55_296
    } else if ax >= ONE {
        // 1 ≤ |x| < 2.375: 0.125·|x| + 0.625
        (ax >> 3) + 40_960
    } else {
        // |x| < 1: 0.25·|x| + 0.5
        (ax >> 2) + 32_768
    };
    if x < 0 { ONE - y } else { y }
}
