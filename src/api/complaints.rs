//! Complaints: `POST /v1/complaints` (idempotent), `GET /v1/complaints/{id}`,
//! `GET /v1/complaints?status=&since=` for payment apps; the staff's
//! `GET /v1/staff/complaints` and `POST /v1/staff/complaints/{id}/actions`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{self, Signed};
use super::extract::{Path, Query};
use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::staff_auth::{self, StaffAuth};
use super::text;
use crate::complaints::view::ComplaintView;
use crate::domain::complaint::{
    admissible, ComplaintKind, ComplaintStatus, Outcome, PaymentFacts, StaffAction,
};
use crate::domain::ids::PaymentId;
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::complaint::{ComplaintFilter, NewComplaint, RegisterOutcome};

/// The most characters a complaint's description may have.
pub const MAX_DESCRIPTION: usize = 1000;

/// The body of `POST /v1/complaints`: the payment (by `payment_id` or by
/// the app's `channel_reference`, exactly one), its type and the
/// customer's words. Every field is a string; no other field is accepted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ComplaintRequest)]
pub struct ComplaintRequestBody {
    /// Our id of the payment (give this or `channel_reference`).
    #[schema(format = Uuid)]
    pub payment_id: Option<String>,
    /// The app's own reference of the payment.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,64}$"
    )]
    pub channel_reference: Option<String>,
    #[serde(rename = "type")]
    #[schema(
        pattern = "^(not_credited|credited_to_wrong_account|paid_twice|amount_differs|refund_not_received)$"
    )]
    pub kind: String,
    /// What the customer says, 1-1000 characters, not blank (line breaks
    /// allowed).
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
    )]
    pub description: String,
}

const FIELDS: &[&str] = &["payment_id", "channel_reference", "type", "description"];

fn parse_body(body: &[u8]) -> Result<ComplaintRequestBody, ApiError> {
    let mut obj = super::payments::json_object(body, FIELDS, &["description"])?;
    let mut take = |f: &'static str, required: bool| -> Result<Option<String>, ApiError> {
        match obj.remove(f) {
            None | Some(Value::Null) if required => Err(ApiError::unprocessable(
                ProblemCode::MissingField,
                format!("{f} is required"),
            )
            .field(f)),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::unprocessable(
                ProblemCode::InvalidField,
                format!("{f} must be a string"),
            )
            .field(f)),
        }
    };
    let payment_id = take("payment_id", false)?;
    let channel_reference = take("channel_reference", false)?;
    let kind = take("type", true)?.unwrap_or_default();
    let description = take("description", true)?.unwrap_or_default();
    Ok(ComplaintRequestBody {
        payment_id,
        channel_reference,
        kind,
        description,
    })
}

/// Checks the fields: the type, the description, exactly one payment
/// reference.
fn check(body: &ComplaintRequestBody) -> Result<ComplaintKind, ApiError> {
    let kind = ComplaintKind::parse(&body.kind).ok_or_else(|| {
        ApiError::unprocessable(
            ProblemCode::InvalidField,
            format!(
                "unknown complaint type {:?}; one of not_credited, credited_to_wrong_account, paid_twice, amount_differs, refund_not_received",
                body.kind.chars().take(64).collect::<String>()
            ),
        )
        .field("type")
    })?;
    let n = body.description.chars().count();
    if body.description.trim().is_empty() || n > MAX_DESCRIPTION {
        return Err(ApiError::unprocessable(
            ProblemCode::InvalidField,
            format!(
                "description must be 1-{MAX_DESCRIPTION} characters and not blank (it has {n})"
            ),
        )
        .field("description"));
    }
    match (&body.payment_id, &body.channel_reference) {
        (Some(_), Some(_)) => Err(ApiError::unprocessable(
            ProblemCode::InvalidField,
            "give payment_id or channel_reference, not both",
        )
        .field("channel_reference")),
        (None, None) => Err(ApiError::unprocessable(
            ProblemCode::MissingField,
            "payment_id or channel_reference is required",
        )
        .field("payment_id")),
        (_, Some(r)) if r.is_empty() || r.chars().count() > 64 => Err(ApiError::unprocessable(
            ProblemCode::InvalidField,
            "channel_reference must be 1-64 characters",
        )
        .field("channel_reference")),
        _ => Ok(kind),
    }
}

