//! Every signature failure is a 401 with a stable code, and changes nothing.

mod common;

use billclear::auth::signing;
use billclear::client::Extra;
use billclear::client::SignedClient;
use billclear::store::ChannelStore;
use common::{payment_body, TestApp};
use hyper::Method;

/// Sends a request with exactly this Authorization header ("" = none).
async fn send_with_auth(
    client: &SignedClient,
    method: Method,
    path: &str,
    auth: String,
) -> billclear::client::Reply {
    client
        .send(
            method,
            path,
            Vec::new(),
            Extra {
                authorization: Some(auth),
                ..Extra::default()
            },
        )
        .await
        .unwrap()
}

async fn post_with(
    app: &TestApp,
    extra: Extra,
    body: &serde_json::Value,
) -> billclear::client::Reply {
    let mut extra = extra;
    extra
        .headers
        .push(("idempotency-key".into(), uuid::Uuid::new_v4().to_string()));
    extra
        .headers
        .push(("content-type".into(), "application/json".into()));
    app.alipay
        .send(
            Method::POST,
            "/v1/payments",
            body.to_string().into_bytes(),
            extra,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn signature_failures_are_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    let body = payment_body("auth-1");
    let before = app.footprint().await;
    let now = chrono::Utc::now().timestamp();
    let key = app.alipay.key_id.clone();

    let cases: Vec<(&str, Extra)> = vec![
        (
            "missing_signature",
            Extra {
                authorization: Some(String::new()),
                ..Extra::default()
            },
        ),
        (
            "malformed_signature",
            Extra {
                authorization: Some("BC1-HMAC-SHA256 key=x".into()),
                ..Extra::default()
            },
        ),
        (
            "malformed_signature",
            Extra {
                authorization: Some("Bearer abc".into()),
                ..Extra::default()
            },
        ),
        (
            "unknown_key",
            Extra {
                authorization: Some(signing::authorization(
                    "bck_nope",
                    b"s",
                    "POST",
                    "/v1/payments",
                    now,
                    "n1",
                    b"{}",
                )),
                ..Extra::default()
            },
        ),
        (
            // Signed with the wrong secret.
            "bad_signature",
            Extra {
                authorization: Some(signing::authorization(
                    &key,
                    b"wrong",
                    "POST",
                    "/v1/payments",
                    now,
                    "n2",
                    body.to_string().as_bytes(),
                )),
                ..Extra::default()
            },
        ),
        (
            // Body tampered after signing.
            "bad_signature",
            Extra {
                signed_body: Some(b"{\"amount\":\"1.00\"}".to_vec()),
                ..Extra::default()
            },
        ),
    ];
    for (code, extra) in cases {
        let r = post_with(&app, extra, &body).await;
        assert_eq!(r.status, 401, "{code}: {:?}", r.body);
        assert_eq!(r.code(), code);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }

    assert_eq!(app.footprint().await, before, "nothing may change");
    app.finish().await;
}

#[tokio::test]
async fn signature_covers_method_path_and_query() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    // A valid signature for ?channel_reference=a sent to ?channel_reference=b.
    let auth = sign_like(&app, "GET", "/v1/payments?channel_reference=a", now, "q1");
    let r = send_with_auth(
        &app.alipay,
        Method::GET,
        "/v1/payments?channel_reference=b",
        auth,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "bad_signature")
    );
    // A valid signature for POST sent as GET.
    let auth = sign_like(&app, "POST", "/v1/billers", now, "q2");
    let r = send_with_auth(&app.alipay, Method::GET, "/v1/billers", auth).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "bad_signature")
    );
    // The honest request works.
    assert_eq!(
        app.alipay
            .get("/v1/payments?channel_reference=b")
            .await
            .unwrap()
            .status,
        200
    );
    app.finish().await;
}

/// A correct signature for another request than the one sent.
fn sign_like(app: &TestApp, method: &str, path: &str, ts: i64, nonce: &str) -> String {
    app.alipay.authorization_for(method, path, ts, nonce, b"")
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let app = TestApp::spawn().await;
    let before = app.footprint().await;
    // A few seconds past the 300 s window: the client truncates its clock
    // to the second and the request takes time, so 301 s ahead can arrive
    // as 300 s ahead on a loaded machine.
    for offset in [-301, 303, -3600] {
        let mut c = app.alipay.clone();
        c.clock_offset_s = offset;
        let r = c
            .post_payment(&format!("k{offset}"), &payment_body(&format!("ts{offset}")))
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (401, "stale_timestamp"),
            "offset {offset}"
        );
    }
    // Within the window is fine.
    let mut c = app.alipay.clone();
    c.clock_offset_s = -250;
    let r = c
        .post_payment("k-ok", &payment_body("ts-ok"))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let after = app.footprint().await;
    assert_eq!(after[0], before[0] + 1);
    app.finish().await;
}

