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
use biller_sim::{confirmation_csv, CreditRecord};
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
        &common::our_accounts(),
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
        &common::our_accounts(),
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
        &common::our_accounts(),
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
        &common::our_accounts(),
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
        file_routes: Default::default(),
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
    // The payments it decided count as those decisions again: the same result.
    assert_eq!(rerun.auto_confirmed, summary.auto_confirmed);
    assert_eq!(rerun.auto_rejected, summary.auto_rejected);
    assert_eq!(rerun.matched, summary.matched);
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

/// Sends a request with exactly this Authorization header.
#[tokio::test]
async fn staff_work_breaks_and_fetch_reports_over_the_api_with_maker_checker() {
    use billclear::cli::staff::add_staff;
    use hyper::Method;
    let app = TestApp::spawn().await;
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let date = Utc::now().with_timezone(&shanghai).date_naive() - Days::new(1);
    let noon = shanghai
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    // One credit nobody here knows: a missing-at-us break.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    let credits = vec![credit(
        "0190bbbb-0000-7000-8000-000000000000",
        "W9",
        "21.50",
        noon,
    )];
    std::fs::write(
        &file,
        confirmation_csv(&credits, "sh-water", date, shanghai),
    )
    .unwrap();
    let config = app.state.config.clone();
    import_file(
        app.store.as_ref(),
        &config.recon.dir,
        &common::our_accounts(),
        "sh-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    let store: std::sync::Arc<dyn billclear::store::Store> = app.store.clone();
    let (summaries, _, reports) =
        billclear::reconcile::day::run_date(store, &config, date, Some("sh-water"), "test", false)
            .await
            .unwrap();
    assert_eq!(summaries[0].break_count(), 1);
    assert_eq!(
        reports.len(),
        3,
        "summary CSV, breaks CSV, XLSX: {reports:?}"
    );

    // Re-running the date (nothing acted on in between) gives the same
    // reports, byte for byte.
    let before: Vec<Vec<u8>> = reports.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let store: std::sync::Arc<dyn billclear::store::Store> = app.store.clone();
    billclear::reconcile::day::run_date(store, &config, date, Some("sh-water"), "test", false)
        .await
        .unwrap();
    for (p, b) in reports.iter().zip(&before) {
        assert!(
            std::fs::read(p).unwrap() == *b,
            "{} changed on a re-run",
            p.display()
        );
    }

    let (_, viewer) = add_staff(app.store.as_ref(), "vic", "Vic", StaffRole::Viewer)
        .await
        .unwrap();
    let (_, ann) = add_staff(app.store.as_ref(), "ann", "Ann", StaffRole::Approver)
        .await
        .unwrap();
    let (_, bob) = add_staff(app.store.as_ref(), "bob", "Bob", StaffRole::Approver)
        .await
        .unwrap();
    let (viewer, ann, bob) = (viewer.expose_text(), ann.expose_text(), bob.expose_text());

    let r = app
        .staff_call(
            Method::GET,
            &format!("/v1/breaks?date={date}&open=true"),
            serde_json::Value::Null,
            viewer,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let breaks = r.json()["breaks"].as_array().unwrap().clone();
    assert_eq!(breaks.len(), 1);
    let id = breaks[0]["id"].as_i64().unwrap();
    assert_eq!(breaks[0]["category"], "missing-at-us");

    // A channel's signature is not a staff credential.
    let r = app.alipay.get(&format!("/v1/breaks/{id}")).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "channel_credentials_not_accepted");

    let propose = serde_json::json!({"action": "propose", "resolution": "write-off", "note": "payer untraceable"});
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            propose.clone(),
            viewer,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "staff_role_insufficient".into())
    );
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            propose,
            ann,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["break"]["status"], "pending-approval");
    let approve = serde_json::json!({"action": "approve"});
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            approve.clone(),
            ann,
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "maker_checker".into()));
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            approve.clone(),
            bob,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["break"]["status"], "written-off");
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            approve,
            bob,
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "break_state".into()));
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            serde_json::json!({"action": "fly"}),
            bob,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_action".into())
    );

    let r = app
        .staff_call(
            Method::GET,
            &format!("/v1/breaks/{id}"),
            serde_json::Value::Null,
            viewer,
        )
        .await;
    let trail: Vec<String> = r.json()["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec!["reconciliation:opened", "ann:propose", "bob:approve"]
    );

    // The reports: listed on the run, served by name, nothing else.
    let r = app
        .staff_call(
            Method::GET,
            &format!("/v1/recon/runs?date={date}"),
            serde_json::Value::Null,
            viewer,
        )
        .await;
    let names: Vec<String> = r.json()["runs"][0]["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            format!("recon-{date}-sh-water-summary.csv"),
            format!("recon-{date}-sh-water-breaks.csv"),
            format!("recon-{date}-sh-water.xlsx"),
        ]
    );
    let r = app
        .staff_call(
            Method::GET,
            &format!("/v1/recon/reports/{date}/{}", names[1]),
            serde_json::Value::Null,
            viewer,
        )
        .await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        text.contains("missing-at-us") && text.contains("21.50"),
        "{text}"
    );
    let r = app
        .staff_call(
            Method::GET,
            &format!("/v1/recon/reports/{date}/..%2F..%2Fetc%2Fpasswd"),
            serde_json::Value::Null,
            viewer,
        )
        .await;
    assert_eq!(r.status, 404);
    app.finish().await;
}

