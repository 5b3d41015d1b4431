//! Every request's id, span, access line and metrics.
//!
//! * `X-Request-Id`: the request's own when it is sane (1-64 characters of
//!   `[A-Za-z0-9._-]`), else a new UUID; echoed on every answer, errors
//!   included, and recorded in a span that every log line of the request
//!   carries.
//! * One access line per request at info, on its own target
//!   (`billclear::access`) so that operators can filter it
//!   (`RUST_LOG=info,billclear::access=off`): method, matched route,
//!   status, duration, request id.
//! * `billclear_http_requests_total{route,status}` and
//!   `billclear_http_request_seconds{route}`, by the matched route's
//!   template (`unmatched` when none matched: never the raw path).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// Whether a caller's request id may be kept.
pub fn sane_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).expect("a sane request id is a header value");
    // Handlers and logs downstream see the id that is answered.
    req.headers_mut().insert(REQUEST_ID, header.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    resp.headers_mut().insert(REQUEST_ID, header);
    let took = started.elapsed();
    let status = resp.status().as_u16();
    crate::metrics::http_request(&route, status, took);
    tracing::info!(
        target: "billclear::access",
        method = %method,
        route = %route,
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        request_id = %id,
        "request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::sane_request_id;

    #[test]
    fn request_ids() {
        assert!(sane_request_id("abc-DEF_1.2"));
        assert!(sane_request_id(&"a".repeat(64)));
        assert!(!sane_request_id(&"a".repeat(65)));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id("é"));
        assert!(!sane_request_id("a/b"));
    }
}
