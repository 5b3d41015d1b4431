//! The `resend` resolution, end to end with the real service, the hub and
//! the water simulator over sockets, and finance staff over the API.
//!
//! Payments of yesterday went through the hub, were answered as credited,
//! and the hub then lost them (not in its statement, not in its books) and
//! cut us off; the water billers now go direct. Yesterday's reconciliation
//! finds them missing at the biller. A re-send through the direct route is
//! refused until their absence is proven (the hub's files of the date and
//! the day after), refused if the new route already knows the payment,
//! needs a second person, is made at most once when it may have arrived,
//! and is reconciled on the date it was made.

mod common;

use std::sync::Arc;
use std::time::Duration;

use billclear::cli::staff::add_staff;
use billclear::dispatch::worker::pay_order;
use billclear::domain::ids::PaymentId;
use billclear::domain::payment::PaymentStatus::*;
use billclear::domain::recon::breaks::Actor;
use billclear::domain::staff::StaffRole;
use billclear::reconcile::run::{run_biller, RunOptions, RunSummary};
use billclear::store::recon::{BreakFilter, ReconStore, ResendStart, ResendStore};
use billclear::store::DispatchStore;
use biller_sim::Faults;
use chrono::{Days, NaiveDate, Utc};
use common::{midnight, shanghai, Options, TestApp};
use hyper::Method;
use serde_json::{json, Value};

const BILLER: &str = "sh-water";
const ACCOUNT: &str = "3100000011";

struct Desk {
    ann: String,
    bob: String,
    olga: String,
}

async fn desk(app: &TestApp) -> Desk {
    let store = app.store.as_ref();
    let (_, ann) = add_staff(store, "ann", "Ann", StaffRole::Approver)
        .await
        .unwrap();
    let (_, bob) = add_staff(store, "bob", "Bob", StaffRole::Approver)
        .await
        .unwrap();
    let (_, olga) = add_staff(store, "olga", "Olga", StaffRole::Operator)
        .await
        .unwrap();
    Desk {
        ann: ann.expose_text().to_string(),
        bob: bob.expose_text().to_string(),
        olga: olga.expose_text().to_string(),
    }
}

async fn act(app: &TestApp, id: i64, body: Value, token: &str) -> (u16, Value) {
    let r = app
        .staff_call(
            Method::POST,
            &format!("/v1/breaks/{id}/actions"),
            body,
            token,
        )
        .await;
    (r.status.as_u16(), r.json())
}

fn propose(connector: &str) -> Value {
    json!({"action": "propose", "resolution": "resend", "connector": connector,
           "note": "the hub lost it; the biller's own route is live"})
}

fn approve() -> Value {
    json!({"action": "approve"})
}

async fn import(app: &TestApp, dir: &std::path::Path, source: &str, date: NaiveDate, text: &str) {
    let name = format!("{source}-{date}-{}.csv", uuid::Uuid::new_v4());
    app.import_recon_file(dir, source, &name, date, text).await;
}

