//! `GET /v1/billers`: active billers with their input rules, amount rules
//! and availability. `GET /v1/billers/{id}/bills?account=`: bill inquiry
//! through the biller's route.

use axum::extract::State;

use super::extract::{Path, Query};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{self, Signed};
use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
use crate::dispatch::routes::Routes;
use crate::domain::biller::{AmountRule, Availability, Biller, BillerKind, BillerStatus};
use crate::domain::check_digit::CheckDigit;
use crate::domain::dispatch::mask_name;
use crate::domain::routing::{route_order, RouteState};
use crate::inquiry::InquiryError;
use crate::state::AppState;
use biller_connectors::{BillQuery, ConnectorError, RefusalKind};

/// A biller with its input rules, amount rules, availability, cut-off and
/// routes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Biller)]
pub struct BillerView {
    #[schema(value_type = String, example = "sh-water")]
    pub id: crate::domain::ids::BillerId,
    pub name: String,
    pub kind: BillerKind,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: &'static str,
    pub account_number: AccountNumberRule,
    pub amount: AmountRuleView,
    pub availability: Availability,
    pub cutoff: CutoffView,
    /// The biller's routes in the order they are tried, with their circuit
    /// states in the answering process.
    pub routes: Vec<RouteView>,
}

/// Which account numbers a biller takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountNumberRule {
    /// A regular expression the whole account number must match.
    pub pattern: String,
    /// The check digit the account number ends with, if any.
    #[schema(required = true)]
    pub check_digit: Option<CheckDigit>,
    /// An account number that passes.
    #[schema(required = true)]
    pub example: Option<String>,
}

/// How amounts are paid against a bill: `exact` (the amount due), `partial`
/// (at most the amount due), `overpay` (at least the amount due) or `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmountMode {
    Exact,
    Partial,
    Overpay,
    Any,
}

/// Which amounts a biller takes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AmountRule)]
pub struct AmountRuleView {
    pub mode: AmountMode,
    pub partial_allowed: bool,
    pub overpay_allowed: bool,
    /// The smallest payment, at exactly the currency's scale.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "1.00")]
    pub min: String,
    /// The largest payment, at exactly the currency's scale.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "50000.00")]
    pub max: String,
}

impl From<&AmountRule> for AmountRuleView {
    fn from(r: &AmountRule) -> AmountRuleView {
        AmountRuleView {
            mode: match (r.partial, r.overpay) {
                (false, false) => AmountMode::Exact,
                (true, false) => AmountMode::Partial,
                (false, true) => AmountMode::Overpay,
                (true, true) => AmountMode::Any,
            },
            partial_allowed: r.partial,
            overpay_allowed: r.overpay,
            min: r.min.amount().to_string(),
            max: r.max.amount().to_string(),
        }
    }
}

/// The daily cut-off that closes a business date.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Cutoff)]
pub struct CutoffView {
    /// HH:MM in the biller's time zone.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "23:00")]
    pub time: String,
    /// IANA time zone.
    #[schema(example = "Asia/Shanghai")]
    pub timezone: &'static str,
}

/// A route's circuit state in the answering process (`not_configured`: the
/// process has no connector of that id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RouteState)]
pub enum RouteStateView {
    Closed,
    Open,
    HalfOpen,
    NotConfigured,
}

impl From<Option<RouteState>> for RouteStateView {
    fn from(s: Option<RouteState>) -> RouteStateView {
        match s {
            Some(RouteState::Closed) => RouteStateView::Closed,
            Some(RouteState::Open) => RouteStateView::Open,
            Some(RouteState::HalfOpen) => RouteStateView::HalfOpen,
            None => RouteStateView::NotConfigured,
        }
    }
}

/// One of a biller's routes (connectors).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Route)]
pub struct RouteView {
    /// The connector id.
    pub id: String,
    pub state: RouteStateView,
    /// An operator switched the biller's new payments to this route.
    pub preferred: bool,
}

impl BillerView {
    pub fn new(b: &Biller, now: chrono::DateTime<Utc>, routes: &Routes) -> BillerView {
        let preferred = b.preferred_route.as_ref().map(|r| r.as_str());
        let route_names: Vec<String> = b.routes.iter().map(|r| r.to_string()).collect();
        let routes = route_order(&route_names, preferred)
            .into_iter()
            .map(|r| RouteView {
                id: r.to_string(),
                state: routes.state(r).into(),
                preferred: Some(r) == preferred,
            })
            .collect();
        BillerView {
            id: b.id.clone(),
            name: b.name.clone(),
            kind: b.kind,
            currency: b.currency.code(),
            account_number: AccountNumberRule {
                pattern: b.account_rule.pattern().to_string(),
                check_digit: b.account_rule.check_digit,
                example: b.account_rule.example.clone(),
            },
            amount: AmountRuleView::from(&b.amount_rule),
            availability: b.availability(now),
            cutoff: CutoffView {
                time: b.cutoff.time.format("%H:%M").to_string(),
                timezone: b.cutoff.zone.name(),
            },
            routes,
        }
    }
}

