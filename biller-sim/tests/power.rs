//! The electricity connector against the electricity simulator, over real
//! sockets; then against a rogue biller with canned answers. Unhappy paths
//! first.

use std::str::FromStr;
use std::time::Duration;

use biller_connectors::power::codec::{self, Confirmation, MsgType};
use biller_connectors::power::PowerConnector;
use biller_connectors::ConnectorKind;
use biller_connectors::PlainKeyFiles;
use biller_connectors::{
    BillQuery, Connector, ConnectorError, ConnectorSettings, NextStep, PayOrder, RemoteStatus,
};
use biller_sim::{Account, Faults, PowerSim, PowerSimConfig, SimBill};
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;

const SECRET: &str = "test-secret-0123456789";
const TIMEOUT_MS: u64 = 300;
const OPEN: &str = "0306406159";
const CLOSED: &str = "0300010369";

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

async fn sim() -> PowerSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = PowerSimConfig::new("billclear", SECRET);
    config.book = vec![
        ("sh-power".into(), account(OPEN, true)),
        ("sh-power".into(), account(CLOSED, false)),
    ];
    PowerSim::start(listener, config).await.unwrap()
}

fn connector_with(url: &str, secret: &str, timeout_ms: u64) -> PowerConnector {
    let settings = ConnectorSettings {
        kind: ConnectorKind::PowerXml,
        allow_plaintext: true,
        base_url: url.into(),
        key_id: "billclear".into(),
        secret: secret.into(),
        timeout_ms,
        ..Default::default()
    };
    PowerConnector::new("power-direct", &settings, &PlainKeyFiles).unwrap()
}

fn connector(sim: &PowerSim) -> PowerConnector {
    connector_with(&sim.base_url(), SECRET, TIMEOUT_MS)
}

fn order(reference: &str) -> PayOrder {
    PayOrder {
        our_reference: reference.into(),
        biller_id: "sh-power".into(),
        account_number: OPEN.into(),
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

#[test]
fn the_test_accounts_carry_valid_check_digits() {
    for n in [OPEN, CLOSED] {
        let (payload, check) = n.split_at(9);
        assert_eq!(
            biller_sim::mod11_check_digit(payload).map(|d| d.to_string()),
            Some(check.to_string()),
            "{n}"
        );
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
    assert!(sim.credits().is_empty());
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
    let c = connector_with(&sim.base_url(), "not-the-secret", TIMEOUT_MS);
    let r = c.pay(&order("p-badkey")).await;
    assert_next(&r, NextStep::Retry);
    let reason = r.unwrap_err().to_string();
    assert!(
        reason.contains("E401") && reason.contains("check key id and secret"),
        "{reason}"
    );
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
    assert_eq!(sim.pay_requests(), 1);
    assert_next(&c.health().await, NextStep::Retry);
    let good = connector(&sim);
    assert_eq!(
        good.status(&order("p-badkey")).await,
        Ok(RemoteStatus::NotFound)
    );
}

#[tokio::test]
async fn unknown_sender_is_retry() {
    let sim = sim().await;
    let settings = ConnectorSettings {
        kind: ConnectorKind::PowerXml,
        allow_plaintext: true,
        base_url: sim.base_url(),
        key_id: "someone-else".into(),
        secret: SECRET.into(),
        timeout_ms: TIMEOUT_MS,
        ..Default::default()
    };
    let c = PowerConnector::new("p", &settings, &PlainKeyFiles).unwrap();
    let r = c.pay(&order("p-sender")).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("unknown sender"));
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
}

#[tokio::test]
async fn outage_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let r = c.pay(&order("p-out")).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("S902"));
    assert_next(&c.status(&order("p-out")).await, NextStep::Retry);
    assert_next(&c.health().await, NextStep::Retry);
    let q = BillQuery {
        biller_id: "sh-power".into(),
        account_number: OPEN.into(),
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
    assert!(r.unwrap_err().to_string().contains("S901"));
    assert!(sim.credits().is_empty());
    assert_eq!(sim.pay_requests(), 1);
}

#[tokio::test]
async fn closed_account_is_fail_e102_and_recorded() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = PayOrder {
        account_number: CLOSED.into(),
        ..order("p-closed")
    };
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("E102", "account closed")
    );
    let rejections = sim.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].our_reference, "p-closed");
    assert_eq!(rejections[0].code, "E102");
    assert!(sim.credits().is_empty());
    match c.status(&o).await {
        Ok(RemoteStatus::Rejected(r)) => assert_eq!(r.code, "E102"),
        other => panic!("{other:?}"),
    }
    // Sent again: the same refusal, recorded once.
    assert_next(&c.pay(&o).await, NextStep::Fail);
    assert_eq!(sim.rejections().len(), 1);
}

