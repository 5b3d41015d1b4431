//! Reconciliation for finance staff (`/v1/recon`, `/v1/breaks`): runs and
//! their reports, breaks and the actions on them. Staff bearer tokens only.

use axum::body::Body;
use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::staff_auth::{self, StaffAuth};
use super::text;
use crate::domain::recon::breaks::{
    Action, Actor, BreakStatus, Proposal, ResolutionKind, WorkflowError,
};
use crate::domain::recon::matching::Category;
use crate::domain::staff::StaffRole;
use crate::reconcile::resend::ActError;
use crate::reconcile::run::{is_report_name, report_dir};
use crate::state::AppState;
use crate::store::recon::{BreakEvent, BreakFilter, BreakRow, RunRow};

/// A reconciliation run.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReconRun)]
pub struct ReconRunView {
    pub id: i64,
    pub business_date: NaiveDate,
    /// The biller reconciled, or the bank account of a bank statement run.
    pub scope: String,
    pub started_at: DateTime<Utc>,
    /// When it finished: null while it runs, or when it failed.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The staff user (or `cli`) that ran it.
    pub run_by: String,
    /// The imported files it read.
    pub file_ids: Vec<i64>,
    /// What the run found: counts and minor-unit totals per outcome, once
    /// finished.
    #[schema(required = true, value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// The report files it wrote (`GET /v1/recon/reports/{date}/{name}`).
    pub reports: Vec<String>,
    /// Why the run failed: null when it finished, or while it runs.
    #[schema(required = true)]
    pub failed: Option<String>,
}

impl From<RunRow> for ReconRunView {
    fn from(r: RunRow) -> ReconRunView {
        ReconRunView {
            id: r.id,
            business_date: r.business_date,
            scope: r.scope,
            started_at: r.started_at,
            finished_at: r.finished_at,
            run_by: r.run_by,
            file_ids: r.file_ids,
            summary: r.summary,
            reports: r.reports,
            failed: r.failed,
        }
    }
}

/// The latest runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconRunList {
    pub runs: Vec<ReconRunView>,
}

/// A proposed resolution waiting for its checker.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Proposal)]
pub struct ProposalView {
    pub kind: ResolutionKind,
    /// Who proposed it (the checker must be someone else).
    pub maker: String,
    /// `resend`: the connector to send through.
    #[schema(required = true)]
    pub connector: Option<String>,
    pub note: String,
}

impl From<Proposal> for ProposalView {
    fn from(p: Proposal) -> ProposalView {
        ProposalView {
            kind: p.kind,
            maker: p.maker,
            connector: p.connector,
            note: p.note,
        }
    }
}

/// A reconciliation break: a difference between our records and a
/// counterparty's, as a work item. Amounts are in minor units of
/// `currency`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Break)]
pub struct BreakView {
    pub id: i64,
    pub business_date: NaiveDate,
    /// The biller (or bank account) reconciled.
    pub scope: String,
    pub category: Category,
    /// What the break is about (a payment id, a reference, a batch).
    pub subject: String,
    pub our_reference: String,
    pub their_reference: String,
    #[schema(required = true)]
    pub our_amount_minor: Option<i64>,
    #[schema(required = true)]
    pub their_amount_minor: Option<i64>,
    pub currency: String,
    pub detail: String,
    /// What the run saw (the records on both sides).
    #[schema(value_type = Value)]
    pub evidence: Value,
    pub status: BreakStatus,
    #[schema(required = true)]
    pub owner: Option<String>,
    #[schema(required = true)]
    pub proposal: Option<ProposalView>,
    /// How it was resolved (a resolution kind, or `cleared`).
    #[schema(required = true)]
    pub resolution: Option<String>,
    #[schema(required = true)]
    pub found_by_run: Option<i64>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<BreakRow> for BreakView {
    fn from(b: BreakRow) -> BreakView {
        BreakView {
            id: b.id,
            business_date: b.business_date,
            scope: b.scope,
            category: b.category,
            subject: b.subject,
            our_reference: b.our_reference,
            their_reference: b.their_reference,
            our_amount_minor: b.our_amount_minor,
            their_amount_minor: b.their_amount_minor,
            currency: b.currency,
            detail: b.detail,
            evidence: b.evidence,
            status: b.status,
            owner: b.owner,
            proposal: b.proposal.map(ProposalView::from),
            resolution: b.resolution,
            found_by_run: b.found_by_run,
            opened_at: b.opened_at,
            updated_at: b.updated_at,
        }
    }
}

/// One entry of a break's audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = BreakEvent)]
pub struct BreakEventView {
    pub at: DateTime<Utc>,
    /// The staff user (or the run) that acted.
    pub actor: String,
    pub action: String,
    #[schema(required = true)]
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: String,
    #[schema(required = true, value_type = Option<Value>)]
    pub detail: Option<Value>,
}

impl From<BreakEvent> for BreakEventView {
    fn from(e: BreakEvent) -> BreakEventView {
        BreakEventView {
            at: e.at,
            actor: e.actor,
            action: e.action,
            from_status: e.from_status,
            to_status: e.to_status,
            note: e.note,
            detail: e.detail,
        }
    }
}

/// Breaks.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakList {
    pub breaks: Vec<BreakView>,
}

