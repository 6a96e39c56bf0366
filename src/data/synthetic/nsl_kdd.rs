//! The `nsl-kdd` profile: connection records with NSL-KDD's 41 feature columns (three of
//! them strings: `protocol_type`, `service`, `flag`) and a multi-class `label` of real
//! NSL-KDD names, in the class shares of NSL-KDD's training file (KDDTrain+, 125,973 rows):
//! normal 53.5 %, DoS 36.4 % (neptune, smurf, back, teardrop, pod), probe 9.3 % (satan,
//! ipsweep, portsweep, nmap), R2L 0.77 % (warezclient, guess_passwd, warezmaster) and U2R
//! 0.03 % (buffer_overflow, rootkit: both under 0.1 %).
//!
//! Each row draws its class, then each feature group from that class's distribution. As in
//! the real set, DoS and probe rows stand apart in their traffic counts and error rates,
//! while R2L and U2R rows are ordinary logged-in sessions that differ from normal ones only
//! in a few content features (`hot`, failed logins, root access, file creations). Two
//! kinds of noise make attacks overlap normal traffic: each feature group of an attack row
//! comes from the `normal` distribution with probability [`BLUR`], and [`STEALTH`] of
//! attack rows look normal throughout. So per-class recall differs between algorithms,
//! most on the rare classes.

use polars::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::load::Table;

/// Share of an attack row's feature groups drawn from the normal distribution instead.
const BLUR: f64 = 0.12;
/// Share of attack rows whose every feature is drawn from the normal distribution.
const STEALTH: f64 = 0.04;

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

const NONE: Amount = amount(1.0, 0.0, 0.0);

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
#[derive(Clone, Copy)]
struct Class {
    label: &'static str,
    /// Rows per 100,000.
    weight: u32,
    protocol: Choices,
    service: Choices,
    flag: Choices,
    duration: Amount,
    src_bytes: Amount,
    dst_bytes: Amount,
    /// P(land = 1).
    land: f64,
    /// P(wrong_fragment > 0).
    wrong_fragment: f64,
    /// P(urgent > 0).
    urgent: f64,
    hot: Amount,
    /// P(num_failed_logins > 0).
    failed_logins: f64,
    logged_in: f64,
    compromised: Amount,
    /// P(root_shell = 1); also drives su_attempted and num_root.
    root: f64,
    /// File creations, shells and access files.
    files: Amount,
    /// P(is_guest_login = 1).
    guest: f64,
    count: Amount,
    srv_count: Amount,
    serror: Rate,
    rerror: Rate,
    same_srv: Rate,
    diff_srv: Rate,
    srv_diff_host: Rate,
    dst_host_count: Amount,
    dst_host_srv_count: Amount,
    dst_host_same_srv: Rate,
    dst_host_same_src_port: Rate,
}

