//! `POST /v1/payments` (idempotent), `GET /v1/payments/{id}`,
//! `GET /v1/payments?channel_reference=`.

use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{self, nonce_reused, Signed};
use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
use crate::domain::ids::PaymentId;
use crate::domain::ledger::Journal;
use crate::domain::payment::{
    mask_account, valid_idempotency_key, Payment, PaymentRequest, PaymentRequestBody,
    PaymentStatus, RequestError,
};
use crate::intake::IntakeError;
use crate::state::AppState;
use crate::store::{AcceptItem, AcceptOutcome};

/// A payment as its channel sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    #[schema(value_type = uuid::Uuid)]
    pub id: PaymentId,
    pub status: PaymentStatus,
    #[schema(value_type = String, example = "sh-water")]
    pub biller_id: crate::domain::ids::BillerId,
    pub account_number: String,
    /// Decimal string at exactly the currency's scale.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "100.00")]
    pub amount: String,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: &'static str,
    #[schema(required = true)]
    pub bill_reference: Option<String>,
    /// The channel's own reference, unique per channel.
    pub channel_reference: String,
    /// The biller's receipt, once CONFIRMED.
    #[schema(required = true)]
    pub biller_reference: Option<String>,
    /// When the biller credited it (its clock), once CONFIRMED.
    #[schema(required = true)]
    pub confirmed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> PaymentView {
        PaymentView {
            id: p.id,
            status: p.status,
            biller_id: p.biller_id.clone(),
            account_number: p.account_number.clone(),
            amount: p.amount.amount().to_string(),
            currency: p.amount.currency().code(),
            bill_reference: p.bill_reference.clone(),
            channel_reference: p.channel_reference.clone(),
            biller_reference: p.biller_reference.clone(),
            confirmed_at: p.confirmed_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Zero or one payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub data: Vec<PaymentView>,
}

const FIELDS: &[(&str, bool)] = &[
    ("biller_id", true),
    ("account_number", true),
    ("amount", true),
    ("currency", true),
    ("bill_reference", false),
    ("channel_reference", true),
];

/// A request body that must be a JSON object of the `known` fields only,
/// with no control character in any string (fields in `free_text` may
/// break lines): 400 `malformed_json`, 400 `invalid_characters`, 422
/// `unknown_field`.
pub(super) fn json_object(
    body: &[u8],
    known: &[&str],
    free_text: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            ProblemCode::MalformedJson,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    super::text::check_json(&value, free_text)?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            ProblemCode::MalformedJson,
            "body must be a JSON object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::unprocessable(
            ProblemCode::UnknownField,
            format!(
                "unknown field {:?}",
                unknown.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(obj)
}

/// Reads the body: a JSON object whose every field is a string (amounts are
/// decimal strings, never JSON numbers), with no unknown fields.
fn parse_body(body: &[u8]) -> Result<PaymentRequestBody, ApiError> {
    let names: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
    let mut obj = json_object(body, &names, &[])?;
    for (field, required) in FIELDS {
        match obj.get(*field) {
            None | Some(Value::Null) if *required => {
                return Err(ApiError::unprocessable(
                    ProblemCode::MissingField,
                    format!("{field} is required"),
                )
                .field(*field))
            }
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Number(_)) if *field == "amount" => {
                return Err(ApiError::unprocessable(
                    ProblemCode::InvalidAmount,
                    "amount must be a decimal string such as \"123.45\", not a JSON number",
                )
                .field("amount"))
            }
            Some(_) => {
                return Err(ApiError::unprocessable(
                    ProblemCode::InvalidField,
                    format!("{field} must be a string"),
                )
                .field(*field))
            }
        }
    }
    let mut take = |f: &str| match obj.remove(f) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(PaymentRequestBody {
        biller_id: take("biller_id").unwrap_or_default(),
        account_number: take("account_number").unwrap_or_default(),
        amount: take("amount").unwrap_or_default(),
        currency: take("currency").unwrap_or_default(),
        bill_reference: take("bill_reference"),
        channel_reference: take("channel_reference").unwrap_or_default(),
    })
}

fn request_error(e: RequestError) -> ApiError {
    use crate::domain::biller::PaymentAmountError;
    use crate::domain::money::MoneyError;
    match e {
        RequestError::FieldLength { field, .. } => {
            ApiError::unprocessable(ProblemCode::InvalidField, e.to_string()).field(field)
        }
        RequestError::UnknownBiller(_) => {
            ApiError::unprocessable(ProblemCode::UnknownBiller, e.to_string()).field("biller_id")
        }
        RequestError::BillerSuspended(_) => {
            ApiError::unprocessable(ProblemCode::BillerSuspended, e.to_string()).field("biller_id")
        }
        RequestError::BillerMaintenance { until, .. } => {
            let secs = (until - Utc::now()).num_seconds().max(1) as u64;
            ApiError::unavailable(ProblemCode::BillerInMaintenance, e.to_string()).retry_after(secs)
        }
        RequestError::CurrencyMismatch { .. } => {
            ApiError::unprocessable(ProblemCode::CurrencyMismatch, e.to_string()).field("currency")
        }
        RequestError::Account(_) => {
            ApiError::unprocessable(ProblemCode::InvalidAccountNumber, e.to_string())
                .field("account_number")
        }
        RequestError::Amount(PaymentAmountError::Rule(_)) => {
            ApiError::unprocessable(ProblemCode::AmountOutOfRange, e.to_string()).field("amount")
        }
        RequestError::Amount(PaymentAmountError::Money(MoneyError::NotPositive)) => {
            ApiError::unprocessable(
                ProblemCode::InvalidAmount,
                "amount must be greater than zero",
            )
            .field("amount")
        }
        RequestError::Amount(_) => {
            ApiError::unprocessable(ProblemCode::InvalidAmount, e.to_string()).field("amount")
        }
    }
}

fn replayed(status: u16, body: String, replay: bool) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replay {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// How often a taken key is looked up again before giving up (the holder
/// of the key may have released it in the meantime).
const KEY_TAKEN_ROUNDS: usize = 3;

/// The problems `POST /v1/payments` answers with (the middleware's, the
/// signed-request extractor's and its own), for the document.
pub(super) const CREATE: Operation = Operation {
    id: "createPayment",
    problems: &[
        text::PROBLEMS,
        auth::SIGNED,
        &[
            (
                400,
                &[
                    ProblemCode::MissingIdempotencyKey,
                    ProblemCode::InvalidIdempotencyKey,
                    ProblemCode::MalformedJson,
                ],
            ),
            (401, &[ProblemCode::NonceReused]),
            (
                409,
                &[
                    ProblemCode::DuplicateChannelReference,
                    ProblemCode::IdempotencyKeyReused,
                ],
            ),
            (415, &[ProblemCode::UnsupportedMediaType]),
            (
                422,
                &[
                    ProblemCode::UnknownField,
                    ProblemCode::MissingField,
                    ProblemCode::InvalidField,
                    ProblemCode::InvalidAmount,
                    ProblemCode::UnknownBiller,
                    ProblemCode::BillerSuspended,
                    ProblemCode::CurrencyMismatch,
                    ProblemCode::InvalidAccountNumber,
                    ProblemCode::AmountOutOfRange,
                ],
            ),
            (
                503,
                &[
                    ProblemCode::BillerInMaintenance,
                    ProblemCode::BillerBacklogged,
                    ProblemCode::Overloaded,
                    ProblemCode::ShuttingDown,
                    ProblemCode::Contention,
                ],
            ),
        ],
    ],
};

/// Submit a bill payment (idempotent).
///
/// Recorded durably with its pending ledger transfer before the answer.
/// The same `Idempotency-Key` with the same body replays the first answer
/// (with `Idempotent-Replayed: true`); with another body it is a 409.
#[utoipa::path(
    post,
    path = "/v1/payments",
    operation_id = "createPayment",
    tag = "payments",
    security(("bc1" = [])),
    params(
        ("Idempotency-Key" = String, Header,
            description = "1-128 visible ASCII characters, scoped to the channel; the same key and body replay the first answer with Idempotent-Replayed: true",
            min_length = 1, max_length = 128, pattern = "^[\\x21-\\x7E]{1,128}$"),
    ),
    request_body(content = PaymentRequestBody, content_type = "application/json",
        description = "Every field is a string: amounts are decimal strings, never JSON numbers. No other field is accepted."),
    responses(
        (status = 201, description = "Accepted: recorded durably with its pending ledger transfer (or the first answer to this Idempotency-Key, replayed)",
            body = PaymentView,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the replayed first answer to the same Idempotency-Key and body"))),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Signed,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let key = idempotency_key(&headers)?;
    require_json(&headers)?;
    let now = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncating to microseconds");
    let billers = state.billers.snapshot();
    let parsed = parse_body(&signed.body).and_then(|body| {
        PaymentRequest::parse(signed.channel.id.clone(), body, |id| billers.get(id), now)
            .map_err(request_error)
    });
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            // A replayed nonce is a 401 whatever the body says.
            signed.check_nonce_unused(&state).await?;
            return Err(e);
        }
    };
    backlogged(&state, &request)?;
    let accepted = Accepted::new(request, now);
    // The first attempt records the request's nonce; a retry (after the key's
    // holder released it) must not record it again.
    let mut nonce = Some(signed.nonce.clone());
    for _ in 0..KEY_TAKEN_ROUNDS {
        let outcome = state
            .intake
            .accept(accepted.item(&key, &signed.key_id, nonce.take()))
            .await
            .map_err(intake_error)?;
        let fresh = matches!(outcome, AcceptOutcome::Accepted);
        match answer(&state, &signed, &key, &accepted, outcome).await? {
            Some(response) => {
                if fresh {
                    crate::metrics::payment_accepted(
                        accepted.request.biller_id.as_str(),
                        signed.channel.id.as_str(),
                        started.elapsed(),
                    );
                }
                return Ok(response);
            }
            // Released by a request that lost on its channel reference:
            // try again (the nonce was recorded by the first attempt).
            None => continue,
        }
    }
    Err(ApiError::unavailable(
        ProblemCode::Contention,
        "the Idempotency-Key is contended; retry with the same key",
    ))
}

/// Push-back: a payment for a biller whose deliveries are behind is
/// refused before anything is written (another biller's are taken).
fn backlogged(state: &AppState, request: &PaymentRequest) -> Result<(), ApiError> {
    match state.backlog.check(request.biller_id.as_str()) {
        None => Ok(()),
        Some(b) => Err(ApiError::unavailable(
            ProblemCode::BillerBacklogged,
            format!(
                "biller {} is behind: its oldest payment waiting for delivery has waited {} s \
                 (more than {} s); nothing was recorded, retry after {} s with the same \
                 Idempotency-Key",
                request.biller_id,
                b.oldest_age.as_secs(),
                b.bound.as_secs(),
                b.retry_after_s
            ),
        )
        .retry_after(b.retry_after_s)),
    }
}

/// The `Idempotency-Key` header: required, 1-128 visible ASCII characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::MissingIdempotencyKey,
                "the Idempotency-Key header is required",
            )
        })?
        .to_str()
        .ok()
        .filter(|k| valid_idempotency_key(k))
        .ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1-128 visible ASCII characters",
            )
        })?
        .to_string())
}

