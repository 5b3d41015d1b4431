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
use billclear::store::recon::{BreakFilter, BreakRow, ReconStore};
use billclear::store::{BatchRecord, CloseOutcome, PaymentStore};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::TestApp;

const FIXTURE: &str = include_str!("fixtures/camt053/statement_v08.xml");

fn statement(e2e: &str, debit: &str, credit: &str, remittance: &str, booked: &str) -> String {
    let s = FIXTURE
        .replace("BCE01a227b7d62077af9deb9cd539c11085", e2e)
        .replace("17165.04", debit)
        .replace("14699.95", credit)
        .replace("alipay funding 2026-11-29", remittance)
        .replace("2026-11-30", booked);
    assert!(s.contains(e2e) && s.contains(remittance));
    s
}

#[tokio::test]
async fn the_bank_statement_matches_batches_and_funding_and_breaks_the_rest() {
    let app = TestApp::spawn().await;
    let (batch, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", batch.id.simple());

    let dir = tempfile::tempdir().unwrap();
    let recon_dir = dir.path().join("recon");
    let opts = RunOptions {
        dir: recon_dir.clone(),
        grace: std::time::Duration::ZERO,
        sort_buffer: 1_000,
        run_by: "test".into(),
    };
    let store: std::sync::Arc<dyn billclear::store::Store> = app.store.clone();

    // Day 1: the payout for the net, alipay funding what it owes.
    let good = dir.path().join("good.xml");
    std::fs::write(
        &good,
        statement(
            &e2e,
            "1096.50",
            "1100.00",
            "BCF-alipay-20261120",
            "2026-11-30",
        ),
    )
    .unwrap();
    let imported = import_file(
        app.store.as_ref(),
        &recon_dir,
        "bank",
        &good,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    let day1 = imported.business_date;
    assert_eq!(day1, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    let bank_before = app.balance("bank:settlement:CNY").await;
    let s = run_bank(store.clone(), day1, &opts, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.batches_matched.count, 1);
    assert_eq!(s.fundings_matched.count, 1);
    assert_eq!(s.fundings_booked, 1);
    assert_eq!(s.not_booked, 1, "the pending line is not reconciled");
    assert!(s.breaks.is_empty(), "{:?}", s.breaks);
    let bank_after = app.balance("bank:settlement:CNY").await;
    assert_ne!(
        bank_before, bank_after,
        "the funding is booked to the bank account"
    );
    let receivable = app.balance("channel:alipay:receivable:CNY").await;
    assert!(receivable.to_string().contains("1100.00"), "{receivable}");
    // Re-running books nothing twice.
    let again = run_bank(store.clone(), day1, &opts, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.fundings_matched.count, again.fundings_booked),
        (1, 0)
    );
    assert_eq!(app.count("channel_fundings").await, 1);

    // Day 2: the bank debited a cent more than the net, and someone paid
    // us with a reference nobody knows.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        statement(
            &e2e,
            "1096.51",
            "42.00",
            "refund from a supplier",
            "2026-12-01",
        )
        .replace("BANKREF0001", "BANKREF0101")
        .replace("BANKREF0002", "BANKREF0102"),
    )
    .unwrap();
    let day2 = import_file(
        app.store.as_ref(),
        &recon_dir,
        "bank",
        &bad,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap()
    .business_date;
    let s = run_bank(store.clone(), day2, &opts, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let cats: Vec<(&str, u64)> = s
        .breaks
        .iter()
        .map(|(k, v)| (k.as_str(), v.count))
        .collect();
    assert_eq!(
        cats,
        vec![("settlement-mismatch", 1), ("unmatched-bank-line", 1)]
    );
    let breaks = app
        .store
        .breaks(&BreakFilter {
            date: Some(day2),
            scope: Some(BANK_SCOPE.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mismatch = breaks
        .iter()
        .find(|b| b.their_reference == batch.id.to_string())
        .unwrap();
    assert_eq!(
        (mismatch.our_amount_minor, mismatch.their_amount_minor),
        (Some(-109650), Some(-109651))
    );
    assert_eq!(mismatch.subject, "bank:BANKREF0101");

    // Writing the cent off needs two people; it leaves the bank account.
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
        note: "bank fee, claimed back separately".into(),
    });
    app.store
        .act_on_break(mismatch.id, &ann, &propose, Utc::now())
        .await
        .unwrap();
    let done = app
        .store
        .act_on_break(mismatch.id, &bob, &Action::Approve, Utc::now())
        .await
        .unwrap();
    assert_eq!(done.status, BreakStatus::WrittenOff);
    let suspense = app.balance("suspense:CNY").await;
    assert!(suspense.to_string().contains("0.01"), "{suspense}");
    app.assert_books_match().await;
    app.finish().await;
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

/// A booked entry of a statement.
fn entry(day: &str, debit: bool, amount: &str, bank_ref: &str, refs: &str) -> String {
    format!(
        "<Ntry><Amt Ccy=\"CNY\">{amount}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
         <BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{bank_ref}</AcctSvcrRef><BkTxCd/>\
         <NtryDtls><TxDtls>{refs}</TxDtls></NtryDtls></Ntry>",
        if debit { "DBIT" } else { "CRDT" }
    )
}

/// The bank's statement of `day` (its own statement id, so each date is
/// its own file and a corrected statement of a date replaces it): alipay
/// funding its statement of the 20th (1100.00), and the batch's payout
/// when `payout` names one.
fn statement_of(day: &str, payout: Option<(&str, &str)>) -> String {
    let compact = day.replace('-', "");
    let mut entries = vec![entry(
        day,
        false,
        "1100.00",
        &format!("F{compact}"),
        "<RmtInf><Ustrd>BCF-alipay-20261120</Ustrd></RmtInf>",
    )];
    if let Some((e2e, amount)) = payout {
        entries.push(entry(
            day,
            true,
            amount,
            &format!("P{compact}"),
            &format!("<Refs><EndToEndId>{e2e}</EndToEndId></Refs>"),
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\
         <GrpHdr><MsgId>STMT-{compact}</MsgId><CreDtTm>{day}T20:00:00</CreDtTm></GrpHdr>\
         <Stmt><Id>31050161373600000001-{compact}</Id><CreDtTm>{day}T20:00:00</CreDtTm>\
         <Acct><Id><Othr><Id>31050161373600000001</Id></Othr></Id><Ccy>CNY</Ccy></Acct>\
         <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">1000000.00</Amt>\
         <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>{}</Stmt>\
         </BkToCstmrStmt></Document>\n",
        entries.join("")
    )
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
        };
        Bank { app, dir, opts }
    }

    async fn import(&self, name: &str, xml: &str) -> Imported {
        let path = self.dir.path().join(name);
        std::fs::write(&path, xml).unwrap();
        import_file(
            self.app.store.as_ref(),
            &self.opts.dir,
            "bank",
            &path,
            None,
            None,
            "test",
            Utc::now(),
        )
        .await
        .unwrap()
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
    let imported = bank
        .import("2026-11-21.xml", &statement_of("2026-11-21", None))
        .await;
    assert_eq!(imported.business_date, day(21));
    let s = bank.run(day(21)).await;
    assert_eq!(s.payouts_due_from, day(21));
    assert_eq!(s.batches_due, 1, "sh-water's, not sh-gas's (net 0)");
    assert_eq!(s.batches_unpaid, tally(1, 109_650));
    assert_eq!(s.batches_matched, Tally::default());
    assert_eq!(s.fundings_matched.count, 1);
    assert_eq!(
        s.breaks.into_iter().collect::<Vec<_>>(),
        vec![("settlement-mismatch".to_string(), tally(1, -109_650))]
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
    assert_eq!(again.batches_unpaid, tally(1, 109_650));
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
    bank.import(
        "2026-11-22.xml",
        &statement_of("2026-11-22", Some((&e2e, "1096.50"))),
    )
    .await;
    let late = bank.run(day(22)).await;
    assert_eq!(late.payouts_due_from, day(22));
    assert_eq!(late.batches_matched, tally(1, 109_650));
    assert_eq!((late.batches_due, late.batches_unpaid.count), (0, 0));
    assert!(late.breaks.is_empty(), "{:?}", late.breaks);
    assert!(bank.breaks(day(22)).await.is_empty());
    // The 21st's statement still did not pay it: its break stands (staff
    // explain the late payment), a re-run of the 21st keeps it.
    let rerun = bank.run(day(21)).await;
    assert_eq!((rerun.batches_unpaid.count, rerun.cleared), (1, 0));
    let found = bank.breaks(day(21)).await;
    assert_eq!((found.len(), found[0].id), (1, unpaid.id));
    assert_eq!(found[0].status, BreakStatus::Open);
    bank.app.finish().await;
}

#[tokio::test]
async fn a_corrected_statement_showing_the_payout_clears_the_unpaid_batch() {
    let app = TestApp::spawn().await;
    let (water, _) = closed_batches(&app).await;
    let e2e = format!("BCE{}", water.id.simple());
    let bank = Bank::new(app);

    bank.import("first.xml", &statement_of("2026-11-21", None))
        .await;
    let s = bank.run(day(21)).await;
    assert_eq!(s.batches_unpaid, tally(1, 109_650));
    let unpaid = bank.breaks(day(21)).await;
    assert_eq!(unpaid.len(), 1);
    assert_eq!(unpaid[0].subject, format!("batch:{}", water.id));

    // The bank sends the statement of the 21st again, with the payout.
    let corrected = bank
        .import(
            "corrected.xml",
            &statement_of("2026-11-21", Some((&e2e, "1096.50"))),
        )
        .await;
    assert!(corrected.replaced.is_some(), "{corrected:?}");
    let s = bank.run(day(21)).await;
    assert_eq!(s.batches_matched, tally(1, 109_650));
    assert_eq!((s.batches_due, s.batches_unpaid.count), (1, 0));
    assert!(s.breaks.is_empty(), "{:?}", s.breaks);
    assert_eq!(s.cleared, 1);
    let after = bank.breaks(day(21)).await;
    assert_eq!(after.len(), 1, "a break is never deleted");
    assert_eq!(after[0].id, unpaid[0].id);
    assert_eq!(after[0].status, BreakStatus::Resolved);
    assert_eq!(after[0].resolution.as_deref(), Some("cleared"));
    bank.app.finish().await;
}