/// A break with its audit trail, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakDetail {
    #[serde(rename = "break")]
    #[schema(rename = "break")]
    pub the_break: BreakView,
    pub trail: Vec<BreakEventView>,
}

/// A break after an action.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakAfterAction {
    #[serde(rename = "break")]
    #[schema(rename = "break")]
    pub the_break: BreakView,
}

const DATE_PROBLEM: super::openapi::Problems = &[(400, &[ProblemCode::InvalidDate])];

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

pub(super) const RUNS: Operation = Operation {
    id: "listReconRuns",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        staff_auth::STAFF,
        DATE_PROBLEM,
    ],
};

/// Reconciliation runs, latest first, at most 200 (viewer).
#[utoipa::path(
    get,
    path = "/v1/recon/runs",
    operation_id = "listReconRuns",
    tag = "reconciliation",
    security(("staffBearer" = [])),
    params(("date" = Option<String>, Query, format = Date, description = "only the runs of this business date, YYYY-MM-DD")),
    responses((status = 200, description = "The runs, latest first", body = ReconRunList)),
)]
pub async fn runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
    staff: StaffAuth,
) -> Result<Json<ReconRunList>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let date = q.date.as_deref().map(parse_date).transpose()?;
    let runs = state.store.runs(date, 200).await?;
    Ok(Json(ReconRunList {
        runs: runs.into_iter().map(ReconRunView::from).collect(),
    }))
}

pub(super) const REPORT: Operation = Operation {
    id: "downloadReconReport",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        staff_auth::STAFF,
        DATE_PROBLEM,
        &[(404, &[ProblemCode::ReportNotFound])],
    ],
};

/// A report a reconciliation run wrote (viewer).
///
/// `<stem>-summary.csv`, `<stem>-breaks.csv`, `<stem>-balances.csv` or
/// `<stem>.xlsx`. Only names recorded on a run of that date are served.
#[utoipa::path(
    get,
    path = "/v1/recon/reports/{date}/{name}",
    operation_id = "downloadReconReport",
    tag = "reconciliation",
    security(("staffBearer" = [])),
    params(
        ("date" = String, Path, format = Date, description = "the business date, YYYY-MM-DD"),
        ("name" = String, Path, description = "a report name of a run of the date (`runs[].reports`)",
            min_length = 1, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$"),
    ),
    responses((status = 200, description = "The report",
        content(
            (String = "text/csv"),
            (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ),
        headers(("Content-Disposition" = String, description = "attachment; filename=\"<name>\"")))),
)]
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

pub(super) const LIST: Operation = Operation {
    id: "listBreaks",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        staff_auth::STAFF,
        &[(400, &[ProblemCode::InvalidDate, ProblemCode::InvalidStatus])],
    ],
};