/// Refuses a body that is not declared `application/json`.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if json_ct {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::UnsupportedMediaType,
            "Unsupported media type",
            "send the body as Content-Type: application/json",
        ))
    }
}

/// A valid request made into a payment: its id, its 201 answer and its
/// acceptance journal, the same on every attempt.
struct Accepted {
    payment_id: PaymentId,
    request: PaymentRequest,
    fingerprint: [u8; 32],
    journal: Journal,
    body: String,
    received_at: chrono::DateTime<Utc>,
}

impl Accepted {
    fn new(request: PaymentRequest, now: chrono::DateTime<Utc>) -> Accepted {
        let payment_id = PaymentId::new();
        let span = tracing::info_span!("payment", payment_id = %payment_id, channel = %request.channel_id, biller = %request.biller_id, account = %mask_account(&request.account_number));
        let _enter = span.enter();
        let payment = Payment {
            id: payment_id,
            channel_id: request.channel_id.clone(),
            channel_reference: request.channel_reference.clone(),
            biller_id: request.biller_id.clone(),
            account_number: request.account_number.clone(),
            bill_reference: request.bill_reference.clone(),
            amount: request.amount,
            status: PaymentStatus::Received,
            created_at: now,
            updated_at: now,
            connector_id: None,
            biller_reference: None,
            confirmed_at: None,
        };
        let journal = Journal::payment_accepted(
            payment_id,
            &request.channel_id,
            &request.biller_id,
            request.amount,
        );
        Accepted {
            payment_id,
            fingerprint: request.fingerprint(),
            body: serde_json::to_string(&PaymentView::from(&payment))
                .expect("a payment serialises"),
            request,
            journal,
            received_at: now,
        }
    }

