//! `GET /v1/billers`: active billers with their input rules, amount rules
//! and availability. `GET /v1/billers/{id}/bills?account=`: bill inquiry
//! through the biller's route.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::Signed;
use super::problem::{ApiError, ProblemCode};
use crate::dispatch::routes::Routes;
use crate::domain::biller::{Availability, Biller, BillerStatus};
use crate::domain::dispatch::mask_name;
use crate::domain::routing::route_order;
use crate::inquiry::InquiryError;
use crate::state::AppState;
use biller_connectors::{BillQuery, ConnectorError, RefusalKind};

pub fn biller_json(b: &Biller, now: chrono::DateTime<Utc>, routes: &Routes) -> Value {
    let preferred = b.preferred_route.as_ref().map(|r| r.as_str());
    let route_names: Vec<String> = b.routes.iter().map(|r| r.to_string()).collect();
    let routes: Vec<Value> = route_order(&route_names, preferred)
        .into_iter()
        .map(|r| {
            json!({
                "id": r,
                "state": routes.state(r).map_or("not_configured", |s| s.as_str()),
                "preferred": Some(r) == preferred,
            })
        })
        .collect();
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
        "routes": routes,
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
        json!({ "data": billers.iter().map(|b| biller_json(b, now, &state.routes)).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct BillsParams {
    account: Option<String>,
}

/// Bill inquiry: the account number is checked against the biller's rule
/// before the biller is asked; the customer name is masked.
pub async fn bills(
    State(state): State<AppState>,
    Path(biller_id): Path<String>,
    Query(params): Query<BillsParams>,
    signed: Signed,
) -> Result<axum::response::Response, ApiError> {
    signed.consume_nonce(&state).await?;
    let snapshot = state.billers.snapshot();
    let biller = snapshot.get(&biller_id).ok_or_else(|| {
        ApiError::not_found(
            ProblemCode::UnknownBiller,
            format!(
                "biller {:?} is not known",
                biller_id.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let account = params.account.unwrap_or_default();
    if account.is_empty() {
        return Err(ApiError::bad_request(
            ProblemCode::MissingAccount,
            "give the customer's account number as ?account=",
        )
        .field("account"));
    }
    match biller.availability(Utc::now()) {
        Availability::Available => {}
        Availability::Suspended => {
            return Err(ApiError::unprocessable(
                ProblemCode::BillerSuspended,
                format!("biller {} is suspended", biller.id),
            ))
        }
        Availability::Maintenance { until } => {
            let secs = (until - Utc::now()).num_seconds().max(1) as u64;
            return Err(ApiError::unavailable(
                ProblemCode::BillerInMaintenance,
                format!(
                    "biller {} is in a maintenance window until {until}",
                    biller.id
                ),
            )
            .retry_after(secs));
        }
    }
    biller.account_rule.check(&account).map_err(|e| {
        ApiError::unprocessable(ProblemCode::InvalidAccountNumber, e.to_string()).field("account")
    })?;
    let connectors = state.routes.connectors();
    if !biller.routes.is_empty()
        && biller
            .routes
            .iter()
            .all(|r| connectors.file_route(r.as_str()).is_some())
    {
        // Batch files only: asking again will never help.
        return Err(ApiError::unprocessable(
            ProblemCode::InquiryNotSupported,
            format!(
                "biller {} is reached only by batch files and offers no bill inquiry; pay without one (the amount due comes from the customer's bill)",
                biller.id
            ),
        ));
    }
    let (route, connector) = state.routes.choose(biller, false).map_err(|no_route| {
        let retry = no_route.retry_in.map_or(60, |w| w.as_secs().max(1));
        ApiError::unavailable(
            ProblemCode::BillerUnreachable,
            format!("biller {} cannot be reached now: {no_route}", biller.id),
        )
        .retry_after(retry)
    })?;
    let query = BillQuery {
        biller_id: biller.id.to_string(),
        account_number: account.clone(),
    };
    // The cache, an identical inquiry in flight, or the biller within its
    // budget: never more than its budget, whatever the channels send.
    let (answer, source) = state
        .inquiry
        .bills(biller.id.as_str(), &account, async {
            let answer = connector.bills(&query).await;
            state.routes.record(&route, &answer);
            answer
        })
        .await
        .map_err(|e| match e {
            InquiryError::OverBudget { retry_after_s, .. } => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::InquiryBudgetExceeded,
                "Too many bill inquiries for this biller",
                e.to_string(),
            )
            .retry_after(retry_after_s),
        })?;
    let kind = |r: &biller_connectors::Refusal| connector.refusal_kind(r);
    let mut response = match statement_json(biller, &account, &route, answer, &kind) {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    };
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("billclear-inquiry-source"),
        axum::http::HeaderValue::from_static(source.as_str()),
    );
    Ok(response)
}

/// The channel's view of a biller's answer: the customer name masked, the
/// amounts taken only if exact in the biller's currency, a refusal or
/// silence mapped to a stable code.
fn statement_json(
    biller: &Biller,
    account: &str,
    route: &str,
    answer: crate::inquiry::Answer,
    kind: &dyn Fn(&biller_connectors::Refusal) -> RefusalKind,
) -> Result<Value, ApiError> {
    // What a biller says reaches a channel only cleaned and bounded.
    let said = |m: &str| {
        m.chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
    };
    let statement = answer.map_err(|e| match e {
        ConnectorError::Fail(r) if kind(&r) == RefusalKind::UnknownAccount => ApiError::not_found(
            ProblemCode::AccountNotFound,
            format!("biller {} has no account {account}", biller.id),
        ),
        ConnectorError::Fail(r) => ApiError::unprocessable(
            ProblemCode::BillerRefused,
            format!(
                "biller {} refused the inquiry (code {}): {}",
                biller.id,
                said(&r.code),
                said(&r.message)
            ),
        ),
        other => ApiError::unavailable(
            ProblemCode::BillerUnavailable,
            format!(
                "biller {} did not answer through {route}: {}",
                biller.id,
                said(&other.to_string())
            ),
        )
        .retry_after(5),
    })?;
    // The biller's amounts are taken only if exact in its currency: never rounded.
    let bad_answer = |why: String| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            ProblemCode::BillerBadAnswer,
            "Biller answer refused",
            format!("biller {} answered a bill inquiry with {why}", biller.id),
        )
    };
    let mut bills = Vec::with_capacity(statement.bills.len());
    for b in &statement.bills {
        if b.currency != biller.currency.code() {
            return Err(bad_answer(format!("a bill in {:?}", b.currency)));
        }
        let due = crate::domain::money::Money::new_or_zero(b.amount_due, biller.currency)
            .map_err(|e| bad_answer(format!("amount due {}: {e}", b.amount_due)))?;
        bills.push(json!({
            "bill_reference": b.bill_reference,
            "amount_due": due.amount().to_string(),
            "currency": b.currency,
            "due_date": b.due_date,
        }));
    }
    Ok(json!({
        "biller_id": biller.id,
        "account_number": account,
        "customer_name": mask_name(&statement.customer_name),
        "bills": bills,
    }))
}
