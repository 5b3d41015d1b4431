//! What every simulator shares on the wire: the accept loop, HTTP/1.1
//! serving (over TLS when configured), and how a simulator is secured
//! ([`SimSecurity`]: a TLS server certificate, optionally requiring client
//! certificates, and a signature scheme other than the shared HMAC).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use biller_connectors::Signer;

use crate::book::Book;
use crate::{BookEntry, CreditRecord, Faults, RejectRecord};

/// How a simulator secures its interface. The default is plaintext and the
/// shared HMAC secret of its config.
#[derive(Clone, Default)]
pub struct SimSecurity {
    /// Serve TLS with this configuration (see [`server_tls`]).
    pub tls: Option<Arc<ServerConfig>>,
    /// Sign answers and verify requests with this signer (its own private
    /// key, billclear's public keys) instead of the HMAC secret.
    pub signer: Option<Arc<Signer>>,
}

impl std::fmt::Debug for SimSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSecurity")
            .field("tls", &self.tls.is_some())
            .field("signer", &self.signer)
            .finish()
    }
}

impl SimSecurity {
    /// The signer to use: the configured one, else HMAC under `secret`.
    pub(crate) fn signer_or_hmac(&self, secret: &str) -> std::io::Result<Arc<Signer>> {
        match &self.signer {
            Some(s) => Ok(s.clone()),
            None => Signer::hmac(secret.as_bytes())
                .map(Arc::new)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        }
    }

    /// "https" when serving TLS, else "http".
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// A TLS server configuration from PEM: the certificate chain, its key,
/// and (for mutual TLS) the CAs whose client certificates are accepted;
/// without them no client certificate is asked for. `versions` limits the
/// protocol versions (all of rustls's when empty).
pub fn server_tls(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("server key PEM: {e}"))?;
    let versions = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("client CA PEM: {e}"))?;
                roots.add(cert).map_err(|e| format!("client CA: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Resolves once the simulator is stopping.
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts connections until the simulator stops, serving each with `app`
/// (over TLS when `tls` is set).
/// What a simulator's HTTP interface has seen: how a client's connection
/// reuse and pacing look from the biller's side.
#[derive(Debug, Default)]
pub struct Traffic {
    connections: AtomicU64,
    calls: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// A snapshot of [`Traffic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Calls (POST requests: payments, inquiries; not health checks or
    /// the `/_sim` endpoints) received.
    pub calls: u64,
    /// The most calls in flight at once.
    pub peak_in_flight: u64,
}

impl Traffic {
    pub fn stats(&self) -> TrafficStats {
        TrafficStats {
            connections: self.connections.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
            peak_in_flight: self.peak_in_flight.load(Ordering::SeqCst),
        }
    }

    /// Starts counting the peak again from the calls in flight now.
    pub fn reset_peak(&self) {
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self.clone())
    }
}

struct InFlight(Arc<Traffic>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `app` with its calls counted in `traffic`.
fn counted(app: Router, traffic: Arc<Traffic>) -> Router {
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let traffic = traffic.clone();
            async move {
                let _call = (req.method() == axum::http::Method::POST).then(|| traffic.enter());
                next.run(req).await
            }
        },
    ))
}

pub(crate) async fn accept_loop(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<ServerConfig>>,
    traffic: Arc<Traffic>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let app = counted(app, traffic.clone());
    loop {
        let accepted = tokio::select! {
            _ = stopped(stop.clone()) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                traffic.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(
                    stream,
                    app.clone(),
                    stop.clone(),
                    acceptor.clone(),
                ));
            }
            Err(e) if *stop.borrow() => {
                tracing::debug!("accept stopped: {e}");
                break;
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("{name} simulator stopped");
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(stream, app, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => serve_http(tls, app, stop).await,
                Ok(Err(e)) => tracing::info!("TLS handshake refused: {e}"),
                Err(_) => tracing::info!("TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<S>(stream: S, app: Router, stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::select! {
        result = conn => if let Err(e) = result {
            tracing::debug!("connection ended: {e}");
        },
        _ = stopped(stop) => {}
    }
}

/// What the admin endpoints every simulator serves reach in it.
pub(crate) trait Admin: Send + Sync + 'static {
    /// The faults in force.
    fn faults_now(&self) -> Faults;
    /// Replaces the faults.
    fn replace_faults(&self, faults: Faults);
    /// Runs `f` on the simulator's account book.
    fn with_book<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R;
}

/// The admin endpoints under `/_sim/` every simulator serves: faults,
/// credits, rejections, accounts. (Each adds its own file endpoints.)
pub(crate) fn admin_routes<S: Admin>() -> Router<Arc<S>> {
    Router::new()
        .route("/_sim/faults", get(get_faults::<S>).put(put_faults::<S>))
        .route("/_sim/credits", get(get_credits::<S>))
        .route("/_sim/rejections", get(get_rejections::<S>))
        .route("/_sim/accounts", post(post_account::<S>))
}

async fn get_faults<S: Admin>(State(sim): State<Arc<S>>) -> Json<Faults> {
    Json(sim.faults_now())
}

async fn put_faults<S: Admin>(State(sim): State<Arc<S>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad faults: {e}\n")).into_response(),
    };
    if let Err(e) = faults.validate() {
        return (StatusCode::BAD_REQUEST, format!("bad faults: {e}\n")).into_response();
    }
    tracing::info!(?faults, "faults set");
    sim.replace_faults(faults.clone());
    Json(faults).into_response()
}

async fn get_credits<S: Admin>(State(sim): State<Arc<S>>) -> Json<Vec<CreditRecord>> {
    Json(sim.with_book(|b| b.credits.clone()))
}

async fn get_rejections<S: Admin>(State(sim): State<Arc<S>>) -> Json<Vec<RejectRecord>> {
    Json(sim.with_book(|b| b.rejections.clone()))
}

async fn post_account<S: Admin>(State(sim): State<Arc<S>>, body: Bytes) -> Response {
    match serde_json::from_slice::<BookEntry>(&body) {
        Ok(entry) => {
            sim.with_book(|b| b.add_account(&entry.biller_id, entry.account));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad account: {e}\n")).into_response(),
    }
}