    /// What intake writes for one attempt.
    fn item(&self, key: &str, key_id: &str, nonce: Option<String>) -> AcceptItem {
        AcceptItem {
            payment_id: self.payment_id,
            journal: self.journal.clone(),
            fingerprint: self.fingerprint,
            request: self.request.clone(),
            idempotency_key: key.to_string(),
            response_status: StatusCode::CREATED.as_u16(),
            response_body: self.body.clone(),
            key_id: key_id.to_string(),
            nonce,
            received_at: self.received_at,
        }
    }
}

fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::Overloaded => ApiError::unavailable(
            ProblemCode::Overloaded,
            "too many payments in flight; retry with the same Idempotency-Key",
        ),
        IntakeError::Closed => ApiError::unavailable(
            ProblemCode::ShuttingDown,
            "the service is shutting down; retry with the same Idempotency-Key",
        ),
        IntakeError::Store(e) => e.into(),
    }
}

/// The answer to one attempt at accepting: `None` when the key was
/// released meanwhile and the attempt is to be made again.
async fn answer(
    state: &AppState,
    signed: &Signed,
    key: &str,
    accepted: &Accepted,
    outcome: AcceptOutcome,
) -> Result<Option<Response>, ApiError> {
    let channel_reference = &accepted.request.channel_reference;
    match outcome {
        AcceptOutcome::Accepted => {
            tracing::debug!(payment_id = %accepted.payment_id, "payment accepted");
            Ok(Some(replayed(
                StatusCode::CREATED.as_u16(),
                accepted.body.clone(),
                false,
            )))
        }
        AcceptOutcome::NonceReused => Err(nonce_reused()),
        AcceptOutcome::DuplicateChannelReference => {
            let existing = state.store.payment_by_reference(&signed.channel.id, channel_reference).await?;
            Err(ApiError::conflict(
                ProblemCode::DuplicateChannelReference,
                match existing {
                    Some(p) => format!("channel_reference {channel_reference:?} is already used by payment {}", p.id),
                    None => format!("channel_reference {channel_reference:?} is already used"),
                },
            )
            .field("channel_reference"))
        }
        AcceptOutcome::KeyTaken => match state.store.idempotency_record(&signed.channel.id, key).await? {
            Some(rec) if rec.request_hash == accepted.fingerprint => {
                Ok(Some(replayed(rec.response_status, rec.response_body, true)))
            }
            Some(rec) => Err(ApiError::conflict(
                ProblemCode::IdempotencyKeyReused,
                format!("Idempotency-Key {key:?} was used for another request (payment {}); use a new key for a new payment", rec.payment_id),
            )),
            None => Ok(None),
        },
    }
}