#[tokio::test]
async fn a_biller_tolerance_matches_small_differences_and_reports_them_apart() {
    let app = TestApp::spawn().await;
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let date = Utc::now().with_timezone(&shanghai).date_naive() - Days::new(1);
    let noon = shanghai
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    use PaymentStatus::*;
    let near = app.pay("3100000011", "10.00").await;
    let far = app.pay("3100000011", "20.00").await;
    move_to(&app, near, &[Submitted, Confirmed]).await;
    move_to(&app, far, &[Submitted, Confirmed]).await;
    sqlx::query("UPDATE payments SET created_at = $1, connector_id = 'water-direct'")
        .bind(noon)
        .execute(app.store.pool())
        .await
        .unwrap();
    let credits = vec![
        credit(&near.to_string(), "W1", "10.03", noon),
        credit(&far.to_string(), "W2", "20.06", noon),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(
        &file,
        confirmation_csv(&credits, "sh-water", date, shanghai),
    )
    .unwrap();
    let config = app.state.config.clone();
    import_file(
        app.store.as_ref(),
        &config.recon.dir,
        &common::our_accounts(),
        "sh-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        app.store.recon_tolerance("sh-water").await.unwrap(),
        0,
        "exact by default"
    );
    app.store.set_recon_tolerance("sh-water", 5).await.unwrap();
    let store: std::sync::Arc<dyn billclear::store::Store> = app.store.clone();
    let (summaries, _, _) =
        billclear::reconcile::day::run_date(store, &config, date, Some("sh-water"), "test", false)
            .await
            .unwrap();
    let s = &summaries[0];
    assert_eq!(s.tolerance_minor, 5);
    assert_eq!(s.matched_within_tolerance.count, 1);
    assert_eq!(s.matched.count, 0);
    let cats: Vec<(&str, u64)> = s
        .breaks
        .iter()
        .map(|(k, v)| (k.as_str(), v.count))
        .collect();
    assert_eq!(cats, vec![("amount-mismatch", 1)]);
    app.finish().await;
}

#[tokio::test]
async fn a_billers_file_sets_the_tolerance_and_one_without_it_leaves_it() {
    use billclear::store::BillerStore;
    let app = TestApp::spawn().await;
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml"),
    )
    .unwrap();
    let import = |text: String| {
        let app = &app;
        async move {
            let billers = billclear::config::billers_file::parse(&text).unwrap();
            app.store.upsert_billers(&billers).await.unwrap();
        }
    };
    let tolerance = |id: &'static str| {
        let app = &app;
        async move { app.store.recon_tolerance(id).await.unwrap() }
    };
    // Set by hand (`recon tolerance --set 0.07`); the seed file, imported
    // again without recon_tolerance, leaves it.
    assert_eq!(tolerance("sh-water").await, 0);
    app.store.set_recon_tolerance("sh-water", 7).await.unwrap();
    import(example.clone()).await;
    assert_eq!(tolerance("sh-water").await, 7);
    // With it: set, in minor units; other billers untouched.
    import(example.replace(
        "id = \"sh-water\"\n",
        "id = \"sh-water\"\nrecon_tolerance = \"0.05\"\n",
    ))
    .await;
    assert_eq!(tolerance("sh-water").await, 5);
    assert_eq!(tolerance("sh-power").await, 0);
    let stored = app.store_billers().await;
    let water = stored.iter().find(|b| b.id.as_str() == "sh-water").unwrap();
    assert_eq!(water.recon_tolerance_minor, Some(5));
    // Zero is a value (exact matching again), not "absent".
    import(example.replace(
        "id = \"sh-water\"\n",
        "id = \"sh-water\"\nrecon_tolerance = \"0\"\n",
    ))
    .await;
    assert_eq!(tolerance("sh-water").await, 0);
    // A new biller: the file's tolerance, else exact.
    import(
        example
            .replace(
                "id = \"sh-gas\"\n",
                "id = \"sh-gas-2\"\nrecon_tolerance = \"0.10\"\n",
            )
            .replace("id = \"minhang-gas\"\n", "id = \"minhang-gas-2\"\n"),
    )
    .await;
    assert_eq!(tolerance("sh-gas-2").await, 10);
    assert_eq!(tolerance("minhang-gas-2").await, 0);
    // A bad one is refused before anything is stored, naming the biller.
    let err = billclear::config::billers_file::parse(&example.replace(
        "id = \"sh-power\"\n",
        "id = \"sh-power\"\nrecon_tolerance = \"0.005\"\n",
    ))
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("sh-power") && err.contains("recon_tolerance") && err.contains("decimals"),
        "{err}"
    );
    app.finish().await;
}

