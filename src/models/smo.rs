//! SMO solver for the C-SVC dual, libsvm's algorithm without shrinking: second-order working
//! set selection (WSS3, Fan, Chen & Lin 2005) and an LRU cache of kernel rows (as `f32`, like
//! libsvm's `Qfloat`), so memory is bounded by the cache, not by `n²`.
//!
//! Dual: `min ½ αᵀQα − eᵀα` s.t. `yᵀα = 0`, `0 ≤ α ≤ C`, `Q_ij = y_i y_j K(x_i, x_j)`.
//! Decision: `f(x) = Σ y_i α_i K(x_i, x) − ρ`.

/// Kernel of the solver.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kernel {
    /// `exp(-gamma ‖a − b‖²)`
    Rbf { gamma: f64 },
    /// `a · b`
    Linear,
}

/// Solution of the dual.
pub(crate) struct Solution {
    /// `α_i` per training row.
    pub alpha: Vec<f64>,
    /// Offset `ρ`.
    pub rho: f64,
    /// Decision value `f(x_i)` of every training row (free from the final gradient).
    pub train_decision: Vec<f64>,
}

const TAU: f64 = 1e-12;

struct Cache<'a> {
    x: &'a [f64],
    d: usize,
    n: usize,
    sign: Vec<f64>,
    sq: Vec<f64>,
    kernel: Kernel,
    rows: Vec<Vec<f32>>,
    owner: Vec<usize>,
    last_used: Vec<u64>,
    slot_of: Vec<u32>,
    max_slots: usize,
    clock: u64,
}

const NO_SLOT: u32 = u32::MAX;

impl Cache<'_> {
    fn kernel(&self, i: usize, k: usize) -> f64 {
        let a = &self.x[i * self.d..(i + 1) * self.d];
        let b = &self.x[k * self.d..(k + 1) * self.d];
        let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
        match self.kernel {
            Kernel::Linear => dot,
            Kernel::Rbf { gamma } => {
                (-gamma * (self.sq[i] + self.sq[k] - 2.0 * dot).max(0.0)).exp()
            }
        }
    }

    /// Slot holding row `i` of Q, computing it (and evicting the least recently used row) if
    /// needed. With at least two slots, the row fetched just before stays valid.
    fn fetch(&mut self, i: usize) -> usize {
        self.clock += 1;
        let s = self.slot_of[i];
        if s != NO_SLOT {
            self.last_used[s as usize] = self.clock;
            return s as usize;
        }
        let slot = if self.rows.len() < self.max_slots {
            self.rows.push(vec![0.0; self.n]);
            self.owner.push(i);
            self.last_used.push(0);
            self.rows.len() - 1
        } else {
            let (slot, _) = self
                .last_used
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .expect("at least two slots");
            self.slot_of[self.owner[slot]] = NO_SLOT;
            self.owner[slot] = i;
            slot
        };
        let mut row = std::mem::take(&mut self.rows[slot]);
        let si = self.sign[i];
        for (k, q) in row.iter_mut().enumerate() {
            *q = (si * self.sign[k] * self.kernel(i, k)) as f32;
        }
        self.rows[slot] = row;
        self.slot_of[i] = slot as u32;
        self.last_used[slot] = self.clock;
        slot
    }
}

/// Recompute the gradient of the variables outside `active` (libsvm's
/// `reconstruct_gradient`): `G_t = G_bar_t − 1 + Σ_{free j} α_j Q_jt`, where `G_bar` holds the
/// contribution of the variables at the upper bound. Then make every variable active again.
fn reconstruct_gradient(
    cache: &mut Cache,
    alpha: &[f64],
    cap: &[f64],
    g_bar: &[f64],
    grad: &mut [f64],
    active: &mut Vec<usize>,
) {
    let n = grad.len();
    let mut is_active = vec![false; n];
    for &t in active.iter() {
        is_active[t] = true;
    }
    let inactive: Vec<usize> = (0..n).filter(|&t| !is_active[t]).collect();
    for &t in &inactive {
        grad[t] = g_bar[t] - 1.0;
    }
    for (j, &a) in alpha.iter().enumerate() {
        if a > 0.0 && a < cap[j] {
            let slot = cache.fetch(j);
            let row = &cache.rows[slot];
            for &t in &inactive {
                grad[t] += a * f64::from(row[t]);
            }
        }
    }
    active.clear();
    active.extend(0..n);
}

