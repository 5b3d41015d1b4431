//! `GET /v1/billers`: active billers with their input rules, amount rules
//! and availability.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::Signed;
use super::problem::ApiError;
use super::AppState;
use crate::domain::biller::{Biller, BillerStatus};

pub fn biller_json(b: &Biller, now: chrono::DateTime<Utc>) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "kind": b.kind,
        "currency": b.currency.code(),
        "account_number": {
            "pattern": b.account_rule.pattern(),
            "check_digit": b.account_rule.check_digit.map(|c| c.name()),
            "example": b.account_rule.example,
        },
        "amount": {
            "mode": b.amount_rule.mode(),
            "partial_allowed": b.amount_rule.partial,
            "overpay_allowed": b.amount_rule.overpay,
            "min": b.amount_rule.min.amount().to_string(),
            "max": b.amount_rule.max.amount().to_string(),
        },
        "availability": b.availability(now),
        "cutoff": {
            "time": b.cutoff.time.format("%H:%M").to_string(),
            "timezone": b.cutoff.zone.name(),
        },
    })
}

pub async fn list(State(state): State<AppState>, signed: Signed) -> Result<Json<Value>, ApiError> {
    signed.consume_nonce(&state).await?;
    let now = Utc::now();
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<&Biller> = snapshot
        .values()
        .filter(|b| b.status == BillerStatus::Active)
        .collect();
    billers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(
        json!({ "data": billers.iter().map(|b| biller_json(b, now)).collect::<Vec<_>>() }),
    ))
}
