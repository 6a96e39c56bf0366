//! `netsec data drift`: per-column Kolmogorov–Smirnov test and population stability index
//! (PSI) between a reference and a current data set.
//!
//! The report keeps the old pipeline's per-column `{p_value, drift_status}` entries (under
//! `columns`) and adds the KS statistic, the PSI and an overall verdict.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::dataset::{InvalidData, invalid};
use super::load::Table;
use super::schema::Schema;
use super::typed::{LabelPresence, TypedTable, TypedValues, type_table};

/// Thresholds that turn statistics into drift flags.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DriftThresholds {
    /// A column drifts when its p-value (KS, or chi-square for categorical columns) is
    /// below this.
    pub ks_alpha: f64,
    /// A column drifts when its PSI is at least this (0.1 moderate, 0.2 large shift).
    pub psi: f64,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds {
            ks_alpha: 0.05,
            psi: 0.2,
        }
    }
}

/// Statistics of one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    /// Two-sample p-value: Kolmogorov–Smirnov for numeric columns, chi-square test of
    /// homogeneity for categorical ones (and the label).
    pub p_value: Option<f64>,
    /// Whether this column drifted.
    pub drift_status: bool,
    /// KS statistic D, the largest gap between the two empirical CDFs.
    pub ks_statistic: Option<f64>,
    /// Chi-square statistic of the categories' 2×k contingency table (categorical columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_statistic: Option<f64>,
    /// Population stability index over value (or quantile) bins.
    pub psi: f64,
}

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DriftSide {
    /// Where the rows came from.
    pub source: String,
    /// Row count.
    pub rows: usize,
}

/// The drift report.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Whether any column drifted.
    pub drift_detected: bool,
    /// Names of drifted columns.
    pub drifted_columns: Vec<String>,
    /// Thresholds used.
    pub thresholds: DriftThresholds,
    /// The reference data.
    pub reference: DriftSide,
    /// The data compared with it.
    pub current: DriftSide,
    /// Per column statistics, by name.
    pub columns: BTreeMap<String, ColumnDrift>,
}

/// Compares every schema column (and the label when both sides have it).
pub fn drift(
    reference: &Table,
    current: &Table,
    schema: &Schema,
    thresholds: DriftThresholds,
) -> Result<DriftReport, InvalidData> {
    let typed_ref = typed(reference, schema)?;
    let typed_cur = typed(current, schema)?;
    let mut columns = BTreeMap::new();
    for ((spec, ref_values), (_, cur_values)) in typed_ref.columns.iter().zip(&typed_cur.columns) {
        columns.insert(
            spec.name.clone(),
            column_drift(ref_values, cur_values, thresholds),
        );
    }
    if let (Some(a), Some(b)) = (&typed_ref.labels, &typed_cur.labels) {
        let as_values = |v: &Vec<Option<String>>| TypedValues::Text(v.clone());
        let stats = column_drift(&as_values(a), &as_values(b), thresholds);
        columns.insert(schema.label.column.clone(), stats);
    }
    let drifted_columns: Vec<String> = columns
        .iter()
        .filter(|(_, c)| c.drift_status)
        .map(|(n, _)| n.clone())
        .collect();
    Ok(DriftReport {
        drift_detected: !drifted_columns.is_empty(),
        drifted_columns,
        thresholds,
        reference: DriftSide {
            source: reference.source.clone(),
            rows: reference.len(),
        },
        current: DriftSide {
            source: current.source.clone(),
            rows: current.len(),
        },
        columns,
    })
}

fn typed(table: &Table, schema: &Schema) -> Result<TypedTable, InvalidData> {
    let mut typed = type_table(table, schema, LabelPresence::Optional);
    // New categories are what drift is about: they count as bins of their own.
    typed.accept_unseen_categories();
    if typed.issues.is_empty() {
        Ok(typed)
    } else {
        Err(invalid(table, schema, &typed))
    }
}

fn column_drift(reference: &TypedValues, current: &TypedValues, t: DriftThresholds) -> ColumnDrift {
    if matches!(reference, TypedValues::Text(_)) {
        let texts = |v: &TypedValues| (0..v.len()).filter_map(|r| v.text(r)).collect::<Vec<_>>();
        let (a, b) = (texts(reference), texts(current));
        let psi = psi_categorical(&a, &b);
        let (chi2, p) = chi_square(&a, &b);
        return ColumnDrift {
            p_value: Some(p),
            drift_status: p < t.ks_alpha || psi >= t.psi,
            ks_statistic: None,
            chi2_statistic: Some(chi2),
            psi,
        };
    }
    let values = |v: &TypedValues| {
        let mut out: Vec<f64> = (0..v.len()).filter_map(|r| v.numeric(r)).collect();
        out.sort_by(f64::total_cmp);
        out
    };
    let (a, b) = (values(reference), values(current));
    let d = ks_statistic(&a, &b);
    let p = ks_p_value(d, a.len(), b.len());
    let psi = psi_numeric(&a, &b);
    ColumnDrift {
        p_value: Some(p),
        drift_status: p < t.ks_alpha || psi >= t.psi,
        ks_statistic: Some(d),
        chi2_statistic: None,
        psi,
    }
}

