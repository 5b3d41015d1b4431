//! A reconciliation run's reports: CSV (two files) and XLSX (one workbook
//! with the sheets `Summary` and `Breaks`).
//!
//! **Deterministic**: the same [`RunReport`] gives the same bytes, byte for
//! byte, whenever it is written. Rows come out in the report's order (the
//! summary grouped by biller in order of first appearance, a total row
//! after each biller's rows); the workbook's creation and modification
//! times are the business date at 00:00:00 UTC, never the clock; the XLSX
//! container's entries carry rust_xlsxwriter's fixed zip timestamps.
//!
//! **Exact amounts**: amounts are minor units, rendered at the currency's
//! scale (`12345` fen → `123.45`) with integer arithmetic only.
//!
//! **Atomic**: each file is written under a temporary name and renamed
//! (`write_atomic_replacing`): a re-run replaces the previous report, and a
//! reader never sees half a file.
//!
//! CSV layout (RFC 4180, UTF-8, CRLF line ends, header first):
//! - `<stem>-summary.csv`: `biller_id,category,count,amount,currency`; after
//!   each biller's rows one row with category `TOTAL` per currency.
//! - `<stem>-breaks.csv`: `break_id,business_date,biller_id,category,status,
//!   our_reference,their_reference,our_amount,their_amount,currency,detail,owner`;
//!   an absent amount is an empty field. The bank's breaks have `bank` as
//!   their biller_id (scope).
//! - `<stem>-balances.csv` (when bank statements were reconciled):
//!   `account,item,amount,currency`: per currency, each account's closing
//!   balance (`bank-closing-balance`), our `bank:settlement` balance, every
//!   item that explains the difference, and what is left unexplained.
//!
//! Text that a spreadsheet would take for a formula (starting with `=`, `+`,
//! `-`, `@`, tab or carriage return) is prefixed with `'` in the CSV files:
//! references and details may come from a counterparty's file, and these
//! CSVs are opened in spreadsheets. Amount columns are never prefixed. The
//! XLSX cells are typed strings and are written unchanged.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{
    DocProperties, ExcelDateTime, Format, FormatAlign, IgnoreError, Workbook, Worksheet, XlsxError,
};

use crate::domain::money::Currency;
use crate::settlement::files::atomic::write_atomic_replacing;
use crate::settlement::files::FileError;

/// Count and amount of one category of one biller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummaryRow {
    pub biller_id: String,
    pub category: String,
    pub count: u64,
    pub amount_minor: i64,
    pub currency: String,
}

/// One break (a work item) as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBreakRow {
    pub break_id: i64,
    pub business_date: NaiveDate,
    pub biller_id: String,
    pub category: String,
    pub status: String,
    pub our_reference: String,
    pub their_reference: String,
    pub our_amount_minor: Option<i64>,
    pub their_amount_minor: Option<i64>,
    pub currency: String,
    pub detail: String,
    pub owner: String,
}

/// One line of the bank balance comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBalanceRow {
    /// A (masked) account, or `bank:settlement:<ccy>` for our ledger's side
    /// and the currency's items.
    pub account: String,
    pub item: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// Everything one run reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// E.g. `2026-11-29 sh-water`: the workbook's title.
    pub run_label: String,
    pub business_date: NaiveDate,
    pub summary: Vec<ReportSummaryRow>,
    pub breaks: Vec<ReportBreakRow>,
    /// The bank's balances beside the ledger's (empty: no bank run).
    pub balances: Vec<ReportBalanceRow>,
}

/// The category of a biller's total row.
pub const TOTAL_CATEGORY: &str = "TOTAL";

const SUMMARY_COLUMNS: [&str; 5] = ["biller_id", "category", "count", "amount", "currency"];

const BALANCE_COLUMNS: [&str; 4] = ["account", "item", "amount", "currency"];

