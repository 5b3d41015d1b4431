//! Complaints (`/console/complaints`): the apps' complaints beside the
//! breaks, the open ones first with the time left before their turn-around
//! time runs out; a complaint's page with what the machine found, the
//! breaks about the same payment, its trail and the actions (the same
//! function as `POST /v1/staff/complaints/{id}/actions`: roles and
//! maker-checker on the server); and the monthly report per biller
//! (`?format=csv` or `xlsx` to download it).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::i18n::{Lang, L};
use super::layout;
use super::session::Staff;
use super::ConsoleError;
use crate::complaints::ActError;
use crate::domain::complaint::{ComplaintStatus, Outcome, StaffAction};
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::complaint::{ComplaintFilter, ComplaintRecord};

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    all: Option<String>,
}

/// Time left before `c` is due, or how long it is overdue, in words.
fn time_left(c: &ComplaintRecord, lang: Lang) -> (bool, String) {
    let now = Utc::now();
    if c.due_at >= now {
        (false, layout::age(now, c.due_at, lang))
    } else {
        (true, layout::age(c.due_at, now, lang))
    }
}

fn status_class(s: ComplaintStatus) -> &'static str {
    match s {
        ComplaintStatus::Resolved => "ok",
        ComplaintStatus::Rejected => "muted",
        ComplaintStatus::Escalated => "red",
        _ => "amber",
    }
}

