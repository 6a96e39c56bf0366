//! Paired comparisons of two classifiers on the same rows: McNemar's test on the
//! discordant predictions, a paired bootstrap of a metric difference, and percentiles.

use rand::{Rng, SeedableRng};

/// Below this many discordant rows McNemar's test uses the exact binomial distribution;
/// from it on, the chi-square approximation with continuity correction (the usual rule of
/// thumb: the approximation is good once `b + c >= 25`).
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

/// The result of McNemar's test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Rows the candidate gets right and the champion wrong.
    pub b: u64,
    /// Rows the candidate gets wrong and the champion right.
    pub c: u64,
    /// The chi-square statistic (with continuity correction); `None` for the exact test.
    pub statistic: Option<f64>,
    /// Two-sided p-value of "both models have the same error rate".
    pub p_value: f64,
}

/// McNemar's test on the discordant counts `b` and `c`: exact binomial (two-sided, doubled
/// smaller tail) when `b + c` is below [`MCNEMAR_EXACT_BELOW`], otherwise chi-square with
/// one degree of freedom on `(|b - c| - 1)^2 / (b + c)`.
pub fn mcnemar(b: u64, c: u64) -> McNemar {
    let n = b + c;
    if n == 0 {
        return McNemar {
            b,
            c,
            statistic: None,
            p_value: 1.0,
        };
    }
    if n < MCNEMAR_EXACT_BELOW {
        // P(X <= min(b, c)) for X ~ Binomial(n, 1/2), by the pmf recurrence.
        let mut pmf = 0.5f64.powi(n as i32);
        let mut tail = 0.0;
        for k in 0..=b.min(c) {
            tail += pmf;
            pmf *= (n - k) as f64 / (k + 1) as f64;
        }
        return McNemar {
            b,
            c,
            statistic: None,
            p_value: (2.0 * tail).min(1.0),
        };
    }
    let diff = (b.abs_diff(c) as f64 - 1.0).max(0.0);
    let statistic = diff * diff / n as f64;
    McNemar {
        b,
        c,
        statistic: Some(statistic),
        p_value: chi2_1_survival(statistic),
    }
}

/// P(X > x) for a chi-square variable with one degree of freedom.
pub fn chi2_1_survival(x: f64) -> f64 {
    erfc((x / 2.0).sqrt())
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7 everywhere: plenty for a p-value compared with an alpha).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// The result of a paired bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bootstrap {
    /// Resamples drawn.
    pub resamples: usize,
    /// Mean gain over the resamples.
    pub mean_gain: f64,
    /// One-sided p-value of "no gain": `(1 + #{gain <= 0}) / (1 + resamples)`.
    pub p_value: f64,
    /// 2.5th percentile of the gain.
    pub low: f64,
    /// 97.5th percentile of the gain.
    pub high: f64,
}

/// Paired bootstrap over `n` rows: draws `resamples` samples of row indices with
/// replacement (seeded, so the result is reproducible) and evaluates `gain` on each — the
/// candidate's metric minus the champion's on the same resampled rows.
pub fn paired_bootstrap(
    n: usize,
    resamples: usize,
    seed: u64,
    gain: impl Fn(&[usize]) -> f64,
) -> Bootstrap {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut gains = Vec::with_capacity(resamples);
    let mut rows = vec![0usize; n];
    for _ in 0..resamples {
        for r in rows.iter_mut() {
            *r = rng.gen_range(0..n.max(1));
        }
        let g = gain(&rows);
        if g.is_finite() {
            gains.push(g);
        }
    }
    let not_better = gains.iter().filter(|&&g| g <= 0.0).count();
    let mean_gain = gains.iter().sum::<f64>() / gains.len().max(1) as f64;
    Bootstrap {
        resamples: gains.len(),
        mean_gain,
        p_value: (1 + not_better) as f64 / (1 + gains.len()) as f64,
        low: percentile(&mut gains, 0.025).unwrap_or(f64::NAN),
        high: percentile(&mut gains, 0.975).unwrap_or(f64::NAN),
    }
}

/// The `q` quantile (0..=1) by nearest rank; sorts `values`. `None` when empty.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The textbook table (Wikipedia, "McNemar's test"): b = 6, c = 16 discordant pairs.
    // Exact: 2 * P(X <= 6), X ~ Bin(22, 1/2) = 0.052479; chi-square with continuity
    // correction: 81 / 22 = 3.681818, p = 0.055009 (checked with Python's math.comb / erfc).
    #[test]
    fn mcnemar_exact_on_a_known_table() {
        let t = mcnemar(6, 16);
        assert_eq!(t.statistic, None);
        assert!((t.p_value - 0.052_479).abs() < 1e-5, "{t:?}");
        assert_eq!(mcnemar(16, 6).p_value, t.p_value);
        assert!((mcnemar(1, 11).p_value - 0.006_348).abs() < 1e-5);
        assert_eq!(mcnemar(0, 0).p_value, 1.0);
        assert_eq!(mcnemar(3, 3).p_value, 1.0);
    }

    #[test]
    fn mcnemar_chi_square_on_known_tables() {
        let t = mcnemar(150, 100);
        let statistic = t.statistic.unwrap();
        assert!((statistic - 9.604).abs() < 1e-9, "{t:?}");
        assert!((t.p_value - 0.001_942_1).abs() < 1e-6, "{t:?}");
        // The same counts as the exact example, forced through the approximation.
        assert!((chi2_1_survival(81.0 / 22.0) - 0.055_009).abs() < 1e-5);
    }

    #[test]
    fn erfc_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-7);
    }

    #[test]
    fn bootstrap_sees_a_clear_gain_and_no_gain() {
        // Candidate right on every row, champion right on half: gain 0.5 on average.
        let champion: Vec<f64> = (0..200).map(|i| (i % 2) as f64).collect();
        let gain = |rows: &[usize]| {
            rows.iter().map(|&r| 1.0 - champion[r]).sum::<f64>() / rows.len() as f64
        };
        let b = paired_bootstrap(200, 500, 7, gain);
        assert!(
            b.p_value < 0.01 && (b.mean_gain - 0.5).abs() < 0.05,
            "{b:?}"
        );
        assert!(b.low > 0.3 && b.high < 0.7, "{b:?}");
        let none = paired_bootstrap(200, 500, 7, |_| 0.0);
        assert_eq!(none.p_value, 1.0);
        assert_eq!(
            paired_bootstrap(200, 50, 7, gain),
            paired_bootstrap(200, 50, 7, gain)
        );
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.99), Some(99.0));
        assert_eq!(percentile(&mut v, 1.0), Some(100.0));
        assert_eq!(percentile(&mut [5.0], 0.99), Some(5.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }
}
