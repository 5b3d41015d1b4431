//! The hub connector against the hub simulator, over real sockets.
//! Unhappy paths first.

use std::str::FromStr;
use std::time::Duration;

use biller_connectors::hub::HubConnector;
use biller_connectors::water::WaterConnector;
use biller_connectors::ConnectorKind;
use biller_connectors::PlainKeyFiles;
use biller_connectors::{
    BillQuery, Connector, ConnectorError, ConnectorSettings, NextStep, PayOrder, RemoteStatus,
};
use biller_sim::hub::default_hub_book;
use biller_sim::{
    default_accounts, Account, Faults, HubSim, HubSimConfig, SimBill, WaterSim, WaterSimConfig,
};
use chrono::{FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;

const SECRET: &str = "hub-test-secret-0123456789";
const TIMEOUT_MS: u64 = 300;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A hub fronting the default customers of all five example billers.
async fn sim() -> HubSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = HubSimConfig::new("billclear", SECRET);
    config.book = default_hub_book(today());
    HubSim::start(listener, config).await.unwrap()
}

fn settings(url: &str, secret: &str, timeout_ms: u64) -> ConnectorSettings {
    ConnectorSettings {
        kind: ConnectorKind::HubJson,
        allow_plaintext: true,
        base_url: url.into(),
        key_id: "billclear".into(),
        secret: secret.into(),
        timeout_ms,
        ..Default::default()
    }
}

fn connector_with(sim: &HubSim, secret: &str, timeout_ms: u64) -> HubConnector {
    HubConnector::new(
        "hub",
        &settings(&sim.base_url(), secret, timeout_ms),
        &PlainKeyFiles,
    )
    .unwrap()
}

fn connector(sim: &HubSim) -> HubConnector {
    connector_with(sim, SECRET, TIMEOUT_MS)
}

/// 88.50 to sh-water account 3100000011.
fn order(reference: &str) -> PayOrder {
    order_to(reference, "sh-water", "3100000011")
}

fn order_to(reference: &str, biller: &str, account: &str) -> PayOrder {
    PayOrder {
        our_reference: reference.into(),
        biller_id: biller.into(),
        account_number: account.into(),
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

fn assert_code(result: &Result<impl std::fmt::Debug, ConnectorError>, code: &str) {
    match result {
        Err(e) => assert!(e.to_string().contains(code), "{code}: {e}"),
        Ok(v) => panic!("expected code {code}, got Ok({v:?})"),
    }
}

fn closed_sh_water_account() -> String {
    default_accounts("sh-water", today())
        .into_iter()
        .find(|a| !a.open)
        .unwrap()
        .account_number
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
async fn wrong_secret_is_retry_and_nothing_applied() {
    let sim = sim().await;
    let c = connector_with(&sim, "not-the-secret", TIMEOUT_MS);
    let r = c.pay(&order("p-badkey")).await;
    assert_next(&r, NextStep::Retry);
    assert_code(&r, "4010");
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
    assert!(sim.transactions().is_empty());
    assert_eq!(sim.pay_requests(), 1);
    let good = connector(&sim);
    assert_eq!(
        good.status(&order("p-badkey")).await,
        Ok(RemoteStatus::NotFound)
    );
}

#[tokio::test]
async fn unknown_merchant_is_retry() {
    let sim = sim().await;
    let mut s = settings(&sim.base_url(), SECRET, TIMEOUT_MS);
    s.key_id = "someone-else".into();
    let c = HubConnector::new("hub", &s, &PlainKeyFiles).unwrap();
    let r = c.pay(&order("p-merchant")).await;
    assert_next(&r, NextStep::Retry);
    assert_code(&r, "4010");
    assert!(sim.transactions().is_empty());
}

#[tokio::test]
async fn cut_off_is_retry_everywhere_and_nothing_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_cut_off(true);
    let o = order("p-cut");
    let r = c.pay(&o).await;
    assert_next(&r, NextStep::Retry);
    assert_code(&r, "4030");
    assert_next(&c.status(&o).await, NextStep::Retry);
    assert_next(&c.health().await, NextStep::Retry);
    let q = BillQuery {
        biller_id: "sh-gas".into(),
        account_number: "310012345677".into(),
    };
    assert_next(&c.bills(&q).await, NextStep::Retry);
    assert!(sim.credits().is_empty() && sim.rejections().is_empty());
    assert!(sim.transactions().is_empty());
    assert!(sim.switches().cut_off);
    sim.set_cut_off(false);
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::NotFound));
    c.pay(&o).await.unwrap();
    assert_eq!(sim.credits().len(), 1);
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
    assert_code(&r, "5031");
    assert_next(&c.status(&order("p-out")).await, NextStep::Retry);
    assert_next(&c.health().await, NextStep::Retry);
    assert!(sim.credits().is_empty());
    sim.set_faults(Faults::default());
    assert_eq!(c.status(&order("p-out")).await, Ok(RemoteStatus::NotFound));
}

