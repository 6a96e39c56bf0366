//! The serve soak: 64 connections for `NETSEC_SOAK_SECONDS` (30 in the test suite, where
//! it shares two cores with every other test; the README's figures are from a 60 s run) on
//! 127.0.0.1 while the model pointer flips every second between two models and bad bodies
//! are mixed in. Every good request is answered 200, every bad one 4xx, none 5xx; the
//! server's resident memory, sampled each second, does not grow: the maximum of the last
//! 10 s is within 10 % of the maximum of the first 10 s. The figures are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::http::request;
use crate::common::s;
use crate::serve_http::{JSON, Server, metric, models, publish, records};
use serde_json::Value;

const CONNECTIONS: usize = 64;

/// Resident set size of process `pid` in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn soak_64_connections_with_a_flipping_pointer_and_bad_bodies() {
    let seconds: u64 = std::env::var("NETSEC_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(20);
    let models = models();
    let bytes = [
        (std::fs::read(&models.forest.0).unwrap(), &models.forest.1),
        (std::fs::read(&models.tree.0).unwrap(), &models.tree.1),
    ];
    let store = tempfile::tempdir().unwrap();
    publish(store.path(), 1, &bytes[0].0, bytes[0].1);
    let source = format!("file://{}", s(store.path()));
    let server = Server::start(&source, &["--reload-interval", "200ms"], None);
    let addr = server.addr;
    let pid = server.child.id();

    let stop = Arc::new(AtomicBool::new(false));
    let good_ok = Arc::new(AtomicUsize::new(0));
    let good_failed = Arc::new(AtomicUsize::new(0));
    let bad_4xx = Arc::new(AtomicUsize::new(0));
    let server_errors = Arc::new(AtomicUsize::new(0));
    let good = Value::Array(records(5)).to_string();
    let bad = [
        "{\"rows\": [{\"SFH\": \"not a number\"}]}".to_owned(),
        "[1, 2, 3".to_owned(),
        "{}".to_owned(),
    ];
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (stop, good_ok, good_failed, bad_4xx, server_errors) = (
                stop.clone(),
                good_ok.clone(),
                good_failed.clone(),
                bad_4xx.clone(),
                server_errors.clone(),
            );
            let (good, bad) = (good.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let is_bad = n % 10 == 0;
                    let body = if is_bad {
                        &bad[n / 10 % bad.len()]
                    } else {
                        &good
                    };
                    match request(addr, "POST", "/predict", &[JSON], body.as_bytes()) {
                        Ok(a) if a.status >= 500 => {
                            server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(a) if is_bad && (400..500).contains(&a.status) => {
                            bad_4xx.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(a) if !is_bad && a.status == 200 => {
                            good_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("unexpected answer (bad body: {is_bad}): {other:?}");
                            good_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    // Each second: flip the pointer, sample the server's memory.
    let started = Instant::now();
    let mut rss = Vec::new();
    for second in 1..=seconds {
        let (model, sha) = &bytes[second as usize % 2];
        publish(store.path(), second + 1, model, sha);
        let next = started + Duration::from_secs(second);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        rss.push(rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let m = crate::common::http::get(addr, "/metrics", &[]).text();
    let reloads = metric(&m, r#"netsec_model_reloads_total{result="ok"}"#).unwrap();
    let refused = metric(&m, r#"netsec_model_reloads_total{result="failed"}"#).unwrap();
    let first = *rss[..10].iter().max().unwrap();
    let last = *rss[rss.len() - 10..].iter().max().unwrap();
    let (ok, bad_answered) = (
        good_ok.load(Ordering::Relaxed),
        bad_4xx.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {seconds} s, {CONNECTIONS} connections: {ok} good answered 200 ({:.0}/s), \
         {bad_answered} bad answered 4xx, {} failed, {} 5xx; {reloads} reloads, {refused} \
         refused; RSS max first 10 s {first} KiB, last 10 s {last} KiB ({:+.1} %); load {}",
        ok as f64 / elapsed,
        good_failed.load(Ordering::Relaxed),
        server_errors.load(Ordering::Relaxed),
        (last as f64 / first as f64 - 1.0) * 100.0,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    assert_eq!(good_failed.load(Ordering::Relaxed), 0);
    assert_eq!(server_errors.load(Ordering::Relaxed), 0);
    assert!(ok > 0 && bad_answered > 0);
    assert!(
        reloads >= (seconds / 2) as f64,
        "the pointer flips were followed: {reloads}"
    );
    assert_eq!(refused, 0.0);
    assert!(
        (last as f64) <= first as f64 * 1.10,
        "memory grew: {first} KiB -> {last} KiB ({rss:?})"
    );
}
