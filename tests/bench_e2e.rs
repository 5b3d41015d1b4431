//! `billclear bench e2e` on a small load: the real command (this build's
//! binary) against the PostgreSQL server of the tests, printing one JSON
//! object; every payment confirmed, the audit clean, the figures sane.
//! And a drain that times out ends the run with a failed audit.

mod common;

use std::process::Command;

use billclear::bench::e2e::{measure, E2eBenchArgs};
use billclear::config::Config;

fn number(report: &serde_json::Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {report:#}"))
}

#[test]
fn bench_e2e_confirms_every_payment_and_audits_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_billclear"))
        .args([
            "bench",
            "e2e",
            "--payments",
            "300",
            "--rate",
            "200",
            "--biller-latency-ms",
            "5",
            "--drain-timeout-s",
            "120",
            "--progress-s",
            "1",
            "--json",
        ])
        .env(
            "BILLCLEAR_DATABASE__URL",
            billclear::store::postgres::with_database(
                &common::server_url(),
                "billclear_test_bench_e2e_unused",
            ),
        )
        .output()
        .expect("runs billclear");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // One JSON object, nothing else on stdout; the setup lines and the
    // progress went to stderr.
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stdout:\n{stdout}");
    let r: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert!(stderr.contains("offered"), "no progress line:\n{stderr}");

    for field in [
        "accepted_per_s",
        "confirmed_per_s",
        "drain_s",
        "accept_to_confirmed_p50_ms",
        "accept_to_confirmed_p99_ms",
        "callback_ack_p99_ms",
        "refused_backlogged",
    ] {
        let v = number(&r, field);
        assert!(v.is_finite() && v >= 0.0, "{field} = {v}");
    }
    assert_eq!(r["audit_ok"], true, "{r:#}");
    assert_eq!(r["audit_problems"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["drained"], true, "{r:#}");
    for field in ["offered", "accepted", "confirmed", "callbacks_acknowledged"] {
        assert_eq!(number(&r, field), 300.0, "{field}: {r:#}");
    }
    for field in [
        "rejected",
        "not_final",
        "unanswered",
        "refused_backlogged",
        "outbox_pending",
    ] {
        assert_eq!(number(&r, field), 0.0, "{field}: {r:#}");
    }
    assert_eq!(number(&r, "books_matched"), 300.0, "{r:#}");
    for flag in [
        "events_exactly_once",
        "ledger_balanced",
        "every_payment_one_transfer",
        "books_agree",
        "callbacks_all_verified",
    ] {
        assert_eq!(r[flag], true, "{flag}: {r:#}");
    }

    // Percentiles in order; a payment cannot be confirmed sooner than the
    // biller answers (5 ms), nor its callback arrive before its answer.
    for (p50, p99) in [
        ("accept_to_confirmed_p50_ms", "accept_to_confirmed_p99_ms"),
        ("callback_ack_p50_ms", "callback_ack_p99_ms"),
        ("answer_p50_ms", "answer_p99_ms"),
        ("accept_to_callback_p50_ms", "accept_to_callback_p99_ms"),
    ] {
        assert!(number(&r, p50) <= number(&r, p99), "{p50} > {p99}: {r:#}");
    }
    assert!(number(&r, "accept_to_confirmed_p50_ms") >= 5.0, "{r:#}");
    assert!(
        number(&r, "accept_to_confirmed_max_ms") >= number(&r, "accept_to_confirmed_p99_ms"),
        "{r:#}"
    );
    assert!(number(&r, "callback_ack_p50_ms") > 0.0, "{r:#}");

    // Open loop at 200/s: 300 payments over ~1.5 s, never faster than the
    // schedule; nothing accepted faster than offered.
    let offered_per_s = number(&r, "offered_per_s");
    assert!(
        (150.0..=205.0).contains(&offered_per_s),
        "offered at {offered_per_s}/s: {r:#}"
    );
    assert!(number(&r, "accepted_per_s") > 0.0, "{r:#}");
    assert!(number(&r, "accepted_per_s") <= offered_per_s + 1.0, "{r:#}");
    assert!(number(&r, "confirmed_per_s") > 0.0, "{r:#}");
    assert!(number(&r, "drain_s") < 120.0, "{r:#}");
    assert!(r["database"].is_null(), "the database is dropped: {r:#}");
}

#[tokio::test]
async fn a_drain_that_times_out_fails_the_audit() {
    let mut config = Config::default();
    config.database.url = billclear::store::postgres::with_database(
        &common::server_url(),
        "billclear_test_bench_e2e_unused",
    );
    // The billers take 800 ms to answer; the bench waits not at all after
    // the last offer.
    let args = E2eBenchArgs {
        payments: 20,
        rate: 100,
        biller_latency_ms: 800,
        max_in_flight: 64,
        drain_timeout_s: 0,
        progress_s: 0,
        json: true,
        keep_db: false,
        seed: 3,
        instances: 1,
        route_max_in_flight: 192,
    };
    let r = measure(&config, &args).await.expect("the bench runs");
    assert!(!r.drained, "{r:#?}");
    assert!(!r.audit_ok, "{r:#?}");
    assert_eq!(r.accepted, 20, "{r:#?}");
    assert!(r.not_final > 0, "{r:#?}");
    assert!(
        r.audit_problems
            .iter()
            .any(|p| p.contains("not drained within 0 s")),
        "{r:#?}"
    );
    assert!(!r.events_exactly_once, "{r:#?}");
}