/// Largest distance between the empirical CDFs of two sorted samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// Asymptotic two-sided p-value of the KS statistic with Stephens' small-sample
/// correction: Q_KS((√n_e + 0.12 + 0.11/√n_e)·D), n_e = n·m/(n+m).
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = (n * m) as f64 / (n + m) as f64;
    let lambda = (en.sqrt() + 0.12 + 0.11 / en.sqrt()) * d;
    kolmogorov_q(lambda)
}

/// Q_KS(λ) = 2 Σ_{k≥1} (-1)^{k-1} e^{-2k²λ²}, clamped to [0, 1].
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let term = sign * (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Proportions below this count as this, so an empty bin does not make PSI infinite.
const PSI_FLOOR: f64 = 1e-4;
/// Columns with at most this many distinct values get one bin per value.
const PSI_DISTINCT_BINS: usize = 20;
/// Quantile bins for columns with more distinct values.
const PSI_QUANTILE_BINS: usize = 10;

fn psi_from_counts(reference: &[usize], current: &[usize]) -> f64 {
    let (rn, cn) = (
        reference.iter().sum::<usize>().max(1) as f64,
        current.iter().sum::<usize>().max(1) as f64,
    );
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (
                (r as f64 / rn).max(PSI_FLOOR),
                (c as f64 / cn).max(PSI_FLOOR),
            );
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// PSI of two sorted numeric samples: a bin per value when there are few distinct values,
/// else quantile bins of the reference.
pub fn psi_numeric(reference: &[f64], current: &[f64]) -> f64 {
    let mut distinct: BTreeSet<u64> = BTreeSet::new();
    for v in reference.iter().chain(current) {
        distinct.insert(v.to_bits());
        if distinct.len() > PSI_DISTINCT_BINS {
            break;
        }
    }
    let edges: Vec<f64> = if distinct.len() <= PSI_DISTINCT_BINS {
        let mut values: Vec<f64> = distinct.into_iter().map(f64::from_bits).collect();
        values.sort_by(f64::total_cmp);
        // Upper edges between consecutive values.
        values.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect()
    } else if reference.is_empty() {
        Vec::new()
    } else {
        let mut edges: Vec<f64> = (1..PSI_QUANTILE_BINS)
            .map(|q| reference[q * reference.len() / PSI_QUANTILE_BINS])
            .collect();
        edges.dedup();
        edges
    };
    let counts = |values: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            counts[edges.partition_point(|e| e < v)] += 1;
        }
        counts
    };
    psi_from_counts(&counts(reference), &counts(current))
}

/// PSI of two categorical samples, one bin per category seen on either side.
pub fn psi_categorical(reference: &[String], current: &[String]) -> f64 {
    let mut bins: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for v in reference {
        bins.entry(v).or_default().0 += 1;
    }
    for v in current {
        bins.entry(v).or_default().1 += 1;
    }
    let (r, c): (Vec<usize>, Vec<usize>) = bins.into_values().unzip();
    psi_from_counts(&r, &c)
}

/// Chi-square test of homogeneity of two categorical samples (2×k table over the
/// categories seen on either side): the statistic and its p-value with k-1 degrees of
/// freedom. Identical or empty samples give (0, 1).
pub fn chi_square(reference: &[String], current: &[String]) -> (f64, f64) {
    let mut bins: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for v in reference {
        bins.entry(v).or_default().0 += 1.0;
    }
    for v in current {
        bins.entry(v).or_default().1 += 1.0;
    }
    let (n, m) = (reference.len() as f64, current.len() as f64);
    if bins.len() < 2 || n == 0.0 || m == 0.0 {
        return (0.0, 1.0);
    }
    let total = n + m;
    let statistic: f64 = bins
        .values()
        .map(|&(r, c)| {
            let column = r + c;
            let (er, ec) = (column * n / total, column * m / total);
            (r - er).powi(2) / er + (c - ec).powi(2) / ec
        })
        .sum();
    let dof = (bins.len() - 1) as f64;
    (statistic, gamma_q(dof / 2.0, statistic / 2.0))
}

