//! Errors as `application/problem+json` (RFC 9457), each with a stable code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every problem code the API can answer with: one list, so that a code
/// cannot be returned without being documented. Serialised (and shown in
/// the OpenAPI document's enum) as the snake_case strings below, which are
/// stable: clients match on them.
/// (`$code:tt`, not `literal`: the `ToSchema` derive must see the
/// string itself in the serde rename to put it in the document's enum.)
macro_rules! problem_codes {
    ($($variant:ident = $code:tt,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
        #[schema(description = "The stable code of a problem: clients match on it.")]
        pub enum ProblemCode {
            $(#[serde(rename = $code)] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in the order of the list.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $code,)*
                }
            }
        }
    };
}

problem_codes! {
    // Authentication of a channel's signed request (401).
    MissingSignature = "missing_signature",
    MalformedSignature = "malformed_signature",
    UnknownKey = "unknown_key",
    BadSignature = "bad_signature",
    KeyDisabled = "key_disabled",
    ChannelDisabled = "channel_disabled",
    StaleTimestamp = "stale_timestamp",
    NonceReused = "nonce_reused",
    // Finance staff and operator credentials (401, 403).
    StaffTokenNotAccepted = "staff_token_not_accepted",
    StaffTokenMissing = "staff_token_missing",
    StaffTokenInvalid = "staff_token_invalid",
    StaffUserDisabled = "staff_user_disabled",
    ChannelCredentialsNotAccepted = "channel_credentials_not_accepted",
    StaffRoleInsufficient = "staff_role_insufficient",
    MakerChecker = "maker_checker",
    MissingOperatorToken = "missing_operator_token",
    BadOperatorToken = "bad_operator_token",
    OpsApiDisabled = "ops_api_disabled",
    // The request itself (400, 413, 415, 422).
    BodyTooLarge = "body_too_large",
    UnreadableBody = "unreadable_body",
    MalformedJson = "malformed_json",
    InvalidJson = "invalid_json",
    UnsupportedMediaType = "unsupported_media_type",
    InvalidCharacters = "invalid_characters",
    InvalidPath = "invalid_path",
    InvalidQuery = "invalid_query",
    MissingIdempotencyKey = "missing_idempotency_key",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    UnknownField = "unknown_field",
    MissingField = "missing_field",
    InvalidField = "invalid_field",
    MissingQuery = "missing_query",
    MissingAccount = "missing_account",
    MissingDate = "missing_date",
    InvalidDate = "invalid_date",
    InvalidStatus = "invalid_status",
    InvalidAction = "invalid_action",
    InvalidResolution = "invalid_resolution",
    // Payments and billers (404, 409, 422).
    UnknownBiller = "unknown_biller",
    BillerSuspended = "biller_suspended",
    BillerInMaintenance = "biller_in_maintenance",
    BillerBacklogged = "biller_backlogged",
    CurrencyMismatch = "currency_mismatch",
    InvalidAccountNumber = "invalid_account_number",
    InvalidAmount = "invalid_amount",
    AmountOutOfRange = "amount_out_of_range",
    IdempotencyKeyReused = "idempotency_key_reused",
    DuplicateChannelReference = "duplicate_channel_reference",
    PaymentNotFound = "payment_not_found",
    AccountNotFound = "account_not_found",
    BillerRefused = "biller_refused",
    InquiryNotSupported = "inquiry_not_supported",
    UnknownRoute = "unknown_route",
    // Settlement files, statements and reconciliation (404, 409, 422).
    NoSuchFile = "no_such_file",
    FileUnavailable = "file_unavailable",
    StatementIncomplete = "statement_incomplete",
    NoStatement = "no_statement",
    ReportNotFound = "report_not_found",
    BreakNotFound = "break_not_found",
    BreakState = "break_state",
    ResendRefused = "resend_refused",
    // Complaints (404, 409, 422).
    ComplaintNotFound = "complaint_not_found",
    ComplaintOpen = "complaint_open",
    ComplaintNotAdmissible = "complaint_not_admissible",
    ComplaintState = "complaint_state",
    // Limits and availability (429, 502, 503).
    RateLimited = "rate_limited",
    InquiryBudgetExceeded = "inquiry_budget_exceeded",
    Overloaded = "overloaded",
    ShuttingDown = "shutting_down",
    Contention = "contention",
    StoreUnavailable = "store_unavailable",
    NotReady = "not_ready",
    BillerUnavailable = "biller_unavailable",
    BillerUnreachable = "biller_unreachable",
    BillerBadAnswer = "biller_bad_answer",
    // Routing and the rest (404, 405, 409, 500).
    NoSuchRoute = "no_such_route",
    MethodNotAllowed = "method_not_allowed",
    NotFound = "not_found",
    Conflict = "conflict",
    Internal = "internal",
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ProblemCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The body of every error answer (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(description = "An error (RFC 9457 problem details), with a stable code.")]
pub struct Problem {
    /// `urn:billclear:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^urn:billclear:problem:[a-z_]+$",
        example = "urn:billclear:problem:invalid_amount"
    )]
    pub problem_type: String,
    /// A short, human-readable summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status code of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong in this request, for a person.
    pub detail: String,
    #[schema(inline)]
    pub code: ProblemCode,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// `/readyz` only: each check's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub checks: Option<super::health::ReadinessChecks>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ProblemCode,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after_s: Option<u64>,
    pub checks: Option<super::health::ReadinessChecks>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: ProblemCode,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            field: None,
            retry_after_s: None,
            checks: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    pub fn unauthorized(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            code,
            "Request not authenticated",
            detail,
        )
    }
    pub fn bad_request(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, "Malformed request", detail)
    }
    pub fn unprocessable(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "Request refused",
            detail,
        )
    }
    pub fn conflict(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }
    pub fn not_found(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }
    pub fn unavailable(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "Service unavailable",
            detail,
        )
        .retry_after(1)
    }
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::Internal,
            "Internal error",
            detail,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            // A defect, not load nor a counterpart's trouble: worth a line.
            tracing::error!(status = self.status.as_u16(), code = %self.code, detail = %self.detail, "answered with a server error");
        }
        let body = Problem {
            problem_type: format!("urn:billclear:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            field: self.field,
            checks: self.checks,
        };
        let body = serde_json::to_string(&body).expect("a problem serialises");
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError::*;
        match e {
            Unavailable(_) => ApiError::unavailable(
                ProblemCode::StoreUnavailable,
                "the system of record is unavailable; retry with the same Idempotency-Key",
            ),
            NotFound(what) => {
                ApiError::not_found(ProblemCode::NotFound, format!("{what} not found"))
            }
            Conflict(what) => ApiError::conflict(ProblemCode::Conflict, what),
            Rejected(reason) => {
                tracing::error!(%reason, "store refused data the API had validated");
                ApiError::internal("the request could not be recorded; nothing was changed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemCode;

    #[test]
    fn every_code_is_snake_case_once_and_serialises_as_itself() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ProblemCode::ALL {
            let s = code.as_str();
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
        }
    }
}
