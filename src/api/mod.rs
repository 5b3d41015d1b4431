//! The HTTP API (axum, JSON, `/v1`): channels, billers and finance staff.
//! Thin: it parses and authenticates, hands work to `intake` and the store,
//! and maps results to responses.

mod auth;
mod billers;
mod health;
mod ops;
mod payments;
pub mod problem;
mod recon;
mod settlements;
mod staff;
mod staff_auth;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::auth::secrets::MasterKey;
use crate::config::Config;
use crate::dispatch::routes::Routes;
use crate::dispatch::Connectors;
use crate::inquiry::InquiryGuard;
use crate::intake::{BatchPolicy, BillerDirectory, Intake};
use crate::store::Store;

pub use auth::{KeyCache, RateLimits};
pub use staff_auth::StaffAuth;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub intake: Intake,
    pub billers: BillerDirectory,
    pub keys: Arc<KeyCache>,
    pub rate_limits: Arc<RateLimits>,
    pub master_key: MasterKey,
    pub config: Arc<Config>,
    /// The connectors configured in this process (bill inquiry, dispatch).
    /// The configured connectors behind their circuit breakers.
    pub routes: Arc<Routes>,
    /// Bill inquiries: budget, cache and coalescing per biller.
    pub inquiry: Arc<InquiryGuard>,
    /// Background tasks of this state (the biller refresh).
    background: Arc<Vec<tokio::task::AbortHandle>>,
}

impl AppState {
    /// What the dispatch and callback workers need of this state.
    pub fn dispatch_deps(&self) -> crate::dispatch::Deps {
        crate::dispatch::Deps {
            store: self.store.clone(),
            billers: self.billers.clone(),
            routes: self.routes.clone(),
            config: self.config.clone(),
            master_key: self.master_key.clone(),
        }
    }

    /// Builds the state and starts the intake writer and the biller refresh.
    pub async fn start(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        config: Config,
    ) -> anyhow::Result<AppState> {
        let billers = BillerDirectory::load(&*store).await?;
        let refresh = billers.spawn_refresh(
            store.clone(),
            Duration::from_millis(config.intake.biller_refresh_ms.max(100)),
        );
        let routes = Arc::new(Routes::new(
            Connectors::from_settings(&config.connectors, &config.recon.file_routes, &master_key)?,
            config.routing.policy(),
        ));
        let config_inquiry = config.inquiry.clone();
        let intake = Intake::start(store.clone(), BatchPolicy::from_config(&config.intake));
        Ok(AppState {
            keys: Arc::new(KeyCache::new(Duration::from_millis(
                config.auth.key_cache_ttl_ms,
            ))),
            rate_limits: Arc::new(RateLimits::default()),
            store,
            intake,
            billers,
            master_key,
            config: Arc::new(config),
            routes,
            inquiry: Arc::new(InquiryGuard::new(config_inquiry)),
            background: Arc::new(vec![refresh.abort_handle()]),
        })
    }

    /// Stops the background tasks (before the store is closed).
    pub fn stop_background(&self) {
        self.background.iter().for_each(|t| t.abort());
    }
}

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
        .route("/openapi.json", get(health::openapi))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
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
