//! The import arrows between stages, checked: every `crate::…` path in `src/` is mapped from
//! the stage of its file to the stage it names, and each arrow must be one that
//! `DESIGN.md`'s table allows. A type that needs another arrow is in the wrong place.
//!
//! Only paths through `crate::` are read: stages are folders directly under `src/`, so a
//! `super::` path stays inside its stage (no file in `src/` climbs out with
//! `super::super::`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Stages with folders of their own, in the order data flows (and `commands`, `pipeline`
/// that drive them).
const STAGES: [&str; 12] = [
    "commands", "pipeline", "sweep", "tracking", "registry", "storage", "serve", "export",
    "ingest", "config", "data", "models",
];

/// Shared helpers: any stage may use them.
const HELPERS: [&str; 8] = [
    "fsutil",
    "db",
    "state",
    "exit",
    "model_file",
    "logging",
    "cli",
    "shared",
];

/// What `from` may import besides itself and the shared helpers (DESIGN.md's table).
fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        // `cli` is the clap half of the commands; `exit` classifies every error type of the
        // crate, so both see every stage.
        "commands" | "cli" | "exit" => &STAGES,
        "pipeline" => &[
            "sweep", "registry", "tracking", "storage", "ingest", "data", "models", "config",
        ],
        "sweep" => &["models", "data", "config"],
        // The best model goes to MLflow as a logged model, whose graph is its ONNX export.
        "tracking" => &["sweep", "models", "data", "config", "export"],
        "registry" => &["models", "data", "config"],
        "serve" => &["models", "data", "storage", "ingest"],
        // An export reads a model file and writes the same model in another form.
        "export" => &["models", "data"],
        "ingest" => &["data", "config"],
        // The model file records what a model was made of: its data, its algorithm and the
        // grid's split, as `config` does.
        "config" | "model_file" => &["data", "models"],
        _ => &[],
    }
}

/// A helper other than those above imports only helpers.
fn helper_may_import(from: &str, to: &str) -> bool {
    HELPERS.contains(&to) && (from != "shared" || to == "shared" || to == "exit")
}

/// The stage (or helper) a file under `src/` belongs to: its folder, or its own name for a
/// top-level file; `None` for `lib.rs`, `main.rs` and this test.
fn stage_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "architecture" => None,
        other => Some(other.to_owned()),
    }
}

/// The top-level modules that `crate::` paths in `code` name, with their line numbers.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let line = line.split(" //").next().unwrap_or(line);
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a::X, b};`: every top-level member of the group.
                let mut depth = 0;
                let mut member = String::new();
                let mut members = Vec::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => members.push(std::mem::take(&mut member)),
                        _ => {}
                    }
                    member.push(c);
                }
                members.push(member);
                for m in members {
                    let m = m.trim_start_matches(',').trim();
                    found.push((n + 1, ident(m)));
                }
            } else {
                found.push((n + 1, ident(after)));
            }
        }
    }
    found.retain(|(_, m)| !m.is_empty());
    found
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("reading src/").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every arrow in `src/` that the design does not allow, as `from -> to (file:line)`.
pub(crate) fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let known: BTreeSet<&str> = STAGES.iter().chain(HELPERS.iter()).copied().collect();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let Some(from) = stage_of(relative) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("reading a source file");
        for (line, to) in crate_paths(&code) {
            if to == from || !known.contains(to.as_str()) {
                continue;
            }
            let ok = if HELPERS.contains(&from.as_str()) {
                helper_may_import(&from, &to) || allowed(&from).contains(&to.as_str())
            } else {
                HELPERS.contains(&to.as_str()) || allowed(&from).contains(&to.as_str())
            };
            if !ok {
                found.push(format!(
                    "{from} -> {to} (src/{}:{line})",
                    relative.display()
                ));
            }
        }
    }
    found
}

#[test]
fn imports_follow_the_design() {
    let found = violations();
    assert!(
        found.is_empty(),
        "{} imports that DESIGN.md does not allow:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn reads_paths_and_groups() {
    let code = "use crate::data::Schema;\n\
                // crate::tracking in a comment\n\
                use crate::{sweep::plan, models::{A, B}, config};\n\
                let x = crate::exit::BAD_INPUT; // crate::serve\n\
                $crate::ingest; netsec_crate::storage;\n";
    let found = crate_paths(code);
    let found: Vec<(usize, &str)> = found.iter().map(|(n, m)| (*n, m.as_str())).collect();
    assert_eq!(
        found,
        [
            (1, "data"),
            (3, "sweep"),
            (3, "models"),
            (3, "config"),
            (4, "exit")
        ]
    );
    assert_eq!(
        stage_of(Path::new("sweep/plan.rs")).as_deref(),
        Some("sweep")
    );
    assert_eq!(stage_of(Path::new("exit.rs")).as_deref(), Some("exit"));
    assert_eq!(stage_of(Path::new("lib.rs")), None);
}
