//! The files that run netsec elsewhere — Kubernetes manifests in `deploy/k8s/`, GitHub
//! workflows in `.github/workflows/`, the `Containerfile` — parse, and every netsec
//! command they use is one the CLI accepts (manifests: the complete argument list, parsed
//! by netsec's own clap definitions; workflows: the subcommands named in `run:` scripts).
//! `scripts/test` also runs actionlint on the workflows.

use std::path::{Path, PathBuf};

use crate::common::repo_file;
use clap::{CommandFactory, Parser};
use netsec::cli::Cli;
use serde_json::Value;

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_file(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{ext} files in {dir}");
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Whether `args` (after `netsec`) parse.
fn accepted(args: &[String]) -> Result<(), String> {
    Cli::try_parse_from(std::iter::once("netsec".to_owned()).chain(args.iter().cloned()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The pod specs of a workload: Deployment/Job (`spec.template`) or CronJob
/// (`spec.jobTemplate.spec.template`).
fn pod_spec(doc: &Value) -> Option<&Value> {
    let spec = &doc["spec"];
    [
        &spec["template"]["spec"],
        &spec["jobTemplate"]["spec"]["template"]["spec"],
    ]
    .into_iter()
    .find(|s| s.is_object())
}

#[test]
fn kubernetes_manifests_parse_and_their_netsec_args_are_accepted() {
    let mut checked = 0;
    for path in files("deploy/k8s", "yaml") {
        let name = path.display().to_string();
        for doc in documents(&path) {
            assert!(doc["apiVersion"].is_string(), "{name}: apiVersion");
            assert!(doc["metadata"]["name"].is_string(), "{name}: metadata.name");
            let Some(pod) = pod_spec(&doc) else {
                continue;
            };
            for container in pod["containers"].as_array().expect("containers") {
                let image = container["image"].as_str().unwrap_or_default();
                if !image.contains("netsec") {
                    continue;
                }
                // The image's entrypoint is netsec; $(VAR) is expanded by Kubernetes from
                // the container's env, so every variable used must be declared there.
                let env: Vec<&str> = container["env"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
                    .unwrap_or_default();
                let args: Vec<String> = container["args"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: netsec container without args"))
                    .iter()
                    .map(|a| expand(a.as_str().expect("string arg"), &env, &name))
                    .collect();
                if let Err(e) = accepted(&args) {
                    panic!("{name}: netsec {args:?} is refused:\n{e}");
                }
                checked += 1;
                for secret in secret_refs(container) {
                    assert!(
                        secret["name"].is_string() && secret["key"].is_string(),
                        "{name}: secretKeyRef needs name and key: {secret}"
                    );
                }
                if let Some(port) = container["ports"][0]["containerPort"].as_u64() {
                    let bind = args.iter().skip_while(|a| *a != "--bind").nth(1);
                    assert!(
                        bind.is_some_and(|b| b.ends_with(&format!(":{port}"))),
                        "{name}: --bind {bind:?} and containerPort {port} differ"
                    );
                }
                for probe in ["readinessProbe", "livenessProbe"] {
                    if let Some(path) = container[probe]["httpGet"]["path"].as_str() {
                        assert!(
                            ["/readyz", "/healthz"].contains(&path),
                            "{name}: {probe} on {path}"
                        );
                    }
                }
            }
        }
    }
    // sweep shard, serve and the retrain CronJob.
    assert!(checked >= 3, "only {checked} netsec containers checked");
}

/// `$(VAR)` replaced by a sample value, after checking that VAR is in the container's env.
fn expand(arg: &str, env: &[&str], file: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(')').expect("closing )") + start;
        let var = &rest[start + 2..end];
        assert!(
            env.contains(&var),
            "{file}: $({var}) is not in the container's env"
        );
        out.push('0');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn secret_refs(container: &Value) -> Vec<&Value> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|v| &v["valueFrom"]["secretKeyRef"])
                .filter(|r| r.is_object())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn workflows_parse_and_name_only_existing_netsec_commands() {
    let cli = Cli::command();
    let mut named = 0;
    for path in files(".github/workflows", "yml") {
        let name = path.display().to_string();
        let docs = documents(&path);
        let workflow = &docs[0];
        assert!(workflow["name"].is_string(), "{name}: name");
        assert!(workflow["on"].is_object(), "{name}: `on` triggers");
        let jobs = workflow["jobs"].as_object().expect("jobs");
        for (job_name, job) in jobs {
            assert!(job["runs-on"].is_string(), "{name}: {job_name}: runs-on");
            if let Some(need) = job["needs"].as_str() {
                assert!(jobs.contains_key(need), "{name}: {job_name} needs {need}");
            }
            for step in job["steps"].as_array().expect("steps") {
                let (uses, run) = (step["uses"].as_str(), step["run"].as_str());
                assert!(
                    uses.is_some() != run.is_some(),
                    "{name}: {job_name}: a step has `uses` or `run`: {step}"
                );
                for words in run.map(netsec_invocations).unwrap_or_default() {
                    check_subcommand(&cli, &words, &name);
                    named += 1;
                }
            }
        }
    }
    // retrain, sweep (run + collect), promote (run), ci (none).
    assert!(
        named >= 4,
        "only {named} netsec commands found in workflows"
    );
}

/// The words after each `netsec` in a shell script, up to the first option or quoted word:
/// `bin/netsec experiment run "$GRID"` gives `["experiment", "run"]`.
fn netsec_invocations(script: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if *word == "netsec" || word.ends_with("/netsec") {
                let sub: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                    .take(2)
                    .map(|w| (*w).to_owned())
                    .collect();
                if !sub.is_empty() {
                    found.push(sub);
                }
            }
        }
    }
    found
}

fn check_subcommand(cli: &clap::Command, words: &[String], file: &str) {
    let command = cli
        .find_subcommand(&words[0])
        .unwrap_or_else(|| panic!("{file}: `netsec {}` is not a netsec command", words[0]));
    if command.has_subcommands() {
        let sub = words.get(1).map(String::as_str).unwrap_or_default();
        assert!(
            command.find_subcommand(sub).is_some(),
            "{file}: `netsec {} {sub}` is not a netsec command",
            words[0]
        );
    }
}

#[test]
fn containerfile_builds_locked_and_runs_netsec_as_a_non_root_user() {
    let text = std::fs::read_to_string(repo_file("Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let has = |prefix: &str, needle: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    };
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    assert!(has("FROM ", "rust:1.95"));
    assert!(has("RUN ", "cargo build --locked --release"));
    assert!(has("USER ", "10001"));
    assert!(has("EXPOSE ", "8080"));
    assert!(has("ENTRYPOINT ", "netsec"));
    // Every directory the build or the image needs exists.
    for line in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(repo_file(source).exists(), "COPY {source}: missing");
        }
    }
}
