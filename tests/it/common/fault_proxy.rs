//! A TCP proxy in front of a real S3 server that breaks chosen requests — for faults a
//! real server cannot be made to produce on demand (a 503 on one object's upload, a
//! connection that dies in the middle of one multipart part). Every other request goes to
//! the server byte for byte (its signature covers the Host header, which is left as is).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What to do with a matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status with an S3 XML error body, then close.
    Status(u16),
    /// Close the connection without answering, as a server that died mid-request.
    Drop,
}

/// A running proxy; `endpoint` is what clients use instead of the server's.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    faults: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`), answering requests whose request
    /// line (`PUT /bucket/key?partNumber=2&... HTTP/1.1`) `matches` with `fault`.
    pub fn start(
        upstream: &str,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let faults = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&faults);
        let matches = Arc::new(matches);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, counter, matches) =
                    (upstream.clone(), Arc::clone(&counter), Arc::clone(&matches));
                std::thread::spawn(move || {
                    let _ = relay(client, &upstream, &*matches, fault, &counter);
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
    matches: &(dyn Fn(&str) -> bool + Send + Sync),
    fault: Fault,
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
        if matches(&line) {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Fault::Status(status) = fault {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
                           <Code>ServiceUnavailable</Code><Message>injected by the test proxy\
                           </Message></Error>";
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
                client.write_all(answer.as_bytes())?;
            }
            // The answer first, then both ends: closing the server's end first would let
            // the relay thread close the client's before the answer is out.
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return Ok(());
        }
        server.write_all(head.as_bytes())?;
        server.write_all(&body)?;
    }
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
