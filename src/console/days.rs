//! The day overview (`/console/days/{date}`) and the home page (today and
//! yesterday in the business time zone): per biller, payments by state,
//! the settlement batch and whether the bank paid it, the reconciliation
//! and its open breaks; per payment app, its statement and funding. Red
//! where something needs a person.

use axum::extract::State;
use axum::response::Html;
use chrono::{Days, NaiveDate, Utc};
use maud::{html, Markup};

use super::i18n::{Lang, L};
use super::layout::{self, money};
use super::session::Staff;
use super::{words, ConsoleError};
use crate::domain::recon::matching::Category;
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::console::{BillerWindow, DayOverview};
use axum::extract::Path;

/// Each biller's business date `date` as the interval of acceptance times
/// between its cut-offs.
pub fn windows(state: &AppState, date: NaiveDate) -> Vec<BillerWindow> {
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<_> = snapshot.values().collect();
    billers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    billers
        .into_iter()
        .map(|b| BillerWindow {
            biller_id: b.id.as_str().to_string(),
            biller_name: b.name.clone(),
            currency: b.currency.code().to_string(),
            from: b.cutoff.instant(date - Days::new(1)),
            to: b.cutoff.instant(date),
        })
        .collect()
}

pub fn today(state: &AppState) -> NaiveDate {
    Utc::now()
        .with_timezone(&state.config.console.zone())
        .date_naive()
}

pub async fn home(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let today = today(&state);
    let yesterday = today - Days::new(1);
    let mut sections = Vec::new();
    for (label, date) in [(L::Today, today), (L::Yesterday, yesterday)] {
        let o = state
            .store
            .day_overview(date, &windows(&state, date))
            .await
            .map_err(|e| ConsoleError::store(lang, e))?;
        sections.push(html! {
            section class="day" {
                h2 { (lang.t(label)) " · " a href=(format!("/console/days/{date}")) { (date) } }
                (overview(&state, &staff, date, &o))
            }
        });
    }
    Ok(layout::page(
        &staff,
        "/console/",
        lang.t(L::DayOverview),
        html! { @for s in sections { (s) } },
    ))
}

pub async fn day(
    State(state): State<AppState>,
    staff: Staff,
    Path(date): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let date = super::path_date(lang, &date)?;
    let o = state
        .store
        .day_overview(date, &windows(&state, date))
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    let here = format!("/console/days/{date}");
    let body = html! {
        p class="daynav" {
            a href=(format!("/console/days/{}", date - Days::new(1))) { "← " (date - Days::new(1)) }
            " · " strong { (date) } " · "
            a href=(format!("/console/days/{}", date + Days::new(1))) { (date + Days::new(1)) " →" }
        }
        (overview(&state, &staff, date, &o))
    };
    Ok(layout::page(
        &staff,
        &here,
        &format!("{} {}", lang.t(L::DayOverview), date),
        body,
    ))
}

