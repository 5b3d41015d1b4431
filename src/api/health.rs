use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
use crate::liveness::Check;
use crate::state::AppState;

/// `ok`: the process answers.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alive {
    Ok,
}

/// The process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: Alive,
}

/// `ready`: every check is `ok` or `off`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    Ready,
}

/// One check: `ok`, `down`, or `off` (this process does not run that
/// part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Ok,
    Down,
    Off,
}

impl From<Check> for CheckState {
    fn from(c: Check) -> CheckState {
        match c {
            Check::Ok => CheckState::Ok,
            Check::Down => CheckState::Down,
            Check::Off => CheckState::Off,
        }
    }
}

/// What `/readyz` looked at (never an error's text: that is logged).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// The database answers.
    pub database: CheckState,
    /// This process's RabbitMQ connections (the settlement relay and
    /// consumer) are up; `off` when it does not run settlement.
    pub broker: CheckState,
    /// This process's dispatch and callback loops went round recently;
    /// `off` when it does not run them.
    pub workers: CheckState,
}

impl ReadinessChecks {
    fn ready(&self) -> bool {
        [self.database, self.broker, self.workers]
            .iter()
            .all(|c| *c != CheckState::Down)
    }
}

/// The service is ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: Ready,
    pub checks: ReadinessChecks,
    /// Billers known to this process (active or not).
    pub billers: u64,
}

pub(super) const HEALTHZ: Operation = Operation {
    id: "healthz",
    problems: &[text::PROBLEMS],
};

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "service",
    security(()),
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn healthz() -> impl IntoResponse {
    Json(Health { status: Alive::Ok })
}

pub(super) const READYZ: Operation = Operation {
    id: "readyz",
    problems: &[text::PROBLEMS, &[(503, &[ProblemCode::NotReady])]],
};

/// Readiness: the database answers, and the parts this process runs are
/// alive (its RabbitMQ connections, its worker loops). A 503 `not_ready`
/// problem carries the same `checks` and names what is down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "service",
    security(()),
    responses((status = 200, description = "Ready", body = Readiness)),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let database = match state.store.ping().await {
        Ok(()) => Check::Ok,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            Check::Down
        }
    };
    let checks = ReadinessChecks {
        database: database.into(),
        broker: state.liveness.broker().into(),
        workers: state.liveness.workers().into(),
    };
    if checks.ready() {
        return Ok(Json(Readiness {
            status: Ready::Ready,
            billers: state.billers.snapshot().len() as u64,
            checks,
        }));
    }
    let down: Vec<&str> = [
        ("database", checks.database),
        ("broker", checks.broker),
        ("workers", checks.workers),
    ]
    .iter()
    .filter(|(_, c)| *c == CheckState::Down)
    .map(|(n, _)| *n)
    .collect();
    let mut e = ApiError::unavailable(
        ProblemCode::NotReady,
        format!("not ready: {} down", down.join(", ")),
    );
    e.checks = Some(checks);
    Err(e)
}

pub(super) const METRICS: Operation = Operation {
    id: "getMetrics",
    problems: &[text::PROBLEMS],
};

/// This process's metrics in the Prometheus text format (names and labels
/// in the README). The gauges read from the database are the fleet's, the
/// counters this process's.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "service",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

pub(super) const OPENAPI: Operation = Operation {
    id: "getOpenApi",
    problems: &[text::PROBLEMS],
};

/// This document (OpenAPI 3.1), generated from the handlers and their
/// types.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "service",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::not_found(
        ProblemCode::NoSuchRoute,
        "no such endpoint; see /openapi.json",
    )
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ProblemCode::MethodNotAllowed,
        "Method not allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}
