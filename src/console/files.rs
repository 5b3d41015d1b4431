//! Imported counterparty files and bank statements (`/console/files`),
//! one file's page (`/console/files/{id}`), and importing one from the
//! console through the function `billclear recon import` uses
//! ([`crate::reconcile::import`]): read whole and checked first, so a
//! refused file leaves nothing, and the refusal says where and why.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::bulk::{file_name_of, read_multipart};
use super::i18n::{Lang, L};
use super::layout::{self, minor};
use super::session::Staff;
use super::ConsoleError;
use crate::domain::staff::StaffRole;
use crate::reconcile::import::{import_file_named, ImportError};
use crate::state::AppState;
use crate::store::console::{AuditEntry, ConsoleFile};

#[derive(Deserialize, Default)]
pub struct FilesQuery {
    #[serde(default)]
    date: String,
}

fn store_err(lang: Lang) -> impl Fn(crate::store::StoreError) -> ConsoleError {
    move |e| ConsoleError::store(lang, e)
}

/// The sources a file may come from: each biller, the hub and the bank.
fn sources(state: &AppState) -> Vec<String> {
    let mut s: Vec<String> = state.billers.snapshot().keys().cloned().collect();
    s.sort();
    s.push("hub".into());
    s.push("bank".into());
    s
}

fn total(f: &ConsoleFile) -> String {
    match &f.currency {
        Some(c) => minor(f.file.credited_total_minor, c),
        None => f.file.credited_total_minor.to_string(),
    }
}

/// `GET /console/files?date=YYYY-MM-DD` (today by default): the files
/// imported for the date, superseded ones too, and the import form.
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<FilesQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let zone = state.config.console.zone();
    let date = super::optional_date(lang, "date", &q.date)?
        .unwrap_or_else(|| Utc::now().with_timezone(&zone).date_naive());
    let files = state
        .store
        .files_of_date(date)
        .await
        .map_err(store_err(lang))?;
    let dates = state.store.file_dates(30).await.map_err(store_err(lang))?;
    let body = html! {
        form method="get" action="/console/files" class="filters" {
            label { (lang.t(L::BusinessDate)) input type="date" name="date" value=(date); }
            button type="submit" { (lang.t(L::Filter)) }
        }
        @if !dates.is_empty() {
            p class="dates" { (lang.t(L::Dates)) ": "
                @for (d, n) in &dates { a href=(format!("/console/files?date={d}")) { (d) } " (" (n) ") " }
            }
        }
        @if files.is_empty() { p class="muted" id="no-files" { (lang.t(L::NoFiles)) } }
        @else {
            table id="files" {
                thead { tr {
                    th { "#" } th { (lang.t(L::Kind)) } th { (lang.t(L::Source)) } th { (lang.t(L::Biller)) }
                    th { (lang.t(L::BusinessDate)) } th { (lang.t(L::Identity)) } th { (lang.t(L::FileName)) }
                    th { (lang.t(L::Records)) } th { (lang.t(L::Credited)) } th { (lang.t(L::Total)) }
                    th { (lang.t(L::ImportedAt)) } th { (lang.t(L::ImportedBy)) } th { (lang.t(L::Superseded)) }
                } }
                tbody { @for f in &files {
                    tr data-file=(f.file.id) {
                        td { a href=(format!("/console/files/{}", f.file.id)) { (f.file.id) } }
                        td { (f.file.kind.as_str()) }
                        td { (f.file.source) }
                        td { (f.file.biller_id.as_deref().unwrap_or("—")) }
                        td { (f.file.business_date) }
                        td { (f.file.identity) }
                        td class="file-name" { (f.file.file_name) }
                        td { (f.file.records) }
                        td { (f.file.credited) }
                        td { (total(f)) }
                        td { (layout::time(f.file.imported_at, zone)) }
                        td { (f.imported_by) }
                        td { @if let Some(s) = f.file.superseded_by { a href=(format!("/console/files/{s}")) { (s) } } @else { "—" } }
                    }
                } }
            }
        }
        @if staff.can(StaffRole::Operator) {
            section id="import" {
                h2 { (lang.t(L::ImportFile)) }
                form method="post" action="/console/files" enctype="multipart/form-data" id="import-form" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    label { (lang.t(L::Source))
                        select name="source" {
                            @for s in sources(&state) { option value=(s) { (s) } }
                        }
                    }
                    label { (lang.t(L::OptionalDate)) input type="date" name="date"; }
                    label { (lang.t(L::FileName)) input type="file" name="file" required; }
                    button type="submit" id="import-file" { (lang.t(L::Import)) }
                }
            }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/files",
        lang.t(L::Files),
        body,
    ))
}

