//! A TCP proxy in front of a real server (MLflow, S3) that breaks chosen requests — for
//! faults a real server cannot be made to produce on demand: a 503 burst on one endpoint, a
//! connection that dies in the middle of a request body, an answer lost after the server
//! acted on the request, a slow answer. Every other request goes to the server byte for
//! byte (an S3 signature covers the Host header, which is left as is).
//!
//! Faults are chosen by [`Rule`]s: a predicate on the request line (`POST
//! /api/2.0/mlflow/runs/create HTTP/1.1`) and which of the matching calls (1-based, counted
//! per rule) to break.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What to do with a matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status without forwarding (an error body in the server's dialect:
    /// JSON for MLflow's `/api/`, S3 XML otherwise), then close.
    Status(u16),
    /// Close the connection without forwarding or answering, as a server that died.
    Drop,
    /// Forward the request, let the server act on it and answer, then close the client's
    /// connection without that answer: the work is done, the client never hears of it.
    LoseResponse,
    /// Forward the head and the first N bytes of the body, then close both ends: the
    /// connection is cut mid-body, the server never sees a whole request.
    CutBody(usize),
    /// Wait, then forward as usual.
    Delay(Duration),
}

/// Which requests to break, and how.
pub struct Rule {
    matches: Box<dyn Fn(&str) -> bool + Send + Sync>,
    calls: RangeInclusive<usize>,
    fault: Fault,
    seen: AtomicUsize,
}

impl Rule {
    /// Breaks every request whose request line `matches`.
    pub fn new(matches: impl Fn(&str) -> bool + Send + Sync + 'static, fault: Fault) -> Rule {
        Rule {
            matches: Box::new(matches),
            calls: 1..=usize::MAX,
            fault,
            seen: AtomicUsize::new(0),
        }
    }

    /// A request to MLflow's REST endpoint `path` (e.g. `runs/create`): `POST` or `GET`
    /// `/api/2.0/mlflow/<path>`, with or without a query string.
    pub fn mlflow(path: &str, fault: Fault) -> Rule {
        let needle = format!("/api/2.0/mlflow/{path}");
        Rule::new(
            move |line| {
                line.split(' ')
                    .nth(1)
                    .is_some_and(|target| target.split('?').next() == Some(needle.as_str()))
            },
            fault,
        )
    }

    /// Only the matching calls numbered in `calls` (1-based) are broken.
    pub fn calls(mut self, calls: RangeInclusive<usize>) -> Rule {
        self.calls = calls;
        self
    }

    /// The fault for this request line, counting it when it matches.
    fn check(&self, line: &str) -> Option<Fault> {
        if !(self.matches)(line) {
            return None;
        }
        let call = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        self.calls.contains(&call).then_some(self.fault)
    }
}

/// A running proxy; `endpoint` is what clients use instead of the server's.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    faults: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`), answering every request whose
    /// request line (`PUT /bucket/key?partNumber=2&... HTTP/1.1`) `matches` with `fault`.
    pub fn start(
        upstream: &str,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> FaultProxy {
        FaultProxy::with_rules(upstream, vec![Rule::new(matches, fault)])
    }

    /// Proxies to `upstream`; the first rule that matches a request (and whose call range
    /// holds it) decides its fault.
    pub fn with_rules(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let faults = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&faults);
        let rules = Arc::new(rules);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, counter, rules) =
                    (upstream.clone(), Arc::clone(&counter), Arc::clone(&rules));
                std::thread::spawn(move || {
                    let _ = relay(client, &upstream, &rules, &counter);
                });
            }
        });
        FaultProxy { endpoint, faults }
    }

    /// How many requests were broken so far.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::SeqCst)
    }
}

/// Relays one client connection, request by request (clients wait for each answer).
fn relay(
    mut client: TcpStream,
    upstream: &str,
    rules: &[Rule],
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let mut to_client = client.try_clone()?;
    let mut from_server = server.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut server = server;
    loop {
        let Some((head, body)) = read_request(&mut client)? else {
            let _ = server.shutdown(Shutdown::Both);
            return Ok(());
        };
        let line = head.lines().next().unwrap_or_default().to_owned();
        // Every rule sees every request, so that each counts its own calls.
        let fault = rules
            .iter()
            .map(|rule| rule.check(&line))
            .fold(None, |first, f| first.or(f));
        let Some(fault) = fault else {
            server.write_all(head.as_bytes())?;
            server.write_all(&body)?;
            continue;
        };
        counter.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Delay(delay) => {
                std::thread::sleep(delay);
                server.write_all(head.as_bytes())?;
                server.write_all(&body)?;
                continue;
            }
            Fault::Status(status) => {
                let (kind, body) = if line.contains(" /api/") {
                    (
                        "application/json",
                        r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"injected by the test proxy"}"#,
                    )
                } else {
                    (
                        "application/xml",
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
                         <Code>ServiceUnavailable</Code><Message>injected by the test proxy\
                         </Message></Error>",
                    )
                };
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: {kind}\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(answer.as_bytes())?;
            }
            Fault::Drop => {}
            Fault::CutBody(n) => {
                server.write_all(head.as_bytes())?;
                server.write_all(&body[..n.min(body.len())])?;
                server.flush()?;
            }
            Fault::LoseResponse => {
                // On a connection of its own, closed by the server after its answer, so
                // the answer can be read to its end and thrown away.
                let mut own = TcpStream::connect(upstream)?;
                own.write_all(close_after(&head).as_bytes())?;
                own.write_all(&body)?;
                let mut answer = Vec::new();
                own.set_read_timeout(Some(Duration::from_secs(60)))?;
                let _ = own.read_to_end(&mut answer);
            }
        }
        // The answer (if any) first, then both ends: closing the server's end first would
        // let the relay thread close the client's before the answer is out.
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return Ok(());
    }
}

/// The request head with `Connection: close` instead of any Connection header.
fn close_after(head: &str) -> String {
    let mut out: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// Reads one request: its header block and a Content-Length body. `None` at end of stream.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Some((head, body)))
}
