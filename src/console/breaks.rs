//! The breaks queue (`/console/breaks`), a break's page
//! (`/console/breaks/{id}`) and the actions on it. Actions go through the
//! same workflow as `POST /v1/breaks/{id}/actions` (`reconcile::resend::act`,
//! checked by the domain's rules under the break's row lock); the page only
//! shows the actions those rules would allow this user.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use axum::Form;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::i18n::{Lang, L};
use super::layout::{self, minor};
use super::session::Staff;
use super::{words, ConsoleError};
use crate::domain::ids::PaymentId;
use crate::domain::recon::breaks::{
    decide, Action, Actor, BreakStatus, Proposal, ResolutionKind, WorkState, WorkflowError,
};
use crate::domain::recon::matching::{scale_of, Category};
use crate::domain::staff::StaffRole;
use crate::reconcile::resend::ActError;
use crate::state::AppState;
use crate::store::console::{QueueFilter, QueueSort};
use crate::store::recon::BreakRow;

/// The queue's query string. Every field is text: a bad value is named in
/// a clear refusal, not a framework error.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct QueueQuery {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub biller: String,
    #[serde(default)]
    pub category: String,
    /// A status, `open` (default: every status but resolved and written
    /// off) or `all`.
    #[serde(default)]
    pub status: String,
    /// A staff id, `-` for nobody, empty for anyone.
    #[serde(default)]
    pub owner: String,
    /// The larger side's amount at least this (in the currency's units).
    #[serde(default)]
    pub min: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub page: String,
}

impl QueueQuery {
    /// The store's filter and the page number (from 1). `scale`: the
    /// minimum amount's currency scale (the chosen biller's currency).
    pub fn filter(&self, lang: Lang, scale: u32) -> Result<(QueueFilter, i64), ConsoleError> {
        let bad = |m: String| ConsoleError::bad_request(lang, m);
        let category = match self.category.trim() {
            "" => None,
            c => Some(Category::parse(c).ok_or_else(|| bad(format!("category: unknown {c:?}")))?),
        };
        let (status, open_only) = match self.status.trim() {
            "" | "open" => (None, true),
            "all" => (None, false),
            s => (
                Some(BreakStatus::parse(s).ok_or_else(|| bad(format!("status: unknown {s:?}")))?),
                false,
            ),
        };
        let owner = match self.owner.trim() {
            "" => None,
            "-" => Some(String::new()),
            o => Some(o.to_string()),
        };
        let scope = Some(self.biller.trim().to_string()).filter(|s| !s.is_empty());
        let min_amount_minor = match self.min.trim() {
            "" => None,
            m => {
                let d: rust_decimal::Decimal = m
                    .parse()
                    .map_err(|_| bad(format!("amount: {m:?} is not an amount (e.g. 100.00)")))?;
                let minor = (d * rust_decimal::Decimal::from(10i64.pow(scale)))
                    .trunc()
                    .to_string()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("amount: {m:?} is too large")))?;
                Some(minor)
            }
        };
        let sort = match self.sort.trim() {
            "" => QueueSort::OldestFirst,
            s => QueueSort::parse(s).ok_or_else(|| bad(format!("sort: unknown {s:?}")))?,
        };
        let page = match self.page.trim() {
            "" => 1,
            p => p
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| bad(format!("page: {p:?} is not a page number")))?,
        };
        Ok((
            QueueFilter {
                from: super::optional_date(lang, "from", &self.from)?,
                to: super::optional_date(lang, "to", &self.to)?,
                scope,
                category,
                status,
                open_only,
                owner,
                min_amount_minor,
                sort,
            },
            page,
        ))
    }

    /// This query as a query string, with another page.
    pub fn with_page(&self, page: i64) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("biller", &self.biller),
            ("category", &self.category),
            ("status", &self.status),
            ("owner", &self.owner),
            ("min", &self.min),
            ("sort", &self.sort),
        ] {
            if !v.trim().is_empty() {
                s.append_pair(k, v.trim());
            }
        }
        if page > 1 {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }
}

