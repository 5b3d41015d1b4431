//! Our books against a biller's: the check the demo prints and every
//! dispatch test ends with (the daily reconciliation of a later issue does
//! this from files, at scale).

use std::collections::{BTreeMap, HashMap};

use biller_sim::CreditRecord;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::store::postgres::PgStore;
use crate::store::LedgerStore;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BookComparison {
    /// Confirmed (or settled, or returned after settlement) payments the
    /// biller credited exactly once, for
    /// the same amount.
    pub matched: u64,
    /// Confirmed here, never credited by the biller.
    pub missing_at_biller: Vec<String>,
    /// Credited by the biller, but not confirmed here (or not known here).
    pub missing_at_us: Vec<String>,
    /// Our references the biller credited more than once.
    pub double_credits: Vec<String>,
    pub amount_mismatches: Vec<String>,
    /// Billers whose posted payable differs from what they credited.
    pub posted_mismatches: Vec<String>,
}

impl BookComparison {
    pub fn agrees(&self) -> bool {
        self.missing_at_biller.is_empty()
            && self.missing_at_us.is_empty()
            && self.double_credits.is_empty()
            && self.amount_mismatches.is_empty()
            && self.posted_mismatches.is_empty()
    }
}

/// Compares every payment of `billers` with the biller's credits.
pub async fn compare(
    store: &PgStore,
    billers: &[&str],
    credits: &[CreditRecord],
) -> anyhow::Result<BookComparison> {
    let mut out = BookComparison::default();
    let mut by_ref: HashMap<&str, &CreditRecord> = HashMap::new();
    for c in credits {
        if by_ref.insert(c.our_reference.as_str(), c).is_some() {
            out.double_credits.push(c.our_reference.clone());
        }
    }
    let rows: Vec<(uuid::Uuid, String, Decimal, String, String)> = sqlx::query_as(
        "SELECT id, status, amount, biller_id, currency FROM payment_states WHERE biller_id = ANY($1)",
    )
    .bind(billers)
    .fetch_all(store.pool())
    .await?;
    // Every (biller, currency) with payments, credited or not.
    let mut credited_total: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (id, status, amount, biller, currency) in rows {
        credited_total
            .entry((biller.clone(), currency.trim().to_string()))
            .or_default();
        let id = id.to_string();
        let credit = by_ref.remove(id.as_str());
        let confirmed = matches!(status.as_str(), "CONFIRMED" | "SETTLED" | "RETURNED");
        match (confirmed, credit) {
            (true, Some(c)) if c.amount == amount => {
                out.matched += 1;
                *credited_total
                    .entry((biller, currency.trim().to_string()))
                    .or_default() += amount;
            }
            (true, Some(_)) => out.amount_mismatches.push(id),
            (true, None) => out.missing_at_biller.push(id),
            (false, Some(_)) => out.missing_at_us.push(id),
            (false, None) => {}
        }
    }
    out.missing_at_us
        .extend(by_ref.keys().map(|r| r.to_string()));
    for ((biller, currency), want) in credited_total {
        let code = format!("biller:{biller}:payable:{currency}");
        let posted = store
            .balance(&code)
            .await?
            // Credits to the payable come only from confirmations; its
            // debits are settlements and returns (what we paid and got back).
            .map(|b| b.posted_credits)
            .unwrap_or_default();
        if posted != want {
            out.posted_mismatches
                .push(format!("{code}: posted {posted}, biller credited {want}"));
        }
    }
    Ok(out)
}
