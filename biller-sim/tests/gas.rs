//! The gas connector against the gas simulator, over real sockets (one
//! persistent TCP link per connector). Unhappy paths first.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use biller_connectors::gas::codec::{self, PayAnswer, PayRequest, Reader};
use biller_connectors::gas::GasConnector;
use biller_connectors::ConnectorKind;
use biller_connectors::PlainKeyFiles;
use biller_connectors::{
    BillQuery, Connector, ConnectorError, ConnectorSettings, NextStep, PayOrder, RemoteStatus,
};
use biller_sim::{Account, Faults, GasSim, GasSimConfig, SimBill};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "gas-secret-0123456789";
const TIMEOUT_MS: u64 = 300;
const OPEN: &str = "310012345677";
const CLOSED: &str = "310000000017";

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

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

async fn sim() -> GasSim {
    let mut config = GasSimConfig::new("billclear", SECRET);
    config.book = vec![
        ("sh-gas".into(), account(OPEN, true)),
        ("sh-gas".into(), account(CLOSED, false)),
    ];
    GasSim::start(listener().await, listener().await, config)
        .await
        .unwrap()
}

fn settings(base_url: &str, key_id: &str, secret: &str, timeout_ms: u64) -> ConnectorSettings {
    ConnectorSettings {
        kind: ConnectorKind::GasTcp,
        allow_plaintext: true,
        base_url: base_url.into(),
        key_id: key_id.into(),
        secret: secret.into(),
        timeout_ms,
        ..Default::default()
    }
}

fn connector_with(sim: &GasSim, secret: &str, timeout_ms: u64) -> GasConnector {
    GasConnector::new(
        "gas",
        &settings(&sim.address(), "billclear", secret, timeout_ms),
        &PlainKeyFiles,
    )
    .unwrap()
}

fn connector(sim: &GasSim) -> GasConnector {
    connector_with(sim, SECRET, TIMEOUT_MS)
}

fn reference() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn order_for(reference: &str) -> PayOrder {
    PayOrder {
        our_reference: reference.into(),
        biller_id: "sh-gas".into(),
        account_number: OPEN.into(),
        amount: dec("88.50"),
        currency: "CNY".into(),
        bill_reference: None,
    }
}

fn order() -> PayOrder {
    order_for(&reference())
}

fn assert_next(result: &Result<impl std::fmt::Debug, ConnectorError>, next: NextStep) {
    match result {
        Err(e) => assert_eq!(e.next_step(), next, "{e}"),
        Ok(v) => panic!("expected {next:?}, got Ok({v:?})"),
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(3), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sim_shut_down_is_retry() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.shutdown();
    let r = c.pay(&order()).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("not sent"));
    assert_next(&c.health().await, NextStep::Retry);
    assert_eq!(sim.pay_requests(), 0);
}

#[tokio::test]
async fn shutdown_closes_the_open_link_and_refuses_new_ones() {
    let sim = sim().await;
    let c = connector(&sim);
    c.health().await.unwrap(); // the link is up
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_next(&c.status(&order()).await, NextStep::Retry);
    let r = c.pay(&order()).await;
    assert_next(&r, NextStep::Retry);
    assert!(sim.credits().is_empty());
    assert_eq!(sim.pay_requests(), 0, "nothing sent while the link is down");
}

#[tokio::test]
async fn wrong_secret_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector_with(&sim, "not-the-secret", TIMEOUT_MS);
    let o = order();
    let r = c.pay(&o).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("63"));
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
    assert_eq!(sim.pay_requests(), 1);
    let other_terminal = GasConnector::new(
        "gas",
        &settings(&sim.address(), "intruder", SECRET, TIMEOUT_MS),
        &PlainKeyFiles,
    )
    .unwrap();
    assert_next(&other_terminal.pay(&o).await, NextStep::Retry);
    assert!(sim.credits().is_empty());
    assert_eq!(connector(&sim).status(&o).await, Ok(RemoteStatus::NotFound));
}

#[tokio::test]
async fn outage_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let o = order();
    let r = c.pay(&o).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("92"));
    assert_next(&c.status(&o).await, NextStep::Retry);
    assert_next(&c.health().await, NextStep::Retry);
    let q = BillQuery {
        biller_id: "sh-gas".into(),
        account_number: OPEN.into(),
    };
    assert_next(&c.bills(&q).await, NextStep::Retry);
    assert!(sim.credits().is_empty());
    sim.set_faults(Faults::default());
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::NotFound));
}

