use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
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

/// `ready`: the system of record answers.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    Ready,
}

/// The service is ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: Ready,
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

/// Readiness: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "service",
    security(()),
    responses((status = 200, description = "Ready", body = Readiness)),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (ready, healthy) = (state.billers.snapshot().len(), state.store.ping().await);
    match healthy {
        Ok(()) => Ok(Json(Readiness {
            status: Ready::Ready,
            billers: ready as u64,
        })),
        Err(e) => Err(ApiError::unavailable(
            ProblemCode::NotReady,
            format!("database not reachable: {e}"),
        )),
    }
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
