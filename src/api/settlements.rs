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
use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{self, BillerSigned, Signed};
use super::openapi::Operation;
use super::problem::{ApiError, ProblemCode};
use super::text;
use crate::domain::money::at_currency_scale;
use crate::domain::settlement::FileFormat;
use crate::state::AppState;
use crate::store::{BatchFile, BatchRecord, StatementLine};

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

/// A settlement batch: one biller's business date, closed, with its totals
/// and files. Amounts are decimal strings at exactly the currency's scale.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SettlementBatch)]
pub struct SettlementBatchView {
    pub batch_id: Uuid,
    pub biller_id: String,
    pub business_date: NaiveDate,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// The cut-off that closed the date.
    pub cutoff_at: DateTime<Utc>,
    /// When the batch was closed.
    pub closed_at: DateTime<Utc>,
    /// Payments settled.
    pub payments: u64,
    /// What the payments add up to.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "200.00")]
    pub gross: String,
    /// Our commission, by the biller's terms.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "0.60")]
    pub commission: String,
    /// The commission terms, as a person reads them.
    pub commission_rule: String,
    /// Returns (payments given back after settlement) recovered from this batch.
    pub returns: u64,
    /// What the returns add up to.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "0.00")]
    pub returned: String,
    /// What the biller is paid: gross - commission - returned.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "199.40")]
    pub net: String,
    pub format: FileFormat,
    /// The files are written (until then `files` may be empty).
    pub files_ready: bool,
    /// When writing the files failed for a reason no retry fixes (our
    /// operators are told, with the cause); absent when it never did. The
    /// files follow once the cause is fixed, and `files_ready` says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub files_failed_at: Option<DateTime<Utc>>,
    pub files: Vec<SettlementFileView>,
}

/// One file of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SettlementFile)]
pub struct SettlementFileView {
    pub name: String,
    // As recorded: the store holds only the names of `FileKind`.
    #[schema(value_type = crate::settlement::files::FileKind)]
    pub kind: String,
    /// Hex SHA-256 of the file.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    pub bytes: u64,
    /// Lines (items) the file carries.
    pub lines: u64,
    /// The file's control total, at exactly the currency's scale.
    #[schema(pattern = "^-?[0-9]+(\\.[0-9]{2,3})?$", example = "199.40")]
    pub total: String,
    /// Where to download it.
    #[schema(
        example = "/v1/settlements/0190d6c2-1f6e-7cc0-a8a4-0b8d4b2f3c11/files/sh-water_20261201_settlement.csv"
    )]
    pub href: String,
}

impl SettlementBatchView {
    pub fn new(b: &BatchRecord, files: &[BatchFile]) -> SettlementBatchView {
        let money = |d: Decimal| at_currency_scale(d, &b.currency);
        SettlementBatchView {
            batch_id: b.id,
            biller_id: b.biller_id.clone(),
            business_date: b.business_date,
            currency: b.currency.clone(),
            cutoff_at: b.cutoff_at,
            closed_at: b.created_at,
            payments: b.totals.count,
            gross: money(b.totals.gross),
            commission: money(b.totals.commission),
            commission_rule: b.commission_rule.clone(),
            returns: b.totals.returns_count,
            returned: money(b.totals.returns),
            net: money(b.totals.net()),
            format: b.format,
            files_ready: b.files_written_at.is_some(),
            files_failed_at: b.files_failed_at,
            files: files
                .iter()
                .map(|f| SettlementFileView {
                    name: f.name.clone(),
                    kind: f.kind.clone(),
                    sha256: f.sha256.clone(),
                    bytes: f.bytes,
                    lines: f.count,
                    total: money(f.total),
                    href: format!("/v1/settlements/{}/files/{}", b.id, f.name),
                })
                .collect(),
        }
    }
}

/// A biller's settlement batches of a business date.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SettlementList)]
pub struct SettlementListView {
    pub biller_id: String,
    pub business_date: NaiveDate,
    pub batches: Vec<SettlementBatchView>,
}

