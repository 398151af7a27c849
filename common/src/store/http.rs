//! The one HTTP client of a run: keep-alive connections in one pool, at
//! most a fixed number open at once, TLS with extra trust roots.
//!
//! rust-s3's blocking client (attohttpc) opens a connection for every
//! request: free on loopback, but two or three round trips of TCP and TLS
//! before each request's first byte across the internet, thousands of them
//! in a night of a thousand tenant databases or a first sync of 10,000
//! files. So every S3 request is sent over ureq's pooled agent instead:
//! one agent for the process, a connection handed back to the pool when a
//! response has been read to its end, and reused by the next request to
//! the same host, across files and threads.
//!
//! **The bound.** A request takes a slot before it is sent and gives it
//! back when its response is dropped, so no more requests are in flight
//! than there are slots ([`allow_connections`]: `--transfers` + 1). The
//! pool keeps as many idle connections as there are slots, so the
//! connections a run opens are at most its slots, unless the server
//! closes some (each reopened connection then replaces a closed one). No
//! thread takes a second slot while it holds one: the tools stream one
//! response at a time per thread.
//!
//! **Trust.** The built-in roots are Mozilla's (webpki-roots, as
//! attohttpc used); `AWS_CA_BUNDLE` (the AWS CLI's variable) and
//! `SSL_CERT_FILE` (OpenSSL's) add the certificates of the PEM files they
//! name, for a self-hosted MinIO or Garage behind a private CA.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Slots when no tool asked for another number: the default `--transfers`
/// (4) plus one.
pub const DEFAULT_CONNECTIONS: usize = 5;

/// How long a connection may take to open, and a read or a write may
/// wait for the network, before the request fails (and is retried).
const NETWORK_WAIT: Duration = Duration::from_secs(30);

/// A request's answer: status, headers, and its body as a reader. Holds
/// its slot until dropped.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn Read + Send + Sync>,
    _slot: Slot,
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value (the name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The body as text, at most `limit` bytes of it (an error body, a
    /// listing page, an answer to a POST).
    pub fn text(self, limit: u64) -> std::io::Result<String> {
        let mut bytes = Vec::new();
        self.take(limit).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.body.read(buf)
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The TLS handshake failed: configuration, never retried. `certificate`
    /// when it was the server's certificate that was refused (else a
    /// protocol error, such as a plain-HTTP server answering).
    Tls {
        /// The certificate was refused.
        certificate: bool,
        /// rustls's words.
        text: String,
    },
    /// The endpoint cannot be used at all (a bad URL or scheme).
    Endpoint(String),
    /// The network failed (refused, reset, timed out, name lookup): worth
    /// another try.
    Network(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Tls { text, .. } | Failure::Endpoint(text) => f.write_str(text),
            Failure::Network(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {}

/// Sends one request over a pooled connection. Any status is an answer;
/// the caller decides what a status means.
pub fn send(
    method: &str,
    url: &url::Url,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Response, Failure> {
    let pool = pool().map_err(|e| Failure::Endpoint(format!("{e:#}")))?;
    let slot = pool.gate.take();
    let mut request = pool.agent.request_url(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = match request.send_bytes(body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => return Err(failure(&transport)),
    };
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_string();
            Some((name, value))
        })
        .collect();
    Ok(Response {
        status: response.status(),
        headers,
        body: response.into_reader(),
        _slot: slot,
    })
}

/// Lets a run have up to `n` requests in flight (and connections open):
/// a tool with `--transfers N` asks for N + 1. The first call sets the
/// bound ([`DEFAULT_CONNECTIONS`] before it); later ones only raise it, so
/// a second store opened in the same run cannot shrink the first one's.
pub fn allow_connections(n: usize) {
    if let Ok(pool) = pool() {
        pool.gate.raise(n);
    }
}

/// Trust roots added to the built-in ones, from the PEM files that
/// `AWS_CA_BUNDLE` and `SSL_CERT_FILE` name. Read once; a file that
/// cannot be read or holds no certificate is a usage error.
pub fn extra_roots() -> anyhow::Result<&'static [CertificateDer<'static>]> {
    static ROOTS: OnceLock<Result<Vec<CertificateDer<'static>>, String>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut roots = Vec::new();
        for var in ["AWS_CA_BUNDLE", "SSL_CERT_FILE"] {
            let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let shown = std::path::Path::new(&path).display().to_string();
            let pem = std::fs::read(&path).map_err(|e| format!("{var}={shown}: {e}"))?;
            let before = roots.len();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.push(cert.map_err(|e| format!("{var}={shown}: not a PEM file ({e:?})"))?);
            }
            if roots.len() == before {
                return Err(format!("{var}={shown}: holds no PEM certificate"));
            }
        }
        Ok(roots)
    });
    roots
        .as_deref()
        .map_err(|e| crate::exit::fail(crate::exit::Exit::Usage, e.clone()))
}

/// The agent and its slots.
struct Pool {
    agent: ureq::Agent,
    gate: Arc<Gate>,
}

/// The run's pool, made on first use.
fn pool() -> anyhow::Result<&'static Pool> {
    static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let tls = tls_config().map_err(|e| format!("{e:#}"))?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            // Idle connections kept: as many as could ever be in flight
            // (the bound is the gate's, not the pool's).
            .max_idle_connections(MAX_SLOTS)
            .max_idle_connections_per_host(MAX_SLOTS)
            .timeout_connect(NETWORK_WAIT)
            .timeout_read(NETWORK_WAIT)
            .timeout_write(NETWORK_WAIT)
            // A redirect is an answer (a wrong region or endpoint), never
            // a reason to send signed headers elsewhere.
            .redirects(0)
            .user_agent(concat!("sqlkeep/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Pool {
            agent,
            gate: Arc::new(Gate::new(DEFAULT_CONNECTIONS)),
        })
    })
    .as_ref()
    .map_err(|e| crate::exit::fail(crate::exit::Exit::Usage, e.clone()))
}