#[tokio::test]
async fn error_rate_one_is_retry() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = c.pay(&order()).await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("91"));
    assert!(sim.credits().is_empty());
}

#[tokio::test]
async fn closed_account_is_fail_15_and_recorded() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = PayOrder {
        account_number: CLOSED.into(),
        ..order()
    };
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("15", "account closed")
    );
    let rejections = sim.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].our_reference, o.our_reference);
    assert_eq!(rejections[0].code, "15");
    assert!(sim.credits().is_empty());
    match c.status(&o).await {
        Ok(RemoteStatus::Rejected(r)) => assert_eq!(r.code, "15"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_account_currency_and_fine_amounts_are_fail() {
    let sim = sim().await;
    let c = connector(&sim);
    let unknown = PayOrder {
        account_number: "310012345685".into(),
        ..order()
    };
    assert_eq!(
        c.pay(&unknown).await.unwrap_err(),
        ConnectorError::fail("14", "account not found")
    );
    let hkd = PayOrder {
        currency: "HKD".into(),
        ..order()
    };
    match c.pay(&hkd).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "16"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.rejections().len(), 2);
    // More than 2 decimals: refused before sending, never rounded.
    let before = sim.pay_requests();
    let fine = PayOrder {
        amount: dec("1.005"),
        ..order()
    };
    match c.pay(&fine).await {
        Err(ConnectorError::Fail(r)) => {
            assert_eq!(r.code, "13");
            assert!(r.message.starts_with("not sent"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.pay_requests(), before, "nothing sent");
    assert!(sim.credits().is_empty());
}

#[tokio::test]
async fn reference_reused_with_other_details_is_unknown_and_not_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = order();
    c.pay(&o).await.unwrap();
    let other = PayOrder {
        amount: dec("10.00"),
        ..o.clone()
    };
    let r = c.pay(&other).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("19"));
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
    let o = order();
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
    assert_eq!(sim.links_accepted(), 1, "the link survived the lost answer");
}

#[tokio::test]
async fn latency_beyond_timeout_is_unknown_and_applied_later() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    let o = order();
    assert_next(&c.pay(&o).await, NextStep::Unknown);
    assert!(sim.credits().is_empty(), "not yet processed");
    sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.credits().len(), 1, "processing went on");
    match c.status(&o).await {
        Ok(RemoteStatus::Credited(credit)) => {
            assert_eq!(credit.biller_reference, sim.credits()[0].biller_reference)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn blackhole_is_unknown_nothing_applied_then_not_found() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    let o = order();
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
    let r = c.pay(&order()).await;
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
async fn bills_for_known_closed_and_unknown_accounts() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "sh-gas".into(),
        account_number: OPEN.into(),
    };
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.account_number, OPEN);
    assert_eq!(statement.customer_name, "张伟");
    assert_eq!(statement.bills.len(), 2);
    assert_eq!(statement.bills[0].bill_reference, "B1", "oldest first");
    assert_eq!(statement.bills[0].amount_due, dec("88.50"));
    assert_eq!(statement.bills[0].currency, "CNY");
    assert_eq!(
        statement.bills[0].due_date,
        NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()
    );
    c.pay(&order()).await.unwrap();
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.bills.len(), 1);
    assert_eq!(statement.bills[0].bill_reference, "B2");
    let unknown = BillQuery {
        account_number: "000000000000".into(),
        ..q.clone()
    };
    assert_eq!(
        c.bills(&unknown).await.unwrap_err(),
        ConnectorError::fail("14", "account not found")
    );
    let closed = BillQuery {
        account_number: CLOSED.into(),
        ..q
    };
    assert_eq!(
        c.bills(&closed).await.unwrap_err(),
        ConnectorError::fail("15", "account closed")
    );
}

#[tokio::test]
async fn success_echoes_and_a_second_send_is_a_duplicate() {
    let sim = sim().await;
    let c = connector(&sim);
    c.health().await.unwrap();
    let o = order();
    let first = c.pay(&o).await.unwrap();
    assert!(first.biller_reference.starts_with('G'));
    let second = c.pay(&o).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.pay_requests(), 2);
    let credit = &sim.credits()[0];
    assert_eq!(credit.our_reference, o.our_reference);
    assert_eq!(credit.amount, dec("88.50"));
    assert_eq!(credit.credited_at, first.credited_at);
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::Credited(first)));
    assert_eq!(sim.links_accepted(), 1, "one persistent link");
}

