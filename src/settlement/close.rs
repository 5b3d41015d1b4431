//! Closing business dates: by hand (`billclear settle`) and on schedule
//! (`billclear serve`). The transaction itself is the store's
//! (`SettlementStore::close_batch`); this decides which dates are due.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::biller::Biller;
use crate::domain::settlement::BankAccount;
use crate::store::{CloseOutcome, CloseRequest, Store};

/// What became of one biller's date.
#[derive(Debug)]
// One per biller and date closed, never held in bulk: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Closing {
    Closed(CloseOutcome),
    /// Not closed, and why (no terms, cut-off not reached, ...).
    Skipped(String),
    Failed(String),
}

/// When a date may be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only once its cut-off has passed.
    AtCutoff,
    /// Now, before its cut-off: payments confirmed from now until the
    /// cut-off go to the next date's batch.
    Early,
}

/// The instant `biller`'s `date` closes at, or why it cannot close now.
pub fn cutoff_for(
    biller: &Biller,
    date: NaiveDate,
    when: When,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let at = biller.cutoff.instant(date);
    match when {
        _ if at <= now => Ok(at),
        When::AtCutoff => Err(format!(
            "its cut-off ({} {}) is at {} UTC, not reached yet; wait, or close early with --early",
            biller.cutoff.time.format("%H:%M"),
            biller.cutoff.zone.name(),
            at.format("%Y-%m-%d %H:%M:%S")
        )),
        When::Early => {
            let opens = biller.cutoff.instant(date.pred_opt().unwrap_or(date));
            if now <= opens {
                Err(format!(
                    "business date {date} has not started yet (it opens at {} UTC)",
                    opens.format("%Y-%m-%d %H:%M:%S")
                ))
            } else {
                Ok(now)
            }
        }
    }
}

/// Closes `date` for each of `billers` (all of them when `only` is None).
/// Suspended billers are closed too: what they confirmed is still owed.
pub async fn close_date(
    store: &dyn Store,
    billers: &[Biller],
    date: NaiveDate,
    only: Option<&str>,
    when: When,
    debtor: &BankAccount,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(String, Closing)>> {
    if let Some(id) = only {
        anyhow::ensure!(
            billers.iter().any(|b| b.id.as_str() == id),
            "unknown biller {id:?} (billclear billers list shows them)"
        );
    }
    let mut out = Vec::new();
    for b in billers
        .iter()
        .filter(|b| only.is_none_or(|id| b.id.as_str() == id))
    {
        let id = b.id.to_string();
        if b.settlement.is_none() {
            out.push((
                id,
                Closing::Skipped(
                    "no settlement terms (add [biller.settlement] to the billers file)".into(),
                ),
            ));
            continue;
        }
        let cutoff_at = match cutoff_for(b, date, when, now) {
            Ok(at) => at,
            Err(why) => {
                out.push((id, Closing::Skipped(why)));
                continue;
            }
        };
        let req = CloseRequest {
            biller: b.clone(),
            business_date: date,
            cutoff_at,
            debtor: debtor.clone(),
            now,
        };
        let result = match store.close_batch(&req).await {
            Ok(o) => Closing::Closed(o),
            Err(e) => Closing::Failed(e.to_string()),
        };
        out.push((id, result));
    }
    Ok(out)
}

/// The dates the scheduler should close for `biller` at `now`, oldest
/// first: every date of the last `catch_up_days` whose cut-off has passed
/// and that has no batch (`closed` holds the biller's closed dates) — a
/// date skipped (a failure, an early close of the next one) is closed
/// later, never forgotten. Nothing before the biller's first batch: a
/// biller never settled before starts with the latest date whose cut-off
/// has passed.
pub fn due_dates(
    biller: &Biller,
    closed: &std::collections::BTreeSet<NaiveDate>,
    now: DateTime<Utc>,
    catch_up_days: u32,
) -> Vec<NaiveDate> {
    let passed = biller.cutoff.closed_dates(now, catch_up_days);
    let mut due: Vec<NaiveDate> = match closed.first() {
        None => passed.into_iter().take(1).collect(),
        Some(first) => passed
            .into_iter()
            .filter(|d| d > first && !closed.contains(d))
            .collect(),
    };
    due.reverse();
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::billers_file;
    use std::collections::BTreeSet;

    fn water() -> Biller {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml");
        billers_file::load(&path)
            .unwrap()
            .into_iter()
            .find(|b| b.id.as_str() == "sh-water")
            .unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn a_new_biller_starts_with_the_latest_closed_date() {
        // 23:00 Shanghai = 15:00 UTC
        let b = water();
        let none = BTreeSet::new();
        assert_eq!(
            due_dates(&b, &none, utc("2026-11-29T15:00:00Z"), 7),
            vec![day(29)]
        );
        assert_eq!(
            due_dates(&b, &none, utc("2026-11-29T14:59:59Z"), 7),
            vec![day(28)]
        );
    }

    #[test]
    fn missed_cutoffs_are_caught_up_oldest_first_within_the_window() {
        let b = water();
        let now = utc("2026-11-29T16:00:00Z");
        let upto = |last: u32| -> BTreeSet<NaiveDate> { (1..=last).map(day).collect() };
        assert_eq!(due_dates(&b, &upto(29), now, 7), Vec::<NaiveDate>::new());
        assert_eq!(due_dates(&b, &upto(28), now, 7), vec![day(29)]);
        assert_eq!(
            due_dates(&b, &upto(25), now, 7),
            vec![day(26), day(27), day(28), day(29)]
        );
        // Older than the window: only the window is closed.
        assert_eq!(
            due_dates(&b, &upto(1), now, 2),
            vec![day(27), day(28), day(29)]
        );
        // A gap (a date that failed, or whose next date was closed early)
        // is filled; nothing before the first batch.
        let closed: BTreeSet<NaiveDate> = [25, 26, 28, 29].into_iter().map(day).collect();
        assert_eq!(due_dates(&b, &closed, now, 7), vec![day(27)]);
        let closed: BTreeSet<NaiveDate> = [20, 26].into_iter().map(day).collect();
        assert_eq!(
            due_dates(&b, &closed, now, 7),
            vec![
                day(22),
                day(23),
                day(24),
                day(25),
                day(27),
                day(28),
                day(29)
            ]
        );
    }

    #[test]
    fn cutoff_rules_for_closing_by_hand() {
        let b = water();
        let before = utc("2026-11-29T14:00:00Z");
        let err = cutoff_for(&b, day(29), When::AtCutoff, before).unwrap_err();
        assert!(
            err.contains("not reached") && err.contains("--early"),
            "{err}"
        );
        // Early: closes at the moment asked.
        assert_eq!(cutoff_for(&b, day(29), When::Early, before), Ok(before));
        // A date that has not begun cannot be closed early.
        assert!(cutoff_for(&b, day(30), When::Early, before).is_err());
        // After the cut-off both close at the cut-off.
        let after = utc("2026-11-29T18:00:00Z");
        let at = utc("2026-11-29T15:00:00Z");
        assert_eq!(cutoff_for(&b, day(29), When::AtCutoff, after), Ok(at));
        assert_eq!(cutoff_for(&b, day(29), When::Early, after), Ok(at));
    }
}