/// The date query of settlements and statements.
const DATE_PROBLEMS: super::openapi::Problems =
    &[(400, &[ProblemCode::MissingDate, ProblemCode::InvalidDate])];

pub(super) const LIST: Operation = Operation {
    id: "listSettlements",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        auth::BILLER_SIGNED,
        DATE_PROBLEMS,
    ],
};

/// A biller's settlement batches of a business date, with their files
/// (signed with a BILLER key: `billclear billers new-key`).
#[utoipa::path(
    get,
    path = "/v1/settlements",
    operation_id = "listSettlements",
    tag = "settlement",
    security(("bc1" = [])),
    params(("date" = String, Query, format = Date, description = "the business date, YYYY-MM-DD")),
    responses((status = 200, description = "The biller's batches of the date", body = SettlementListView)),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<DateQuery>,
    signed: BillerSigned,
) -> Result<Json<SettlementListView>, ApiError> {
    let date = business_date(&q)?;
    let batches = state
        .store
        .batches(Some(&signed.biller_id), Some(date))
        .await?;
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        out.push(SettlementBatchView::new(
            b,
            &state.store.batch_files(b.id).await?,
        ));
    }
    Ok(Json(SettlementListView {
        biller_id: signed.biller_id,
        business_date: date,
        batches: out,
    }))
}

pub(super) const DOWNLOAD: Operation = Operation {
    id: "downloadSettlementFile",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        auth::BILLER_SIGNED,
        &[
            (404, &[ProblemCode::NoSuchFile]),
            (500, &[ProblemCode::Internal]),
            (503, &[ProblemCode::FileUnavailable]),
        ],
    ],
};

/// One settlement file of a batch (signed with a BILLER key).
///
/// The settlement file (CSV or fixed-width), the pain.001 XML or the
/// manifest JSON, checked against its SHA-256 before it is sent (a file
/// changed on disk is a 500). Another biller's batch is a 404.
#[utoipa::path(
    get,
    path = "/v1/settlements/{batch_id}/files/{name}",
    operation_id = "downloadSettlementFile",
    tag = "settlement",
    security(("bc1" = [])),
    params(
        ("batch_id" = uuid::Uuid, Path, description = "the batch (anything else is a 404)"),
        ("name" = String, Path, description = "a file name of the batch (`files[].name`)",
            min_length = 1, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$"),
    ),
    responses((status = 200, description = "The file, as recorded",
        content(
            (String = "text/csv"),
            (String = "text/plain"),
            (String = "application/xml"),
            (String = "application/json"),
        ),
        headers(
            ("ETag" = String, description = "the file's hex SHA-256, quoted"),
            ("Billclear-Sha256" = String, description = "the file's hex SHA-256"),
            ("Content-Disposition" = String, description = "attachment; filename=\"<name>\""),
        ))),
)]
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
pub(crate) async fn send_checked(
    path: PathBuf,
    name: &str,
    sha256: &str,
) -> Result<Response, ApiError> {
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

/// A channel's statement of a business date: what it owes per biller whose
/// date is closed. Amounts are decimal strings at exactly the currency's
/// scale.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Statement)]
pub struct StatementView {
    pub channel_id: String,
    pub business_date: NaiveDate,
    /// Every biller with settlement terms has closed the date.
    pub complete: bool,
    /// Billers with settlement terms that have not closed the date yet.
    pub billers_not_closed: Vec<String>,
    pub billers: Vec<StatementBillerView>,
    /// What the channel owes, per currency.
    pub owed: Vec<OwedView>,
    /// The statement file, once written.
    #[schema(required = true)]
    pub file: Option<StatementFileView>,
    /// Payments given back to the channel on this date (complaints): a
    /// reversal was never settled (never owed); a return is recovered
    /// from the biller and listed in the batch that recovers it.
    pub refunds: Vec<crate::complaints::view::RefundView>,
}

/// One biller's part of a channel's statement.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StatementBiller)]
pub struct StatementBillerView {
    pub biller_id: String,
    pub batch_id: Uuid,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// The channel's payments in the biller's batch.
    pub payments: u64,
    /// What those payments add up to.
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "200.00")]
    pub amount: String,
    /// The channel's payments returned (given back) in the batch.
    pub returns: u64,
    /// What the returns add up to (the channel is owed them back).
    #[schema(pattern = "^[0-9]+(\\.[0-9]{2,3})?$", example = "0.00")]
    pub returned: String,
    /// amount - returned (negative: the channel is owed).
    #[schema(pattern = "^-?[0-9]+(\\.[0-9]{2,3})?$", example = "200.00")]
    pub owed: String,
}

