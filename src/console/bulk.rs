//! Bulk work on breaks: the queue exported as a sheet
//! (`/console/breaks-export.xlsx`), a filled-in sheet uploaded as proposals
//! (`/console/breaks-upload`), and an upload's page where another approver
//! decides its proposals (`/console/uploads/{id}`). Every proposal and
//! decision goes through [`breaks::apply`], the workflow the JSON API uses,
//! so maker-checker holds row by row.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use calamine::{Data, Reader, Xlsx};
use chrono::Utc;
use maud::html;
use rust_xlsxwriter::{Format, Workbook};
use sha2::{Digest, Sha256};

use super::breaks::{self, text_problem, QueueQuery};
use super::i18n::{Lang, L};
use super::layout;
use super::session::Staff;
use super::{words, ConsoleError};
use crate::domain::recon::breaks::{
    decide, Action, Actor, BreakStatus, Proposal, ResolutionKind, WorkState,
};
use crate::domain::recon::matching::{minor_in, scale_of, Category};
use crate::domain::staff::StaffRole;
use crate::state::AppState;
use crate::store::console::{AuditEntry, NewUpload, UploadRow};
use crate::store::recon::BreakRow;

/// At most this many breaks in one export.
pub const EXPORT_MAX: i64 = 10_000;
/// At most this many proposals in one upload.
pub const UPLOAD_MAX: usize = 2_000;
/// At most this many rows read from a sheet at all.
const SHEET_ROWS_MAX: usize = 20_000;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The export's columns (the header row); the upload reads `id`,
/// `resolution`, `note` and `connector` by these names.
const COLUMNS: [&str; 14] = [
    "id",
    "business_date",
    "biller",
    "category",
    "why",
    "our_amount",
    "their_amount",
    "currency",
    "status",
    "owner",
    "opened_at",
    "resolution",
    "note",
    "connector",
];

fn store_err(lang: Lang) -> impl Fn(crate::store::StoreError) -> ConsoleError {
    move |e| ConsoleError::store(lang, e)
}

fn amount(m: Option<i64>, currency: &str) -> String {
    m.map(|m| minor_in(m, currency).to_string())
        .unwrap_or_default()
}

/// `GET /console/breaks-export.xlsx?<the queue's query>`: the filtered
/// queue (up to 10,000 breaks) as a workbook with empty `resolution`,
/// `note` and `connector` columns to fill in, and a second sheet naming
/// the resolutions and where each applies.
pub async fn export(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let scale = state
        .billers
        .snapshot()
        .get(q.biller.trim())
        .map(|b| b.currency.scale())
        .unwrap_or_else(|| scale_of("CNY"));
    let (filter, _) = q.filter(lang, scale)?;
    let mut rows: Vec<BreakRow> = Vec::new();
    while (rows.len() as i64) < EXPORT_MAX {
        let page = state
            .store
            .break_queue(&filter, rows.len() as i64, 500)
            .await
            .map_err(store_err(lang))?;
        let n = page.rows.len();
        rows.extend(page.rows);
        if n < 500 {
            break;
        }
    }
    rows.truncate(EXPORT_MAX as usize);
    let zone = state.config.console.zone();
    let bytes = workbook(&rows, lang, zone).map_err(|e| {
        tracing::warn!(error = %e, "console: export workbook");
        ConsoleError::new(
            lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            L::ServerError,
            "the workbook could not be written",
        )
    })?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(XLSX));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"breaks.xlsx\""),
    );
    Ok(resp)
}