#[tokio::test]
async fn one_run_of_a_date_and_biller_at_a_time_and_a_failed_run_is_recorded() {
    let app = TestApp::spawn().await;
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let billers = app.store_billers().await;
    let water = billers
        .iter()
        .find(|b| b.id.as_str() == "sh-water")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        dir: dir.path().to_path_buf(),
        grace: std::time::Duration::ZERO,
        sort_buffer: 1_000,
        run_by: "test".into(),
        file_routes: Default::default(),
    };
    let store: std::sync::Arc<dyn ReconStore> = app.store.clone();
    // Someone else's run of the date is in progress.
    let other = store
        .start_run(date, "sh-water", "olga", &[], Utc::now())
        .await
        .unwrap();
    let err = run_biller(store.clone(), water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is running"), "{err}");
    assert!(err.to_string().contains("olga"), "{err}");
    // Another biller, or the same biller another date, is not held up.
    let other_date = date.succ_opt().unwrap();
    run_biller(store.clone(), water, other_date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    // Once it ends (here: fails), the date can be run again.
    store.fail_run(other, "killed", Utc::now()).await.unwrap();
    let s = run_biller(store.clone(), water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    let runs = store.runs(Some(date), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, s.run_id);
    assert!(runs[0].finished_at.is_some() && runs[0].failed.is_none());
    assert_eq!(runs[1].failed.as_deref(), Some("killed"));
    // A run that dies is taken as dead an hour after it started.
    store
        .start_run(
            other_date,
            "sh-water",
            "olga",
            &[],
            Utc::now() - chrono::Duration::hours(2),
        )
        .await
        .unwrap();
    run_biller(store, water, other_date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    app.finish().await;
}

#[tokio::test]
async fn the_hub_statement_covers_a_biller_only_where_it_concerns_it() {
    let app = TestApp::spawn().await;
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let noon = shanghai
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    // The hub's statement of the date: one record, of sh-power.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.csv");
    std::fs::write(
        &file,
        format!(
            "HUBSTATEMENT,SIMHUB,{date},{next}T09:00:00.000+08:00\n\
             hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt\n\
             HUB2026111000000001,pay-0301,sh-power,0306406159,88.50,CNY,SUCCESS,{date}T09:00:00.000+08:00\n\
             TRAILER,1,1,88.50\n",
            next = date.succ_opt().unwrap()
        ),
    )
    .unwrap();
    let recon_dir = dir.path().join("recon");
    import_file(
        app.store.as_ref(),
        &recon_dir,
        &common::our_accounts(),
        "hub",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    let billers = app.store_billers().await;
    let biller = |id: &str| billers.iter().find(|b| b.id.as_str() == id).unwrap();
    let opts = RunOptions {
        dir: recon_dir.clone(),
        grace: std::time::Duration::ZERO,
        sort_buffer: 1_000,
        run_by: "test".into(),
        file_routes: Default::default(),
    };
    let store: std::sync::Arc<dyn ReconStore> = app.store.clone();
    let run = |id: &'static str| {
        let store = store.clone();
        let b = biller(id).clone();
        let opts = opts.clone();
        async move {
            run_biller(store, &b, date, &opts, 0, Utc::now(), None)
                .await
                .unwrap()
        }
    };
    // The co-op is not routed through the hub and the statement says
    // nothing of it: not covered by it.
    assert_eq!(biller("chongming-coop").routes[0].as_str(), "coop-file");
    let coop = run("chongming-coop").await;
    assert!(coop.covered.is_empty(), "{coop:?}");
    // sh-water is routed through the hub: covered by its statement even on
    // a day it holds no record of it (an absence there proves something).
    let water = run("sh-water").await;
    assert_eq!(water.covered, vec!["hub".to_string()], "{water:?}");
    // sh-power: routed through it, and the statement speaks of it.
    let power = run("sh-power").await;
    assert_eq!(power.covered, vec!["hub".to_string()], "{power:?}");

    // A co-op payment that went through the hub (its routes were otherwise
    // then) and that the hub's statement does not hold: covered, and the
    // absence is a break, not "pending".
    use PaymentStatus::*;
    let p = app.pay_to("chongming-coop", "CM-000123", "10.00").await;
    move_to(&app, p, &[Submitted, Confirmed]).await;
    sqlx::query("UPDATE payments SET created_at = $2, connector_id = 'hub' WHERE id = $1")
        .bind(p.0)
        .bind(noon)
        .execute(app.store.pool())
        .await
        .unwrap();
    let coop = run("chongming-coop").await;
    assert_eq!(coop.covered, vec!["hub".to_string()], "{coop:?}");
    assert_eq!(coop.ours, 1);
    assert_eq!(
        coop.breaks.get("missing-at-biller").map(|t| t.count),
        Some(1),
        "{coop:?}"
    );
    assert!(coop.pending.is_empty(), "{coop:?}");
    app.finish().await;
}