pub async fn queue(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<QueueQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let scale = state
        .billers
        .snapshot()
        .get(q.biller.trim())
        .map(|b| b.currency.scale())
        .unwrap_or_else(|| scale_of("CNY"));
    let (filter, page) = q.filter(lang, scale)?;
    let size = state.config.console.page_size as i64;
    let store = |e| ConsoleError::store(lang, e);
    let result = state
        .store
        .break_queue(&filter, (page - 1) * size, size)
        .await
        .map_err(store)?;
    let owners = state.store.break_owners().await.map_err(store)?;
    let mut billers: Vec<String> = state.billers.snapshot().keys().cloned().collect();
    billers.sort();
    let now = Utc::now();
    let pages = ((result.total + size - 1) / size).max(1);
    let has_next = page < pages || (result.more && result.rows.len() as i64 == size);
    let body = html! {
        form method="get" action="/console/breaks" class="filters" id="queue-filter" {
            label { (lang.t(L::From)) input type="date" name="from" value=(q.from); }
            label { (lang.t(L::To)) input type="date" name="to" value=(q.to); }
            label { (lang.t(L::Biller))
                select name="biller" {
                    option value="" { (lang.t(L::Any)) }
                    @for b in &billers { option value=(b) selected[q.biller == *b] { (b) } }
                    // A bank account's breaks (linked from the day overview).
                    @if !q.biller.trim().is_empty() && !billers.iter().any(|b| *b == q.biller.trim()) {
                        option value=(q.biller.trim()) selected { (q.biller.trim()) }
                    }
                }
            }
            label { (lang.t(L::Category))
                select name="category" {
                    option value="" { (lang.t(L::Any)) }
                    @for c in Category::ALL { option value=(c.as_str()) selected[q.category == c.as_str()] { (words::category(c, lang)) } }
                }
            }
            label { (lang.t(L::Status))
                select name="status" {
                    option value="open" { (lang.t(L::OpenOnly)) }
                    option value="all" selected[q.status == "all"] { (lang.t(L::Any)) }
                    @for s in BreakStatus::ALL { option value=(s.as_str()) selected[q.status == s.as_str()] { (words::status(s, lang)) } }
                }
            }
            label { (lang.t(L::Assignee))
                select name="owner" {
                    option value="" { (lang.t(L::Any)) }
                    option value="-" selected[q.owner == "-"] { (lang.t(L::Nobody)) }
                    @for o in &owners { option value=(o) selected[q.owner == *o] { (o) } }
                }
            }
            label { (lang.t(L::MinAmount)) input type="text" inputmode="decimal" name="min" value=(q.min) size="8"; }
            label { (lang.t(L::Sort))
                select name="sort" {
                    @for (s, l) in [(QueueSort::OldestFirst, L::OldestFirst), (QueueSort::NewestFirst, L::NewestFirst), (QueueSort::LargestFirst, L::LargestFirst)] {
                        option value=(s.as_str()) selected[q.sort == s.as_str()] { (lang.t(l)) }
                    }
                }
            }
            button type="submit" id="apply-filter" { (lang.t(L::Filter)) }
            a href="/console/breaks" { (lang.t(L::Clear)) }
        }
        p class="count" {
            @if result.more { "> " }
            span id="result-count" { (result.total) } " " (lang.t(L::Results))
            " · " a id="export" href=(format!("/console/breaks-export.xlsx?{}", q.with_page(1))) { (lang.t(L::Export)) }
            @if staff.can(StaffRole::Operator) { " · " a href="/console/uploads" { (lang.t(L::UploadSheet)) } }
        }
        table class="queue" id="breaks" {
            thead { tr {
                th { "#" }
                th { (lang.t(L::BusinessDate)) }
                th { (lang.t(L::Biller)) }
                th { (lang.t(L::Category)) }
                th { (lang.t(L::Why)) }
                th { (lang.t(L::Age)) }
                th { (lang.t(L::Holder)) }
                th { (lang.t(L::Status)) }
            } }
            tbody {
                @for b in &result.rows {
                    tr data-break=(b.id) {
                        td { a href=(format!("/console/breaks/{}", b.id)) { (b.id) } }
                        td { (b.business_date) }
                        td { (b.scope) }
                        td { (words::category(b.category, lang)) }
                        td class="why" { (words::why(b, lang)) }
                        td { (layout::age(b.opened_at, now, lang)) }
                        td { (b.owner.as_deref().unwrap_or("—")) }
                        td { (words::status(b.status, lang)) }
                    }
                }
            }
        }
        nav class="pager" {
            @if page > 1 { a rel="prev" href=(format!("/console/breaks?{}", q.with_page(page - 1))) { (lang.t(L::Previous)) } }
            span { (lang.t(L::Page)) " " (page) @if !result.more { " / " (pages) } }
            @if has_next { a rel="next" href=(format!("/console/breaks?{}", q.with_page(page + 1))) { (lang.t(L::Next)) } }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/breaks",
        lang.t(L::Breaks),
        body,
    ))
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
    let id = super::path_id(lang, "break", &id)?;
    let (b, trail) = state
        .store
        .break_detail(id)
        .await
        .map_err(store)?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("break {id}")))?;
    let zone = state.config.console.zone();
    // Our side: the payment the break is about, when it is one.
    let payment_id = b.our_reference.parse::<uuid::Uuid>().ok().map(PaymentId);
    let (payment, events) = match payment_id {
        Some(pid) => (
            state.store.delivery(pid).await.map_err(store)?,
            state.store.payment_events(pid).await.map_err(store)?,
        ),
        None => (None, Vec::new()),
    };
    // Their side: the records cited, with the file each came from.
    let records: Vec<crate::domain::recon::matching::Evidence> =
        serde_json::from_value(b.evidence.clone()).unwrap_or_default();
    let ids: std::collections::BTreeSet<i64> = records.iter().map(|r| r.file_id).collect();
    let mut files = std::collections::BTreeMap::new();
    for id in ids {
        if let Some(f) = state.store.recon_file(id).await.map_err(store)? {
            files.insert(id, f);
        }
    }
    let now = Utc::now();
    let body = html! {
        (layout::flash(lang, q.done.is_some()))
        p class="why big" id="why" { (words::why(&b, lang)) }
        dl class="facts" {
            dt { (lang.t(L::Status)) } dd id="break-status" { (words::status(b.status, lang)) }
            dt { (lang.t(L::BusinessDate)) } dd { a href=(format!("/console/days/{}", b.business_date)) { (b.business_date) } }
            dt { (lang.t(L::Biller)) } dd { (b.scope) }
            dt { (lang.t(L::Category)) } dd { (words::category(b.category, lang)) }
            dt { (lang.t(L::Holder)) } dd { (b.owner.as_deref().unwrap_or("—")) }
            dt { (lang.t(L::Age)) } dd { (layout::age(b.opened_at, now, lang)) }
            dt { (lang.t(L::Detail)) } dd { (b.detail) }
            @if let Some(r) = &b.resolution { dt { (lang.t(L::Resolution)) } dd { (r) } }
        }
        div class="sides" {
            section class="side ours" {
                h2 { (lang.t(L::Ours)) }
                dl class="facts" {
                    dt { (lang.t(L::OurReference)) } dd {
                        @if let Some(pid) = payment_id { a href=(format!("/console/payments/{pid}")) { (b.our_reference) } }
                        @else { (b.our_reference) }
                    }
                    dt { (lang.t(L::Amount)) } dd { (b.our_amount_minor.map(|m| minor(m, &b.currency)).unwrap_or_else(|| "—".into())) }
                    @if let Some((p, h)) = &payment {
                        dt { (lang.t(L::Status)) } dd { (p.status.as_str()) }
                        dt { (lang.t(L::Channel)) } dd { (p.channel_id.as_str()) " · " (p.channel_reference) }
                        dt { (lang.t(L::Account)) } dd { (crate::domain::payment::mask_account(&p.account_number)) }
                        dt { (lang.t(L::Route)) } dd { (h.connector_id.as_deref().unwrap_or("—")) }
                        dt { (lang.t(L::TheirReference)) } dd { (p.biller_reference.as_deref().unwrap_or("—")) }
                    }
                }
            }
            section class="side theirs" {
                h2 { (lang.t(L::Theirs)) }
                dl class="facts" {
                    dt { (lang.t(L::TheirReference)) } dd { (if b.their_reference.is_empty() { "—" } else { &b.their_reference }) }
                    dt { (lang.t(L::Amount)) } dd { (b.their_amount_minor.map(|m| minor(m, &b.currency)).unwrap_or_else(|| "—".into())) }
                }
                @if records.is_empty() {
                    h3 { (lang.t(L::Evidence)) }
                    (layout::json(&b.evidence))
                } @else {
                    table class="evidence" {
                        thead { tr { th { (lang.t(L::CameFrom)) } th { (lang.t(L::Status)) } th { (lang.t(L::TheirReference)) } th { (lang.t(L::Amount)) } } }
                        tbody {
                            @for r in &records {
                                tr {
                                    td {
                                        a href=(format!("/console/files/{}", r.file_id)) {
                                            (files.get(&r.file_id).map(|f| f.file_name.as_str()).unwrap_or("?"))
                                        }
                                        " (" (r.kind.as_str()) " #" (r.file_id) "), line " (r.line)
                                    }
                                    td { (r.status.as_str()) }
                                    td { (r.their_reference) }
                                    td { (minor(r.amount_minor, &r.currency)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !events.is_empty() {
            h2 { (lang.t(L::Timeline)) }
            table class="timeline" {
                thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Status)) } th { (lang.t(L::Reason)) } } }
                tbody { @for e in &events { tr {
                    td { (layout::time(e.at, zone)) }
                    td { (e.from.map(|s| s.as_str()).unwrap_or("")) " → " (e.to.as_str()) }
                    td { (e.reason) }
                } } }
            }
        }
        h2 { (lang.t(L::Audit)) }
        table class="trail" id="trail" {
            thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Actor)) } th { (lang.t(L::Action)) } th { (lang.t(L::Status)) } th { (lang.t(L::Note)) } } }
            tbody { @for e in &trail { tr {
                td { (layout::time(e.at, zone)) }
                td class="actor" { (e.actor) }
                td class="action" { (e.action) }
                td { (e.from_status.as_deref().unwrap_or("")) " → " (e.to_status) }
                td class="note" { (e.note) }
            } } }
        }
        (actions(&state, &staff, &b))
    };
    Ok(layout::page(
        &staff,
        &format!("/console/breaks/{id}"),
        &format!("{} #{id}", lang.t(L::Break)),
        body,
    ))
}

