//! The water connector against the water simulator, over real sockets.
//! Unhappy paths first.

use std::str::FromStr;
use std::time::Duration;

use biller_connectors::water::WaterConnector;
use biller_connectors::ConnectorKind;
use biller_connectors::PlainKeyFiles;
use biller_connectors::{
    BillQuery, Connector, ConnectorError, ConnectorSettings, NextStep, PayOrder, RemoteStatus,
};
use biller_sim::{Account, Faults, SimBill, WaterSim, WaterSimConfig};
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;

const SECRET: &str = "test-secret-0123456789";
const TIMEOUT_MS: u64 = 300;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn account(number: &str, open: bool) -> Account {
    Account {
        account_number: number.into(),
        customer_name: "张伟".into(),
        open,
        bills: vec![
            SimBill {
                bill_reference: "B2".into(),
                amount_due: dec("120.00"),
                due_date: NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
            },
            SimBill {
                bill_reference: "B1".into(),
                amount_due: dec("88.50"),
                due_date: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
            },
        ],
    }
}

async fn sim() -> WaterSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = WaterSimConfig::new("billclear", SECRET);
    config.book = vec![
        ("sh-water".into(), account("3100000011", true)),
        ("sh-water".into(), account("3100000029", false)),
    ];
    WaterSim::start(listener, config).await.unwrap()
}

fn connector_with(sim: &WaterSim, secret: &str, timeout_ms: u64) -> WaterConnector {
    let settings = ConnectorSettings {
        kind: ConnectorKind::WaterJson,
        allow_plaintext: true,
        base_url: sim.base_url(),
        key_id: "billclear".into(),
        secret: secret.into(),
        timeout_ms,
        ..Default::default()
    };
    WaterConnector::new("water", &settings, &PlainKeyFiles).unwrap()
}

fn connector(sim: &WaterSim) -> WaterConnector {
    connector_with(sim, SECRET, TIMEOUT_MS)
}

fn order(reference: &str) -> PayOrder {
    PayOrder {
        our_reference: reference.into(),
        biller_id: "sh-water".into(),
        account_number: "3100000011".into(),
        amount: dec("88.50"),
        currency: "CNY".into(),
        bill_reference: None,
    }
}

fn assert_next(result: &Result<impl std::fmt::Debug, ConnectorError>, next: NextStep) {
    match result {
        Err(e) => assert_eq!(e.next_step(), next, "{e}"),
        Ok(v) => panic!("expected {next:?}, got Ok({v:?})"),
    }
}

#[tokio::test]
async fn sim_shut_down_is_retry() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.shutdown();
    let r = c.pay(&order("p-down")).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("could not connect"));
    assert_next(&c.health().await, NextStep::Retry);
}

#[tokio::test]
async fn shutdown_drops_open_connections_and_refuses_new_ones() {
    let sim = sim().await;
    let c = connector(&sim);
    c.health().await.unwrap(); // a pooled keep-alive connection now exists
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_next(&c.status(&order("p-x")).await, NextStep::Retry);
    let fresh = connector(&sim);
    assert_next(&fresh.pay(&order("p-after")).await, NextStep::Retry);
    assert!(sim.credits().is_empty());
}

#[tokio::test]
async fn wrong_secret_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector_with(&sim, "not-the-secret", TIMEOUT_MS);
    let r = c.pay(&order("p-badkey")).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("4001"));
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
    assert_eq!(sim.pay_requests(), 1);
    let good = connector(&sim);
    assert_eq!(
        good.status(&order("p-badkey")).await,
        Ok(RemoteStatus::NotFound)
    );
}

#[tokio::test]
async fn outage_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    assert_next(&c.pay(&order("p-out")).await, NextStep::Retry);
    assert_next(&c.status(&order("p-out")).await, NextStep::Retry);
    assert_next(&c.health().await, NextStep::Retry);
    let q = BillQuery {
        biller_id: "sh-water".into(),
        account_number: "3100000011".into(),
    };
    assert_next(&c.bills(&q).await, NextStep::Retry);
    assert!(sim.credits().is_empty());
    sim.set_faults(Faults::default());
    assert_eq!(c.status(&order("p-out")).await, Ok(RemoteStatus::NotFound));
}

#[tokio::test]
async fn error_rate_one_is_retry() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = c.pay(&order("p-busy")).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("9001"));
    assert!(sim.credits().is_empty());
    assert_eq!(sim.pay_requests(), 1);
}

