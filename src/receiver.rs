//! A channel's side of callbacks: a small server that verifies billclear's
//! signature on every callback and records it. The demo and the tests use
//! it; channel developers can read it as the reference for their own.
//!
//! To verify a callback (the same scheme as requests, see `auth::signing`):
//! 1. parse `Authorization: BC1-HMAC-SHA256 key=..,ts=..,nonce=..,sig=..`;
//! 2. look up the secret of `key` (one of YOUR channel's keys);
//! 3. refuse a `ts` more than 300 s from your clock;
//! 4. recompute HMAC-SHA256(secret, "POST\n" + path_and_query + "\n" + ts +
//!    "\n" + nonce + "\n" + hex(sha256(body)) + "\n") and compare it, in
//!    constant time, with base64-decoded `sig`;
//! 5. deduplicate on `event_id` (delivery is at least once), then answer 2xx.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;

use chrono::{DateTime, Utc};

use crate::auth::signing;
use crate::domain::payment::PaymentStatus;

/// Checks a callback's signature against the channel's keys. Returns the
/// key id that signed it.
pub fn verify_callback(
    secrets: &HashMap<String, Vec<u8>>,
    authorization: Option<&str>,
    path_and_query: &str,
    body: &[u8],
    now_unix_s: i64,
    max_skew_s: i64,
) -> Result<String, String> {
    let h = signing::parse_header(authorization).map_err(|e| e.to_string())?;
    let secret = secrets
        .get(&h.key_id)
        .ok_or_else(|| format!("unknown key {}", h.key_id))?;
    if (now_unix_s - h.ts).abs() > max_skew_s {
        return Err(format!("timestamp {} is too far from now", h.ts));
    }
    if !signing::verify(secret, &h, "POST", path_and_query, body) {
        return Err("signature does not match".into());
    }
    Ok(h.key_id)
}

#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    pub verified: Result<String, String>,
    pub event: serde_json::Value,
    /// What the receiver answered.
    pub status: u16,
    /// When it arrived (this process's wall clock).
    pub at: DateTime<Utc>,
}

/// One delivery in brief: what a load test keeps of each callback (see
/// [`CallbackReceiver::summaries_only`]).
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The payment the callback is about (nil if the body named none).
    pub payment_id: uuid::Uuid,
    /// The payment's status the callback carries.
    pub status: Option<PaymentStatus>,
    /// When it arrived (this process's wall clock, read before the
    /// signature is checked).
    pub at: DateTime<Utc>,
    /// Answered 2xx, its signature verified.
    pub acknowledged: bool,
    /// The first acknowledged delivery of its event (a later one is a
    /// duplicate of an at-least-once delivery).
    pub first_acknowledgement: bool,
}

/// Running counts of what the receiver got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Every delivery, answered whatever.
    pub deliveries: u64,
    /// Distinct events acknowledged (2xx, signature verified).
    pub acknowledged: u64,
    /// ...of which about a CONFIRMED payment, or a REJECTED one.
    pub confirmed: u64,
    pub rejected: u64,
    /// Deliveries whose signature did not verify (answered 401).
    pub unverified: u64,
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, Vec<u8>>,
    received: Vec<Received>,
    arrivals: Vec<Arrival>,
    /// Keep [`Arrival`]s only, not every [`Received`] with its body.
    summaries_only: bool,
    /// Deliveries of each event answered 500 before one is acknowledged.
    fail_first: u32,
    tries: HashMap<String, u32>,
    acknowledged_events: HashSet<String>,
    tally: Tally,
}

#[derive(Clone)]
pub struct CallbackReceiver {
    base: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<Server>,
}

/// Where the receiver's server runs.
enum Server {
    /// A task of the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// A thread with a runtime of its own, stopped through this sender.
    Thread(tokio::sync::watch::Sender<bool>),
}

