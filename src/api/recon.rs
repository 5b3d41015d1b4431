//! Reconciliation for finance staff (`/v1/recon`, `/v1/breaks`): runs and
//! their reports, breaks and the actions on them. Staff bearer tokens only.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::problem::{ApiError, ProblemCode};
use super::staff_auth::StaffAuth;
use crate::domain::recon::breaks::{Action, Actor, Proposal, ResolutionKind, WorkflowError};
use crate::domain::staff::StaffRole;
use crate::reconcile::resend::ActError;
use crate::reconcile::run::{is_report_name, report_dir};
use crate::state::AppState;
use crate::store::recon::BreakFilter;

fn bad_date(s: &str) -> ApiError {
    ApiError::bad_request(
        ProblemCode::InvalidDate,
        format!("{s:?} is not a date (YYYY-MM-DD)"),
    )
    .field("date")
}

fn parse_date(s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad_date(s))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    date: Option<String>,
}

/// `GET /v1/recon/runs?date=`: the latest runs (viewer).
pub async fn runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
    staff: StaffAuth,
) -> Result<Json<Value>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let date = q.date.as_deref().map(parse_date).transpose()?;
    let runs = state.store.runs(date, 200).await?;
    Ok(Json(json!({ "runs": runs })))
}

/// `GET /v1/recon/reports/{date}/{name}`: a report file a run wrote
/// (viewer). Only names recorded on a run of that date are served.
pub async fn report(
    State(state): State<AppState>,
    Path((date, name)): Path<(String, String)>,
    staff: StaffAuth,
) -> Result<Response, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let date = parse_date(&date)?;
    let not_found = || {
        ApiError::not_found(
            ProblemCode::ReportNotFound,
            format!("no report {name} for {date}"),
        )
    };
    if !is_report_name(&name) {
        return Err(not_found());
    }
    let runs = state.store.runs(Some(date), 1_000).await?;
    if !runs.iter().any(|r| r.reports.contains(&name)) {
        return Err(not_found());
    }
    let path = report_dir(&state.config.recon.dir, date).join(&name);
    let bytes = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    let content_type = if name.ends_with(".xlsx") {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    } else {
        "text/csv; charset=utf-8"
    };
    let mut resp = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct BreaksQuery {
    date: Option<String>,
    biller: Option<String>,
    status: Option<String>,
    open: Option<bool>,
}

/// `GET /v1/breaks?date=&biller=&status=&open=`: breaks (viewer).
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<BreaksQuery>,
    staff: StaffAuth,
) -> Result<Json<Value>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            crate::domain::recon::breaks::BreakStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    ProblemCode::InvalidStatus,
                    format!("unknown break status {s:?}"),
                )
                .field("status")
            })?,
        ),
    };
    let breaks = state
        .store
        .breaks(&BreakFilter {
            date: q.date.as_deref().map(parse_date).transpose()?,
            scope: q.biller,
            status,
            open_only: q.open.unwrap_or(false),
            limit: 10_000,
        })
        .await?;
    Ok(Json(json!({ "breaks": breaks })))
}

/// `GET /v1/breaks/{id}`: a break with its audit trail (viewer).
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    staff: StaffAuth,
) -> Result<Json<Value>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let (b, trail) =
        state.store.break_detail(id).await?.ok_or_else(|| {
            ApiError::not_found(ProblemCode::BreakNotFound, format!("no break {id}"))
        })?;
    Ok(Json(json!({ "break": b, "trail": trail })))
}

/// The body of `POST /v1/breaks/{id}/actions`.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionBody {
    Assign {
        owner: String,
    },
    Investigate,
    Comment {
        text: String,
    },
    Propose {
        resolution: String,
        note: String,
        #[serde(default)]
        connector: Option<String>,
    },
    Approve,
    Decline {
        reason: String,
    },
}

/// `POST /v1/breaks/{id}/actions`: work a break (operator; approve and
/// decline: approver, never the maker).
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    staff: StaffAuth,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(StaffRole::Operator)?;
    let not_understood = |e: serde_json::Error| {
        ApiError::unprocessable(
            ProblemCode::InvalidAction,
            format!("the action is not understood: {e} (actions: assign, investigate, comment, propose, approve, decline)"),
        )
    };
    let body: Value = serde_json::from_slice(&body).map_err(not_understood)?;
    // Notes, comments and reasons are free text: they may break lines.
    super::text::check_json(&body, &["text", "note", "reason"])?;
    let body: ActionBody = serde_json::from_value(body).map_err(not_understood)?;
    let action = match body {
        ActionBody::Assign { owner } => Action::Assign { owner },
        ActionBody::Investigate => Action::Investigate,
        ActionBody::Comment { text } => Action::Comment { text },
        ActionBody::Propose {
            resolution,
            note,
            connector,
        } => {
            let kind = ResolutionKind::parse(&resolution)
                .filter(|k| *k != ResolutionKind::Cleared)
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        ProblemCode::InvalidResolution,
                        format!(
                            "unknown resolution {resolution:?}; one of {}",
                            ResolutionKind::CHOSEN.map(|k| k.as_str()).join(", ")
                        ),
                    )
                    .field("resolution")
                })?;
            Action::Propose(Proposal {
                kind,
                maker: String::new(),
                connector,
                note,
            })
        }
        ActionBody::Approve => Action::Approve,
        ActionBody::Decline { reason } => Action::Decline { reason },
    };
    let actor = Actor {
        user: user.id.clone(),
        role: user.role,
    };
    // The workflow's rules are checked first (a precise answer), and again
    // under the row lock.
    let after = crate::reconcile::resend::act(
        &state.store,
        state.routes.connectors(),
        id,
        &actor,
        &action,
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        ActError::Workflow(e) => workflow_error(e),
        ActError::Resend(r) => ApiError::conflict(ProblemCode::ResendRefused, r.to_string()),
        ActError::NoBreak(id) => {
            ApiError::not_found(ProblemCode::BreakNotFound, format!("no break {id}"))
        }
        ActError::Store(e) => e.into(),
    })?;
    Ok(Json(json!({ "break": after })))
}

fn workflow_error(e: WorkflowError) -> ApiError {
    let detail = e.to_string();
    match e {
        WorkflowError::Role { .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            ProblemCode::StaffRoleInsufficient,
            "Role insufficient",
            detail,
        ),
        WorkflowError::SameUser { .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            ProblemCode::MakerChecker,
            "Second person required",
            detail,
        ),
        WorkflowError::State { .. } => ApiError::conflict(ProblemCode::BreakState, detail),
        WorkflowError::NotApplicable(_) | WorkflowError::Invalid(_) => {
            ApiError::unprocessable(ProblemCode::InvalidAction, detail)
        }
    }
}