fn fingerprint(body: &ComplaintRequestBody) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        body.payment_id.as_deref().unwrap_or(""),
        body.channel_reference.as_deref().unwrap_or(""),
        &body.kind,
        &body.description,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

pub(super) const CREATE: Operation = Operation {
    id: "createComplaint",
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
            (404, &[ProblemCode::PaymentNotFound]),
            (
                409,
                &[
                    ProblemCode::ComplaintOpen,
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
                    ProblemCode::ComplaintNotAdmissible,
                ],
            ),
            (503, &[ProblemCode::StoreUnavailable]),
        ],
    ],
};

/// Raise a complaint about one of this app's payments (idempotent).
///
/// The investigation starts at once: the evidence is gathered and the
/// biller asked by our reference; the app hears of every change of status
/// by a signed callback (ComplaintCallbackEvent). The same
/// `Idempotency-Key` with the same body answers with the complaint as it
/// stands (`Idempotent-Replayed: true`); with another body it is a 409.
#[utoipa::path(
    post,
    path = "/v1/complaints",
    operation_id = "createComplaint",
    tag = "complaints",
    security(("bc1" = [])),
    params(
        ("Idempotency-Key" = String, Header,
            description = "1-128 visible ASCII characters, scoped to the channel",
            min_length = 1, max_length = 128, pattern = "^[\\x21-\\x7E]{1,128}$"),
    ),
    request_body(content = ComplaintRequestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered (or the complaint first registered with this Idempotency-Key, as it stands)",
            body = ComplaintView,
            headers(("Idempotent-Replayed" = String, description = "`true` when this Idempotency-Key and body were used before"))),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Signed,
) -> Result<Response, ApiError> {
    let key = super::payments::idempotency_key(&headers)?;
    super::payments::require_json(&headers)?;
    let parsed = parse_body(&signed.body).and_then(|b| check(&b).map(|k| (b, k)));
    let (body, kind) = match parsed {
        Ok(x) => x,
        Err(e) => {
            signed.check_nonce_unused(&state).await?;
            return Err(e);
        }
    };
    signed.consume_nonce(&state).await?;
    let hash = fingerprint(&body);
    let channel = &signed.channel.id;
    let not_found = |what: String| {
        ApiError::not_found(
            ProblemCode::PaymentNotFound,
            format!("no payment {what} for this channel"),
        )
    };
    let payment = match (&body.payment_id, &body.channel_reference) {
        (Some(id), _) => {
            let uuid = Uuid::parse_str(id).map_err(|_| not_found(format!("{id:?}")))?;
            state.store.payment(channel, PaymentId(uuid)).await?
        }
        (_, Some(r)) => state.store.payment_by_reference(channel, r).await?,
        _ => None,
    };
    let payment = payment.ok_or_else(|| {
        not_found(
            body.payment_id
                .clone()
                .or(body.channel_reference.clone())
                .unwrap_or_default(),
        )
    })?;
    // The same key again: its complaint, whatever the payment became since.
    let replay = |c: &crate::store::complaint::ComplaintRecord| -> Result<Response, ApiError> {
        if c.request_hash == hash {
            let mut resp = (StatusCode::CREATED, Json(ComplaintView::from(c))).into_response();
            resp.headers_mut().insert(
                "idempotent-replayed",
                axum::http::HeaderValue::from_static("true"),
            );
            Ok(resp)
        } else {
            Err(ApiError::conflict(
                ProblemCode::IdempotencyKeyReused,
                format!("Idempotency-Key {key:?} was used for another complaint ({}); use a new key for a new complaint", c.id),
            ))
        }
    };
    let facts = PaymentFacts {
        status: payment.status,
        refunded: state.store.refund_of(payment.id).await?.is_some(),
    };
    let now = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncating to microseconds");
    let new = NewComplaint {
        id: Uuid::now_v7(),
        channel_id: channel.clone(),
        payment_id: payment.id,
        biller_id: payment.biller_id.to_string(),
        kind,
        description: body.description.clone(),
        idempotency_key: key.clone(),
        request_hash: hash,
        registered_at: now,
        due_at: crate::complaints::due_at(&state, payment.biller_id.as_str(), kind, now),
    };
    if let Err(why) = admissible(kind, facts) {
        // A replay of a key used when it was admissible still answers.
        if let Some(c) = state.store.complaint_by_key(channel, &key).await? {
            return replay(&c);
        }
        return Err(ApiError::unprocessable(
            ProblemCode::ComplaintNotAdmissible,
            format!(
                "a {} complaint does not fit payment {} ({}): {why}",
                kind.as_str(),
                payment.id,
                payment.status.as_str()
            ),
        )
        .field("type"));
    }
    match state.store.register_complaint(&new).await? {
        RegisterOutcome::Registered(c) => {
            Ok((StatusCode::CREATED, Json(ComplaintView::from(&c))).into_response())
        }
        RegisterOutcome::KeyUsed(c) => replay(&c),
        RegisterOutcome::OpenAlready(open) => {
            if let Some(c) = state.store.complaint_by_key(channel, &key).await? {
                return replay(&c);
            }
            Err(ApiError::conflict(
                ProblemCode::ComplaintOpen,
                format!(
                    "complaint {open} ({}) is open on payment {}: follow it with GET /v1/complaints/{open}",
                    kind.as_str(),
                    payment.id
                ),
            ))
        }
    }
}

