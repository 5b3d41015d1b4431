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
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
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
        }
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
        self.send(
            Method::POST,
            "/v1/payments",
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
        let resp = self
            .http
            .request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