/// The regularized upper incomplete gamma function Q(a, x): the chi-square survival
/// function is Q(k/2, χ²/2). Series below a+1, continued fraction above (Numerical Recipes).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let prefix = (-x + a * x.ln() - crate::shared::special::ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * prefix).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
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
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (prefix * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_matches_scipy_asymptotic() {
        // scipy.stats.ks_2samp(range(0,100), range(20,120), method='asymp'):
        // statistic 0.2, pvalue 0.0314 (Stephens-corrected asymptotic is within 0.01).
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (20..120).map(f64::from).collect();
        let d = ks_statistic(&a, &b);
        assert!((d - 0.2).abs() < 1e-12);
        let p = ks_p_value(d, 100, 100);
        assert!((p - 0.0314).abs() < 0.01, "{p}");
    }

    #[test]
    fn identical_samples_do_not_drift() {
        let a: Vec<f64> = (0..1000).map(|i| f64::from(i % 3) - 1.0).collect();
        let mut sorted = a.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(ks_statistic(&sorted, &sorted), 0.0);
        assert_eq!(ks_p_value(0.0, 1000, 1000), 1.0);
        assert!(psi_numeric(&sorted, &sorted).abs() < 1e-12);
    }

    #[test]
    fn shifted_distribution_drifts() {
        let a: Vec<f64> = (0..1000).map(|i| f64::from(i % 100)).collect();
        let b: Vec<f64> = (0..1000).map(|i| f64::from(i % 100) + 30.0).collect();
        let (mut a, mut b) = (a, b);
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        assert!(ks_p_value(ks_statistic(&a, &b), a.len(), b.len()) < 1e-6);
        assert!(psi_numeric(&a, &b) > 0.2);
    }

    #[test]
    fn psi_of_a_known_two_value_shift() {
        // 50/50 against 30/70: (0.3-0.5)ln(0.3/0.5) + (0.7-0.5)ln(0.7/0.5) = 0.1695.
        let mut a = vec![-1.0; 50];
        a.extend(vec![1.0; 50]);
        let mut b = vec![-1.0; 30];
        b.extend(vec![1.0; 70]);
        assert!((psi_numeric(&a, &b) - 0.16946).abs() < 1e-4);
    }

    #[test]
    fn chi_square_matches_scipy() {
        // scipy.stats.chi2_contingency([[30, 70], [50, 50]], correction=False):
        // statistic 8.3333, p-value 0.003892.
        let side = |a: usize, b: usize| -> Vec<String> {
            let mut v = vec!["tcp".to_owned(); a];
            v.extend(vec!["udp".to_owned(); b]);
            v
        };
        let (chi2, p) = chi_square(&side(30, 70), &side(50, 50));
        assert!((chi2 - 8.3333).abs() < 1e-3, "{chi2}");
        assert!((p - 0.003892).abs() < 1e-5, "{p}");
        // Three categories, 2 degrees of freedom: chi2 of 5.991 is the 5% point.
        assert!((gamma_q(1.0, 5.991 / 2.0) - 0.05).abs() < 1e-4);
        let same = side(40, 60);
        assert_eq!(chi_square(&same, &same), (0.0, 1.0));
    }

    #[test]
    fn categorical_psi_sees_new_category() {
        let a: Vec<String> = (0..100).map(|i| ["tcp", "udp"][i % 2].to_owned()).collect();
        let b: Vec<String> = (0..100)
            .map(|i| ["tcp", "icmp"][i % 2].to_owned())
            .collect();
        assert!(psi_categorical(&a, &b) > 1.0);
    }
}

/// Why [`drift_to_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// A table does not fit the schema.
    #[error(transparent)]
    Data(#[from] InvalidData),
    /// The report cannot be rendered as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The report cannot be rendered as YAML.
    #[error("rendering YAML: {0}")]
    Yaml(String),
    /// The report file cannot be written.
    #[error("writing {}", path.display())]
    Write {
        /// The report file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DriftError {
    /// The process exit code: the data's own for tables that do not fit, else a runtime
    /// failure (rendering, the file system).
    pub fn exit_code(&self) -> u8 {
        match self {
            DriftError::Data(e) => e.exit_code(),
            DriftError::Json(_) | DriftError::Yaml(_) | DriftError::Write { .. } => {
                crate::exit::RUNTIME_FAILURE
            }
        }
    }
}

/// [`drift`], and with `report`, the report written there (JSON for a `.json` file, else
/// YAML), atomically. The entry point of `netsec data drift`.
pub async fn drift_to_file(
    reference: &Table,
    current: &Table,
    schema: &Schema,
    thresholds: DriftThresholds,
    report: Option<&std::path::Path>,
) -> Result<DriftReport, DriftError> {
    let result = drift(reference, current, schema, thresholds)?;
    if let Some(path) = report {
        let text = if path.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(&result)? + "\n"
        } else {
            serde_saphyr::to_string(&result).map_err(|e| DriftError::Yaml(e.to_string()))?
        };
        crate::fsutil::write_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))
            .map_err(|source| DriftError::Write {
                path: path.to_owned(),
                source,
            })?;
        tracing::info!(path = %path.display(), "drift report written");
    }
    Ok(result)
}
