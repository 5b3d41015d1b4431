//! What one running billclear process shares between its API handlers
//! and its workers: the store, the intake writer, the biller directory,
//! the connectors behind their circuit breakers, the bill-inquiry guard,
//! the channels' keys and rate limits, and the configuration.
//!
//! [`AppState::start`] builds it and starts what it owns (the intake
//! writer, the biller refresh); `crate::startup` puts it together with
//! the API, the workers and the settlement service.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::channel_keys::KeyCache;
use crate::auth::rate_limits::RateLimits;
use crate::auth::secrets::MasterKey;
use crate::config::Config;
use crate::dispatch::routes::Routes;
use crate::dispatch::Connectors;
use crate::inquiry::InquiryGuard;
use crate::intake::{BacklogWatch, BatchPolicy, BillerDirectory, Intake};
use crate::store::Store;

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
    /// Each biller's oldest payment waiting for dispatch: push-back.
    pub backlog: Arc<BacklogWatch>,
    /// The live processes on this database: shares of fleet-wide limits.
    pub fleet: Arc<crate::fleet::Fleet>,
    /// The liveness of this process's workers and broker connections
    /// (`/readyz`), registered by `crate::startup`.
    pub liveness: Arc<crate::liveness::Liveness>,
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

    /// Builds the state and starts the intake writer, the biller refresh
    /// and the backlog watch (which stores its counts as `process`).
    pub async fn start(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        config: Config,
        process: &str,
    ) -> anyhow::Result<AppState> {
        let billers = BillerDirectory::load(&*store).await?;
        let refresh = billers.spawn_refresh(
            store.clone(),
            Duration::from_millis(config.intake.biller_refresh_ms.max(100)),
        );
        // This process among the others on the database: fleet-wide limits
        // (inquiry budgets, routes' pace, channels' rates) are shared
        // between the live ones.
        let (fleet, registry) = crate::fleet::Fleet::join(
            process,
            store.clone(),
            Duration::from_millis(config.fleet.heartbeat_ms.max(50)),
            Duration::from_millis(config.fleet.stale_ms.max(100)),
        )
        .await?;
        let routes = Arc::new(Routes::new(
            Connectors::from_settings(
                &config.connectors,
                &config.recon.file_routes,
                &master_key,
                fleet.clone(),
            )?,
            config.routing.policy(),
        ));
        let config_inquiry = config.inquiry.clone();
        let backlog = Arc::new(BacklogWatch::new(config.intake.backlog_policy(), process));
        let watch = backlog.spawn(
            store.clone(),
            Duration::from_millis(config.intake.backlog_refresh_ms.max(100)),
        );
        // The process's metrics recorder (installed once), and the gauges
        // read from the database.
        crate::metrics::handle();
        let gauges = crate::metrics::spawn_refresh(
            store.clone(),
            crate::metrics::REFRESH_EVERY,
            config.settlement.catch_up_days,
        );
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
            inquiry: Arc::new(InquiryGuard::new(config_inquiry, fleet.clone())),
            fleet,
            backlog,
            liveness: Arc::default(),
            background: Arc::new(
                [
                    refresh.abort_handle(),
                    gauges.abort_handle(),
                    registry.abort_handle(),
                ]
                .into_iter()
                .chain(watch.map(|w| w.abort_handle()))
                .collect(),
            ),
        })
    }

    /// Stops the background tasks (before the store is closed).
    pub fn stop_background(&self) {
        self.background.iter().for_each(|t| t.abort());
    }
}
