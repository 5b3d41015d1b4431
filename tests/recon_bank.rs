//! The bank statement (camt.053.001.08) reconciled against a real closed
//! settlement batch and a payment app's statement: the batch's payout and
//! the channel's funding match (the funding booked once), a wrong amount
//! is a settlement mismatch, a line nobody explains is unmatched, a
//! pending line is not reconciled. A batch due on a statement's date that
//! no booked debit paid is a settlement mismatch of that date.

mod common;

use billclear::domain::money::Currency;
use billclear::domain::payment::{transition, PaymentStatus};
use billclear::domain::recon::breaks::{Action, Actor, BreakStatus, Proposal, ResolutionKind};
use billclear::domain::recon::matching::Category;
use billclear::domain::staff::StaffRole;
use billclear::reconcile::import::{import_file, Imported};
use billclear::reconcile::run::{run_bank, BankSummary, RunOptions, Tally, BANK_SCOPE};
use billclear::settlement::close::{close_date, Closing, When};
use billclear::settlement::files::{render_pain001, BatchHeader};
use billclear::store::bank::BankStore;
use billclear::store::recon::{BreakFilter, BreakRow, ReconStore};
use billclear::store::{BatchRecord, CloseOutcome, LedgerStore, PaymentStore};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::TestApp;

#[tokio::test]
async fn the_bank_statement_matches_batches_and_funding_and_breaks_the_rest() {
    let app = TestApp::spawn().await;
    let (batch, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", batch.id.simple());
    let bank = Bank::new(app);

    // Day 1: the payout for the net, alipay funding what it owes.
    let s30 = spec(
        1,
        day(30),
        100_000_000,
        vec![
            payout(&e2e, 109_650, day(30), Some("BANKREF0001")),
            credit(110_000, day(30), Some("BANKREF0002"), "BCF-alipay-20261120"),
        ],
    );
    let imported = bank
        .import("good.xml", &camt053(std::slice::from_ref(&s30)))
        .await;
    assert_eq!(imported.business_date, day(30));
    let bank_before = bank.app.balance("bank:settlement:CNY").await;
    let s = bank.run(day(30)).await;
    assert_eq!(s.batches_matched["CNY"].count, 1);
    assert_eq!(s.fundings_matched["CNY"].count, 1);
    assert_eq!(s.fundings_booked, 1);
    assert!(s.breaks.is_empty(), "{:?}", s.breaks);
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    let bank_after = bank.app.balance("bank:settlement:CNY").await;
    assert_ne!(
        bank_before, bank_after,
        "the funding is booked to the bank account"
    );
    let receivable = bank.app.balance("channel:alipay:receivable:CNY").await;
    assert!(receivable.to_string().contains("1100.00"), "{receivable}");
    // Re-running books nothing twice.
    let again = bank.run(day(30)).await;
    assert_eq!(
        (again.fundings_matched["CNY"].count, again.fundings_booked),
        (1, 0)
    );
    assert_eq!(bank.app.count("channel_fundings").await, 1);

    // Day 2: the bank debits the batch again, a cent more, and someone
    // paid us with a reference nobody knows.
    let s01 = spec(
        2,
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        s30.closing_minor(),
        vec![
            payout(
                &e2e,
                109_651,
                NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                Some("BANKREF0101"),
            ),
            credit(
                4_200,
                NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                Some("BANKREF0102"),
                "refund from a supplier",
            ),
        ],
    );
    let day2 = bank.import("bad.xml", &camt053(&[s01])).await.business_date;
    let s = bank.run(day2).await;
    let cats: Vec<(&str, u64)> = s
        .breaks
        .iter()
        .map(|(k, v)| (k.as_str(), v["CNY"].count))
        .collect();
    assert_eq!(
        cats,
        vec![("settlement-mismatch", 1), ("unmatched-bank-line", 1)]
    );
    let breaks = bank.breaks(day2).await;
    let mismatch = breaks
        .iter()
        .find(|b| b.their_reference == batch.id.to_string())
        .unwrap();
    assert_eq!(
        (mismatch.our_amount_minor, mismatch.their_amount_minor),
        (Some(0), Some(-109651))
    );
    assert!(
        mismatch.subject.starts_with("bank-entry:"),
        "{}",
        mismatch.subject
    );
    // Both explained: the balance still matches once listed.
    assert!(s.balance_matches_ledger, "{:?}", s.balances);

    // Writing the 1096.51 off needs two people; it leaves the bank account.
    let ann = Actor {
        user: "ann".into(),
        role: StaffRole::Approver,
    };
    let bob = Actor {
        user: "bob".into(),
        role: StaffRole::Approver,
    };
    let propose = Action::Propose(Proposal {
        kind: ResolutionKind::WriteOff,
        maker: String::new(),
        connector: None,
        note: "paid twice, claimed back separately".into(),
    });
    bank.app
        .store
        .act_on_break(mismatch.id, &ann, &propose, Utc::now())
        .await
        .unwrap();
    let done = bank
        .app
        .store
        .act_on_break(mismatch.id, &bob, &Action::Approve, Utc::now())
        .await
        .unwrap();
    assert_eq!(done.status, BreakStatus::WrittenOff);
    let suspense = bank.app.balance("suspense:CNY").await;
    assert!(suspense.to_string().contains("1096.51"), "{suspense}");
    // The write-off is listed: the bank's balance is still explained.
    let s = bank.run(day2).await;
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    bank.app.assert_books_match().await;
    bank.app.finish().await;
}

/// sh-water's batch of 2026-11-20 (100.00 and 1000.00; sh-water takes
/// 0.30 % min 0.50 max 8.00, so 0.50 + 3.00: net 1096.50) and sh-gas's
/// batch of the same date with nothing in it (net 0), both closed at
/// 15:05 UTC.
async fn closed_batches(app: &TestApp) -> (BatchRecord, BatchRecord) {
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let cutoff = DateTime::parse_from_rfc3339("2026-11-20T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for amount in ["100.00", "1000.00"] {
        let id = app.pay("3100000011", amount).await;
        let mut from = PaymentStatus::Received;
        for to in [PaymentStatus::Submitted, PaymentStatus::Confirmed] {
            app.store
                .apply_transition(&transition(id, from, to, "test", Utc::now()).unwrap())
                .await
                .unwrap();
            from = to;
        }
        app.set_confirmed_at(id, cutoff - Duration::hours(1)).await;
    }
    let billers = app.store_billers().await;
    let mut batches = Vec::new();
    for biller in ["sh-water", "sh-gas"] {
        let closed = close_date(
            &*app.state.store,
            &billers,
            date,
            Some(biller),
            When::AtCutoff,
            &app.state.config.settlement.debtor,
            cutoff + Duration::minutes(5),
        )
        .await
        .unwrap();
        let Closing::Closed(CloseOutcome::Closed(batch)) = &closed[0].1 else {
            panic!("{closed:?}")
        };
        batches.push(batch.clone());
    }
    let gas = batches.pop().unwrap();
    let water = batches.pop().unwrap();
    assert_eq!(water.totals.net().to_string(), "1096.50");
    assert!(gas.totals.is_empty(), "{:?}", gas.totals);
    (water, gas)
}

/// The pain.001 the settlement consumer writes for a batch.
fn pain001(b: &BatchRecord) -> Result<String, billclear::settlement::files::FileError> {
    render_pain001(&BatchHeader {
        batch_id: b.id,
        biller_id: b.biller_id.clone(),
        biller_name: b.biller_name.clone(),
        business_date: b.business_date,
        currency: Currency::from_code(&b.currency).unwrap(),
        created_at: b.created_at,
        cutoff_at: b.cutoff_at,
        format: b.format,
        commission_rule: b.commission_rule.clone(),
        totals: b.totals,
        creditor: b.creditor.clone(),
        debtor: b.debtor.clone(),
    })
}

struct Bank {
    app: TestApp,
    dir: tempfile::TempDir,
    opts: RunOptions,
}

impl Bank {
    fn new(app: TestApp) -> Bank {
        let dir = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            dir: dir.path().join("recon"),
            grace: std::time::Duration::ZERO,
            sort_buffer: 1_000,
            run_by: "test".into(),
            file_routes: Default::default(),
        };
        Bank { app, dir, opts }
    }

    async fn import(&self, name: &str, xml: &str) -> Imported {
        self.try_import(name, xml)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    async fn run(&self, date: NaiveDate) -> BankSummary {
        let store: std::sync::Arc<dyn billclear::store::Store> = self.app.store.clone();
        run_bank(store, date, &self.opts, Utc::now())
            .await
            .unwrap()
            .expect("a statement of the date")
    }

    async fn breaks(&self, date: NaiveDate) -> Vec<BreakRow> {
        self.app
            .store
            .breaks(&BreakFilter {
                date: Some(date),
                scope: Some(BANK_SCOPE.into()),
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn tally(count: u64, amount_minor: i64) -> Tally {
    Tally {
        count,
        amount_minor,
    }
}

fn cny(count: u64, amount_minor: i64) -> billclear::reconcile::run::PerCurrency {
    [("CNY".to_string(), tally(count, amount_minor))].into()
}

#[tokio::test]
async fn a_batch_due_on_the_statement_date_that_the_bank_did_not_pay_is_a_settlement_mismatch() {
    let app = TestApp::spawn().await;
    let (water, gas) = closed_batches(&app).await;
    let e2e = format!("BCE{}", water.id.simple());
    // The pain.001 asks the bank to pay sh-water on the 21st; sh-gas has
    // nothing to pay and gets no pain.001, so nothing is expected of it.
    let xml = pain001(&water).unwrap();
    assert!(
        xml.contains("<ReqdExctnDt>2026-11-21</ReqdExctnDt>"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<EndToEndId>{e2e}</EndToEndId>")));
    assert!(matches!(
        pain001(&gas),
        Err(billclear::settlement::files::FileError::NotPayable { .. })
    ));
    let bank = Bank::new(app);

    // The statement of the 21st: alipay's funding, no debit for the batch.
    let funding = credit(110_000, day(21), Some("F20261121"), "BCF-alipay-20261120");
    let s21 = spec(21, day(21), 100_000_000, vec![funding]);
    let imported = bank
        .import("2026-11-21.xml", &camt053(std::slice::from_ref(&s21)))
        .await;
    assert_eq!(imported.business_date, day(21));
    let s = bank.run(day(21)).await;
    assert_eq!(s.payouts_due_from, day(21));
    assert_eq!(s.batches_due, 1, "sh-water's, not sh-gas's (net 0)");
    assert_eq!(s.batches_unpaid, cny(1, 109_650));
    assert!(s.batches_matched.is_empty());
    assert_eq!(s.fundings_matched["CNY"].count, 1);
    assert_eq!(
        s.breaks.into_iter().collect::<Vec<_>>(),
        vec![("settlement-mismatch".to_string(), cny(1, -109_650))]
    );
    assert_eq!(s.recorded.opened, 1);
    let found = bank.breaks(day(21)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let unpaid = &found[0];
    assert_eq!(unpaid.category, Category::SettlementMismatch);
    assert_eq!(unpaid.subject, format!("batch:{}", water.id));
    assert_eq!(unpaid.their_reference, water.id.to_string());
    assert_eq!(
        (unpaid.our_amount_minor, unpaid.their_amount_minor),
        (Some(-109_650), None)
    );
    assert_eq!(unpaid.currency, "CNY");
    assert_eq!(unpaid.status, BreakStatus::Open);
    for part in [
        "sh-water",
        "1096.50 CNY",
        "requested for execution on 2026-11-21",
        &format!("no booked debit with EndToEndId {e2e} on the statement of 2026-11-21"),
    ] {
        assert!(
            unpaid.detail.contains(part),
            "{part:?} in {}",
            unpaid.detail
        );
    }

    // A re-run finds the same break (same id, still open).
    let again = bank.run(day(21)).await;
    assert_eq!(again.batches_unpaid, cny(1, 109_650));
    assert_eq!(
        (
            again.recorded.opened,
            again.recorded.still_open,
            again.cleared
        ),
        (0, 1, 0)
    );
    let found = bank.breaks(day(21)).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id, found[0].status),
        (unpaid.id, BreakStatus::Open)
    );

    // The bank pays a day late: the 22nd's statement matches the payout
    // and does not judge the batch again.
    let s22 = spec(
        22,
        day(22),
        s21.closing_minor(),
        vec![payout(&e2e, 109_650, day(22), Some("P20261122"))],
    );
    bank.import("2026-11-22.xml", &camt053(&[s22])).await;
    let late = bank.run(day(22)).await;
    assert_eq!(late.payouts_due_from, day(22));
    assert_eq!(late.batches_matched, cny(1, 109_650));
    assert_eq!((late.batches_due, late.batches_unpaid.len()), (0, 0));
    assert!(late.breaks.is_empty(), "{:?}", late.breaks);
    assert!(bank.breaks(day(22)).await.is_empty());
    // The 21st's statement still did not pay it: its break stands (staff
    // explain the late payment), a re-run of the 21st keeps it.
    let rerun = bank.run(day(21)).await;
    assert_eq!((rerun.batches_unpaid["CNY"].count, rerun.cleared), (1, 0));
    let found = bank.breaks(day(21)).await;
    assert_eq!((found.len(), found[0].id), (1, unpaid.id));
    assert_eq!(found[0].status, BreakStatus::Open);
    bank.app.finish().await;
}

// ---------------------------------------------------------------------------
// Bank statements as banks really send them: each entry booked once,
// balances proven, foreign statements refused.

use billclear::demo::bank::{camt053, SpecEntry, StatementSpec};
use billclear::reconcile::import::ImportError;

const OURS: &str = "31050161373600000001";

fn payout(e2e: &str, amount_minor: i64, on: NaiveDate, bank_ref: Option<&str>) -> SpecEntry {
    SpecEntry {
        amount_minor,
        credit: false,
        booking_date: on,
        bank_reference: bank_ref.map(str::to_string),
        end_to_end_id: Some(e2e.to_string()),
        remittance: "billclear settlement".into(),
    }
}

fn credit(amount_minor: i64, on: NaiveDate, bank_ref: Option<&str>, remittance: &str) -> SpecEntry {
    SpecEntry {
        amount_minor,
        credit: true,
        booking_date: on,
        bank_reference: bank_ref.map(str::to_string),
        end_to_end_id: None,
        remittance: remittance.into(),
    }
}

/// Statement number `seq` of our account for `date`.
fn spec(seq: i64, date: NaiveDate, opening_minor: i64, entries: Vec<SpecEntry>) -> StatementSpec {
    StatementSpec {
        message_id: format!("MSG-{seq}"),
        statement_id: format!("{OURS}-{}", date.format("%Y%m%d")),
        sequence: Some(seq),
        account: OURS.into(),
        currency: Currency::CNY,
        opening_minor,
        opening_date: date.pred_opt().unwrap(),
        date,
        entries,
    }
}

impl Bank {
    async fn try_import(&self, name: &str, text: &str) -> Result<Imported, ImportError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        import_file(
            self.app.store.as_ref(),
            &self.opts.dir,
            &common::our_accounts(),
            "bank",
            &path,
            None,
            None,
            "test",
            Utc::now(),
        )
        .await
    }

    async fn counts(&self) -> (i64, i64, i64, i64) {
        (
            self.app.count("recon_files").await,
            self.app.count("bank_statements").await,
            self.app.count("bank_entries").await,
            self.app.count("channel_fundings").await,
        )
    }

    /// The bank's books as reconciliation left them, independent of ids:
    /// entries, fundings, payouts, open breaks, the bank account's balance.
    async fn books(&self) -> Vec<String> {
        let pool = self.app.store.pool();
        let mut out: Vec<String> = sqlx::query_scalar(
            "SELECT 'entry ' || identity || ' ' || amount_minor || ' ' || credit || ' ' || booking_date FROM bank_entries
             UNION ALL SELECT 'funding ' || channel_id || ' ' || business_date || ' ' || amount || ' ' || e.identity
               FROM channel_fundings f JOIN bank_entries e ON e.id = f.entry_id
             UNION ALL SELECT 'payout of a batch ' || e.identity FROM settlement_payouts p JOIN bank_entries e ON e.id = p.entry_id
             UNION ALL SELECT 'break ' || b.business_date || ' ' || b.category || ' ' || b.status || ' '
                   || coalesce(e.identity, b.subject) || ' ' || coalesce(b.our_amount_minor::text, '-') || ' ' || coalesce(b.their_amount_minor::text, '-')
               FROM recon_breaks b LEFT JOIN bank_entries e ON b.subject = 'bank-entry:' || e.id
              WHERE b.status IN ('open', 'investigating')",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        out.push(format!(
            "bank {}",
            self.app.balance("bank:settlement:CNY").await
        ));
        out.push(format!(
            "alipay {}",
            self.app.balance("channel:alipay:receivable:CNY").await
        ));
        out.sort();
        out
    }
}

fn refusal(e: ImportError) -> String {
    match e {
        ImportError::Refused { refusal, .. } => refusal.to_string(),
        other => panic!("not a refusal: {other}"),
    }
}

/// The 21st: sh-water's batch paid, alipay funding its statement of the
/// 20th in one transfer without a bank reference (recognised by its
/// position), and 2.50 of interest nobody explains.
fn day21(e2e: &str) -> StatementSpec {
    spec(
        330,
        day(21),
        100_000_000,
        vec![
            payout(e2e, 109_650, day(21), Some("P-0001")),
            credit(110_000, day(21), None, "alipay BCF-alipay-20261120"),
            credit(250, day(21), None, "interest"),
        ],
    )
}

#[tokio::test]
async fn a_statement_sent_again_or_repeated_in_a_later_file_books_nothing_twice() {
    let app = TestApp::spawn().await;
    let (water, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", water.id.simple());
    let bank = Bank::new(app);
    let s21 = day21(&e2e);

    let first = bank
        .import("s21.xml", &camt053(std::slice::from_ref(&s21)))
        .await;
    let c = first.bank.unwrap();
    assert_eq!(
        (c.statements, c.statements_new, c.balances_proven),
        (1, 1, 1)
    );
    assert_eq!(
        (c.entries, c.entries_booked, c.entries_already_known),
        (3, 3, 0)
    );
    let s = bank.run(day(21)).await;
    assert_eq!(s.fundings_booked, 1);
    assert_eq!(s.batches_matched["CNY"], tally(1, 109_650));
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    let books = bank.books().await;

    // The bank sends it again with only GrpHdr/MsgId changed.
    let mut again = s21.clone();
    again.message_id = "MSG-330-RESENT".into();
    let resent = bank.import("s21-again.xml", &camt053(&[again])).await;
    assert!(!resent.already, "other bytes: another file");
    let c = resent.bank.unwrap();
    assert_eq!(
        (c.statements_new, c.entries_booked, c.entries_already_known),
        (0, 0, 3)
    );
    // Then a file with that statement and the next one.
    let s22 = spec(
        331,
        day(22),
        s21.closing_minor(),
        vec![credit(500, day(22), Some("I-0002"), "interest")],
    );
    let both = bank
        .import("s21-s22.xml", &camt053(&[s21.clone(), s22.clone()]))
        .await;
    let c = both.bank.unwrap();
    assert_eq!((c.statements, c.statements_new), (2, 1));
    assert_eq!((c.entries_booked, c.entries_already_known), (1, 3));
    // The same bytes again: one file.
    let same = bank
        .import("s21-copy.xml", &camt053(std::slice::from_ref(&s21)))
        .await;
    assert!(same.already);
    assert_eq!(same.bank.unwrap().entries_booked, 0);

    // Runs of the 21st (again) and the 22nd book nothing twice.
    let s = bank.run(day(21)).await;
    assert_eq!((s.lines, s.fundings_booked), (3, 0));
    assert_eq!(s.batches_matched["CNY"], tally(1, 109_650));
    let s = bank.run(day(22)).await;
    assert_eq!(s.lines, 1);
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    let after = bank.books().await;
    let without_22: Vec<&String> = after
        .iter()
        .filter(|l| !l.contains("2026-11-22") && !l.starts_with("bank "))
        .collect();
    assert_eq!(
        without_22,
        books
            .iter()
            .filter(|l| !l.starts_with("bank "))
            .collect::<Vec<_>>(),
        "the 21st's books did not change"
    );
    assert_eq!(bank.app.count("channel_fundings").await, 1);
    assert_eq!(bank.app.count("settlement_payouts").await, 1);
    let bal = bank.app.balance("bank:settlement:CNY").await;
    // Funding 1100.00 in, the batch's net 1096.50 out: 3.50, once.
    assert!(bal.to_string().contains("Dr 1100.00 Cr 1096.50"), "{bal}");
    // Interest: one break per entry, not per file.
    let open = bank.breaks(day(21)).await;
    assert_eq!(
        open.iter()
            .filter(|b| b.category == Category::UnmatchedBankLine)
            .count(),
        1,
        "{open:?}"
    );
    let audit = bank.app.store.audit().await.unwrap();
    assert!(
        audit.balanced() && audit.payments_without_exactly_one_transfer == 0,
        "{audit:?}"
    );
    bank.app.finish().await;
}

#[tokio::test]
async fn a_corrected_copy_that_changes_a_booked_entry_is_refused_with_both_figures() {
    let app = TestApp::spawn().await;
    let (water, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", water.id.simple());
    let bank = Bank::new(app);
    bank.import("s21.xml", &camt053(&[day21(&e2e)])).await;
    let before = bank.counts().await;
    let books = bank.books().await;
    // The same statement, its payout a cent more (balances still add up).
    let mut corrected = day21(&e2e);
    corrected.message_id = "MSG-330-CORR".into();
    corrected.entries[0].amount_minor = 109_651;
    let why = refusal(
        bank.try_import("corrected.xml", &camt053(&[corrected]))
            .await
            .unwrap_err(),
    );
    assert!(why.contains("debit 1096.50 CNY"), "{why}");
    assert!(why.contains("debit 1096.51 CNY"), "{why}");
    assert_eq!(bank.counts().await, before, "nothing stored");
    assert_eq!(bank.books().await, books);
    // An entry without a bank reference (recognised by its position) too.
    let mut corrected = day21(&e2e);
    corrected.entries[1].amount_minor = 120_000;
    let why = refusal(
        bank.try_import("corrected2.xml", &camt053(&[corrected]))
            .await
            .unwrap_err(),
    );
    assert!(
        why.contains("credit 1100.00 CNY") && why.contains("credit 1200.00 CNY"),
        "{why}"
    );
    assert_eq!(bank.counts().await, before);
    // No stray copy is left in the file store either.
    let kept = std::fs::read_dir(bank.opts.dir.join("files"))
        .unwrap()
        .count();
    assert_eq!(kept, 1, "only the first statement's bytes are kept");
    bank.app.finish().await;
}

#[tokio::test]
async fn statements_of_other_accounts_currencies_or_with_balances_that_do_not_add_up_are_refused() {
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    let good = spec(
        1,
        day(21),
        0,
        vec![credit(1_000, day(21), Some("X1"), "interest")],
    );
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "another account",
            camt053(&[StatementSpec {
                account: "31050161373600009999".into(),
                ..good.clone()
            }]),
            vec!["3105************9999", "not one of ours"],
        ),
        (
            "our account in EUR",
            camt053(&[StatementSpec {
                currency: Currency::from_code("EUR").unwrap(),
                ..good.clone()
            }]),
            vec!["in EUR", "kept in CNY"],
        ),
        (
            "mixed currencies",
            camt053(std::slice::from_ref(&good)).replacen(
                "<Ntry><Amt Ccy=\"CNY\">",
                "<Ntry><Amt Ccy=\"USD\">",
                1,
            ),
            vec!["USD", "CNY"],
        ),
        (
            "balances that do not add up",
            camt053(std::slice::from_ref(&good)).replace(
                "<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">10.00</Amt>",
                "<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">10.01</Amt>",
            ),
            vec![
                "opening 0.00",
                "credits 10.00",
                "debits 0.00",
                "= 10.00",
                "closing balance is 10.01 CNY",
            ],
        ),
    ];
    for (what, text, says) in cases {
        let why = refusal(bank.try_import("x.xml", &text).await.unwrap_err());
        for part in says {
            assert!(why.contains(part), "{what}: {part:?} in {why}");
        }
        assert!(!why.contains("31050161373600009999"), "masked: {why}");
        assert_eq!(bank.counts().await, (0, 0, 0, 0), "{what}: nothing stored");
    }
    // A public-style EUR statement of a Dutch IBAN.
    let nl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bank/camt053_v02_nl_eur.xml"),
    )
    .unwrap();
    let why = refusal(bank.try_import("nl.xml", &nl).await.unwrap_err());
    assert!(
        why.contains("NL91**********4300") && why.contains("not one of ours"),
        "{why}"
    );
    assert_eq!(bank.counts().await, (0, 0, 0, 0));
    // The good statement itself goes in.
    bank.import("good.xml", &camt053(&[good])).await;
    assert_eq!(bank.counts().await, (1, 1, 1, 0));
    bank.app.finish().await;
}

#[tokio::test]
async fn a_missing_statement_number_is_one_statement_gap_and_the_balance_does_not_match() {
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    let s1 = spec(
        330,
        day(21),
        0,
        vec![credit(1_000, day(21), Some("X1"), "interest")],
    );
    // 331 never arrives; 332 opens where 331 closed.
    let s3 = spec(
        332,
        day(23),
        s1.closing_minor() + 700,
        vec![credit(200, day(23), Some("X3"), "interest")],
    );
    bank.import("s1.xml", &camt053(&[s1])).await;
    bank.import("s3.xml", &camt053(&[s3])).await;
    let s = bank.run(day(23)).await;
    assert_eq!(s.breaks["statement-gap"]["CNY"].count, 1, "{:?}", s.breaks);
    let gaps: Vec<BreakRow> = bank
        .breaks(day(23))
        .await
        .into_iter()
        .filter(|b| b.category == Category::StatementGap)
        .collect();
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0]
            .detail
            .contains("statement number 331 missing between 330 and 332"),
        "{}",
        gaps[0].detail
    );
    assert!(
        gaps[0].detail.contains("opening balance 17.00"),
        "{}",
        gaps[0].detail
    );
    // The 7.00 the missing statement moved is explained by nothing.
    assert!(!s.balance_matches_ledger);
    assert_eq!(s.balances[0].unexplained_minor(), 700);
    // Re-running finds the same break, once.
    bank.run(day(23)).await;
    assert_eq!(
        bank.breaks(day(23))
            .await
            .iter()
            .filter(|b| b.category == Category::StatementGap)
            .count(),
        1
    );
    bank.app.finish().await;
}

#[tokio::test]
async fn a_date_funded_in_two_transfers_is_funded_once_in_total_and_over_funding_is_a_break() {
    let app = TestApp::spawn().await;
    let (water, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", water.id.simple());
    let bank = Bank::new(app);
    let s1 = spec(
        1,
        day(21),
        0,
        vec![
            credit(60_000, day(21), Some("F1"), "BCF-alipay-20261120 part 1"),
            credit(50_000, day(21), Some("F2"), "BCF-alipay-20261120 part 2"),
            payout(&e2e, 109_650, day(21), Some("P1")),
        ],
    );
    bank.import("s1.xml", &camt053(std::slice::from_ref(&s1)))
        .await;
    let s = bank.run(day(21)).await;
    assert_eq!(s.fundings_booked, 2);
    assert_eq!(s.fundings_matched["CNY"], tally(2, 110_000));
    assert!(s.breaks.is_empty(), "{:?}", s.breaks);
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    let owed = bank.app.balance("channel:alipay:receivable:CNY").await;
    assert!(
        owed.to_string().contains("posted Dr 1100.00 Cr 1100.00"),
        "{owed}"
    );
    // A third transfer the next day: 1.00 too much.
    let s2 = spec(
        2,
        day(22),
        s1.closing_minor(),
        vec![credit(
            100,
            day(22),
            Some("F3"),
            "BCF-alipay-20261120 again",
        )],
    );
    bank.import("s2.xml", &camt053(&[s2])).await;
    let s = bank.run(day(22)).await;
    assert_eq!(s.fundings_booked, 1, "the money is there: booked");
    let over: Vec<BreakRow> = bank.breaks(day(22)).await;
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!(over[0].subject, "funding:alipay:20261120");
    assert_eq!(
        (over[0].our_amount_minor, over[0].their_amount_minor),
        (Some(110_000), Some(110_100))
    );
    assert!(
        over[0].detail.contains("over-funded by 1.00 CNY"),
        "{}",
        over[0].detail
    );
    assert!(s.balance_matches_ledger, "{:?}", s.balances);
    bank.app.finish().await;
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bank")
            .join(name),
    )
    .unwrap()
}

#[tokio::test]
async fn a_notification_then_the_statement_of_the_day_books_each_entry_once() {
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    // Entries 1 and 2 with their bank references, then entry 3 without one.
    let n = bank.import("n.xml", &fixture("camt054_v08.xml")).await;
    assert_eq!(n.bank.unwrap().entries_booked, 2);
    let n = bank
        .import("n3.xml", &fixture("camt054_noref_v08.xml"))
        .await;
    assert_eq!(n.bank.unwrap().entries_booked, 1);
    let s = bank.import("s.xml", &fixture("camt053_v08.xml")).await;
    let c = s.bank.unwrap();
    assert_eq!(
        (c.entries, c.entries_booked, c.entries_already_known),
        (3, 0, 3)
    );
    assert_eq!(c.entries_pending, 1);
    // The other versions of the same statement: nothing new either.
    for v in ["02", "03", "04", "06"] {
        let again = bank
            .import(&format!("s{v}.xml"), &fixture(&format!("camt053_v{v}.xml")))
            .await;
        let c = again.bank.unwrap();
        assert_eq!((c.entries_booked, c.entries_already_known), (0, 3), "v{v}");
    }
    assert_eq!(bank.app.count("bank_entries").await, 3);
    bank.app.finish().await;
}

#[tokio::test]
async fn mt940_and_camt053_of_the_same_day_give_the_same_result() {
    let mut results = Vec::new();
    for file in ["mt940.sta", "camt053_v08.xml"] {
        let app = TestApp::spawn().await;
        let bank = Bank::new(app);
        let i = bank.import(file, &fixture(file)).await;
        let c = i.bank.unwrap();
        assert_eq!((c.balances_proven, c.entries_booked), (1, 3), "{file}");
        let s = bank.run(day(30)).await;
        let breaks: Vec<(String, Option<i64>, Option<i64>)> = bank
            .breaks(day(30))
            .await
            .into_iter()
            .map(|b| {
                (
                    b.category.as_str().to_string(),
                    b.our_amount_minor,
                    b.their_amount_minor,
                )
            })
            .collect();
        let entries: Vec<(i64, bool, String, Option<String>)> = sqlx::query_as(
            "SELECT amount_minor, credit, booking_date::text, bank_reference FROM bank_entries ORDER BY amount_minor",
        )
        .fetch_all(bank.app.store.pool())
        .await
        .unwrap();
        results.push((s.lines, s.balances.clone(), breaks, entries));
        bank.app.finish().await;
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].0, 3);

    // A bank that sends both (a format change, a second channel): the
    // camt.053 of the day books nothing the MT940 booked, the entry
    // without a reference included (same statement number and position
    // among booked entries), the pending entry not counted.
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    bank.import("mt940.sta", &fixture("mt940.sta")).await;
    for v in ["v08", "v04"] {
        let c = bank
            .import(
                &format!("camt053_{v}.xml"),
                &fixture(&format!("camt053_{v}.xml")),
            )
            .await
            .bank
            .unwrap();
        assert_eq!(
            (c.statements_new, c.entries_booked, c.entries_already_known),
            (0, 0, 3),
            "{v}"
        );
    }
    assert_eq!(bank.app.count("bank_entries").await, 3);
    bank.app.finish().await;
}

