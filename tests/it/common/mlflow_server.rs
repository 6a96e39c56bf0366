//! Starts a real MLflow tracking server on 127.0.0.1 for integration tests and benches.
//!
//! The binary comes from `NETSEC_MLFLOW_BIN`, which `scripts/test` sets after installing
//! mlflow==3.17.2 into `$NETSEC_CACHE/mlflow-venv`; without it, that venv's default place
//! is tried. A missing binary is a test failure, never a silent skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running `mlflow server` with a SQLite store and proxied artifacts in a temp dir.
/// Dropping it stops the server (SIGTERM to its process group, SIGKILL after 10 s).
pub struct MlflowServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl MlflowServer {
    /// Starts a fresh server and waits until `/health` answers (fresh DB: ~10 s).
    pub fn start() -> MlflowServer {
        let dir = std::env::temp_dir().join(format!(
            "netsec-mlflow-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("artifacts")).expect("create the server's temp dir");
        MlflowServer::start_in(dir, free_port())
    }

    /// The server's files: its SQLite store (runs, params, metrics, tags) and artifacts.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url")
    }

    /// Kills the server at once (SIGKILL, like a crash or a pulled cable) and returns what
    /// [`MlflowServer::restart`] needs to bring it back with the same data.
    pub fn kill(mut self) -> (PathBuf, u16) {
        let port = self.port();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!("kill -KILL -{} 2>/dev/null; true", self.child.id()),
            ])
            .status();
        let _ = self.child.wait();
        let dir = std::mem::take(&mut self.dir);
        std::mem::forget(self);
        (dir, port)
    }

    /// Starts a killed server again on its port, with its database and artifacts.
    pub fn restart((dir, port): (PathBuf, u16)) -> MlflowServer {
        MlflowServer::start_in(dir, port)
    }

    fn start_in(dir: PathBuf, port: u16) -> MlflowServer {
        let bin = mlflow_bin();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("open server.log");
        let mut cmd = Command::new(&bin);
        cmd.args([
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("artifacts"))
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log);
        // Own process group: the CLI spawns uvicorn, and a group signal stops both.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = MlflowServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        server.watch_parent();
        server.wait_ready(port, Duration::from_secs(90));
        server
    }

    /// A server shared by all tests of one test binary, started on first use. Statics are
    /// never dropped, so a watchdog stops it when the test process exits.
    pub fn shared() -> &'static MlflowServer {
        static SERVER: OnceLock<MlflowServer> = OnceLock::new();
        SERVER.get_or_init(MlflowServer::start)
    }

    /// Stops the server and removes its files once this process is gone, even if it
    /// panics or is killed.
    fn watch_parent(&self) {
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{dir}'",
            me = std::process::id(),
            stop = stop_script(self.child.id()),
            dir = self.dir.display()
        );
        // Detached from our group so it survives us; its own exit is all it does.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Err(e) = cmd.spawn() {
            eprintln!("warning: no watchdog for the MLflow server: {e}");
        }
    }

    fn wait_ready(&mut self, port: u16, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "mlflow server exited early ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if health_ok(port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "mlflow server not healthy after {limit:?}; log:\n{}",
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &stop_script(self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM to the process group, up to 10 s of grace, then SIGKILL.
fn stop_script(pgid: u32) -> String {
    format!(
        "kill -TERM -{pgid} 2>/dev/null; i=0; while kill -0 -{pgid} 2>/dev/null && [ $i -lt 40 ]; \
         do sleep 0.25; i=$((i+1)); done; kill -KILL -{pgid} 2>/dev/null; true"
    )
}

/// The `mlflow` executable: `NETSEC_MLFLOW_BIN`, else `$NETSEC_CACHE/mlflow-venv/bin/mlflow`
/// (`NETSEC_CACHE` defaulting to `~/.cache/netsec-ci`, as in `scripts/test`).
pub fn mlflow_bin() -> PathBuf {
    let default = || {
        let cache = std::env::var_os("NETSEC_CACHE").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/netsec-ci"),
            PathBuf::from,
        );
        cache.join("mlflow-venv/bin/mlflow")
    };
    let (bin, from_env) = match std::env::var_os("NETSEC_MLFLOW_BIN") {
        Some(b) => (PathBuf::from(b), true),
        None => (default(), false),
    };
    if !Path::new(&bin).is_file() {
        panic!(
            "MLflow server binary not found at {} ({}). Run the tests with `scripts/test`, \
             which installs mlflow==3.17.2 into $NETSEC_CACHE/mlflow-venv, or point \
             NETSEC_MLFLOW_BIN at an `mlflow` executable.",
            bin.display(),
            if from_env {
                "from NETSEC_MLFLOW_BIN"
            } else {
                "default; NETSEC_MLFLOW_BIN unset"
            }
        );
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn health_ok(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
