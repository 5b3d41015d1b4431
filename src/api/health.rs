use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::problem::{ApiError, ProblemCode};
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
            ProblemCode::NotReady,
            format!("database not reachable: {e}"),
        )),
    }
}

pub static OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
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

#[cfg(test)]
mod tests {
    use crate::api::problem::ProblemCode;

    #[test]
    fn the_document_lists_every_problem_code_the_service_returns() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let listed: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]
            ["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let codes: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }
}
