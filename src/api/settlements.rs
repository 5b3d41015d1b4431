//! Settlement files for billers and daily statements for payment apps.
//!
//! - `GET /v1/settlements?date=YYYY-MM-DD` (a biller's key): the biller's
//!   batches of that business date with their files.
//! - `GET /v1/settlements/{batch_id}/files/{name}` (a biller's key): one
//!   file, checked against its recorded SHA-256 before it is sent.
//! - `GET /v1/statements?date=YYYY-MM-DD` (a channel's key): what the
//!   channel owes for the business date, per biller.
//! - `GET /v1/statements/{date}/file` (a channel's key): the statement file.
//!
//! A biller sees only its own batches: another biller's batch is "not
//! found", never "forbidden".

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::{BillerSigned, Signed};
use super::problem::{ApiError, ProblemCode};
use crate::state::AppState;
use crate::store::{BatchFile, BatchRecord};

#[derive(Deserialize)]
pub struct DateQuery {
    date: Option<String>,
}

fn business_date(q: &DateQuery) -> Result<NaiveDate, ApiError> {
    let text = q.date.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            ProblemCode::MissingDate,
            "give the business date: ?date=YYYY-MM-DD",
        )
        .field("date")
    })?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(
            ProblemCode::InvalidDate,
            format!("date {text:?} is not a calendar date YYYY-MM-DD"),
        )
        .field("date")
    })
}

