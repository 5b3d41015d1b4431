//! The intermediary replacement story, end to end, with the real service
//! and the real hub and water simulators over sockets:
//!
//! the hub fails in the middle of a business day, the water billers are
//! switched to their direct route, some hub payments were applied but
//! their answers dropped; after the day's reconciliation every payment is
//! credited exactly once, every UNKNOWN is decided, and no break is left.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use billclear::domain::ids::PaymentId;
use billclear::domain::payment::PaymentStatus::*;
use billclear::reconcile::run::{run_biller, RunOptions, RunSummary};
use billclear::store::recon::{BreakFilter, ReconStore};
use billclear::store::PaymentStore;
use biller_sim::{confirmation_csv, Faults};
use chrono::{DateTime, Days, NaiveDate, Utc};
use common::{midnight, shanghai, Options, TestApp};

const SH_WATER: (&str, &str) = ("sh-water", "3100000011");
const PUDONG: (&str, &str) = ("pudong-water", "PD20261129");
const BILLERS: [&str; 2] = ["sh-water", "pudong-water"];

async fn statuses(app: &TestApp) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM payments GROUP BY status")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// The day as the story tells it. Returns the payments by phase.
struct Day {
    /// Through the hub, answered, CONFIRMED.
    hub_confirmed: Vec<PaymentId>,
    /// Applied by the hub, answer dropped: UNKNOWN (sh-water first).
    dropped: Vec<PaymentId>,
    /// Direct after the planned switch, CONFIRMED.
    direct: Vec<PaymentId>,
    date: NaiveDate,
}

async fn play_the_day(app: &TestApp) -> Day {
    let hub = app.hub.as_ref().unwrap();
    let date = Utc::now().with_timezone(&shanghai()).date_naive();

    // 1. Morning: payments to both water billers go through the hub.
    let mut hub_confirmed = Vec::new();
    for (i, (biller, account)) in [SH_WATER, SH_WATER, PUDONG, SH_WATER, PUDONG, SH_WATER]
        .into_iter()
        .enumerate()
    {
        hub_confirmed.push(app.pay_to(biller, account, &format!("{}.11", 10 + i)).await);
    }
    for id in &hub_confirmed {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 10).await,
            Confirmed
        );
        assert_eq!(app.connector_of(*id).await.as_deref(), Some("hub"));
    }

    // 2. The hub applies the next three but drops its answers, then cuts
    //    us off for good: our inquiries there are refused (403) from now on.
    hub.set_faults(Faults {
        drop_response_next: 3,
        ..Faults::default()
    });
    let applied_before = hub.credits().len();
    let mut dropped = Vec::new();
    for (i, (biller, account)) in [SH_WATER, SH_WATER, PUDONG].into_iter().enumerate() {
        dropped.push(app.pay_to(biller, account, &format!("{}.22", 20 + i)).await);
    }
    // Cut off as soon as the three are applied, before our 300 ms timeout
    // makes them UNKNOWN and a status inquiry could still be answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.credits().len() < applied_before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not apply the burst"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    hub.set_cut_off(true);
    for id in &dropped {
        assert_eq!(
            app.wait_for(*id, &[Unknown, Confirmed, Rejected], 10).await,
            Unknown
        );
        assert_eq!(app.connector_of(*id).await.as_deref(), Some("hub"));
    }

    // The operator switches both billers to their direct route.
    for biller in BILLERS {
        app.switch_route(biller, "water-direct").await;
    }

    // 3. Afternoon: payments flow direct.
    let mut direct = Vec::new();
    for (i, (biller, account)) in [SH_WATER, PUDONG, SH_WATER, SH_WATER]
        .into_iter()
        .enumerate()
    {
        direct.push(app.pay_to(biller, account, &format!("{}.33", 30 + i)).await);
    }
    for id in &direct {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 10).await,
            Confirmed
        );
        assert_eq!(app.connector_of(*id).await.as_deref(), Some("water-direct"));
    }

    // 4. The dropped ones stay UNKNOWN: the hub never answers, and an
    //    UNKNOWN payment is never sent again, through any route.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &dropped {
        assert_eq!(app.status(*id).await, Unknown);
    }
    assert_eq!(
        hub.pay_requests(),
        (hub_confirmed.len() + dropped.len()) as u64,
        "nothing sent to the hub twice"
    );
    assert_eq!(app.sim().pay_requests(), direct.len() as u64);
    let direct_refs: Vec<String> = app
        .sim()
        .credits()
        .iter()
        .map(|c| c.our_reference.clone())
        .collect();
    for id in &dropped {
        assert!(
            !direct_refs.contains(&id.to_string()),
            "an UNKNOWN payment was re-sent direct"
        );
    }
    Day {
        hub_confirmed,
        dropped,
        direct,
        date,
    }
}