fn workbook(
    rows: &[BreakRow],
    lang: Lang,
    zone: chrono_tz::Tz,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name("Breaks")?;
    for (c, name) in COLUMNS.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *name, &bold)?;
    }
    for (i, b) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_number(r, 0, b.id as f64)?;
        ws.write_string(r, 1, b.business_date.to_string())?;
        ws.write_string(r, 2, &b.scope)?;
        ws.write_string(r, 3, b.category.as_str())?;
        ws.write_string(r, 4, words::why(b, lang))?;
        ws.write_string(r, 5, amount(b.our_amount_minor, &b.currency))?;
        ws.write_string(r, 6, amount(b.their_amount_minor, &b.currency))?;
        ws.write_string(r, 7, b.currency.trim())?;
        ws.write_string(r, 8, b.status.as_str())?;
        ws.write_string(r, 9, b.owner.as_deref().unwrap_or(""))?;
        ws.write_string(r, 10, layout::time(b.opened_at, zone))?;
    }
    for (c, w) in [(0u16, 8.0), (4, 60.0), (10, 20.0), (11, 16.0), (12, 40.0)] {
        ws.set_column_width(c, w)?;
    }
    ws.set_freeze_panes(1, 0)?;
    let help = wb.add_worksheet();
    help.set_name("Resolutions")?;
    for (c, name) in ["resolution", "applies to", "needs an approver for", "note"]
        .iter()
        .enumerate()
    {
        help.write_string_with_format(0, c as u16, *name, &bold)?;
    }
    for (i, k) in ResolutionKind::CHOSEN.iter().enumerate() {
        let r = i as u32 + 1;
        let applies: Vec<&str> = Category::ALL
            .into_iter()
            .filter(|c| k.check_applies(*c).is_ok())
            .map(|c| c.as_str())
            .collect();
        let approved: Vec<&str> = Category::ALL
            .into_iter()
            .filter(|c| k.check_applies(*c).is_ok() && k.moves_money(*c))
            .map(|c| c.as_str())
            .collect();
        help.write_string(r, 0, k.as_str())?;
        help.write_string(r, 1, applies.join(", "))?;
        help.write_string(r, 2, approved.join(", "))?;
        help.write_string(
            r,
            3,
            if *k == ResolutionKind::Resend {
                "give the connector (route) to send through"
            } else {
                "a note saying why is required"
            },
        )?;
    }
    let n = ResolutionKind::CHOSEN.len() as u32 + 2;
    help.write_string(
        n,
        0,
        "Fill resolution and note (and connector for resend) on the rows to resolve; leave the others empty. Only open or investigating breaks take a proposal.",
    )?;
    help.set_column_width(0, 16)?;
    help.set_column_width(1, 60)?;
    help.set_column_width(2, 40)?;
    wb.save_to_buffer()
}

/// A cell as text (an id typed as a number, a date, a string).
fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTime(d) => d.to_string(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// One bad row of a sheet: its number in the sheet and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub row: u32,
    pub reason: String,
}

/// A row read from the sheet (before the breaks are looked up).
#[derive(Debug, Clone)]
struct SheetRow {
    row: u32,
    id: String,
    resolution: String,
    note: String,
    connector: String,
}

/// Reads the first sheet: the rows with a resolution. A file that is not
/// a workbook, or a sheet without the columns, is refused as a whole
/// (`Err` with one reason).
fn read_sheet(bytes: &[u8]) -> Result<Vec<SheetRow>, String> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err("the file is not an Excel workbook (.xlsx)".into());
    }
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the file is not a readable Excel workbook (.xlsx): {e}"))?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or("the workbook has no sheet")?
        .map_err(|e| format!("the first sheet cannot be read: {e}"))?;
    let Some((row0, col0)) = range.start() else {
        return Err("the first sheet is empty".into());
    };
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or("the first sheet is empty")?
        .iter()
        .map(|c| cell_text(c).trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| -> Result<usize, String> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "the first row (row {}) has no {name:?} column; export the queue for the layout",
                row0 + 1
            )
        })
    };
    let (c_id, c_res, c_note, c_conn) = (
        col("id")?,
        col("resolution")?,
        col("note")?,
        col("connector")?,
    );
    let _ = col0;
    if range.height() > SHEET_ROWS_MAX + 1 {
        return Err(format!(
            "the sheet has {} rows; at most {SHEET_ROWS_MAX}",
            range.height() - 1
        ));
    }
    let get = |r: &[Data], c: usize| r.get(c).map(cell_text).unwrap_or_default();
    Ok(rows
        .enumerate()
        .map(|(i, r)| SheetRow {
            row: row0 + 2 + i as u32,
            id: get(r, c_id),
            resolution: get(r, c_res),
            note: get(r, c_note),
            connector: get(r, c_conn),
        })
        .filter(|r| !r.resolution.trim().is_empty())
        .collect())
}