/// Solve the C-SVC dual for row-major `x` (`n × d`), labels `y`, penalty `c = [C of the
/// negative class, C of the positive class]` (libsvm's `Cn`, `Cp`: equal without class
/// weights). `cache_bytes` bounds the kernel row cache (at least two rows are always kept).
pub(crate) fn solve(
    x: &[f64],
    d: usize,
    y: &[bool],
    c: [f64; 2],
    kernel: Kernel,
    tol: f64,
    cache_bytes: usize,
) -> Solution {
    let n = y.len();
    let sign: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { -1.0 }).collect();
    let sq: Vec<f64> = x
        .chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let max_slots = (cache_bytes / (4 * n.max(1))).clamp(2, n.max(2));
    let mut cache = Cache {
        x,
        d,
        n,
        sign: sign.clone(),
        sq,
        kernel,
        rows: Vec::new(),
        owner: Vec::new(),
        last_used: Vec::new(),
        slot_of: vec![NO_SLOT; n],
        max_slots,
        clock: 0,
    };
    let qd: Vec<f64> = (0..n).map(|i| cache.kernel(i, i)).collect();
    let mut alpha = vec![0.0; n];
    let mut grad = vec![-1.0; n];
    let max_iter = (100 * n).max(10_000_000);
    let mut iterations = 0;
    // each variable's upper bound: its class's C (libsvm's get_C)
    let cap: Vec<f64> = y.iter().map(|&v| c[usize::from(v)]).collect();
    let upper = |t: usize, a: f64| a >= cap[t];
    let lower = |a: f64| a <= 0.0;
    // Shrinking (libsvm's heuristic): every `min(n, 1000)` iterations, drop from the active set
    // the bounded variables that cannot move given the current violation; their gradients go
    // stale and are rebuilt before the final optimality check.
    let mut active: Vec<usize> = (0..n).collect();
    // G_bar_t = C Σ_{j at upper bound} Q_jt, kept up to date so reconstruction only needs the
    // rows of the free variables.
    let mut g_bar = vec![0.0; n];
    let mut unshrunk = false;
    let shrink_every = n.clamp(1, 1000);
    let mut counter = shrink_every;

    while iterations < max_iter {
        counter -= 1;
        if counter == 0 {
            counter = shrink_every;
            let (mut g1, mut g2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            for &t in &active {
                let yg = sign[t] * grad[t];
                let (in_up, in_low) = if sign[t] > 0.0 {
                    (!upper(t, alpha[t]), !lower(alpha[t]))
                } else {
                    (!lower(alpha[t]), !upper(t, alpha[t]))
                };
                if in_up {
                    g1 = g1.max(-yg);
                }
                if in_low {
                    g2 = g2.max(yg);
                }
            }
            if !unshrunk && g1 + g2 <= tol * 10.0 {
                unshrunk = true;
                reconstruct_gradient(&mut cache, &alpha, &cap, &g_bar, &mut grad, &mut active);
            }
            // Shrink a bounded variable whose score says it cannot enter a violating pair.
            active.retain(|&t| {
                let yg = sign[t] * grad[t];
                // -yg is the I_up score, yg the I_low score
                let shrink = if upper(t, alpha[t]) {
                    if sign[t] > 0.0 { -yg > g1 } else { yg > g2 }
                } else if lower(alpha[t]) {
                    if sign[t] > 0.0 { yg > g2 } else { -yg > g1 }
                } else {
                    false
                };
                !shrink
            });
        }
        // i: maximal violator in I_up
        let mut gmax = f64::NEG_INFINITY;
        let mut i = usize::MAX;
        for &t in &active {
            let in_up = if sign[t] > 0.0 {
                !upper(t, alpha[t])
            } else {
                !lower(alpha[t])
            };
            if in_up && -sign[t] * grad[t] >= gmax {
                gmax = -sign[t] * grad[t];
                i = t;
            }
        }
        if i == usize::MAX {
            if active.len() < n {
                reconstruct_gradient(&mut cache, &alpha, &cap, &g_bar, &mut grad, &mut active);
                counter = 2; // re-check optimality on the full set before shrinking again
                continue;
            }
            break;
        }
        let si = cache.fetch(i);
        // j: second-order choice in I_low
        let mut gmax2 = f64::NEG_INFINITY;
        let mut j = usize::MAX;
        let mut obj_min = f64::INFINITY;
        {
            let qi = &cache.rows[si];
            for &t in &active {
                let in_low = if sign[t] > 0.0 {
                    !lower(alpha[t])
                } else {
                    !upper(t, alpha[t])
                };
                if !in_low {
                    continue;
                }
                let v = sign[t] * grad[t];
                gmax2 = gmax2.max(v);
                let grad_diff = gmax + v;
                if grad_diff > 0.0 {
                    // Q_i[t] = y_i y_t K_it, so y_i Q_i[t] · y_t = K_it
                    let quad = qd[i] + qd[t] - 2.0 * sign[i] * sign[t] * f64::from(qi[t]);
                    let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                    if obj <= obj_min {
                        obj_min = obj;
                        j = t;
                    }
                }
            }
        }
        if gmax + gmax2 < tol || j == usize::MAX {
            if active.len() < n {
                reconstruct_gradient(&mut cache, &alpha, &cap, &g_bar, &mut grad, &mut active);
                counter = 2; // re-check optimality on the full set before shrinking again
                continue;
            }
            break;
        }
        iterations += 1;
        let sj = cache.fetch(j);
        let qi = &cache.rows[si];
        let qj = &cache.rows[sj];
        let (old_i, old_j) = (alpha[i], alpha[j]);
        let (ci, cj) = (cap[i], cap[j]);
        let qij = f64::from(qi[j]);
        if sign[i] != sign[j] {
            let quad = (qd[i] + qd[j] + 2.0 * qij).max(TAU);
            let delta = (-grad[i] - grad[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            // (libsvm's `diff > C_i − C_j`, which is `diff > 0` when the two C are equal)
            if diff > ci - cj {
                if alpha[i] > ci {
                    alpha[i] = ci;
                    alpha[j] = ci - diff;
                }
            } else if alpha[j] > cj {
                alpha[j] = cj;
                alpha[i] = cj + diff;
            }
        } else {
            let quad = (qd[i] + qd[j] - 2.0 * qij).max(TAU);
            let delta = (grad[i] - grad[j]) / quad;
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > ci {
                if alpha[i] > ci {
                    alpha[i] = ci;
                    alpha[j] = sum - ci;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > cj {
                if alpha[j] > cj {
                    alpha[j] = cj;
                    alpha[i] = sum - cj;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let (di, dj) = (alpha[i] - old_i, alpha[j] - old_j);
        for (row, t, was, now) in [(qi, i, old_i, alpha[i]), (qj, j, old_j, alpha[j])] {
            if upper(t, was) != upper(t, now) {
                let sgn = if upper(t, now) { cap[t] } else { -cap[t] };
                for (gb, q) in g_bar.iter_mut().zip(row) {
                    *gb += sgn * f64::from(*q);
                }
            }
        }
        if active.len() == n {
            for ((g, a), b) in grad.iter_mut().zip(qi).zip(qj) {
                *g += f64::from(*a) * di + f64::from(*b) * dj;
            }
        } else {
            for &t in &active {
                grad[t] += f64::from(qi[t]) * di + f64::from(qj[t]) * dj;
            }
        }
    }
    if active.len() < n {
        reconstruct_gradient(&mut cache, &alpha, &cap, &g_bar, &mut grad, &mut active);
    }

    // rho: average over free vectors, else the middle of the feasible interval (libsvm).
    let (mut ub, mut lb) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut n_free, mut sum_free) = (0usize, 0.0);
    for t in 0..n {
        let yg = sign[t] * grad[t];
        if upper(t, alpha[t]) {
            if sign[t] < 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else if lower(alpha[t]) {
            if sign[t] > 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else {
            n_free += 1;
            sum_free += yg;
        }
    }
    let rho = if n_free > 0 {
        sum_free / n_free as f64
    } else {
        (ub + lb) / 2.0
    };
    // (Qα)_t = G_t + 1 = y_t Σ_k y_k α_k K_tk, so f(x_t) = y_t (G_t + 1) − ρ.
    let train_decision = (0..n).map(|t| sign[t] * (grad[t] + 1.0) - rho).collect();
    Solution {
        alpha,
        rho,
        train_decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_points_linear_closed_form() {
        // x = 0 (benign), x = 2 (attack), hard margin: w = 1, rho = 1, alpha = 0.5 each.
        let s = solve(
            &[0.0, 2.0],
            1,
            &[false, true],
            [100.0; 2],
            Kernel::Linear,
            1e-6,
            1 << 20,
        );
        assert!((s.alpha[0] - 0.5).abs() < 1e-6 && (s.alpha[1] - 0.5).abs() < 1e-6);
        assert!((s.rho - 1.0).abs() < 1e-6, "{}", s.rho);
        assert!((s.train_decision[0] + 1.0).abs() < 1e-6);
        assert!((s.train_decision[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn satisfies_kkt_with_a_tiny_cache() {
        let (x, y) = crate::models::testutil::toy(200, 4, 7);
        let flat = x.as_slice().unwrap();
        let c = 1.0;
        let tol = 1e-3;
        // 2 rows of cache: constant eviction must not change the answer
        for cache in [2 * 4 * 200, 64 << 20] {
            let s = solve(flat, 4, &y, [c; 2], Kernel::Rbf { gamma: 0.3 }, tol, cache);
            let eq: f64 = s
                .alpha
                .iter()
                .zip(&y)
                .map(|(a, &v)| if v { *a } else { -a })
                .sum();
            assert!(eq.abs() < 1e-9, "yᵀα = {eq}");
            for ((a, f), &v) in s.alpha.iter().zip(&s.train_decision).zip(&y) {
                let margin = if v { *f } else { -f };
                assert!((0.0..=c).contains(a));
                if *a <= 0.0 {
                    assert!(margin >= 1.0 - 2.0 * tol, "{margin}");
                } else if *a >= c {
                    assert!(margin <= 1.0 + 2.0 * tol, "{margin}");
                } else {
                    assert!((margin - 1.0).abs() <= 2.0 * tol, "{margin}");
                }
            }
        }
    }
}
