use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::problem::ApiError;
use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the system of record answers.
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (ready, healthy) = (state.billers.snapshot().len(), state.store.ping().await);
    match healthy {
        Ok(()) => Ok(Json(json!({"status": "ready", "billers": ready}))),
        Err(e) => Err(ApiError::unavailable(
            "not_ready",
            format!("database not reachable: {e}"),
        )),
    }
}

pub static OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such endpoint; see /openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}
