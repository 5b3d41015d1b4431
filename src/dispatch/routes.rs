//! The routes of this process: the configured connectors, each behind a
//! circuit breaker (`domain::routing`) fed by every call's outcome and by a
//! heartbeat, and the choice of route for a biller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use biller_connectors::{Connector, ConnectorError, NextStep};

use super::connectors::Connectors;
use crate::domain::biller::Biller;
use crate::domain::routing::{route_order, Breaker, BreakerPolicy, RouteState};
use crate::store::{RouteHealthRow, Store};

/// Why a biller has no usable route right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoute {
    /// Each route with why it was passed over.
    pub passed: Vec<(String, &'static str)>,
    /// When the first open breaker lets calls through again (None: no
    /// configured route at all).
    pub retry_in: Option<Duration>,
}

impl std::fmt::Display for NoRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .passed
            .iter()
            .map(|(r, why)| format!("{r}: {why}"))
            .collect();
        write!(f, "no usable route ({})", parts.join(", "))
    }
}

struct Health {
    breaker: Breaker,
    last_error: Option<String>,
}

pub struct Routes {
    connectors: Connectors,
    policy: BreakerPolicy,
    health: Mutex<HashMap<String, Health>>,
}

/// Whether an outcome says the route works: any answer, refusals included.
pub fn healthy<T>(result: &Result<T, ConnectorError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => e.next_step() == NextStep::Fail,
    }
}

impl Routes {
    pub fn new(connectors: Connectors, policy: BreakerPolicy) -> Routes {
        Routes {
            connectors,
            policy,
            health: Mutex::default(),
        }
    }

    pub fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    fn with<R>(&self, id: &str, f: impl FnOnce(&mut Health) -> R) -> R {
        let mut map = self.health.lock().expect("route health lock");
        let h = map.entry(id.to_string()).or_insert_with(|| Health {
            breaker: Breaker::new(self.policy),
            last_error: None,
        });
        f(h)
    }

    /// The state of a configured route (None: not configured here).
    pub fn state(&self, id: &str) -> Option<RouteState> {
        self.connectors.get(id)?;
        Some(self.with(id, |h| h.breaker.state(Instant::now())))
    }

    /// The route for a biller's new payment (`for_payment`: closed breakers
    /// only) or bill inquiry (half-open ones too: the inquiry is a probe).
    pub fn choose(
        &self,
        biller: &Biller,
        for_payment: bool,
    ) -> Result<(String, Arc<dyn Connector>), NoRoute> {
        let routes: Vec<String> = biller.routes.iter().map(|r| r.to_string()).collect();
        let preferred = biller.preferred_route.as_ref().map(|r| r.as_str());
        let now = Instant::now();
        let mut passed = Vec::new();
        let mut retry_in: Option<Duration> = None;
        for id in route_order(&routes, preferred) {
            let Some(connector) = self.connectors.get(id) else {
                passed.push((id.to_string(), "not configured"));
                continue;
            };
            let (usable, wait) = self.with(id, |h| {
                let usable = if for_payment {
                    h.breaker.takes_payments(now)
                } else {
                    h.breaker.allows_calls(now)
                };
                (usable, h.breaker.open_for(now))
            });
            if usable {
                return Ok((id.to_string(), connector));
            }
            passed.push((id.to_string(), "circuit open"));
            // Half-open routes wait for a probe: look again shortly.
            let wait = wait.max(Duration::from_millis(500));
            retry_in = Some(retry_in.map_or(wait, |w| w.min(wait)));
        }
        Err(NoRoute { passed, retry_in })
    }

    /// A route a payment is already on (a re-send, a status inquiry): the
    /// connector, or how long its open breaker still refuses calls.
    pub fn callable(&self, id: &str) -> Result<Arc<dyn Connector>, Option<Duration>> {
        let connector = self.connectors.get(id).ok_or(None)?;
        let now = Instant::now();
        let open_for = self.with(id, |h| {
            (!h.breaker.allows_calls(now)).then(|| h.breaker.open_for(now))
        });
        match open_for {
            Some(wait) => Err(Some(wait.max(Duration::from_millis(100)))),
            None => Ok(connector),
        }
    }

    /// Records a call's outcome on its route.
    pub fn record<T>(&self, id: &str, result: &Result<T, ConnectorError>) {
        let ok = healthy(result);
        let error = result.as_ref().err().filter(|_| !ok).map(|e| e.to_string());
        self.with(id, |h| {
            let before = h.breaker.state(Instant::now());
            h.breaker.record(ok, Instant::now());
            if let Some(e) = error {
                h.last_error = Some(e.chars().take(300).collect());
            }
            let after = h.breaker.state(Instant::now());
            crate::metrics::circuit(id, after);
            if before != after {
                tracing::warn!(route = id, from = before.as_str(), to = after.as_str(), last_error = ?h.last_error, "route circuit changed");
            }
        });
    }

