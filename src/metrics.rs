//! Metrics in the Prometheus text format, served at `/metrics`.
//!
//! One recorder per process (`metrics` keeps a single global recorder):
//! [`handle`] installs it the first time it is asked for, so several
//! services started in one process (tests, the demo) share it. Every name
//! starts with `billclear_`, and labels are low-cardinality only (billers,
//! channels, routes, states, topics, categories: never a payment id nor an
//! account). The README lists every name and its labels.
//!
//! The counters and histograms are recorded where things happen; the
//! gauges read from the database (UNKNOWN payments, outbox, breaks,
//! settlement) are refreshed by [`spawn_refresh`] every few seconds.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::domain::recon::matching::Category;
use crate::domain::routing::RouteState;
use crate::store::{FleetGauges, Store, Topic};

pub const PAYMENTS_ACCEPTED: &str = "billclear_payments_accepted_total";
pub const PAYMENTS_FINAL: &str = "billclear_payments_final_total";
pub const PAYMENT_ACCEPT_SECONDS: &str = "billclear_payment_accept_seconds";
pub const DISPATCH_SECONDS: &str = "billclear_dispatch_seconds";
pub const DISPATCH_TOTAL: &str = "billclear_dispatch_total";
pub const PAYMENTS_UNKNOWN: &str = "billclear_payments_unknown";
pub const PAYMENTS_UNKNOWN_OLDEST: &str = "billclear_payments_unknown_oldest_seconds";
pub const OUTBOX_DEPTH: &str = "billclear_outbox_depth";
pub const OUTBOX_LAG: &str = "billclear_outbox_lag_seconds";
pub const CALLBACKS_PENDING: &str = "billclear_callbacks_pending";
pub const BREAKS_OPEN: &str = "billclear_breaks_open";
pub const SETTLEMENT_BATCHES: &str = "billclear_settlement_batches";
pub const SETTLEMENT_OVERDUE: &str = "billclear_settlement_dates_overdue";
pub const ROUTE_CIRCUIT: &str = "billclear_route_circuit_state";
pub const INQUIRY_USED: &str = "billclear_inquiry_budget_used_total";
pub const INQUIRY_REFUSED: &str = "billclear_inquiry_budget_refused_total";
pub const HTTP_REQUESTS: &str = "billclear_http_requests_total";
pub const HTTP_SECONDS: &str = "billclear_http_request_seconds";
pub const COMPLAINTS_RAISED: &str = "billclear_complaints_raised_total";
pub const COMPLAINTS_ESCALATED: &str = "billclear_complaints_escalated_total";
pub const COMPLAINTS_RESOLVED: &str = "billclear_complaints_resolved_total";
pub const GAUGES_REFRESHED: &str = "billclear_gauges_refreshed_timestamp_seconds";

/// How often the database gauges are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Latency buckets (seconds): 1 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// This process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("buckets are not empty");
        match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder was installed first (not ours): render an
            // unused one, so that /metrics still answers.
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder was already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// The exposition (Prometheus text format 0.0.4).
pub fn render() -> String {
    let h = handle();
    h.run_upkeep();
    h.render()
}

pub fn payment_accepted(biller: &str, channel: &str, took: Duration) {
    counter!(PAYMENTS_ACCEPTED, "biller" => biller.to_string(), "channel" => channel.to_string())
        .increment(1);
    histogram!(PAYMENT_ACCEPT_SECONDS).record(took.as_secs_f64());
}

pub fn payment_final(biller: &str, channel: &str, state: &str) {
    counter!(PAYMENTS_FINAL, "biller" => biller.to_string(), "channel" => channel.to_string(),
        "state" => state.to_string())
    .increment(1);
}

/// One call through a route (a send or a status inquiry) and its outcome.
pub fn dispatched(route: &str, outcome: &str, took: Duration) {
    histogram!(DISPATCH_SECONDS, "route" => route.to_string()).record(took.as_secs_f64());
    counter!(DISPATCH_TOTAL, "route" => route.to_string(), "outcome" => outcome.to_string())
        .increment(1);
}

/// 0 closed, 1 half-open, 2 open.
pub fn circuit(route: &str, state: RouteState) {
    let v = match state {
        RouteState::Closed => 0.0,
        RouteState::HalfOpen => 1.0,
        RouteState::Open => 2.0,
    };
    gauge!(ROUTE_CIRCUIT, "route" => route.to_string()).set(v);
}

