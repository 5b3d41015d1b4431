//! Payments: finding one (`/console/payments?q=`) by our reference, the
//! app's reference, the biller's reference or the account number, and a
//! payment's page (`/console/payments/{id}`): its facts, states, dispatch
//! attempts and inquiries, callbacks, ledger journals, settlement, returns
//! and breaks. Account numbers are shown masked.

use axum::extract::{Path, Query, State};
use axum::response::Html;
use maud::html;
use serde::Deserialize;

use super::i18n::L;
use super::layout::{self, money};
use super::session::Staff;
use super::ConsoleError;
use crate::domain::ids::PaymentId;
use crate::domain::payment::mask_account;
use crate::domain::staff::StaffRole;
use crate::state::AppState;

/// At most this many results.
const LIMIT: i64 = 100;

#[derive(Debug, Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub async fn search(
    State(state): State<AppState>,
    staff: Staff,
    Query(sq): Query<SearchQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let q = sq.q.trim();
    super::breaks::check_text(lang, "q", q, false)?;
    if q.chars().count() > 200 {
        return Err(ConsoleError::bad_request(lang, "q: at most 200 characters"));
    }
    let rows = if q.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .find_payments(q, LIMIT)
            .await
            .map_err(|e| ConsoleError::store(lang, e))?
    };
    let zone = state.config.console.zone();
    let body = html! {
        form method="get" action="/console/payments" class="filters" id="payment-search" {
            label { (lang.t(L::FindPayment))
                // Not filled in again: the query may be an account number,
                // which a page never shows in full.
                input type="search" name="q" size="40" required;
            }
            button type="submit" id="search" { (lang.t(L::Search)) }
        }
        @if !q.is_empty() {
            @if rows.is_empty() { p class="muted" id="no-results" { (lang.t(L::NoPayments)) } }
            @else {
                p class="count" { span id="result-count" { (rows.len()) } " " (lang.t(L::Results)) }
                table class="queue" id="payments" {
                    thead { tr {
                        th { (lang.t(L::OurReference)) }
                        th { (lang.t(L::Channel)) }
                        th { (lang.t(L::AppReference)) }
                        th { (lang.t(L::Biller)) }
                        th { (lang.t(L::AccountNumber)) }
                        th { (lang.t(L::Amount)) }
                        th { (lang.t(L::Status)) }
                        th { (lang.t(L::Created)) }
                    } }
                    tbody {
                        @for p in &rows {
                            tr data-payment=(p.id) {
                                td { a href=(format!("/console/payments/{}", p.id)) { (p.id) } }
                                td { (p.channel_id) }
                                td { (p.channel_reference) }
                                td { (p.biller_id) }
                                td class="account" { (mask_account(&p.account_number)) }
                                td class="num" { (money(p.amount, &p.currency)) }
                                td { (p.status) }
                                td { (layout::time(p.created_at, zone)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/payments",
        lang.t(L::Payments),
        body,
    ))
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let store = |e| ConsoleError::store(lang, e);
    let pid = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
        ConsoleError::not_found(
            lang,
            format!(
                "payment {:?}: not a payment id (a UUID)",
                id.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let page = state
        .store
        .payment_page(pid)
        .await
        .map_err(store)?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("payment {pid}")))?;
    let events = state
        .store
        .payment_events(PaymentId(pid))
        .await
        .map_err(store)?;
    let zone = state.config.console.zone();
    let p = &page.facts;
    let t = |at| layout::time(at, zone);
    let dash = "—";
    let body = html! {
        dl class="facts" id="facts" {
            dt { (lang.t(L::Status)) } dd id="payment-status" { (p.status) }
            dt { (lang.t(L::Amount)) } dd { (money(p.amount, &p.currency)) }
            dt { (lang.t(L::Channel)) } dd { (p.channel_id) }
            dt { (lang.t(L::AppReference)) } dd { (p.channel_reference) }
            dt { (lang.t(L::Biller)) } dd { (p.biller_id) }
            dt { (lang.t(L::AccountNumber)) } dd class="account" { (mask_account(&p.account_number)) }
            dt { (lang.t(L::BillReference)) } dd { (p.bill_reference.as_deref().unwrap_or(dash)) }
            dt { (lang.t(L::Route)) } dd { (p.connector_id.as_deref().unwrap_or(dash)) }
            dt { (lang.t(L::BillerReference)) } dd { (p.biller_reference.as_deref().unwrap_or(dash)) }
            dt { (lang.t(L::Created)) } dd { (t(p.created_at)) }
            dt { (lang.t(L::Confirmed)) } dd { (p.confirmed_at.map(t).unwrap_or_else(|| dash.into())) }
        }
        h2 { (lang.t(L::Timeline)) }
        table class="timeline" id="states" {
            thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Status)) } th { (lang.t(L::Reason)) } } }
            tbody { @for e in &events { tr {
                td { (t(e.at)) }
                td { (e.from.map(|s| s.as_str()).unwrap_or("")) " → " (e.to.as_str()) }
                td { (e.reason) }
            } } }
        }
        h2 { (lang.t(L::Attempts)) }
        @if page.attempts.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @else {
            table id="attempts" {
                thead { tr {
                    th { "#" } th { (lang.t(L::Kind)) } th { (lang.t(L::Route)) } th { (lang.t(L::Process)) }
                    th { (lang.t(L::At)) } th { (lang.t(L::Finished)) } th { (lang.t(L::Outcome)) } th { (lang.t(L::Detail)) }
                } }
                tbody { @for a in &page.attempts {
                    tr data-kind=(a.kind) {
                        td { (a.id) }
                        td { (a.kind) @if a.kind == "status" { " (" (lang.t(L::Inquiry)) ")" } }
                        td { (a.connector_id) }
                        td { (a.worker) }
                        td { (t(a.started_at)) }
                        td { (a.finished_at.map(t).unwrap_or_else(|| dash.into())) }
                        td class="outcome" { (a.outcome.as_deref().unwrap_or(dash)) }
                        td { (a.result_code.as_deref().unwrap_or("")) " " (a.detail.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
        h2 { (lang.t(L::Callbacks)) }
        @if page.callbacks.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @else {
            table id="callbacks" {
                thead { tr {
                    th { (lang.t(L::Kind)) } th { (lang.t(L::Created)) } th { (lang.t(L::Attempts)) }
                    th { (lang.t(L::Status)) } th { (lang.t(L::LastError)) }
                } }
                tbody { @for c in &page.callbacks {
                    tr {
                        td { (c.event) }
                        td { (t(c.created_at)) }
                        td { (c.attempts) }
                        td {
                            @if let Some(at) = c.done_at { span class="ok" { (lang.t(L::Delivered)) " " (t(at)) } }
                            @else if c.abandoned { span class="red" { (lang.t(L::Abandoned)) } }
                            @else { span class="amber" { (lang.t(L::Waiting)) } }
                        }
                        td { (c.last_error.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
        h2 { (lang.t(L::Journals)) }
        @if page.journals.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @for j in &page.journals {
            section class="journal" data-journal=(j.id) data-kind=(j.kind) {
                h3 { (j.kind) " · " (j.description) " · " span class="muted" { (t(j.created_at)) } }
                p class="muted" { (j.id) @if let Some(r) = j.resolves { " → " (r) } }
                table class="entries" {
                    thead { tr { th { (lang.t(L::LedgerAccount)) } th { (lang.t(L::Layer)) } th { (lang.t(L::Side)) } th { (lang.t(L::Amount)) } } }
                    tbody { @for e in &j.entries { tr {
                        td { (e.account) } td { (e.layer) } td { (e.side) } td class="num" { (money(e.amount, &e.currency)) }
                    } } }
                }
            }
        }
        h2 { (lang.t(L::Batch)) }
        @if page.items.is_empty() { p class="muted" { (lang.t(L::NoBatch)) } }
        @else {
            table id="settlement" {
                thead { tr { th { (lang.t(L::BusinessDate)) } th { (lang.t(L::Kind)) } th { (lang.t(L::Amount)) } th { (lang.t(L::Commission)) } } }
                tbody { @for i in &page.items { tr {
                    td { a href=(format!("/console/settlement/{}#{}", i.business_date, i.batch_id)) { (i.business_date) } }
                    td { (i.kind) }
                    td class="num" { (money(i.amount, &i.currency)) }
                    td class="num" { (money(i.commission, &i.currency)) }
                } } }
            }
        }
        @if !page.returns.is_empty() {
            h2 { (lang.t(L::Returns)) }
            table id="returns" {
                thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Amount)) } th { (lang.t(L::Reason)) } } }
                tbody { @for r in &page.returns { tr {
                    td { (t(r.returned_at)) } td class="num" { (money(r.amount, &r.currency)) } td { (r.reason) }
                } } }
            }
        }
        h2 { (lang.t(L::BreaksAbout)) }
        @if page.breaks.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @else {
            ul id="breaks" {
                @for b in &page.breaks {
                    li { a href=(format!("/console/breaks/{}", b.id)) { "#" (b.id) } " · " (b.business_date) " · " (b.category) " · " (b.status) }
                }
            }
        }
    };
    Ok(layout::page(
        &staff,
        &format!("/console/payments/{pid}"),
        &format!("{} {pid}", lang.t(L::Payment)),
        body,
    ))
}
