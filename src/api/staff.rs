//! Finance staff endpoints (`/v1/staff`), authenticated by a staff bearer
//! token (`StaffAuth`), never by channel credentials.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::Operation;
use super::problem::ApiError;
use super::staff_auth::{self, StaffAuth};
use super::text;
use crate::domain::staff::StaffRole;

/// The staff user a bearer token belongs to.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StaffMe)]
pub struct StaffMeView {
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    pub id: String,
    pub name: String,
    pub role: StaffRole,
}

pub(super) const ME: Operation = Operation {
    id: "getStaffMe",
    problems: &[text::PROBLEMS, staff_auth::STAFF],
};

/// Finance staff: the user the bearer token belongs to (any role).
#[utoipa::path(
    get,
    path = "/v1/staff/me",
    operation_id = "getStaffMe",
    tag = "staff",
    security(("staffBearer" = [])),
    responses((status = 200, description = "The user", body = StaffMeView)),
)]
pub async fn me(staff: StaffAuth) -> Result<Json<StaffMeView>, ApiError> {
    let user = staff.require(StaffRole::Viewer)?;
    Ok(Json(StaffMeView {
        id: user.id,
        name: user.name,
        role: user.role,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_serialise_as_their_names() {
        for role in StaffRole::ALL {
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
    }
}
