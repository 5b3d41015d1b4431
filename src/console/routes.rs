//! Routes (`/console/routes`): each biller's routes in the order they are
//! tried, the preferred one, the circuit as this process sees it and as
//! every running process reported it; the planned switch of a biller's
//! new payments, in two steps (the first names the payments still in
//! flight on the current route, the second makes the switch through the
//! same function as `PUT /ops/v1/billers/{id}/route`), and the billers'
//! audit of switches.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use axum::Form;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::i18n::{Lang, L};
use super::layout;
use super::session::Staff;
use super::ConsoleError;
use crate::dispatch::routes::{check_switch, switch_preferred, SwitchError};
use crate::domain::biller::Biller;
use crate::domain::routing::route_order;
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::console::AuditEntry;

/// At most this many in-flight payments are named.
const NAMED: i64 = 20;

/// The route new payments of `b` go to first (its preferred one, else
/// the first of its order).
fn current_route(b: &Biller) -> Option<String> {
    let names: Vec<String> = b.routes.iter().map(|r| r.to_string()).collect();
    let preferred = b.preferred_route.as_ref().map(|r| r.as_str());
    route_order(&names, preferred)
        .first()
        .map(|r| r.to_string())
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<super::DoneQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let store = |e| ConsoleError::store(lang, e);
    let zone = state.config.console.zone();
    let since = Utc::now()
        - chrono::Duration::milliseconds((3 * state.config.routing.heartbeat_ms) as i64 + 5_000);
    let health = state.store.route_health(since).await.map_err(store)?;
    let here_rows = state.routes.snapshot("");
    let snapshot = state.billers.snapshot();
    let mut billers: Vec<&Biller> = snapshot.values().collect();
    billers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let mut audits = Vec::new();
    for b in &billers {
        audits.push(
            state
                .store
                .audit_of("biller", b.id.as_str())
                .await
                .map_err(store)?,
        );
    }
    let operator = staff.can(StaffRole::Operator);
    let body = html! {
        (layout::flash(lang, q.done.is_some()))
        @if !operator { p class="muted" { (lang.t(L::ViewerOnly)) } }
        @for (b, audit) in billers.iter().zip(&audits) {
            @let names: Vec<String> = b.routes.iter().map(|r| r.to_string()).collect();
            @let preferred = b.preferred_route.as_ref().map(|r| r.as_str());
            section class="biller" id=(b.id.as_str()) data-biller=(b.id.as_str()) {
                h2 { (b.id.as_str()) " · " span class="muted" { (b.name) } }
                table class="routes" {
                    thead { tr {
                        th { "#" } th { (lang.t(L::Route)) } th { (lang.t(L::CircuitHere)) }
                        th { (lang.t(L::LastError)) } th { (lang.t(L::EachProcess)) }
                    } }
                    tbody {
                        @for (i, r) in route_order(&names, preferred).into_iter().enumerate() {
                            @let mine = here_rows.iter().find(|h| h.connector_id == r);
                            @let seen: Vec<_> = health.iter().filter(|h| h.connector_id == r).collect();
                            tr data-route=(r) class=[(Some(r) == preferred).then_some("preferred")] {
                                td { (i + 1) }
                                td { strong { (r) } @if Some(r) == preferred { " " span class="ok preferred-mark" { (lang.t(L::Preferred)) } } }
                                td {
                                    @match mine {
                                        Some(h) => span class=(state_class(h.state.as_str())) { (h.state.as_str()) },
                                        None => span class="muted" { (lang.t(L::NotConfigured)) },
                                    }
                                }
                                td { (mine.and_then(|h| h.last_error.as_deref()).unwrap_or("")) }
                                td {
                                    @if seen.is_empty() { span class="muted" { (lang.t(L::NotReported)) } }
                                    ul class="plain" {
                                        @for h in &seen {
                                            li {
                                                (h.worker) ": " span class=(state_class(h.state.as_str())) { (h.state.as_str()) }
                                                @if h.consecutive_failures > 0 { " (" (h.consecutive_failures) ")" }
                                                @if let Some(e) = &h.last_error { " · " (e) }
                                                " · " span class="muted" { (layout::time(h.updated_at, zone)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if operator {
                    form method="post" action=(format!("/console/routes/{}/switch", layout::segment(b.id.as_str()))) class="switch" {
                        input type="hidden" name="csrf" value=(staff.csrf);
                        label { (lang.t(L::SwitchRoute)) " "
                            select name="route" {
                                option value="" selected[preferred.is_none()] { (lang.t(L::PriorityOrder)) }
                                @for r in &names { option value=(r) selected[Some(r.as_str()) == preferred] { (r) } }
                            }
                        }
                        button type="submit" { (lang.t(L::SwitchRoute)) "…" }
                    }
                }
                @if !audit.is_empty() {
                    h3 { (lang.t(L::Audit)) }
                    table class="trail audit" {
                        thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Actor)) } th { (lang.t(L::Action)) } th { (lang.t(L::Detail)) } } }
                        tbody { @for e in audit { tr {
                            td { (layout::time(e.at, zone)) }
                            td class="actor" { (e.actor) }
                            td class="action" { (e.action) }
                            td { (e.detail.as_ref().map(|d| d.to_string()).unwrap_or_default()) }
                        } } }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/routes",
        lang.t(L::Routes),
        body,
    ))
}

fn state_class(s: &str) -> &'static str {
    match s {
        "closed" => "ok",
        "half_open" => "amber",
        _ => "red",
    }
}

#[derive(Deserialize, Default, Debug)]
pub struct SwitchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    route: String,
}

fn switch_error(lang: Lang, e: SwitchError) -> ConsoleError {
    match e {
        SwitchError::UnknownBiller(w) => ConsoleError::not_found(lang, w),
        SwitchError::UnknownRoute(w) => {
            ConsoleError::new(lang, StatusCode::UNPROCESSABLE_ENTITY, L::Refused, w)
        }
        SwitchError::Store(e) => ConsoleError::store(lang, e),
    }
}

/// Checks a switch form: the session's token, an operator, the route one
/// of the biller's (empty: its priority order).
async fn checked(
    state: &AppState,
    staff: &Staff,
    biller: &str,
    f: &SwitchForm,
) -> Result<(Biller, Option<String>), ConsoleError> {
    staff.check_csrf(&f.csrf)?;
    staff.require(StaffRole::Operator)?;
    let lang = staff.lang;
    super::breaks::check_text(lang, "route", &f.route, false)?;
    let route = Some(f.route.trim()).filter(|r| !r.is_empty());
    let (b, to) = check_switch(&state.billers, biller, route).map_err(|e| switch_error(lang, e))?;
    Ok((b, to.map(|r| r.to_string())))
}

/// First step: what the switch would do, with the payments still in
/// flight on the current route, and the form that makes it.
pub async fn switch(
    State(state): State<AppState>,
    staff: Staff,
    Path(biller): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Result<Html<String>, ConsoleError> {
    let (b, to) = checked(&state, &staff, &biller, &f).await?;
    let lang = staff.lang;
    let current = current_route(&b);
    let in_flight = match &current {
        Some(r) => state
            .store
            .in_flight_on(b.id.as_str(), r, NAMED)
            .await
            .map_err(|e| ConsoleError::store(lang, e))?,
        None => Default::default(),
    };
    let body = html! {
        dl class="facts" {
            dt { (lang.t(L::Biller)) } dd { (b.id.as_str()) " · " (b.name) }
            dt { (lang.t(L::CurrentRoute)) } dd id="current-route" { (current.as_deref().unwrap_or("—")) }
            dt { (lang.t(L::NewRoute)) } dd id="new-route" {
                @match &to { Some(r) => (r), None => (lang.t(L::PriorityOrder)) }
            }
        }
        h2 { (lang.t(L::InFlight)) ": " span id="in-flight-count" { (in_flight.count) } }
        @if !in_flight.ids.is_empty() {
            ul id="in-flight" {
                @for id in &in_flight.ids { li { a href=(format!("/console/payments/{id}")) { (id) } } }
            }
            @if in_flight.count > in_flight.ids.len() as i64 { p class="muted" { "…" } }
        }
        p class="notice" { (lang.t(L::SwitchNote)) }
        form method="post" action=(format!("/console/routes/{}/switch/confirm", layout::segment(b.id.as_str()))) id="confirm-switch" {
            input type="hidden" name="csrf" value=(staff.csrf);
            input type="hidden" name="route" value=(to.as_deref().unwrap_or(""));
            button type="submit" class="primary" id="confirm" { (lang.t(L::ConfirmSwitch)) }
            " " a href=(format!("/console/routes#{}", b.id.as_str())) { (lang.t(L::Cancel)) }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/routes",
        &format!("{} · {}", lang.t(L::ConfirmSwitch), b.id.as_str()),
        body,
    ))
}

/// Second step: the switch, through the operators' API's function, and
/// its audit entry.
pub async fn confirm(
    State(state): State<AppState>,
    staff: Staff,
    Path(biller): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Result<Response, ConsoleError> {
    let (b, to) = checked(&state, &staff, &biller, &f).await?;
    let lang = staff.lang;
    let current = current_route(&b);
    let in_flight = match &current {
        Some(r) => {
            state
                .store
                .in_flight_on(b.id.as_str(), r, 0)
                .await
                .map_err(|e| ConsoleError::store(lang, e))?
                .count
        }
        None => 0,
    };
    let done = switch_preferred(&*state.store, &state.billers, b.id.as_str(), to.as_deref())
        .await
        .map_err(|e| switch_error(lang, e))?;
    state
        .store
        .audit_staff(&AuditEntry {
            at: Utc::now(),
            actor: staff.user.id.clone(),
            action: "route-switch".into(),
            subject_kind: "biller".into(),
            subject: done.biller.to_string(),
            detail: Some(serde_json::json!({
                "from": current,
                "preferred_before": done.from.as_ref().map(|r| r.to_string()),
                "to": done.to.as_ref().map(|r| r.to_string()),
                "in_flight": in_flight,
            })),
        })
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    Ok(layout::see_other(&format!(
        "/console/routes?done=1#{}",
        layout::segment(done.biller.as_str())
    )))
}
