//! A tiny scripted HTTP server on 127.0.0.1 for faults a real MLflow server cannot be made
//! to produce on demand (500, 503, 429 with Retry-After, an HTML 404 from a registry-less
//! server). It answers the n-th request with the n-th scripted response (the last one
//! repeats) and records every request it saw.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    /// An answer with a JSON or text body.
    pub fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A request as received: the request line and the raw header block.
#[derive(Clone, Debug)]
pub struct Seen {
    pub request_line: String,
    pub headers: String,
}

/// The running fault server.
pub struct FaultServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultServer {
    /// Starts serving `script` on a free port, in the current tokio runtime.
    pub async fn start(script: Vec<Reply>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault server");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let script = script.clone();
                tokio::spawn(async move {
                    // One request per connection, then close: keeps the parser trivial.
                    let Some((request_line, headers)) = read_request(&mut socket).await else {
                        return;
                    };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Seen {
                            request_line,
                            headers,
                        });
                        log.len() - 1
                    };
                    let reply = &script[n.min(script.len() - 1)];
                    let mut text = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        text.push_str(&format!("{k}: {v}\r\n"));
                    }
                    text.push_str("\r\n");
                    text.push_str(&reply.body);
                    let _ = socket.write_all(text.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FaultServer { url, seen }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads the header block and a `Content-Length` body; returns the request line and headers.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    Some((line.to_string(), headers.to_string()))
}
