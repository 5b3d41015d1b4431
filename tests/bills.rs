//! Bill inquiry through the water connector.

mod common;

use biller_sim::Faults;
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
    // The good inquiry first: it reaches the biller and gets its outage
    // before the route's health checks (every 100 ms here) open the circuit.
    for (path, status, code) in [
        (
            "/v1/billers/sh-water/bills?account=3100000011",
            503,
            "biller_unavailable",
        ),
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
        biller_sim::money2(book.bills[0].amount_due).as_str()
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

#[tokio::test]
async fn a_query_storm_never_exceeds_the_billers_budget() {
    let app = app().await;
    let budget = app.state.inquiry.budget_per_s("sh-water") as f64;
    // 10,000 inquiries over 2,000 accounts (the book's 21 and well-formed
    // ones the biller does not have), 64 at a time, from two channels.
    let accounts: Vec<String> = app
        .sim()
        .credits()
        .iter()
        .map(|c| c.account_number.clone())
        .chain(
            biller_sim::default_accounts("sh-water", chrono::Utc::now().date_naive())
                .into_iter()
                .map(|a| a.account_number),
        )
        .chain((0..1979u32).map(|i| {
            let payload = format!("42{i:07}");
            let d = biller_sim::luhn_check_digit(&payload).unwrap();
            format!("{payload}{d}")
        }))
        .collect();
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..10_000usize {
        let client = if i % 2 == 0 {
            app.alipay.clone()
        } else {
            app.wechat.clone()
        };
        let account = accounts[(i * 7919) % accounts.len()].clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        set.spawn(async move {
            let r = client
                .get(&format!("/v1/billers/sh-water/bills?account={account}"))
                .await
                .unwrap();
            drop(permit);
            let source = r
                .headers
                .get("billclear-inquiry-source")
                .map(|v| v.to_str().unwrap().to_string());
            (
                r.status.as_u16(),
                r.code(),
                source,
                r.headers.get("retry-after").is_some(),
            )
        });
    }
    let mut by: std::collections::BTreeMap<String, u32> = Default::default();
    while let Some(done) = set.join_next().await {
        let (status, code, source, retry_after) = done.unwrap();
        let key = match (status, source) {
            (429, _) => {
                assert_eq!(code, "inquiry_budget_exceeded");
                assert!(retry_after, "429 carries Retry-After");
                "refused".to_string()
            }
            (200 | 404 | 422, Some(s)) => s,
            other => panic!("unexpected answer {other:?} {code}"),
        };
        *by.entry(key).or_default() += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let seen = app.sim().bill_requests() as f64;
    eprintln!(
        "storm: {by:?}; the biller saw {seen} inquiries in {elapsed:.1} s (budget {budget}/s)"
    );
    assert_eq!(by.values().sum::<u32>(), 10_000);
    assert!(
        seen <= budget * elapsed.ceil() + budget,
        "the biller saw {seen} inquiries in {elapsed:.1} s with a budget of {budget}/s: {by:?}"
    );
    assert_eq!(
        seen as u32,
        by.get("biller").copied().unwrap_or(0),
        "{by:?}"
    );
    assert!(by.get("refused").copied().unwrap_or(0) > 0, "{by:?}");
    assert!(by.get("cache").copied().unwrap_or(0) > 0, "{by:?}");
    // In no second of the wall clock more than the budget.
    let max = app.sim().max_bill_requests_per_second();
    assert!(
        max as f64 <= budget,
        "{max} in one second: {:?}",
        app.sim().bill_requests_per_second()
    );
    app.finish().await;
}

#[tokio::test]
async fn a_biller_reached_only_by_files_offers_no_inquiry_and_says_so_once() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        coop: true,
        ..Options::default()
    })
    .await;
    let r = app
        .alipay
        .get("/v1/billers/chongming-coop/bills?account=CM-000123")
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{:?}", r.json());
    assert_eq!(r.code(), "inquiry_not_supported");
    assert!(
        !r.headers.contains_key("retry-after"),
        "a refusal that will never change invites no retry: {:?}",
        r.headers
    );
    // Paying the co-op needs no inquiry.
    let mut body = common::payment_body("coop-no-inquiry");
    body["biller_id"] = serde_json::json!("chongming-coop");
    body["account_number"] = serde_json::json!("CM-000123");
    let paid = app.alipay.post_payment("k-coop-1", &body).await.unwrap();
    assert_eq!(paid.status, 201, "{:?}", paid.json());
    app.close().await;
}
