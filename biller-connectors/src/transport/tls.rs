//! TLS towards billers: certificate verification against the system roots
//! or a CA bundle of the connector's own, an optional client certificate
//! (mutual TLS), optional pinning of the server's key, TLS 1.2 or later.
//!
//! Everything here is rustls and its webpki verifier; the only code of
//! ours is the pin check, which runs after the webpki verification passed
//! (a pin narrows what is trusted, it never widens it).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};

use crate::PrivateKeys;

/// A connector's TLS settings (`[connectors.<id>.tls]`). All optional: by
/// default the server is verified against the system's root certificates
/// and no client certificate is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA certificates that may sign the biller's server
    /// certificate. When set, only these are trusted (not the system's).
    pub ca_file: Option<PathBuf>,
    /// Our client certificate chain (PEM), for billers that require mutual
    /// TLS. Needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file` (PEM, sealed with the master
    /// key in production).
    pub client_key_file: Option<PathBuf>,
    /// Pins of the server's key: base64 of the SHA-256 of its
    /// SubjectPublicKeyInfo (as `openssl x509 -pubkey | openssl pkey -pubin
    /// -outform der | openssl dgst -sha256 -binary | base64` prints). When
    /// set, a server whose key is none of these is refused even when its
    /// certificate verifies. List the next key too before a rotation.
    pub pin_sha256: Vec<String>,
}

impl TlsSettings {
    /// The certificate files these settings name (for expiry warnings).
    pub fn certificate_files(&self) -> Vec<&Path> {
        [&self.ca_file, &self.client_cert_file]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The roots a connector trusts: its CA bundle, else the system's.
fn roots(settings: &TlsSettings) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no system root certificates found: set tls.ca_file to the biller's CA bundle"
                        .into(),
                );
            }
        }
    }
    Ok(roots)
}

/// The SubjectPublicKeyInfo (DER) of a certificate (DER).
pub fn spki_der(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| format!("certificate cannot be read: {e}"))?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("certificate key cannot be encoded: {e}"))
}

/// The SHA-256 of a certificate's SubjectPublicKeyInfo.
fn spki_digest(cert_der: &[u8]) -> Result<[u8; 32], String> {
    Ok(Sha256::digest(spki_der(cert_der)?).into())
}

/// Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (the
/// form of `tls.pin_sha256`).
pub fn spki_sha256(cert_der: &[u8]) -> Result<String, String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(spki_digest(cert_der)?))
}

/// A certificate of a file and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    pub file: PathBuf,
    pub subject: String,
    pub not_after: DateTime<Utc>,
}

impl CertificateExpiry {
    /// Whole days left from `now` (negative once expired).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        (self.not_after - now).num_days()
    }
}

/// When each certificate of a PEM file expires.
pub fn certificate_expiries(path: &Path) -> Result<Vec<CertificateExpiry>, String> {
    read_certificates(path)?
        .iter()
        .map(|der| {
            let cert = x509_cert::Certificate::from_der(der)
                .map_err(|e| format!("{}: certificate cannot be read: {e}", path.display()))?;
            let tbs = cert.tbs_certificate();
            let secs = tbs.validity().not_after.to_unix_duration().as_secs();
            let not_after = DateTime::<Utc>::from_timestamp(secs as i64, 0)
                .ok_or_else(|| format!("{}: certificate end date out of range", path.display()))?;
            Ok(CertificateExpiry {
                file: path.to_path_buf(),
                subject: tbs.subject().to_string(),
                not_after,
            })
        })
        .collect()
}

/// The rustls configuration of a connector that speaks TLS.
pub fn client_config(
    settings: &TlsSettings,
    keys: &dyn PrivateKeys,
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots(settings)?), provider.clone())
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let pins = settings
        .pin_sha256
        .iter()
        .map(|p| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p.trim())
                .map_err(|_| format!("tls.pin_sha256 {p:?} is not base64"))?;
            <[u8; 32]>::try_from(raw.as_slice())
                .map_err(|_| format!("tls.pin_sha256 {p:?} is not a SHA-256 digest (32 bytes)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = if pins.is_empty() {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier { webpki, pins }))
    };
    let config = match (&settings.client_cert_file, &settings.client_key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert)?;
            let pem = keys.read(key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        _ => {
            return Err(
                "tls.client_cert_file and tls.client_key_file go together (mutual TLS)".into(),
            )
        }
    };
    Ok(Arc::new(config))
}

/// The webpki verification, then the pin: the server's key must be one of
/// the pinned keys.
struct PinnedVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl fmt::Debug for PinnedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedVerifier")
            .field("pins", &self.pins.len())
            .finish()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let got = spki_digest(end_entity).map_err(rustls::Error::General)?;
        if self.pins.contains(&got) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(format!(
                "server key pin mismatch: the server's key is sha256/{}, not a pinned key",
                base64::engine::general_purpose::STANDARD.encode(got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether an error (anywhere in its chain) is a TLS alert by which the
/// server refused the handshake: with TLS 1.3 a server judges our client
/// certificate after we consider the handshake done, so its refusal
/// arrives when the answer is read; it never read the request.
pub fn is_handshake_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::AlertDescription as A;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(alert)) = tls {
            if matches!(
                alert,
                A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::CertificateRequired
                    | A::HandshakeFailure
                    | A::AccessDenied
                    | A::DecryptError
                    | A::ProtocolVersion
                    | A::InsufficientSecurity
            ) {
                return Some(format!(
                    "the biller refused the TLS handshake: alert {alert:?}"
                ));
            }
        }
        current = err.source();
    }
    None
}

/// The private keys of a connector, read as they are on disk (plain PEM).
/// billclear's own reader opens keys sealed with its master key.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainKeyFiles;

impl PrivateKeys for PlainKeyFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))
    }
}
