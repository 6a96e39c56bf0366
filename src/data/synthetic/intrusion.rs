//! The `intrusion` profile: connection records shaped like NSL-KDD.
//!
//! Each row draws its class (`normal` or one of nine attack names, 30% attacks overall, the
//! rarest under 1%) and then every feature from that class's distribution: string
//! `protocol_type` / `service` / `flag`, heavy-tailed byte counts and durations
//! (log-normal, many zeros), connection counts and rates in [0, 1], plus the constant
//! `num_outbound_cmds` that the real set also has. Two kinds of noise keep it from being
//! trivially separable: each feature of an attack row comes from the `normal` distribution
//! with probability `BLUR`, and `STEALTH` of attack rows look entirely normal.

use polars::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::load::Table;

/// Share of attack-row features drawn from the normal distribution instead.
const BLUR: f64 = 0.15;
/// Share of attack rows whose every feature is drawn from the normal distribution.
const STEALTH: f64 = 0.06;

/// A log-normal amount: zero with probability `zero`, else `median · e^(sigma · N(0,1))`.
#[derive(Clone, Copy)]
struct Amount {
    zero: f64,
    median: f64,
    sigma: f64,
}

const fn amount(zero: f64, median: f64, sigma: f64) -> Amount {
    Amount {
        zero,
        median,
        sigma,
    }
}

/// A rate in [0, 1]: `center + spread · N(0,1)`, clamped, two decimals.
#[derive(Clone, Copy)]
struct Rate {
    center: f64,
    spread: f64,
}

const fn rate(center: f64, spread: f64) -> Rate {
    Rate { center, spread }
}

type Choices = &'static [(&'static str, u32)];

/// The distribution of every feature within one class.
struct Class {
    label: &'static str,
    /// Rows per 1,000.
    weight: u32,
    protocol: Choices,
    service: Choices,
    flag: Choices,
    duration: Amount,
    src_bytes: Amount,
    dst_bytes: Amount,
    wrong_fragment: u32,
    logged_in: f64,
    count: Amount,
    srv_count: Amount,
    serror_rate: Rate,
    rerror_rate: Rate,
    same_srv_rate: Rate,
    diff_srv_rate: Rate,
    dst_host_count: Amount,
}

const NORMAL: Class = Class {
    label: "normal",
    weight: 700,
    protocol: &[("tcp", 78), ("udp", 17), ("icmp", 5)],
    service: &[
        ("http", 40),
        ("smtp", 12),
        ("domain_u", 14),
        ("ftp_data", 10),
        ("ftp", 4),
        ("private", 5),
        ("other", 4),
        ("pop_3", 3),
        ("eco_i", 2),
        ("telnet", 2),
        ("auth", 2),
        ("finger", 1),
        ("imap4", 1),
    ],
    flag: &[
        ("SF", 88),
        ("REJ", 4),
        ("RSTO", 2),
        ("RSTR", 2),
        ("S0", 1),
        ("SH", 1),
        ("S1", 1),
        ("OTH", 1),
    ],
    duration: amount(0.88, 40.0, 1.8),
    src_bytes: amount(0.02, 250.0, 1.2),
    dst_bytes: amount(0.15, 1800.0, 1.6),
    wrong_fragment: 0,
    logged_in: 0.72,
    count: amount(0.0, 6.0, 1.0),
    srv_count: amount(0.0, 8.0, 1.0),
    serror_rate: rate(0.02, 0.05),
    rerror_rate: rate(0.04, 0.08),
    same_srv_rate: rate(0.92, 0.12),
    diff_srv_rate: rate(0.04, 0.06),
    dst_host_count: amount(0.0, 120.0, 0.8),
};