fn batch_json(b: &BatchRecord, files: &[BatchFile]) -> Value {
    json!({
        "batch_id": b.id,
        "biller_id": b.biller_id,
        "business_date": b.business_date,
        "currency": b.currency,
        "cutoff_at": b.cutoff_at,
        "closed_at": b.created_at,
        "payments": b.totals.count,
        "gross": b.totals.gross.to_string(),
        "commission": b.totals.commission.to_string(),
        "commission_rule": b.commission_rule,
        "returns": b.totals.returns_count,
        "returned": b.totals.returns.to_string(),
        "net": b.totals.net().to_string(),
        "format": b.format,
        "files_ready": b.files_written_at.is_some(),
        "files": files.iter().map(|f| json!({
            "name": f.name,
            "kind": f.kind,
            "sha256": f.sha256,
            "bytes": f.bytes,
            "lines": f.count,
            "total": f.total.to_string(),
            "href": format!("/v1/settlements/{}/files/{}", b.id, f.name),
        })).collect::<Vec<_>>(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<DateQuery>,
    signed: BillerSigned,
) -> Result<Json<Value>, ApiError> {
    let date = business_date(&q)?;
    let batches = state
        .store
        .batches(Some(&signed.biller_id), Some(date))
        .await?;
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        out.push(batch_json(b, &state.store.batch_files(b.id).await?));
    }
    Ok(Json(json!({
        "biller_id": signed.biller_id,
        "business_date": date,
        "batches": out,
    })))
}

pub async fn download(
    State(state): State<AppState>,
    Path((batch_id, name)): Path<(String, String)>,
    signed: BillerSigned,
) -> Result<Response, ApiError> {
    let missing = || {
        ApiError::not_found(
            ProblemCode::NoSuchFile,
            format!("no file {name:?} in batch {batch_id}"),
        )
    };
    let id = Uuid::parse_str(&batch_id).map_err(|_| missing())?;
    let batch = state
        .store
        .batch(id)
        .await?
        .filter(|b| b.biller_id == signed.biller_id)
        .ok_or_else(missing)?;
    let file = state
        .store
        .batch_files(batch.id)
        .await?
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(missing)?;
    let path = state
        .config
        .settlement
        .outbox_dir
        .join(&batch.biller_id)
        .join(&file.name);
    send_checked(path, &file.name, &file.sha256).await
}

/// Streams a file after checking its SHA-256 against the recorded one: a
/// file changed on disk is never handed out. The file is opened once:
/// hashed, rewound, then sent from the same handle (a rename over it in
/// between cannot swap what is sent).
async fn send_checked(path: PathBuf, name: &str, sha256: &str) -> Result<Response, ApiError> {
    let p = path.clone();
    let opened =
        tokio::task::spawn_blocking(move || -> std::io::Result<(std::fs::File, String)> {
            use sha2::{Digest, Sha256};
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(&p)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            f.rewind()?;
            Ok((f, hex::encode(h.finalize())))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let f = match opened {
        Ok((f, h)) if h == sha256 => f,
        Ok((_, h)) => {
            tracing::error!(path = %path.display(), recorded = sha256, actual = %h, "settlement file changed on disk");
            return Err(ApiError::internal(
                "the file does not match its recorded checksum; the operator has been alerted",
            ));
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "settlement file unreadable");
            return Err(ApiError::unavailable(
                ProblemCode::FileUnavailable,
                "the file cannot be read right now; the operator has been alerted",
            ));
        }
    };
    let f = tokio::fs::File::from_std(f);
    let content_type = match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=us-ascii",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        _ => "text/plain; charset=us-ascii",
    };
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::new(f)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(sha256) {
        h.insert("billclear-sha256", v);
    }
    Ok(resp)
}

pub async fn statement(
    State(state): State<AppState>,
    Query(q): Query<DateQuery>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    signed.consume_nonce(&state).await?;
    let date = business_date(&q)?;
    let lines = state
        .store
        .channel_statement(&signed.channel.id, date)
        .await?;
    let open = open_billers(&state, date).await?;
    let mut owed: std::collections::BTreeMap<&str, Decimal> = Default::default();
    for l in &lines {
        *owed.entry(l.currency.as_str()).or_default() += l.amount - l.returned;
    }
    let file = crate::settlement::statement::file_name(&signed.channel.id, date);
    let file_path =
        crate::settlement::statement::dir(&state.config.settlement.outbox_dir, &signed.channel.id)
            .join(&file);
    Ok(Json(json!({
        "channel_id": signed.channel.id,
        "business_date": date,
        "complete": open.is_empty(),
        "billers_not_closed": open,
        "billers": lines.iter().map(|l| json!({
            "biller_id": l.biller_id,
            "batch_id": l.batch_id,
            "currency": l.currency,
            "payments": l.payments,
            "amount": l.amount.to_string(),
            "returns": l.returns,
            "returned": l.returned.to_string(),
            "owed": (l.amount - l.returned).to_string(),
        })).collect::<Vec<_>>(),
        "owed": owed.iter().map(|(c, a)| json!({"currency": c, "amount": a.to_string()})).collect::<Vec<_>>(),
        "file": file_path.exists().then(|| json!({
            "name": file,
            "href": format!("/v1/statements/{date}/file"),
        })),
    })))
}

/// Billers with settlement terms that have not closed `date` (a statement
/// is complete once there are none).
async fn open_billers(state: &AppState, date: NaiveDate) -> Result<Vec<String>, ApiError> {
    let closed = state.store.batches(None, Some(date)).await?;
    Ok(crate::settlement::statement::billers_not_closed(
        state.billers.snapshot().values(),
        &closed,
    ))
}

pub async fn statement_file(
    State(state): State<AppState>,
    Path(date): Path<String>,
    signed: Signed,
) -> Result<Response, ApiError> {
    signed.consume_nonce(&state).await?;
    let date = business_date(&DateQuery { date: Some(date) })?;
    let open = open_billers(&state, date).await?;
    if !open.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            ProblemCode::StatementIncomplete,
            "Statement not complete",
            format!("{date} is not closed for {} yet", open.join(", ")),
        ));
    }
    let name = crate::settlement::statement::file_name(&signed.channel.id, date);
    let dir =
        crate::settlement::statement::dir(&state.config.settlement.outbox_dir, &signed.channel.id);
    let manifest = crate::settlement::statement::read_digest(&dir, &name).map_err(|_| {
        ApiError::not_found(
            ProblemCode::NoStatement,
            format!("no statement file for {date} yet: it is written once every biller has closed the date"),
        )
    })?;
    send_checked(dir.join(&name), &name, &manifest).await
}