#[tokio::test]
async fn error_rate_one_is_retry_5030() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = c.pay(&order("p-busy")).await;
    assert_next(&r, NextStep::Retry);
    assert_code(&r, "5030");
    assert!(sim.credits().is_empty());
    assert_eq!(sim.pay_requests(), 1);
}

#[tokio::test]
async fn one_biller_down_behind_the_hub_is_retry_for_it_only() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_biller_down("sh-gas", true);
    let gas = order_to("p-gas-down", "sh-gas", "310012345677");
    let r = c.pay(&gas).await;
    assert_next(&r, NextStep::Retry);
    assert_code(&r, "5030");
    c.pay(&order("p-water-up")).await.unwrap();
    assert_eq!(sim.credits().len(), 1);
    sim.set_biller_down("sh-gas", false);
    c.pay(&gas).await.unwrap();
    assert_eq!(sim.credits().len(), 2);
}

#[tokio::test]
async fn biller_not_served_is_fail_1001_and_recorded() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = order_to("p-tj", "tianjin-water", "3100000011");
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("1001", "biller \"tianjin-water\" not served by this hub")
    );
    assert!(sim.credits().is_empty());
    let rejections = sim.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].code, "1001");
    match c.status(&o).await {
        Ok(RemoteStatus::Rejected(r)) => assert_eq!(r.code, "1001"),
        other => panic!("{other:?}"),
    }
    let q = BillQuery {
        biller_id: "tianjin-water".into(),
        account_number: "3100000011".into(),
    };
    match c.bills(&q).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "1001"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn closed_account_is_fail_2002_and_recorded() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = order_to("p-closed", "sh-water", &closed_sh_water_account());
    match c.pay(&o).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "2002"),
        other => panic!("{other:?}"),
    }
    let rejections = sim.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].our_reference, "p-closed");
    assert!(sim.credits().is_empty());
    match c.status(&o).await {
        Ok(RemoteStatus::Rejected(r)) => assert_eq!(r.code, "2002"),
        other => panic!("{other:?}"),
    }
    // Sent again: the same refusal, recorded once.
    assert_next(&c.pay(&o).await, NextStep::Fail);
    assert_eq!(sim.rejections().len(), 1);
}

#[tokio::test]
async fn unknown_account_currency_and_amount_are_fail() {
    let sim = sim().await;
    let c = connector(&sim);
    let o = order_to("p-unknown", "sh-power", "0000000000");
    assert_eq!(
        c.pay(&o).await.unwrap_err(),
        ConnectorError::fail("2001", "account not found")
    );
    let hkd = PayOrder {
        currency: "HKD".into(),
        ..order("p-hkd")
    };
    match c.pay(&hkd).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "2004"),
        other => panic!("{other:?}"),
    }
    let too_fine = PayOrder {
        amount: dec("1.005"),
        ..order("p-fine")
    };
    match c.pay(&too_fine).await {
        Err(ConnectorError::Fail(r)) => assert_eq!(r.code, "2003"),
        other => panic!("{other:?}"),
    }
    assert!(sim.credits().is_empty());
    assert_eq!(sim.rejections().len(), 3);
}

#[tokio::test]
async fn partner_ref_reused_with_other_details_is_unknown_and_not_applied() {
    let sim = sim().await;
    let c = connector(&sim);
    c.pay(&order("p-reuse")).await.unwrap();
    let other = PayOrder {
        amount: dec("10.00"),
        ..order("p-reuse")
    };
    let r = c.pay(&other).await;
    assert_next(&r, NextStep::Unknown);
    assert_code(&r, "2009");
    let other_biller = order_to("p-reuse", "sh-power", "0306406159");
    assert_next(&c.pay(&other_biller).await, NextStep::Unknown);
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.transactions().len(), 1);
    // Asking by reference with the other details: the echo does not match.
    assert_next(&c.status(&other_biller).await, NextStep::Unknown);
}