const NORMAL: Class = Class {
    label: "normal",
    weight: 53_506,
    protocol: &[("tcp", 80), ("udp", 16), ("icmp", 4)],
    service: &[
        ("http", 40),
        ("smtp", 12),
        ("domain_u", 14),
        ("ftp_data", 10),
        ("ftp", 3),
        ("private", 5),
        ("other", 5),
        ("pop_3", 2),
        ("eco_i", 2),
        ("telnet", 2),
        ("auth", 2),
        ("finger", 1),
        ("imap4", 1),
        ("urp_i", 1),
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
    duration: amount(0.9, 40.0, 1.8),
    src_bytes: amount(0.02, 250.0, 1.2),
    dst_bytes: amount(0.15, 1800.0, 1.6),
    land: 0.0,
    wrong_fragment: 0.0,
    urgent: 0.0,
    hot: amount(0.93, 2.0, 0.8),
    failed_logins: 0.0005,
    logged_in: 0.71,
    compromised: amount(0.99, 1.0, 0.5),
    root: 0.001,
    files: amount(0.99, 1.0, 0.6),
    guest: 0.005,
    count: amount(0.0, 6.0, 1.0),
    srv_count: amount(0.0, 8.0, 1.0),
    serror: rate(0.02, 0.05),
    rerror: rate(0.04, 0.08),
    same_srv: rate(0.92, 0.12),
    diff_srv: rate(0.04, 0.06),
    srv_diff_host: rate(0.1, 0.15),
    dst_host_count: amount(0.0, 120.0, 0.8),
    dst_host_srv_count: amount(0.0, 180.0, 0.6),
    dst_host_same_srv: rate(0.8, 0.2),
    dst_host_same_src_port: rate(0.12, 0.2),
};

/// SYN-flood-like traffic: many half-open connections to one host.
const NEPTUNE: Class = Class {
    label: "neptune",
    weight: 32_717,
    protocol: &[("tcp", 1)],
    service: &[
        ("private", 50),
        ("other", 15),
        ("http", 5),
        ("telnet", 5),
        ("finger", 5),
        ("ftp", 5),
        ("smtp", 5),
        ("imap4", 5),
        ("pop_3", 5),
    ],
    flag: &[("S0", 80), ("REJ", 17), ("SH", 3)],
    duration: NONE,
    src_bytes: NONE,
    dst_bytes: NONE,
    logged_in: 0.0,
    hot: NONE,
    count: amount(0.0, 160.0, 0.6),
    srv_count: amount(0.0, 12.0, 0.7),
    serror: rate(0.85, 0.2),
    rerror: rate(0.12, 0.18),
    same_srv: rate(0.08, 0.08),
    diff_srv: rate(0.07, 0.05),
    srv_diff_host: rate(0.02, 0.03),
    dst_host_count: amount(0.0, 240.0, 0.05),
    dst_host_srv_count: amount(0.0, 15.0, 0.7),
    dst_host_same_srv: rate(0.06, 0.06),
    dst_host_same_src_port: rate(0.01, 0.02),
    ..NORMAL
};

const ATTACKS: [Class; 14] = [
    NEPTUNE,
    Class {
        label: "smurf",
        weight: 2_100,
        protocol: &[("icmp", 1)],
        service: &[("ecr_i", 1)],
        flag: &[("SF", 1)],
        duration: NONE,
        src_bytes: amount(0.0, 1032.0, 0.1),
        dst_bytes: NONE,
        logged_in: 0.0,
        hot: NONE,
        count: amount(0.0, 400.0, 0.4),
        srv_count: amount(0.0, 400.0, 0.4),
        serror: rate(0.0, 0.01),
        rerror: rate(0.0, 0.01),
        same_srv: rate(1.0, 0.02),
        diff_srv: rate(0.0, 0.01),
        srv_diff_host: rate(0.0, 0.02),
        dst_host_count: amount(0.0, 250.0, 0.05),
        dst_host_srv_count: amount(0.0, 250.0, 0.05),
        dst_host_same_srv: rate(1.0, 0.02),
        dst_host_same_src_port: rate(0.9, 0.2),
        ..NORMAL
    },
    Class {
        label: "back",
        weight: 759,
        protocol: &[("tcp", 1)],
        service: &[("http", 1)],
        flag: &[("SF", 85), ("RSTR", 15)],
        src_bytes: amount(0.0, 54_540.0, 0.05),
        dst_bytes: amount(0.1, 8_300.0, 0.3),
        hot: amount(0.0, 2.0, 0.1),
        compromised: amount(0.0, 1.0, 0.2),
        logged_in: 1.0,
        ..NORMAL
    },
    Class {
        label: "teardrop",
        weight: 708,
        protocol: &[("udp", 1)],
        service: &[("private", 1)],
        flag: &[("SF", 1)],
        duration: NONE,
        src_bytes: amount(0.0, 28.0, 0.01),
        dst_bytes: NONE,
        wrong_fragment: 1.0,
        logged_in: 0.0,
        count: amount(0.0, 60.0, 0.8),
        srv_count: amount(0.0, 60.0, 0.8),
        ..NORMAL
    },
    Class {
        label: "pod",
        weight: 160,
        protocol: &[("icmp", 1)],
        service: &[("ecr_i", 90), ("tim_i", 10)],
        flag: &[("SF", 1)],
        duration: NONE,
        src_bytes: amount(0.0, 1480.0, 0.01),
        dst_bytes: NONE,
        wrong_fragment: 1.0,
        logged_in: 0.0,
        ..NORMAL
    },
    Class {
        label: "satan",
        weight: 2_884,
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
        logged_in: 0.02,
        hot: NONE,
        count: amount(0.0, 3.0, 1.5),
        srv_count: amount(0.0, 2.0, 1.0),
        serror: rate(0.1, 0.2),
        rerror: rate(0.6, 0.3),
        same_srv: rate(0.2, 0.2),
        diff_srv: rate(0.7, 0.25),
        dst_host_count: amount(0.0, 200.0, 0.3),
        dst_host_srv_count: amount(0.0, 5.0, 1.0),
        dst_host_same_srv: rate(0.05, 0.1),
        ..NORMAL
    },
    Class {
        label: "ipsweep",
        weight: 2_857,
        protocol: &[("icmp", 90), ("tcp", 10)],
        service: &[("eco_i", 85), ("ecr_i", 10), ("private", 5)],
        flag: &[("SF", 95), ("REJ", 5)],
        duration: NONE,
        src_bytes: amount(0.05, 8.0, 0.3),
        dst_bytes: NONE,
        logged_in: 0.0,
        hot: NONE,
        count: amount(0.0, 1.5, 0.5),
        srv_count: amount(0.0, 20.0, 0.8),
        srv_diff_host: rate(0.9, 0.2),
        dst_host_count: amount(0.0, 40.0, 1.0),
        dst_host_srv_count: amount(0.0, 40.0, 1.0),
        dst_host_same_src_port: rate(0.9, 0.2),
        ..NORMAL
    },
    Class {
        label: "portsweep",
        weight: 2_327,
        protocol: &[("tcp", 95), ("icmp", 5)],
        service: &[("private", 85), ("other", 5), ("eco_i", 5), ("ftp_data", 5)],
        flag: &[
            ("RSTR", 45),
            ("REJ", 30),
            ("SF", 15),
            ("S0", 5),
            ("RSTOS0", 5),
        ],
        duration: amount(0.85, 1500.0, 2.0),
        src_bytes: amount(0.9, 1.0, 0.2),
        dst_bytes: NONE,
        logged_in: 0.0,
        hot: NONE,
        count: amount(0.0, 1.5, 0.5),
        srv_count: amount(0.0, 1.5, 0.5),
        rerror: rate(0.5, 0.4),
        same_srv: rate(0.5, 0.4),
        diff_srv: rate(0.4, 0.4),
        dst_host_count: amount(0.0, 60.0, 1.2),
        dst_host_srv_count: amount(0.0, 2.0, 0.6),
        dst_host_same_srv: rate(0.05, 0.1),
        dst_host_same_src_port: rate(0.8, 0.3),
        ..NORMAL
    },
    Class {
        label: "nmap",
        weight: 1_185,
        protocol: &[("tcp", 45), ("icmp", 35), ("udp", 20)],
        service: &[("private", 60), ("eco_i", 25), ("other", 15)],
        flag: &[("SF", 55), ("S0", 25), ("REJ", 10), ("SH", 10)],
        duration: NONE,
        src_bytes: amount(0.5, 6.0, 0.5),
        dst_bytes: NONE,
        logged_in: 0.0,
        hot: NONE,
        count: amount(0.0, 2.0, 0.8),
        srv_count: amount(0.0, 2.0, 0.8),
        diff_srv: rate(0.3, 0.3),
        dst_host_count: amount(0.0, 100.0, 1.0),
        dst_host_srv_count: amount(0.0, 10.0, 1.0),
        dst_host_same_srv: rate(0.2, 0.3),
        dst_host_same_src_port: rate(0.6, 0.4),
        ..NORMAL
    },
    // R2L and U2R: ordinary logged-in sessions with a few odd content features.
    Class {
        label: "warezclient",
        weight: 707,
        protocol: &[("tcp", 1)],
        service: &[("ftp_data", 70), ("ftp", 30)],
        duration: amount(0.5, 300.0, 1.5),
        src_bytes: amount(0.0, 800.0, 1.8),
        hot: amount(0.3, 8.0, 1.0),
        logged_in: 1.0,
        guest: 0.4,
        ..NORMAL
    },
    Class {
        label: "guess_passwd",
        weight: 42,
        protocol: &[("tcp", 1)],
        service: &[("telnet", 95), ("pop_3", 5)],
        flag: &[("RSTO", 60), ("SF", 40)],
        duration: amount(0.3, 2.0, 0.8),
        src_bytes: amount(0.0, 125.0, 0.1),
        dst_bytes: amount(0.0, 180.0, 0.2),
        failed_logins: 0.9,
        logged_in: 0.0,
        ..NORMAL
    },
    Class {
        label: "warezmaster",
        weight: 16,
        protocol: &[("tcp", 1)],
        service: &[("ftp", 80), ("ftp_data", 20)],
        duration: amount(0.1, 400.0, 1.5),
        dst_bytes: amount(0.0, 300_000.0, 1.5),
        hot: amount(0.4, 3.0, 0.8),
        logged_in: 1.0,
        guest: 0.5,
        ..NORMAL
    },
    Class {
        label: "buffer_overflow",
        weight: 24,
        protocol: &[("tcp", 1)],
        service: &[("telnet", 80), ("ftp_data", 20)],
        duration: amount(0.2, 100.0, 1.2),
        hot: amount(0.3, 2.0, 0.8),
        logged_in: 1.0,
        compromised: amount(0.5, 1.0, 0.5),
        root: 0.6,
        files: amount(0.5, 1.0, 0.6),
        ..NORMAL
    },
    Class {
        label: "rootkit",
        weight: 8,
        protocol: &[("tcp", 80), ("udp", 20)],
        service: &[("telnet", 60), ("ftp_data", 20), ("private", 20)],
        duration: amount(0.3, 60.0, 1.5),
        hot: amount(0.5, 1.0, 0.5),
        logged_in: 0.8,
        root: 0.25,
        files: amount(0.6, 1.0, 0.5),
        ..NORMAL
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

/// A rate close to `base` (the `srv_` and `dst_host_` twins of a rate).
fn near(rng: &mut StdRng, base: f64) -> f64 {
    draw_rate(rng, rate(base, 0.03))
}

fn draw_count(rng: &mut StdRng, a: Amount, max: f64) -> f64 {
    draw_amount(rng, a).round().clamp(0.0, max)
}

fn flip(rng: &mut StdRng, p: f64) -> f64 {
    f64::from(u8::from(rng.r#gen::<f64>() < p))
}

/// The 41 feature columns in NSL-KDD's order: name and whether it holds integers (the
/// three string columns are marked by [`STRINGS`]).
const COLUMNS: [(&str, bool); 41] = [
    ("duration", true),
    ("protocol_type", false),
    ("service", false),
    ("flag", false),
    ("src_bytes", true),
    ("dst_bytes", true),
    ("land", true),
    ("wrong_fragment", true),
    ("urgent", true),
    ("hot", true),
    ("num_failed_logins", true),
    ("logged_in", true),
    ("num_compromised", true),
    ("root_shell", true),
    ("su_attempted", true),
    ("num_root", true),
    ("num_file_creations", true),
    ("num_shells", true),
    ("num_access_files", true),
    ("num_outbound_cmds", true),
    ("is_host_login", true),
    ("is_guest_login", true),
    ("count", true),
    ("srv_count", true),
    ("serror_rate", false),
    ("srv_serror_rate", false),
    ("rerror_rate", false),
    ("srv_rerror_rate", false),
    ("same_srv_rate", false),
    ("diff_srv_rate", false),
    ("srv_diff_host_rate", false),
    ("dst_host_count", true),
    ("dst_host_srv_count", true),
    ("dst_host_same_srv_rate", false),
    ("dst_host_diff_srv_rate", false),
    ("dst_host_same_src_port_rate", false),
    ("dst_host_srv_diff_host_rate", false),
    ("dst_host_serror_rate", false),
    ("dst_host_srv_serror_rate", false),
    ("dst_host_rerror_rate", false),
    ("dst_host_srv_rerror_rate", false),
];

/// Positions of the string columns in [`COLUMNS`].
const STRINGS: [usize; 3] = [1, 2, 3];

/// The class names of the profile (normal first, then the attacks), for tests and docs.
pub fn class_names() -> Vec<&'static str> {
    std::iter::once(NORMAL.label)
        .chain(ATTACKS.iter().map(|c| c.label))
        .collect()
}

/// One row's 38 numeric values (in [`COLUMNS`] order, strings left out) and 3 strings.
fn row(rng: &mut StdRng, class: &Class) -> ([f64; 38], [&'static str; 3]) {
    let attack = class.label != NORMAL.label;
    let stealth = attack && rng.r#gen::<f64>() < STEALTH;
    let pick = |rng: &mut StdRng| -> &Class {
        if stealth || (attack && rng.r#gen::<f64>() < BLUR) {
            &NORMAL
        } else {
            class
        }
    };
    let protocol = pick(rng).protocol;
    let protocol = choose(rng, protocol);
    let service = pick(rng).service;
    let service = choose(rng, service);
    let flag = pick(rng).flag;
    let flag = choose(rng, flag);
    let strings = [protocol, service, flag];
    let mut v = [0.0f64; 38];
    let c = pick(rng);
    v[0] = draw_amount(rng, c.duration).round();
    let c = pick(rng);
    v[1] = draw_amount(rng, c.src_bytes).round();
    let c = pick(rng);
    v[2] = draw_amount(rng, c.dst_bytes).round();
    let c = pick(rng);
    v[3] = flip(rng, c.land);
    v[4] = flip(rng, c.wrong_fragment) * if rng.r#gen::<bool>() { 1.0 } else { 3.0 };
    v[5] = flip(rng, c.urgent);
    let c = pick(rng);
    v[6] = draw_count(rng, c.hot, 77.0);
    let c = pick(rng);
    v[7] = flip(rng, c.failed_logins) * rng.gen_range(1..=4) as f64;
    let c = pick(rng);
    v[8] = flip(rng, c.logged_in);
    let c = pick(rng);
    v[9] = draw_count(rng, c.compromised, 884.0);
    let c = pick(rng);
    v[10] = flip(rng, c.root);
    v[11] = flip(rng, c.root * 0.3);
    v[12] = v[10] * draw_count(rng, amount(0.3, 2.0, 0.8), 993.0);
    let c = pick(rng);
    v[13] = draw_count(rng, c.files, 28.0);
    v[14] = flip(rng, c.root * 0.5);
    v[15] = draw_count(rng, c.files, 8.0);
    v[16] = 0.0; // num_outbound_cmds: constant in the real set too
    v[17] = 0.0; // is_host_login: all but one row in the real set
    let c = pick(rng);
    v[18] = flip(rng, c.guest);
    let c = pick(rng);
    v[19] = draw_count(rng, c.count, 511.0);
    let c = pick(rng);
    v[20] = draw_count(rng, c.srv_count, 511.0);
    let c = pick(rng);
    v[21] = draw_rate(rng, c.serror);
    v[22] = near(rng, v[21]);
    let c = pick(rng);
    v[23] = draw_rate(rng, c.rerror);
    v[24] = near(rng, v[23]);
    let c = pick(rng);
    v[25] = draw_rate(rng, c.same_srv);
    let c = pick(rng);
    v[26] = draw_rate(rng, c.diff_srv);
    let c = pick(rng);
    v[27] = draw_rate(rng, c.srv_diff_host);
    let c = pick(rng);
    v[28] = draw_count(rng, c.dst_host_count, 255.0);
    let c = pick(rng);
    v[29] = draw_count(rng, c.dst_host_srv_count, 255.0);
    let c = pick(rng);
    v[30] = draw_rate(rng, c.dst_host_same_srv);
    v[31] = near(rng, v[26]);
    let c = pick(rng);
    v[32] = draw_rate(rng, c.dst_host_same_src_port);
    v[33] = near(rng, v[27] * 0.5);
    v[34] = near(rng, v[21]);
    v[35] = near(rng, v[22]);
    v[36] = near(rng, v[23]);
    v[37] = near(rng, v[24]);
    (v, strings)
}

/// Generates `rows` NSL-KDD-like records from `seed`.
pub fn nsl_kdd(rows: usize, seed: u64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut numeric: Vec<Vec<f64>> = (0..38).map(|_| Vec::with_capacity(rows)).collect();
    let mut strings: Vec<Vec<&str>> = (0..3).map(|_| Vec::with_capacity(rows)).collect();
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let mut pick = rng.gen_range(0..100_000u32);
        let mut class = &NORMAL;
        for candidate in std::iter::once(&NORMAL).chain(ATTACKS.iter()) {
            if pick < candidate.weight {
                class = candidate;
                break;
            }
            pick -= candidate.weight;
        }
        let (values, texts) = row(&mut rng, class);
        for (column, value) in numeric.iter_mut().zip(values) {
            column.push(value);
        }
        for (column, text) in strings.iter_mut().zip(texts) {
            column.push(text);
        }
        labels.push(class.label);
    }
    let mut numeric = numeric.into_iter();
    let mut strings = strings.into_iter();
    let mut columns: Vec<Column> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, integer))| {
            if STRINGS.contains(&i) {
                Column::new((*name).into(), strings.next().unwrap_or_default())
            } else {
                let values = numeric.next().unwrap_or_default();
                if *integer {
                    let ints: Vec<i64> = values.into_iter().map(|v| v as i64).collect();
                    Column::new((*name).into(), ints)
                } else {
                    Column::new((*name).into(), values)
                }
            }
        })
        .collect();
    columns.push(Column::new("label".into(), labels));
    let frame = DataFrame::new(rows, columns).expect("columns have equal length");
    Table::from_frame(format!("synthetic:nsl-kdd(rows={rows},seed={seed})"), frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_add_up_to_a_hundred_thousand() {
        let total: u32 = NORMAL.weight + ATTACKS.iter().map(|c| c.weight).sum::<u32>();
        assert_eq!(total, 100_000);
        assert!(
            ATTACKS.iter().any(|c| c.weight < 100),
            "a class under 0.1 %"
        );
    }

    #[test]
    fn forty_one_columns_deterministic_with_nsl_kdd_shares() {
        let a = nsl_kdd(20_000, 3);
        assert!(a.frame.equals(&nsl_kdd(20_000, 3).frame));
        assert!(!a.frame.equals(&nsl_kdd(20_000, 4).frame));
        assert_eq!(a.frame.width(), 42);
        let strings = a
            .frame
            .columns()
            .iter()
            .filter(|c| c.dtype() == &DataType::String)
            .count();
        assert_eq!(strings, 4, "protocol_type, service, flag and the label");
        let labels = a.frame.column("label").unwrap().str().unwrap().clone();
        let share = |names: &[&str]| {
            labels
                .iter()
                .filter(|v| v.is_some_and(|v| names.contains(&v)))
                .count() as f64
                / 20_000.0
        };
        assert!((share(&["normal"]) - 0.535).abs() < 0.015);
        let dos = share(&["neptune", "smurf", "back", "teardrop", "pod"]);
        assert!((dos - 0.364).abs() < 0.015, "{dos}");
        let probe = share(&["satan", "ipsweep", "portsweep", "nmap"]);
        assert!((probe - 0.093).abs() < 0.01, "{probe}");
        let r2l = share(&["warezclient", "guess_passwd", "warezmaster"]);
        assert!((r2l - 0.0077).abs() < 0.003, "{r2l}");
        let u2r = share(&["buffer_overflow", "rootkit"]);
        assert!(u2r < 0.001, "{u2r}");
    }

    #[test]
    fn shipped_schema_fits_and_makes_one_class_per_name() {
        use crate::data::{Schema, dataset_from_table};
        let schema = Schema::from_file(std::path::Path::new("data_schema/nsl-kdd.yaml")).unwrap();
        assert_eq!(schema.columns.len(), 41);
        let table = nsl_kdd(30_000, 42);
        let report = crate::data::validate::validate(&table, &schema);
        let data = dataset_from_table(&table, &schema).unwrap_or_else(|e| panic!("{e}"));
        assert!(data.features.iter().all(|v| v.is_finite()), "{report:?}");
        let mut names = class_names();
        names.sort_unstable();
        // Every name but perhaps the rarest (8 in 100,000) is drawn in 30,000 rows.
        assert!(data.classes.len() >= 14, "{:?}", data.classes.names);
        assert!(
            data.classes
                .names
                .iter()
                .all(|n| names.contains(&n.as_str()))
        );
        let normal = data.classes.id("normal").unwrap() as usize;
        assert_eq!(data.classes.normal.iter().filter(|&&n| n).count(), 1);
        assert!(data.classes.normal[normal]);
        // Inferring a schema from the rows proposes the same multi-class label.
        let options = crate::data::infer::InferOptions {
            name: "nsl".into(),
            ..Default::default()
        };
        let inferred = crate::data::infer::infer(&table, &options).unwrap();
        let yaml = inferred.to_yaml();
        assert!(yaml.contains("task: multiclass"), "{yaml}");
        assert!(yaml.contains("negative: [normal]"), "{yaml}");
        let again = Schema::from_yaml_str(std::path::Path::new("i.yaml"), &yaml).unwrap();
        assert!(again.label.is_multiclass());
    }
}