#[tokio::test]
async fn closed_account_is_fail_1002_and_recorded() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = PayOrder {
        account_number: "3100000029".into(),
        ..order("p-closed")
    };
    match c.pay(&o).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "1002"),
        other => panic!("{other:?}"),
    }
    let rejections = sim.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].our_reference, "p-closed");
    assert_eq!(rejections[0].code, "1002");
    assert!(sim.credits().is_empty());
    match c.status(&o).await {
        Ok(RemoteStatus::Rejected(r)) => assert_eq!(r.code, "1002"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_account_is_fail_1001() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = PayOrder {
        account_number: "3100000037".into(),
        ..order("p-unknown")
    };
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("1001", "account not found")
    );
    let other_currency = PayOrder {
        currency: "HKD".into(),
        ..order("p-hkd")
    };
    match c.pay(&other_currency).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "1004"),
        other => panic!("{other:?}"),
    }
    let too_fine = PayOrder {
        amount: dec("1.005"),
        ..order("p-fine")
    };
    match c.pay(&too_fine).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "1003"),
        other => panic!("{other:?}"),
    }
    assert!(sim.credits().is_empty());
}

#[tokio::test]
async fn reference_reused_with_other_details_is_unknown_and_not_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    c.pay(&order("p-reuse")).await.unwrap();
    let other = PayOrder {
        amount: dec("10.00"),
        ..order("p-reuse")
    };
    let r = c.pay(&other).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("1009"));
    assert_eq!(sim.credits().len(), 1);
}

#[tokio::test]
async fn dropped_answer_is_unknown_then_status_finds_the_credit() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let o = order("p-drop");
    assert_next(&c.pay(&o).await, NextStep::Unknown);
    let credits = sim.credits();
    assert_eq!(credits.len(), 1);
    assert_eq!(sim.faults().drop_response_next, 0);
    match c.status(&o).await {
        Ok(RemoteStatus::Credited(credit)) => {
            assert_eq!(credit.biller_reference, credits[0].biller_reference);
            assert_eq!(credit.credited_at, credits[0].credited_at);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn latency_beyond_timeout_is_unknown_and_applied_later() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    let o = order("p-slow");
    assert_next(&c.pay(&o).await, NextStep::Unknown);
    assert!(sim.credits().is_empty(), "not yet processed");
    sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sim.credits().len(),
        1,
        "processing went on without the client"
    );
    match c.status(&o).await {
        Ok(RemoteStatus::Credited(credit)) => {
            assert_eq!(credit.biller_reference, sim.credits()[0].biller_reference)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn blackhole_is_unknown_nothing_applied_then_not_found() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    let o = order("p-hole");
    assert_next(&c.pay(&o).await, NextStep::Unknown);
    assert_next(&c.status(&o).await, NextStep::Retry);
    assert!(sim.credits().is_empty());
    sim.set_faults(Faults::default());
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::NotFound));
}

#[tokio::test]
async fn misecho_is_unknown_naming_the_amount() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        misecho_next: 1,
        ..Faults::default()
    });
    let r = c.pay(&order("p-echo")).await;
    assert_next(&r, NextStep::Unknown);
    let reason = r.unwrap_err().to_string();
    assert!(
        reason.contains("amount") && reason.contains("88.51"),
        "{reason}"
    );
    assert_eq!(sim.credits().len(), 1, "applied normally");
    assert_eq!(sim.faults().misecho_next, 0);
}

#[tokio::test]
async fn bills_unknown_account_is_fail_1001() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "sh-water".into(),
        account_number: "0000000000".into(),
    };
    assert_eq!(
        c.bills(&q).await.unwrap_err(),
        ConnectorError::fail("1001", "account not found")
    );
    let wrong_biller = BillQuery {
        biller_id: "gas".into(),
        account_number: "3100000011".into(),
    };
    assert_next(&c.bills(&wrong_biller).await, NextStep::Fail);
}

#[tokio::test]
async fn bills_for_a_known_account() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "sh-water".into(),
        account_number: "3100000011".into(),
    };
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.customer_name, "张伟");
    assert_eq!(statement.bills.len(), 2);
    assert_eq!(statement.bills[1].amount_due, dec("88.50"));
    assert_eq!(statement.bills[1].currency, "CNY");
    // Paying the oldest bill in full leaves only the other one.
    c.pay(&order("p-bill")).await.unwrap();
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.bills.len(), 1);
    assert_eq!(statement.bills[0].bill_reference, "B2");
}

