//! Real S3-compatible servers on 127.0.0.1 for the publish and serve tests: moto (accepts
//! any credentials, in memory) and SeaweedFS (`weed mini`, enforces credentials).
//! `scripts/test` installs both and sets NETSEC_MOTO_BIN and NETSEC_WEED_BIN; without them
//! the venvs' default places under $NETSEC_CACHE are tried. A missing binary fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

/// The access key the servers accept (SeaweedFS takes it from its environment at start).
pub const ACCESS_KEY: &str = "netsec-test";
/// Its secret; tests check that it never shows in any output.
pub const SECRET_KEY: &str = "netsec-test-secret-6c1f";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    Seaweed,
}

/// A running server, stopped when dropped (SIGTERM, then SIGKILL after 10 s).
pub struct S3Server {
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    pub kind: Kind,
    child: Child,
    dir: tempfile::TempDir,
    /// SeaweedFS's ports (its unix sockets in /tmp are named after them).
    ports: Vec<u16>,
}

fn cache() -> PathBuf {
    std::env::var_os("NETSEC_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/netsec-ci"),
        PathBuf::from,
    )
}

fn binary(env: &str, default: &str) -> PathBuf {
    let bin = std::env::var_os(env).map_or_else(|| cache().join(default), PathBuf::from);
    assert!(
        bin.is_file(),
        "S3 test server {} is missing: run the tests through scripts/test, which installs it \
         (or set {env})",
        bin.display()
    );
    bin
}

/// A free port chosen by the OS.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ten distinct free ports chosen by the OS (SeaweedFS binds ten: HTTP and gRPC for each
/// of its parts). All are held until all are chosen, so none is handed out twice.
fn free_ports() -> Vec<u16> {
    let held: Vec<TcpListener> = (0..10)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl S3Server {
    /// Starts a server and waits until its S3 port answers.
    pub fn start(kind: Kind) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let (mut command, port, ports) = match kind {
            Kind::Moto => {
                let port = free_port();
                let mut c = Command::new(binary("NETSEC_MOTO_BIN", "moto-venv/bin/moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                (c, port, Vec::new())
            }
            Kind::Seaweed => {
                let ports = free_ports();
                let mut c = Command::new(binary("NETSEC_WEED_BIN", "seaweedfs-venv/bin/weed"));
                let p = |i: usize| ports[i].to_string();
                c.arg("mini")
                    .arg(format!("-dir={}", dir.path().join("data").display()))
                    .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                    .arg(format!("-master.port={}", p(0)))
                    .arg(format!("-volume.port={}", p(1)))
                    .arg(format!("-filer.port={}", p(2)))
                    .arg(format!("-s3.port={}", p(3)))
                    .arg(format!("-admin.port={}", p(4)))
                    .arg(format!("-master.port.grpc={}", p(5)))
                    .arg(format!("-volume.port.grpc={}", p(6)))
                    .arg(format!("-filer.port.grpc={}", p(7)))
                    .arg(format!("-s3.port.grpc={}", p(8)))
                    .arg(format!("-admin.port.grpc={}", p(9)))
                    .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
                    .args(["-admin.ui=false", "-master.telemetry=false"])
                    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
                (c, ports[3], ports)
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = command.spawn().expect("start the S3 test server");
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            kind,
            child,
            dir,
            ports,
        };
        server.wait_ready(port);
        server
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} server exited early ({status}):\n{}",
                    self.kind,
                    self.log()
                );
            }
            // Any HTTP answer will do (SeaweedFS answers 403 to an unsigned GET /).
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{:?} server not ready on port {port}:\n{}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// An SDK client with the test credentials (path-style, checksums when required).
    pub fn client(&self) -> aws_sdk_s3::Client {
        client_at(&self.endpoint)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let client = self.client();
        block_on(async { client.create_bucket().bucket(bucket).send().await })
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }

    /// Every key in a bucket.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let client = self.client();
        let out = block_on(async { client.list_objects_v2().bucket(bucket).send().await })
            .unwrap_or_else(|e| panic!("list {bucket}: {e:?}"));
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }

    /// An object's bytes, or `None` when it does not exist.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let client = self.client();
        block_on(async {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(out.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    /// Deletes an object (absent is fine).
    pub fn delete(&self, bucket: &str, key: &str) {
        let client = self.client();
        block_on(async { client.delete_object().bucket(bucket).key(key).send().await })
            .unwrap_or_else(|e| panic!("delete {bucket}/{key}: {e:?}"));
    }

    /// Environment for a `netsec` child process talking to this server: the test
    /// credentials, no AWS config files of the user running the tests, no EC2 metadata.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        super::stop(&mut self.child);
        // SeaweedFS names unix sockets in /tmp after its ports; remove any it left.
        for port in &self.ports {
            for role in ["master", "volume", "filer", "s3", "admin"] {
                for kind in ["", "grpc-"] {
                    let _ =
                        std::fs::remove_file(format!("/tmp/seaweedfs-{role}-{kind}{port}.sock"));
                }
            }
        }
    }
}

/// An SDK client with the test credentials for `endpoint` (a server, or a proxy in front of
/// one), configured in code: nothing comes from the environment of the test process.
pub fn client_at(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Runs a future on a small runtime of its own (the tests are synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
