//! Finance staff endpoints (`/v1/staff`), authenticated by a staff bearer
//! token (`StaffAuth`), never by channel credentials.

use axum::Json;
use serde_json::{json, Value};

use super::problem::ApiError;
use super::staff_auth::StaffAuth;
use crate::domain::staff::StaffRole;

/// `GET /v1/staff/me`: who the token belongs to (any role).
pub async fn me(staff: StaffAuth) -> Result<Json<Value>, ApiError> {
    let user = staff.require(StaffRole::Viewer)?;
    Ok(Json(json!({
        "id": user.id,
        "name": user.name,
        "role": user.role.as_str(),
    })))
}
