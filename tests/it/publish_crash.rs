//! The publish crash test: `netsec publish` killed (SIGKILL) at seeded random moments, 200
//! times, alternating between two models, while `netsec serve` polls the pointer on a real
//! S3-compatible server (moto). After every kill the pointer parses and names a model whose
//! bytes have its sha256, and `serve` never loaded anything it could not verify.
//!
//! The seed is printed; `NETSEC_CRASH_SEED=<n>` repeats a run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::http::get;
use crate::common::s3_server::{Kind, S3Server};
use crate::common::{Guard, netsec_command, s};
use crate::publish_s3::{Serve, netsec, pointer, promote, with_guard_env, workspace};

const KILLS: usize = 200;

/// A small deterministic generator (splitmix64): the test needs no random-number crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn publish_killed_at_random_never_leaves_a_pointer_to_a_partial_model() {
    publish_killed_at_random(None);
}

/// The same with publications that write the pointer first: a kill before the model's
/// upload leaves a pointer to a model that is not there.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_publish_order() {
    publish_killed_at_random(Some(Guard::PublishOrder));
}

fn publish_killed_at_random(guard: Option<Guard>) {
    let seed = std::env::var("NETSEC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("publish crash test: seed {seed} (NETSEC_CRASH_SEED={seed} repeats it)");
    let mut rng = SplitMix(seed);

    let server = S3Server::start(Kind::Moto);
    server.create_bucket("crash");
    let env = with_guard_env(server.env(), guard);
    let ws = workspace();
    let state = ws.path().join("state");
    let store = "s3://crash/p";
    // Two aliases on two models: `champion` (the logistic regression) and `staging` (the
    // stump), so that consecutive publications write different pointers.
    promote(ws.path(), "stump", &["--publish", "--store", store], &env).expect_code(0);
    promote(ws.path(), "logistic", &[], &env).expect_code(0);
    let staging = ws.path().join("staging.yaml");
    std::fs::write(
        &staging,
        std::fs::read_to_string(ws.path().join("policy.yaml"))
            .unwrap()
            .replace("alias: champion", "alias: staging"),
    )
    .unwrap();
    netsec(
        &[
            "promote",
            "--best",
            "stump",
            "--policy",
            s(&staging),
            "--state-dir",
            s(&state),
        ],
        &env,
    )
    .expect_code(0);
    let serve = Serve::start("s3://crash/p/phish", &env);

    // How long one whole publication takes here: the kills fall within it.
    let publish = |model: &str| {
        let mut command = netsec_command();
        command
            .args(["publish", model, "--store", store, "--state-dir", s(&state)])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let started = Instant::now();
    assert!(publish("phish@champion").status().unwrap().success());
    let whole = started.elapsed();
    eprintln!("one publication: {whole:?}");

    // The two models' sha256s (the stump is `staging`, the logistic regression `champion`).
    let shas: Vec<String> = ["phish@staging", "phish@champion"]
        .iter()
        .map(|m| {
            assert!(publish(m).status().unwrap().success());
            pointer(&server, "crash", "p")["sha256"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut completed = 0;
    for i in 0..KILLS {
        let model = if i % 2 == 0 {
            "phish@staging"
        } else {
            "phish@champion"
        };
        // Its files go first, unless the pointer names them (a killed publication left it
        // on this model): each publication then uploads model and metadata again, so the
        // kills land in uploads, not only around the one PUT of the pointer.
        let sha = &shas[i % 2];
        if pointer(&server, "crash", "p")["sha256"] != sha.as_str() {
            server.delete("crash", &format!("p/phish/{sha}/model.json"));
            server.delete("crash", &format!("p/phish/{sha}/metadata.json"));
        }
        let delay = Duration::from_micros(rng.next() % (whole.as_micros() as u64 * 2 + 1));
        let mut child = publish(model).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        // Whatever the moment: the pointer parses and names a whole, verified model.
        let p = pointer(&server, "crash", "p");
        assert!(
            [1, 2].contains(&p["version"].as_i64().unwrap()),
            "kill {i} (seed {seed}): {p}"
        );
    }
    eprintln!("{KILLS} kills, {completed} publications finished before their kill");

    // serve followed the pointer and never had to refuse a model.
    let last = pointer(&server, "crash", "p");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(serve.addr, "/model", &[]).json()["sha256"] != last["sha256"] {
        assert!(
            Instant::now() < deadline,
            "serve does not follow the pointer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = get(serve.addr, "/metrics", &[]).text();
    assert_eq!(
        metric(&m, r#"netsec_model_reloads_total{result="failed"}"#),
        Some(0.0),
        "seed {seed}: {m}"
    );
    assert!(
        metric(&m, r#"netsec_model_reloads_total{result="ok"}"#).unwrap() >= 1.0,
        "{m}"
    );
}
