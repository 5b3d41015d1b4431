//! The complaints report: per biller and month, complaints by type,
//! resolved within time, median and worst resolution time (CSV, XLSX).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::domain::complaint::{report_lines, Calendar, ReportItem, ReportLine};
use crate::store::complaint::ComplaintRecord;

pub const HEADER: [&str; 10] = [
    "type",
    "raised",
    "closed",
    "closed_within_time",
    "still_open",
    "median_hours",
    "worst_hours",
    "median_business_days",
    "worst_business_days",
    "biller",
];

/// The month `YYYY-MM` as [start, end) in the calendar's zone.
pub fn month_bounds(month: &str, cal: &Calendar) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    let at = |d: NaiveDate| {
        cal.zone
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((at(first)?, at(next)?))
}

/// The report's lines from a month's complaints of one biller.
pub fn lines(complaints: &[ComplaintRecord], cal: &Calendar) -> Vec<ReportLine> {
    let items: Vec<ReportItem> = complaints
        .iter()
        .map(|c| ReportItem {
            kind: c.kind,
            registered_at: c.registered_at,
            due_at: c.due_at,
            closed_at: c.resolved_at,
        })
        .collect();
    report_lines(&items, cal)
}

fn row(l: &ReportLine, biller: &str) -> [String; 10] {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let optn = |o: Option<u32>| o.map(|n| n.to_string()).unwrap_or_default();
    [
        l.kind.to_string(),
        l.raised.to_string(),
        l.closed.to_string(),
        l.closed_within_time.to_string(),
        l.still_open.to_string(),
        opt(&l.median_hours),
        opt(&l.worst_hours),
        optn(l.median_business_days),
        optn(l.worst_business_days),
        biller.to_string(),
    ]
}

pub fn csv(lines: &[ReportLine], biller: &str) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for l in lines {
        w.write_record(row(l, biller))?;
    }
    Ok(w.into_inner()?)
}

pub fn xlsx(lines: &[ReportLine], biller: &str, month: &str) -> anyhow::Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(format!("complaints {month}"))?;
    let bold = Format::new().set_bold();
    for (c, name) in HEADER.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *name, &bold)?;
    }
    for (r, l) in lines.iter().enumerate() {
        for (c, v) in row(l, biller).iter().enumerate() {
            let numeric = (1..=4).contains(&c);
            match v.parse::<u32>() {
                Ok(n) if numeric => ws.write_number(r as u32 + 1, c as u16, n)?,
                _ => ws.write_string(r as u32 + 1, c as u16, v)?,
            };
        }
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_in_the_billers_zone() {
        let cal = Calendar {
            zone: chrono_tz::Asia::Shanghai,
            holidays: Default::default(),
        };
        let (a, b) = month_bounds("2026-12", &cal).unwrap();
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2026, 12, 31, 16, 0, 0).unwrap());
        assert!(month_bounds("2026-13", &cal).is_none());
        assert!(month_bounds("december", &cal).is_none());
        let lines = report_lines(&[], &cal);
        let text = String::from_utf8(csv(&lines, "sh-water").unwrap()).unwrap();
        assert!(text.starts_with("type,raised,closed,closed_within_time"));
        assert_eq!(text.lines().count(), 6);
        assert!(xlsx(&lines, "sh-water", "2026-12")
            .unwrap()
            .starts_with(b"PK"));
    }
}