const BREAK_COLUMNS: [&str; 12] = [
    "break_id",
    "business_date",
    "biller_id",
    "category",
    "status",
    "our_reference",
    "their_reference",
    "our_amount",
    "their_amount",
    "currency",
    "detail",
    "owner",
];

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn file_error(e: FileError) -> io::Error {
    match e {
        FileError::Io { source, .. } => source,
        other => io::Error::other(other),
    }
}

fn xlsx_error(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        other => io::Error::other(other),
    }
}

/// `minor` units of `currency` as a decimal string at the currency's scale:
/// `12345` CNY → `123.45`, `-5` → `-0.05`, `7` JPY → `7`. Integers only.
pub fn format_minor(minor: i64, currency: &str) -> io::Result<String> {
    let scale = Currency::from_code(currency)
        .map_err(|e| invalid(format!("currency {currency:?}: {e}")))?
        .scale();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if scale == 0 {
        return Ok(format!("{sign}{magnitude}"));
    }
    let unit = 10u64.pow(scale);
    let width = scale as usize;
    Ok(format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit
    ))
}

fn format_optional(minor: Option<i64>, currency: &str) -> io::Result<String> {
    match minor {
        Some(m) => format_minor(m, currency),
        None => Ok(String::new()),
    }
}

/// A summary line: a category row, or a biller's total (per currency).
struct SummaryLine<'a> {
    biller_id: &'a str,
    category: &'a str,
    count: u64,
    amount: String,
    currency: &'a str,
    total: bool,
}

/// The summary rows grouped by biller (in order of first appearance, rows
/// kept in their order), each biller followed by its total row for each of
/// its currencies (in order of first appearance).
fn summary_lines(report: &RunReport) -> io::Result<Vec<SummaryLine<'_>>> {
    let mut billers: Vec<&str> = Vec::new();
    for row in &report.summary {
        if !billers.contains(&row.biller_id.as_str()) {
            billers.push(&row.biller_id);
        }
    }
    let mut lines = Vec::with_capacity(report.summary.len() + billers.len());
    for biller in billers {
        // (currency, count, amount) of this biller.
        let mut totals: Vec<(&str, u64, i64)> = Vec::new();
        for row in report.summary.iter().filter(|r| r.biller_id == biller) {
            lines.push(SummaryLine {
                biller_id: &row.biller_id,
                category: &row.category,
                count: row.count,
                amount: format_minor(row.amount_minor, &row.currency)?,
                currency: &row.currency,
                total: false,
            });
            let index = match totals.iter().position(|t| t.0 == row.currency) {
                Some(i) => i,
                None => {
                    totals.push((&row.currency, 0, 0));
                    totals.len() - 1
                }
            };
            let total = &mut totals[index];
            total.1 = total
                .1
                .checked_add(row.count)
                .ok_or_else(|| invalid(format!("{biller}: the total count overflows")))?;
            total.2 = total
                .2
                .checked_add(row.amount_minor)
                .ok_or_else(|| invalid(format!("{biller}: the total amount overflows")))?;
        }
        for (currency, count, amount_minor) in totals {
            lines.push(SummaryLine {
                biller_id: biller,
                category: TOTAL_CATEGORY,
                count,
                amount: format_minor(amount_minor, currency)?,
                currency,
                total: true,
            });
        }
    }
    Ok(lines)
}

/// Text as a spreadsheet will read it from a CSV: no formula.
fn csv_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