pub(super) const GET_ONE: Operation = Operation {
    id: "getComplaint",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[(404, &[ProblemCode::ComplaintNotFound])],
    ],
};

/// One of this app's complaints (another app's is a 404).
#[utoipa::path(
    get,
    path = "/v1/complaints/{id}",
    operation_id = "getComplaint",
    tag = "complaints",
    security(("bc1" = [])),
    params(("id" = uuid::Uuid, Path, description = "the complaint's id (anything else is a 404)")),
    responses((status = 200, description = "The complaint", body = ComplaintView)),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    signed: Signed,
) -> Result<Json<ComplaintView>, ApiError> {
    signed.consume_nonce(&state).await?;
    let not_found = || {
        ApiError::not_found(
            ProblemCode::ComplaintNotFound,
            format!("no complaint {id} for this channel"),
        )
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let c = state
        .store
        .complaint(uuid)
        .await?
        .filter(|c| c.channel_id == signed.channel.id.as_str())
        .ok_or_else(not_found)?;
    Ok(Json(ComplaintView::from(&c)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    since: Option<String>,
}

/// Complaints, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplaintList {
    pub data: Vec<ComplaintView>,
}

pub(super) const LIST: Operation = Operation {
    id: "listComplaints",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[(400, &[ProblemCode::InvalidStatus, ProblemCode::InvalidDate])],
    ],
};

fn parse_status(s: Option<&str>) -> Result<Option<ComplaintStatus>, ApiError> {
    s.map(|s| {
        ComplaintStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::InvalidStatus,
                format!("unknown complaint status {:?}; one of OPEN, INVESTIGATING, PENDING_BILLER, RESOLVED, REJECTED, ESCALATED", s.chars().take(64).collect::<String>()),
            )
            .field("status")
        })
    })
    .transpose()
}

fn parse_since(s: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    s.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request(
                    ProblemCode::InvalidDate,
                    format!(
                        "since must be an RFC 3339 time such as 2026-12-07T00:00:00Z, not {:?}",
                        s.chars().take(64).collect::<String>()
                    ),
                )
                .field("since")
            })
    })
    .transpose()
}

