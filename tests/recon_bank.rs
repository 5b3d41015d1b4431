//! The bank statement (camt.053.001.08) reconciled against a real closed
//! settlement batch and a payment app's statement: the batch's payout and
//! the channel's funding match (the funding booked once), a wrong amount
//! is a settlement mismatch, a line nobody explains is unmatched, a
//! pending line is not reconciled.

mod common;

use billclear::domain::payment::{transition, PaymentStatus};
use billclear::domain::recon::breaks::{Action, Actor, BreakStatus, Proposal, ResolutionKind};
use billclear::domain::staff::StaffRole;
use billclear::reconcile::import::import_file;
use billclear::reconcile::run::{run_bank, RunOptions, BANK_SCOPE};
use billclear::settlement::close::{close_date, Closing, When};
use billclear::store::recon::{BreakFilter, ReconStore};
use billclear::store::{CloseOutcome, PaymentStore};
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
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let cutoff = DateTime::parse_from_rfc3339("2026-11-20T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut ids = Vec::new();
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
        ids.push(id);
    }
    let billers = app.store_billers().await;
    let closed = close_date(
        &*app.state.store,
        &billers,
        date,
        Some("sh-water"),
        When::AtCutoff,
        &app.state.config.settlement.debtor,
        cutoff + Duration::minutes(5),
    )
    .await
    .unwrap();
    let Closing::Closed(CloseOutcome::Closed(batch)) = &closed[0].1 else {
        panic!("{closed:?}")
    };
    // sh-water: 0.30 % min 0.50 max 8.00 → 0.50 + 3.00.
    assert_eq!(batch.totals.net().to_string(), "1096.50");
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
