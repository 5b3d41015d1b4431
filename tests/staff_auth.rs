//! Finance staff users and their bearer tokens: /v1/staff/me, disabling,
//! rotation, roles, and the wall between staff tokens and channel
//! credentials (each refused where the other is expected, changing nothing).

mod common;

use billclear::auth::staff_token::{staff_token_hash, StaffToken};
use billclear::cli::staff::{add_staff, rotate_staff};
use billclear::client::{Extra, Reply, SignedClient};
use billclear::domain::staff::{StaffRefusal, StaffRole};
use billclear::store::{StaffStore, StoreError};
use common::{payment_body, TestApp, OPS_TOKEN};
use hyper::Method;

/// Sends a request with exactly this Authorization header ("" = none).
async fn send_with_auth(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Vec<u8>,
    auth: &str,
    headers: Vec<(String, String)>,
) -> Reply {
    SignedClient::new(&app.base, "", "")
        .send(
            method,
            path,
            body,
            Extra {
                authorization: Some(auth.to_string()),
                headers,
                ..Extra::default()
            },
        )
        .await
        .unwrap()
}

async fn me(app: &TestApp, auth: &str) -> Reply {
    send_with_auth(app, Method::GET, "/v1/staff/me", Vec::new(), auth, vec![]).await
}

fn bearer(token: &StaffToken) -> String {
    format!("Bearer {}", token.expose_text())
}

fn status_code(r: &Reply) -> (u16, String) {
    (r.status.as_u16(), r.code())
}

#[tokio::test]
async fn staff_token_works_on_me_and_others_are_401() {
    let app = TestApp::spawn().await;
    let (user, token) = add_staff(&*app.store, "li.wei", "Li Wei", StaffRole::Operator)
        .await
        .unwrap();
    assert_eq!(user.id, "li.wei");
    assert!(token.expose_text().starts_with("bcstaff_"));

    let r = me(&app, &bearer(&token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"id": "li.wei", "name": "Li Wei", "role": "operator"})
    );

    let never_issued = bearer(&StaffToken::generate());
    let cases = [
        ("", "staff_token_missing"),
        ("Basic bGk6d2Vp", "staff_token_missing"),
        ("Bearer ", "staff_token_missing"),
        (never_issued.as_str(), "staff_token_invalid"),
        ("Bearer bcstaff_short", "staff_token_invalid"),
        ("Bearer abc", "staff_token_invalid"),
        (&format!("Bearer {OPS_TOKEN}"), "staff_token_invalid"),
        // The right token with one character changed.
        (
            &format!(
                "Bearer {}{}",
                &token.expose_text()[..token.expose_text().len() - 1],
                if token.expose_text().ends_with('A') {
                    'B'
                } else {
                    'A'
                }
            ),
            "staff_token_invalid",
        ),
    ];
    for (auth, code) in cases {
        let r = me(&app, auth).await;
        assert_eq!(status_code(&r), (401, code.to_string()), "{auth:?}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    // The scheme is case-insensitive.
    let r = me(&app, &format!("bearer {}", token.expose_text())).await;
    assert_eq!(r.status, 200);
    app.finish().await;
}

#[tokio::test]
async fn disabled_user_is_401_and_gets_no_new_token() {
    let app = TestApp::spawn().await;
    let (_, token) = add_staff(&*app.store, "zhang", "Zhang San", StaffRole::Approver)
        .await
        .unwrap();
    assert_eq!(me(&app, &bearer(&token)).await.status, 200);
    app.store.disable_staff("zhang").await.unwrap();
    let r = me(&app, &bearer(&token)).await;
    assert_eq!(status_code(&r), (401, "staff_user_disabled".into()));
    // Disabling again changes nothing; an unknown user is NotFound.
    app.store.disable_staff("zhang").await.unwrap();
    assert!(matches!(
        app.store.disable_staff("nobody").await,
        Err(StoreError::NotFound(_))
    ));
    // Rotation does not bring a disabled user back.
    let e = rotate_staff(&*app.store, "zhang").await.unwrap_err();
    assert!(format!("{e:#}").contains("disabled"), "{e:#}");
    assert_eq!(
        status_code(&me(&app, &bearer(&token)).await),
        (401, "staff_user_disabled".into())
    );
    // Listed, never deleted.
    let list = app.store.list_staff().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].user.disabled && list[0].disabled_at.is_some());
    let delete = sqlx::query("DELETE FROM staff_users WHERE id = 'zhang'")
        .execute(app.store.pool())
        .await;
    assert!(delete.is_err(), "staff users are never deleted");
    app.finish().await;
}

