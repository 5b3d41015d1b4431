//! A reconciliation as plain-text tables for a terminal: what `billclear
//! recon run` and the demo print.

use crate::domain::recon::matching::minor_in as money;
use crate::domain::recon::matching::Category;
use crate::reconcile::run::{BankSummary, PerCurrency, RunSummary};

/// Appends one formatted line to a `String`.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

/// Per biller: the run's counts and the files it covered; then the
/// breaks by category, totalled per currency.
pub fn summaries(summaries: &[RunSummary]) -> String {
    let mut out = String::new();
    say!(
        out,
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  files",
        "biller",
        "run",
        "ours",
        "theirs",
        "matched",
        "auto-ok",
        "auto-rej",
        "pending",
        "breaks"
    );
    for s in summaries {
        say!(
            out,
            "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  {}",
            s.biller_id,
            s.run_id,
            s.ours,
            s.theirs,
            s.matched.count + s.matched_within_tolerance.count,
            s.auto_confirmed.count,
            s.auto_rejected.count,
            s.pending.values().map(|t| t.count).sum::<u64>(),
            s.break_count(),
            if s.covered.is_empty() {
                "none of the date (absences prove nothing)".to_string()
            } else {
                s.covered.join(",")
            }
        );
    }
    let mut any = false;
    for c in Category::ALL {
        // Totals per currency: amounts of different currencies are never added.
        let mut per: std::collections::BTreeMap<&str, (u64, i64)> = Default::default();
        for s in summaries {
            if let Some(t) = s.breaks.get(c.as_str()) {
                let e = per.entry(s.currency.as_str()).or_default();
                e.0 += t.count;
                e.1 += t.amount_minor;
            }
        }
        for (currency, (n, amount)) in per.into_iter().filter(|(_, (n, _))| *n > 0) {
            if !any {
                say!(out, "\nbreaks by category:");
                any = true;
            }
            say!(
                out,
                "  {:<22} {:>7}  {:>14} {currency}",
                c.as_str(),
                n,
                money(amount, currency)
            );
        }
    }
    if !any {
        say!(out, "\nno breaks");
    }
    out
}

/// The bank's side of the day: statements, matches, balances explained
/// and the breaks left.
pub fn bank(b: &BankSummary) -> String {
    let mut out = String::new();
    let per = |t: &PerCurrency| -> String {
        if t.is_empty() {
            return "0".into();
        }
        t.iter()
            .map(|(c, t)| format!("{} ({} {c})", t.count, money(t.amount_minor, c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    say!(out,
        "\nbank {} (run {}): {} statement(s), balances proven on {}; {} booked entries, {} not booked; batch payouts matched {}; fundings matched {}, {} booked now",
        b.business_date,
        b.run_id,
        b.statements,
        b.balances_proven,
        b.lines,
        b.not_booked,
        per(&b.batches_matched),
        per(&b.fundings_matched),
        b.fundings_booked
    );
    say!(
        out,
        "  payouts due from {} through {}: {} batch(es), not paid by the bank: {}",
        b.payouts_due_from,
        b.business_date,
        b.batches_due,
        per(&b.batches_unpaid)
    );
    for p in &b.balances {
        let c = &p.currency;
        for a in &p.accounts {
            say!(
                out,
                "  account {}: bank closing balance {} {c} ({})",
                a.account,
                money(a.closing_minor, c),
                a.closing_date.map(|d| d.to_string()).unwrap_or_default()
            );
        }
        say!(out,
            "  {c}: bank {} beside bank:settlement:{c} {}; explained {} (brought forward {}, payouts in transit {} ({}), payout differences {}, unattributed entries {} ({}), later funding -{}, resolved breaks -{}); unexplained {}",
            money(p.bank_minor(), c),
            money(p.ledger_minor, c),
            money(p.explained_minor(), c),
            money(p.brought_forward_minor(), c),
            money(p.in_transit_minor, c),
            p.in_transit_count,
            money(p.payout_difference_minor, c),
            money(p.unattributed_minor, c),
            p.unattributed_count,
            money(p.later_funding_minor, c),
            money(p.resolutions_minor, c),
            money(p.unexplained_minor(), c),
        );
    }
    for (category, per_currency) in &b.breaks {
        for (c, t) in per_currency {
            say!(
                out,
                "  {:<22} {:>7}  {:>14} {c}",
                category,
                t.count,
                money(t.amount_minor, c)
            );
        }
    }
    out
}