/// 5. End of day: the hub's statement and each water company's
///    confirmation file are written and imported. Returns their texts.
async fn import_the_day(app: &TestApp, dir: &std::path::Path, date: NaiveDate) -> Vec<String> {
    let hub = app.hub.as_ref().unwrap();
    let mut files = vec![(
        "hub",
        format!("hub-statement-{date}.csv"),
        hub.statement_csv(date),
    )];
    for biller in BILLERS {
        files.push((
            biller,
            format!("{biller}-confirmation-{date}.csv"),
            confirmation_csv(&app.sim().credits(), biller, date, shanghai()),
        ));
    }
    let mut texts = Vec::new();
    for (source, name, text) in files {
        let imported = app.import_recon_file(dir, source, &name, date, &text).await;
        assert!(!imported.already);
        assert_eq!(imported.business_date, date);
        texts.push(text);
    }
    texts
}

/// 6. The date reconciled for each water biller, on a clock `now`.
async fn reconcile(
    app: &TestApp,
    dir: &std::path::Path,
    date: NaiveDate,
    grace: Duration,
    now: DateTime<Utc>,
) -> BTreeMap<String, RunSummary> {
    let billers = app.store_billers().await;
    let opts = RunOptions {
        dir: dir.join("recon"),
        grace,
        sort_buffer: 1_000,
        run_by: "story".into(),
        file_routes: Default::default(),
    };
    let store: std::sync::Arc<dyn ReconStore> = app.store.clone();
    let mut out = BTreeMap::new();
    for id in BILLERS {
        let biller = billers.iter().find(|b| b.id.as_str() == id).unwrap();
        let s = run_biller(store.clone(), biller, date, &opts, 0, now, None)
            .await
            .unwrap();
        assert_eq!(
            s.covered,
            vec!["hub".to_string(), "water-direct".to_string()],
            "both routes' files are inputs: {s:?}"
        );
        out.insert(id.to_string(), s);
    }
    out
}

