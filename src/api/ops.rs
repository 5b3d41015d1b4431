//! The operators' API (`/ops/v1`): route states and planned route switches.
//! Authenticated by a bearer token (`security.ops_token`, or
//! `BILLCLEAR_SECURITY__OPS_TOKEN`); without one configured, the operators'
//! API is off. Channel credentials do not work here, nor this token on the
//! channel API. Finance staff (reconciliation and its breaks) have their
//! own users, roles (viewer, operator, approver: `domain::staff`) and
//! `bcstaff_` bearer tokens (`billclear staff add`), checked by the staff
//! API (`/v1/breaks`, `/v1/recon`), not here.

use axum::extract::State;

use super::extract::Path;
use axum::http::HeaderMap;
use axum::Json;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use super::billers::{BillerList, BillerView};
use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
use crate::state::AppState;

/// Checks `Authorization: Bearer <token>` against the configured token, in
/// constant time.
fn operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.security.ops_token.as_deref() else {
        return Err(ApiError::not_found(
            ProblemCode::OpsApiDisabled,
            "the operators' API is off: set security.ops_token to use it",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                ProblemCode::MissingOperatorToken,
                "send Authorization: Bearer <ops token>",
            )
        })?;
    // Compare MACs of both under a fixed key: constant time, any length.
    let mac = |s: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"billclear-ops-token").expect("any key length");
        m.update(s.as_bytes());
        m
    };
    let want = mac(expected).finalize().into_bytes();
    mac(given).verify_slice(&want).map_err(|_| {
        ApiError::unauthorized(
            ProblemCode::BadOperatorToken,
            "the operator token is not valid",
        )
    })
}

/// What the operator token check answers.
const OPERATOR: super::openapi::Problems = &[
    (
        401,
        &[
            ProblemCode::MissingOperatorToken,
            ProblemCode::BadOperatorToken,
        ],
    ),
    (404, &[ProblemCode::OpsApiDisabled]),
];

pub(super) const BILLERS: Operation = Operation {
    id: "listOpsBillers",
    problems: &[text::PROBLEMS, OPERATOR],
};

/// `GET /ops/v1/billers`: every biller (active or not) with its routes in
/// the order they are tried and their circuit states in this process.
#[utoipa::path(
    get,
    path = "/ops/v1/billers",
    operation_id = "listOpsBillers",
    tag = "operators",
    summary = "Operators: every biller with its routes in the order they are tried and their circuit states in this process",
    security(("opsBearer" = [])),
    responses((status = 200, description = "Every biller, active or not, by id", body = BillerList)),
)]
pub async fn billers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<BillerList>, ApiError> {
    operator(&state, &headers)?;
    let now = Utc::now();
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<_> = snapshot.values().collect();
    billers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(BillerList {
        data: billers
            .iter()
            .map(|b| BillerView::new(b, now, &state.routes))
            .collect(),
    }))
}

/// A planned route switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RouteSwitch)]
pub struct SwitchBody {
    /// A route of the biller, or null for its priority order. Required:
    /// an empty body does not silently mean "back to the order".
    #[schema(required = true, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    #[serde(deserialize_with = "present_or_null")]
    route: Option<String>,
}

/// A field that must be present, its value a string or null (serde takes
/// a missing `Option` for null unless told otherwise).
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

pub(super) const SWITCH_ROUTE: Operation = Operation {
    id: "switchRoute",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        OPERATOR,
        &[
            (400, &[ProblemCode::InvalidJson]),
            (404, &[ProblemCode::UnknownBiller]),
            (422, &[ProblemCode::UnknownRoute]),
            (500, &[ProblemCode::Internal]),
        ],
    ],
};

/// `PUT /ops/v1/billers/{id}/route`: planned switch of a biller's new
/// payments to one of its routes (`{"route": null}`: back to its order).
/// This process applies it at once, others within intake.biller_refresh_ms.
#[utoipa::path(
    put,
    path = "/ops/v1/billers/{biller_id}/route",
    operation_id = "switchRoute",
    tag = "operators",
    summary = "Operators: planned switch of a biller's new payments to one of its routes ({\"route\": null}: back to its priority order)",
    security(("opsBearer" = [])),
    params(("biller_id" = String, Path, description = "a biller (active or not)",
        min_length = 1, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$")),
    request_body(content = SwitchBody, content_type = "application/json"),
    responses((status = 200, description = "The biller with its routes", body = BillerView)),
)]
pub async fn switch_route(
    State(state): State<AppState>,
    Path(biller_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<SwitchBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BillerView>, ApiError> {
    operator(&state, &headers)?;
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(ProblemCode::InvalidJson, e.body_text()))?;
    if let Some(route) = &body.route {
        super::text::check_json(&Value::String(route.clone()), &[])
            .map_err(|e| e.field("route"))?;
    }
    use crate::dispatch::routes::{switch_preferred, SwitchError};
    switch_preferred(
        &*state.store,
        &state.billers,
        &biller_id,
        body.route.as_deref(),
    )
    .await
    .map_err(|e| match e {
        SwitchError::UnknownBiller(w) => ApiError::not_found(ProblemCode::UnknownBiller, w),
        SwitchError::UnknownRoute(w) => {
            ApiError::unprocessable(ProblemCode::UnknownRoute, w).field("route")
        }
        SwitchError::Store(e) => ApiError::internal(e.to_string()),
    })?;
    let now = Utc::now();
    let reloaded = state.billers.snapshot();
    let b = reloaded
        .get(&biller_id)
        .ok_or_else(|| ApiError::internal("biller vanished"))?;
    Ok(Json(BillerView::new(b, now, &state.routes)))
}