/// Importing a set of statements in any order, a subset then the rest, or
/// with repeats, leaves the same books as importing each once.
#[tokio::test]
async fn any_order_subset_or_repeat_of_statements_leaves_the_same_books() {
    // A small seeded generator (no dependency): orders and repeats.
    let mut seed: u64 = 0x5eed_2026_1130;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut reference: Option<Vec<String>> = None;
    for round in 0..5 {
        let app = TestApp::spawn().await;
        let (water, _) = closed_batches(&app).await;
        let e2e = format!("BCE{}", water.id.simple());
        let bank = Bank::new(app);
        let s21 = day21(&e2e);
        let s22 = spec(
            331,
            day(22),
            s21.closing_minor(),
            vec![credit(500, day(22), Some("I-2"), "interest")],
        );
        let s23 = spec(
            332,
            day(23),
            s21.closing_minor() + 500,
            vec![credit(100, day(23), None, "BCF-alipay-20261120 rest")],
        );
        let mut files: Vec<String> = vec![
            camt053(std::slice::from_ref(&s21)),
            camt053(std::slice::from_ref(&s22)),
            camt053(std::slice::from_ref(&s23)),
        ];
        if round > 0 {
            // Repeats, combined files and re-sends, in a shuffled order.
            let mut resent = s21.clone();
            resent.message_id = format!("RESENT-{round}");
            files.push(camt053(&[resent]));
            files.push(camt053(&[s22.clone(), s23.clone()]));
            files.push(camt053(&[s21.clone(), s22.clone()]));
            for i in (1..files.len()).rev() {
                files.swap(i, next(i + 1));
            }
            files.truncate(3 + next(4));
            // Whatever was cut, each statement arrives at least once.
            for s in [&s21, &s22, &s23] {
                files.push(camt053(std::slice::from_ref(s)));
            }
        }
        for (i, f) in files.iter().enumerate() {
            bank.import(&format!("f{i}.xml"), f).await;
            // Runs in between (subset then rest) must not change the end.
            if next(2) == 0 {
                for d in [21, 22, 23] {
                    if bank.app.store.bank_activity_on(day(d)).await.unwrap() {
                        bank.run(day(d)).await;
                    }
                }
            }
        }
        for d in [21, 22, 23] {
            bank.run(day(d)).await;
        }
        let books = bank.books().await;
        match &reference {
            None => reference = Some(books),
            Some(r) => assert_eq!(&books, r, "round {round}"),
        }
        bank.app.finish().await;
    }
}