/// This app's complaints, newest first (at most 1000).
#[utoipa::path(
    get,
    path = "/v1/complaints",
    operation_id = "listComplaints",
    tag = "complaints",
    security(("bc1" = [])),
    params(
        ("status" = Option<String>, Query, description = "only complaints in this status",
            pattern = "^(OPEN|INVESTIGATING|PENDING_BILLER|RESOLVED|REJECTED|ESCALATED)$"),
        ("since" = Option<String>, Query, format = DateTime,
            description = "only complaints registered at or after this time (RFC 3339)"),
    ),
    responses((status = 200, description = "The complaints", body = ComplaintList)),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
    signed: Signed,
) -> Result<Json<ComplaintList>, ApiError> {
    signed.consume_nonce(&state).await?;
    let status = parse_status(q.status.as_deref())?;
    let since = parse_since(q.since.as_deref())?;
    let found = state
        .store
        .complaints(&ComplaintFilter {
            channel: Some(signed.channel.id.to_string()),
            status,
            since,
            limit: 1000,
            ..Default::default()
        })
        .await?;
    Ok(Json(ComplaintList {
        data: found.iter().map(ComplaintView::from).collect(),
    }))
}

/// A complaint as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffComplaint {
    #[serde(flatten)]
    pub complaint: ComplaintView,
    pub channel_id: String,
    pub biller_id: String,
    /// Who took it.
    #[schema(required = true)]
    pub owner: Option<String>,
    /// The staff member whose refund proposal waits for approval.
    #[schema(required = true)]
    pub refund_proposed_by: Option<String>,
    /// Seconds until its turn-around time runs out (negative: overdue).
    pub seconds_left: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffComplaintList {
    pub data: Vec<StaffComplaint>,
}

fn staff_view(c: &crate::store::complaint::ComplaintRecord) -> StaffComplaint {
    StaffComplaint {
        complaint: ComplaintView::from(c),
        channel_id: c.channel_id.clone(),
        biller_id: c.biller_id.clone(),
        owner: c.owner.clone(),
        refund_proposed_by: c.proposed_by.clone(),
        seconds_left: (c.due_at - Utc::now()).num_seconds(),
    }
}

#[derive(Deserialize)]
pub struct StaffListQuery {
    status: Option<String>,
    open: Option<bool>,
}

pub(super) const STAFF_LIST: Operation = Operation {
    id: "listComplaintsForStaff",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        staff_auth::STAFF,
        &[(400, &[ProblemCode::InvalidStatus])],
    ],
};