const ATTACKS: [Class; 9] = [
    Class {
        label: "neptune",
        weight: 140,
        protocol: &[("tcp", 1)],
        service: &[
            ("private", 45),
            ("other", 20),
            ("http", 5),
            ("telnet", 5),
            ("finger", 5),
            ("ftp", 5),
            ("smtp", 5),
            ("imap4", 5),
            ("pop_3", 5),
        ],
        flag: &[("S0", 85), ("REJ", 12), ("SH", 3)],
        duration: amount(1.0, 0.0, 0.0),
        src_bytes: amount(1.0, 0.0, 0.0),
        dst_bytes: amount(1.0, 0.0, 0.0),
        wrong_fragment: 0,
        logged_in: 0.0,
        count: amount(0.0, 180.0, 0.5),
        srv_count: amount(0.0, 12.0, 0.6),
        serror_rate: rate(0.9, 0.15),
        rerror_rate: rate(0.08, 0.1),
        same_srv_rate: rate(0.07, 0.06),
        diff_srv_rate: rate(0.07, 0.05),
        dst_host_count: amount(0.0, 240.0, 0.05),
    },
    Class {
        label: "smurf",
        weight: 50,
        protocol: &[("icmp", 1)],
        service: &[("ecr_i", 1)],
        flag: &[("SF", 1)],
        duration: amount(1.0, 0.0, 0.0),
        src_bytes: amount(0.0, 1032.0, 0.1),
        dst_bytes: amount(1.0, 0.0, 0.0),
        wrong_fragment: 0,
        logged_in: 0.0,
        count: amount(0.0, 480.0, 0.1),
        srv_count: amount(0.0, 480.0, 0.1),
        serror_rate: rate(0.0, 0.01),
        rerror_rate: rate(0.0, 0.01),
        same_srv_rate: rate(1.0, 0.02),
        diff_srv_rate: rate(0.0, 0.01),
        dst_host_count: amount(0.0, 250.0, 0.02),
    },
    Class {
        label: "satan",
        weight: 25,
        protocol: &[("tcp", 80), ("udp", 10), ("icmp", 10)],
        service: &[
            ("private", 40),
            ("other", 30),
            ("finger", 6),
            ("telnet", 6),
            ("auth", 6),
            ("http", 6),
            ("urp_i", 6),
        ],
        flag: &[
            ("REJ", 45),
            ("SF", 25),
            ("S0", 15),
            ("RSTO", 10),
            ("RSTR", 5),
        ],
        duration: amount(0.95, 2.0, 1.0),
        src_bytes: amount(0.4, 5.0, 1.0),
        dst_bytes: amount(0.7, 20.0, 1.0),
        wrong_fragment: 0,
        logged_in: 0.02,
        count: amount(0.0, 3.0, 1.5),
        srv_count: amount(0.0, 2.0, 1.0),
        serror_rate: rate(0.1, 0.2),
        rerror_rate: rate(0.6, 0.3),
        same_srv_rate: rate(0.2, 0.2),
        diff_srv_rate: rate(0.7, 0.25),
        dst_host_count: amount(0.0, 200.0, 0.3),
    },
    Class {
        label: "ipsweep",
        weight: 22,
        protocol: &[("icmp", 90), ("tcp", 10)],
        service: &[("eco_i", 85), ("ecr_i", 10), ("private", 5)],
        flag: &[("SF", 95), ("REJ", 5)],
        duration: amount(1.0, 0.0, 0.0),
        src_bytes: amount(0.05, 18.0, 0.3),
        dst_bytes: amount(1.0, 0.0, 0.0),
        wrong_fragment: 0,
        logged_in: 0.0,
        count: amount(0.0, 1.5, 0.5),
        srv_count: amount(0.0, 20.0, 0.8),
        serror_rate: rate(0.0, 0.02),
        rerror_rate: rate(0.02, 0.05),
        same_srv_rate: rate(1.0, 0.05),
        diff_srv_rate: rate(0.0, 0.03),
        dst_host_count: amount(0.0, 30.0, 1.0),
    },
    Class {
        label: "portsweep",
        weight: 20,
        protocol: &[("tcp", 95), ("icmp", 5)],
        service: &[("private", 70), ("other", 20), ("telnet", 5), ("ftp", 5)],
        flag: &[("RSTR", 40), ("REJ", 35), ("SF", 15), ("RSTO", 10)],
        duration: amount(0.8, 3000.0, 1.0),
        src_bytes: amount(0.8, 5.0, 0.5),
        dst_bytes: amount(0.9, 5.0, 0.5),
        wrong_fragment: 0,
        logged_in: 0.0,
        count: amount(0.0, 2.0, 0.8),
        srv_count: amount(0.0, 2.0, 0.8),
        serror_rate: rate(0.05, 0.1),
        rerror_rate: rate(0.7, 0.3),
        same_srv_rate: rate(0.4, 0.3),
        diff_srv_rate: rate(0.5, 0.4),
        dst_host_count: amount(0.0, 60.0, 1.0),
    },
    Class {
        label: "back",
        weight: 12,
        protocol: &[("tcp", 1)],
        service: &[("http", 1)],
        flag: &[("SF", 80), ("RSTR", 20)],
        duration: amount(0.9, 2.0, 1.0),
        src_bytes: amount(0.0, 54540.0, 0.02),
        dst_bytes: amount(0.1, 8314.0, 0.2),
        wrong_fragment: 0,
        logged_in: 1.0,
        count: amount(0.0, 5.0, 0.7),
        srv_count: amount(0.0, 5.0, 0.7),
        serror_rate: rate(0.0, 0.05),
        rerror_rate: rate(0.0, 0.05),
        same_srv_rate: rate(1.0, 0.02),
        diff_srv_rate: rate(0.0, 0.02),
        dst_host_count: amount(0.0, 100.0, 0.8),
    },
    Class {
        label: "teardrop",
        weight: 10,
        protocol: &[("udp", 1)],
        service: &[("private", 1)],
        flag: &[("SF", 1)],
        duration: amount(1.0, 0.0, 0.0),
        src_bytes: amount(0.0, 28.0, 0.05),
        dst_bytes: amount(1.0, 0.0, 0.0),
        wrong_fragment: 3,
        logged_in: 0.0,
        count: amount(0.0, 60.0, 0.7),
        srv_count: amount(0.0, 60.0, 0.7),
        serror_rate: rate(0.0, 0.02),
        rerror_rate: rate(0.0, 0.02),
        same_srv_rate: rate(1.0, 0.05),
        diff_srv_rate: rate(0.0, 0.02),
        dst_host_count: amount(0.0, 80.0, 0.8),
    },
    Class {
        label: "guess_passwd",
        weight: 8,
        protocol: &[("tcp", 1)],
        service: &[("telnet", 90), ("pop_3", 5), ("imap4", 5)],
        flag: &[("RSTO", 60), ("SF", 40)],
        duration: amount(0.6, 3.0, 0.5),
        src_bytes: amount(0.0, 125.0, 0.1),
        dst_bytes: amount(0.0, 180.0, 0.3),
        wrong_fragment: 0,
        logged_in: 0.0,
        count: amount(0.0, 1.0, 0.2),
        srv_count: amount(0.0, 1.0, 0.2),
        serror_rate: rate(0.0, 0.02),
        rerror_rate: rate(0.1, 0.2),
        same_srv_rate: rate(1.0, 0.05),
        diff_srv_rate: rate(0.0, 0.02),
        dst_host_count: amount(0.0, 60.0, 1.0),
    },
    Class {
        label: "warezclient",
        weight: 13,
        protocol: &[("tcp", 1)],
        service: &[("ftp_data", 60), ("ftp", 40)],
        flag: &[("SF", 95), ("RSTO", 5)],
        duration: amount(0.4, 600.0, 1.0),
        src_bytes: amount(0.0, 20000.0, 1.5),
        dst_bytes: amount(0.8, 500.0, 1.0),
        wrong_fragment: 0,
        logged_in: 1.0,
        count: amount(0.0, 2.0, 0.7),
        srv_count: amount(0.0, 2.0, 0.7),
        serror_rate: rate(0.0, 0.03),
        rerror_rate: rate(0.0, 0.03),
        same_srv_rate: rate(1.0, 0.05),
        diff_srv_rate: rate(0.0, 0.05),
        dst_host_count: amount(0.0, 40.0, 1.0),
    },
];

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(1e-12);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn choose(rng: &mut StdRng, choices: Choices) -> &'static str {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (name, weight) in choices {
        if pick < *weight {
            return name;
        }
        pick -= weight;
    }
    choices[choices.len() - 1].0
}