    /// Every configured route's breaker, as the heartbeat stores it.
    pub fn snapshot(&self, worker: &str) -> Vec<RouteHealthRow> {
        let now = Instant::now();
        self.connectors
            .ids()
            .map(|id| {
                self.with(id, |h| RouteHealthRow {
                    connector_id: id.to_string(),
                    worker: worker.to_string(),
                    state: h.breaker.state(now),
                    consecutive_failures: h.breaker.consecutive_failures(),
                    last_error: h.last_error.clone(),
                    updated_at: chrono::Utc::now(),
                })
            })
            .collect()
    }

    /// One heartbeat: a health check through every route whose breaker
    /// allows calls (an open one waits out its time), all at once, then the
    /// snapshot is stored for `billclear routes list`.
    pub async fn beat(&self, store: &dyn Store, worker: &str) {
        // All routes at once: a silent one must not delay the others.
        let mut checks = tokio::task::JoinSet::new();
        for id in self.connectors.ids() {
            if let Ok(connector) = self.callable(id) {
                let id = id.to_string();
                checks.spawn(async move {
                    let result = connector.health().await;
                    (id, result)
                });
            }
        }
        while let Some(done) = checks.join_next().await {
            if let Ok((id, result)) = done {
                self.record(&id, &result);
            }
        }
        let snapshot = self.snapshot(worker);
        for r in &snapshot {
            crate::metrics::circuit(&r.connector_id, r.state);
        }
        if let Err(e) = store.record_route_health(worker, &snapshot).await {
            tracing::warn!(error = %e, "storing route health failed");
        }
    }
}

/// Beats every `every` until the task is aborted.
pub fn spawn_heartbeat(
    routes: Arc<Routes>,
    store: Arc<dyn Store>,
    worker: String,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            routes.beat(&*store, &worker).await;
        }
    })
}

/// Why a planned route switch is refused.
#[derive(Debug)]
pub enum SwitchError {
    UnknownBiller(String),
    /// Not a route id, or not one of the biller's routes.
    UnknownRoute(String),
    Store(crate::store::StoreError),
}

impl std::fmt::Display for SwitchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwitchError::UnknownBiller(w) | SwitchError::UnknownRoute(w) => f.write_str(w),
            SwitchError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// A switch made: the biller's preferred route before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub biller: crate::domain::ids::BillerId,
    pub from: Option<crate::domain::ids::ConnectorId>,
    pub to: Option<crate::domain::ids::ConnectorId>,
}

/// Whether a switch may be made (the biller known, the route one of its
/// own), without making it: the biller and the route.
pub fn check_switch(
    billers: &crate::intake::BillerDirectory,
    biller_id: &str,
    route: Option<&str>,
) -> Result<(Biller, Option<crate::domain::ids::ConnectorId>), SwitchError> {
    use crate::domain::ids::ConnectorId;
    let snapshot = billers.snapshot();
    let biller = snapshot.get(biller_id).ok_or_else(|| {
        SwitchError::UnknownBiller(format!(
            "biller {:?} is not known",
            biller_id.chars().take(64).collect::<String>()
        ))
    })?;
    let to = route
        .map(ConnectorId::parse)
        .transpose()
        .map_err(|e| SwitchError::UnknownRoute(e.to_string()))?;
    if let Some(r) = &to {
        if !biller.routes.contains(r) {
            return Err(SwitchError::UnknownRoute(format!(
                "{r} is not one of biller {}'s routes",
                biller.id
            )));
        }
    }
    Ok((biller.clone(), to))
}

/// A planned switch of a biller's new payments to one of its routes
/// (`None`: back to its priority order), as the operators' API and the
/// console make it: the biller must be known and the route one of its
/// own. Stored, then applied in this process at once (others within
/// `intake.biller_refresh_ms`).
pub async fn switch_preferred(
    store: &dyn Store,
    billers: &crate::intake::BillerDirectory,
    biller_id: &str,
    route: Option<&str>,
) -> Result<Switched, SwitchError> {
    let (biller, to) = check_switch(billers, biller_id, route)?;
    store
        .set_preferred_route(&biller.id, to.as_ref())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(w) => SwitchError::UnknownBiller(w),
            other => SwitchError::Store(other),
        })?;
    billers.reload(store).await.map_err(SwitchError::Store)?;
    tracing::warn!(biller = %biller.id, route = ?to.as_ref().map(|r| r.as_str()), "planned route switch");
    Ok(Switched {
        biller: biller.id.clone(),
        from: biller.preferred_route.clone(),
        to,
    })
}