/// The engine ran on tomorrow's clock (after the date's end); the callback
/// worker runs on today's. Bring the callbacks the runs queued for
/// "tomorrow" back to now so the channel receives them in this test.
async fn release_callbacks(app: &TestApp) {
    sqlx::query(
        "UPDATE outbox SET available_at = now()
          WHERE topic = 'callback' AND done_at IS NULL AND available_at > now()",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
}

/// Waits until the channel received a verified callback of `kind` for `id`.
async fn wait_callback(app: &TestApp, id: PaymentId, kind: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = app.receiver().received().into_iter().any(|r| {
            r.verified.is_ok()
                && r.event["type"] == kind
                && r.event["payment"]["id"] == id.to_string().as_str()
        });
        if got {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} callback for {id}: {:?}",
            app.receiver()
                .received()
                .iter()
                .map(|r| r.event.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every CONFIRMED payment is credited exactly once across the simulators'
/// books and exactly once across the day's files; nothing is credited twice.
async fn assert_credited_once(app: &TestApp, files: &[String]) {
    let credits = app.all_credits();
    let mut by_ref: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &credits {
        *by_ref.entry(c.our_reference.as_str()).or_default() += 1;
    }
    assert!(
        by_ref.values().all(|n| *n == 1),
        "credited twice: {by_ref:?}"
    );
    let confirmed: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM payments WHERE status = 'CONFIRMED' ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(
        confirmed.len(),
        credits.len(),
        "nothing credited we do not hold"
    );
    for id in confirmed {
        let id = id.to_string();
        assert_eq!(by_ref.get(id.as_str()), Some(&1), "{id} in the books");
        let lines = files
            .iter()
            .flat_map(|f| f.lines())
            .filter(|l| l.contains(&id))
            .count();
        assert_eq!(lines, 1, "{id} credited once across the files");
    }
}

/// Every break of the date is worked to closed (none here: see the tests).
async fn assert_no_open_breaks(app: &TestApp, date: NaiveDate) {
    let all = app
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty(), "breaks: {all:#?}");
    let open = app
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            open_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(open.is_empty());
}

/// No pending journal left unresolved, and the billers' payables hold
/// nothing in the pending layer.
async fn assert_pending_layer_empty(app: &TestApp) {
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments p
          WHERE p.pending_journal_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ledger_journals j WHERE j.resolves = p.pending_journal_id)",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(unresolved, 0, "payments with an unresolved pending journal");
    for biller in BILLERS {
        let b = app.balance(&format!("biller:{biller}:payable:CNY")).await;
        assert_eq!(
            b.pending_credits - b.pending_debits,
            rust_decimal::Decimal::ZERO,
            "{biller}: {b:?}"
        );
    }
}

fn story_app() -> Options {
    Options {
        dispatch: true,
        hub: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn the_hub_fails_mid_day_and_the_days_reconciliation_settles_every_unknown() {
    let app = TestApp::spawn_with(story_app()).await;
    let dir = tempfile::tempdir().unwrap();
    let day = play_the_day(&app).await;
    let date = day.date;
    let files = import_the_day(&app, dir.path(), date).await;
    // The statement lists the dropped payments as SUCCESS under the hub's
    // references; the live answers gave us the same references for the rest.
    for id in &day.hub_confirmed {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT biller_reference FROM payments WHERE id = $1")
                .bind(id.0)
                .fetch_one(app.store.pool())
                .await
                .unwrap();
        let stored = stored.expect("a reference from the hub's answer");
        assert!(stored.starts_with("HUB"), "{stored}");
        assert!(files[0].contains(&format!("{stored},{id},")), "{stored}");
    }

    // Run after the end of the date, with no grace period.
    let now = midnight(date + Days::new(1)) + chrono::Duration::seconds(1);
    let runs = reconcile(&app, dir.path(), date, Duration::ZERO, now).await;
    let sh = &runs["sh-water"];
    let pd = &runs["pudong-water"];
    assert_eq!((sh.ours, sh.theirs), (9, 9), "{sh:?}");
    assert_eq!((pd.ours, pd.theirs), (4, 4), "{pd:?}");
    assert_eq!((sh.matched.count, pd.matched.count), (7, 3));
    assert_eq!((sh.auto_confirmed.count, pd.auto_confirmed.count), (2, 1));
    for s in runs.values() {
        assert_eq!(s.matched_within_tolerance.count, 0);
        assert_eq!(s.auto_rejected.count, 0);
        assert!(s.pending.is_empty(), "{s:?}");
        assert!(s.breaks.is_empty(), "{s:?}");
        assert_eq!(s.cleared, 0);
    }

    // Every UNKNOWN decided from the hub's statement, with its evidence.
    assert_eq!(statuses(&app).await.get("UNKNOWN"), None);
    for id in &day.dropped {
        assert_eq!(app.status(*id).await, Confirmed);
        let events = app.store.payment_events(*id).await.unwrap();
        let last = events.last().unwrap();
        assert!(
            last.reason.contains("hub-statement") && last.reason.contains("CREDITED HUB"),
            "the evidence names the hub statement: {last:?}"
        );
        let (decision, evidence): (String, serde_json::Value) =
            sqlx::query_as("SELECT decision, evidence FROM recon_decisions WHERE payment_id = $1")
                .bind(id.0)
                .fetch_one(app.store.pool())
                .await
                .unwrap();
        assert_eq!(decision, "confirm");
        assert_eq!(evidence["kind"], "hub-statement");
        // The hub's reference, from its statement, is now ours too.
        let credit = app
            .hub
            .as_ref()
            .unwrap()
            .credits()
            .into_iter()
            .find(|c| c.our_reference == id.to_string())
            .unwrap();
        assert_eq!(
            evidence["their_reference"],
            credit.biller_reference.as_str()
        );
        let stored: Option<String> =
            sqlx::query_scalar("SELECT biller_reference FROM payments WHERE id = $1")
                .bind(id.0)
                .fetch_one(app.store.pool())
                .await
                .unwrap();
        assert_eq!(stored.as_deref(), Some(credit.biller_reference.as_str()));
    }
    assert_eq!(app.count("recon_decisions").await, 3);

    assert_credited_once(&app, &files).await;
    assert_no_open_breaks(&app, date).await;
    assert_pending_layer_empty(&app).await;
    app.assert_books_match().await;

    // The channel is told of each decision.
    release_callbacks(&app).await;
    for id in &day.dropped {
        wait_callback(&app, *id, "payment.confirmed").await;
    }

    // Running the date again gives the same result and decides nothing
    // twice: the payments an earlier run decided count as that decision.
    let again = reconcile(&app, dir.path(), date, Duration::ZERO, now).await;
    for (biller, s) in &again {
        assert_eq!(s.auto_confirmed, runs[biller].auto_confirmed, "{biller}");
        assert_eq!(s.matched, runs[biller].matched, "{biller}");
        assert!(s.breaks.is_empty());
    }
    assert_eq!(app.count("recon_decisions").await, 3);
    assert_eq!(day.direct.len(), 4);
    app.finish().await;
}

#[tokio::test]
async fn a_dropped_payment_the_hub_also_lost_is_voided_after_the_grace_period() {
    let app = TestApp::spawn_with(story_app()).await;
    let dir = tempfile::tempdir().unwrap();
    let day = play_the_day(&app).await;
    let date = day.date;
    // The hub loses every trace of one payment it applied (sh-water's
    // first dropped one): not in its statement, not in its books.
    let lost = day.dropped[0];
    assert!(app
        .hub
        .as_ref()
        .unwrap()
        .lose_transaction(&lost.to_string()));
    let files = import_the_day(&app, dir.path(), date).await;
    assert!(!files.iter().any(|f| f.contains(&lost.to_string())));

    // Right after the date, within the grace period: the absence is noted,
    // nothing decided yet.
    let end = midnight(date + Days::new(1));
    let grace = Duration::from_secs(2 * 3600);
    let early = reconcile(
        &app,
        dir.path(),
        date,
        grace,
        end + chrono::Duration::seconds(1),
    )
    .await;
    let sh = &early["sh-water"];
    assert_eq!(sh.auto_confirmed.count, 1, "{sh:?}");
    assert_eq!(sh.auto_rejected.count, 0);
    assert_eq!(
        sh.pending.get("within-grace").map(|t| t.count),
        Some(1),
        "{sh:?}"
    );
    assert_eq!(early["pudong-water"].auto_confirmed.count, 1);
    assert_eq!(app.status(lost).await, Unknown);

    // After the grace period: rejected and voided, the channel told.
    let late = reconcile(
        &app,
        dir.path(),
        date,
        grace,
        end + chrono::Duration::from_std(grace).unwrap() + chrono::Duration::seconds(1),
    )
    .await;
    let sh = &late["sh-water"];
    assert_eq!(sh.auto_rejected.count, 1, "{sh:?}");
    assert_eq!(sh.auto_rejected.amount_minor, 2022);
    assert!(sh.pending.is_empty(), "{sh:?}");
    for (biller, s) in &late {
        assert!(s.breaks.is_empty(), "{s:?}");
        assert_eq!(
            s.auto_confirmed, early[biller].auto_confirmed,
            "the same result"
        );
    }
    assert_eq!(app.status(lost).await, Rejected);
    let events = app.store.payment_events(lost).await.unwrap();
    assert!(
        events.last().unwrap().reason.contains("hub files"),
        "{events:?}"
    );
    let (decision, evidence): (String, serde_json::Value) =
        sqlx::query_as("SELECT decision, evidence FROM recon_decisions WHERE payment_id = $1")
            .bind(lost.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(decision, "reject");
    assert_eq!(evidence["connector"], "hub");
    // Voided: its pending journal resolved by a void, nothing posted.
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT j.kind FROM ledger_journals j JOIN payments p ON j.resolves = p.pending_journal_id
          WHERE p.id = $1",
    )
    .bind(lost.0)
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert_eq!(kinds, vec!["void".to_string()]);

    assert_eq!(statuses(&app).await.get("UNKNOWN"), None);
    for id in &day.dropped[1..] {
        assert_eq!(app.status(*id).await, Confirmed);
    }
    assert_eq!(app.count("recon_decisions").await, 3);
    assert_credited_once(&app, &files).await;
    assert_no_open_breaks(&app, date).await;
    assert_pending_layer_empty(&app).await;
    app.assert_books_match().await;

    release_callbacks(&app).await;
    wait_callback(&app, lost, "payment.rejected").await;
    for id in &day.dropped[1..] {
        wait_callback(&app, *id, "payment.confirmed").await;
    }
    assert_eq!(day.direct.len(), 4);
    app.finish().await;
}
