//! Helpers shared by the integration tests: run the real binary, find the shared data,
//! start real servers.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod fault_server;
pub mod http;
pub mod mlflow_server;
pub mod mongo_server;
pub mod s3_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use netsec::shared::guard::Guard;

/// The real phishing data set, kept outside the repository in ../shared/data.
pub fn phishing_csv() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/phishing.csv");
    assert!(
        path.exists(),
        "{} is missing: the tests read the shared data set beside the repository",
        path.display()
    );
    path
}

/// A file in the repository, e.g. `data_schema/phishing.yaml`.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` to its end and keeps what it printed.
    pub fn of(command: &mut Command) -> Run {
        Run::from(command.output().expect("netsec binary runs"))
    }

    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The variables a `netsec` child inherits from the test process: what finding programs
/// (`git`, for the commit a run records), temporary files and the locale need, and the
/// coverage tool's output path. Nothing that configures netsec itself.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LLVM_PROFILE_FILE",
];

/// The one way tests run the `netsec` binary: an EMPTY environment plus [`INHERITED`],
/// working in the repository root. A test adds the variables it means (`.env(..)`), so
/// `NETSEC_REGISTRY`, `NETSEC_STORE`, `AWS_*`, `MLFLOW_*`, `NETSEC_SERVE_TOKEN` or `RUST_LOG`
/// from a developer's shell never reach a test's child.
pub fn netsec_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netsec"));
    command.env_clear().current_dir(env!("CARGO_MANIFEST_DIR"));
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// Turns `guard` off in the `netsec` child `command` starts — a guard twin's run (see
/// `netsec::shared::guard`): the same test body, expected to fail. `None` leaves every
/// guard on, as the normal test does.
pub fn without_guard(command: &mut Command, guard: Option<Guard>) -> &mut Command {
    command.envs(guard_env(guard))
}

/// The variable [`without_guard`] sets, for helpers that take a list of variables.
pub fn guard_env(guard: Option<Guard>) -> Option<(&'static str, &'static str)> {
    guard.map(|g| (netsec::shared::guard::ENV, g.name()))
}

/// Runs `netsec ARGS` in `dir` (the repository root when `None`).
pub fn netsec_in(dir: Option<&Path>, args: &[&str]) -> Run {
    let mut command = netsec_command();
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    Run::of(&mut command)
}

/// Runs `netsec ARGS` from the repository root with these variables set.
pub fn netsec_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> Run {
    Run::of(netsec_command().args(args).envs(env))
}

/// Runs `netsec ARGS` from the repository root.
pub fn netsec(args: &[&str]) -> Run {
    netsec_in(None, args)
}

/// Lines of the phishing CSV, for building broken variants of it.
pub fn phishing_lines(count: usize) -> Vec<String> {
    std::fs::read_to_string(phishing_csv())
        .unwrap()
        .lines()
        .take(count)
        .map(str::to_owned)
        .collect()
}

/// Path as &str for argument lists.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Stops a test server: SIGTERM, up to 10 s to exit, then SIGKILL.
pub fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