pub async fn queue(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<QueueQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let status = match q.status.trim() {
        "" => None,
        s => Some(ComplaintStatus::parse(s).ok_or_else(|| {
            ConsoleError::bad_request(lang, format!("status: {s:?} is not a complaint status"))
        })?),
    };
    let open_only = q.all.is_none() && status.is_none();
    let mut found = state
        .store
        .complaints(&ComplaintFilter {
            status,
            open_only,
            limit: 2_000,
            ..Default::default()
        })
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    // The most urgent first.
    if open_only {
        found.sort_by_key(|c| c.due_at);
    }
    let refunds = state
        .store
        .refunds(200)
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    let zone = state.config.console.zone();
    let body = html! {
        form method="get" class="filters" {
            label { (lang.t(L::Status)) " "
                select name="status" {
                    option value="" { (lang.t(L::OpenOnly)) }
                    @for s in ComplaintStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            " " button type="submit" { (lang.t(L::Filter)) }
            " " a href="/console/complaints?all=1" { (lang.t(L::Any)) }
            " · " a href="/console/complaints/report" { (lang.t(L::ComplaintReport)) }
        }
        p class="muted" { (lang.t(L::Results)) ": " span id="complaint-count" { (found.len()) } }
        table class="queue complaints" {
            thead { tr {
                th { (lang.t(L::Complaint)) } th { (lang.t(L::ComplaintType)) } th { (lang.t(L::Status)) }
                th { (lang.t(L::Biller)) } th { (lang.t(L::Channel)) } th { (lang.t(L::RaisedAt)) }
                th { (lang.t(L::TimeLeft)) } th { (lang.t(L::Why)) }
            } }
            tbody {
                @for c in &found {
                    @let (overdue, left) = time_left(c, lang);
                    tr data-complaint=(c.id) {
                        td { a href=(format!("/console/complaints/{}", c.id)) { (short(c.id)) } }
                        td { (c.kind.as_str()) }
                        td { span class=(status_class(c.status)) { (c.status.as_str()) } }
                        td { (c.biller_id) }
                        td { (c.channel_id) }
                        td { (layout::time(c.registered_at, zone)) }
                        td class=[overdue.then_some("red")] {
                            @if !c.status.is_open() { span class="muted" { "—" } }
                            @else if overdue { (lang.t(L::Overdue)) " " (left) }
                            @else { (left) }
                        }
                        td { (c.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        // Every refund, those made by rule (no second person) included.
        h2 { (lang.t(L::Refund)) }
        table class="trail refunds" id="refunds" {
            thead { tr {
                th { (lang.t(L::At)) } th { (lang.t(L::Payment)) } th { (lang.t(L::Channel)) }
                th { (lang.t(L::Biller)) } th { (lang.t(L::Amount)) } th { (lang.t(L::Kind)) }
                th { (lang.t(L::Actor)) } th { (lang.t(L::Reason)) } th { (lang.t(L::Complaint)) }
            } }
            tbody { @for r in &refunds { tr data-refund=(r.id) data-decided-by=(r.decided_by) {
                td { (layout::time(r.refunded_at, zone)) }
                td { a href=(format!("/console/payments/{}", r.payment_id)) { (r.payment_id) } }
                td { (r.channel_id) }
                td { (r.biller_id) }
                td { (layout::money(r.amount, &r.currency)) }
                td { (r.how) }
                td { @match (&r.maker, &r.approver) {
                    (Some(m), Some(a)) => { (m) " → " (a) },
                    _ => { (r.decided_by) },
                } }
                td { (r.reason) }
                td { @if let Some(c) = r.complaint_id { a href=(format!("/console/complaints/{c}")) { (short(c)) } } }
            } } }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/complaints",
        lang.t(L::Complaints),
        body,
    ))
}

fn short(id: uuid::Uuid) -> String {
    id.to_string()[..8].to_string()
}

fn path_uuid(lang: Lang, s: &str) -> Result<uuid::Uuid, ConsoleError> {
    uuid::Uuid::parse_str(s).map_err(|_| ConsoleError::not_found(lang, format!("complaint {s:?}")))
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<super::DoneQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let store = |e| ConsoleError::store(lang, e);
    let id = path_uuid(lang, &id)?;
    let c = state
        .store
        .complaint(id)
        .await
        .map_err(store)?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("complaint {id}")))?;
    let events = state.store.complaint_events(id).await.map_err(store)?;
    let evidence = state
        .store
        .payment_evidence(c.payment_id)
        .await
        .map_err(store)?;
    let zone = state.config.console.zone();
    let (overdue, left) = time_left(&c, lang);
    let operator = staff.can(StaffRole::Operator) && c.status.is_open();
    let approver = staff.can(StaffRole::Approver);
    let form = |action: &'static str, label: L, field: Option<(&'static str, L)>| {
        html! {
            form method="post" action=(format!("/console/complaints/{}/act", c.id)) class="action" data-action=(action) {
                input type="hidden" name="csrf" value=(staff.csrf);
                input type="hidden" name="action" value=(action);
                @if let Some((name, l)) = field {
                    label { (lang.t(l)) " " textarea name=(name) required rows="2" {} }
                }
                @if action == "resolve" {
                    select name="outcome" {
                        option value="credit_confirmed" { "credit_confirmed" }
                        option value="corrected" { "corrected" }
                    }
                }
                " " button type="submit" { (lang.t(label)) }
            }
        }
    };
    let body = html! {
        (layout::flash(lang, q.done.is_some()))
        dl class="facts" {
            dt { (lang.t(L::ComplaintType)) } dd id="complaint-type" { (c.kind.as_str()) }
            dt { (lang.t(L::Status)) } dd id="complaint-status" { span class=(status_class(c.status)) { (c.status.as_str()) } }
            dt { (lang.t(L::Channel)) } dd { (c.channel_id) }
            dt { (lang.t(L::Biller)) } dd { (c.biller_id) }
            dt { (lang.t(L::Payment)) } dd { a href=(format!("/console/payments/{}", c.payment_id)) { (c.payment_id) } }
            @if let Some(ev) = &evidence {
                dt { (lang.t(L::Amount)) } dd { (layout::money(ev.payment.amount.amount(), ev.payment.amount.currency().code())) }
                dt { (lang.t(L::States)) } dd { (ev.payment.status.as_str()) }
            }
            dt { (lang.t(L::Description)) } dd { (c.description) }
            dt { (lang.t(L::RaisedAt)) } dd { (layout::time(c.registered_at, zone)) }
            dt { (lang.t(L::DueAt)) } dd { (layout::time(c.due_at, zone)) }
            @if c.status.is_open() {
                dt { (lang.t(L::TimeLeft)) } dd id="time-left" class=[overdue.then_some("red")] {
                    @if overdue { (lang.t(L::Overdue)) " " } (left)
                }
            }
            @if let Some(o) = &c.outcome { dt { (lang.t(L::Outcome)) } dd id="complaint-outcome" { (o) } }
            @if let Some(r) = &c.reason { dt { (lang.t(L::Why)) } dd id="complaint-reason" { (r) } }
            @if let Some(r) = &c.biller_reference { dt { (lang.t(L::BillerReference)) } dd { (r) } }
            @if let Some(r) = &c.refund {
                dt { (lang.t(L::Refund)) } dd id="refund" {
                    (layout::money(r.amount, &r.currency)) " · " (r.how) " · " (r.decided_by)
                    @if let (Some(m), Some(a)) = (&r.maker, &r.approver) { " (" (m) " → " (a) ")" }
                    " · " (r.business_date)
                }
            }
        }
        @if let Some(ev) = &evidence {
            @if !ev.breaks.is_empty() {
                h2 { (lang.t(L::BreaksAbout)) }
                ul id="linked-breaks" {
                    @for (bid, cat) in &ev.breaks { li { a href=(format!("/console/breaks/{bid}")) { "#" (bid) " · " (cat) } } }
                }
            }
        }
        @if let Some(maker) = &c.proposed_by {
            p class="notice" id="refund-waiting" {
                (lang.t(L::RefundWaiting)) " — " (lang.t(L::ProposedBy)) " " strong { (maker) }
                @if let Some(n) = &c.proposal_note { " · " (n) }
            }
        }
        @if operator {
            h2 { (lang.t(L::Actions)) }
            div class="actions" {
                (form("investigate", L::Investigate, None))
                @if c.status != ComplaintStatus::Escalated { (form("ask-biller", L::AskBillerAgain, None)) }
                (form("comment", L::Comment, Some(("text", L::Note))))
                (form("resolve", L::ResolveComplaint, Some(("note", L::Note))))
                (form("reject", L::RejectComplaint, Some(("reason", L::Reason))))
                @if c.proposed_by.is_none() && c.refund.is_none() {
                    (form("propose-refund", L::ProposeRefund, Some(("note", L::Note))))
                }
                @if approver && c.proposed_by.is_some() && c.proposed_by.as_deref() != Some(staff.user.id.as_str()) {
                    (form("approve-refund", L::ApproveRefund, None))
                    (form("decline-refund", L::DeclineRefund, Some(("reason", L::Reason))))
                }
                @if c.proposed_by.as_deref() == Some(staff.user.id.as_str()) {
                    p class="muted" { (lang.t(L::YouProposed)) }
                }
            }
        } @else if !staff.can(StaffRole::Operator) {
            p class="muted" { (lang.t(L::ViewerOnly)) }
        }
        h2 { (lang.t(L::History)) }
        table class="trail" id="complaint-trail" {
            thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Actor)) } th { (lang.t(L::Action)) } th { (lang.t(L::Status)) } th { (lang.t(L::Note)) } } }
            tbody { @for e in &events { tr {
                td { (layout::time(e.at, zone)) }
                td class="actor" { (e.actor) }
                td class="action" { (e.action) }
                td { (e.from_status.as_deref().unwrap_or("")) " → " (e.to_status) }
                td { (e.note) }
            } } }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/complaints",
        &format!("{} {}", lang.t(L::Complaint), short(c.id)),
        body,
    ))
}