fn csv_writer() -> ::csv::Writer<Vec<u8>> {
    ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn csv_bytes(w: ::csv::Writer<Vec<u8>>) -> io::Result<Vec<u8>> {
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

fn summary_csv(report: &RunReport) -> io::Result<Vec<u8>> {
    let mut w = csv_writer();
    w.write_record(SUMMARY_COLUMNS)?;
    for line in summary_lines(report)? {
        w.write_record([
            &*csv_text(line.biller_id),
            &*csv_text(line.category),
            &line.count.to_string(),
            &line.amount,
            &*csv_text(line.currency),
        ])?;
    }
    csv_bytes(w)
}

fn breaks_csv(report: &RunReport) -> io::Result<Vec<u8>> {
    let mut w = csv_writer();
    w.write_record(BREAK_COLUMNS)?;
    for b in &report.breaks {
        w.write_record([
            &*b.break_id.to_string(),
            &b.business_date.format("%Y-%m-%d").to_string(),
            &csv_text(&b.biller_id),
            &csv_text(&b.category),
            &csv_text(&b.status),
            &csv_text(&b.our_reference),
            &csv_text(&b.their_reference),
            &format_optional(b.our_amount_minor, &b.currency)?,
            &format_optional(b.their_amount_minor, &b.currency)?,
            &csv_text(&b.currency),
            &csv_text(&b.detail),
            &csv_text(&b.owner),
        ])?;
    }
    csv_bytes(w)
}

fn balances_csv(report: &RunReport) -> io::Result<Vec<u8>> {
    let mut w = csv_writer();
    w.write_record(BALANCE_COLUMNS)?;
    for b in &report.balances {
        w.write_record([
            &*csv_text(&b.account),
            &csv_text(&b.item),
            &format_minor(b.amount_minor, &b.currency)?,
            &csv_text(&b.currency),
        ])?;
    }
    csv_bytes(w)
}

/// Writes `dir/<stem>-summary.csv` and `dir/<stem>-breaks.csv` (replacing
/// earlier ones), and `dir/<stem>-balances.csv` when the report has bank
/// balances, and returns their paths in that order.
pub fn write_csv(report: &RunReport, dir: &Path, stem: &str) -> io::Result<Vec<PathBuf>> {
    // Render all before writing any: a refused report writes nothing.
    let mut files = vec![
        (format!("{stem}-summary.csv"), summary_csv(report)?),
        (format!("{stem}-breaks.csv"), breaks_csv(report)?),
    ];
    if !report.balances.is_empty() {
        files.push((format!("{stem}-balances.csv"), balances_csv(report)?));
    }
    let mut paths = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        write_atomic_replacing(dir, &name, &bytes).map_err(file_error)?;
        paths.push(dir.join(name));
    }
    Ok(paths)
}

/// The workbook's bytes (see the module documentation).
///
/// Amounts are written as **text cells** holding the exact decimal
/// (`"123.45"`), right-aligned, with Excel's "number stored as text"
/// warning switched off for those columns. A numeric cell would have to be
/// given to rust_xlsxwriter as an `f64`: display would be exact for these
/// values, but our rule is no floats on any money path, and a text cell
/// cannot be re-rounded by anyone downstream. Counts (not money) and break
/// ids are numeric cells; the business date is a date cell.
pub fn render_xlsx(report: &RunReport) -> io::Result<Vec<u8>> {
    build_workbook(report)
        .map_err(xlsx_error)?
        .save_to_buffer()
        .map_err(xlsx_error)
}

fn build_workbook(report: &RunReport) -> Result<Workbook, XlsxError> {
    let date = report.business_date;
    let created =
        ExcelDateTime::from_ymd(date.year() as u16, date.month() as u8, date.day() as u8)?;
    let properties = DocProperties::new()
        .set_title(format!("Reconciliation {}", report.run_label))
        .set_creation_datetime(&created);
    let mut workbook = Workbook::new();
    workbook.set_properties(&properties);

    let header = Format::new().set_bold();
    let amount = Format::new().set_align(FormatAlign::Right);
    let total_text = Format::new().set_bold();
    let total_amount = Format::new().set_bold().set_align(FormatAlign::Right);
    let day = Format::new().set_num_format("yyyy-mm-dd");

    let lines = summary_lines(report).map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    let summary = workbook.add_worksheet();
    summary.set_name("Summary")?;
    write_header(summary, &SUMMARY_COLUMNS, &header)?;
    for (i, line) in lines.iter().enumerate() {
        let row = i as u32 + 1;
        let (text, money) = if line.total {
            (&total_text, &total_amount)
        } else {
            (&Format::new(), &amount)
        };
        summary.write_string_with_format(row, 0, line.biller_id, text)?;
        summary.write_string_with_format(row, 1, line.category, text)?;
        summary.write_with_format(row, 2, line.count as f64, text)?;
        summary.write_string_with_format(row, 3, &line.amount, money)?;
        summary.write_string_with_format(row, 4, line.currency, text)?;
    }
    if !lines.is_empty() {
        summary.ignore_error_range(1, 3, lines.len() as u32, 3, IgnoreError::NumberStoredAsText)?;
    }
    for (col, width) in [16.0, 22.0, 10.0, 18.0, 10.0].into_iter().enumerate() {
        summary.set_column_width(col as u16, width)?;
    }
    summary.set_freeze_panes(1, 0)?;

    let breaks = workbook.add_worksheet();
    breaks.set_name("Breaks")?;
    write_header(breaks, &BREAK_COLUMNS, &header)?;
    for (i, b) in report.breaks.iter().enumerate() {
        let row = i as u32 + 1;
        // Break ids are database ids, far below 2^53: exact as numbers.
        breaks.write_number(row, 0, b.break_id as f64)?;
        let d = ExcelDateTime::from_ymd(
            b.business_date.year() as u16,
            b.business_date.month() as u8,
            b.business_date.day() as u8,
        )?;
        breaks.write_datetime_with_format(row, 1, &d, &day)?;
        breaks.write_string(row, 2, &b.biller_id)?;
        breaks.write_string(row, 3, &b.category)?;
        breaks.write_string(row, 4, &b.status)?;
        breaks.write_string(row, 5, &b.our_reference)?;
        breaks.write_string(row, 6, &b.their_reference)?;
        for (col, minor) in [(7, b.our_amount_minor), (8, b.their_amount_minor)] {
            if let Some(minor) = minor {
                let text = format_minor(minor, &b.currency)
                    .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
                breaks.write_string_with_format(row, col, text, &amount)?;
            }
        }
        breaks.write_string(row, 9, &b.currency)?;
        breaks.write_string(row, 10, &b.detail)?;
        breaks.write_string(row, 11, &b.owner)?;
    }
    if !report.breaks.is_empty() {
        let last = report.breaks.len() as u32;
        breaks.ignore_error_range(1, 7, last, 8, IgnoreError::NumberStoredAsText)?;
        breaks.ignore_error_range(1, 5, last, 6, IgnoreError::NumberStoredAsText)?;
    }
    let widths = [
        10.0, 13.0, 16.0, 22.0, 12.0, 38.0, 24.0, 14.0, 14.0, 9.0, 60.0, 16.0,
    ];
    for (col, width) in widths.into_iter().enumerate() {
        breaks.set_column_width(col as u16, width)?;
    }
    breaks.set_freeze_panes(1, 0)?;

    if !report.balances.is_empty() {
        let sheet = workbook.add_worksheet();
        sheet.set_name("Balances")?;
        write_header(sheet, &BALANCE_COLUMNS, &header)?;
        for (i, b) in report.balances.iter().enumerate() {
            let row = i as u32 + 1;
            sheet.write_string(row, 0, &b.account)?;
            sheet.write_string(row, 1, &b.item)?;
            let text = format_minor(b.amount_minor, &b.currency)
                .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
            sheet.write_string_with_format(row, 2, text, &amount)?;
            sheet.write_string(row, 3, &b.currency)?;
        }
        let last = report.balances.len() as u32;
        sheet.ignore_error_range(1, 2, last, 2, IgnoreError::NumberStoredAsText)?;
        for (col, width) in [26.0, 40.0, 18.0, 10.0].into_iter().enumerate() {
            sheet.set_column_width(col as u16, width)?;
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    Ok(workbook)
}

fn write_header(sheet: &mut Worksheet, columns: &[&str], format: &Format) -> Result<(), XlsxError> {
    for (col, name) in columns.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *name, format)?;
    }
    Ok(())
}

/// Writes the workbook to `path` (replacing an earlier one) and returns
/// the path.
pub fn write_xlsx(report: &RunReport, path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let bytes = render_xlsx(report)?;
    write_atomic_replacing(dir, name, &bytes).map_err(file_error)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn sample() -> RunReport {
        let summary = |biller: &str, category: &str, count, amount_minor| ReportSummaryRow {
            biller_id: biller.into(),
            category: category.into(),
            count,
            amount_minor,
            currency: "CNY".into(),
        };
        RunReport {
            run_label: "2026-11-29 sh-water".into(),
            business_date: date(),
            summary: vec![
                summary("sh-water", "matched", 1000, 12_345_678),
                summary("sh-gas", "matched", 2, 300),
                summary("sh-water", "amount_mismatch", 1, 5),
                summary("sh-water", "missing_at_us", 2, -1_050),
            ],
            breaks: vec![
                ReportBreakRow {
                    break_id: 41,
                    business_date: date(),
                    biller_id: "sh-water".into(),
                    category: "amount_mismatch".into(),
                    status: "OPEN".into(),
                    our_reference: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
                    their_reference: "R0001".into(),
                    our_amount_minor: Some(12_345),
                    their_amount_minor: Some(12_340),
                    currency: "CNY".into(),
                    detail: "they say 123.40, we say 123.45; \"short\" by 0.05".into(),
                    owner: "ops".into(),
                },
                ReportBreakRow {
                    break_id: 42,
                    business_date: date(),
                    biller_id: "sh-water".into(),
                    category: "missing_at_us".into(),
                    status: "OPEN".into(),
                    our_reference: "unknown-ref".into(),
                    their_reference: "=HYPERLINK(\"x\")".into(),
                    our_amount_minor: None,
                    their_amount_minor: Some(7),
                    currency: "CNY".into(),
                    detail: "no payment".into(),
                    owner: String::new(),
                },
            ],
            balances: vec![],
        }
    }

    #[test]
    fn amounts_render_exactly_at_the_currency_scale() {
        assert_eq!(format_minor(12_345, "CNY").unwrap(), "123.45");
        assert_eq!(format_minor(5, "CNY").unwrap(), "0.05");
        assert_eq!(format_minor(-5, "CNY").unwrap(), "-0.05");
        assert_eq!(format_minor(-1_050, "CNY").unwrap(), "-10.50");
        assert_eq!(format_minor(0, "CNY").unwrap(), "0.00");
        assert_eq!(format_minor(7, "JPY").unwrap(), "7");
        assert_eq!(format_minor(1_234, "KWD").unwrap(), "1.234");
        assert_eq!(
            format_minor(i64::MIN, "CNY").unwrap(),
            "-92233720368547758.08"
        );
        assert_eq!(
            format_minor(9_007_199_254_740_993, "CNY").unwrap(),
            "90071992547409.93"
        );
        assert!(format_minor(1, "XXX").is_err());
    }

    #[test]
    fn csv_golden() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_csv(&sample(), dir.path(), "2026-11-29-sh-water").unwrap();
        assert_eq!(
            paths,
            [
                dir.path().join("2026-11-29-sh-water-summary.csv"),
                dir.path().join("2026-11-29-sh-water-breaks.csv"),
            ]
        );
        let summary = std::fs::read_to_string(&paths[0]).unwrap();
        assert_eq!(
            summary,
            "biller_id,category,count,amount,currency\r\n\
             sh-water,matched,1000,123456.78,CNY\r\n\
             sh-water,amount_mismatch,1,0.05,CNY\r\n\
             sh-water,missing_at_us,2,-10.50,CNY\r\n\
             sh-water,TOTAL,1003,123446.33,CNY\r\n\
             sh-gas,matched,2,3.00,CNY\r\n\
             sh-gas,TOTAL,2,3.00,CNY\r\n"
        );
        let breaks = std::fs::read_to_string(&paths[1]).unwrap();
        assert_eq!(
            breaks,
            "break_id,business_date,biller_id,category,status,our_reference,their_reference,\
             our_amount,their_amount,currency,detail,owner\r\n\
             41,2026-11-29,sh-water,amount_mismatch,OPEN,0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b,R0001,\
             123.45,123.40,CNY,\"they say 123.40, we say 123.45; \"\"short\"\" by 0.05\",ops\r\n\
             42,2026-11-29,sh-water,missing_at_us,OPEN,unknown-ref,\"'=HYPERLINK(\"\"x\"\")\",\
             ,0.07,CNY,no payment,\r\n"
        );
        // Nothing else (no temporary file) is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn csv_rewrite_replaces_and_is_identical() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_csv(&sample(), dir.path(), "r").unwrap();
        let bytes: Vec<Vec<u8>> = first.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let mut changed = sample();
        changed.breaks.pop();
        write_csv(&changed, dir.path(), "r").unwrap();
        assert_ne!(std::fs::read(&first[1]).unwrap(), bytes[1]);
        let again = write_csv(&sample(), dir.path(), "r").unwrap();
        let again: Vec<Vec<u8>> = again.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert_eq!(again, bytes);
    }

    #[test]
    fn an_unknown_currency_refuses_the_report_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.breaks[1].currency = "XXX".into();
        let err = write_csv(&report, dir.path(), "r").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(write_xlsx(&report, &dir.path().join("r.xlsx")).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn zip_entry(bytes: &[u8], name: &str) -> String {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn xlsx_is_deterministic_and_holds_both_sheets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-29-sh-water.xlsx");
        assert_eq!(write_xlsx(&sample(), &path).unwrap(), path);
        let first = std::fs::read(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        write_xlsx(&sample(), &path).unwrap();
        let second = std::fs::read(&path).unwrap();
        assert!(first == second, "the same report gave different bytes");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let sheet1 = zip_entry(&first, "xl/worksheets/sheet1.xml");
        let sheet2 = zip_entry(&first, "xl/worksheets/sheet2.xml");
        let workbook = zip_entry(&first, "xl/workbook.xml");
        assert!(workbook.contains(r#"name="Summary""#), "{workbook}");
        assert!(workbook.contains(r#"name="Breaks""#), "{workbook}");
        // Header row frozen on both sheets.
        assert!(sheet1.contains(r#"state="frozen""#), "{sheet1}");
        assert!(sheet2.contains(r#"state="frozen""#), "{sheet2}");
        assert!(sheet2.contains("<cols>"), "{sheet2}");
        // Strings (amounts included) are in the shared strings table.
        let strings = zip_entry(&first, "xl/sharedStrings.xml");
        for s in [
            "123456.78",
            "123446.33",
            "123.45",
            "123.40",
            "0.07",
            "TOTAL",
        ] {
            assert!(strings.contains(&format!("<t>{s}</t>")), "{s} in {strings}");
        }
        assert!(strings.contains("&quot;short&quot;") || strings.contains("\"short\""));
        // Fixed creation time: the business date.
        let core = zip_entry(&first, "docProps/core.xml");
        assert!(core.contains("2026-11-29T00:00:00Z"), "{core}");
        assert!(
            core.contains("Reconciliation 2026-11-29 sh-water"),
            "{core}"
        );
    }

    #[test]
    fn an_empty_report_still_writes_headers() {
        let dir = tempfile::tempdir().unwrap();
        let report = RunReport {
            run_label: "2026-11-29 sh-water".into(),
            business_date: date(),
            summary: vec![],
            breaks: vec![],
            balances: vec![],
        };
        let paths = write_csv(&report, dir.path(), "empty").unwrap();
        assert_eq!(
            std::fs::read_to_string(&paths[0]).unwrap(),
            "biller_id,category,count,amount,currency\r\n"
        );
        let bytes = render_xlsx(&report).unwrap();
        assert_eq!(bytes, render_xlsx(&report).unwrap());
        zip_entry(&bytes, "xl/worksheets/sheet2.xml");
    }
}