#[tokio::test]
async fn the_default_book_serves_both_gas_billers() {
    let today = chrono::Utc::now().date_naive();
    let mut config = GasSimConfig::new("billclear", SECRET);
    config.book = biller_sim::book_for(&["sh-gas", "minhang-gas"], today);
    let sim = GasSim::start(listener().await, listener().await, config)
        .await
        .unwrap();
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "minhang-gas".into(),
        account_number: "123456782".into(),
    };
    let statement = c.bills(&q).await.unwrap();
    assert!(!statement.bills.is_empty());
    let bill = &statement.bills[0];
    let o = PayOrder {
        biller_id: "minhang-gas".into(),
        account_number: "123456782".into(),
        amount: bill.amount_due,
        bill_reference: Some(bill.bill_reference.clone()),
        ..order()
    };
    c.pay(&o).await.unwrap();
    c.pay(&order()).await.unwrap(); // sh-gas 310012345677
}

#[tokio::test]
async fn twenty_concurrent_pays_out_of_order_on_one_link() {
    let sim = sim().await;
    let c = Arc::new(connector_with(&sim, SECRET, 2_000));
    c.health().await.unwrap();
    sim.set_faults(Faults {
        out_of_order: true,
        ..Faults::default()
    });
    let orders: Vec<PayOrder> = (1..=20)
        .map(|i| PayOrder {
            amount: Decimal::new(100 + i, 2), // 1.01 ..= 1.20: a mix-up shows
            ..order()
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for o in orders.clone() {
        let c = c.clone();
        tasks.spawn(async move { (o.clone(), c.pay(&o).await) });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (o, result) = joined.unwrap();
        let credit = result.unwrap_or_else(|e| panic!("{}: {e}", o.our_reference));
        let record = sim
            .credits()
            .into_iter()
            .find(|r| r.our_reference == o.our_reference)
            .unwrap();
        assert_eq!(credit.biller_reference, record.biller_reference);
        assert_eq!(record.amount, o.amount);
        answered += 1;
    }
    assert_eq!(answered, 20);
    assert_eq!(sim.credits().len(), 20);
    assert!(sim.reordered_batches() >= 1, "answers were reordered");
    assert_eq!(sim.links_accepted(), 1, "all on one link");
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn duplicate_answers_never_confuse_two_requests() {
    let sim = sim().await;
    let c = Arc::new(connector(&sim));
    // Every answer of 10 concurrent pays comes twice, the copy later.
    sim.set_faults(Faults {
        duplicate_answer_next: 10,
        out_of_order: true,
        ..Faults::default()
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=10 {
        let c = c.clone();
        let o = PayOrder {
            amount: Decimal::new(200 + i, 2),
            ..order()
        };
        tasks.spawn(async move { c.pay(&o).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().unwrap();
    }
    assert_eq!(sim.faults().duplicate_answer_next, 0);
    assert_eq!(sim.credits().len(), 10);
    // The dangerous case: a "busy" answer (not applied) duplicated late
    // must not be taken for the answer of the same payment sent again.
    sim.set_faults(Faults {
        error_rate: 1.0,
        duplicate_answer_next: 1,
        ..Faults::default()
    });
    let o = order();
    assert_next(&c.pay(&o).await, NextStep::Retry);
    sim.set_faults(Faults {
        latency_ms: 150, // the copy of "91" arrives while this one waits
        ..Faults::default()
    });
    let credit = c.pay(&o).await.expect("the late duplicate was ignored");
    assert_eq!(sim.credits().len(), 11);
    assert_eq!(sim.credits()[10].biller_reference, credit.biller_reference);
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn restart_on_the_same_port_reconnects_and_a_lost_answer_is_unknown() {
    let sim = sim().await;
    let port = sim.link_addr().port();
    let c = Arc::new(connector_with(&sim, SECRET, 1_000));
    c.pay(&order()).await.unwrap();
    // A payment in flight when the link goes: applied, its answer lost.
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let lost = order();
    let task = {
        let (c, lost) = (c.clone(), lost.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            (c.pay(&lost).await, start.elapsed())
        })
    };
    eventually("the payment was applied", || sim.credits().len() == 2).await;
    sim.shutdown();
    let (result, took) = task.await.unwrap();
    assert_next(&result, NextStep::Unknown);
    assert!(
        result.unwrap_err().to_string().contains("link lost"),
        "told at once, not at the timeout"
    );
    assert!(took < Duration::from_millis(900), "{took:?}");
    // While it is down: nothing sent, Retry.
    assert_next(&c.pay(&order()).await, NextStep::Retry);
    assert_eq!(sim.credits().len(), 2);
    // The biller comes back on the same port with its books.
    let link = {
        let start = Instant::now();
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(2) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot bind port {port} again: {e}"),
            }
        }
    };
    let sim = sim.restart(link, listener().await).await.unwrap();
    let start = Instant::now();
    while c.health().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(3), "no reconnect");
    }
    match c.status(&lost).await {
        Ok(RemoteStatus::Credited(credit)) => {
            assert_eq!(credit.biller_reference, sim.credits()[1].biller_reference)
        }
        other => panic!("{other:?}"),
    }
    c.pay(&order()).await.unwrap();
    assert_eq!(sim.credits().len(), 3);
    assert_eq!(sim.links_accepted(), 2);
}

#[tokio::test]
async fn confirmation_file_lists_the_day_in_fixed_width() {
    let sim = sim().await;
    let c = connector(&sim);
    let first = order();
    c.pay(&first).await.unwrap();
    let second = PayOrder {
        amount: dec("11.5"),
        ..order()
    };
    c.pay(&second).await.unwrap();
    let closed = PayOrder {
        account_number: CLOSED.into(),
        ..order()
    };
    assert_next(&c.pay(&closed).await, NextStep::Fail);
    let credits = sim.credits();
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let day = credits[0].credited_at.with_timezone(&offset).date_naive();
    let file = sim.confirmation_file("sh-gas", day);
    let lines: Vec<&str> = file.lines().collect();
    assert!(lines.iter().all(|l| l.len() == codec::CONFIRMATION_WIDTH));
    assert_eq!(
        lines[0].trim_end(),
        format!("Hsh-gas          {}CNY", day.format("%Y%m%d"))
    );
    if credits[1].credited_at.with_timezone(&offset).date_naive() == day {
        assert_eq!(lines.len(), 4, "{file}");
        assert_eq!(
            lines[1],
            format!(
                "D{}{:20}{:20}000000008850CNY{}",
                first.our_reference,
                credits[0].biller_reference,
                OPEN,
                codec::format_time(&credits[0].credited_at)
            )
        );
        assert!(lines[2].starts_with(&format!("D{}", second.our_reference)));
        assert!(lines[2].contains("000000001150CNY"));
        assert_eq!(lines[3].trim_end(), "T00000002000000000010000");
    }
    let other_day = day.pred_opt().unwrap();
    let empty = sim.confirmation_file("sh-gas", other_day);
    assert_eq!(empty.lines().count(), 2);
    assert!(empty
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("T00000000000000000000000"));
    // The same file over the admin endpoint.
    let (status, body) = admin(
        &sim,
        "GET",
        &format!("/_sim/confirmations/sh-gas/{day}"),
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, file.as_str()));
}

async fn admin(sim: &GasSim, method: &str, path: &str, body: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", sim.admin_url()))
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn admin_endpoints() {
    let sim = sim().await;
    let (s, _) = admin(
        &sim,
        "PUT",
        "/_sim/faults",
        r#"{"duplicate_answer_next":3,"out_of_order":true}"#,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(sim.faults().duplicate_answer_next, 3);
    assert!(sim.faults().out_of_order);
    let (s, body) = admin(&sim, "GET", "/_sim/faults", "").await;
    assert_eq!(s, 200);
    assert!(body.contains(r#""duplicate_answer_next":3"#), "{body}");
    let (s, _) = admin(&sim, "PUT", "/_sim/faults", r#"{"error_rate":2}"#).await;
    assert_eq!(s, 400);
    let (s, _) = admin(&sim, "PUT", "/_sim/faults", r#"{"typo":true}"#).await;
    assert_eq!(s, 400);
    let entry =
        serde_json::json!({"biller_id": "minhang-gas", "account": account("123456782", true)});
    let (s, _) = admin(&sim, "POST", "/_sim/accounts", &entry.to_string()).await;
    assert_eq!(s, 204);
    assert!(sim.account("minhang-gas", "123456782").is_some());
    let (s, body) = admin(&sim, "GET", "/_sim/credits", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = admin(&sim, "GET", "/_sim/rejections", "").await;
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, _) = admin(&sim, "GET", "/_sim/confirmations/sh-gas/nope", "").await;
    assert_eq!(s, 400);
}

/// A biller on a raw socket that answers every request with
/// `answer(request record)` (bytes written as they are).
async fn rogue(
    answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let l = listener().await;
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = l.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                loop {
                    let mut prefix = [0u8; 4];
                    if stream.read_exact(&mut prefix).await.is_err() {
                        return;
                    }
                    let len = codec::parse_prefix(prefix).unwrap();
                    let mut record = vec![0u8; len];
                    if stream.read_exact(&mut record).await.is_err() {
                        return;
                    }
                    if stream.write_all(&answer(&record)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

/// The well-formed answer to a pay request, MAC'd under `secret`.
fn pay_answer(record: &[u8], secret: &[u8], tweak: impl Fn(&mut PayAnswer)) -> Vec<u8> {
    let request = PayRequest::decode(&Reader::new(record).unwrap()).unwrap();
    let mut answer = PayAnswer {
        header: request.header,
        result_code: "00".into(),
        biller_id: request.biller_id,
        account: request.account,
        amount: request.amount,
        currency: request.currency,
        receipt_no: "G1".into(),
        credited_at: Some(chrono::Utc::now()),
        duplicate: false,
    };
    tweak(&mut answer);
    answer.encode(secret).unwrap()
}

async fn pay_against(
    answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> Result<biller_connectors::Credit, ConnectorError> {
    let (url, task) = rogue(answer).await;
    let c = GasConnector::new(
        "gas",
        &settings(&url, "billclear", SECRET, TIMEOUT_MS),
        &PlainKeyFiles,
    )
    .unwrap();
    let r = c.pay(&order()).await;
    task.abort();
    r
}

#[tokio::test]
async fn a_well_formed_answer_is_a_credit_and_tampering_is_unknown() {
    let credit = pay_against(|r| pay_answer(r, SECRET.as_bytes(), |_| {}))
        .await
        .unwrap();
    assert_eq!(credit.biller_reference, "G1");
    // MAC under another secret: unknown.
    let r = pay_against(|r| pay_answer(r, b"someone-else", |_| {})).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("MAC"));
    // An unverifiable "refused" is not trusted either: only 63 is.
    let r = pay_against(|r| pay_answer(r, b"someone-else", |a| a.result_code = "14".into())).await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(|r| pay_answer(r, b"someone-else", |a| a.result_code = "63".into())).await;
    assert_next(&r, NextStep::Retry);
    // Another terminal, another account echoed, a blank receipt.
    let r =
        pay_against(|r| pay_answer(r, SECRET.as_bytes(), |a| a.header.terminal_id = "x".into()))
            .await;
    assert_next(&r, NextStep::Unknown);
    let r =
        pay_against(|r| pay_answer(r, SECRET.as_bytes(), |a| a.account = "310012345685".into()))
            .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("account number"));
    let r = pay_against(|r| pay_answer(r, SECRET.as_bytes(), |a| a.receipt_no.clear())).await;
    assert_next(&r, NextStep::Unknown);
    let r =
        pay_against(|r| pay_answer(r, SECRET.as_bytes(), |a| a.result_code = "77".into())).await;
    assert_next(&r, NextStep::Unknown);
}

#[tokio::test]
async fn a_broken_stream_or_a_stray_answer_is_unknown_for_pay() {
    // A bad length prefix: the link is dropped, the payment unknown.
    let r = pay_against(|_| b"12ab".to_vec()).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("link lost"), "at once");
    // An answer to another trace is ignored: no answer, then timeout.
    let r = pay_against(|r| pay_answer(r, SECRET.as_bytes(), |a| a.header.trace += 1)).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("no answer within"));
}

#[tokio::test]
async fn build_knows_the_gas_kind() {
    let s = settings("tcp://127.0.0.1:9303", "billclear", SECRET, 500);
    let c = biller_connectors::build("gas-direct", &s, &PlainKeyFiles).unwrap();
    assert_eq!(c.id(), "gas-direct");
    let bad = settings("http://127.0.0.1:9303", "billclear", SECRET, 500);
    assert!(biller_connectors::build("gas-direct", &bad, &PlainKeyFiles).is_err());
}
