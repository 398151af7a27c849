//! A fault-injecting HTTP proxy on loopback, in front of the real S3
//! server: it forwards requests untouched (signatures stay valid), records
//! what crossed the wire, and on request answers 500/503, drops the
//! connection, or cuts a response body short.
//!
//! The tools keep connections alive, so the proxy serves every request a
//! connection carries, one after the other, and counts the connections
//! (the pool's bound is asserted through it). Each request goes upstream
//! on a connection of its own, asked to close, so a response ends where
//! the upstream connection does; the client's connection stays open.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What to do to a matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and S3 error code, without forwarding.
    Status(u16, &'static str),
    /// Close the connection without any answer.
    Drop,
    /// Forward, but pass on only this many bytes of the response body.
    Truncate(usize),
    /// Another writer wins a race: before forwarding, PUT these bytes to
    /// the same object (unsigned: for moto, which checks no signatures),
    /// then forward the request as it came.
    RaceWrite(&'static [u8]),
}

/// One request that crossed the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Request target: path and query.
    pub target: String,
    /// The Range header, if any.
    pub range: Option<String>,
    /// The If-Match header, if any.
    pub if_match: Option<String>,
    /// The If-None-Match header, if any.
    pub if_none_match: Option<String>,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The status of the response the client got (None when dropped).
    pub status: Option<u16>,
}

/// A rule: requests with this method whose target contains this text get
/// this fault, `remaining` more times.
struct Rule {
    method: &'static str,
    contains: &'static str,
    fault: Fault,
    remaining: usize,
}

struct State {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    connections: Mutex<Connections>,
    latency: Mutex<std::time::Duration>,
}

/// Client connections: accepted since the last reset, open now, and the
/// most open at once.
#[derive(Default, Clone, Copy, Debug)]
pub struct Connections {
    /// Accepted since the last reset.
    pub opened: usize,
    /// Open now.
    pub open: usize,
    /// The most open at once since the last reset.
    pub peak: usize,
}

/// A running proxy.
pub struct Proxy {
    /// The proxy's endpoint URL, to give the tools instead of the server's.
    pub endpoint: String,
    state: Arc<State>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            connections: Mutex::new(Connections::default()),
            latency: Mutex::new(std::time::Duration::ZERO),
        });
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                {
                    let mut c = state.connections.lock().unwrap();
                    c.opened += 1;
                    c.open += 1;
                    c.peak = c.peak.max(c.open);
                }
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                    state.connections.lock().unwrap().open -= 1;
                });
            }
        });
        Proxy { endpoint, state }
    }

    /// Injects `fault` into the next `times` requests with `method` (or
    /// `*`) whose target contains `contains`.
    pub fn inject(&self, method: &'static str, contains: &'static str, fault: Fault, times: usize) {
        self.state.rules.lock().unwrap().push(Rule {
            method,
            contains,
            fault,
            remaining: times,
        });
    }

    /// Holds every request this long before it is answered, as a distant
    /// server would: requests that would overlap there overlap here.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.state.latency.lock().unwrap() = latency;
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Forgets what was seen, and the connections counted.
    pub fn reset_seen(&self) {
        self.state.seen.lock().unwrap().clear();
        let mut c = self.state.connections.lock().unwrap();
        c.opened = 0;
        c.peak = c.open;
    }

    /// Client connections since the last reset. A tool's connections are
    /// all closed when it exits; `open` counts the ones the proxy has not
    /// yet seen close.
    pub fn connections(&self) -> Connections {
        *self.state.connections.lock().unwrap()
    }

    /// Requests seen with `method` whose target contains `contains`.
    pub fn count(&self, method: &str, contains: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.contains(contains))
            .count()
    }

    /// What was seen, split into requests the server answered and those
    /// it failed (5xx, or no answer). A tool retries a failed request and
    /// pays for it again: the answered ones are what a run costs when the
    /// server works. A run of 804 requests against rclone's server, four
    /// uploads at once on a busy machine, once saw 805; what the extra one
    /// was went unrecorded, and a failure retried is the one known way.
    pub fn answered_and_failed(&self) -> (Vec<Seen>, Vec<Seen>) {
        self.seen()
            .into_iter()
            .partition(|s| s.status.is_some_and(|c| c < 500))
    }

    /// Of those, the ones that succeeded (2xx).
    pub fn count_ok(&self, method: &str, contains: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.contains(contains))
            .filter(|s| s.status.is_some_and(|c| (200..300).contains(&c)))
            .count()
    }
}