/// Billers.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillerList {
    pub data: Vec<BillerView>,
}

pub(super) const LIST: Operation = Operation {
    id: "listBillers",
    problems: &[text::PROBLEMS, auth::SIGNED, auth::NONCE],
};

/// Active billers with their account-number rules, amount rules,
/// availability, cut-off and routes.
#[utoipa::path(
    get,
    path = "/v1/billers",
    operation_id = "listBillers",
    tag = "billers",
    security(("bc1" = [])),
    responses((status = 200, description = "Active billers, by id", body = BillerList)),
)]
pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Json<BillerList>, ApiError> {
    signed.consume_nonce(&state).await?;
    let now = Utc::now();
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<&Biller> = snapshot
        .values()
        .filter(|b| b.status == BillerStatus::Active)
        .collect();
    billers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(BillerList {
        data: billers
            .iter()
            .map(|b| BillerView::new(b, now, &state.routes))
            .collect(),
    }))
}

#[derive(Debug, serde::Deserialize)]
pub struct BillsParams {
    account: Option<String>,
}

/// A customer account's outstanding bills, as the biller gave them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BillStatement)]
pub struct BillStatementView {
    #[schema(value_type = String, example = "sh-water")]
    pub biller_id: crate::domain::ids::BillerId,
    pub account_number: String,
    /// Masked: the first character only ("王**").
    pub customer_name: String,
    pub bills: Vec<BillView>,
}

/// One outstanding bill.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Bill)]
pub struct BillView {
    pub bill_reference: String,
    /// Decimal string at exactly the currency's scale.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "86.40")]
    pub amount_due: String,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    pub due_date: NaiveDate,
}

pub(super) const BILLS: Operation = Operation {
    id: "inquireBill",
    problems: &[
        super::extract::PATH,
        super::extract::QUERY,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[
            (400, &[ProblemCode::MissingAccount]),
            (
                404,
                &[ProblemCode::UnknownBiller, ProblemCode::AccountNotFound],
            ),
            (
                422,
                &[
                    ProblemCode::BillerSuspended,
                    ProblemCode::InvalidAccountNumber,
                    ProblemCode::InquiryNotSupported,
                    ProblemCode::BillerRefused,
                ],
            ),
            (429, &[ProblemCode::InquiryBudgetExceeded]),
            (502, &[ProblemCode::BillerBadAnswer]),
            (
                503,
                &[
                    ProblemCode::BillerInMaintenance,
                    ProblemCode::BillerUnreachable,
                    ProblemCode::BillerUnavailable,
                ],
            ),
        ],
    ],
};

/// Bill inquiry: outstanding bills of a customer account, asked of the
/// biller through its route.
///
/// The account number is checked against the biller's pattern and check
/// digit before the biller is asked. The customer name is masked. A biller
/// reached only by batch files offers no inquiry (422
/// `inquiry_not_supported`).
#[utoipa::path(
    get,
    path = "/v1/billers/{biller_id}/bills",
    operation_id = "inquireBill",
    tag = "billers",
    security(("bc1" = [])),
    params(
        ("biller_id" = String, Path, description = "a biller of GET /v1/billers",
            min_length = 1, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$"),
        ("account" = String, Query,
            description = "the customer's account number: it must match the biller's account_number.pattern and pass its check digit",
            min_length = 1, max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,64}$"),
    ),
    responses((status = 200, description = "The account's outstanding bills",
        body = BillStatementView,
        headers(("Billclear-Inquiry-Source" = String, description = "where the answer came from: `biller`, `cache`, or `coalesced` (shared with an identical inquiry in flight)")))),
)]
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
    let mut response = match statement_view(biller, &account, &route, answer, &kind) {
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
fn statement_view(
    biller: &Biller,
    account: &str,
    route: &str,
    answer: crate::inquiry::Answer,
    kind: &dyn Fn(&biller_connectors::Refusal) -> RefusalKind,
) -> Result<BillStatementView, ApiError> {
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
        bills.push(BillView {
            bill_reference: b.bill_reference.clone(),
            amount_due: due.amount().to_string(),
            currency: b.currency.clone(),
            due_date: b.due_date,
        });
    }
    Ok(BillStatementView {
        biller_id: biller.id.clone(),
        account_number: account.to_string(),
        customer_name: mask_name(&statement.customer_name),
        bills,
    })
}
