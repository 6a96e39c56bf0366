//! Random search: the points of a model entry drawn from its distributions.
//!
//! A draw is a pure function of (search seed, model entry, draw index): draw `i` of entry
//! `m` reads the ChaCha8 stream `m` of the seed from word `i · 2^32` on. So the plan of a
//! random search is the same in every process — a resumed or sharded search runs exactly
//! the trials the first one planned — and adding draws (a larger `trials`) keeps the
//! earlier ones.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::grid::Distribution;
use crate::models::{ParamValue, Params};

/// Draws tried per wanted trial before a space is taken as exhausted: only an all-discrete
/// space smaller than it looks gets there, and the bound keeps planning finite.
const DRAWS_PER_TRIAL: usize = 100;

/// Significant digits a drawn number keeps: labels and MLflow params stay readable, and
/// no hyperparameter tells 1e-6 relative apart.
const DIGITS: usize = 6;

/// The `trials` distinct points of model entry `entry`; when the space is all discrete and
/// has at most `trials` points, every point (in grid order).
pub fn draw_points(
    axes: &[(String, Distribution)],
    trials: usize,
    seed: u64,
    entry: usize,
) -> Vec<Params> {
    if space_size(axes).is_some_and(|n| n <= trials as u128) {
        return every_point(axes);
    }
    let mut seen = BTreeSet::new();
    let mut points = Vec::with_capacity(trials);
    for index in 0..trials.saturating_mul(DRAWS_PER_TRIAL) {
        let point = draw(axes, seed, entry, index);
        // Params has no Ord (floats); its JSON text is a stable identity.
        if seen.insert(serde_json::to_string(&point).unwrap_or_default()) {
            points.push(point);
            if points.len() == trials {
                break;
            }
        }
    }
    points
}

/// Draw `index` of model entry `entry`: one value per axis, in key order.
pub fn draw(axes: &[(String, Distribution)], seed: u64, entry: usize, index: usize) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(entry as u64);
    rng.set_word_pos((index as u128) << 32);
    axes.iter()
        .map(|(key, dist)| (key.clone(), sample(dist, &mut rng)))
        .collect()
}

/// One value of `dist`.
pub fn sample(dist: &Distribution, rng: &mut impl Rng) -> ParamValue {
    match dist {
        // A fixed value draws nothing, so fixing a parameter keeps the others' draws.
        Distribution::Choice(values) if values.len() == 1 => values[0].clone(),
        Distribution::Choice(values) => values[rng.gen_range(0..values.len())].clone(),
        Distribution::Int(lo, hi) => ParamValue::Int(rng.gen_range(*lo..=*hi)),
        Distribution::Uniform(lo, hi) => {
            ParamValue::Float(round(lo + (hi - lo) * rng.r#gen::<f64>(), *lo, *hi))
        }
        Distribution::LogUniform(lo, hi) => {
            let (a, b) = (lo.ln(), hi.ln());
            ParamValue::Float(round((a + (b - a) * rng.r#gen::<f64>()).exp(), *lo, *hi))
        }
    }
}

/// `x` to [`DIGITS`] significant digits, kept within `[lo, hi]`.
fn round(x: f64, lo: f64, hi: f64) -> f64 {
    let text = format!("{:.*e}", DIGITS - 1, x);
    text.parse::<f64>().unwrap_or(x).clamp(lo, hi)
}

/// Points of an all-discrete space (`None` when a continuous axis makes it infinite).
fn space_size(axes: &[(String, Distribution)]) -> Option<u128> {
    axes.iter().try_fold(1u128, |n, (_, dist)| {
        let size = match dist {
            Distribution::Choice(values) => values.len() as u128,
            Distribution::Int(lo, hi) => (*hi as i128 - *lo as i128 + 1) as u128,
            _ => return None,
        };
        n.checked_mul(size)
    })
}

/// Every point of an all-discrete space, the last axis varying fastest.
fn every_point(axes: &[(String, Distribution)]) -> Vec<Params> {
    let mut points = vec![Params::new()];
    for (key, dist) in axes {
        let values = dist.finite_values().unwrap_or_default();
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut p = point.clone();
                    p.insert(key.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(key: &str, dist: Distribution) -> (String, Distribution) {
        (key.to_owned(), dist)
    }

    fn float(p: &Params, key: &str) -> f64 {
        match p[key] {
            ParamValue::Float(x) => x,
            ref v => panic!("{key} = {v}"),
        }
    }

    #[test]
    fn draws_respect_bounds_and_int_is_inclusive() {
        let axes = [
            axis("a", Distribution::Uniform(0.25, 0.75)),
            axis("b", Distribution::LogUniform(1e-3, 10.0)),
            axis("n", Distribution::Int(2, 4)),
        ];
        let points = draw_points(&axes, 2000, 7, 0);
        assert_eq!(points.len(), 2000);
        let mut ints = BTreeSet::new();
        for p in &points {
            assert!((0.25..=0.75).contains(&float(p, "a")), "{p:?}");
            assert!((1e-3..=10.0).contains(&float(p, "b")), "{p:?}");
            let ParamValue::Int(n) = p["n"] else {
                panic!("{p:?}")
            };
            ints.insert(n);
        }
        assert_eq!(ints.into_iter().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn loguniform_is_uniform_in_log_space() {
        // Each decade of [1e-4, 1] gets a quarter of the draws (log-uniform), where a
        // uniform draw would put 90% in the top decade.
        let axes = [axis("c", Distribution::LogUniform(1e-4, 1.0))];
        let points = draw_points(&axes, 4000, 3, 0);
        let mut decades = [0usize; 4];
        for p in &points {
            let d = (-float(p, "c").log10()).floor().clamp(0.0, 3.0) as usize;
            decades[d] += 1;
        }
        for count in decades {
            assert!((850..=1150).contains(&count), "{decades:?}");
        }
    }

    #[test]
    fn draws_are_a_function_of_seed_entry_and_index() {
        let axes = [
            axis("a", Distribution::Uniform(0.0, 1.0)),
            axis(
                "k",
                Distribution::Choice(vec![ParamValue::str("x"), ParamValue::str("y")]),
            ),
        ];
        let first = draw_points(&axes, 20, 1, 0);
        assert_eq!(first, draw_points(&axes, 20, 1, 0), "same seed, same draws");
        assert_ne!(first, draw_points(&axes, 20, 2, 0), "another seed");
        assert_ne!(first, draw_points(&axes, 20, 1, 1), "another model entry");
        assert_eq!(
            first[..10],
            draw_points(&axes, 10, 1, 0)[..],
            "more trials keep the first"
        );
        assert_eq!(draw(&axes, 1, 0, 5), first[5]);
    }

    #[test]
    fn a_small_discrete_space_is_taken_whole_and_duplicates_collapse() {
        let axes = [
            axis("n", Distribution::Int(1, 3)),
            axis(
                "k",
                Distribution::Choice(vec![ParamValue::Int(1), ParamValue::Int(2)]),
            ),
        ];
        assert_eq!(draw_points(&axes, 60, 1, 0).len(), 6);
        let points = draw_points(&axes, 5, 1, 0);
        assert_eq!(points.len(), 5);
        let distinct: BTreeSet<String> = points
            .iter()
            .map(|p| serde_json::to_string(p).unwrap())
            .collect();
        assert_eq!(distinct.len(), 5);
    }
}