/// The most slots a run can ask for: `--transfers` is at most 64.
const MAX_SLOTS: usize = 65;

/// TLS: Mozilla's roots plus the extra ones, ring as the provider (the one
/// ureq builds with).
fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra_roots()? {
        roots.add(cert.clone()).map_err(|e| {
            crate::exit::fail(
                crate::exit::Exit::Usage,
                format!(
                    "AWS_CA_BUNDLE / SSL_CERT_FILE: a certificate cannot be a trust root ({e})"
                ),
            )
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a transport error means for us. ureq wraps rustls's error in an
/// I/O error inside its own, so the chain is searched for it.
fn failure(transport: &ureq::Transport) -> Failure {
    use std::error::Error as _;
    let mut source = transport.source();
    while let Some(error) = source {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Failure::Tls {
                certificate: matches!(tls, rustls::Error::InvalidCertificate(_)),
                text: tls.to_string(),
            };
        }
        source = error.source();
    }
    let text = transport.to_string();
    match transport.kind() {
        ureq::ErrorKind::InvalidUrl
        | ureq::ErrorKind::UnknownScheme
        | ureq::ErrorKind::InsecureRequestHttpsOnly
        | ureq::ErrorKind::InvalidProxyUrl => Failure::Endpoint(text),
        _ => Failure::Network(std::io::Error::other(text)),
    }
}

/// A counting semaphore: the run's request slots.
struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
}

struct GateState {
    taken: usize,
    capacity: usize,
    /// False until a tool has said how many it wants.
    set: bool,
}

/// One taken slot, given back when dropped.
struct Slot(Arc<Gate>);

impl Gate {
    fn new(capacity: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                taken: 0,
                capacity,
                set: false,
            }),
            freed: Condvar::new(),
        }
    }

    fn take(self: &Arc<Gate>) -> Slot {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.taken >= state.capacity {
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.taken += 1;
        Slot(Arc::clone(self))
    }

    fn raise(&self, capacity: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.set || capacity > state.capacity {
            state.capacity = capacity.clamp(1, MAX_SLOTS);
            state.set = true;
            self.freed.notify_all();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        state.taken -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_never_lets_more_than_its_capacity_through() {
        let gate = Arc::new(Gate::new(DEFAULT_CONNECTIONS));
        gate.raise(2); // the first call sets it, even lower
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, inside, most) = (gate.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _slot = gate.take();
                        let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most}");
        gate.raise(3);
        gate.raise(1); // never lowered after that
        assert_eq!(gate.state.lock().unwrap().capacity, 3);
    }
}
