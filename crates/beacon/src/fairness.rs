//! Pearson's chi-square goodness-of-fit test: do proposer counts match the selection weights?

/// The statistic Σ (observed − expected)² / expected and its degrees of freedom (categories − 1).
pub fn chi_square(observed: &[u64], expected: &[f64]) -> (f64, usize) {
    assert_eq!(observed.len(), expected.len(), "one expectation per category");
    let statistic = observed.iter().zip(expected).filter(|(_, e)| **e > 0.0).map(|(o, e)| (*o as f64 - e).powi(2) / e).sum();
    (statistic, observed.len().saturating_sub(1))
}

/// P(χ²_dof ≥ statistic): the regularized upper incomplete gamma function Q(dof/2, statistic/2).
pub fn chi_square_p_value(statistic: f64, dof: usize) -> f64 {
    if dof == 0 {
        return 1.0;
    }
    upper_regularized_gamma(dof as f64 / 2.0, statistic / 2.0)
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Q(a, x) = Γ(a, x) / Γ(a): a power series for P below a + 1, a continued fraction above.
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = x^a e^-x / Γ(a) · Σ x^n / (a (a+1) … (a+n)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut denominator = a;
        for _ in 0..10_000 {
            denominator += 1.0;
            term *= x / denominator;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        // Q(a, x) = x^a e^-x / Γ(a) · 1 / (x + 1 − a − 1·(1−a) / (x + 3 − a − …)), by the
        // modified Lentz method.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut f = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            f *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (f * log_prefix.exp()).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_tables() {
        // Critical values of the chi-square distribution (standard tables).
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        assert!(close(chi_square_p_value(3.841_459, 1), 0.05));
        assert!(close(chi_square_p_value(16.918_98, 9), 0.05));
        assert!(close(chi_square_p_value(21.665_99, 9), 0.01));
        assert!(close(chi_square_p_value(9.0, 9), 0.437_274));
        assert!(close(chi_square_p_value(2.0, 4), 0.735_759));
        assert!(close(chi_square_p_value(0.0, 3), 1.0));
    }

    #[test]
    fn statistic_detects_skew() {
        let expected = [250.0; 4];
        let fair = chi_square(&[260, 240, 255, 245], &expected);
        let skewed = chi_square(&[400, 200, 200, 200], &expected);
        assert!(chi_square_p_value(fair.0, fair.1) > 0.5);
        assert!(chi_square_p_value(skewed.0, skewed.1) < 1e-10);
    }
}