/// Complaints for finance staff (viewer), newest first, at most 10000.
#[utoipa::path(
    get,
    path = "/v1/staff/complaints",
    operation_id = "listComplaintsForStaff",
    tag = "staff",
    security(("staffBearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "only complaints in this status",
            pattern = "^(OPEN|INVESTIGATING|PENDING_BILLER|RESOLVED|REJECTED|ESCALATED)$"),
        ("open" = Option<bool>, Query, description = "only complaints not resolved or rejected"),
    ),
    responses((status = 200, description = "The complaints", body = StaffComplaintList)),
)]
pub async fn staff_list(
    State(state): State<AppState>,
    Query(q): Query<StaffListQuery>,
    staff: StaffAuth,
) -> Result<Json<StaffComplaintList>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let status = parse_status(q.status.as_deref())?;
    let found = state
        .store
        .complaints(&ComplaintFilter {
            status,
            open_only: q.open.unwrap_or(false),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    Ok(Json(StaffComplaintList {
        data: found.iter().map(staff_view).collect(),
    }))
}

/// The body of `POST /v1/staff/complaints/{id}/actions`, named by
/// `action`. Text must not be blank.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = ComplaintAction)]
pub enum ComplaintActionBody {
    /// Take it (operator): INVESTIGATING.
    Investigate,
    /// Have the machine ask the biller again (operator): PENDING_BILLER.
    AskBiller,
    /// Add a comment (operator).
    Comment {
        #[schema(
            min_length = 1,
            max_length = 1000,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        text: String,
    },
    /// Resolved without money moving (operator): `credit_confirmed` or
    /// `corrected` (with a note saying how).
    Resolve {
        #[schema(pattern = "^(credit_confirmed|corrected)$")]
        outcome: String,
        #[schema(
            min_length = 1,
            max_length = 1000,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        note: String,
    },
    /// Turn it down (operator), saying why.
    Reject {
        #[schema(
            min_length = 1,
            max_length = 1000,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        reason: String,
    },
    /// Propose giving the payment's amount back (operator, the maker).
    ProposeRefund {
        #[schema(
            min_length = 1,
            max_length = 1000,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        note: String,
    },
    /// Approve the proposed refund (an approver other than the maker): the
    /// refund is made and the complaint RESOLVED (refunded).
    ApproveRefund,
    /// Decline the proposed refund (an approver other than the maker).
    DeclineRefund {
        #[schema(
            min_length = 1,
            max_length = 1000,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        reason: String,
    },
}

pub(super) const STAFF_ACT: Operation = Operation {
    id: "actOnComplaint",
    problems: &[
        super::extract::PATH,
        super::extract::BODY,
        text::PROBLEMS,
        staff_auth::STAFF,
        &[
            (400, &[ProblemCode::MalformedJson]),
            (
                403,
                &[
                    ProblemCode::StaffRoleInsufficient,
                    ProblemCode::MakerChecker,
                ],
            ),
            (404, &[ProblemCode::ComplaintNotFound]),
            (409, &[ProblemCode::ComplaintState]),
            (
                422,
                &[ProblemCode::InvalidAction, ProblemCode::InvalidField],
            ),
            (503, &[ProblemCode::StoreUnavailable]),
        ],
    ],
};

/// Work a complaint (operator); approve or decline a refund (an approver
/// other than the maker).
#[utoipa::path(
    post,
    path = "/v1/staff/complaints/{id}/actions",
    operation_id = "actOnComplaint",
    tag = "staff",
    security(("staffBearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the complaint's id")),
    request_body(content = ComplaintActionBody, content_type = "application/json"),
    responses((status = 200, description = "The complaint after the action", body = StaffComplaint)),
)]
pub async fn staff_act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    staff: StaffAuth,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<StaffComplaint>, ApiError> {
    let user = staff.require(StaffRole::Operator)?;
    let body = super::extract::body(body, state.config.http.max_body_bytes)?;
    let not_found =
        || ApiError::not_found(ProblemCode::ComplaintNotFound, format!("no complaint {id}"));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let not_understood = |e: serde_json::Error| {
        ApiError::unprocessable(
            ProblemCode::InvalidAction,
            format!("the action is not understood: {e} (actions: investigate, ask-biller, comment, resolve, reject, propose-refund, approve-refund, decline-refund)"),
        )
    };
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            ProblemCode::MalformedJson,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    text::check_json(&value, &["text", "note", "reason"])?;
    let body: ComplaintActionBody = serde_json::from_value(value).map_err(not_understood)?;
    let action = match body {
        ComplaintActionBody::Investigate => StaffAction::Investigate,
        ComplaintActionBody::AskBiller => StaffAction::AskBiller,
        ComplaintActionBody::Comment { text } => StaffAction::Comment { text },
        ComplaintActionBody::Resolve { outcome, note } => StaffAction::Resolve {
            outcome: match outcome.as_str() {
                "credit_confirmed" => Outcome::ConfirmedByStaff { note },
                "corrected" => Outcome::Corrected { note },
                other => {
                    return Err(ApiError::unprocessable(
                        ProblemCode::InvalidAction,
                        format!("outcome {:?} is not one staff can set (credit_confirmed, corrected); refunds are proposed and approved", other.chars().take(64).collect::<String>()),
                    )
                    .field("outcome"))
                }
            },
        },
        ComplaintActionBody::Reject { reason } => StaffAction::Reject { reason },
        ComplaintActionBody::ProposeRefund { note } => StaffAction::ProposeRefund { note },
        ComplaintActionBody::ApproveRefund => StaffAction::ApproveRefund,
        ComplaintActionBody::DeclineRefund { reason } => StaffAction::DeclineRefund { reason },
    };
    use crate::complaints::ActError;
    let after = crate::complaints::act(&state, &user, uuid, &action)
        .await
        .map_err(|e| match e {
            ActError::Role(why) => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::StaffRoleInsufficient,
                "Not allowed",
                why,
            ),
            ActError::MakerChecker(why) => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::MakerChecker,
                "Not allowed",
                why,
            ),
            ActError::NotFound(_) => not_found(),
            ActError::State(why) => ApiError::conflict(ProblemCode::ComplaintState, why),
            ActError::Store(e) => e.into(),
        })?;
    Ok(Json(staff_view(&after)))
}
