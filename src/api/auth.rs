//! The signed-request extractor: every channel request carries a
//! BC1-HMAC-SHA256 signature over method, path and query, timestamp, nonce
//! and body hash. Failures are 401 and change nothing.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::problem::{ApiError, ProblemCode};
use crate::auth::channel_keys::KeyLookupError;
use crate::auth::rate_limits::RateLimited;
use crate::auth::secrets::Secret;
use crate::auth::signing::{self, HeaderError};
use crate::domain::channel::{Channel, ChannelStatus};
use crate::state::AppState;

/// What [`Signed`] answers: the signature, the key (looked up in the
/// store), the channel, the clock and the channel's rate limit.
pub(super) const SIGNED: super::openapi::Problems = &[
    (400, &[ProblemCode::UnreadableBody]),
    (
        401,
        &[
            ProblemCode::StaffTokenNotAccepted,
            ProblemCode::MissingSignature,
            ProblemCode::MalformedSignature,
            ProblemCode::UnknownKey,
            ProblemCode::BadSignature,
            ProblemCode::KeyDisabled,
            ProblemCode::ChannelDisabled,
            ProblemCode::StaleTimestamp,
        ],
    ),
    (413, &[ProblemCode::BodyTooLarge]),
    (429, &[ProblemCode::RateLimited]),
    (500, &[ProblemCode::Internal]),
    (503, &[ProblemCode::StoreUnavailable]),
];

/// What [`Signed::consume_nonce`] adds: a nonce is used once.
pub(super) const NONCE: super::openapi::Problems = &[(401, &[ProblemCode::NonceReused])];

/// What [`BillerSigned`] answers (it records the nonce itself; billers
/// have no rate limit).
pub(super) const BILLER_SIGNED: super::openapi::Problems = &[
    (400, &[ProblemCode::UnreadableBody]),
    (
        401,
        &[
            ProblemCode::StaffTokenNotAccepted,
            ProblemCode::MissingSignature,
            ProblemCode::MalformedSignature,
            ProblemCode::UnknownKey,
            ProblemCode::BadSignature,
            ProblemCode::KeyDisabled,
            ProblemCode::StaleTimestamp,
            ProblemCode::NonceReused,
        ],
    ),
    (413, &[ProblemCode::BodyTooLarge]),
    (500, &[ProblemCode::Internal]),
    (503, &[ProblemCode::StoreUnavailable]),
];

/// A request whose signature checked out.
pub struct Signed {
    pub channel: Channel,
    pub key_id: String,
    pub nonce: String,
    pub body: Bytes,
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
            ApiError::unauthorized(
                ProblemCode::MalformedSignature,
                "Authorization header is not ASCII",
            )
        })?;
    // Before any signature check: a staff token is the wrong credential here.
    super::staff_auth::refuse_staff_token(auth_header.as_deref())?;
    let body = super::extract::body(
        Bytes::from_request(req, state).await,
        state.config.http.max_body_bytes,
    )?;
    let header = signing::parse_header(auth_header.as_deref()).map_err(|e| match e {
        HeaderError::Missing => ApiError::unauthorized(
            ProblemCode::MissingSignature,
            "sign the request: Authorization: BC1-HMAC-SHA256 key=...,ts=...,nonce=...,sig=...",
        ),
        other => ApiError::unauthorized(ProblemCode::MalformedSignature, other.to_string()),
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
                ProblemCode::BadSignature,
                "signature does not match; sign METHOD, PATH_AND_QUERY, ts, nonce and hex(SHA-256(body)), each followed by a newline",
            ))
        }
    }

    fn key_active(&self, active: bool) -> Result<(), ApiError> {
        if active {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                ProblemCode::KeyDisabled,
                format!("key {} is disabled", self.header.key_id),
            ))
        }
    }

    fn fresh(&self, state: &AppState) -> Result<(), ApiError> {
        let skew = state.config.auth.max_clock_skew_s;
        let now = chrono::Utc::now().timestamp();
        if (now - self.header.ts).abs() > skew {
            return Err(ApiError::unauthorized(
                ProblemCode::StaleTimestamp,
                format!(
                    "ts {} is more than {skew} s from the server time {now}",
                    self.header.ts
                ),
            ));
        }
        Ok(())
    }
}

fn key_lookup(e: KeyLookupError) -> ApiError {
    match e {
        KeyLookupError::Store(e) => e.into(),
        KeyLookupError::Unsealable { .. } => {
            ApiError::internal("credentials cannot be checked; the operator has been alerted")
        }
    }
}

fn rate_limited(e: RateLimited) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        ProblemCode::RateLimited,
        "Too many requests",
        e.to_string(),
    )
    .retry_after(1)
}

fn unknown_key(key_id: &str) -> ApiError {
    ApiError::unauthorized(
        ProblemCode::UnknownKey,
        format!("key {key_id} is not known"),
    )
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let parts = read_signed(req, state).await?;
        let key = state
            .keys
            .get(&*state.store, &state.master_key, &parts.header.key_id)
            .await
            .map_err(key_lookup)?
            .ok_or_else(|| unknown_key(&parts.header.key_id))?;
        parts.verify_signature(&key.secret)?;
        parts.key_active(key.active)?;
        if key.channel.status != ChannelStatus::Active {
            return Err(ApiError::unauthorized(
                ProblemCode::ChannelDisabled,
                format!("channel {} is disabled", key.channel.id),
            ));
        }
        parts.fresh(state)?;
        // The channel's limit is the fleet's: this process takes its share.
        let share = state.fleet.share_at_once(key.channel.rate_limit_rps.max(1));
        state
            .rate_limits
            .check(&key.channel, share)
            .map_err(rate_limited)?;
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
        ProblemCode::NonceReused,
        "this nonce was used before; every request needs a new nonce",
    )
}