/// Checks every row against its break and the workflow's rules; the
/// proposals when all are good, else every bad row.
fn check_rows(
    staff: &Staff,
    rows: &[SheetRow],
    found: &HashMap<i64, BreakRow>,
) -> Result<Vec<(UploadRow, Proposal)>, Vec<BadRow>> {
    let mut bad = Vec::new();
    let mut good = Vec::new();
    let mut seen: HashMap<i64, u32> = HashMap::new();
    let actor = Actor {
        user: staff.user.id.clone(),
        role: staff.user.role,
    };
    for r in rows {
        let mut why = |reason: String| {
            bad.push(BadRow { row: r.row, reason });
        };
        if let Some(p) = text_problem("id", &r.id, false)
            .or_else(|| text_problem("resolution", &r.resolution, false))
            .or_else(|| text_problem("connector", &r.connector, false))
            .or_else(|| text_problem("note", &r.note, true))
        {
            why(p);
            continue;
        }
        let Some(id) = r.id.trim().parse::<i64>().ok().filter(|i| *i > 0) else {
            why(format!("id: {:?} is not a break id", r.id.trim()));
            continue;
        };
        if let Some(first) = seen.insert(id, r.row) {
            why(format!("break {id} is also on row {first}"));
            continue;
        }
        let Some(b) = found.get(&id) else {
            why(format!("break {id} does not exist"));
            continue;
        };
        if !matches!(b.status, BreakStatus::Open | BreakStatus::Investigating) {
            why(format!(
                "break {id} is {}: only an open or investigating break takes a proposal",
                b.status.as_str()
            ));
            continue;
        }
        let res = r.resolution.trim();
        let Some(kind) = ResolutionKind::parse_chosen(res) else {
            why(format!(
                "resolution: unknown {res:?}; one of {}",
                ResolutionKind::chosen_names()
            ));
            continue;
        };
        if let Err(e) = kind.check_applies(b.category) {
            why(format!("break {id}: {e}"));
            continue;
        }
        if r.note.trim().is_empty() {
            why("note: a resolution needs a note saying why".into());
            continue;
        }
        let connector = Some(r.connector.trim().to_string()).filter(|c| !c.is_empty());
        if kind == ResolutionKind::Resend && connector.is_none() {
            why("connector: resend needs the connector to send through".into());
            continue;
        }
        let proposal = Proposal {
            kind,
            maker: String::new(),
            connector: connector.clone(),
            note: r.note.clone(),
        };
        // What the workflow would say (role, state) before anything moves.
        let work = WorkState {
            category: b.category,
            status: b.status,
            owner: b.owner.clone(),
            proposal: b.proposal.clone(),
        };
        if let Err(e) = decide(&work, &actor, &Action::Propose(proposal.clone())) {
            why(format!("break {id}: {e}"));
            continue;
        }
        good.push((
            UploadRow {
                sheet_row: r.row as i32,
                break_id: id,
                resolution: kind.as_str().to_string(),
                note: r.note.clone(),
                connector,
            },
            proposal,
        ));
    }
    if good.len() > UPLOAD_MAX {
        bad.push(BadRow {
            row: good[UPLOAD_MAX].0.sheet_row as u32,
            reason: format!(
                "the sheet has {} rows with a resolution; at most {UPLOAD_MAX} in one upload",
                good.len()
            ),
        });
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        bad.sort_by_key(|b| b.row);
        Err(bad)
    }
}

/// The refusal of a sheet: every bad row with its number and reason.
fn refused_sheet(staff: &Staff, file_name: &str, bad: &[BadRow]) -> Response {
    let lang = staff.lang;
    let body = html! {
        p class="error" role="alert" id="error-detail" {
            (file_name) ": " (bad.len()) " — " (lang.t(L::SheetRefused))
        }
        table id="bad-rows" {
            thead { tr { th { (lang.t(L::SheetRow)) } th { (lang.t(L::Reason)) } } }
            tbody { @for b in bad { tr data-row=(b.row) {
                td class="row" { (b.row) }
                td class="reason" { (b.reason) }
            } } }
        }
        p { a href="/console/uploads" { (lang.t(L::Uploads)) } }
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        layout::page(staff, "/console/uploads", lang.t(L::SheetRefused), body),
    )
        .into_response()
}

/// Reads a multipart form: its text fields and the one file named
/// `file_field` (its name and bytes).
pub async fn read_multipart(
    lang: Lang,
    mut mp: Multipart,
    file_field: &str,
) -> Result<(BTreeMap<String, String>, Option<(String, Vec<u8>)>), ConsoleError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ConsoleError::bad_request(
            lang,
            format!("the form could not be read: {}", e.body_text()),
        )
    };
    let mut fields = BTreeMap::new();
    let mut file = None;
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if name == file_field {
            let file_name = field.file_name().unwrap_or("").to_string();
            let bytes = field.bytes().await.map_err(bad)?;
            file = Some((file_name, bytes.to_vec()));
        } else if !name.is_empty() {
            let text = field.text().await.map_err(bad)?;
            if text.len() > 10_000 {
                return Err(ConsoleError::bad_request(lang, format!("{name}: too long")));
            }
            fields.insert(name, text);
        }
    }
    Ok((fields, file))
}