#[tokio::test]
async fn unknown_account_currency_and_amount_are_refused() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = PayOrder {
        account_number: "0306406167".into(),
        ..order("p-unknown")
    };
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("E101", "account not found")
    );
    let other_currency = PayOrder {
        currency: "HKD".into(),
        ..order("p-hkd")
    };
    match c.pay(&other_currency).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "E104"),
        other => panic!("{other:?}"),
    }
    let too_fine = PayOrder {
        amount: dec("1.005"),
        ..order("p-fine")
    };
    match c.pay(&too_fine).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "E103"),
        other => panic!("{other:?}"),
    }
    assert!(sim.credits().is_empty());
    assert_eq!(sim.rejections().len(), 3);
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
    assert!(r.unwrap_err().to_string().contains("E109"));
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.credits()[0].amount, dec("88.50"));
    assert!(sim.rejections().is_empty());
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
    assert_eq!(sim.credits().len(), 1);
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
    let r = c.pay(&o).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("no answer within"));
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
async fn bills_unknown_and_closed_accounts_are_fail() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = |biller: &str, account: &str| BillQuery {
        biller_id: biller.into(),
        account_number: account.into(),
    };
    assert_eq!(
        c.bills(&q("sh-power", "0000000000")).await.unwrap_err(),
        ConnectorError::fail("E101", "account not found")
    );
    assert_eq!(
        c.bills(&q("sh-power", CLOSED)).await.unwrap_err(),
        ConnectorError::fail("E102", "account closed")
    );
    assert_next(&c.bills(&q("sh-gas", OPEN)).await, NextStep::Fail);
}

#[tokio::test]
async fn bills_for_a_known_account() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "sh-power".into(),
        account_number: OPEN.into(),
    };
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.account_number, OPEN);
    assert_eq!(statement.customer_name, "张伟");
    assert_eq!(statement.bills.len(), 2);
    assert_eq!(statement.bills[1].bill_reference, "B1");
    assert_eq!(statement.bills[1].amount_due, dec("88.50"));
    assert_eq!(statement.bills[1].currency, "CNY");
    assert_eq!(
        statement.bills[1].due_date,
        NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()
    );
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
    assert!(first.biller_reference.starts_with("PWR"));
    let second = c.pay(&o).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.pay_requests(), 2);
    let credit = &sim.credits()[0];
    assert_eq!(credit.our_reference, "p-ok");
    assert_eq!(credit.amount, dec("88.50"));
    assert_eq!(credit.biller_reference, first.biller_reference);
    assert_eq!(credit.credited_at, first.credited_at);
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::Credited(first)));
    // The same value at another scale is the same order.
    let rescaled = PayOrder {
        amount: dec("88.5"),
        ..o
    };
    c.pay(&rescaled).await.unwrap();
    assert_eq!(sim.credits().len(), 1);
}