/// The forms this user may use on this break, as the workflow decides.
fn actions(state: &AppState, staff: &Staff, b: &BreakRow) -> Markup {
    let lang = staff.lang;
    let work = WorkState {
        category: b.category,
        status: b.status,
        owner: b.owner.clone(),
        proposal: b.proposal.clone(),
    };
    let actor = Actor {
        user: staff.user.id.clone(),
        role: staff.user.role,
    };
    let allowed = |a: &Action| decide(&work, &actor, a).is_ok();
    let text = |s: &str| s.to_string();
    let can_assign = allowed(&Action::Assign { owner: text("x") });
    let can_investigate = allowed(&Action::Investigate);
    let can_comment = allowed(&Action::Comment { text: text("x") });
    let proposable: Vec<ResolutionKind> = ResolutionKind::CHOSEN
        .into_iter()
        .filter(|k| {
            allowed(&Action::Propose(Proposal {
                kind: *k,
                maker: String::new(),
                connector: Some("x".into()),
                note: "x".into(),
            }))
        })
        .collect();
    let can_approve = allowed(&Action::Approve);
    let can_decline = allowed(&Action::Decline { reason: text("x") });
    let is_maker = b
        .proposal
        .as_ref()
        .is_some_and(|p| p.maker == staff.user.id);
    let url = format!("/console/breaks/{}/act", b.id);
    let mut routes: Vec<String> = state
        .billers
        .snapshot()
        .get(&b.scope)
        .map(|x| x.routes.iter().map(|r| r.as_str().to_string()).collect())
        .unwrap_or_default();
    routes.sort();
    html! {
        section class="actions" id="actions" {
            h2 { (lang.t(L::Actions)) }
            @if let Some(p) = &b.proposal {
                div class="proposal" id="proposal" {
                    strong { (lang.t(L::Proposal)) ": " (p.kind.as_str()) }
                    " — " (lang.t(L::ProposedBy)) " " span class="maker" { (p.maker) }
                    @if let Some(c) = &p.connector { " · " (c) }
                    p class="note" { (p.note) }
                    @if is_maker { p class="muted" id="own-proposal" { (lang.t(L::YouProposed)) } }
                }
            }
            @if !staff.can(StaffRole::Operator) { p class="muted" { (lang.t(L::ViewerOnly)) } }
            @if can_approve {
                form method="post" action=(url) class="inline" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="approve";
                    button type="submit" id="approve" class="primary" { (lang.t(L::Approve)) }
                }
            }
            @if can_decline {
                form method="post" action=(url) {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="decline";
                    label { (lang.t(L::Reason)) input type="text" name="reason" required; }
                    button type="submit" id="decline" { (lang.t(L::Decline)) }
                }
            }
            @if can_investigate {
                form method="post" action=(url) class="inline" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="investigate";
                    button type="submit" id="investigate" { (lang.t(L::Investigate)) }
                }
            }
            @if can_assign {
                form method="post" action=(url) {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="assign";
                    label { (lang.t(L::Assign)) input type="text" name="owner" value=(staff.user.id) required; }
                    button type="submit" id="assign" { (lang.t(L::Assign)) }
                }
            }
            @if !proposable.is_empty() {
                form method="post" action=(url) id="propose-form" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="propose";
                    label { (lang.t(L::Resolution))
                        select name="resolution" id="resolution" {
                            @for k in &proposable { option value=(k.as_str()) { (k.as_str()) } }
                        }
                    }
                    label { (lang.t(L::Connector))
                        select name="connector" {
                            option value="" { "—" }
                            @for r in &routes { option value=(r) { (r) } }
                        }
                    }
                    label { (lang.t(L::Note)) textarea name="note" id="note" required rows="2" {} }
                    button type="submit" id="propose" { (lang.t(L::Propose)) }
                }
            }
            @if can_comment {
                form method="post" action=(url) id="comment-form" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    input type="hidden" name="action" value="comment";
                    label { (lang.t(L::Comment)) textarea name="text" id="comment" required rows="2" {} }
                    button type="submit" id="add-comment" { (lang.t(L::Comment)) }
                }
            }
        }
    }
}