/// A file name as it is kept and shown: no control characters, at most
/// 255 characters.
pub fn file_name_of(lang: Lang, name: &str) -> Result<String, ConsoleError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ConsoleError::bad_request(lang, "the file has no name"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ConsoleError::bad_request(
            lang,
            "file name: control characters are not accepted",
        ));
    }
    if name.chars().count() > 255 {
        return Err(ConsoleError::bad_request(
            lang,
            "file name: at most 255 characters",
        ));
    }
    Ok(name.to_string())
}

/// `POST /console/breaks-upload` (multipart: `csrf`, file `sheet`): every
/// row with a resolution becomes a proposal by the uploader — when every
/// row is good; else nothing changes and each bad row is named.
pub async fn upload(
    State(state): State<AppState>,
    staff: Staff,
    mp: Multipart,
) -> Result<Response, ConsoleError> {
    let lang = staff.lang;
    // The role first: a viewer's upload is refused before it is read.
    staff.require(StaffRole::Operator)?;
    let (fields, file) = read_multipart(lang, mp, "sheet").await?;
    staff.check_csrf(fields.get("csrf").map(String::as_str).unwrap_or(""))?;
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Err(ConsoleError::bad_request(
            lang,
            "sheet: choose the .xlsx file to upload",
        ));
    };
    let file_name = file_name_of(lang, &file_name)?;
    let rows = read_sheet(&bytes).map_err(|e| {
        ConsoleError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            L::SheetRefused,
            format!("{file_name}: {e}"),
        )
    })?;
    if rows.is_empty() {
        return Err(ConsoleError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            L::SheetRefused,
            format!("{file_name}: no row has a resolution"),
        ));
    }
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.id.trim().parse::<i64>().ok())
        .collect();
    let found: HashMap<i64, BreakRow> = state
        .store
        .breaks_by_ids(&ids)
        .await
        .map_err(store_err(lang))?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let proposals = match check_rows(&staff, &rows, &found) {
        Ok(p) => p,
        Err(bad) => return Ok(refused_sheet(&staff, &file_name, &bad)),
    };
    let now = Utc::now();
    let id = state
        .store
        .record_upload(&NewUpload {
            file_name: file_name.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            uploaded_by: staff.user.id.clone(),
            uploaded_at: now,
            rows: proposals.iter().map(|(r, _)| r.clone()).collect(),
        })
        .await
        .map_err(store_err(lang))?;
    // Each proposal through the workflow; one refused now (the break moved
    // since the check) is reported, the others stand.
    let mut refused = Vec::new();
    for (row, p) in &proposals {
        if let Err(e) =
            breaks::apply(&state, &staff, row.break_id, &Action::Propose(p.clone())).await
        {
            refused.push(serde_json::json!({
                "row": row.sheet_row, "break": row.break_id, "reason": e.detail(),
            }));
        }
    }
    state
        .store
        .audit_staff(&AuditEntry {
            at: now,
            actor: staff.user.id.clone(),
            action: "sheet-upload".into(),
            subject_kind: "upload".into(),
            subject: id.to_string(),
            detail: Some(serde_json::json!({
                "file_name": file_name,
                "rows": proposals.len(),
                "refused": refused,
            })),
        })
        .await
        .map_err(store_err(lang))?;
    tracing::info!(staff = %staff.user.id, upload = id, rows = proposals.len(), "console: sheet uploaded");
    Ok(layout::see_other(&format!("/console/uploads/{id}")))
}

/// `GET /console/uploads`: recent uploads and the upload form.
pub async fn uploads(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let zone = state.config.console.zone();
    let list = state.store.uploads(100).await.map_err(store_err(lang))?;
    let body = html! {
        @if staff.can(StaffRole::Operator) {
            section id="upload" {
                h2 { (lang.t(L::UploadSheet)) }
                form method="post" action="/console/breaks-upload" enctype="multipart/form-data" id="upload-form" {
                    input type="hidden" name="csrf" value=(staff.csrf);
                    label { (lang.t(L::SheetFile)) input type="file" name="sheet" accept=".xlsx" required; }
                    button type="submit" id="upload-sheet" { (lang.t(L::Upload)) }
                }
                p { a href="/console/breaks-export.xlsx" { (lang.t(L::Export)) } }
            }
        }
        @if list.is_empty() { p class="muted" { (lang.t(L::NoUploads)) } }
        @else {
            table id="uploads" {
                thead { tr {
                    th { "#" } th { (lang.t(L::FileName)) } th { (lang.t(L::UploadedBy)) }
                    th { (lang.t(L::UploadedAt)) } th { (lang.t(L::Rows)) }
                } }
                tbody { @for u in &list { tr {
                    td { a href=(format!("/console/uploads/{}", u.id)) { (u.id) } }
                    td { (u.file_name) }
                    td { (u.uploaded_by) }
                    td { (layout::time(u.uploaded_at, zone)) }
                    td { (u.rows) }
                } } }
            }
        }
    };
    Ok(layout::page(
        &staff,
        "/console/uploads",
        lang.t(L::Uploads),
        body,
    ))
}