#[tokio::test]
async fn reused_nonce_is_refused_on_post_and_get() {
    let app = TestApp::spawn().await;
    let nonce = "fixed-nonce-1".to_string();
    let extra = |n: &str| Extra {
        nonce: Some(n.to_string()),
        headers: vec![
            ("idempotency-key".into(), uuid::Uuid::new_v4().to_string()),
            ("content-type".into(), "application/json".into()),
        ],
        ..Extra::default()
    };
    let body = payment_body("nonce-1").to_string().into_bytes();
    let first = app
        .alipay
        .send(Method::POST, "/v1/payments", body.clone(), extra(&nonce))
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    let before = app.footprint().await;
    // The same nonce with a new idempotency key and a new body: still a replay.
    let body2 = payment_body("nonce-2").to_string().into_bytes();
    let again = app
        .alipay
        .send(Method::POST, "/v1/payments", body2, extra(&nonce))
        .await
        .unwrap();
    assert_eq!(
        (again.status.as_u16(), again.code().as_str()),
        (401, "nonce_reused")
    );
    // An invalid body with a used nonce is a 401 too, not a 422.
    let bad = app
        .alipay
        .send(Method::POST, "/v1/payments", b"{}".to_vec(), extra(&nonce))
        .await
        .unwrap();
    assert_eq!(
        (bad.status.as_u16(), bad.code().as_str()),
        (401, "nonce_reused")
    );
    assert_eq!(app.footprint().await, before);

    let get = |n: &str| Extra {
        nonce: Some(n.to_string()),
        ..Extra::default()
    };
    let g1 = app
        .alipay
        .send(Method::GET, "/v1/billers", vec![], get("g-1"))
        .await
        .unwrap();
    assert_eq!(g1.status, 200);
    let g2 = app
        .alipay
        .send(Method::GET, "/v1/billers", vec![], get("g-1"))
        .await
        .unwrap();
    assert_eq!(
        (g2.status.as_u16(), g2.code().as_str()),
        (401, "nonce_reused")
    );
    // Nonces are per key: the other channel may use the same string.
    let w = app
        .wechat
        .send(Method::GET, "/v1/billers", vec![], get("g-1"))
        .await
        .unwrap();
    assert_eq!(w.status, 200);
    app.finish().await;
}

#[tokio::test]
async fn disabled_keys_and_channels_are_refused() {
    let app = TestApp::spawn().await;
    assert_eq!(app.alipay.get("/v1/billers").await.unwrap().status, 200);
    app.store.disable_key(&app.alipay.key_id).await.unwrap();
    let r = app
        .alipay
        .post_payment("k1", &payment_body("dis-1"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "key_disabled")
    );

    let wechat = billclear::domain::ids::ChannelId::parse("wechat").unwrap();
    app.store
        .set_channel_status(&wechat, billclear::domain::channel::ChannelStatus::Disabled)
        .await
        .unwrap();
    let r = app.wechat.get("/v1/billers").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "channel_disabled")
    );
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0, 0]);
    app.finish().await;
}

#[tokio::test]
async fn unsigned_health_and_openapi_are_public() {
    let app = TestApp::spawn().await;
    let plain = SignedClient::new(&app.base, "", "");
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let r = send_with_auth(&plain, Method::GET, path, String::new()).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let r = send_with_auth(&plain, Method::GET, "/v1/billers", String::new()).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "missing_signature")
    );
    let spec = send_with_auth(&plain, Method::GET, "/openapi.json", String::new())
        .await
        .json();
    for path in [
        "/v1/billers",
        "/v1/billers/{biller_id}/bills",
        "/v1/payments",
        "/v1/payments/{id}",
        "/v1/settlements",
        "/v1/settlements/{batch_id}/files/{name}",
        "/v1/statements",
        "/v1/statements/{date}/file",
        "/v1/staff/me",
        "/v1/recon/runs",
        "/v1/recon/reports/{date}/{name}",
        "/v1/breaks",
        "/v1/breaks/{id}",
        "/v1/breaks/{id}/actions",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(spec["paths"][path].is_object(), "openapi lacks {path}");
    }
    app.finish().await;
}