pub(super) const GET_ONE: Operation = Operation {
    id: "getPayment",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[(404, &[ProblemCode::PaymentNotFound])],
    ],
};

/// One of this channel's payments (another channel's payment is a 404).
#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    operation_id = "getPayment",
    tag = "payments",
    security(("bc1" = [])),
    params(("id" = uuid::Uuid, Path, description = "the payment's id (anything else is a 404)")),
    responses((status = 200, description = "The payment", body = PaymentView)),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    signed: Signed,
) -> Result<Json<PaymentView>, ApiError> {
    signed.consume_nonce(&state).await?;
    let not_found = || {
        ApiError::not_found(
            ProblemCode::PaymentNotFound,
            format!("no payment {id} for this channel"),
        )
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let p = state
        .store
        .payment(&signed.channel.id, PaymentId(uuid))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(PaymentView::from(&p)))
}

#[derive(Deserialize)]
pub struct FindQuery {
    channel_reference: Option<String>,
}

pub(super) const FIND: Operation = Operation {
    id: "listPayments",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[(400, &[ProblemCode::MissingQuery])],
    ],
};

/// Find this channel's payment by its channel reference.
#[utoipa::path(
    get,
    path = "/v1/payments",
    operation_id = "listPayments",
    tag = "payments",
    security(("bc1" = [])),
    params(("channel_reference" = String, Query,
        description = "the channel's own reference of the payment: 1-64 characters, no control characters",
        min_length = 1, max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,64}$")),
    responses((status = 200, description = "Zero or one payment", body = PaymentList)),
)]
pub async fn find(
    State(state): State<AppState>,
    Query(q): Query<FindQuery>,
    signed: Signed,
) -> Result<Json<PaymentList>, ApiError> {
    signed.consume_nonce(&state).await?;
    let reference = q
        .channel_reference
        .filter(|r| !r.is_empty() && r.chars().count() <= 64)
        .ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::MissingQuery,
                "give ?channel_reference= (1-64 characters)",
            )
        })?;
    let found = state
        .store
        .payment_by_reference(&signed.channel.id, &reference)
        .await?;
    Ok(Json(PaymentList {
        data: found.iter().map(PaymentView::from).collect(),
    }))
}