/// An action's form (the fields the chosen action needs; the others
/// empty).
#[derive(Deserialize, Default, Debug, Clone)]
pub struct ActForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub resolution: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub connector: String,
    #[serde(default)]
    pub reason: String,
}

/// Why text is not accepted: control characters (free text may break
/// lines), or more than 4000 characters. Forms and uploaded sheets alike.
pub fn text_problem(field: &str, s: &str, multiline: bool) -> Option<String> {
    if s.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Some(format!("{field}: control characters are not accepted"));
    }
    if s.chars().count() > 4000 {
        return Some(format!("{field}: at most 4000 characters"));
    }
    None
}

/// A form's text field, refused with [`text_problem`]'s reason.
pub fn check_text(lang: Lang, field: &str, s: &str, multiline: bool) -> Result<(), ConsoleError> {
    match text_problem(field, s, multiline) {
        Some(why) => Err(ConsoleError::bad_request(lang, why)),
        None => Ok(()),
    }
}

/// Builds the workflow action of a form (what the JSON API's body says).
pub fn action_of(lang: Lang, f: &ActForm) -> Result<Action, ConsoleError> {
    let (owner, text, resolution, note, connector, reason) = (
        &f.owner,
        &f.text,
        &f.resolution,
        &f.note,
        &f.connector,
        &f.reason,
    );
    check_text(lang, "owner", owner, false)?;
    check_text(lang, "connector", connector, false)?;
    check_text(lang, "text", text, true)?;
    check_text(lang, "note", note, true)?;
    check_text(lang, "reason", reason, true)?;
    Ok(match f.action.trim() {
        "assign" => Action::Assign {
            owner: owner.trim().to_string(),
        },
        "investigate" => Action::Investigate,
        "comment" => Action::Comment {
            text: text.to_string(),
        },
        "propose" => {
            let kind = ResolutionKind::parse_chosen(resolution.trim()).ok_or_else(|| {
                ConsoleError::bad_request(
                    lang,
                    format!(
                        "unknown resolution {resolution:?}; one of {}",
                        ResolutionKind::chosen_names()
                    ),
                )
            })?;
            Action::Propose(Proposal {
                kind,
                maker: String::new(),
                connector: Some(connector.trim().to_string()).filter(|c| !c.is_empty()),
                note: note.to_string(),
            })
        }
        "approve" => Action::Approve,
        "decline" => Action::Decline {
            reason: reason.to_string(),
        },
        other => {
            return Err(ConsoleError::bad_request(
                lang,
                format!("unknown action {other:?} (assign, investigate, comment, propose, approve, decline)"),
            ))
        }
    })
}