pub fn inquiry_budget(biller: &str, spent: bool) {
    let name = if spent { INQUIRY_USED } else { INQUIRY_REFUSED };
    counter!(name, "biller" => biller.to_string()).increment(1);
}

pub fn complaint_raised(biller: &str, kind: &str) {
    counter!(COMPLAINTS_RAISED, "biller" => biller.to_string(), "kind" => kind.to_string())
        .increment(1);
}

/// A complaint whose turn-around time ran out.
pub fn complaint_escalated(biller: &str, kind: &str) {
    counter!(COMPLAINTS_ESCALATED, "biller" => biller.to_string(), "kind" => kind.to_string())
        .increment(1);
}

/// A complaint answered for good; `by` is "machine" or "staff".
pub fn complaint_resolved(biller: &str, kind: &str, by: &str) {
    counter!(COMPLAINTS_RESOLVED, "biller" => biller.to_string(), "kind" => kind.to_string(), "by" => by.to_string())
        .increment(1);
}

pub fn http_request(route: &str, status: u16, took: Duration) {
    counter!(HTTP_REQUESTS, "route" => route.to_string(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_SECONDS, "route" => route.to_string()).record(took.as_secs_f64());
}

/// Sets the gauges read from the database. Every known label value is set
/// (0 when absent), so a series that empties reads 0, not its last value.
pub fn set_fleet(g: &FleetGauges) {
    gauge!(PAYMENTS_UNKNOWN).set(g.unknown as f64);
    gauge!(PAYMENTS_UNKNOWN_OLDEST).set(g.unknown_oldest_s);
    for topic in [Topic::Dispatch, Topic::Callback, Topic::Settlement] {
        let t = topic.as_str();
        let (depth, lag) = g
            .outbox
            .iter()
            .find(|o| o.0 == t)
            .map(|o| (o.1, o.2))
            .unwrap_or((0, 0.0));
        gauge!(OUTBOX_DEPTH, "topic" => t).set(depth as f64);
        gauge!(OUTBOX_LAG, "topic" => t).set(lag);
        if topic == Topic::Callback {
            gauge!(CALLBACKS_PENDING).set(depth as f64);
        }
    }
    for c in Category::ALL {
        let n = g
            .open_breaks
            .iter()
            .find(|b| b.0 == c.as_str())
            .map_or(0, |b| b.1);
        gauge!(BREAKS_OPEN, "category" => c.as_str()).set(n as f64);
    }
    gauge!(SETTLEMENT_BATCHES, "files" => "pending").set(g.batches_files_pending as f64);
    gauge!(SETTLEMENT_BATCHES, "files" => "written").set(g.batches_files_written as f64);
    gauge!(SETTLEMENT_BATCHES, "files" => "failed").set(g.batches_files_failed as f64);
    gauge!(GAUGES_REFRESHED).set(chrono::Utc::now().timestamp() as f64);
}

/// Refreshes the database gauges every `every` (the first at once) until
/// the task is aborted. Each process of a fleet reads the same numbers:
/// aggregate them with `max`.
pub fn spawn_refresh(
    store: Arc<dyn Store>,
    every: Duration,
    catch_up_days: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = refresh(&*store, catch_up_days).await {
                tracing::debug!(error = %e, "metrics: refreshing the database gauges failed");
            }
        }
    })
}

/// One refresh of the database gauges.
pub async fn refresh(store: &dyn Store, catch_up_days: u32) -> crate::store::StoreResult<()> {
    let g = store.fleet_gauges(catch_up_days).await?;
    set_fleet(&g);
    // A business date whose cut-off has passed and that has no batch.
    let now = chrono::Utc::now();
    for b in store.load_billers().await? {
        if b.settlement.is_none() {
            continue;
        }
        let closed: BTreeSet<_> = g
            .closed_dates
            .iter()
            .filter(|(id, _)| id == b.id.as_str())
            .map(|(_, d)| *d)
            .collect();
        let due = crate::settlement::close::due_dates(&b, &closed, now, catch_up_days);
        gauge!(SETTLEMENT_OVERDUE, "biller" => b.id.to_string()).set(due.len() as f64);
    }
    Ok(())
}
