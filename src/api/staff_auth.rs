//! The finance staff extractor: `Authorization: Bearer bcstaff_...`.
//!
//! A handler takes `StaffAuth` and states the role it needs:
//!
//! ```ignore
//! async fn work_break(staff: StaffAuth, ...) -> Result<..., ApiError> {
//!     let user = staff.require(StaffRole::Operator)?; // 403 otherwise
//!     ...
//! }
//! ```
//!
//! Failures are 401 (no, unknown or disabled token; channel credentials) or
//! 403 (`require`: the role is too low), as problem+json. Channel endpoints
//! refuse staff tokens in their own extractors (`auth::read_signed`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::problem::{ApiError, ProblemCode};
use crate::auth::signing;
use crate::auth::staff_token::{self, STAFF_TOKEN_PREFIX};
use crate::domain::staff::{StaffRefusal, StaffRole, StaffUser};
use crate::state::AppState;

/// A request from an enabled staff user (any role; see [`StaffAuth::require`]).
#[derive(Debug, Clone)]
pub struct StaffAuth {
    pub user: StaffUser,
}

impl StaffAuth {
    /// The user, when its role allows `needed`; 403 `staff_role_insufficient`
    /// naming the role needed otherwise.
    pub fn require(self, needed: StaffRole) -> Result<StaffUser, ApiError> {
        match self.user.require(needed) {
            Ok(()) => Ok(self.user),
            Err(StaffRefusal::Role(e)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::StaffRoleInsufficient,
                "Role insufficient",
                e.to_string(),
            )),
            Err(StaffRefusal::Disabled(id)) => Err(user_disabled(&id)),
        }
    }
}

/// What the extractor answers (a token is looked up in the store).
pub(super) const STAFF: super::openapi::Problems = &[
    (
        401,
        &[
            ProblemCode::StaffTokenMissing,
            ProblemCode::StaffTokenInvalid,
            ProblemCode::StaffUserDisabled,
            ProblemCode::ChannelCredentialsNotAccepted,
        ],
    ),
    (500, &[ProblemCode::Internal]),
    (503, &[ProblemCode::StoreUnavailable]),
];

fn user_disabled(id: &str) -> ApiError {
    ApiError::unauthorized(
        ProblemCode::StaffUserDisabled,
        format!("staff user {id} is disabled"),
    )
}

fn channel_credentials() -> ApiError {
    ApiError::unauthorized(
        ProblemCode::ChannelCredentialsNotAccepted,
        "staff endpoints take a staff bearer token (Authorization: Bearer bcstaff_...), not channel or biller credentials",
    )
}

/// Splits `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::unauthorized(
                ProblemCode::StaffTokenMissing,
                "send Authorization: Bearer <staff token> (issued by `billclear staff add`)",
            )
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| {
                ApiError::unauthorized(
                    ProblemCode::StaffTokenInvalid,
                    "Authorization header is not ASCII",
                )
            })?
            .trim();
        if value.is_empty() {
            return Err(missing());
        }
        // A channel's (or biller's) signed request.
        if value
            .get(..signing::SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(signing::SCHEME))
        {
            return Err(channel_credentials());
        }
        let token = bearer(value).ok_or_else(missing)?;
        if !staff_token::looks_like_staff_token(token) {
            // A channel secret sent as is: still channel credentials.
            if token.starts_with("bcs_") {
                return Err(channel_credentials());
            }
            return Err(ApiError::unauthorized(
                ProblemCode::StaffTokenInvalid,
                format!("not a staff token (staff tokens start with {STAFF_TOKEN_PREFIX})"),
            ));
        }
        let invalid = || {
            ApiError::unauthorized(
                ProblemCode::StaffTokenInvalid,
                "the staff token is not valid (rotated, or never issued)",
            )
        };
        if !staff_token::is_well_formed(token) {
            return Err(invalid());
        }
        let user = state
            .store
            .staff_by_token_hash(&staff_token::staff_token_hash(token))
            .await?
            .ok_or_else(invalid)?;
        if user.disabled {
            return Err(user_disabled(&user.id));
        }
        tracing::debug!(staff = %user.id, role = %user.role, "staff request");
        Ok(StaffAuth { user })
    }
}

/// On channel and biller endpoints: a staff token is refused before any
/// signature check, with its own code.
pub(super) fn refuse_staff_token(authorization: Option<&str>) -> Result<(), ApiError> {
    match authorization.and_then(bearer) {
        Some(token) if staff_token::looks_like_staff_token(token) => Err(ApiError::unauthorized(
            ProblemCode::StaffTokenNotAccepted,
            "channel endpoints take a signed request, not a staff token",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn staff_tokens_are_refused_on_channel_endpoints() {
        let t = crate::auth::staff_token::StaffToken::generate();
        let e = refuse_staff_token(Some(&format!("Bearer {}", t.expose_text()))).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (401, "staff_token_not_accepted")
        );
        assert!(refuse_staff_token(Some("Bearer abc")).is_ok());
        assert!(refuse_staff_token(Some("BC1-HMAC-SHA256 key=a")).is_ok());
        assert!(refuse_staff_token(None).is_ok());
    }

    #[test]
    fn require_maps_to_403_naming_the_role() {
        let staff = StaffAuth {
            user: StaffUser::new("v", "Viewer", StaffRole::Viewer).unwrap(),
        };
        assert_eq!(staff.clone().require(StaffRole::Viewer).unwrap().id, "v");
        let e = staff.require(StaffRole::Operator).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (403, "staff_role_insufficient")
        );
        assert!(e.detail.contains("operator"), "{}", e.detail);
    }
}