/// The day's report (all billers) carries the bank: its rows per currency,
/// its breaks (a statement gap among them) and the balances beside the
/// ledger's, in the CSVs and the workbook.
#[tokio::test]
async fn the_days_report_shows_bank_breaks_and_balances_with_their_currency() {
    let app = TestApp::spawn().await;
    let mut config = (*app.state.config).clone();
    let bank = Bank::new(app);
    config.recon.dir = bank.opts.dir.clone();
    let s1 = spec(
        330,
        day(21),
        0,
        vec![credit(1_000, day(21), Some("X1"), "interest")],
    );
    let s3 = spec(
        332,
        day(23),
        s1.closing_minor(),
        vec![credit(250, day(23), Some("X3"), "interest")],
    );
    bank.import("s1.xml", &camt053(&[s1])).await;
    bank.import("s3.xml", &camt053(&[s3])).await;
    let store: std::sync::Arc<dyn billclear::store::Store> = bank.app.store.clone();
    let (_, summary, reports) =
        billclear::reconcile::day::run_date(store, &config, day(23), None, "test", false)
            .await
            .unwrap();
    let summary = summary.expect("the bank is reconciled with all billers");
    assert_eq!(summary.breaks["statement-gap"]["CNY"].count, 1);
    let read = |suffix: &str| {
        let p = reports
            .iter()
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {reports:?}"));
        std::fs::read_to_string(p).unwrap()
    };
    let breaks = read("-breaks.csv");
    assert!(
        breaks
            .lines()
            .any(|l| l.contains(",bank,statement-gap,") && l.contains(",CNY,")),
        "{breaks}"
    );
    assert!(
        breaks
            .lines()
            .any(|l| l.contains(",bank,unmatched-bank-line,") && l.contains(",2.50,CNY,")),
        "{breaks}"
    );
    let summary_csv = read("-summary.csv");
    assert!(
        summary_csv.contains("bank,statement-gap,1,"),
        "{summary_csv}"
    );
    let balances = read("-balances.csv");
    assert!(
        balances.contains("3105************0001,bank-closing-balance (2026-11-23),12.50,CNY"),
        "{balances}"
    );
    assert!(
        balances.contains("bank:settlement:CNY,ledger-balance,0.00,CNY"),
        "{balances}"
    );
    assert!(
        balances.contains("unexplained (a break when not zero),0.00,CNY"),
        "{balances}"
    );
    assert!(
        !balances.contains("31050161373600000001"),
        "masked: {balances}"
    );
    let xlsx = reports
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "xlsx"))
        .unwrap();
    assert!(std::fs::read(xlsx).unwrap().len() > 1000);
    bank.app.finish().await;
}

