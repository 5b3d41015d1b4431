//! Seeing the fleet: `/metrics` (parsed as the Prometheus text format),
//! `/readyz`'s checks, `X-Request-Id`, and the alert rules (promtool).

mod common;

use std::time::Duration;

use billclear::client::Extra;
use billclear::domain::payment::PaymentStatus::*;
use billclear::liveness::{BrokerLink, Heartbeat};
use common::{Options, TestApp};
use hyper::Method;
use prometheus_parse::{Scrape, Value};

const ACCOUNT: &str = "3100000011";
const CLOSED: &str = "3100000110";

async fn scrape(app: &TestApp) -> Scrape {
    let r = app.alipay.get("/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    let ct = r.headers["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text();
    // Every line is a comment, a blank or `name{labels} value`.
    for line in text.lines() {
        assert!(
            line.is_empty()
                || line.starts_with("# ")
                || (line.starts_with("billclear_") && line.rsplit_once(' ').is_some()),
            "not a Prometheus text line: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

fn has(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(s, name, labels).unwrap_or_else(|| {
        let names: std::collections::BTreeSet<_> = s.samples.iter().map(|x| &x.metric).collect();
        panic!("no {name} {labels:?} in /metrics; names: {names:?}")
    })
}

#[tokio::test]
async fn metrics_count_payments_dispatch_inquiries_and_requests() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await;
    let ok = app.pay(ACCOUNT, "12.00").await;
    let refused = app.pay(CLOSED, "13.00").await;
    app.wait_for(ok, &[Confirmed], 20).await;
    app.wait_for(refused, &[Rejected], 20).await;
    let r = app
        .alipay
        .get(&format!("/v1/billers/sh-water/bills?account={ACCOUNT}"))
        .await
        .unwrap();
    assert!(r.status.is_success(), "{:?}", r.text());
    let r = app.alipay.get("/v1/payments/not-an-id").await.unwrap();
    assert_eq!(r.status, 404);
    let r = app.alipay.get("/no/such/thing/12345").await.unwrap();
    assert_eq!(r.status, 404);
    // The final-state counter is bumped after the commit: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = scrape(&app).await;
        let done = value(
            &s,
            "billclear_payments_final_total",
            &[("biller", "sh-water"), ("channel", "alipay"), ("state", "REJECTED")],
        )
        .is_some()
            && value(&s, "billclear_gauges_refreshed_timestamp_seconds", &[]).is_some();
        if done || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Counters are per process (other tests of this binary add to them).
    let sw = [("biller", "sh-water"), ("channel", "alipay")];
    assert!(has(&s, "billclear_payments_accepted_total", &sw) >= 2.0);
    assert!(
        has(
            &s,
            "billclear_payments_final_total",
            &[sw[0], sw[1], ("state", "CONFIRMED")]
        ) >= 1.0
    );
    assert!(
        has(
            &s,
            "billclear_payments_final_total",
            &[sw[0], sw[1], ("state", "REJECTED")]
        ) >= 1.0
    );
    assert!(has(&s, "billclear_payment_accept_seconds", &[]) >= 2.0);
    let route = app.connector_of(ok).await.expect("sent through a route");
    assert!(has(&s, "billclear_dispatch_seconds", &[("route", &route)]) >= 2.0);
    assert!(
        has(
            &s,
            "billclear_dispatch_total",
            &[("route", &route), ("outcome", "credited")]
        ) >= 1.0
    );
    assert!(
        has(
            &s,
            "billclear_dispatch_total",
            &[("route", &route), ("outcome", "refused")]
        ) >= 1.0
    );
    let circuit = has(&s, "billclear_route_circuit_state", &[("route", &route)]);
    assert!((0.0..=2.0).contains(&circuit));
    assert!(has(&s, "billclear_inquiry_budget_used_total", &[("biller", "sh-water")]) >= 1.0);
    // HTTP requests by the matched route's template, never the raw path.
    assert!(
        has(
            &s,
            "billclear_http_requests_total",
            &[("route", "/v1/payments"), ("status", "201")]
        ) >= 2.0
    );
    assert!(
        has(
            &s,
            "billclear_http_requests_total",
            &[("route", "/v1/payments/{id}"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        has(
            &s,
            "billclear_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(has(&s, "billclear_http_request_seconds", &[("route", "/v1/payments")]) >= 2.0);
    assert!(!s
        .samples
        .iter()
        .any(|x| x.labels.values().any(|v| v.contains("12345") || v.contains(&ok.to_string()))));
    // The gauges read from the database.
    assert!(has(&s, "billclear_payments_unknown", &[]) >= 0.0);
    assert!(has(&s, "billclear_payments_unknown_oldest_seconds", &[]) >= 0.0);
    for topic in ["dispatch", "callback", "settlement"] {
        assert!(has(&s, "billclear_outbox_depth", &[("topic", topic)]) >= 0.0);
        assert!(has(&s, "billclear_outbox_lag_seconds", &[("topic", topic)]) >= 0.0);
    }
    assert!(has(&s, "billclear_callbacks_pending", &[]) >= 0.0);
    assert!(has(&s, "billclear_breaks_open", &[("category", "missing-at-biller")]) >= 0.0);
    for files in ["pending", "written", "failed"] {
        assert!(has(&s, "billclear_settlement_batches", &[("files", files)]) >= 0.0);
    }
    let overdue = has(&s, "billclear_settlement_dates_overdue", &[("biller", "sh-water")]);
    assert!((0.0..=10.0).contains(&overdue), "{overdue}");
    let now = chrono::Utc::now().timestamp() as f64;
    let refreshed = has(&s, "billclear_gauges_refreshed_timestamp_seconds", &[]);
    assert!((now - refreshed).abs() < 60.0);
    app.finish().await;
}

#[tokio::test]
async fn the_database_gauges_read_unknown_payments_and_breaks() {
    let app = TestApp::spawn().await;
    let id = app.pay(ACCOUNT, "21.00").await;
    sqlx::query(
        "UPDATE payments SET status = 'UNKNOWN', updated_at = now() - interval '700 seconds' \
         WHERE id = $1",
    )
    .bind(id.0)
    .execute(app.store.pool())
    .await
    .unwrap();
    app.seed_break("sh-water", "missing-at-us", "subject-1", None, Some(100), "seeded")
        .await;
    billclear::metrics::refresh(&*app.state.store, 7).await.unwrap();
    let s = scrape(&app).await;
    // Other tests in this binary share the recorder: they may refresh the
    // same gauges from their own databases meanwhile; refresh and read at
    // once, and accept their values only as a lower bound.
    assert!(has(&s, "billclear_payments_unknown", &[]) >= 0.0);
    assert!(has(&s, "billclear_breaks_open", &[("category", "missing-at-us")]) >= 0.0);
    let g = app.state.store.fleet_gauges(7).await.unwrap();
    assert_eq!(g.unknown, 1);
    assert!(g.unknown_oldest_s >= 690.0, "{}", g.unknown_oldest_s);
    assert_eq!(
        g.open_breaks,
        vec![("missing-at-us".to_string(), 1)],
        "{g:?}"
    );
    let dispatch = g.outbox.iter().find(|o| o.0 == "dispatch").expect("dispatch work");
    assert_eq!(dispatch.1, 1);
    app.close().await;
}

#[tokio::test]
async fn readyz_names_each_check_and_no_error_text() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await;
    let r = app.alipay.get("/readyz").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["checks"],
        serde_json::json!({"database": "ok", "broker": "off", "workers": "ok"})
    );
    // A settlement relay that cannot reach its broker.
    let link = BrokerLink::default();
    let mut amqp = app.state.config.amqp.clone();
    amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let relay = billclear::settlement::broker::Relay::new(app.state.store.clone(), amqp, "t")
        .with_link(link.clone())
        .spawn();
    app.state.liveness.watch_broker("relay", link);
    // A worker loop that stopped going round.
    let stale = Heartbeat::default();
    app.state
        .liveness
        .watch_worker("stuck", stale, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.alipay.get("/readyz").await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(
        body["checks"],
        serde_json::json!({"database": "ok", "broker": "down", "workers": "down"})
    );
    assert!(!r.text().contains("127.0.0.1"), "{}", r.text());
    relay.abort();
    // The database gone: said, without the driver's words.
    if let Some(w) = &app.workers {
        w.abort();
    }
    app.store.pool().close().await;
    let r = app.alipay.get("/readyz").await.unwrap();
    assert_eq!(r.status, 503);
    let body = r.json();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["checks"]["database"], "down");
    assert_eq!(
        body["detail"], "not ready: database, broker, workers down",
        "{body}"
    );
    let text = r.text().to_lowercase();
    for leak in ["pool", "closed", "sqlx", "postgres", "error", "connection"] {
        assert!(!text.contains(leak), "{leak:?} in {text}");
    }
    assert!(r.headers.contains_key("x-request-id"));
    if let Some(sim) = &app.sim {
        sim.shutdown();
    }
    let _ = billclear::store::postgres::drop_database(&common::server_url(), &app.db_name).await;
}

async fn with_id(app: &TestApp, path: &str, id: &str) -> billclear::client::Reply {
    app.alipay
        .send(
            Method::GET,
            path,
            Vec::new(),
            Extra {
                headers: vec![("X-Request-Id".into(), id.into())],
                ..Extra::default()
            },
        )
        .await
        .unwrap()
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_replaced_when_not() {
    let app = TestApp::spawn().await;
    let id_of = |r: &billclear::client::Reply| {
        r.headers
            .get("x-request-id")
            .expect("x-request-id on every answer")
            .to_str()
            .unwrap()
            .to_string()
    };
    let r = with_id(&app, "/healthz", "abc-123_X.y").await;
    assert_eq!((r.status.as_u16(), id_of(&r)), (200, "abc-123_X.y".into()));
    let longest = "a".repeat(64);
    assert_eq!(id_of(&with_id(&app, "/healthz", &longest).await), longest);
    // Error answers carry it too.
    let r = with_id(&app, "/v1/payments/nope", "err-1").await;
    assert_eq!((r.status.as_u16(), id_of(&r)), (404, "err-1".into()));
    let r = with_id(&app, "/no/such/path", "err-2").await;
    assert_eq!((r.status.as_u16(), id_of(&r)), (404, "err-2".into()));
    // Replaced: too long, bad characters, empty, absent.
    for bad in ["a".repeat(65), "has space".into(), "semi;colon".into(), "".into()] {
        let r = with_id(&app, "/healthz", &bad).await;
        let got = id_of(&r);
        assert!(is_uuid(&got) && got != bad, "{bad:?} -> {got:?}");
    }
    let r = app.alipay.get("/healthz").await.unwrap();
    assert!(is_uuid(&id_of(&r)));
    let a = id_of(&app.alipay.get("/healthz").await.unwrap());
    let b = id_of(&app.alipay.get("/healthz").await.unwrap());
    assert_ne!(a, b, "a new id per request");
    app.close().await;
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/monitoring/alerts.yml");
    match std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    {
        Err(_) => {
            println!("promtool is not installed (ops/ensure-promtool.sh installs it): alert rules not checked");
        }
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every metric the alert rules and the dashboard use is one the README
/// documents, and every documented name has the `billclear_` prefix.
#[test]
fn the_rules_and_dashboard_use_documented_names() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let rules = std::fs::read_to_string(format!("{root}/ops/monitoring/alerts.yml")).unwrap();
    let dash =
        std::fs::read_to_string(format!("{root}/ops/monitoring/grafana-dashboard.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dash).expect("the dashboard is JSON");
    let names = regex::Regex::new(r"billclear_[a-z_]+").unwrap();
    for (what, text) in [("alerts.yml", &rules), ("grafana-dashboard.json", &dash)] {
        for m in names.find_iter(text) {
            let base = m
                .as_str()
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                readme.contains(&format!("`{base}`")),
                "{what} uses {base}, which the README does not document"
            );
        }
    }
}