fn overview(state: &AppState, staff: &Staff, date: NaiveDate, o: &DayOverview) -> Markup {
    let lang = staff.lang;
    let zone = state.config.console.zone();
    let now = Utc::now();
    html! {
        table class="overview" data-date=(date) {
            thead { tr {
                th { (lang.t(L::Biller)) }
                th { (lang.t(L::States)) }
                th { (lang.t(L::Batch)) }
                th { (lang.t(L::Recon)) }
                th { (lang.t(L::OpenBreaks)) }
            } }
            tbody {
                @for b in &o.billers {
                    @let unknown = b.states.iter().any(|(s, n, _)| s == "UNKNOWN" && *n > 0);
                    @let breaks_open: i64 = b.open_breaks.iter().map(|(_, n, _)| n).sum();
                    @let failed = b.recon.as_ref().is_some_and(|r| r.failed.is_some())
                        || b.batches.iter().any(|x| x.files_failed);
                    tr class=[(unknown || breaks_open > 0 || failed).then_some("attention")] data-biller=(b.biller_id) {
                        td { strong { (b.biller_id) } br; span class="muted" { (b.biller_name) } }
                        td {
                            @if b.states.is_empty() { span class="muted" { (lang.t(L::None)) } }
                            ul class="plain" {
                                @for (s, n, amount) in &b.states {
                                    li class=[(s == "UNKNOWN").then_some("red")] {
                                        (s) ": " (n) " · " (money(*amount, &b.currency))
                                    }
                                }
                            }
                        }
                        td {
                            @if b.batches.is_empty() { span class="muted" { (lang.t(L::NoBatch)) } }
                            @for x in &b.batches {
                                div {
                                    a href=(format!("/console/settlement/{date}#{}", x.id)) { (money(x.net, &b.currency)) }
                                    " (" (x.items) ") "
                                    @if let Some(at) = x.paid_at {
                                        span class="ok" { (lang.t(L::BankPaid)) " " (layout::time(at, zone)) }
                                    } @else {
                                        span class="amber" { (lang.t(L::NotPaid)) }
                                    }
                                    @if x.files_failed { " " span class="red" { "files failed" } }
                                }
                            }
                        }
                        td {
                            @match &b.recon {
                                None => span class="muted" { (lang.t(L::NotReconciled)) },
                                Some(r) if r.failed.is_some() => span class="red" { (lang.t(L::ReconFailed)) },
                                Some(r) => span class="ok" { (lang.t(L::Reconciled)) " #" (r.id) },
                            }
                        }
                        td {
                            @if b.open_breaks.is_empty() { span class="muted" { (lang.t(L::None)) } }
                            ul class="plain" {
                                @for (c, n, oldest) in &b.open_breaks {
                                    li class="red" {
                                        a href=(format!("/console/breaks?from={date}&to={date}&biller={}&category={c}", layout::urlencode(&b.biller_id))) {
                                            (n) " × " (Category::parse(c).map(|c| words::category(c, lang)).unwrap_or(c))
                                        }
                                        " · " (lang.t(L::Oldest)) " " (layout::age(*oldest, now, lang))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !o.other_breaks.is_empty() {
            h3 { (lang.t(L::BankAccounts)) }
            table class="overview bank" {
                thead { tr { th { (lang.t(L::Subject)) } th { (lang.t(L::OpenBreaks)) } } }
                tbody {
                    @for (scope, c, n, oldest) in &o.other_breaks {
                        tr class="attention" data-scope=(scope) {
                            td { (scope) }
                            td class="red" {
                                a href=(format!("/console/breaks?from={date}&to={date}&biller={}&category={c}", layout::urlencode(scope))) {
                                    (n) " × " (Category::parse(c).map(|c| words::category(c, lang)).unwrap_or(c))
                                }
                                " · " (lang.t(L::Oldest)) " " (layout::age(*oldest, now, lang))
                            }
                        }
                    }
                }
            }
        }
        h3 { (lang.t(L::Channel)) }
        @if o.channels.is_empty() { p class="muted" { (lang.t(L::None)) } }
        @else {
            table class="overview channels" {
                thead { tr {
                    th { (lang.t(L::Channel)) }
                    th { (lang.t(L::StatementTotal)) }
                    th { (lang.t(L::FundingReceived)) }
                } }
                tbody {
                    @for c in &o.channels {
                        @let short = c.funded != c.statement;
                        tr class=[short.then_some("attention")] data-channel=(c.channel_id) {
                            td { (c.channel_id) }
                            td { (money(c.statement, &c.currency)) " (" (c.statement_items) ")" }
                            td class=[short.then_some("red")] { (money(c.funded, &c.currency)) }
                        }
                    }
                }
            }
        }
        @if lang == Lang::En { p class="muted legend" { span class="red" { "red" } ": " (lang.t(L::NeedsAPerson)) } }
        @else { p class="muted legend" { span class="red" { "红色" } "：" (lang.t(L::NeedsAPerson)) } }
    }
}