impl CallbackReceiver {
    /// Listens on a random local port.
    pub async fn start() -> std::io::Result<CallbackReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/callbacks/{channel}", post(receive))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CallbackReceiver {
            base,
            inner,
            server: Arc::new(Server::Task(task)),
        })
    }

    /// Like [`CallbackReceiver::start`], but served by a thread with a
    /// runtime of its own: callbacks are answered (and their arrival
    /// timed) however busy the caller's runtime is, as a payment app in a
    /// process of its own would. A load test's receiver.
    pub async fn start_on_own_thread() -> anyhow::Result<CallbackReceiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/callbacks/{channel}", post(receive))
            .with_state(inner.clone());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("callback-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
                // Dropping the runtime ends every connection's task.
            })?;
        Ok(CallbackReceiver {
            base,
            inner,
            server: Arc::new(Server::Thread(stop)),
        })
    }

    /// Listens with TLS (https) on a random local port, with the given PEM
    /// certificate chain and private key.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> anyhow::Result<CallbackReceiver> {
        let certs =
            rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
            .ok_or_else(|| anyhow::anyhow!("no private key in the PEM"))?;
        let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("https://{}", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/callbacks/{channel}", post(receive))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(CallbackReceiver {
            base,
            inner,
            server: Arc::new(Server::Task(task)),
        })
    }

    /// The callback URL to give a channel.
    pub fn url(&self, channel: &str) -> String {
        format!("{}/callbacks/{channel}", self.base)
    }

    /// Accepts callbacks signed with this key.
    pub fn add_key(&self, key_id: &str, secret: &str) {
        self.lock()
            .secrets
            .insert(key_id.to_string(), secret.as_bytes().to_vec());
    }

    /// Answers the first `n` deliveries of every event with 500.
    pub fn fail_first_deliveries(&self, n: u32) {
        self.lock().fail_first = n;
    }

    /// Keeps a brief [`Arrival`] of each delivery instead of every
    /// [`Received`] with its body (a load test's hundreds of thousands of
    /// callbacks): `received()` stays empty.
    pub fn summaries_only(&self) {
        self.lock().summaries_only = true;
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Every delivery in brief, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// What has arrived so far (cheap: running counts).
    pub fn tally(&self) -> Tally {
        self.lock().tally
    }

    /// Events acknowledged (answered 2xx) with a verified signature.
    pub fn acknowledged(&self) -> HashSet<String> {
        self.lock().acknowledged_events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("receiver lock")
    }

    pub fn stop(&self) {
        match &*self.server {
            Server::Task(task) => task.abort(),
            Server::Thread(stop) => {
                let _ = stop.send(true);
            }
        }
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Utc::now();
    let mut g = inner.lock().expect("receiver lock");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let verified = verify_callback(
        &g.secrets,
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        path,
        &body,
        chrono::Utc::now().timestamp(),
        300,
    );
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let event_id = event["event_id"].as_str().unwrap_or_default().to_string();
    // Deliveries are counted per event only when some are to fail.
    let tries = if g.fail_first > 0 {
        let t = g.tries.entry(event_id.clone()).or_default();
        *t += 1;
        *t
    } else {
        1
    };
    let status = if verified.is_err() {
        StatusCode::UNAUTHORIZED
    } else if tries <= g.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    let acknowledged = status.is_success();
    let first_acknowledgement = acknowledged && g.acknowledged_events.insert(event_id.clone());
    let payment = &event["payment"];
    let payment_status = payment["status"].as_str().and_then(PaymentStatus::parse);
    g.tally.deliveries += 1;
    g.tally.unverified += u64::from(verified.is_err());
    if first_acknowledgement {
        g.tally.acknowledged += 1;
        match payment_status {
            Some(PaymentStatus::Confirmed) => g.tally.confirmed += 1,
            Some(PaymentStatus::Rejected) => g.tally.rejected += 1,
            _ => {}
        }
    }
    g.arrivals.push(Arrival {
        payment_id: payment["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default(),
        status: payment_status,
        at,
        acknowledged,
        first_acknowledgement,
    });
    if !g.summaries_only {
        g.received.push(Received {
            event_id,
            verified,
            event,
            status: status.as_u16(),
            at,
        });
    }
    status
}

/// What the stand-in has received.
#[derive(Default)]
struct StandInCounts {
    received: std::sync::atomic::AtomicU64,
    unsigned: std::sync::atomic::AtomicU64,
}

/// A stand-in for the payment apps' callback endpoints on a local run
/// (`billclear receive-callbacks`, started by `ops/run.sh`): every
/// callback is acknowledged (204) and counted. It does not hold the
/// channels' secrets, so it checks only that a callback carries a
/// well-formed signature header (a real payment app verifies it: see
/// [`verify_callback`]). The count is logged once per `every` while
/// callbacks arrive, not a line per callback.
pub async fn stand_in(
    listeners: Vec<tokio::net::TcpListener>,
    every: std::time::Duration,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let counts = Arc::new(StandInCounts::default());
    let app = Router::new()
        .fallback(stand_in_receive)
        .with_state(counts.clone());
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let app = app.clone();
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let (mut seen, mut seen_unsigned) = (0, 0);
        loop {
            tick.tick().await;
            let (total, unsigned) = (counts.received.load(Relaxed), counts.unsigned.load(Relaxed));
            if total > seen {
                tracing::info!(
                    received = total - seen,
                    without_signature = unsigned - seen_unsigned,
                    total,
                    every_s = every.as_secs(),
                    "callbacks acknowledged"
                );
            }
            (seen, seen_unsigned) = (total, unsigned);
        }
    });
    let mut result = Ok(());
    if let Some(ended) = servers.join_next().await {
        result = ended
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from));
    }
    reporter.abort();
    result
}

async fn stand_in_receive(
    State(counts): State<Arc<StandInCounts>>,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    use std::sync::atomic::Ordering::Relaxed;
    counts.received.fetch_add(1, Relaxed);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if signing::parse_header(auth).is_err() {
        counts.unsigned.fetch_add(1, Relaxed);
    }
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod stand_in_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// POSTs a small body over plain HTTP/1.1; returns the status line.
    async fn post(addr: std::net::SocketAddr, path: &str, authorization: Option<&str>) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = r#"{"event_id":"e1"}"#;
        let auth = authorization
            .map(|a| format!("authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn the_stand_in_acknowledges_every_callback_on_every_listener() {
        let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let server = tokio::spawn(super::stand_in(
            vec![a, b],
            std::time::Duration::from_secs(60),
        ));
        let signed = crate::auth::signing::authorization(
            "k1",
            b"secret",
            "POST",
            "/callbacks",
            1,
            "n1",
            b"{}",
        );
        assert_eq!(
            post(addr_a, "/callbacks", Some(&signed)).await,
            "HTTP/1.1 204 No Content"
        );
        assert_eq!(
            post(addr_b, "/any/path", None).await,
            "HTTP/1.1 204 No Content"
        );
        server.abort();
    }
}
