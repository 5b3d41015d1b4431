//! Reconciliation against real PostgreSQL: a water confirmation file
//! written by the simulator's own writer, imported (twice, and a broken
//! one), reconciled; every break category the biller file can show;
//! automatic decisions; re-runs; maker-checker.

mod common;

use std::str::FromStr;

use billclear::domain::ids::PaymentId;
use billclear::domain::payment::{transition, PaymentStatus};
use billclear::domain::recon::breaks::{Action, Actor, BreakStatus, Proposal, ResolutionKind};
use billclear::domain::recon::FileKind;
use billclear::domain::staff::StaffRole;
use billclear::reconcile::import::{import_file, ImportError};
use billclear::reconcile::run::{run_biller, RunOptions};
use billclear::store::recon::{BreakFilter, ReconStore};
use billclear::store::PaymentStore;
use biller_connectors::sim::{confirmation_csv, CreditRecord};
use chrono::{Days, FixedOffset, TimeZone, Utc};
use common::TestApp;
use rust_decimal::Decimal;

async fn move_to(app: &TestApp, id: PaymentId, path: &[PaymentStatus]) {
    let mut from = PaymentStatus::Received;
    for to in path {
        let t = transition(id, from, *to, "test", Utc::now()).unwrap();
        app.store.apply_transition(&t).await.unwrap();
        from = *to;
    }
}

fn credit(our: &str, receipt: &str, amount: &str, at: chrono::DateTime<Utc>) -> CreditRecord {
    CreditRecord {
        our_reference: our.into(),
        biller_reference: receipt.into(),
        biller_id: "sh-water".into(),
        account_number: "3100000011".into(),
        amount: Decimal::from_str(amount).unwrap(),
        currency: "CNY".into(),
        bill_reference: None,
        credited_at: at,
    }
}