/// Reconciliation breaks (viewer), at most 10000.
#[utoipa::path(
    get,
    path = "/v1/breaks",
    operation_id = "listBreaks",
    tag = "reconciliation",
    security(("staffBearer" = [])),
    params(
        ("date" = Option<String>, Query, format = Date, description = "only breaks of this business date, YYYY-MM-DD"),
        ("biller" = Option<String>, Query, description = "only breaks of this scope (a biller id, or a bank account)",
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
        ("status" = Option<BreakStatus>, Query, description = "only breaks in this status"),
        ("open" = Option<bool>, Query, description = "only breaks not resolved or written off"),
    ),
    responses((status = 200, description = "The breaks", body = BreakList)),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<BreaksQuery>,
    staff: StaffAuth,
) -> Result<Json<BreakList>, ApiError> {
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
    Ok(Json(BreakList {
        breaks: breaks.into_iter().map(BreakView::from).collect(),
    }))
}

pub(super) const SHOW: Operation = Operation {
    id: "getBreak",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        staff_auth::STAFF,
        &[(404, &[ProblemCode::BreakNotFound])],
    ],
};

/// A break with its audit trail (viewer).
#[utoipa::path(
    get,
    path = "/v1/breaks/{id}",
    operation_id = "getBreak",
    tag = "reconciliation",
    security(("staffBearer" = [])),
    params(("id" = i64, Path, description = "the break's id")),
    responses((status = 200, description = "The break with its audit trail", body = BreakDetail)),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    staff: StaffAuth,
) -> Result<Json<BreakDetail>, ApiError> {
    staff.require(StaffRole::Viewer)?;
    let (b, trail) =
        state.store.break_detail(id).await?.ok_or_else(|| {
            ApiError::not_found(ProblemCode::BreakNotFound, format!("no break {id}"))
        })?;
    Ok(Json(BreakDetail {
        the_break: BreakView::from(b),
        trail: trail.into_iter().map(BreakEventView::from).collect(),
    }))
}

/// The resolutions a staff user may propose, from [`ResolutionKind::CHOSEN`].
fn chosen_resolutions() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(ResolutionKind::CHOSEN.map(|k| k.as_str())))
        .description(Some(
            "accept-biller: their record is right, our books follow it; resend: send the payment again through another route (only a payment proven never to have arrived); reverse: refund the payer; write-off: park the difference in suspense; explain: closed with no change anywhere",
        ))
        .build()
}

/// The body of `POST /v1/breaks/{id}/actions`: one action, named by
/// `action`. Free text (`text`, `note`, `reason`) may break lines; no other
/// control character is accepted anywhere. Text must not be blank.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = BreakAction)]
pub enum ActionBody {
    /// Give the break to someone (operator).
    Assign {
        #[schema(
            min_length = 1,
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
        )]
        owner: String,
    },
    /// Start investigating an open break (operator).
    Investigate,
    /// Add a comment (operator).
    Comment {
        #[schema(
            min_length = 1,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        text: String,
    },
    /// Propose a resolution (operator); one that moves money waits for an
    /// approver other than the maker.
    Propose {
        #[schema(schema_with = chosen_resolutions)]
        resolution: String,
        /// Why.
        #[schema(
            min_length = 1,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        note: String,
        /// `resend` (required there): the route to send through, another
        /// online route of the biller.
        #[serde(default)]
        #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
        connector: Option<String>,
    },
    /// Approve the proposed resolution (approver, not the maker).
    Approve,
    /// Decline the proposed resolution (approver, not the maker).
    Decline {
        #[schema(
            min_length = 1,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )]
        reason: String,
    },
}

pub(super) const ACT: Operation = Operation {
    id: "actOnBreak",
    problems: &[
        super::extract::PATH,
        super::extract::BODY,
        text::PROBLEMS,
        staff_auth::STAFF,
        &[
            (
                403,
                &[
                    ProblemCode::StaffRoleInsufficient,
                    ProblemCode::MakerChecker,
                ],
            ),
            (404, &[ProblemCode::BreakNotFound, ProblemCode::NotFound]),
            (
                409,
                &[
                    ProblemCode::BreakState,
                    ProblemCode::ResendRefused,
                    ProblemCode::Conflict,
                ],
            ),
            (
                422,
                &[ProblemCode::InvalidAction, ProblemCode::InvalidResolution],
            ),
        ],
    ],
};