fn upload_id(lang: Lang, id: &str) -> Result<i64, ConsoleError> {
    id.parse()
        .map_err(|_| ConsoleError::not_found(lang, format!("upload {id:?}")))
}

/// `GET /console/uploads/{id}`: the upload's rows, each break's status and
/// proposal now, and (for an approver who is not the uploader) the form
/// to approve or decline them.
pub async fn upload_page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    staff.require(StaffRole::Viewer)?;
    let lang = staff.lang;
    let id = upload_id(lang, &id)?;
    let (u, rows) = state
        .store
        .upload(id)
        .await
        .map_err(store_err(lang))?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("upload {id}")))?;
    let ids: Vec<i64> = rows.iter().map(|r| r.break_id).collect();
    let now: HashMap<i64, BreakRow> = state
        .store
        .breaks_by_ids(&ids)
        .await
        .map_err(store_err(lang))?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let zone = state.config.console.zone();
    let is_maker = u.uploaded_by == staff.user.id;
    let can_decide = staff.can(StaffRole::Approver) && !is_maker;
    let body = html! {
        dl class="facts" {
            dt { (lang.t(L::FileName)) } dd id="upload-file" { (u.file_name) }
            dt { (lang.t(L::UploadedBy)) } dd id="upload-maker" { (u.uploaded_by) }
            dt { (lang.t(L::UploadedAt)) } dd { (layout::time(u.uploaded_at, zone)) }
            dt { (lang.t(L::Rows)) } dd { (u.rows) }
            dt { "sha256" } dd { code { (u.sha256) } }
        }
        @if is_maker { p class="muted" id="own-upload" { (lang.t(L::MakerCannotDecide)) } }
        form method="post" action=(format!("/console/uploads/{id}/decide")) id="decide-form" {
            input type="hidden" name="csrf" value=(staff.csrf);
            table id="upload-rows" {
                thead { tr {
                    @if can_decide { th { input type="checkbox" data-select-all="rows" title=(lang.t(L::SelectAll)); } }
                    th { (lang.t(L::SheetRow)) } th { (lang.t(L::Break)) } th { (lang.t(L::Resolution)) }
                    th { (lang.t(L::Note)) } th { (lang.t(L::Connector)) } th { (lang.t(L::Status)) }
                    th { (lang.t(L::Proposal)) }
                } }
                tbody { @for r in &rows {
                    @let b = now.get(&r.break_id);
                    tr data-break=(r.break_id) {
                        @if can_decide { td { input type="checkbox" name="rows" value=(r.break_id); } }
                        td { (r.sheet_row) }
                        td { a href=(format!("/console/breaks/{}", r.break_id)) { (r.break_id) } }
                        td { (r.resolution) }
                        td class="note" { (r.note) }
                        td { (r.connector.as_deref().unwrap_or("—")) }
                        td class="status" { (b.map(|b| words::status(b.status, lang)).unwrap_or("—")) }
                        td class="proposal" {
                            @if let Some(p) = b.and_then(|b| b.proposal.as_ref()) {
                                (p.kind.as_str()) " — " (lang.t(L::ProposedBy)) " " (p.maker)
                            } @else { "—" }
                        }
                    }
                } }
            }
            @if can_decide {
                label { (lang.t(L::Reason)) input type="text" name="reason"; }
                button type="submit" name="decision" value="approve" id="approve-upload" class="primary" { (lang.t(L::ApproveAll)) }
                button type="submit" name="decision" value="decline" id="decline-upload" { (lang.t(L::DeclineAll)) }
            }
        }
    };
    Ok(layout::page(
        &staff,
        &format!("/console/uploads/{id}"),
        &format!("{} #{id}", lang.t(L::UploadNumber)),
        body,
    ))
}