impl From<&StatementLine> for StatementBillerView {
    fn from(l: &StatementLine) -> StatementBillerView {
        let money = |d: Decimal| at_currency_scale(d, &l.currency);
        StatementBillerView {
            biller_id: l.biller_id.clone(),
            batch_id: l.batch_id,
            currency: l.currency.clone(),
            payments: l.payments,
            amount: money(l.amount),
            returns: l.returns,
            returned: money(l.returned),
            owed: money(l.amount - l.returned),
        }
    }
}

/// What a channel owes in one currency.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Owed)]
pub struct OwedView {
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// Negative: the channel is owed.
    #[schema(pattern = "^-?[0-9]+(\\.[0-9]{2,3})?$", example = "200.00")]
    pub amount: String,
}

/// Where the statement file is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StatementFile)]
pub struct StatementFileView {
    pub name: String,
    #[schema(example = "/v1/statements/2026-12-01/file")]
    pub href: String,
}

pub(super) const STATEMENT: Operation = Operation {
    id: "getStatement",
    problems: &[
        super::extract::QUERY,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        DATE_PROBLEMS,
    ],
};

/// The channel's statement of a business date: what it owes per biller
/// whose date is closed (signed with a CHANNEL key).
#[utoipa::path(
    get,
    path = "/v1/statements",
    operation_id = "getStatement",
    tag = "settlement",
    security(("bc1" = [])),
    params(("date" = String, Query, format = Date, description = "the business date, YYYY-MM-DD")),
    responses((status = 200, description = "The statement", body = StatementView)),
)]
pub async fn statement(
    State(state): State<AppState>,
    Query(q): Query<DateQuery>,
    signed: Signed,
) -> Result<Json<StatementView>, ApiError> {
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
    let refunds = state.store.refunds_on(&signed.channel.id, date).await?;
    let file = crate::settlement::statement::file_name(&signed.channel.id, date);
    let file_path =
        crate::settlement::statement::dir(&state.config.settlement.outbox_dir, &signed.channel.id)
            .join(&file);
    Ok(Json(StatementView {
        channel_id: signed.channel.id.to_string(),
        business_date: date,
        complete: open.is_empty(),
        billers_not_closed: open,
        billers: lines.iter().map(StatementBillerView::from).collect(),
        owed: owed
            .iter()
            .map(|(c, a)| OwedView {
                currency: c.to_string(),
                amount: at_currency_scale(*a, c),
            })
            .collect(),
        file: file_path.exists().then(|| StatementFileView {
            name: file,
            href: format!("/v1/statements/{date}/file"),
        }),
        refunds: refunds
            .iter()
            .map(crate::complaints::view::RefundView::from)
            .collect(),
    }))
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

pub(super) const STATEMENT_FILE: Operation = Operation {
    id: "downloadStatementFile",
    problems: &[
        super::extract::PATH,
        text::PROBLEMS,
        auth::SIGNED,
        auth::NONCE,
        &[
            (400, &[ProblemCode::InvalidDate]),
            (404, &[ProblemCode::NoStatement]),
            (409, &[ProblemCode::StatementIncomplete]),
            (500, &[ProblemCode::Internal]),
            (503, &[ProblemCode::FileUnavailable]),
        ],
    ],
};

/// The channel's statement file (CSV), written once every biller has
/// closed the date; checked against its SHA-256 before it is sent.
#[utoipa::path(
    get,
    path = "/v1/statements/{date}/file",
    operation_id = "downloadStatementFile",
    tag = "settlement",
    security(("bc1" = [])),
    params(("date" = String, Path, format = Date, description = "the business date, YYYY-MM-DD")),
    responses((status = 200, description = "The statement CSV",
        content((String = "text/csv")),
        headers(
            ("ETag" = String, description = "the file's hex SHA-256, quoted"),
            ("Billclear-Sha256" = String, description = "the file's hex SHA-256"),
            ("Content-Disposition" = String, description = "attachment; filename=\"<name>\""),
        ))),
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::settlement::{BankAccount, BatchTotals};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn account() -> BankAccount {
        BankAccount {
            name: "x".into(),
            account: "1".into(),
            bic: "ABCDCNSH".into(),
        }
    }

    fn batch(currency: &str, totals: BatchTotals) -> BatchRecord {
        BatchRecord {
            id: Uuid::nil(),
            biller_id: "sh-water".into(),
            biller_name: "Shanghai Water".into(),
            business_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            currency: currency.into(),
            cutoff_at: DateTime::UNIX_EPOCH,
            created_at: DateTime::UNIX_EPOCH,
            totals,
            commission_rule: "none".into(),
            format: FileFormat::Csv,
            creditor: account(),
            debtor: account(),
            journal_id: None,
            files_written_at: None,
            files_failed_at: None,
            files_failure: None,
        }
    }

    /// Totals read back from the store are `0` where nothing was added
    /// (no returns, no commission): answers show them at the currency's
    /// scale like every other amount.
    #[test]
    fn zero_totals_are_at_the_currency_scale() {
        let mut totals = BatchTotals::new();
        totals.add_payment(d("120.00"), Decimal::ZERO);
        totals.add_payment(d("80.00"), Decimal::ZERO);
        let file = BatchFile {
            name: "f.csv".into(),
            kind: "settlement".into(),
            sha256: "0".repeat(64),
            bytes: 10,
            count: 0,
            total: Decimal::ZERO,
        };
        let v =
            serde_json::to_value(SettlementBatchView::new(&batch("CNY", totals), &[file])).unwrap();
        assert_eq!(v["gross"], "200.00");
        assert_eq!(v["commission"], "0.00");
        assert_eq!(v["returned"], "0.00");
        assert_eq!(v["net"], "200.00");
        assert_eq!(v["files"][0]["total"], "0.00");
        assert_eq!(v["files"][0]["kind"], "settlement");

        let v = serde_json::to_value(SettlementBatchView::new(
            &batch("JPY", BatchTotals::new()),
            &[],
        ))
        .unwrap();
        assert_eq!((&v["gross"], &v["net"]), (&"0".into(), &"0".into()));
        let v = serde_json::to_value(SettlementBatchView::new(
            &batch("KWD", BatchTotals::new()),
            &[],
        ))
        .unwrap();
        assert_eq!(v["returned"], "0.000");
    }

    #[test]
    fn statement_lines_without_returns_show_zero_at_scale() {
        let line = StatementLine {
            biller_id: "sh-water".into(),
            currency: "CNY".into(),
            batch_id: Uuid::nil(),
            payments: 0,
            amount: Decimal::ZERO,
            returns: 1,
            returned: d("12.5"),
        };
        let v = serde_json::to_value(StatementBillerView::from(&line)).unwrap();
        assert_eq!(v["amount"], "0.00");
        assert_eq!(v["returned"], "12.50");
        assert_eq!(v["owed"], "-12.50");
    }
}