#[tokio::test]
async fn rotated_token_old_is_401_new_is_200() {
    let app = TestApp::spawn().await;
    let (_, old) = add_staff(&*app.store, "wang", "Wang Wu", StaffRole::Viewer)
        .await
        .unwrap();
    let issued = app.store.list_staff().await.unwrap()[0].token_issued_at;
    let new = rotate_staff(&*app.store, "wang").await.unwrap();
    assert_ne!(old, new);
    assert_eq!(
        status_code(&me(&app, &bearer(&old)).await),
        (401, "staff_token_invalid".into())
    );
    let r = me(&app, &bearer(&new)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["role"], "viewer");
    let listed = &app.store.list_staff().await.unwrap()[0];
    assert!(listed.token_issued_at >= issued && !listed.user.disabled);
    assert!(matches!(
        app.store
            .rotate_staff_token("nobody", &StaffToken::generate().hash())
            .await,
        Err(StoreError::NotFound(_))
    ));
    app.finish().await;
}

#[tokio::test]
async fn roles_from_the_store_and_require() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for (id, role) in [
        ("v", StaffRole::Viewer),
        ("o", StaffRole::Operator),
        ("a", StaffRole::Approver),
    ] {
        let (_, t) = add_staff(&*app.store, id, id, role).await.unwrap();
        tokens.push((role, t));
    }
    for (role, token) in &tokens {
        // Every role may call /v1/staff/me, and it reports the role.
        let r = me(&app, &bearer(token)).await;
        assert_eq!(r.json()["role"], role.as_str());
        let user = app
            .store
            .staff_by_token_hash(&token.hash())
            .await
            .unwrap()
            .expect("user");
        assert_eq!(user.role, *role);
        for needed in StaffRole::ALL {
            match user.require(needed) {
                Ok(()) => assert!(role.allows(needed)),
                Err(StaffRefusal::Role(e)) => {
                    assert!(!role.allows(needed));
                    assert_eq!(e.needed, needed);
                    assert!(e.to_string().contains(needed.as_str()), "{e}");
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    // approver ⊇ operator ⊇ viewer, and not the other way.
    assert!(StaffRole::Approver.allows(StaffRole::Operator));
    assert!(StaffRole::Operator.allows(StaffRole::Viewer));
    assert!(!StaffRole::Operator.allows(StaffRole::Approver));
    assert!(!StaffRole::Viewer.allows(StaffRole::Operator));
    app.finish().await;
}

#[tokio::test]
async fn channel_signed_request_on_staff_endpoint_is_401() {
    let app = TestApp::spawn().await;
    add_staff(&*app.store, "li", "Li", StaffRole::Approver)
        .await
        .unwrap();
    // A correctly signed channel request.
    let r = app.alipay.get("/v1/staff/me").await.unwrap();
    assert_eq!(
        status_code(&r),
        (401, "channel_credentials_not_accepted".into())
    );
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("staff endpoints take a staff bearer token"));
    // A channel secret sent as a bearer token.
    let r = me(
        &app,
        &format!(
            "Bearer {}",
            billclear::auth::secrets::Secret::generate().expose_text()
        ),
    )
    .await;
    assert_eq!(
        status_code(&r),
        (401, "channel_credentials_not_accepted".into())
    );
    app.finish().await;
}

#[tokio::test]
async fn staff_token_on_channel_and_biller_endpoints_is_401_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, token) = add_staff(&*app.store, "li", "Li", StaffRole::Approver)
        .await
        .unwrap();
    let auth = bearer(&token);
    let before = (app.footprint().await, app.count("auth_nonces").await);

    let body = payment_body("staff-1").to_string().into_bytes();
    let json_headers = vec![
        ("idempotency-key".to_string(), "staff-k1".to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let today = chrono::Utc::now().date_naive();
    let requests = [
        (Method::POST, "/v1/payments".to_string(), body, json_headers),
        (Method::GET, "/v1/billers".to_string(), vec![], vec![]),
        (
            Method::GET,
            "/v1/billers/sh-water/bills?account=3100000011".to_string(),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            "/v1/payments?channel_reference=staff-1".to_string(),
            vec![],
            vec![],
        ),
        // Biller endpoints (BillerSigned).
        (
            Method::GET,
            format!("/v1/settlements?date={today}"),
            vec![],
            vec![],
        ),
    ];
    for (method, path, body, headers) in requests {
        let r = send_with_auth(&app, method.clone(), &path, body, &auth, headers).await;
        assert_eq!(
            status_code(&r),
            (401, "staff_token_not_accepted".into()),
            "{method} {path}: {:?}",
            r.body
        );
        assert!(r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("channel endpoints take a signed request, not a staff token"));
    }
    assert_eq!(
        (app.footprint().await, app.count("auth_nonces").await),
        before,
        "nothing may change"
    );
    // Any other bearer token is still just an unsigned request.
    let r = send_with_auth(
        &app,
        Method::GET,
        "/v1/billers",
        vec![],
        "Bearer abc",
        vec![],
    )
    .await;
    assert_eq!(status_code(&r), (401, "malformed_signature".into()));
    app.finish().await;
}

#[tokio::test]
async fn duplicate_and_invalid_ids_are_refused() {
    let app = TestApp::spawn().await;
    let (_, first) = add_staff(&*app.store, "li", "Li Wei", StaffRole::Viewer)
        .await
        .unwrap();
    let e = add_staff(&*app.store, "li", "Li Other", StaffRole::Approver)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    // At the store: Conflict, and the first user is untouched.
    let user = app
        .store
        .staff_by_token_hash(&first.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        app.store
            .add_staff(&user, &StaffToken::generate().hash())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        (user.name.as_str(), user.role),
        ("Li Wei", StaffRole::Viewer)
    );
    // A disabled user's id is not reused either.
    app.store.disable_staff("li").await.unwrap();
    assert!(add_staff(&*app.store, "li", "Li", StaffRole::Viewer)
        .await
        .is_err());
    for bad in ["Li", "li wei", "", "li/wei"] {
        assert!(
            add_staff(&*app.store, bad, "X", StaffRole::Viewer)
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(add_staff(&*app.store, "ok", " ", StaffRole::Viewer)
        .await
        .is_err());
    assert_eq!(app.count("staff_users").await, 1);
    app.finish().await;
}

#[tokio::test]
async fn the_token_is_not_stored_in_clear() {
    let app = TestApp::spawn().await;
    let (_, token) = add_staff(&*app.store, "li", "Li Wei", StaffRole::Operator)
        .await
        .unwrap();
    let text = token.expose_text();
    let random_part = text.strip_prefix("bcstaff_").unwrap();
    // Every column of the row, as text (bytea in hex and escape form).
    let (row, hash): (String, Vec<u8>) = sqlx::query_as(
        "SELECT row_to_json(s)::text || encode(token_hash, 'escape'), token_hash FROM staff_users s",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(!row.contains(random_part), "token stored in clear: {row}");
    assert!(!row.contains(&hex_of(text.as_bytes())));
    assert_eq!(hash, staff_token_hash(text).to_vec());
    app.finish().await;
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The framework's own refusals (a path or query it cannot read, a body
/// over the limit) are problems like every other answer, never text/plain.
#[tokio::test]
async fn unreadable_paths_queries_and_bodies_are_problems() {
    let app = TestApp::spawn().await;
    let (_, token) = add_staff(&*app.store, "wang.fang", "Wang Fang", StaffRole::Operator)
        .await
        .unwrap();
    let auth = bearer(&token);
    let problem = |r: &Reply| {
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{:?}",
            r.body
        );
        (r.status.as_u16(), r.code(), r.json()["field"].clone())
    };
    // A break id that is no number.
    let r = send_with_auth(
        &app,
        Method::GET,
        "/v1/breaks/abc",
        Vec::new(),
        &auth,
        vec![],
    )
    .await;
    assert_eq!(
        problem(&r),
        (400, "invalid_path".into(), serde_json::json!("id"))
    );
    // A query parameter given twice, a boolean that is not one.
    for path in [
        "/v1/breaks?status=OPEN&status=CLOSED",
        "/v1/recon/runs?date=2026-12-01&date=2026-12-02",
    ] {
        let r = send_with_auth(&app, Method::GET, path, Vec::new(), &auth, vec![]).await;
        let (status, code, _) = problem(&r);
        assert_eq!((status, code.as_str()), (400, "invalid_query"), "{path}");
        assert!(
            r.json()["detail"].as_str().unwrap().contains("duplicate"),
            "{path}"
        );
    }
    // A break action over the body limit.
    let big = vec![b' '; app.state.config.http.max_body_bytes + 1];
    let r = send_with_auth(
        &app,
        Method::POST,
        "/v1/breaks/1/actions",
        big,
        &auth,
        vec![("content-type".into(), "application/json".into())],
    )
    .await;
    assert_eq!(problem(&r).0, 413);
    assert_eq!(r.code(), "body_too_large");
    // A path segment that is not UTF-8, on a signed route.
    let r = app.alipay.get("/v1/payments/%FF%FE").await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.json()["code"], "invalid_path");
    app.finish().await;
}
