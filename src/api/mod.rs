//! The HTTP API (axum, JSON, `/v1`): channels, billers and finance staff.
//! Thin: it parses and authenticates, hands work to `intake` and the store,
//! and maps results to typed responses. The OpenAPI document served at
//! `/openapi.json` is generated from the handlers and those types
//! ([`openapi`]).

mod auth;
mod billers;
mod complaints;
mod extract;
mod health;
mod observe;
mod openapi;
mod ops;
mod payments;
pub mod problem;
mod recon;
pub(crate) mod settlements;
mod staff;
mod staff_auth;
mod text;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub use openapi::document as openapi_document;
pub use staff_auth::StaffAuth;

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.max_body_bytes;
    let concurrency = state.config.http.max_concurrent_requests.max(1);
    Router::new()
        .route("/v1/billers", get(billers::list))
        .route("/v1/billers/{biller_id}/bills", get(billers::bills))
        .route("/ops/v1/billers", get(ops::billers))
        .route(
            "/ops/v1/billers/{biller_id}/route",
            axum::routing::put(ops::switch_route),
        )
        .route("/v1/payments", post(payments::create).get(payments::find))
        .route("/v1/payments/{id}", get(payments::get_one))
        .route(
            "/v1/complaints",
            post(complaints::create).get(complaints::list),
        )
        .route("/v1/complaints/{id}", get(complaints::get_one))
        .route("/v1/staff/complaints", get(complaints::staff_list))
        .route(
            "/v1/staff/complaints/{id}/actions",
            post(complaints::staff_act),
        )
        .route("/v1/settlements", get(settlements::list))
        .route(
            "/v1/settlements/{batch_id}/files/{name}",
            get(settlements::download),
        )
        .route("/v1/statements", get(settlements::statement))
        .route(
            "/v1/statements/{date}/file",
            get(settlements::statement_file),
        )
        .route("/v1/staff/me", get(staff::me))
        .route("/v1/recon/runs", get(recon::runs))
        .route("/v1/recon/reports/{date}/{name}", get(recon::report))
        .route("/v1/breaks", get(recon::list))
        .route("/v1/breaks/{id}", get(recon::show))
        .route("/v1/breaks/{id}/actions", post(recon::act))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .merge(crate::console::router())
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                // Outermost: the request id, its span (which every line
                // below carries), the access line and the HTTP metrics.
                .layer(axum::middleware::from_fn(observe::observe))
                // A failed answer is the caller's to handle: a 503 under
                // load (push-back, overload) would be a line per request.
                // Its cause is logged where it starts (once, then as a
                // count); a 500 is logged with its problem (ApiError).
                .layer(TraceLayer::new_for_http().on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ))
                .layer(axum::middleware::from_fn(text::refuse_control_characters))
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(concurrency))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
