//! Settlement (`/console/settlement/{date}`): the batches closed for a
//! business date with their totals, files (downloaded through
//! `/console/settlement/{batch}/files/{name}`, the same checked bytes the
//! billers' API serves) and payouts: when each is due, and the bank entry
//! that paid it.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::Days;
use maud::html;
use rust_decimal::Decimal;

use super::i18n::L;
use super::layout::{self, minor, money};
use super::session::Staff;
use super::ConsoleError;
use crate::domain::recon::bank::ClosedBatch;
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::BatchRecord;

pub async fn today(State(state): State<AppState>, staff: Staff) -> Result<Response, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    Ok(layout::see_other(&format!(
        "/console/settlement/{}",
        super::days::today(&state)
    )))
}

/// A batch as the payout check reads it (its due date).
fn closed(b: &BatchRecord) -> ClosedBatch {
    let scale = crate::domain::recon::matching::scale_of(&b.currency);
    let net_minor = (b.totals.net() * Decimal::from(10i64.pow(scale)))
        .trunc()
        .to_string()
        .parse::<i64>()
        .unwrap_or(i64::MAX);
    ClosedBatch {
        id: b.id,
        biller_id: b.biller_id.clone(),
        business_date: b.business_date,
        created_at: b.created_at,
        net_minor,
        currency: b.currency.clone(),
        files_written: b.files_written_at.is_some(),
    }
}

pub async fn day(
    State(state): State<AppState>,
    staff: Staff,
    Path(date): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let store = |e| ConsoleError::store(lang, e);
    let date = super::path_date(lang, &date)?;
    let mut batches = state.store.batches(None, Some(date)).await.map_err(store)?;
    batches.sort_by(|a, b| a.biller_id.cmp(&b.biller_id));
    let mut files = Vec::new();
    for b in &batches {
        files.push(state.store.batch_files(b.id).await.map_err(store)?);
    }
    // Payouts due on this date (whatever their business date).
    let due_today: Vec<BatchRecord> = state
        .store
        .batches_due_between(date, date)
        .await
        .map_err(store)?
        .into_iter()
        .filter(|b| closed(b).due() == Some(date))
        .collect();
    let mut ids: Vec<uuid::Uuid> = batches.iter().map(|b| b.id).collect();
    ids.extend(due_today.iter().map(|b| b.id));
    let payouts = state.store.payouts(&ids).await.map_err(store)?;
    let paid = |id: uuid::Uuid| payouts.iter().find(|p| p.batch_id == id);
    let zone = state.config.console.zone();
    let body = html! {
        p class="daynav" {
            a href=(format!("/console/settlement/{}", date - Days::new(1))) { "← " (date - Days::new(1)) }
            " · " strong { (date) } " · "
            a href=(format!("/console/settlement/{}", date + Days::new(1))) { (date + Days::new(1)) " →" }
            " · " a href=(format!("/console/days/{date}")) { (lang.t(L::DayOverview)) }
        }
        h2 { (lang.t(L::Batches)) }
        @if batches.is_empty() { p class="muted" id="no-batches" { (lang.t(L::NoBatches)) } }
        @for (b, fs) in batches.iter().zip(&files) {
            @let c = closed(b);
            section class="batch" id=(b.id) data-biller=(b.biller_id) {
                h3 { (b.biller_id) " · " (b.biller_name) }
                table class="overview" {
                    thead { tr {
                        th { (lang.t(L::Count)) } th { (lang.t(L::Gross)) } th { (lang.t(L::Commission)) }
                        th { (lang.t(L::Returns)) } th { (lang.t(L::Net)) } th { (lang.t(L::Files)) }
                        th { (lang.t(L::DueOn)) } th { (lang.t(L::PaidOn)) }
                    } }
                    tbody { tr {
                        td class="num" { (b.totals.count) }
                        td class="num" { (money(b.totals.gross, &b.currency)) }
                        td class="num" { (money(b.totals.commission, &b.currency)) }
                        td class="num" { (b.totals.returns_count) " · " (money(b.totals.returns, &b.currency)) }
                        td class="num net" { (money(b.totals.net(), &b.currency)) }
                        td {
                            @if let Some(at) = b.files_written_at { span class="ok" { (lang.t(L::FilesWritten)) " " (layout::time(at, zone)) } }
                            @else if b.files_failed() { span class="red" { (lang.t(L::FilesFailed)) } }
                            @else { span class="amber" { (lang.t(L::FilesPending)) } }
                        }
                        td { @match c.due() { Some(d) => (d), None => span class="muted" { (lang.t(L::NothingToPay)) } } }
                        td {
                            @match paid(b.id) {
                                Some(p) => span class="ok" { (p.booking_date) " · " (minor(p.amount_minor, &p.currency)) },
                                None if c.due().is_some() => span class="amber" { (lang.t(L::NotPaid)) },
                                None => span class="muted" { "—" },
                            }
                        }
                    } }
                }
                @if let Some(f) = &b.files_failure { @if b.files_failed() { p class="error" { (f) } } }
                @if !fs.is_empty() {
                    ul class="files plain" {
                        @for f in fs {
                            li {
                                a href=(format!("/console/settlement/{}/files/{}", b.id, layout::segment(&f.name))) download { (f.name) }
                                " · " (f.kind) " · " (f.bytes) " B · " span class="muted sha" { (f.sha256) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.t(L::DueThisDate)) }
        @if due_today.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @else {
            table class="overview" id="payouts-due" {
                thead { tr { th { (lang.t(L::Biller)) } th { (lang.t(L::BusinessDate)) } th { (lang.t(L::Net)) } th { (lang.t(L::PaidOn)) } } }
                tbody { @for b in &due_today {
                    @let p = paid(b.id);
                    tr class=[p.is_none().then_some("attention")] {
                        td { (b.biller_id) }
                        td { a href=(format!("/console/settlement/{}#{}", b.business_date, b.id)) { (b.business_date) } }
                        td class="num" { (money(b.totals.net(), &b.currency)) }
                        td {
                            @match p {
                                Some(p) => span class="ok" { (p.booking_date) " · " (minor(p.amount_minor, &p.currency)) },
                                None => span class="red" { (lang.t(L::NotPaid)) },
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout::page(
        &staff,
        &format!("/console/settlement/{date}"),
        &format!("{} {date}", lang.t(L::Settlement)),
        body,
    ))
}

/// A batch's file, as the billers' download serves it: only a name
/// recorded for the batch, checked against its recorded SHA-256.
pub async fn file(
    State(state): State<AppState>,
    staff: Staff,
    Path((batch, name)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let store = |e| ConsoleError::store(lang, e);
    let missing = || {
        ConsoleError::not_found(
            lang,
            format!(
                "no file {:?} in batch {:?}",
                name.chars().take(200).collect::<String>(),
                batch.chars().take(64).collect::<String>()
            ),
        )
    };
    let id = uuid::Uuid::parse_str(&batch).map_err(|_| missing())?;
    let b = state
        .store
        .batch(id)
        .await
        .map_err(store)?
        .ok_or_else(missing)?;
    let f = state
        .store
        .batch_files(b.id)
        .await
        .map_err(store)?
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(missing)?;
    let path = state
        .config
        .settlement
        .outbox_dir
        .join(&b.biller_id)
        .join(&f.name);
    Ok(
        match crate::api::settlements::send_checked(path, &f.name, &f.sha256).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    )
}