#[derive(Deserialize, Default, Debug)]
pub struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    outcome: String,
}

pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    staff.check_csrf(&f.csrf)?;
    let user = staff.require(StaffRole::Operator)?.clone();
    let lang = staff.lang;
    let id = path_uuid(lang, &id)?;
    for (field, v) in [("text", &f.text), ("note", &f.note), ("reason", &f.reason)] {
        super::breaks::check_text(lang, field, v, true)?;
    }
    let action = match f.action.as_str() {
        "investigate" => StaffAction::Investigate,
        "ask-biller" => StaffAction::AskBiller,
        "comment" => StaffAction::Comment { text: f.text },
        "resolve" => StaffAction::Resolve {
            outcome: match f.outcome.as_str() {
                "credit_confirmed" => Outcome::ConfirmedByStaff { note: f.note },
                "corrected" => Outcome::Corrected { note: f.note },
                o => {
                    return Err(ConsoleError::bad_request(
                        lang,
                        format!("outcome: {o:?} is not credit_confirmed or corrected"),
                    ))
                }
            },
        },
        "reject" => StaffAction::Reject { reason: f.reason },
        "propose-refund" => StaffAction::ProposeRefund { note: f.note },
        "approve-refund" => StaffAction::ApproveRefund,
        "decline-refund" => StaffAction::DeclineRefund { reason: f.reason },
        other => {
            return Err(ConsoleError::bad_request(
                lang,
                format!("action: {other:?} is not an action on a complaint"),
            ))
        }
    };
    crate::complaints::act(&state, &user, id, &action)
        .await
        .map_err(|e| match e {
            ActError::Role(w) | ActError::MakerChecker(w) => {
                ConsoleError::new(lang, StatusCode::FORBIDDEN, L::Forbidden, w)
            }
            ActError::NotFound(id) => ConsoleError::not_found(lang, format!("complaint {id}")),
            ActError::State(w) => ConsoleError::new(lang, StatusCode::CONFLICT, L::Refused, w),
            ActError::Store(e) => ConsoleError::store(lang, e),
        })?;
    Ok(layout::see_other(&format!(
        "/console/complaints/{id}?done=1"
    )))
}

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    #[serde(default)]
    biller: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    format: String,
}