/// Applies an action as `staff` through the workflow the API uses.
pub async fn apply(
    state: &AppState,
    staff: &Staff,
    id: i64,
    action: &Action,
) -> Result<BreakRow, ConsoleError> {
    let lang = staff.lang;
    let actor = Actor {
        user: staff.user.id.clone(),
        role: staff.user.role,
    };
    crate::reconcile::resend::act(
        &state.store,
        state.routes.connectors(),
        id,
        &actor,
        action,
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        ActError::Workflow(e) => workflow_error(lang, e),
        ActError::Resend(r) => {
            ConsoleError::new(lang, StatusCode::CONFLICT, L::Refused, r.to_string())
        }
        ActError::NoBreak(id) => ConsoleError::not_found(lang, format!("break {id}")),
        ActError::Store(e) => ConsoleError::store(lang, e),
    })
}

fn workflow_error(lang: Lang, e: WorkflowError) -> ConsoleError {
    let detail = e.to_string();
    let status = match e {
        WorkflowError::Role { .. } | WorkflowError::SameUser { .. } => StatusCode::FORBIDDEN,
        WorkflowError::State { .. } => StatusCode::CONFLICT,
        WorkflowError::NotApplicable(_) | WorkflowError::Invalid(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    let title = if status == StatusCode::FORBIDDEN {
        L::Forbidden
    } else {
        L::Refused
    };
    ConsoleError::new(lang, status, title, detail)
}

pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    staff.check_csrf(&f.csrf)?;
    staff.require(StaffRole::Operator)?;
    let lang = staff.lang;
    let id = super::path_id(lang, "break", &id)?;
    let action = action_of(lang, &f)?;
    apply(&state, &staff, id, &action).await?;
    Ok(layout::see_other(&format!("/console/breaks/{id}?done=1")))
}