#[tokio::test]
async fn dropped_answer_is_unknown_then_status_finds_the_credit() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let o = order_to("p-drop", "sh-power", "0306406159");
    assert_next(&c.pay(&o).await, NextStep::Unknown);
    let credits = sim.credits();
    assert_eq!(credits.len(), 1);
    assert_eq!(sim.faults().drop_response_next, 0);
    match c.status(&o).await {
        Ok(RemoteStatus::Credited(credit)) => {
            assert_eq!(credit.biller_reference, credits[0].biller_reference);
            assert!(credit.biller_reference.starts_with("HUB"));
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
async fn bills_for_a_known_and_an_unknown_account() {
    let sim = sim().await;
    let c = connector(&sim);
    let q = BillQuery {
        biller_id: "sh-gas".into(),
        account_number: "310012345677".into(),
    };
    let expected = sim.account("sh-gas", "310012345677").unwrap();
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.customer_name, expected.customer_name);
    assert_eq!(statement.account_number, "310012345677");
    assert_eq!(statement.bills.len(), expected.bills.len());
    for (got, want) in statement.bills.iter().zip(&expected.bills) {
        assert_eq!(got.bill_reference, want.bill_reference);
        assert_eq!(got.amount_due, want.amount_due);
        assert_eq!(got.due_date, want.due_date);
        assert_eq!(got.currency, "CNY");
    }
    let unknown = BillQuery {
        biller_id: "sh-gas".into(),
        account_number: "000000000000".into(),
    };
    assert_eq!(
        c.bills(&unknown).await.unwrap_err(),
        ConnectorError::fail("2001", "account not found")
    );
}

#[tokio::test]
async fn paying_a_bill_in_full_removes_it() {
    let sim = sim().await;
    let c = connector(&sim);
    sim.add_account(
        "minhang-gas",
        Account {
            account_number: "123456782".into(),
            customer_name: "张伟".into(),
            open: true,
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
        },
    );
    c.pay(&order_to("p-bill", "minhang-gas", "123456782"))
        .await
        .unwrap();
    let q = BillQuery {
        biller_id: "minhang-gas".into(),
        account_number: "123456782".into(),
    };
    let statement = c.bills(&q).await.unwrap();
    assert_eq!(statement.bills.len(), 1);
    assert_eq!(statement.bills[0].bill_reference, "B2");
}

#[tokio::test]
async fn success_echoes_and_a_second_send_is_one_credit() {
    let sim = sim().await;
    let c = connector(&sim);
    c.health().await.unwrap();
    let o = order("p-ok");
    let first = c.pay(&o).await.unwrap();
    assert!(first.biller_reference.starts_with("HUB"), "{first:?}");
    let second = c.pay(&o).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.credits().len(), 1);
    assert_eq!(sim.pay_requests(), 2);
    let credit = &sim.credits()[0];
    assert_eq!(credit.our_reference, "p-ok");
    assert_eq!(credit.biller_reference, first.biller_reference);
    assert_eq!(credit.amount, dec("88.50"));
    let txn = &sim.transactions()[0];
    assert_eq!(txn.hub_txn_id, first.biller_reference);
    assert!(txn.biller_receipt.as_deref().unwrap().starts_with('W'));
    assert_eq!(c.status(&o).await, Ok(RemoteStatus::Credited(first)));
}

#[tokio::test]
async fn billers_of_all_three_kinds_through_one_hub() {
    let sim = sim().await;
    let c = connector(&sim);
    let targets = [
        ("sh-water", "3100000011", 'W'),
        ("pudong-water", "PD20261129", 'W'),
        ("sh-power", "0306406159", 'E'),
        ("sh-gas", "310012345677", 'G'),
        ("minhang-gas", "123456782", 'G'),
    ];
    for (i, (biller, account, _)) in targets.iter().enumerate() {
        let o = order_to(&format!("p-kind-{i}"), biller, account);
        let credit = c.pay(&o).await.unwrap();
        assert_eq!(
            c.status(&o).await,
            Ok(RemoteStatus::Credited(credit)),
            "{biller}"
        );
    }
    let credits = sim.credits();
    let txns = sim.transactions();
    assert_eq!(credits.len(), targets.len());
    for (i, (biller, account, prefix)) in targets.iter().enumerate() {
        assert_eq!(credits[i].biller_id, *biller);
        assert_eq!(credits[i].account_number, *account);
        assert_eq!(credits[i].our_reference, format!("p-kind-{i}"));
        assert!(txns[i]
            .biller_receipt
            .as_deref()
            .unwrap()
            .starts_with(*prefix));
    }
    let mut ids: Vec<_> = credits.iter().map(|c| &c.biller_reference).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), targets.len(), "hubTxnIds are unique");
}