fn draw_amount(rng: &mut StdRng, a: Amount) -> f64 {
    if rng.r#gen::<f64>() < a.zero {
        0.0
    } else {
        a.median * (a.sigma * gaussian(rng)).exp()
    }
}

fn draw_rate(rng: &mut StdRng, r: Rate) -> f64 {
    let v = (r.center + r.spread * gaussian(rng)).clamp(0.0, 1.0);
    (v * 100.0).round() / 100.0
}

fn draw_count(rng: &mut StdRng, a: Amount, max: f64) -> i64 {
    draw_amount(rng, a).round().clamp(0.0, max) as i64
}

/// The columns being built, one vector per column.
#[derive(Default)]
struct Columns {
    duration: Vec<f64>,
    protocol_type: Vec<&'static str>,
    service: Vec<&'static str>,
    flag: Vec<&'static str>,
    src_bytes: Vec<f64>,
    dst_bytes: Vec<f64>,
    wrong_fragment: Vec<i64>,
    logged_in: Vec<i64>,
    num_outbound_cmds: Vec<i64>,
    count: Vec<i64>,
    srv_count: Vec<i64>,
    serror_rate: Vec<f64>,
    rerror_rate: Vec<f64>,
    same_srv_rate: Vec<f64>,
    diff_srv_rate: Vec<f64>,
    dst_host_count: Vec<i64>,
    label: Vec<&'static str>,
}

