//! Seeing the fleet: `/metrics` (parsed as the Prometheus text format),
//! `/readyz`'s checks, `X-Request-Id`, and the alert rules (promtool).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use billclear::client::Extra;
use billclear::domain::payment::PaymentStatus::*;
use billclear::liveness::{BrokerLink, Heartbeat};
use common::{Options, TestApp};
use hyper::Method;

const ACCOUNT: &str = "3100000011";
const CLOSED: &str = "3100000110";

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    metric: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser of the Prometheus text format (0.0.4): `# HELP` and
/// `# TYPE` comments, and `name{label="value",...} value [timestamp]`
/// lines with escaped label values. (The `prometheus-parse` crate reads a
/// label value holding `}`, as in `/v1/payments/{id}`, wrongly.)
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    let is_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE"))?;
            if !is_name(name)
                || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
            {
                return Err(bad("TYPE"));
            }
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(bad("metric name"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                match chars.peek() {
                    Some((_, '}')) => {
                        let (at, _) = chars.next().unwrap();
                        rest = &r[at + 1..];
                        break;
                    }
                    None => return Err(bad("unclosed labels")),
                    _ => {}
                }
                let mut key = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                if !is_name(&key) || chars.next().map(|x| x.1) != Some('"') {
                    return Err(bad("label name"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|x| x.1) {
                        Some('\\') => match chars.next().map(|x| x.1) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(bad("label escape")),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(bad("unclosed label value")),
                    }
                }
                if labels.insert(key, value).is_some() {
                    return Err(bad("duplicate label"));
                }
                match chars.peek().map(|x| x.1) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => return Err(bad("after a label")),
                }
            }
        }
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| bad("no space before the value"))?
            .split(' ');
        let value: f64 = match fields.next() {
            Some("+Inf") => f64::INFINITY,
            Some("-Inf") => f64::NEG_INFINITY,
            Some(v) => v.parse().map_err(|_| bad("value"))?,
            None => return Err(bad("no value")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| bad("timestamp"))?;
        }
        if fields.next().is_some() {
            return Err(bad("trailing fields"));
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| types.get(*b).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(base) {
            return Err(bad("a sample without a # TYPE"));
        }
        out.push(Sample {
            metric: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let r = app.alipay.get("/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    let ct = r.headers["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let samples = parse_exposition(&r.text()).expect("the Prometheus text format");
    assert!(samples.iter().all(|s| s.metric.starts_with("billclear_")));
    samples
}

/// The value of the sample `name` (a histogram: its `_count`) whose
/// labels include `labels`.
fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let count = format!("{name}_count");
    s.iter()
        .filter(|x| x.metric == name || x.metric == count)
        .find(|x| {
            labels
                .iter()
                .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|x| x.value)
}

fn has(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(s, name, labels).unwrap_or_else(|| {
        let names: std::collections::BTreeSet<_> = s.iter().map(|x| &x.metric).collect();
        let same: Vec<_> = s
            .iter()
            .filter(|x| x.metric == name)
            .map(|x| &x.labels)
            .collect();
        panic!("no {name} {labels:?} in /metrics: {same:?}; names: {names:?}")
    })
}

#[test]
fn the_parser_is_strict() {
    let ok = "# TYPE a counter\na{route=\"/v1/p/{id}\",s=\"q\\\"x\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n";
    let s = parse_exposition(ok).unwrap();
    assert_eq!(s[0].labels["route"], "/v1/p/{id}");
    assert_eq!(s[0].labels["s"], "q\"x");
    assert_eq!(s[2].value, 2.0);
    for bad in [
        "a 1\n",
        "# TYPE a counter\na{x=\"1} 1\n",
        "# TYPE a counter\na{x=1} 1\n",
        "# TYPE a counter\na 1 2 3\n",
        "# TYPE a counter\na{x=\"1\"}1\n",
        "# TYPE a counter\na one\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "{bad:?}");
    }
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
            &[
                ("biller", "sh-water"),
                ("channel", "alipay"),
                ("state", "REJECTED"),
            ],
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
    assert!(
        has(
            &s,
            "billclear_inquiry_budget_used_total",
            &[("biller", "sh-water")]
        ) >= 1.0
    );
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
    assert!(
        has(
            &s,
            "billclear_http_request_seconds",
            &[("route", "/v1/payments")]
        ) >= 2.0
    );
    assert!(!s.iter().any(|x| x
        .labels
        .values()
        .any(|v| v.contains("12345") || v.contains(&ok.to_string()))));
    // The gauges read from the database.
    assert!(has(&s, "billclear_payments_unknown", &[]) >= 0.0);
    assert!(has(&s, "billclear_payments_unknown_oldest_seconds", &[]) >= 0.0);
    for topic in ["dispatch", "callback", "settlement"] {
        assert!(has(&s, "billclear_outbox_depth", &[("topic", topic)]) >= 0.0);
        assert!(has(&s, "billclear_outbox_lag_seconds", &[("topic", topic)]) >= 0.0);
    }
    assert!(has(&s, "billclear_callbacks_pending", &[]) >= 0.0);
    assert!(
        has(
            &s,
            "billclear_breaks_open",
            &[("category", "missing-at-biller")]
        ) >= 0.0
    );
    for files in ["pending", "written", "failed"] {
        assert!(has(&s, "billclear_settlement_batches", &[("files", files)]) >= 0.0);
    }
    let overdue = has(
        &s,
        "billclear_settlement_dates_overdue",
        &[("biller", "sh-water")],
    );
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
    app.seed_break(
        "sh-water",
        "missing-at-us",
        "subject-1",
        None,
        Some(100),
        "seeded",
    )
    .await;
    billclear::metrics::refresh(&*app.state.store, 7)
        .await
        .unwrap();
    let s = scrape(&app).await;
    // Other tests in this binary share the recorder: they may refresh the
    // same gauges from their own databases meanwhile; refresh and read at
    // once, and accept their values only as a lower bound.
    assert!(has(&s, "billclear_payments_unknown", &[]) >= 0.0);
    assert!(
        has(
            &s,
            "billclear_breaks_open",
            &[("category", "missing-at-us")]
        ) >= 0.0
    );
    let g = app.state.store.fleet_gauges(7).await.unwrap();
    assert_eq!(g.unknown, 1);
    assert!(g.unknown_oldest_s >= 690.0, "{}", g.unknown_oldest_s);
    assert_eq!(
        g.open_breaks,
        vec![("missing-at-us".to_string(), 1)],
        "{g:?}"
    );
    let dispatch = g
        .outbox
        .iter()
        .find(|o| o.0 == "dispatch")
        .expect("dispatch work");
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
    for bad in [
        "a".repeat(65),
        "has space".into(),
        "semi;colon".into(),
        "".into(),
    ] {
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