pub async fn report(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let zone = state.config.console.zone();
    let month = match q.month.trim() {
        "" => Utc::now().with_timezone(&zone).format("%Y-%m").to_string(),
        m => m.to_string(),
    };
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<String> = snapshot.keys().cloned().collect();
    billers.sort();
    let biller = match q.biller.trim() {
        "" => billers.first().cloned().unwrap_or_default(),
        b if snapshot.contains_key(b) => b.to_string(),
        b => return Err(ConsoleError::not_found(lang, format!("biller {b:?}"))),
    };
    let cal = crate::complaints::calendar(&state, &biller);
    let (from, to) = crate::complaints::report::month_bounds(&month, &cal).ok_or_else(|| {
        ConsoleError::bad_request(lang, format!("month: {month:?} is not a month (YYYY-MM)"))
    })?;
    let complaints = state
        .store
        .complaints_registered(&biller, from, to)
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    let lines = crate::complaints::report::lines(&complaints, &cal);
    let download = |bytes: anyhow::Result<Vec<u8>>, ext: &str, ct: &'static str| {
        let bytes = bytes.map_err(|e| {
            ConsoleError::new(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                L::ServerError,
                e.to_string(),
            )
        })?;
        let mut resp = (StatusCode::OK, bytes).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"complaints-{biller}-{month}.{ext}\""
        )) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok::<Response, ConsoleError>(resp)
    };
    match q.format.as_str() {
        "csv" => {
            return download(
                crate::complaints::report::csv(&lines, &biller),
                "csv",
                "text/csv; charset=utf-8",
            )
        }
        "xlsx" => {
            return download(
                crate::complaints::report::xlsx(&lines, &biller, &month),
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        }
        "" => {}
        f => {
            return Err(ConsoleError::bad_request(
                lang,
                format!("format: {f:?} is not csv or xlsx"),
            ))
        }
    }
    let link = |fmt: &str| {
        format!(
            "/console/complaints/report?biller={}&month={}&format={fmt}",
            layout::urlencode(&biller),
            layout::urlencode(&month)
        )
    };
    let body = html! {
        form method="get" class="filters" {
            label { (lang.t(L::Biller)) " "
                select name="biller" { @for b in &billers { option value=(b) selected[*b == biller] { (b) } } }
            }
            " " label { (lang.t(L::Month)) " " input type="month" name="month" value=(month); }
            " " button type="submit" { (lang.t(L::Filter)) }
            " · " a href=(link("csv")) id="report-csv" { "CSV" }
            " · " a href=(link("xlsx")) id="report-xlsx" { "XLSX" }
        }
        table class="report" id="complaint-report" {
            thead { tr {
                th { (lang.t(L::ComplaintType)) } th { (lang.t(L::Raised)) } th { (lang.t(L::Closed)) }
                th { (lang.t(L::WithinTime)) } th { (lang.t(L::StillOpen)) }
                th { (lang.t(L::Median)) " (h)" } th { (lang.t(L::Worst)) " (h)" }
            } }
            tbody { @for l in &lines { tr data-kind=(l.kind) {
                td { (l.kind) } td { (l.raised) } td { (l.closed) } td { (l.closed_within_time) }
                td { (l.still_open) }
                td { (l.median_hours.as_deref().unwrap_or("—")) }
                td { (l.worst_hours.as_deref().unwrap_or("—")) }
            } } }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/complaints",
        &format!("{} · {biller} · {month}", lang.t(L::ComplaintReport)),
        body,
    )
    .into_response())
}