#[tokio::test]
async fn success_echoes_and_a_second_send_is_a_duplicate() {
    let sim = sim().await;
    let c = connector(&sim);
    c.health().await.unwrap();
    let o = order("p-ok");
    let first = c.pay(&o).await.unwrap();
    assert!(first.biller_reference.starts_with('W'));
    let second = c.pay(&o).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.pay_requests(), 2);
    let credit = &sim.credits()[0];
    assert_eq!(credit.our_reference, "p-ok");
    assert_eq!(credit.amount, dec("88.50"));
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::Credited(first)));
}

#[tokio::test]
async fn confirmation_csv_lists_the_day_and_a_trailer() {
    let sim = sim().await;
    let c = connector(&sim);
    c.pay(&order("p-c1")).await.unwrap();
    let second = PayOrder {
        amount: dec("11.5"),
        ..order("p-c2")
    };
    c.pay(&second).await.unwrap();
    let closed = PayOrder {
        account_number: "3100000029".into(),
        ..order("p-c3")
    };
    assert_next(&c.pay(&closed).await, NextStep::Fail);
    let credits = sim.credits();
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let day = credits[0].credited_at.with_timezone(&offset).date_naive();
    let csv = sim.confirmation_csv("sh-water", day);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at"
    );
    if credits[1].credited_at.with_timezone(&offset).date_naive() == day {
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(lines[1].starts_with(&format!(
            "p-c1,{},sh-water,3100000011,88.50,CNY,",
            credits[0].biller_reference
        )));
        assert!(lines[2].starts_with("p-c2,") && lines[2].contains(",11.50,CNY,"));
        assert_eq!(lines[3], "TRAILER,2,100.00");
    }
    let other_day = day.pred_opt().unwrap();
    assert_eq!(
        sim.confirmation_csv("sh-water", other_day),
        "our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at\nTRAILER,0,0.00\n"
    );
    assert!(
        Utc::now().signed_duration_since(credits[0].credited_at) < chrono::Duration::minutes(1)
    );
}