async fn reconcile(app: &TestApp, dir: &std::path::Path, date: NaiveDate) -> RunSummary {
    let billers = app.store_billers().await;
    let biller = billers.iter().find(|b| b.id.as_str() == BILLER).unwrap();
    let opts = RunOptions {
        dir: dir.join("recon"),
        grace: Duration::from_secs(24 * 3600),
        sort_buffer: 1_000,
        run_by: "test".into(),
        file_routes: Default::default(),
    };
    let store: Arc<dyn ReconStore> = app.store.clone();
    run_biller(store, biller, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap()
}

/// The open break of `date` about `payment`.
async fn break_of(app: &TestApp, date: NaiveDate, payment: PaymentId) -> (i64, String) {
    let all = app
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = all
        .iter()
        .find(|b| b.our_reference == payment.to_string())
        .unwrap_or_else(|| panic!("no break for {payment}: {all:#?}"));
    (b.id, b.status.as_str().to_string())
}

async fn trail(app: &TestApp, id: i64) -> Vec<(String, String)> {
    let (_, events) = app.store.break_detail(id).await.unwrap().unwrap();
    events
        .into_iter()
        .map(|e| (e.action, e.to_status))
        .collect()
}

/// How many times each of our references was credited, across the hub's
/// and the water company's books.
fn credits_of(app: &TestApp, id: PaymentId) -> usize {
    app.all_credits()
        .iter()
        .filter(|c| c.our_reference == id.to_string())
        .count()
}

#[tokio::test]
async fn a_payment_the_hub_lost_is_re_sent_direct_once_proven_absent_and_approved() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        hub: true,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let hub = app.hub.as_ref().unwrap();
    let today = Utc::now().with_timezone(&shanghai()).date_naive();
    let yesterday = today - Days::new(1);

    // Yesterday (as the books say): four payments through the hub, each
    // answered as credited.
    let mut ids = Vec::new();
    for amount in ["41.00", "42.00", "43.00", "44.00", "45.00"] {
        ids.push(app.pay_to(BILLER, ACCOUNT, amount).await);
    }
    for id in &ids {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 10).await,
            Confirmed
        );
        assert_eq!(app.connector_of(*id).await.as_deref(), Some("hub"));
    }
    sqlx::query("UPDATE payments SET created_at = $1")
        .bind(midnight(yesterday) + chrono::Duration::hours(12))
        .execute(app.store.pool())
        .await
        .unwrap();
    let [lost, known, silent, kept, stalled] = [ids[0], ids[1], ids[2], ids[3], ids[4]];
    // The hub loses four of them, then cuts us off; the biller goes direct.
    for id in [lost, known, silent, stalled] {
        assert!(hub.lose_transaction(&id.to_string()));
    }
    hub.set_cut_off(true);
    app.switch_route(BILLER, "water-direct").await;
    let staff = desk(&app).await;
    let journals_before = app.count("ledger_journals").await;

    // Yesterday's files: the hub's statement and the water company's file
    // (nothing of ours in either). The hub's file of the day after is not
    // imported yet.
    import(&app, dir, "hub", yesterday, &hub.statement_csv(yesterday)).await;
    import(
        &app,
        dir,
        BILLER,
        yesterday,
        &app.sim().confirmation_csv(BILLER, yesterday),
    )
    .await;
    let first = reconcile(&app, dir, yesterday).await;
    assert_eq!(first.breaks["missing-at-biller"].count, 5, "{first:?}");
    let (lost_break, _) = break_of(&app, yesterday, lost).await;
    let (status, body) = act(&app, lost_break + 1_000, approve(), &staff.bob).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("break_not_found"))
    );

    // Not proven: a payment credited after midnight is in the next day's
    // file, which is not here.
    let (status, body) = act(&app, lost_break, propose("water-direct"), &staff.olga).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("resend_refused")),
        "{body}"
    );
    let why = body["detail"].as_str().unwrap();
    assert!(why.contains(&format!("hub's file(s) of {today}")), "{why}");

    // Today's hub statement arrives: the kept payment is there (credited
    // after midnight of its date); the four lost ones are not. Until the
    // date is reconciled again, the break's proof is the run that found
    // it, which did not read that file: still refused.
    import(&app, dir, "hub", today, &hub.statement_csv(today)).await;
    let (status, body) = act(&app, lost_break, propose("water-direct"), &staff.olga).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("resend_refused")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("run the reconciliation of {yesterday} again")),
        "{body}"
    );
    let again = reconcile(&app, dir, yesterday).await;
    assert_eq!(again.breaks["missing-at-biller"].count, 4, "{again:?}");
    assert_eq!(again.cleared, 1, "the kept payment's break is cleared");

    // Never through the route it went, nor one the biller does not have.
    for (connector, says) in [
        ("hub", "another route"),
        ("power-direct", "not a route of this biller"),
    ] {
        let (status, body) = act(&app, lost_break, propose(connector), &staff.olga).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
    }
    // Proposed; the maker cannot approve it, nor can an operator.
    let (status, body) = act(&app, lost_break, propose("water-direct"), &staff.ann).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["break"]["status"], "pending-approval");
    let (status, body) = act(&app, lost_break, approve(), &staff.ann).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("maker_checker"))
    );
    let (status, body) = act(&app, lost_break, approve(), &staff.olga).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("staff_role_insufficient"))
    );
    assert_eq!(app.sim().pay_requests(), 0, "nothing sent yet");

    // The direct route is down: it cannot even be asked whether it knows
    // the payment, so nothing is sent and nothing changes.
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let (status, body) = act(&app, lost_break, approve(), &staff.bob).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("resend_refused")),
        "{body}"
    );
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("could not be asked"));
    assert_eq!(app.sim().pay_requests(), 0);
    assert_eq!(app.count("recon_resends").await, 0);
    assert_eq!(
        break_of(&app, yesterday, lost).await.1,
        "pending-approval",
        "a refused approval changes nothing"
    );
    app.sim().set_faults(Faults::default());

    // Approved by a second approver: both routes asked (the hub is cut off:
    // its files are the proof), then sent once through water-direct.
    let (status, body) = act(&app, lost_break, approve(), &staff.bob).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["break"]["status"], "resolved");
    assert_eq!(body["break"]["resolution"], "resend");
    assert_eq!(app.sim().pay_requests(), 1);
    assert_eq!(credits_of(&app, lost), 1, "credited exactly once");
    let receipt = app
        .sim()
        .credits()
        .into_iter()
        .find(|c| c.our_reference == lost.to_string())
        .unwrap()
        .biller_reference;
    let (connector, reference): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT connector_id, biller_reference FROM payments WHERE id = $1")
            .bind(lost.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(connector.as_deref(), Some("water-direct"));
    assert_eq!(reference.as_deref(), Some(receipt.as_str()));
    assert_eq!(
        app.status(lost).await,
        Confirmed,
        "our books said so all along"
    );
    let (outcome, proof): (String, Value) =
        sqlx::query_as("SELECT outcome, proof FROM recon_resends WHERE payment_id = $1")
            .bind(lost.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(outcome, "credited");
    assert_eq!(proof["target"]["answer"]["answer"], "not-found");
    assert_eq!(proof["original"]["connector"], "hub");
    assert_eq!(proof["original"]["answer"]["answer"], "unreachable");
    let attempts = app.attempts(lost).await;
    assert_eq!(
        attempts.last().unwrap(),
        &("pay".to_string(), Some("credited".to_string())),
        "{attempts:?}"
    );
    let actions: Vec<String> = trail(&app, lost_break)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(
        actions.ends_with(&[
            "resend-refused".into(),
            "resend-started".into(),
            "approve".into()
        ]),
        "{actions:?}"
    );
    // Resolved: nothing more to approve, nothing sent twice.
    let (status, _) = act(&app, lost_break, approve(), &staff.ann).await;
    assert_eq!(status, 409);
    assert_eq!(app.sim().pay_requests(), 1);

    // Someone delivered `known` to the water company behind our back: the
    // new route knows it, so it is never re-sent.
    let (known_break, _) = break_of(&app, yesterday, known).await;
    let (payment, _) = app.store.delivery(known).await.unwrap().unwrap();
    let direct = app.state.routes.connectors().get("water-direct").unwrap();
    direct.pay(&pay_order(&payment)).await.unwrap();
    let (status, _) = act(&app, known_break, propose("water-direct"), &staff.ann).await;
    assert_eq!(status, 200);
    let (status, body) = act(&app, known_break, approve(), &staff.bob).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("resend_refused")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("already knows"),
        "{body}"
    );
    assert_eq!(credits_of(&app, known), 1);
    assert_eq!(app.count("recon_resends").await, 1);

    // `silent`: the direct route takes the send and never answers. The
    // outcome is unknown: the payment is looked for there from now on and
    // is never sent again.
    let (silent_break, _) = break_of(&app, yesterday, silent).await;
    let (status, _) = act(&app, silent_break, propose("water-direct"), &staff.ann).await;
    assert_eq!(status, 200);
    app.sim().set_faults(Faults {
        silent_pay_next: 1,
        ..Faults::default()
    });
    let sends = app.sim().pay_requests();
    let (status, body) = act(&app, silent_break, approve(), &staff.bob).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["break"]["status"], "investigating");
    assert_eq!(app.sim().pay_requests(), sends + 1);
    assert_eq!(credits_of(&app, silent), 0, "nothing applied");
    assert_eq!(
        app.connector_of(silent).await.as_deref(),
        Some("water-direct")
    );
    let last = trail(&app, silent_break).await.pop().unwrap();
    assert_eq!(
        last,
        ("resend-unknown".to_string(), "investigating".to_string())
    );
    let (status, body) = act(&app, silent_break, propose("water-direct"), &staff.ann).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("resend_refused"))
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("never sent again"),
        "{body}"
    );
    assert_eq!(app.sim().pay_requests(), sends + 1);
    // Nor is it refunded or written off while the re-send may have arrived:
    // the new route's files decide first.
    for resolution in ["write-off", "reverse"] {
        let (status, body) = act(
            &app,
            silent_break,
            json!({"action": "propose", "resolution": resolution, "note": "give up"}),
            &staff.ann,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = act(&app, silent_break, approve(), &staff.bob).await;
        assert_eq!(status, 409, "{resolution}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("may have arrived there"),
            "{body}"
        );
        let (status, _) = act(
            &app,
            silent_break,
            json!({"action": "decline", "reason": "the re-send decides first"}),
            &staff.bob,
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(app.count("ledger_journals").await, journals_before);

    // `stalled`: a process recorded its approved re-send, then died before
    // the call. While it is resending nothing but a comment is possible;
    // an approver then settles it: the new route is asked by our
    // reference, and since the call may have been made it is recorded as
    // unknown, never sent again.
    let (stalled_break, _) = break_of(&app, yesterday, stalled).await;
    let (status, _) = act(&app, stalled_break, propose("water-direct"), &staff.ann).await;
    assert_eq!(status, 200);
    let (b, _) = app
        .store
        .break_detail(stalled_break)
        .await
        .unwrap()
        .unwrap();
    app.store
        .begin_resend(&ResendStart {
            break_id: stalled_break,
            actor: Actor {
                user: "bob".into(),
                role: StaffRole::Approver,
            },
            payment_id: stalled,
            from_connector: Some("hub".into()),
            connector: "water-direct".into(),
            found_by_run: b.found_by_run,
            proof: json!({"test": "a process that died before its call"}),
            at: Utc::now() - chrono::Duration::minutes(10),
        })
        .await
        .unwrap();
    assert_eq!(break_of(&app, yesterday, stalled).await.1, "resending");
    for body in [
        json!({"action": "decline", "reason": "stuck"}),
        json!({"action": "propose", "resolution": "explain", "note": "stuck"}),
    ] {
        let (status, body) = act(&app, stalled_break, body, &staff.bob).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("break_state")),
            "{body}"
        );
    }
    let (status, body) = act(&app, stalled_break, approve(), &staff.olga).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("staff_role_insufficient"))
    );
    let sends = app.sim().pay_requests();
    let (status, body) = act(&app, stalled_break, approve(), &staff.bob).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["break"]["status"], "investigating");
    assert_eq!(app.sim().pay_requests(), sends, "settling never sends");
    let outcome: String =
        sqlx::query_scalar("SELECT outcome FROM recon_resends WHERE payment_id = $1")
            .bind(stalled.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(outcome, "unknown");
    assert_eq!(
        app.connector_of(stalled).await.as_deref(),
        Some("water-direct")
    );

    // Today's water file has the re-sent payment and the one delivered
    // behind our back. Today's reconciliation matches the re-sent payment
    // on the date of its re-send; the silent one is missing there.
    import(
        &app,
        dir,
        BILLER,
        today,
        &app.sim().confirmation_csv(BILLER, today),
    )
    .await;
    let today_run = reconcile(&app, dir, today).await;
    assert_eq!(
        today_run.ours, 3,
        "the three re-sends belong to today: {today_run:?}"
    );
    assert_eq!(
        today_run.breaks["missing-at-biller"].count, 2,
        "{today_run:?}"
    );
    // `known` was credited by the water company under its own receipt while
    // our books hold the hub's: a person must look at that.
    assert_eq!(
        today_run.breaks["reference-mismatch"].count, 1,
        "{today_run:?}"
    );
    assert_eq!(today_run.breaks.len(), 2, "{today_run:?}");
    assert_eq!(
        today_run.matched.count, 2,
        "the re-sent one and the kept one"
    );
    assert_eq!(break_of(&app, today, silent).await.1, "open");
    assert!(
        !app.store
            .breaks(&BreakFilter {
                date: Some(today),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .any(|b| b.our_reference == lost.to_string()),
        "the re-sent payment is matched on the date of its re-send"
    );
    // Yesterday again: the payment re-sent and credited after midnight is
    // in yesterday's window (today's file is its day-after file) and
    // matches; the silent one was re-sent later, so it is no break of
    // yesterday (today's run holds it); the resolved break stays resolved.
    let yesterday_again = reconcile(&app, dir, yesterday).await;
    assert_eq!(yesterday_again.matched.count, 2, "{yesterday_again:?}");
    assert_eq!(
        yesterday_again.pending["resent"].count, 2,
        "{yesterday_again:?}"
    );
    assert_eq!(
        yesterday_again.breaks.keys().collect::<Vec<_>>(),
        vec!["reference-mismatch"],
        "{yesterday_again:?}"
    );
    assert_eq!(break_of(&app, yesterday, lost).await.1, "resolved");
    assert_eq!(
        break_of(&app, yesterday, silent).await.1,
        "resolved",
        "cleared"
    );

    // No money moved: a re-send delivers what our books already held.
    assert_eq!(app.count("ledger_journals").await, journals_before);
    assert_eq!(credits_of(&app, kept), 1);
    // Every payment credited once, except the silent and the stalled ones:
    // missing at the biller, and today's open breaks say so.
    let books = billclear::demo::books::compare(&app.store, &[BILLER], &app.all_credits())
        .await
        .unwrap();
    let mut missing = vec![silent.to_string(), stalled.to_string()];
    missing.sort();
    let mut found = books.missing_at_biller.clone();
    found.sort();
    assert_eq!(found, missing, "{books:?}");
    assert!(
        books.double_credits.is_empty() && books.missing_at_us.is_empty(),
        "{books:?}"
    );
    app.close().await;
}