/// The failover check billclear relies on: a payment sent through the hub
/// and then asked about on the direct connection is found in exactly one
/// book, by OUR reference.
#[tokio::test]
async fn exactly_once_across_the_hub_and_the_direct_biller() {
    let hub = sim().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = WaterSimConfig::new("billclear", SECRET);
    config.book = biller_sim::book_for(&["sh-water"], today());
    let water = WaterSim::start(listener, config).await.unwrap();
    let direct = WaterConnector::new(
        "sh-water-direct",
        &ConnectorSettings {
            kind: ConnectorKind::WaterJson,
            ..settings(&water.base_url(), SECRET, TIMEOUT_MS)
        },
        &PlainKeyFiles,
    )
    .unwrap();
    let via_hub = connector(&hub);
    let o = order("p-failover");
    hub.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    assert_next(&via_hub.pay(&o).await, NextStep::Unknown);
    hub.set_cut_off(true);
    assert_next(&via_hub.status(&o).await, NextStep::Retry);
    // The direct biller never saw it; the hub has it.
    assert_eq!(direct.status(&o).await, Ok(RemoteStatus::NotFound));
    hub.set_cut_off(false);
    assert!(matches!(
        via_hub.status(&o).await,
        Ok(RemoteStatus::Credited(_))
    ));
    let everywhere: Vec<_> = hub
        .credits()
        .into_iter()
        .chain(water.credits())
        .filter(|c| c.our_reference == "p-failover")
        .collect();
    assert_eq!(everywhere.len(), 1);
}

#[tokio::test]
async fn statement_file_lists_the_day_with_a_trailer() {
    let sim = sim().await;
    let c = connector(&sim);
    c.pay(&order("p-s1")).await.unwrap();
    let gas = PayOrder {
        amount: dec("11.5"),
        ..order_to("p-s2", "sh-gas", "310012345677")
    };
    c.pay(&gas).await.unwrap();
    let closed = order_to("p-s3", "sh-water", &closed_sh_water_account());
    assert_next(&c.pay(&closed).await, NextStep::Fail);
    let txns = sim.transactions();
    assert_eq!(txns.len(), 3);
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    let day = txns[0].completed_at.with_timezone(&offset).date_naive();
    let csv = admin_get(&sim, &format!("/_sim/statement/{day}")).await;
    assert_eq!(csv.0, 200);
    let csv = csv.1;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with(&format!("HUBSTATEMENT,SIMHUB,{day},")),
        "{csv}"
    );
    assert_eq!(
        lines[1],
        "hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt"
    );
    let same_day = txns
        .iter()
        .all(|t| t.completed_at.with_timezone(&offset).date_naive() == day);
    if same_day {
        assert_eq!(lines.len(), 6, "{csv}");
        let time = |i: usize| {
            txns[i]
                .completed_at
                .with_timezone(&offset)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        };
        assert_eq!(
            lines[2],
            format!(
                "{},p-s1,sh-water,3100000011,88.50,CNY,SUCCESS,{}",
                txns[0].hub_txn_id,
                time(0)
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "{},p-s2,sh-gas,310012345677,11.50,CNY,SUCCESS,{}",
                txns[1].hub_txn_id,
                time(1)
            )
        );
        assert!(lines[4].starts_with(&format!("{},p-s3,sh-water,", txns[2].hub_txn_id)));
        assert!(lines[4].contains(",88.50,CNY,FAILED,"), "{}", lines[4]);
        assert_eq!(lines[5], "TRAILER,3,2,100.00");
    }
    let other_day = day.pred_opt().unwrap();
    let empty = sim.statement_csv(other_day);
    assert!(
        empty.ends_with(
            "hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt\n\
             TRAILER,0,0,0.00\n"
        ),
        "{empty}"
    );
    assert_eq!(admin_get(&sim, "/_sim/statement/nope").await.0, 400);
}