/// The statement as a camt.054 notification (no balances) of the same entries.
fn camt054(s: &StatementSpec) -> String {
    let x = camt053(std::slice::from_ref(s))
        .replace("camt.053.001.08", "camt.054.001.08")
        .replace("BkToCstmrStmt>", "BkToCstmrDbtCdtNtfctn>")
        .replace("<Stmt>", "<Ntfctn>")
        .replace("</Stmt>", "</Ntfctn>")
        .replace("<ElctrncSeqNb>", "<ElctrncSeqNb>9")
        .replace(
            &format!("<Id>{}</Id>", s.statement_id),
            &format!("<Id>NTF-{}</Id>", s.message_id),
        );
    let mut out = String::new();
    let mut rest = x.as_str();
    while let Some(a) = rest.find("<Bal>") {
        out.push_str(&rest[..a]);
        let b = rest[a..].find("</Bal>").unwrap() + a + "</Bal>".len();
        rest = &rest[b..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn two_notifications_of_identical_transfers_are_two_entries_and_the_statement_adds_none() {
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    let part = credit(55_000, day(21), None, "BCF-alipay-20261120 part");
    let mut n1 = spec(1, day(21), 0, vec![part.clone()]);
    n1.message_id = "N1".into();
    let mut n2 = n1.clone();
    n2.message_id = "N2".into();
    n2.sequence = Some(2);
    for (name, n) in [("n1.xml", &n1), ("n2.xml", &n2)] {
        let c = bank.import(name, &camt054(n)).await.bank.unwrap();
        assert_eq!(
            c.entries_booked, 1,
            "{name}: another transfer, not a repeat"
        );
    }
    // A notification sent again is the same entry.
    let again = bank
        .import("n1-again.xml", &format!("{}\n", camt054(&n1)))
        .await;
    assert_eq!(again.bank.unwrap().entries_already_known, 1);
    // The day's statement lists both: both known, nothing booked.
    let s = spec(1, day(21), 0, vec![part.clone(), part]);
    let c = bank.import("s.xml", &camt053(&[s])).await.bank.unwrap();
    assert_eq!((c.entries_booked, c.entries_already_known), (0, 2));
    assert_eq!(bank.app.count("bank_entries").await, 2);
    bank.app.finish().await;
}

#[tokio::test]
async fn a_bank_reference_used_again_for_another_entry_is_refused_not_merged() {
    let app = TestApp::spawn().await;
    let bank = Bank::new(app);
    let s1 = spec(
        1,
        day(21),
        0,
        vec![credit(10_000, day(21), Some("0001"), "interest")],
    );
    bank.import("s1.xml", &camt053(std::slice::from_ref(&s1)))
        .await;
    // The next day the bank's counter starts again at 0001, same amount.
    let s2 = spec(
        2,
        day(22),
        s1.closing_minor(),
        vec![credit(10_000, day(22), Some("0001"), "interest")],
    );
    let why = refusal(
        bank.try_import("s2.xml", &camt053(&[s2]))
            .await
            .unwrap_err(),
    );
    assert!(
        why.contains("on 2026-11-21") && why.contains("on 2026-11-22"),
        "{why}"
    );
    // Within one statement, a reference given twice identifies neither:
    // both entries are kept (by position).
    let s3 = spec(
        3,
        day(23),
        s1.closing_minor(),
        vec![
            credit(10_000, day(23), Some("0007"), "interest"),
            credit(10_000, day(23), Some("0007"), "interest"),
        ],
    );
    let c = bank.import("s3.xml", &camt053(&[s3])).await.bank.unwrap();
    assert_eq!(c.entries_booked, 2);
    bank.app.finish().await;
}

#[tokio::test]
async fn a_notification_alone_judges_no_payout_and_no_balance() {
    let app = TestApp::spawn().await;
    let (water, _) = closed_batches(&app).await;
    let bank = Bank::new(app);
    let _ = water;
    // The 21st (sh-water's payout is due): only a notification of alipay's
    // funding. Nothing can be said of the payout or the balance yet.
    let n = spec(
        1,
        day(21),
        0,
        vec![credit(110_000, day(21), Some("F1"), "BCF-alipay-20261120")],
    );
    bank.import("n.xml", &camt054(&n)).await;
    let s = bank.run(day(21)).await;
    assert_eq!((s.statements, s.batches_due), (0, 0));
    assert!(s.batches_unpaid.is_empty() && s.balances.is_empty());
    assert!(s.breaks.is_empty(), "{:?}", s.breaks);
    assert_eq!(s.fundings_booked, 1);
    bank.app.finish().await;
}

/// Funding booked before bank entries existed named its bank line
/// `bank:<reference>`: that line, imported again, is not booked twice.
#[tokio::test]
async fn funding_booked_before_the_upgrade_is_not_booked_again() {
    let app = TestApp::spawn().await;
    closed_batches(&app).await;
    let bank = Bank::new(app);
    let s1 = spec(
        1,
        day(21),
        0,
        vec![credit(
            110_000,
            day(21),
            Some("F-OLD"),
            "BCF-alipay-20261120",
        )],
    );
    let file = bank.import("s1.xml", &camt053(&[s1])).await.id;
    sqlx::query(
        "INSERT INTO channel_fundings (subject, channel_id, business_date, amount, currency, file_id, journal_id, recorded_at)
         VALUES ('bank:F-OLD', 'alipay', '2026-11-20', 1100.00, 'CNY', $1, gen_random_uuid(), now())",
    )
    .bind(file)
    .execute(bank.app.store.pool())
    .await
    .unwrap();
    let s = bank.run(day(21)).await;
    assert_eq!(s.fundings_booked, 0);
    assert_eq!(bank.app.count("channel_fundings").await, 1);
    bank.app.finish().await;
}