#[tokio::test]
async fn the_default_book_serves_sh_power() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = PowerSimConfig::new("billclear", SECRET);
    config.book = biller_sim::book_for(&["sh-power"], Utc::now().date_naive());
    let sim = PowerSim::start(listener, config).await.unwrap();
    let c = connector(&sim);
    let statement = c
        .bills(&BillQuery {
            biller_id: "sh-power".into(),
            account_number: "0306406159".into(),
        })
        .await
        .unwrap();
    assert!(!statement.bills.is_empty());
    let bill = &statement.bills[0];
    let o = PayOrder {
        amount: bill.amount_due,
        bill_reference: Some(bill.bill_reference.clone()),
        ..order("p-default")
    };
    c.pay(&o).await.unwrap();
    assert_eq!(
        sim.credits()[0].bill_reference.as_deref(),
        Some(bill.bill_reference.as_str())
    );
}

#[tokio::test]
async fn confirmation_file_lists_the_day_with_its_control_block() {
    let sim = sim().await;
    let c = connector(&sim);
    c.pay(&order("p-c1")).await.unwrap();
    let second = PayOrder {
        amount: dec("11.5"),
        ..order("p-c2")
    };
    c.pay(&second).await.unwrap();
    let closed = PayOrder {
        account_number: CLOSED.into(),
        ..order("p-c3")
    };
    assert_next(&c.pay(&closed).await, NextStep::Fail);
    let credits = sim.credits();
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let day = credits[0].credited_at.with_timezone(&offset).date_naive();
    let xml = sim.confirmation_xml("sh-power", day);
    let file = Confirmation::decode(xml.as_bytes()).unwrap();
    assert_eq!(file.biller_code, "sh-power");
    assert_eq!(file.business_date, day);
    if credits[1].credited_at.with_timezone(&offset).date_naive() == day {
        assert_eq!(file.credits.len(), 2, "{xml}");
        let first = &file.credits[0];
        assert_eq!(first.txn_ref, "p-c1");
        assert_eq!(first.receipt_no, credits[0].biller_reference);
        assert_eq!(first.account_no, OPEN);
        assert_eq!(first.amount, dec("88.50"));
        assert_eq!(first.currency, "CNY");
        assert_eq!(first.credited_at, credits[0].credited_at);
        assert_eq!(first.credited_at.offset(), &offset);
        assert_eq!(file.credits[1].txn_ref, "p-c2");
        assert!(
            xml.contains("<Count>2</Count><Total>100.00</Total>")
                && xml.contains("<Amount>11.50</Amount>"),
            "{xml}"
        );
    }
    let other_day = day.pred_opt().unwrap();
    let empty = sim.confirmation_xml("sh-power", other_day);
    assert!(
        empty.contains("<Count>0</Count><Total>0.00</Total>") && !empty.contains("<Credit>"),
        "{empty}"
    );
    assert!(Confirmation::decode(empty.as_bytes())
        .unwrap()
        .credits
        .is_empty());
    assert!(sim
        .confirmation_xml("sh-gas", day)
        .contains("<Count>0</Count>"));
}

