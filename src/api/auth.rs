//! The signed-request extractor: every channel request carries a
//! BC1-HMAC-SHA256 signature over method, path and query, timestamp, nonce
//! and body hash. Failures are 401 and change nothing.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::problem::ApiError;
use super::AppState;
use crate::auth::secrets::{MasterKey, Secret};
use crate::auth::signing::{self, HeaderError};
use crate::domain::channel::{Channel, ChannelStatus};
use crate::store::Store;

/// A request whose signature checked out.
pub struct Signed {
    pub channel: Channel,
    pub key_id: String,
    pub nonce: String,
    pub body: Bytes,
}

#[derive(Clone)]
struct CachedKey {
    channel: Channel,
    secret: Secret,
    active: bool,
}

/// Keys looked up in the store, trusted for `ttl`; unknown keys are cached
/// as unknown for the same time. Bounded in size.
pub struct KeyCache {
    ttl: Duration,
    map: Mutex<HashMap<String, (Instant, Option<CachedKey>)>>,
}

const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    async fn get(
        &self,
        store: &dyn Store,
        master: &MasterKey,
        key_id: &str,
    ) -> Result<Option<CachedKey>, ApiError> {
        if !self.ttl.is_zero() {
            if let Some((at, v)) = self.map.lock().expect("key cache").get(key_id) {
                if at.elapsed() < self.ttl {
                    return Ok(v.clone());
                }
            }
        }
        let found = match store.find_key(key_id).await? {
            None => None,
            Some(k) => {
                let secret = master.open(&k.key_id, &k.sealed_secret).map_err(|e| {
                    tracing::error!(key_id, error = %e, "channel secret does not open with the master key");
                    ApiError::internal("credentials cannot be checked; the operator has been alerted")
                })?;
                Some(CachedKey {
                    channel: k.channel,
                    secret,
                    active: k.active,
                })
            }
        };
        if !self.ttl.is_zero() {
            let mut map = self.map.lock().expect("key cache");
            if map.len() >= KEY_CACHE_MAX {
                map.clear();
            }
            map.insert(key_id.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }
}

/// Per-channel token buckets (per process), sized from each channel's
/// `rate_limit_rps`.
#[derive(Default)]
pub struct RateLimits {
    map: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    fn check(&self, channel: &Channel) -> Result<(), ApiError> {
        let rps = channel.rate_limit_rps.max(1);
        let limiter = {
            let mut map = self.map.lock().expect("rate limits");
            let entry = map
                .entry(channel.id.to_string())
                .or_insert_with(|| (0, Arc::new(limiter(rps))));
            if entry.0 != rps {
                *entry = (rps, Arc::new(limiter(rps)));
            }
            entry.1.clone()
        };
        limiter.check().map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                format!(
                    "channel {} is limited to {rps} requests per second",
                    channel.id
                ),
            )
            .retry_after(1)
        })
    }
}

fn limiter(rps: u32) -> DefaultDirectRateLimiter {
    let n = NonZeroU32::new(rps).expect("rps >= 1");
    RateLimiter::direct(Quota::per_second(n).allow_burst(n))
}

/// The parts of a signed request every extractor checks the same way.
struct SignedParts {
    header: signing::SignedHeader,
    method: axum::http::Method,
    path_and_query: String,
    body: Bytes,
}

async fn read_signed(req: Request, state: &AppState) -> Result<SignedParts, ApiError> {
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            ApiError::unauthorized("malformed_signature", "Authorization header is not ASCII")
        })?;
    // Before any signature check: a staff token is the wrong credential here.
    super::staff_auth::refuse_staff_token(auth_header.as_deref())?;
    let body = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status(),
                "body_too_large",
                "Request body too large",
                format!(
                    "request bodies are limited to {} bytes",
                    state.config.http.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request("unreadable_body", e.body_text())
        }
    })?;
    let header = signing::parse_header(auth_header.as_deref()).map_err(|e| match e {
        HeaderError::Missing => ApiError::unauthorized(
            "missing_signature",
            "sign the request: Authorization: BC1-HMAC-SHA256 key=...,ts=...,nonce=...,sig=...",
        ),
        other => ApiError::unauthorized("malformed_signature", other.to_string()),
    })?;
    Ok(SignedParts {
        header,
        method,
        path_and_query,
        body,
    })
}