async fn admin_call(sim: &HubSim, method: &str, path: &str, body: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", sim.base_url()))
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn admin_get(sim: &HubSim, path: &str) -> (u16, String) {
    admin_call(sim, "GET", path, "").await
}

#[tokio::test]
async fn admin_endpoints() {
    let sim = sim().await;
    let c = connector(&sim);
    let (s, _) = admin_call(&sim, "PUT", "/_sim/hub", r#"{"cut_off":true}"#).await;
    assert_eq!(s, 200);
    assert!(sim.switches().cut_off);
    assert_code(&c.health().await, "4030");
    let (s, body) = admin_get(&sim, "/_sim/hub").await;
    assert_eq!(s, 200);
    assert!(body.contains(r#""cut_off":true"#), "{body}");
    let (s, _) = admin_call(&sim, "PUT", "/_sim/hub", r#"{"cutoff":true}"#).await;
    assert_eq!(s, 400);
    let (s, _) = admin_call(&sim, "PUT", "/_sim/hub", r#"{"billers_down":["sh-gas"]}"#).await;
    assert_eq!(s, 200);
    assert!(!sim.switches().cut_off, "unlisted switches reset");
    assert_eq!(sim.switches().billers_down, vec!["sh-gas".to_string()]);
    let (s, _) = admin_call(&sim, "PUT", "/_sim/faults", r#"{"drop_response_next":3}"#).await;
    assert_eq!(s, 200);
    assert_eq!(sim.faults().drop_response_next, 3);
    let (s, _) = admin_call(&sim, "PUT", "/_sim/faults", r#"{"error_rate":2}"#).await;
    assert_eq!(s, 400);
    let entry = serde_json::json!({"biller_id": "tianjin-water", "account": {
        "account_number": "TJ1", "customer_name": "王芳", "open": true, "bills": []}});
    let (s, _) = admin_call(&sim, "POST", "/_sim/accounts", &entry.to_string()).await;
    assert_eq!(s, 204);
    assert!(sim.account("tianjin-water", "TJ1").is_some());
    for path in ["/_sim/credits", "/_sim/rejections", "/_sim/transactions"] {
        assert_eq!(
            admin_get(&sim, path).await,
            (200, "[]".to_string()),
            "{path}"
        );
    }
    let big = "x".repeat(100_000);
    let (s, _) = admin_call(&sim, "POST", "/hub/v2/payments", &big).await;
    assert_eq!(s, 413, "body size is bounded");
    let (s, body) = admin_call(&sim, "POST", "/hub/v2/payments", "{}").await;
    assert_eq!(s, 401, "unsigned requests are refused");
    assert!(body.contains("4010"), "{body}");
}

// ------------------------------------------------------ a rogue hub

/// How the rogue hub signs its canned answer.
#[derive(Clone, Copy)]
enum Signing {
    Good,
    Unsigned,
    OtherSecret,
    OtherNonce,
}

/// A hub that answers every request with one canned answer.
async fn rogue(
    status: u16,
    body: &'static str,
    signing: Signing,
) -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use biller_connectors::hub::codec;
    let handler = move |headers: HeaderMap| async move {
        let nonce = match signing {
            Signing::OtherNonce => "0000".to_string(),
            _ => headers[codec::HEADER_NONCE].to_str().unwrap().to_string(),
        };
        let secret: &[u8] = match signing {
            Signing::OtherSecret => b"someone-else",
            _ => SECRET.as_bytes(),
        };
        let ts = Utc::now().timestamp_millis();
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

fn connector_at(url: &str) -> HubConnector {
    HubConnector::new("hub", &settings(url, SECRET, TIMEOUT_MS), &PlainKeyFiles).unwrap()
}

const GOOD_PAY: &str = r#"{"code":"0","message":"success","status":"ACCEPTED","hubTxnId":"HUB2026112900000001","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":"88.50","currency":"CNY","billerReceipt":"W0000000001","completedAt":"2026-11-29T10:03:04.005+08:00","repeated":false}"#;

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

async fn status_against(
    body: &'static str,
    signing: Signing,
) -> Result<RemoteStatus, ConnectorError> {
    let (url, task) = rogue(200, body, signing).await;
    let r = connector_at(&url).status(&order("p-rogue")).await;
    task.abort();
    r
}

#[tokio::test]
async fn a_well_signed_golden_answer_is_a_credit_under_the_hub_reference() {
    let credit = pay_against(200, GOOD_PAY, Signing::Good).await.unwrap();
    assert_eq!(credit.biller_reference, "HUB2026112900000001");
    assert_eq!(
        credit.credited_at.to_rfc3339(),
        "2026-11-29T02:03:04.005+00:00"
    );
}

#[tokio::test]
async fn unsigned_or_badly_signed_answers_are_unknown_for_pay() {
    let r = pay_against(200, GOOD_PAY, Signing::Unsigned).await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("unsigned"));
    for signing in [Signing::OtherSecret, Signing::OtherNonce] {
        let r = pay_against(200, GOOD_PAY, signing).await;
        assert_next(&r, NextStep::Unknown);
        assert!(r.unwrap_err().to_string().contains("signature"));
    }
    // An unverifiable suspension is not trusted; only a 401 / 4010 is.
    let cut = r#"{"code":"4030","message":"merchant suspended"}"#;
    assert_next(
        &pay_against(403, cut, Signing::Unsigned).await,
        NextStep::Unknown,
    );
    assert_next(&pay_against(403, cut, Signing::Good).await, NextStep::Retry);
    let auth = r#"{"code":"4010","message":"signature rejected"}"#;
    assert_next(
        &pay_against(401, auth, Signing::OtherSecret).await,
        NextStep::Retry,
    );
    assert_next(
        &status_against(GOOD_PAY, Signing::Unsigned).await,
        NextStep::Retry,
    );
}

#[tokio::test]
async fn malformed_or_contradictory_answers_are_unknown() {
    let r = pay_against(
        200,
        r#"{"code":"0","status":"ACCEPTED","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":88.5,"currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("`amount`"));
    let r = pay_against(
        200,
        r#"{"code":"0","status":"ACCEPTED","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":"88.50","currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00"}"#,
        Signing::Good,
    )
    .await;
    assert!(r.unwrap_err().to_string().contains("`hubTxnId`"));
    let r = pay_against(200, "<html>busy</html>", Signing::Good).await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(502, "", Signing::Unsigned).await;
    assert_next(&r, NextStep::Unknown);
    // Code 0 but FAILED, or a refusal code but ACCEPTED: cannot tell.
    let r = pay_against(
        200,
        r#"{"code":"0","status":"FAILED","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":"88.50","currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    let r = pay_against(
        200,
        r#"{"code":"2002","message":"closed","status":"ACCEPTED"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    // The same payment echoed for another biller.
    let r = pay_against(
        200,
        r#"{"code":"0","status":"ACCEPTED","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-power","accountNo":"3100000011","amount":"88.50","currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("biller"));
}

#[tokio::test]
async fn unknown_and_internal_codes_are_unknown_for_pay() {
    for body in [
        r#"{"code":"7777","message":"?"}"#,
        r#"{"code":"5000","message":"internal error"}"#,
        r#"{"code":"2009","message":"reused"}"#,
    ] {
        let r = pay_against(200, body, Signing::Good).await;
        assert_next(&r, NextStep::Unknown);
    }
    for body in [
        r#"{"code":"4290","message":"too many queries"}"#,
        r#"{"code":"5031","message":"maintenance"}"#,
    ] {
        let r = pay_against(503, body, Signing::Good).await;
        assert_next(&r, NextStep::Retry);
    }
}

#[tokio::test]
async fn status_answers_are_checked() {
    let r = status_against(
        r#"{"code":"0","state":"SUCCESS","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":"88.50","currency":"CNY"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Retry);
    assert!(r.unwrap_err().to_string().contains("`completedAt`"));
    let r = status_against(
        r#"{"code":"0","state":"SUCCESS","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000099","amount":"88.50","currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00"}"#,
        Signing::Good,
    )
    .await;
    assert_next(&r, NextStep::Unknown);
    assert!(r.unwrap_err().to_string().contains("account number"));
    let r = status_against(
        r#"{"code":"0","state":"PROCESSING","hubTxnId":"H1","partnerRef":"p-rogue","billerCode":"sh-water","accountNo":"3100000011","amount":"88.50","currency":"CNY"}"#,
        Signing::Good,
    )
    .await;
    assert_eq!(r, Ok(RemoteStatus::Pending));
    let r = status_against(
        r#"{"code":"3004","message":"transaction not found"}"#,
        Signing::Good,
    )
    .await;
    assert_eq!(r, Ok(RemoteStatus::NotFound));
    let r = status_against(r#"{"code":"4290","message":"slow down"}"#, Signing::Good).await;
    assert_next(&r, NextStep::Retry);
}
