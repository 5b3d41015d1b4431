//! A biller's daily cut-off and the business dates it closes. Pure.
//!
//! A biller's business date D closes at its cut-off on D in its own time
//! zone: a payment confirmed exactly at the cut-off belongs to D, one a
//! microsecond later to the next date.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The daily cut-off that closes a business date, in the biller's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    pub time: NaiveTime,
    pub zone: Tz,
}

impl Cutoff {
    /// The instant business date `date` closes. A cut-off that falls in a
    /// daylight-saving gap closes at the first instant after the gap; one
    /// that falls in an overlap closes at the earlier of the two.
    pub fn instant(&self, date: NaiveDate) -> DateTime<Utc> {
        let local = date.and_time(self.time);
        if let Some(at) = self.zone.from_local_datetime(&local).earliest() {
            return at.with_timezone(&Utc);
        }
        // In a gap: step forward a minute at a time (gaps are at most hours).
        (1..=24 * 60)
            .find_map(|m| {
                self.zone
                    .from_local_datetime(&(local + chrono::Duration::minutes(m)))
                    .earliest()
            })
            .expect("a daylight-saving gap ends within a day")
            .with_timezone(&Utc)
    }

    /// The business date a payment confirmed at `at` belongs to.
    pub fn business_date_of(&self, at: DateTime<Utc>) -> NaiveDate {
        let local_date = at.with_timezone(&self.zone).date_naive();
        if at <= self.instant(local_date) {
            local_date
        } else {
            local_date + Days::new(1)
        }
    }

    /// The latest cut-off at or before `now` and the business date it closes.
    pub fn last_closed(&self, now: DateTime<Utc>) -> (DateTime<Utc>, NaiveDate) {
        let mut date = now.with_timezone(&self.zone).date_naive() + Days::new(1);
        loop {
            let at = self.instant(date);
            if at <= now {
                return (at, date);
            }
            date = date.pred_opt().expect("dates after year -262144");
        }
    }

    /// Business dates whose cut-off has passed at `now`, the newest first,
    /// going back `days` dates (the scheduler closes those still open).
    pub fn closed_dates(&self, now: DateTime<Utc>, days: u32) -> Vec<NaiveDate> {
        let (_, newest) = self.last_closed(now);
        (0..=u64::from(days))
            .filter_map(|d| newest.checked_sub_days(Days::new(d)))
            .collect()
    }
}
