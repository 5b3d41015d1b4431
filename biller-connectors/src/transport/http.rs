//! The HTTP(S) exchange with a biller, shared by every HTTP connector: one
//! pooled client per connector, TLS as its settings say, and failures
//! sorted by whether the request could have reached the biller.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{error_chain, tls, Trouble};
use crate::{ConnectorSettings, PrivateKeys};

/// Where an HTTP counterpart listens: `https://host:port[/prefix]` (or
/// `http://` where the connector allows plaintext), parsed once when its
/// connector is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// "https" or "http".
    pub scheme: &'static str,
    pub authority: String,
    /// A plain path without its trailing slash ("" when none).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `url`, refusing in the prefix any of `?`, `#`, a space, and
    /// `also_forbidden`; `http://` only when `allow_plaintext`.
    pub fn parse(
        url: &str,
        allow_plaintext: bool,
        also_forbidden: &[char],
    ) -> Result<BaseUrl, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            if !allow_plaintext {
                return Err(format!(
                    "base_url {url:?} is plaintext http://: use https://, or set \
                     allow_plaintext = true (simulators and local tests only)"
                ));
            }
            ("http", rest)
        } else {
            return Err(format!("base_url {url:?} must start with https://"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("base_url {url:?} must name a port ({scheme}://host:port)"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("base_url {url:?}: bad host or port"));
        }
        if prefix.contains(['?', '#', ' ']) || prefix.contains(also_forbidden) {
            return Err(format!("base_url {url:?}: the prefix must be a plain path"));
        }
        Ok(BaseUrl {
            scheme,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

enum Pool {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// A connector's HTTP(S) client: keep-alive pool, connect timeout of half
/// the call's, TLS per its settings.
pub struct HttpTransport {
    base: BaseUrl,
    pool: Pool,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base", &self.base)
            .finish()
    }
}

impl HttpTransport {
    pub fn new(
        settings: &ConnectorSettings,
        keys: &dyn PrivateKeys,
        also_forbidden: &[char],
    ) -> Result<HttpTransport, String> {
        let base = BaseUrl::parse(&settings.base_url, settings.allow_plaintext, also_forbidden)?;
        if settings.timeout_ms == 0 {
            return Err("timeout_ms must be positive".into());
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout / 2));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(30))
            // As many idle connections as requests may be in flight: under
            // load every request finds a connection to reuse.
            .pool_max_idle_per_host(settings.in_flight_limit());
        let pool = if base.scheme == "https" {
            http.enforce_http(false);
            let config = tls::client_config(&settings.tls, keys)?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*config).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            Pool::Tls(builder.build(connector))
        } else {
            Pool::Plain(builder.build(http))
        };
        Ok(HttpTransport { base, pool })
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// The full URI of `path_and_query` (which starts with the prefix).
    pub fn uri(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{path_and_query}",
            self.base.scheme, self.base.authority
        )
    }

    /// The HTTP exchange itself, body read to the end (at most
    /// `max_answer_bytes`).
    ///
    /// * Nothing left (`NotConnected`): the TCP connection or the TLS
    ///   handshake failed (unknown CA, expired or mismatched certificate,
    ///   pin mismatch, our certificate refused), so the biller never read
    ///   the request.
    /// * Anything later (`NoAnswer`): the request may have been read.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        max_answer_bytes: usize,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Trouble> {
        let sent = match &self.pool {
            Pool::Plain(c) => c.request(request).await,
            Pool::Tls(c) => c.request(request).await,
        };
        let response = sent.map_err(|e| {
            let why = error_chain(&e);
            let to = &self.base.authority;
            if let Some(refusal) = tls::is_handshake_refusal(&e) {
                Trouble::NotConnected(format!(
                    "TLS handshake with {to} refused: {refusal} ({why})"
                ))
            } else if e.is_connect() {
                Trouble::NotConnected(format!("could not connect to {to}: {why}"))
            } else {
                Trouble::NoAnswer(format!("connection lost: {why}"))
            }
        })?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, max_answer_bytes)
            .collect()
            .await
            .map_err(|e| Trouble::NoAnswer(format!("answer body lost: {e}")))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_validated() {
        for bad in [
            "ftp://127.0.0.1:9101",
            "127.0.0.1:9101",
            "https://127.0.0.1",
            "https://:9101",
            "https://host:0",
            "https://host:99999",
            "https://host:1/a?b",
        ] {
            assert!(BaseUrl::parse(bad, true, &[]).is_err(), "{bad}");
        }
        let err = BaseUrl::parse("http://127.0.0.1:9101", false, &[]).unwrap_err();
        assert!(err.contains("allow_plaintext"), "{err}");
        let b = BaseUrl::parse("http://127.0.0.1:9101/water/", true, &[]).unwrap();
        assert_eq!(
            (b.scheme, b.authority.as_str(), b.prefix.as_str()),
            ("http", "127.0.0.1:9101", "/water")
        );
        let b = BaseUrl::parse("https://biller.example:443", false, &[]).unwrap();
        assert_eq!((b.scheme, b.prefix.as_str()), ("https", ""));
        assert!(BaseUrl::parse("https://h:1/a&b", false, &['&']).is_err());
    }
}