/// The admin endpoints, and the gateway to raw HTTP clients.
#[tokio::test]
async fn admin_endpoints_and_raw_gateway() {
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
        serde_json::json!({"biller_id": "sh-power", "account": account("0306406167", true)});
    let (s, _) = call("POST", "/_sim/accounts", &entry.to_string()).await;
    assert_eq!(s, 204);
    assert!(sim.account("sh-power", "0306406167").is_some());
    let (s, body) = call("GET", "/_sim/credits", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = call("GET", "/_sim/rejections", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = call("GET", "/_sim/confirmations/sh-power/2026-11-29", "").await;
    assert_eq!(s, 200);
    assert!(body.starts_with("<?xml") && body.contains("<Count>0</Count>"));
    let (s, _) = call("GET", "/_sim/confirmations/sh-power/nope", "").await;
    assert_eq!(s, 400);
    // Not XML: 400, E100, an ECHO_RSP answering nothing, still MAC'd.
    let (s, body) = call("POST", codec::PATH_GATEWAY, "{}").await;
    assert_eq!(s, 400);
    let m = codec::decode_message(body.as_bytes()).unwrap();
    assert!(m.mac_verifies(&hm(SECRET.as_bytes())));
    assert_eq!(m.header.msg_type, MsgType::EchoRsp);
    assert_eq!(m.header.in_reply_to, None);
    assert!(body.contains("<RetCode>E100</RetCode>"), "{body}");
    // A stale timestamp: E402 with HTTP 401, answering our MsgId.
    let header = codec::OutHeader {
        msg_type: MsgType::EchoReq,
        sender: "billclear",
        msg_id: "m-old",
        timestamp: "2020-01-01T00:00:00Z",
        in_reply_to: None,
    };
    let stale = codec::encode_message(&header, &[], &hm(SECRET.as_bytes()));
    let (s, body) = call(
        "POST",
        codec::PATH_GATEWAY,
        std::str::from_utf8(&stale).unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    let m = codec::decode_message(body.as_bytes()).unwrap();
    assert_eq!(m.header.in_reply_to.as_deref(), Some("m-old"));
    assert!(body.contains("<RetCode>E402</RetCode>"), "{body}");
    let big = "x".repeat(100_000);
    let (s, _) = call("POST", codec::PATH_GATEWAY, &big).await;
    assert_eq!(s, 413, "body size is bounded");
}

// ------------------------------------------------------------ rogue biller

/// How the rogue biller writes its canned answer.
#[derive(Clone, Copy)]
enum Sealing {
    Good,
    OtherSecret,
    /// Answers another MsgId.
    OtherRequest,
    /// No `InReplyTo` at all.
    Unbound,
    /// Answers with another message type.
    OtherType,
    /// The body is sent as is, not inside an envelope.
    Raw,
}

/// The answer envelope for `body` (the exact `<Body>…</Body>` text).
fn envelope(msg_type: &str, in_reply_to: Option<&str>, body: &str, secret: &[u8]) -> String {
    let ts = "2026-11-29T10:03:04.120+08:00";
    let s = codec::string_to_mac(
        MsgType::parse(msg_type).unwrap(),
        "rogue",
        "r1",
        ts,
        in_reply_to,
        body.as_bytes(),
    );
    let reply = in_reply_to
        .map(|id| format!("<InReplyTo>{id}</InReplyTo>"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\"?>\n<PowerMsg version=\"1\"><Header><MsgType>{msg_type}</MsgType>\
         <Sender>rogue</Sender><MsgId>r1</MsgId><Timestamp>{ts}</Timestamp>{reply}\
         <Mac>{}</Mac></Header>{body}</PowerMsg>",
        codec::mac(&hm(secret), &s)
    )
}

/// A biller that answers every request with one canned body.
async fn rogue(
    status: u16,
    body: &'static str,
    sealing: Sealing,
) -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let handler = move |request: bytes::Bytes| async move {
        let m = codec::decode_message(&request).unwrap();
        let answer_type = m.header.msg_type.answer().unwrap().as_str();
        let our = m.header.msg_id.as_str();
        let text = match sealing {
            Sealing::Good => envelope(answer_type, Some(our), body, SECRET.as_bytes()),
            Sealing::OtherSecret => envelope(answer_type, Some(our), body, b"someone-else"),
            Sealing::OtherRequest => envelope(answer_type, Some("0000"), body, SECRET.as_bytes()),
            Sealing::Unbound => envelope(answer_type, None, body, SECRET.as_bytes()),
            Sealing::OtherType => envelope("ECHO_RSP", Some(our), body, SECRET.as_bytes()),
            Sealing::Raw => body.to_string(),
        };
        (StatusCode::from_u16(status).unwrap(), text).into_response()
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

fn connector_at(url: &str) -> PowerConnector {
    connector_with(url, SECRET, TIMEOUT_MS)
}

const GOOD_PAY: &str = "<Body><RetCode>00</RetCode><RetMsg>ok</RetMsg><TxnRef>p-rogue</TxnRef>\
    <AccountNo>0306406159</AccountNo><Amount>88.50</Amount><Currency>CNY</Currency>\
    <ReceiptNo>PWR1</ReceiptNo><CreditedAt>2026-11-29T10:03:04+08:00</CreditedAt></Body>";

async fn pay_against(
    status: u16,
    body: &'static str,
    sealing: Sealing,
) -> Result<biller_connectors::Credit, ConnectorError> {
    let (url, task) = rogue(status, body, sealing).await;
    let r = connector_at(&url).pay(&order("p-rogue")).await;
    task.abort();
    r
}

async fn status_against(
    body: &'static str,
    sealing: Sealing,
) -> Result<RemoteStatus, ConnectorError> {
    let (url, task) = rogue(200, body, sealing).await;
    let r = connector_at(&url).status(&order("p-rogue")).await;
    task.abort();
    r
}

#[tokio::test]
async fn a_well_sealed_golden_answer_is_a_credit() {
    let credit = pay_against(200, GOOD_PAY, Sealing::Good).await.unwrap();
    assert_eq!(credit.biller_reference, "PWR1");
    assert_eq!(
        credit.credited_at,
        chrono::DateTime::parse_from_rfc3339("2026-11-29T02:03:04Z").unwrap()
    );
}

#[tokio::test]
async fn answers_not_bound_to_our_request_are_unknown_for_pay() {
    for sealing in [Sealing::OtherRequest, Sealing::Unbound] {
        let r = pay_against(200, GOOD_PAY, sealing).await;
        assert_next(&r, NextStep::Unknown);
        let reason = r.unwrap_err().to_string();
        assert!(
            reason.contains("not bound to our request") && reason.contains("InReplyTo"),
            "{reason}"
        );
    }
    let r = pay_against(200, GOOD_PAY, Sealing::OtherType).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("expected PAY_RSP"));
    assert_next(
        &status_against(GOOD_PAY, Sealing::OtherRequest).await,
        NextStep::Retry,
    );
}

#[tokio::test]
async fn a_bad_mac_is_unknown_for_pay_and_retry_for_status() {
    let r = pay_against(200, GOOD_PAY, Sealing::OtherSecret).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("MAC does not verify"));
    assert_next(
        &status_against(GOOD_PAY, Sealing::OtherSecret).await,
        NextStep::Retry,
    );
    // An unverifiable refusal is not believed either: only 401 + E401/E402.
    const REFUSED: &str = "<Body><RetCode>E101</RetCode><RetMsg>x</RetMsg></Body>";
    assert_next(
        &pay_against(200, REFUSED, Sealing::OtherSecret).await,
        NextStep::Unknown,
    );
    assert_next(
        &pay_against(401, REFUSED, Sealing::OtherSecret).await,
        NextStep::Unknown,
    );
    const MAC_REFUSED: &str = "<Body><RetCode>E401</RetCode><RetMsg>MAC rejected</RetMsg></Body>";
    const TIME_REFUSED: &str = "<Body><RetCode>E402</RetCode><RetMsg>clock</RetMsg></Body>";
    assert_next(
        &pay_against(200, MAC_REFUSED, Sealing::OtherSecret).await,
        NextStep::Unknown,
    );
    assert_next(
        &pay_against(401, MAC_REFUSED, Sealing::OtherSecret).await,
        NextStep::Retry,
    );
    assert_next(
        &pay_against(401, TIME_REFUSED, Sealing::OtherSecret).await,
        NextStep::Retry,
    );
}

#[tokio::test]
async fn malformed_answers_are_unknown_for_pay_naming_the_element() {
    let r = pay_against(
        200,
        "<Body><RetCode>00</RetCode><TxnRef>p-rogue</TxnRef><AccountNo>0306406159</AccountNo>\
         <Amount>88,50</Amount><Currency>CNY</Currency><ReceiptNo>PWR1</ReceiptNo>\
         <CreditedAt>2026-11-29T10:03:04+08:00</CreditedAt></Body>",
        Sealing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    let reason = r.unwrap_err().to_string();
    assert!(
        reason.contains("`PowerMsg/Body/Amount`") && reason.contains("not a decimal amount"),
        "{reason}"
    );
    let r = pay_against(
        200,
        "<Body><RetCode>00</RetCode><AccountNo>0306406159</AccountNo><Amount>88.50</Amount>\
         <Currency>CNY</Currency><ReceiptNo>PWR1</ReceiptNo>\
         <CreditedAt>2026-11-29T10:03:04+08:00</CreditedAt></Body>",
        Sealing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("`PowerMsg/Body/TxnRef` is missing"));
    let r = pay_against(200, "<Body><RetMsg>ok</RetMsg></Body>", Sealing::Good).await;
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("`PowerMsg/Body/RetCode`"));
    let r = pay_against(200, "<html>busy</html>", Sealing::Raw).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("root element is `html`"));
    let r = pay_against(200, "<PowerMsg version=\"1\"><Header>", Sealing::Raw).await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(502, "", Sealing::Raw).await;
    assert_next(&r, NextStep::Unknown);
    assert_next(
        &status_against("<html>busy</html>", Sealing::Raw).await,
        NextStep::Retry,
    );
}

#[tokio::test]
async fn unknown_and_internal_codes_are_unknown_busy_is_retry() {
    let r = pay_against(
        200,
        "<Body><RetCode>X777</RetCode><RetMsg>?</RetMsg></Body>",
        Sealing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("X777"));
    let r = pay_against(
        500,
        "<Body><RetCode>S999</RetCode><RetMsg>?</RetMsg></Body>",
        Sealing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(
        503,
        "<Body><RetCode>S901</RetCode><RetMsg>busy</RetMsg></Body>",
        Sealing::Good,
    )
    .await;
    assert_next(&r, NextStep::Retry);
}

#[tokio::test]
async fn status_answers_are_checked() {
    const NO_RECEIPT: &str = "<Body><RetCode>00</RetCode><TxnRef>p-rogue</TxnRef>\
        <State>CREDITED</State><AccountNo>0306406159</AccountNo><Amount>88.50</Amount>\
        <Currency>CNY</Currency></Body>";
    let r = status_against(NO_RECEIPT, Sealing::Good).await;
    assert_next(&r, NextStep::Retry);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("`PowerMsg/Body/ReceiptNo`"));
    const OTHER_ACCOUNT: &str = "<Body><RetCode>00</RetCode><TxnRef>p-rogue</TxnRef>\
        <State>CREDITED</State><AccountNo>0306406167</AccountNo><Amount>88.50</Amount>\
        <Currency>CNY</Currency><ReceiptNo>PWR1</ReceiptNo>\
        <CreditedAt>2026-11-29T10:03:04+08:00</CreditedAt></Body>";
    let r = status_against(OTHER_ACCOUNT, Sealing::Good).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("account number"));
    const PENDING: &str = "<Body><RetCode>00</RetCode><TxnRef>p-rogue</TxnRef>\
        <State>PENDING</State><AccountNo>0306406159</AccountNo><Amount>88.5</Amount>\
        <Currency>CNY</Currency></Body>";
    assert_eq!(
        status_against(PENDING, Sealing::Good).await,
        Ok(RemoteStatus::Pending)
    );
    const NOT_FOUND: &str = "<Body><RetCode>E404</RetCode><RetMsg>no</RetMsg></Body>";
    assert_eq!(
        status_against(NOT_FOUND, Sealing::Good).await,
        Ok(RemoteStatus::NotFound)
    );
    // A not-found code answering a payment is no refusal.
    assert_next(
        &pay_against(200, NOT_FOUND, Sealing::Good).await,
        NextStep::Unknown,
    );
}

fn hm(secret: &[u8]) -> biller_connectors::Signer {
    biller_connectors::Signer::hmac(secret).unwrap()
}