/// `POST /console/uploads/{id}/decide` (`decision=approve|decline`,
/// `reason` to decline, optional `rows` = break ids): each pending
/// proposal of the upload (or of the selected rows) approved or declined
/// through the workflow; the answer says what happened to each.
pub async fn decide_upload(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let lang = staff.lang;
    let mut csrf = String::new();
    let mut decision = String::new();
    let mut reason = String::new();
    let mut selected: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "decision" => decision = v.into_owned(),
            "reason" => reason = v.into_owned(),
            "rows" => selected.push(v.into_owned()),
            _ => {}
        }
    }
    staff.check_csrf(&csrf)?;
    staff.require(StaffRole::Approver)?;
    let id = upload_id(lang, &id)?;
    let (u, rows) = state
        .store
        .upload(id)
        .await
        .map_err(store_err(lang))?
        .ok_or_else(|| ConsoleError::not_found(lang, format!("upload {id}")))?;
    if u.uploaded_by == staff.user.id {
        return Err(ConsoleError::new(
            lang,
            StatusCode::FORBIDDEN,
            L::Forbidden,
            format!(
                "maker-checker: {} uploaded these proposals and cannot decide them; another approver must",
                staff.user.id
            ),
        ));
    }
    breaks::check_text(lang, "reason", &reason, true)?;
    let action = match decision.trim() {
        "approve" => Action::Approve,
        "decline" if reason.trim().is_empty() => {
            return Err(ConsoleError::bad_request(
                lang,
                "reason: a decline needs a reason",
            ))
        }
        "decline" => Action::Decline {
            reason: reason.clone(),
        },
        other => {
            return Err(ConsoleError::bad_request(
                lang,
                format!("decision: unknown {other:?} (approve or decline)"),
            ))
        }
    };
    let in_upload: Vec<i64> = rows.iter().map(|r| r.break_id).collect();
    let targets: Vec<i64> = if selected.is_empty() {
        in_upload.clone()
    } else {
        let mut t = Vec::new();
        for s in &selected {
            let b = s
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|b| in_upload.contains(b))
                .ok_or_else(|| {
                    ConsoleError::bad_request(
                        lang,
                        format!("rows: {s:?} is not a break of upload {id}"),
                    )
                })?;
            if !t.contains(&b) {
                t.push(b);
            }
        }
        t
    };
    let current: HashMap<i64, BreakRow> = state
        .store
        .breaks_by_ids(&targets)
        .await
        .map_err(store_err(lang))?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    // (break, done, what happened)
    let mut outcomes: Vec<(i64, bool, String)> = Vec::new();
    for b in &targets {
        let status = current.get(b).map(|r| r.status);
        if status != Some(BreakStatus::PendingApproval) {
            outcomes.push((
                *b,
                false,
                format!(
                    "nothing to decide: the break is {}",
                    status.map(|s| s.as_str()).unwrap_or("gone")
                ),
            ));
            continue;
        }
        match breaks::apply(&state, &staff, *b, &action).await {
            Ok(after) => outcomes.push((*b, true, after.status.as_str().to_string())),
            Err(e) => outcomes.push((*b, false, e.detail())),
        }
    }
    state
        .store
        .audit_staff(&AuditEntry {
            at: Utc::now(),
            actor: staff.user.id.clone(),
            action: format!("sheet-{}", decision.trim()),
            subject_kind: "upload".into(),
            subject: id.to_string(),
            detail: Some(serde_json::json!({
                "rows": outcomes.iter().map(|(b, ok, what)| serde_json::json!({
                    "break": b, "done": ok, "outcome": what,
                })).collect::<Vec<_>>(),
            })),
        })
        .await
        .map_err(store_err(lang))?;
    let body = html! {
        table id="outcomes" {
            thead { tr { th { (lang.t(L::Break)) } th { (lang.t(L::Outcome)) } } }
            tbody { @for (b, ok, what) in &outcomes {
                tr data-break=(b) class=(if *ok { "done" } else { "refused" }) {
                    td { a href=(format!("/console/breaks/{b}")) { (b) } }
                    td class="outcome" { (if *ok { lang.t(L::Done) } else { lang.t(L::Refused) }) ": " (what) }
                }
            } }
        }
        p { a href=(format!("/console/uploads/{id}")) { (lang.t(L::UploadNumber)) " #" (id) } }
    };
    Ok(layout::page(
        &staff,
        &format!("/console/uploads/{id}"),
        &format!("{} #{id}", lang.t(L::UploadNumber)),
        body,
    )
    .into_response())
}