/// Work a break: assign, investigate, comment, propose (operator); approve,
/// decline (an approver other than the maker).
///
/// 409 `resend_refused`: a re-send not proven safe (the payment's absence
/// is not proven by its route's files of the date and the day after, a
/// route knows the payment, it was re-sent already, or the new route could
/// not be asked); nothing was sent.
#[utoipa::path(
    post,
    path = "/v1/breaks/{id}/actions",
    operation_id = "actOnBreak",
    tag = "reconciliation",
    security(("staffBearer" = [])),
    params(("id" = i64, Path, description = "the break's id")),
    request_body(content = ActionBody, content_type = "application/json"),
    responses((status = 200, description = "The break after the action", body = BreakAfterAction)),
)]
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    staff: StaffAuth,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<BreakAfterAction>, ApiError> {
    let user = staff.require(StaffRole::Operator)?;
    let body = super::extract::body(body, state.config.http.max_body_bytes)?;
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
            let kind = ResolutionKind::parse_chosen(&resolution).ok_or_else(|| {
                ApiError::unprocessable(
                    ProblemCode::InvalidResolution,
                    format!(
                        "unknown resolution {resolution:?}; one of {}",
                        ResolutionKind::chosen_names()
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
    Ok(Json(BreakAfterAction {
        the_break: BreakView::from(after),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The views are what the store's rows serialised to before them.
    #[test]
    fn the_views_serialise_as_the_rows_do() {
        let at = DateTime::UNIX_EPOCH;
        let row = BreakRow {
            id: 7,
            business_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            scope: "sh-water".into(),
            category: Category::MissingAtBiller,
            subject: "p".into(),
            our_reference: "o".into(),
            their_reference: "t".into(),
            our_amount_minor: Some(1250),
            their_amount_minor: None,
            currency: "CNY".into(),
            detail: "d".into(),
            evidence: serde_json::json!({"ours": {"amount_minor": 1250}}),
            status: BreakStatus::PendingApproval,
            owner: Some("ann".into()),
            proposal: Some(Proposal {
                kind: ResolutionKind::WriteOff,
                maker: "ann".into(),
                connector: None,
                note: "n".into(),
            }),
            resolution: None,
            found_by_run: Some(3),
            opened_at: at,
            updated_at: at,
        };
        assert_eq!(
            serde_json::to_value(BreakView::from(row.clone())).unwrap(),
            serde_json::to_value(&row).unwrap()
        );
        let event = BreakEvent {
            at,
            actor: "ann".into(),
            action: "propose".into(),
            from_status: None,
            to_status: "pending-approval".into(),
            note: "n".into(),
            detail: None,
        };
        assert_eq!(
            serde_json::to_value(BreakEventView::from(event.clone())).unwrap(),
            serde_json::to_value(&event).unwrap()
        );
        let run = RunRow {
            id: 3,
            business_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            scope: "sh-water".into(),
            started_at: at,
            finished_at: None,
            run_by: "cli".into(),
            file_ids: vec![1, 2],
            summary: Some(serde_json::json!({"ours": 2})),
            reports: vec!["a-summary.csv".into()],
            failed: None,
        };
        assert_eq!(
            serde_json::to_value(ReconRunView::from(run.clone())).unwrap(),
            serde_json::to_value(&run).unwrap()
        );
    }

    /// The document's proposable resolutions are the workflow's.
    #[test]
    fn the_proposable_resolutions_are_the_chosen_ones() {
        let listed: Vec<String> = chosen_resolutions()
            .enum_values
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let chosen: Vec<&str> = ResolutionKind::CHOSEN.map(|k| k.as_str()).to_vec();
        assert_eq!(listed, chosen);
        for k in ResolutionKind::CHOSEN {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
