//! The Grafana dashboard and Prometheus config in `dashboards/` match what `netsec serve`
//! really exports: a real server answers a few requests, and every metric named in every
//! PromQL expression of the dashboard (panels and template variables) is in its /metrics.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use crate::common::http::{get, post, serve_address};
use crate::common::{netsec, netsec_command, repo_file, s};
use serde_json::Value;

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Metric names in a PromQL expression: identifiers outside label matchers `{...}`,
/// range selectors `[...]`, strings and grouping lists (`by (...)`), that are not
/// functions, aggregations, keywords, numbers or Grafana variables (`$job`, `$__range`).
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let (mut i, mut braces, mut brackets) = (0, 0usize, 0usize);
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || ".+-".contains(chars[i]))
                {
                    // An exponent sign belongs to the number; any other sign ends it.
                    if "+-".contains(chars[i]) && !matches!(chars[i - 1], 'e' | 'E') {
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i]))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if braces > 0 || brackets > 0 {
                    continue;
                }
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word.as_str())
                {
                    skip_group = true;
                } else if next != Some(&'(') && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn the_parser_finds_metric_names_only() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job", route="x{y}"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        metric_names("time() - max by (instance) (b{c=\"d\"}) / on (x) group_left (y) e offset 5m"),
        ["b", "e"]
    );
    assert_eq!(metric_names("f{job=~\"$job\"} * 1e-3"), ["f"]);
}

/// Every PromQL expression of the dashboard: panel targets and query variables (whose
/// `label_values(metric, label)` form names the metric as its first argument).
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("target expr").to_owned());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().expect("variable query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(metric, _)| metric.to_owned())
                .expect("label_values(metric, label)");
            out.push(inner);
        }
    }
    out
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(model: &str) -> Server {
    let mut child = netsec_command()
        .args([
            "serve",
            "--model",
            model,
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            // A closed port: the log's series are exported (its writes are dropped).
            "--prediction-log",
            "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = serve_address(&mut child).expect("netsec serve prints its address");
    Server { child, addr }
}

/// Exported sample names (with `_bucket`, `_sum`, `_count`) and the `# TYPE` of each
/// family.
fn exported(text: &str) -> (BTreeSet<String>, Vec<(String, String)>) {
    let mut samples = BTreeSet::new();
    let mut types = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.push((name.to_owned(), kind.to_owned()));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    (samples, types)
}

#[test]
fn every_dashboard_metric_is_exported_by_netsec_serve() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("tree.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: tree\ndata: {{ source: synthetic, profile: phishing, rows: 1500, seed: 5, schema: {} }}\n\
             split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\n\
             models:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [6] }}\n",
            s(&repo_file("data_schema/phishing.yaml"))
        ),
    )
    .unwrap();
    let model = dir.path().join("model.json");
    let csv = dir.path().join("rows.csv");
    netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&dir.path().join("state")),
        "--model-out",
        s(&model),
        "-q",
    ])
    .expect_code(0);
    netsec(&["data", "synth", "--rows", "20", "-o", s(&csv)]).expect_code(0);

    let server = serve(s(&model));
    let rows = std::fs::read(&csv).unwrap();
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200);
    assert_eq!(get(server.addr, "/readyz", &[]).status, 200);
    let csv_header = ("Content-Type", "text/csv");
    assert_eq!(
        post(server.addr, "/predict/csv", &[csv_header], &rows).status,
        200
    );
    let json_header = ("Content-Type", "application/json");
    assert_eq!(
        post(server.addr, "/predict", &[json_header], b"{not json").status,
        400
    );
    assert_eq!(get(server.addr, "/no-such-route", &[]).status, 404);
    let metrics = get(server.addr, "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    let (samples, types) = exported(&metrics.text());

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("dashboards/netsec-serve.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert_eq!(
        dashboard["templating"]["list"][0]["type"], "datasource",
        "the data source is a template variable"
    );
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in `{expr}`");
        for name in names {
            assert!(
                samples.contains(&name),
                "`{name}` (in `{expr}`) is not exported by netsec serve; it exports {samples:?}"
            );
            // A family's samples: histograms add _bucket/_sum/_count to the family name.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    types
                        .iter()
                        .any(|(n, k)| n == base && k == "histogram")
                        .then(|| base.to_owned())
                })
                .unwrap_or(name);
            assert!(
                types.iter().any(|(n, _)| *n == family),
                "`{family}` has no # TYPE line"
            );
            used.insert(family);
        }
    }
    // The panels the dashboard promises: traffic, latency, predictions, model, reloads.
    for family in [
        "netsec_http_requests_total",
        "netsec_http_request_duration_seconds",
        "netsec_predictions_total",
        "netsec_model_info",
        "netsec_model_reloads_total",
    ] {
        assert!(used.contains(family), "the dashboard does not use {family}");
    }

    let prometheus: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_file("dashboards/prometheus.yml")).unwrap(),
    )
    .expect("prometheus.yml is YAML");
    let jobs = prometheus["scrape_configs"]
        .as_array()
        .expect("scrape_configs");
    assert!(jobs.iter().any(|j| j["metrics_path"] == "/metrics"));
}