/// The admin endpoints, over plain HTTP.
#[tokio::test]
async fn admin_endpoints() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    let sim = sim().await;
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let call = |method: &str, path: &str, body: &str| {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", sim.base_url()))
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let client = client.clone();
        async move {
            let resp = client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (s, _) = call("PUT", "/_sim/faults", r#"{"drop_response_next":3}"#).await;
    assert_eq!(s, 200);
    assert_eq!(sim.faults().drop_response_next, 3);
    let (s, body) = call("GET", "/_sim/faults", "").await;
    assert_eq!(s, 200);
    assert!(body.contains(r#""drop_response_next":3"#), "{body}");
    let (s, _) = call("PUT", "/_sim/faults", r#"{"error_rate":2}"#).await;
    assert_eq!(s, 400);
    let (s, _) = call("PUT", "/_sim/faults", r#"{"typo":true}"#).await;
    assert_eq!(s, 400);
    let entry =
        serde_json::json!({"biller_id": "pudong-water", "account": account("PD20261129", true)});
    let (s, _) = call("POST", "/_sim/accounts", &entry.to_string()).await;
    assert_eq!(s, 204);
    assert!(sim.account("pudong-water", "PD20261129").is_some());
    let (s, body) = call("GET", "/_sim/credits", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = call("GET", "/_sim/rejections", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = call("GET", "/_sim/confirmations/sh-water/2026-11-29", "").await;
    assert_eq!(s, 200);
    assert!(body.ends_with("TRAILER,0,0.00\n"));
    let (s, _) = call("GET", "/_sim/confirmations/sh-water/nope", "").await;
    assert_eq!(s, 400);
    let big = "x".repeat(100_000);
    let (s, _) = call("POST", "/api/v1/payments", &big).await;
    assert_eq!(s, 413, "body size is bounded");
}

/// How the rogue biller signs its canned answer.
#[derive(Clone, Copy)]
enum Signing {
    Good,
    Unsigned,
    OtherSecret,
    OtherNonce,
}

/// A biller that answers every request with one canned answer.
async fn rogue(
    status: u16,
    body: &'static str,
    signing: Signing,
) -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use biller_connectors::water::codec;
    let handler = move |headers: HeaderMap| async move {
        let nonce = match signing {
            Signing::OtherNonce => "0000".to_string(),
            _ => headers[codec::HEADER_NONCE].to_str().unwrap().to_string(),
        };
        let secret: &[u8] = match signing {
            Signing::OtherSecret => b"someone-else",
            _ => SECRET.as_bytes(),
        };
        let ts = Utc::now().timestamp();
        let sig = codec::sign(
            &biller_connectors::Signer::hmac(secret).unwrap(),
            &codec::response_string_to_sign(status, ts, &nonce, body.as_bytes()),
        );
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        if !matches!(signing, Signing::Unsigned) {
            let h = response.headers_mut();
            h.insert(codec::HEADER_TIMESTAMP, ts.to_string().parse().unwrap());
            h.insert(codec::HEADER_SIGNATURE, sig.parse().unwrap());
        }
        response
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

fn connector_at(url: &str) -> WaterConnector {
    let settings = ConnectorSettings {
        kind: ConnectorKind::WaterJson,
        allow_plaintext: true,
        base_url: url.into(),
        key_id: "billclear".into(),
        secret: SECRET.into(),
        timeout_ms: TIMEOUT_MS,
        ..Default::default()
    };
    WaterConnector::new("water", &settings, &PlainKeyFiles).unwrap()
}

const GOOD_PAY: &str = r#"{"result_code":"0000","result_msg":"ok","txn_ref":"p-rogue","account_no":"3100000011","amount":"88.50","currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T02:03:04Z","duplicate":false}"#;

async fn pay_against(
    status: u16,
    body: &'static str,
    signing: Signing,
) -> Result<biller_connectors::Credit, ConnectorError> {
    let (url, task) = rogue(status, body, signing).await;
    let r = connector_at(&url).pay(&order("p-rogue")).await;
    task.abort();
    r
}

#[tokio::test]
async fn unsigned_answer_is_unknown_for_pay_and_retry_for_status() {
    let r = pay_against(200, GOOD_PAY, Signing::Unsigned).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("unsigned"));
    let (url, task) = rogue(200, GOOD_PAY, Signing::Unsigned).await;
    assert_next(
        &connector_at(&url).status(&order("p-rogue")).await,
        NextStep::Retry,
    );
    task.abort();
}

#[tokio::test]
async fn badly_signed_answers_are_unknown() {
    for signing in [Signing::OtherSecret, Signing::OtherNonce] {
        let r = pay_against(200, GOOD_PAY, signing).await;
        assert_next(&r, NextStep::Unknown);
        assert!(r.unwrap_err().to_string().contains("signature"));
    }
    // An unverifiable "refused" is not trusted either: only 401 auth codes are.
    let r = pay_against(
        200,
        r#"{"result_code":"1001","result_msg":"x"}"#,
        Signing::OtherSecret,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(
        401,
        r#"{"result_code":"4001","result_msg":"x"}"#,
        Signing::OtherSecret,
    )
    .await;
    assert_next(&r, NextStep::Retry);
}

#[tokio::test]
async fn malformed_answers_are_unknown_naming_the_field() {
    let r = pay_against(
        200,
        r#"{"result_code":"0000","txn_ref":"p-rogue","account_no":"3100000011","amount":88.5,"currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T02:03:04Z"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("`amount`"));
    let r = pay_against(
        200,
        r#"{"result_code":"0000","account_no":"3100000011","amount":"88.50","currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T02:03:04Z"}"#,
        Signing::Good,
    )
    .await;
    assert!(r.unwrap_err().to_string().contains("`txn_ref`"));
    let r = pay_against(200, "<html>busy</html>", Signing::Good).await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(502, "", Signing::Unsigned).await;
    assert_next(&r, NextStep::Unknown);
}

#[tokio::test]
async fn unknown_result_code_is_unknown() {
    let r = pay_against(
        200,
        r#"{"result_code":"7777","result_msg":"?"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("7777"));
    let r = pay_against(
        200,
        r#"{"result_code":"9999","result_msg":"?"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(
        503,
        r#"{"result_code":"9001","result_msg":"busy"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Retry);
}

#[tokio::test]
async fn a_well_signed_golden_answer_is_a_credit() {
    let credit = pay_against(200, GOOD_PAY, Signing::Good).await.unwrap();
    assert_eq!(credit.biller_reference, "W1");
    let (url, task) = rogue(
        200,
        r#"{"result_code":"0000","txn_ref":"p-rogue","state":"CREDITED","account_no":"3100000011","amount":"88.50","currency":"CNY"}"#,
        Signing::Good,
    )
    .await;
    let r = connector_at(&url).status(&order("p-rogue")).await;
    task.abort();
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("`receipt_no`"));
}

#[tokio::test]
async fn status_echo_mismatch_is_unknown() {
    let (url, task) = rogue(
        200,
        r#"{"result_code":"0000","txn_ref":"p-rogue","state":"CREDITED","account_no":"3100000099","amount":"88.50","currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T02:03:04Z"}"#,
        Signing::Good,
    )
    .await;
    let r = connector_at(&url).status(&order("p-rogue")).await;
    task.abort();
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("account number"));
}