/// Serves one client connection: its requests one after the other, until
/// the client closes it or a fault ends it.
fn serve(mut client: TcpStream, state: &State) -> std::io::Result<()> {
    let mut pending = Vec::new();
    loop {
        if pending.is_empty() {
            // A clean end between requests: the client closed its end.
            let mut first = [0u8; 1];
            if client.peek(&mut first)? == 0 {
                return Ok(());
            }
        }
        if !handle(&mut client, state, &mut pending)? {
            return Ok(());
        }
    }
}

/// Serves one request and its (possibly damaged) response; false when the
/// connection is over. `pending` holds bytes of the next request that
/// arrived with this one.
fn handle(client: &mut TcpStream, state: &State, pending: &mut Vec<u8>) -> std::io::Result<bool> {
    let (head, mut body) = read_head_after(client, std::mem::take(pending))?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if body.len() > length {
        *pending = body.split_off(length);
    }
    while body.len() < length {
        let mut buf = vec![0u8; (length - body.len()).min(1 << 20)];
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && (r.method == "*" || r.method == method)
                    && target.contains(r.contains)
            })
            .map(|r| {
                r.remaining -= 1;
                r.fault
            })
    };
    let latency = *state.latency.lock().unwrap();
    std::thread::sleep(latency);
    // What was seen is recorded before the client gets its answer, so a
    // test that checks the log right after a tool exits sees every request.
    let seen = |status: Option<u16>| {
        state.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            range: header("range"),
            if_match: header("if-match"),
            if_none_match: header("if-none-match"),
            fault,
            status,
        })
    };
    match fault {
        Some(Fault::Status(status, code)) => {
            seen(Some(status));
            let xml = format!(
                "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let response = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(response.as_bytes())?;
            client.shutdown(Shutdown::Both)?;
            Ok(false)
        }
        Some(Fault::Drop) => {
            seen(None);
            client.shutdown(Shutdown::Both)?;
            Ok(false)
        }
        Some(Fault::Truncate(keep)) => forward(client, state, &head, &body, Some(keep), seen),
        Some(Fault::RaceWrite(bytes)) => {
            let path = target.split('?').next().unwrap_or(&target).to_string();
            let mut racer = TcpStream::connect(state.upstream)?;
            racer.write_all(
                format!(
                    "PUT {path} HTTP/1.1\r\nhost: {}\r\n{}content-length: {}\r\nconnection: close\r\n\r\n",
                    state.upstream,
                    crate::s3server::MOTO_AUTH,
                    bytes.len()
                )
                .as_bytes(),
            )?;
            racer.write_all(bytes)?;
            let mut answer = Vec::new();
            racer.read_to_end(&mut answer)?;
            forward(client, state, &head, &body, None, seen)
        }
        None => forward(client, state, &head, &body, None, seen),
    }
}

/// Sends the request upstream and relays the response, passing at most
/// `keep` body bytes when set (then the connection ends); `seen` records
/// the status first. True when the client's connection stays open.
fn forward(
    client: &mut TcpStream,
    state: &State,
    head: &[u8],
    body: &[u8],
    keep: Option<usize>,
    seen: impl FnOnce(Option<u16>),
) -> std::io::Result<bool> {
    let mut upstream = TcpStream::connect(state.upstream)?;
    upstream.write_all(&with_close(head))?;
    upstream.write_all(body)?;
    let (response_head, mut already) = read_head_after(&mut upstream, Vec::new())?;
    let status = String::from_utf8_lossy(&response_head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    seen(status);
    client.write_all(&without_connection(&response_head))?;
    let mut left = keep.unwrap_or(usize::MAX);
    already.truncate(left);
    client.write_all(&already)?;
    left -= already.len();
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let n = upstream.read(&mut buf[..left.min(64 << 10)])?;
        if n == 0 {
            break;
        }
        client.write_all(&buf[..n])?;
        left -= n;
    }
    if keep.is_some() {
        client.shutdown(Shutdown::Both)?;
        return Ok(false);
    }
    Ok(true)
}

/// A request head asking the server to close the connection after its
/// response (so the response ends where the connection does).
fn with_close(head: &[u8]) -> Vec<u8> {
    let mut out = without_connection(head);
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// A head without its Connection header: the server's "close" is for the
/// proxy's upstream connection, not the client's.
fn without_connection(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Reads an HTTP head (through the blank line), starting with `data`
/// already read; returns it and whatever bytes arrived after it.
fn read_head_after(
    stream: &mut TcpStream,
    mut data: Vec<u8>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Ok((data, rest));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the head",
            ));
        }
        data.extend_from_slice(&buf[..n]);
    }
}
