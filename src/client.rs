//! A signed HTTP client for the channel API: used by the bench, the tests
//! and as a reference for channel developers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use uuid::Uuid;

use crate::auth::signing;

#[derive(Clone)]
pub struct SignedClient {
    base: String,
    pub key_id: String,
    secret: Vec<u8>,
    http: Client<HttpConnector, Full<Bytes>>,
    /// Seconds added to the clock when signing (tests of stale timestamps).
    pub clock_offset_s: i64,
    /// A request with no whole answer within this is given up (an error,
    /// as a refused connection is): a caller never waits for ever on a
    /// server that accepted the connection and went quiet.
    timeout: Duration,
}

/// How long a [`SignedClient`] waits for a whole answer unless told.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The problem `code` of an error reply.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Options of one request beyond method, path and body.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub headers: Vec<(String, String)>,
    /// Use this nonce instead of a fresh one.
    pub nonce: Option<String>,
    /// Send this Authorization header instead of a correct one.
    pub authorization: Option<String>,
    /// Sign this body but send the real one (tampering tests).
    pub signed_body: Option<Vec<u8>>,
}

impl SignedClient {
    pub fn new(base: &str, key_id: &str, secret: &str) -> SignedClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        SignedClient {
            base: base.trim_end_matches('/').to_string(),
            key_id: key_id.to_string(),
            secret: secret.as_bytes().to_vec(),
            http,
            clock_offset_s: 0,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Gives up a request with no whole answer within `timeout`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Points the client at another address (same key).
    pub fn set_base(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_string();
    }

    /// The Authorization header this client would send for a request.
    pub fn authorization_for(
        &self,
        method: &str,
        path_and_query: &str,
        ts: i64,
        nonce: &str,
        body: &[u8],
    ) -> String {
        signing::authorization(
            &self.key_id,
            &self.secret,
            method,
            path_and_query,
            ts,
            nonce,
            body,
        )
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, Vec::new(), Extra::default())
            .await
    }

    pub async fn post_payment(
        &self,
        idempotency_key: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Reply> {
        self.post_idempotent("/v1/payments", idempotency_key, body)
            .await
    }

    /// A signed JSON POST with an `Idempotency-Key` (payments, complaints).
    pub async fn post_idempotent(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Reply> {
        self.send(
            Method::POST,
            path,
            body.to_string().into_bytes(),
            Extra {
                headers: vec![
                    ("idempotency-key".into(), idempotency_key.into()),
                    ("content-type".into(), "application/json".into()),
                ],
                ..Extra::default()
            },
        )
        .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        extra: Extra,
    ) -> anyhow::Result<Reply> {
        let ts = chrono::Utc::now().timestamp() + self.clock_offset_s;
        let nonce = extra
            .nonce
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        let auth = extra.authorization.clone().unwrap_or_else(|| {
            let signed = extra.signed_body.as_deref().unwrap_or(&body);
            self.authorization_for(method.as_str(), path, ts, &nonce, signed)
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        for (k, v) in &extra.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let request = req.body(Full::new(Bytes::from(body)))?;
        let exchange = async {
            let resp = self.http.request(request).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|elapsed| {
                // The `Elapsed` stays the cause: a caller tells a timeout
                // from a refused connection by type, not by the words.
                anyhow::Error::new(elapsed).context(format!(
                    "{} {path}: no answer within {} ms",
                    self.base,
                    self.timeout.as_millis()
                ))
            })?
    }
}

/// A browser-like client of the finance console: keeps its cookies, signs
/// in with a staff token, reads each form's CSRF token from the page.
/// Used by the console's tests and `billclear bench console`.
#[derive(Clone)]
pub struct ConsoleClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    /// Cookies by name (the console sets them with `Path=/console`).
    pub cookies: std::collections::BTreeMap<String, String>,
    /// Sent with every request (e.g. `Accept-Language`).
    pub headers: Vec<(String, String)>,
}

impl ConsoleClient {
    pub fn new(base: &str) -> ConsoleClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        ConsoleClient {
            base: base.trim_end_matches('/').to_string(),
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            cookies: Default::default(),
            headers: Vec::new(),
        }
    }

    /// Signs in with a staff token; the reply is the sign-in's answer (303
    /// to the console when the token is good).
    pub async fn sign_in(&mut self, token: &str) -> anyhow::Result<Reply> {
        let page = self.get("/console/sign-in").await?;
        let csrf = csrf_of(&page.text())
            .ok_or_else(|| anyhow::anyhow!("the sign-in page has no CSRF token"))?;
        self.post_form("/console/sign-in", &[("csrf", &csrf), ("token", token)])
            .await
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    /// Posts a form as a browser does (`application/x-www-form-urlencoded`).
    pub async fn post_form(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            s.append_pair(k, v);
        }
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded".into()),
            s.finish().into_bytes(),
        )
        .await
    }

    /// Posts `multipart/form-data` with text fields and one file.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> anyhow::Result<Reply> {
        let boundary = format!("bcboundary{}", Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        let (name, file_name, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Method::POST,
            path,
            Some(format!("multipart/form-data; boundary={boundary}")),
            body,
        )
        .await
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", c.join("; "));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = self
            .http
            .request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                let cleared = v.to_ascii_lowercase().contains("max-age=0");
                if cleared || val.is_empty() {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies
                        .insert(k.trim().to_string(), val.trim().to_string());
                }
            }
        }
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// The first CSRF token of a page's forms (`name="csrf" value="…"`).
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\"")?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + "value=\"".len();
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts the connection and never answers: the call
    /// fails after the client's timeout, as a timeout by type.
    #[tokio::test]
    async fn a_server_that_goes_quiet_is_given_up_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let quiet = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                held.push(socket);
            }
        });
        let mut client = SignedClient::new(&format!("http://{addr}"), "k", "secret");
        client.set_timeout(Duration::from_millis(300));
        let began = std::time::Instant::now();
        let err = client.get("/v1/payments").await.unwrap_err();
        let waited = began.elapsed();
        assert!(err.is::<tokio::time::error::Elapsed>(), "{err:#}");
        assert!(
            err.to_string()
                .contains("/v1/payments: no answer within 300 ms"),
            "{err}"
        );
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "gave up after {waited:?}"
        );
        quiet.abort();
    }
}