impl SignedParts {
    fn verify_signature(&self, secret: &Secret) -> Result<(), ApiError> {
        if signing::verify(
            secret.expose(),
            &self.header,
            self.method.as_str(),
            &self.path_and_query,
            &self.body,
        ) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "bad_signature",
                "signature does not match; sign METHOD, PATH_AND_QUERY, ts, nonce and hex(SHA-256(body)), each followed by a newline",
            ))
        }
    }

    fn key_active(&self, active: bool) -> Result<(), ApiError> {
        if active {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "key_disabled",
                format!("key {} is disabled", self.header.key_id),
            ))
        }
    }

    fn fresh(&self, state: &AppState) -> Result<(), ApiError> {
        let skew = state.config.auth.max_clock_skew_s;
        let now = chrono::Utc::now().timestamp();
        if (now - self.header.ts).abs() > skew {
            return Err(ApiError::unauthorized(
                "stale_timestamp",
                format!(
                    "ts {} is more than {skew} s from the server time {now}",
                    self.header.ts
                ),
            ));
        }
        Ok(())
    }
}

fn unknown_key(key_id: &str) -> ApiError {
    ApiError::unauthorized("unknown_key", format!("key {key_id} is not known"))
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let parts = read_signed(req, state).await?;
        let key = state
            .keys
            .get(&*state.store, &state.master_key, &parts.header.key_id)
            .await?
            .ok_or_else(|| unknown_key(&parts.header.key_id))?;
        parts.verify_signature(&key.secret)?;
        parts.key_active(key.active)?;
        if key.channel.status != ChannelStatus::Active {
            return Err(ApiError::unauthorized(
                "channel_disabled",
                format!("channel {} is disabled", key.channel.id),
            ));
        }
        parts.fresh(state)?;
        state.rate_limits.check(&key.channel)?;
        Ok(Signed {
            channel: key.channel,
            key_id: parts.header.key_id,
            nonce: parts.header.nonce,
            body: parts.body,
        })
    }
}

/// A request signed with a biller's key (settlement downloads). Channel
/// keys are not biller keys: a channel cannot call these endpoints, and a
/// biller key cannot call a channel's.
pub struct BillerSigned {
    pub biller_id: String,
    pub key_id: String,
    pub nonce: String,
}

impl FromRequest<AppState> for BillerSigned {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let parts = read_signed(req, state).await?;
        let key = state
            .store
            .find_biller_key(&parts.header.key_id)
            .await?
            .ok_or_else(|| unknown_key(&parts.header.key_id))?;
        let secret = state
            .master_key
            .open(&key.key_id, &key.sealed_secret)
            .map_err(|e| {
                tracing::error!(key_id = %key.key_id, error = %e, "biller secret does not open with the master key");
                ApiError::internal("credentials cannot be checked; the operator has been alerted")
            })?;
        parts.verify_signature(&secret)?;
        parts.key_active(key.active)?;
        parts.fresh(state)?;
        let signed = BillerSigned {
            biller_id: key.biller_id,
            key_id: parts.header.key_id,
            nonce: parts.header.nonce,
        };
        if !state
            .store
            .record_nonce(&signed.key_id, &signed.nonce)
            .await?
        {
            return Err(nonce_reused());
        }
        Ok(signed)
    }
}

impl Signed {
    /// Records the nonce now (requests that change nothing else).
    pub async fn consume_nonce(&self, state: &AppState) -> Result<(), ApiError> {
        if state.store.record_nonce(&self.key_id, &self.nonce).await? {
            Ok(())
        } else {
            Err(nonce_reused())
        }
    }

    /// Fails if the nonce was used before, without recording it.
    pub async fn check_nonce_unused(&self, state: &AppState) -> Result<(), ApiError> {
        if state.store.nonce_seen(&self.key_id, &self.nonce).await? {
            Err(nonce_reused())
        } else {
            Ok(())
        }
    }
}

pub fn nonce_reused() -> ApiError {
    ApiError::unauthorized(
        "nonce_reused",
        "this nonce was used before; every request needs a new nonce",
    )
}
