//! Bill inquiry through the water connector.

mod common;

use biller_connectors::sim::Faults;
use common::{Options, TestApp};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn bad_inquiries_are_refused_before_any_biller_call() {
    let app = app().await;
    // With the biller down, anything that reached it would answer 503.
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    for (path, status, code) in [
        (
            "/v1/billers/sh-water/bills?account=3100000012",
            422,
            "invalid_account_number",
        ),
        (
            "/v1/billers/sh-water/bills?account=31000",
            422,
            "invalid_account_number",
        ),
        ("/v1/billers/sh-water/bills", 400, "missing_account"),
        (
            "/v1/billers/nowhere/bills?account=3100000011",
            404,
            "unknown_biller",
        ),
        (
            "/v1/billers/jiading-power/bills?account=0306406159",
            422,
            "biller_suspended",
        ),
        (
            "/v1/billers/sh-gas/bills?account=310012345677",
            503,
            "biller_unreachable",
        ),
        (
            "/v1/billers/sh-water/bills?account=3100000011",
            503,
            "biller_unavailable",
        ),
    ] {
        let r = app.alipay.get(path).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (status, code),
            "{path}: {:?}",
            r.json()
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_bill_inquiry_answers_with_a_masked_name() {
    let app = app().await;
    let r = app
        .alipay
        .get("/v1/billers/sh-water/bills?account=3100000011")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json();
    let book = app.sim().account("sh-water", "3100000011").unwrap();
    let name = body["customer_name"].as_str().unwrap();
    assert_ne!(name, book.customer_name, "never the full name");
    assert_eq!(name.chars().next(), book.customer_name.chars().next());
    assert!(name.chars().skip(1).all(|c| c == '*'), "{name}");
    let bills = body["bills"].as_array().unwrap();
    assert_eq!(bills.len(), book.bills.len());
    assert_eq!(
        bills[0]["bill_reference"],
        book.bills[0].bill_reference.as_str()
    );
    assert_eq!(
        bills[0]["amount_due"],
        biller_connectors::sim::money2(book.bills[0].amount_due).as_str()
    );
    assert_eq!(bills[0]["currency"], "CNY");
    // A well-formed account the biller does not have.
    let r = app
        .alipay
        .get("/v1/billers/sh-water/bills?account=1234567897")
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (404, "account_not_found")
    );
    // Unsigned inquiries are refused like any other request.
    let mut anon = app.alipay.clone();
    anon.key_id = "bck_nobody".into();
    let r = anon
        .get("/v1/billers/sh-water/bills?account=3100000011")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    app.finish().await;
}