impl Columns {
    fn push(&mut self, rng: &mut StdRng, class: &Class) {
        let stealth = class.label != NORMAL.label && rng.r#gen::<f64>() < STEALTH;
        // Each feature picks its distribution: the class's, or (blurred) the normal one.
        let pick = |rng: &mut StdRng| -> &Class {
            if stealth || (class.label != NORMAL.label && rng.r#gen::<f64>() < BLUR) {
                &NORMAL
            } else {
                class
            }
        };
        let c = pick(rng);
        self.protocol_type.push(choose(rng, c.protocol));
        let c = pick(rng);
        self.service.push(choose(rng, c.service));
        let c = pick(rng);
        self.flag.push(choose(rng, c.flag));
        let c = pick(rng);
        self.duration
            .push((draw_amount(rng, c.duration) * 1000.0).round() / 1000.0);
        let c = pick(rng);
        self.src_bytes.push(draw_amount(rng, c.src_bytes).round());
        let c = pick(rng);
        self.dst_bytes.push(draw_amount(rng, c.dst_bytes).round());
        let c = pick(rng);
        self.wrong_fragment.push(i64::from(c.wrong_fragment));
        let c = pick(rng);
        self.logged_in
            .push(i64::from(rng.r#gen::<f64>() < c.logged_in));
        self.num_outbound_cmds.push(0);
        let c = pick(rng);
        self.count.push(draw_count(rng, c.count, 511.0));
        let c = pick(rng);
        self.srv_count.push(draw_count(rng, c.srv_count, 511.0));
        let c = pick(rng);
        self.serror_rate.push(draw_rate(rng, c.serror_rate));
        let c = pick(rng);
        self.rerror_rate.push(draw_rate(rng, c.rerror_rate));
        let c = pick(rng);
        self.same_srv_rate.push(draw_rate(rng, c.same_srv_rate));
        let c = pick(rng);
        self.diff_srv_rate.push(draw_rate(rng, c.diff_srv_rate));
        let c = pick(rng);
        self.dst_host_count
            .push(draw_count(rng, c.dst_host_count, 255.0));
        self.label.push(class.label);
    }

    fn into_frame(self, rows: usize) -> PolarsResult<DataFrame> {
        let columns = vec![
            Column::new("duration".into(), self.duration),
            Column::new("protocol_type".into(), self.protocol_type),
            Column::new("service".into(), self.service),
            Column::new("flag".into(), self.flag),
            Column::new("src_bytes".into(), self.src_bytes),
            Column::new("dst_bytes".into(), self.dst_bytes),
            Column::new("wrong_fragment".into(), self.wrong_fragment),
            Column::new("logged_in".into(), self.logged_in),
            Column::new("num_outbound_cmds".into(), self.num_outbound_cmds),
            Column::new("count".into(), self.count),
            Column::new("srv_count".into(), self.srv_count),
            Column::new("serror_rate".into(), self.serror_rate),
            Column::new("rerror_rate".into(), self.rerror_rate),
            Column::new("same_srv_rate".into(), self.same_srv_rate),
            Column::new("diff_srv_rate".into(), self.diff_srv_rate),
            Column::new("dst_host_count".into(), self.dst_host_count),
            Column::new("label".into(), self.label),
        ];
        DataFrame::new(rows, columns)
    }
}

/// Generates `rows` intrusion records from `seed`.
pub fn intrusion(rows: usize, seed: u64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut columns = Columns::default();
    for _ in 0..rows {
        let mut pick = rng.gen_range(0..1000u32);
        let mut class = &NORMAL;
        for candidate in std::iter::once(&NORMAL).chain(ATTACKS.iter()) {
            if pick < candidate.weight {
                class = candidate;
                break;
            }
            pick -= candidate.weight;
        }
        columns.push(&mut rng, class);
    }
    let frame = columns.into_frame(rows).expect("columns have equal length");
    Table::from_frame(
        format!("synthetic:intrusion(rows={rows},seed={seed})"),
        frame,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_add_up_to_a_thousand() {
        let total: u32 = NORMAL.weight + ATTACKS.iter().map(|c| c.weight).sum::<u32>();
        assert_eq!(total, 1000);
    }

    #[test]
    fn deterministic_imbalanced_and_multi_valued() {
        let a = intrusion(4000, 3);
        assert!(a.frame.equals(&intrusion(4000, 3).frame));
        assert!(!a.frame.equals(&intrusion(4000, 4).frame));
        let labels = a.frame.column("label").unwrap().str().unwrap().clone();
        let normal = labels.iter().filter(|v| *v == Some("normal")).count();
        let share = normal as f64 / 4000.0;
        assert!((share - 0.7).abs() < 0.03, "{share}");
        let distinct = labels.n_unique().unwrap();
        assert!(distinct >= 8, "{distinct}");
    }
}