/// `POST /console/files` (multipart: `csrf`, `source`, optional `date`,
/// file `file`): imports the file as `billclear recon import` does. A
/// refusal names the line or element and why, and nothing is imported.
pub async fn import(
    State(state): State<AppState>,
    staff: Staff,
    mp: Multipart,
) -> Result<Response, ConsoleError> {
    let lang = staff.lang;
    // The role first: a viewer's upload is refused before it is read.
    staff.require(StaffRole::Operator)?;
    let (fields, file) = read_multipart(lang, mp, "file").await?;
    staff.check_csrf(fields.get("csrf").map(String::as_str).unwrap_or(""))?;
    let field = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let source = field("source");
    if !sources(&state).contains(&source) {
        return Err(ConsoleError::bad_request(
            lang,
            format!("source: unknown {source:?}; a biller id, hub or bank"),
        ));
    }
    let date = super::optional_date(lang, "date", &field("date"))?;
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Err(ConsoleError::bad_request(
            lang,
            "file: choose the file to import",
        ));
    };
    let name = file_name_of(lang, &name)?;
    let accounts = state.config.our_accounts().map_err(|e| {
        ConsoleError::new(
            lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            L::ServerError,
            format!("the bank accounts are not configured: {e}"),
        )
    })?;
    let dir = &state.config.recon.dir;
    let tmp_dir = dir.join("uploads");
    let io_err = |e: std::io::Error| {
        tracing::warn!(error = %e, "console: file upload");
        ConsoleError::new(
            lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            L::ServerError,
            "the upload could not be kept for import",
        )
    };
    std::fs::create_dir_all(&tmp_dir).map_err(io_err)?;
    let tmp = tmp_dir.join(format!(".upload-{}", uuid::Uuid::now_v7()));
    std::fs::write(&tmp, &bytes).map_err(io_err)?;
    let now = Utc::now();
    let result = import_file_named(
        state.store.as_ref(),
        dir,
        &accounts,
        &source,
        &tmp,
        name.clone(),
        None,
        date,
        &staff.user.id,
        now,
    )
    .await;
    let _ = std::fs::remove_file(&tmp);
    let imported = match result {
        Ok(i) => i,
        Err(e @ (ImportError::Refused { .. } | ImportError::Mismatch(_))) => {
            return Err(ConsoleError::new(
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                L::FileRefused,
                e.to_string(),
            ))
        }
        Err(ImportError::Store(e)) => return Err(ConsoleError::store(lang, e)),
        Err(ImportError::Io(e)) => return Err(io_err(e)),
    };
    state
        .store
        .audit_staff(&AuditEntry {
            at: now,
            actor: staff.user.id.clone(),
            action: "file-upload".into(),
            subject_kind: "file".into(),
            subject: imported.id.to_string(),
            detail: Some(serde_json::json!({
                "file_name": name,
                "source": source,
                "kind": imported.kind.as_str(),
                "business_date": imported.business_date,
                "records": imported.records,
                "already": imported.already,
                "replaced": imported.replaced,
            })),
        })
        .await
        .map_err(store_err(lang))?;
    tracing::info!(staff = %staff.user.id, file = imported.id, "console: file imported");
    Ok(layout::see_other(&format!(
        "/console/files/{}?done=1",
        imported.id
    )))
}

/// `GET /console/files/{id}`: one file's facts and its audit entries.
pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<super::DoneQuery>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let id = super::path_id(lang, "file", &id)?;
    let f = state
        .store
        .console_file(id)
        .await
        .map_err(store_err(lang))?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("file {id}")))?;
    let trail = state
        .store
        .audit_of("file", &id.to_string())
        .await
        .map_err(store_err(lang))?;
    let zone = state.config.console.zone();
    let body = html! {
        (layout::flash(lang, q.done.is_some()))
        dl class="facts" id="file-facts" {
            dt { (lang.t(L::FileName)) } dd class="file-name" { (f.file.file_name) }
            dt { (lang.t(L::Kind)) } dd { (f.file.kind.as_str()) }
            dt { (lang.t(L::Source)) } dd { (f.file.source) }
            dt { (lang.t(L::Biller)) } dd { (f.file.biller_id.as_deref().unwrap_or("—")) }
            dt { (lang.t(L::BusinessDate)) } dd { a href=(format!("/console/files?date={}", f.file.business_date)) { (f.file.business_date) } }
            dt { (lang.t(L::Identity)) } dd { (f.file.identity) }
            dt { (lang.t(L::Records)) } dd { (f.file.records) }
            dt { (lang.t(L::Credited)) } dd { (f.file.credited) }
            dt { (lang.t(L::Total)) } dd { (total(&f)) }
            dt { (lang.t(L::Size)) } dd { (f.byte_size) " B" }
            dt { (lang.t(L::ImportedAt)) } dd { (layout::time(f.file.imported_at, zone)) }
            dt { (lang.t(L::ImportedBy)) } dd { (f.imported_by) }
            dt { (lang.t(L::Superseded)) } dd {
                @if let Some(s) = f.file.superseded_by { a href=(format!("/console/files/{s}")) { (s) } } @else { "—" }
            }
            dt { "sha256" } dd { code { (f.file.sha256) } }
        }
        h2 { (lang.t(L::Audit)) }
        table class="trail" id="trail" {
            thead { tr { th { (lang.t(L::At)) } th { (lang.t(L::Actor)) } th { (lang.t(L::Action)) } th { (lang.t(L::Detail)) } } }
            tbody { @for e in &trail { tr {
                td { (layout::time(e.at, zone)) }
                td class="actor" { (e.actor) }
                td class="action" { (e.action) }
                td { @if let Some(d) = &e.detail { (layout::json(d)) } }
            } } }
        }
    };
    Ok(layout::page(
        &staff,
        &format!("/console/files/{id}"),
        &format!("{} #{id}", lang.t(L::Files)),
        body,
    ))
}
