//! Q16.16 fixed-point arithmetic: bit-exact on every machine (contract results are attested
//! and compared, so floats are avoided where a result must reproduce).

/// 1.0 in Q16.16.
pub const ONE: i64 = 1 << 16;

#[inline]
pub fn mul(a: i64, b: i64) -> i64 {
    (a * b) >> 16
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
