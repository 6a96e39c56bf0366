//! A real MongoDB-wire-compatible server (SecantusDB, in memory) on 127.0.0.1 for one test.
//! `scripts/test` installs it and sets NETSEC_MONGOD_BIN.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, stopped when dropped.
pub struct MongoServer {
    child: Child,
    /// `mongodb://127.0.0.1:PORT`.
    pub uri: String,
}

impl MongoServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> MongoServer {
        let bin = std::env::var("NETSEC_MONGOD_BIN").unwrap_or_else(|_| {
            let cache = std::env::var("NETSEC_CACHE").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/netsec-ci",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            format!("{cache}/secantus-venv/bin/secantusd-py")
        });
        assert!(
            std::path::Path::new(&bin).exists(),
            "MongoDB test server {bin} is missing: run the tests through scripts/test, which installs it"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
                ":memory:",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let server = MongoServer {
            child,
            uri: format!("mongodb://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "MongoDB test server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        super::stop(&mut self.child);
    }
}