#[tokio::test]
async fn a_day_of_water_payments_reconciles_into_every_break_category() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    // Yesterday in Shanghai: its grace period (0 h here) is over.
    let date = Utc::now().with_timezone(&shanghai).date_naive() - Days::new(1);
    let noon = shanghai
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);

    use PaymentStatus::*;
    let matched = app.pay("3100000011", "10.00").await;
    let unknown_credited = app.pay("3100000011", "11.00").await;
    let unknown_absent = app.pay("3100000011", "12.00").await;
    let missing_at_biller = app.pay("3100000011", "13.00").await;
    let amount_mismatch = app.pay("3100000011", "14.00").await;
    let duplicated = app.pay("3100000011", "15.00").await;
    let rejected_but_credited = app.pay("3100000011", "16.00").await;
    move_to(&app, matched, &[Submitted, Confirmed]).await;
    move_to(&app, unknown_credited, &[Submitted, Unknown]).await;
    move_to(&app, unknown_absent, &[Submitted, Unknown]).await;
    move_to(&app, missing_at_biller, &[Submitted, Confirmed]).await;
    move_to(&app, amount_mismatch, &[Submitted, Confirmed]).await;
    move_to(&app, duplicated, &[Submitted, Confirmed]).await;
    move_to(&app, rejected_but_credited, &[Submitted, Rejected]).await;
    // All of yesterday noon, sent direct.
    sqlx::query("UPDATE payments SET created_at = $1, connector_id = 'water-direct'")
        .bind(noon)
        .execute(app.store.pool())
        .await
        .unwrap();

    let s = |id: PaymentId| id.to_string();
    let credits = vec![
        credit(&s(matched), "W1", "10.00", noon),
        credit(&s(unknown_credited), "W2", "11.00", noon),
        credit(&s(amount_mismatch), "W4", "14.50", noon),
        credit(&s(duplicated), "W5", "15.00", noon),
        credit(&s(duplicated), "W6", "15.00", noon),
        credit(&s(rejected_but_credited), "W7", "16.00", noon),
        credit("0190aaaa-0000-7000-8000-000000000000", "W8", "17.00", noon),
    ];
    let file = dir.path().join("sh-water-confirmation.csv");
    std::fs::write(
        &file,
        confirmation_csv(&credits, "sh-water", date, shanghai),
    )
    .unwrap();
    let recon_dir = dir.path().join("recon");

    // A truncated file is refused whole: nothing recorded, nothing kept.
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, &text[..text.rfind("TRAILER").unwrap()]).unwrap();
    let err = import_file(
        app.store.as_ref(),
        &recon_dir,
        "sh-water",
        &broken,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImportError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("line"), "names the line: {err}");
    assert_eq!(app.count("recon_files").await, 0);

    // The file imported twice is one file.
    let first = import_file(
        app.store.as_ref(),
        &recon_dir,
        "sh-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(first.kind, FileKind::WaterCsv);
    assert_eq!(first.records, 7);
    assert!(!first.already);
    let again = import_file(
        app.store.as_ref(),
        &recon_dir,
        "sh-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(again.already);
    assert_eq!(again.id, first.id);
    assert_eq!(app.count("recon_files").await, 1);
    // Another biller's file under the wrong source is refused.
    let err = import_file(
        app.store.as_ref(),
        &recon_dir,
        "pudong-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("sh-water"), "{err}");

    let billers = app.store_billers().await;
    let water = billers
        .iter()
        .find(|b| b.id.as_str() == "sh-water")
        .unwrap();
    let opts = RunOptions {
        dir: recon_dir.clone(),
        grace: std::time::Duration::ZERO,
        sort_buffer: 2, // forces spilling even on a tiny day
        run_by: "test".into(),
    };
    let store: std::sync::Arc<dyn ReconStore> = app.store.clone();
    let summary = run_biller(store.clone(), water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(summary.ours, 7);
    assert_eq!(summary.theirs, 7);
    assert_eq!(summary.matched.count, 1);
    assert_eq!(summary.auto_confirmed.count, 1);
    assert_eq!(summary.auto_rejected.count, 1);
    let cats: Vec<(&str, u64)> = summary
        .breaks
        .iter()
        .map(|(k, v)| (k.as_str(), v.count))
        .collect();
    assert_eq!(
        cats,
        vec![
            ("amount-mismatch", 1),
            ("duplicate-at-biller", 1),
            ("missing-at-biller", 1),
            ("missing-at-us", 2),
        ]
    );
    // The automatic decisions moved the payments, with their evidence.
    assert_eq!(app.status(unknown_credited).await, Confirmed);
    assert_eq!(app.status(unknown_absent).await, Rejected);
    assert_eq!(app.count("recon_decisions").await, 2);
    let events = app.store.payment_events(unknown_credited).await.unwrap();
    assert!(
        events.last().unwrap().reason.contains("water-csv"),
        "the evidence names the file: {events:?}"
    );

    // Re-running the date finds the same breaks (same ids), decides nothing again.
    let before = app
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.len(), 5);
    let rerun = run_biller(store.clone(), water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(rerun.breaks, summary.breaks);
    assert_eq!(rerun.recorded.opened, 0);
    assert_eq!(rerun.recorded.still_open, 5);
    let after = app
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|b| b.id).collect::<Vec<_>>(),
        after.iter().map(|b| b.id).collect::<Vec<_>>()
    );
    assert_eq!(app.count("recon_decisions").await, 2);

    // Maker-checker: a write-off waits for a different approver.
    let ann = Actor {
        user: "ann".into(),
        role: StaffRole::Approver,
    };
    let bob = Actor {
        user: "bob".into(),
        role: StaffRole::Approver,
    };
    let viewer = Actor {
        user: "vic".into(),
        role: StaffRole::Viewer,
    };
    let stranger = after
        .iter()
        .find(|b| b.our_reference.starts_with("0190aaaa"))
        .unwrap();
    let propose = Action::Propose(Proposal {
        kind: ResolutionKind::WriteOff,
        maker: String::new(),
        connector: None,
        note: "the biller cannot trace the payer".into(),
    });
    let err = app
        .store
        .act_on_break(stranger.id, &viewer, &propose, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("operator"), "{err}");
    let pending = app
        .store
        .act_on_break(stranger.id, &ann, &propose, Utc::now())
        .await
        .unwrap();
    assert_eq!(pending.status, BreakStatus::PendingApproval);
    let journals = app.count("ledger_journals").await;
    let err = app
        .store
        .act_on_break(stranger.id, &ann, &Action::Approve, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("maker-checker"), "{err}");
    assert_eq!(
        app.count("ledger_journals").await,
        journals,
        "nothing moved"
    );
    let done = app
        .store
        .act_on_break(stranger.id, &bob, &Action::Approve, Utc::now())
        .await
        .unwrap();
    assert_eq!(done.status, BreakStatus::WrittenOff);
    assert_eq!(app.count("ledger_journals").await, journals + 1);
    let suspense = app.balance("suspense:CNY").await;
    assert!(suspense.to_string().contains("17.00"), "{suspense}");
    let (_, trail) = app.store.break_detail(stranger.id).await.unwrap().unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["opened", "propose", "approve"]);

    // A re-run keeps the written-off break closed and its history.
    run_biller(store, water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    let (b, trail) = app.store.break_detail(stranger.id).await.unwrap().unwrap();
    assert_eq!(b.status, BreakStatus::WrittenOff);
    assert_eq!(trail.len(), 3);
    app.assert_books_match().await;
    app.finish().await;
}
