//! The finance console without a browser: sign-in and sessions, CSRF,
//! roles enforced on the server, escaping, security headers, and the
//! pages against a real service and database. (The browser walk-through
//! is `tests/console_browser.rs`.)

mod common;

use billclear::cli::staff::rotate_staff;
use billclear::client::{csrf_of, ConsoleClient};
use billclear::domain::staff::StaffRole;
use billclear::store::StaffStore;
use common::TestApp;

#[tokio::test]
async fn pages_need_a_session_and_sign_in_comes_back() {
    let app = TestApp::spawn().await;
    let mut c = ConsoleClient::new(&app.base);
    let r = c.get("/console/breaks?status=all").await.unwrap();
    assert_eq!(r.status, 303);
    let to = r.location().unwrap();
    assert!(to.starts_with("/console/sign-in?m=ended&next="), "{to}");
    // A bad token: 401 and the form again, no session.
    let page = c.get("/console/sign-in").await.unwrap();
    let csrf = csrf_of(&page.text()).unwrap();
    let r = c
        .post_form(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", "bcstaff_nope")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(!c.cookies.contains_key("bc_session"));
    // A good one: a session cookie, HttpOnly and SameSite=Strict.
    let (_, token) = billclear::cli::staff::add_staff(&*app.store, "ann", "Ann", StaffRole::Viewer)
        .await
        .unwrap();
    let r = c.sign_in(token.expose_text()).await.unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let set: Vec<_> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = set.iter().find(|c| c.starts_with("bc_session=")).unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain http: {session}");
    let r = c.get("/console/").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("ann"));
    app.finish().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let (mut c, _) = app.console_as("vera", StaffRole::Viewer).await;
    for path in [
        "/console/",
        "/console/breaks",
        "/console/sign-in",
        "/console/breaks/999999",
    ] {
        let r = c.get(path).await.unwrap();
        let h = |n: &str| {
            r.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        // No inline script anywhere: every <script> has a src.
        let text = r.text();
        assert!(!text.contains("<script>"), "{path}");
        assert!(!text.contains(" style=\""), "{path}");
    }
    app.finish().await;
}

#[tokio::test]
async fn csrf_missing_or_wrong_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-1",
            Some(8850),
            Some(8580),
            "d",
        )
        .await;
    let (mut c, _) = app.console_as("olga", StaffRole::Operator).await;
    let page = c.get(&format!("/console/breaks/{id}")).await.unwrap();
    let csrf = csrf_of(&page.text()).unwrap();
    let url = format!("/console/breaks/{id}/act");
    for bad in ["", "x", &csrf[..csrf.len() - 1]] {
        let r = c
            .post_form(
                &url,
                &[("csrf", bad), ("action", "comment"), ("text", "hi")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 403, "csrf {bad:?}: {}", r.text());
    }
    let r = c
        .post_form(&url, &[("action", "comment"), ("text", "hi")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(app.count("recon_break_events").await, 0);
    // Another session's token is not this session's.
    let (mut other, _) = app.console_as("otto", StaffRole::Operator).await;
    let r = other
        .post_form(
            &url,
            &[("csrf", &csrf), ("action", "comment"), ("text", "hi")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(app.count("recon_break_events").await, 0);
    // The right one works.
    let r = c
        .post_form(
            &url,
            &[("csrf", &csrf), ("action", "comment"), ("text", "hi")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(app.count("recon_break_events").await, 1);
    // The sign-in form's token must match its cookie.
    let mut fresh = ConsoleClient::new(&app.base);
    fresh.get("/console/sign-in").await.unwrap();
    let r = fresh
        .post_form(
            "/console/sign-in",
            &[("csrf", "forged"), ("token", "bcstaff_x")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    app.finish().await;
}

#[tokio::test]
async fn a_viewers_post_is_refused_and_actions_are_absent() {
    let app = TestApp::spawn().await;
    let id = app
        .seed_break("sh-water", "missing-at-biller", "p-2", Some(100), None, "d")
        .await;
    let (mut v, _) = app.console_as("vic", StaffRole::Viewer).await;
    let page = v.get(&format!("/console/breaks/{id}")).await.unwrap();
    let text = page.text();
    assert!(
        !text.contains("id=\"propose\""),
        "a viewer sees no propose button"
    );
    assert!(!text.contains("id=\"add-comment\""));
    let csrf = csrf_of(&text).unwrap(); // the sign-out form's
    let r = v
        .post_form(
            &format!("/console/breaks/{id}/act"),
            &[("csrf", &csrf), ("action", "comment"), ("text", "hi")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(app.count("recon_break_events").await, 0);
    app.finish().await;
}

#[tokio::test]
async fn maker_checker_holds_in_the_console() {
    let app = TestApp::spawn().await;
    let id = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-3",
            Some(8850),
            Some(8580),
            "d",
        )
        .await;
    let (mut maker, _) = app.console_as("amy", StaffRole::Approver).await;
    let url = format!("/console/breaks/{id}/act");
    let page = maker.get(&format!("/console/breaks/{id}")).await.unwrap();
    let csrf = csrf_of(&page.text()).unwrap();
    let r = maker
        .post_form(
            &url,
            &[
                ("csrf", &csrf),
                ("action", "propose"),
                ("resolution", "write-off"),
                ("note", "small"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    // The maker sees no approve button, and the server refuses anyway.
    let page = maker.get(&format!("/console/breaks/{id}")).await.unwrap();
    assert!(!page.text().contains("id=\"approve\""));
    assert!(page.text().contains("id=\"own-proposal\""));
    let r = maker
        .post_form(&url, &[("csrf", &csrf), ("action", "approve")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("maker-checker"), "{}", r.text());
    // Another approver approves.
    let (mut checker, _) = app.console_as("bob", StaffRole::Approver).await;
    let page = checker.get(&format!("/console/breaks/{id}")).await.unwrap();
    assert!(page.text().contains("id=\"approve\""));
    let csrf = csrf_of(&page.text()).unwrap();
    let r = checker
        .post_form(&url, &[("csrf", &csrf), ("action", "approve")])
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let status: String = sqlx::query_scalar("SELECT status FROM recon_breaks WHERE id = $1")
        .bind(id)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(status, "written-off");
    let page = checker.get(&format!("/console/breaks/{id}")).await.unwrap();
    let trail = page.text();
    assert!(trail.contains("amy") && trail.contains("bob") && trail.contains("approve"));
    app.finish().await;
}

#[tokio::test]
async fn a_session_ends_at_sign_out_rotation_and_disabling() {
    let app = TestApp::spawn().await;
    // Sign-out: the same cookie replayed is refused.
    let (mut c, _) = app.console_as("sam", StaffRole::Operator).await;
    let cookie = c.cookies.get("bc_session").cloned().unwrap();
    let page = c.get("/console/").await.unwrap();
    let csrf = csrf_of(&page.text()).unwrap();
    let r = c
        .post_form("/console/sign-out", &[("csrf", &csrf)])
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    assert!(!c.cookies.contains_key("bc_session"));
    let mut replay = ConsoleClient::new(&app.base);
    replay.cookies.insert("bc_session".into(), cookie);
    let r = replay.get("/console/breaks").await.unwrap();
    assert_eq!(r.status, 303, "a replayed cookie after sign-out");
    assert!(r.location().unwrap().starts_with("/console/sign-in"));
    // Rotation ends the session at once.
    let (mut r1, _) = app.console_as("rita", StaffRole::Viewer).await;
    assert_eq!(r1.get("/console/breaks").await.unwrap().status, 200);
    rotate_staff(&*app.store, "rita").await.unwrap();
    assert_eq!(r1.get("/console/breaks").await.unwrap().status, 303);
    // Disabling too.
    let (mut d1, _) = app.console_as("dan", StaffRole::Viewer).await;
    assert_eq!(d1.get("/console/breaks").await.unwrap().status, 200);
    app.store.disable_staff("dan").await.unwrap();
    assert_eq!(d1.get("/console/breaks").await.unwrap().status, 303);
    let ended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM console_sessions WHERE ended_at IS NOT NULL")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(ended, 3);
    app.finish().await;
}

#[tokio::test]
async fn html_in_a_comment_is_shown_escaped() {
    let app = TestApp::spawn().await;
    let id = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "<b>p-4</b>",
            Some(1),
            Some(2),
            "<img src=x onerror=alert(1)>",
        )
        .await;
    let (mut c, _) = app.console_as("eve", StaffRole::Operator).await;
    let page = c.get(&format!("/console/breaks/{id}")).await.unwrap();
    let csrf = csrf_of(&page.text()).unwrap();
    let evil = "<script>alert('x')</script>";
    let r = c
        .post_form(
            &format!("/console/breaks/{id}/act"),
            &[("csrf", &csrf), ("action", "comment"), ("text", evil)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    let text = c
        .get(&format!("/console/breaks/{id}"))
        .await
        .unwrap()
        .text();
    assert!(!text.contains(evil), "the comment is escaped");
    assert!(text.contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    assert!(!text.contains("<img src=x"), "the detail is escaped");
    assert!(!text.contains("<b>p-4</b>"));
    app.finish().await;
}

#[tokio::test]
async fn the_queue_filters_sorts_and_pages_and_says_why() {
    let app = TestApp::spawn().await;
    for i in 0..60 {
        app.seed_break(
            "sh-water",
            "missing-at-biller",
            &format!("m-{i:02}"),
            Some(100 + i),
            None,
            "d",
        )
        .await;
    }
    let big = app
        .seed_break(
            "sz-power",
            "amount-mismatch",
            "a-1",
            Some(8850),
            Some(8580),
            "d",
        )
        .await;
    let (mut c, _) = app.console_as("quinn", StaffRole::Viewer).await;
    let text = c.get("/console/breaks").await.unwrap().text();
    assert!(
        text.contains("<span id=\"result-count\">61</span>"),
        "all open"
    );
    let text = c
        .get("/console/breaks?category=amount-mismatch")
        .await
        .unwrap()
        .text();
    assert!(text.contains("<span id=\"result-count\">1</span>"));
    assert!(
        text.contains("amount differs: ours 88.50 CNY, the biller&#39;s 85.80 CNY")
            || text.contains("amount differs: ours 88.50 CNY, the biller's 85.80 CNY"),
        "{text}"
    );
    let text = c.get("/console/breaks?sort=largest").await.unwrap().text();
    let first = text.find("data-break=").unwrap();
    assert!(text[first..].starts_with(&format!("data-break=\"{big}\"")));
    // Page 2 of 61 at 50 a page holds 11 rows.
    let text = c.get("/console/breaks?page=2").await.unwrap().text();
    assert_eq!(text.matches("data-break=").count(), 11);
    // Chinese.
    c.headers
        .push(("accept-language".into(), "zh-CN,zh;q=0.9".into()));
    let text = c
        .get("/console/breaks?category=amount-mismatch")
        .await
        .unwrap()
        .text();
    assert!(
        text.contains("金额不符：我方 88.50 CNY，缴费单位 85.80 CNY"),
        "{text}"
    );
    assert!(text.contains("lang=\"zh-CN\""));
    // A bad filter is a clear 400.
    let r = c.get("/console/breaks?from=yesterday").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not a date"));
    app.finish().await;
}

#[tokio::test]
async fn a_one_time_link_signs_in_once() {
    let app = TestApp::spawn().await;
    billclear::cli::staff::add_staff(&*app.store, "demo.approver", "Demo", StaffRole::Approver)
        .await
        .unwrap();
    let link = billclear::cli::staff::sign_in_link(
        &*app.store,
        &app.state.config,
        "demo.approver",
        &app.base,
    )
    .await
    .unwrap();
    let code = link.split("code=").nth(1).unwrap().to_string();
    let mut c = ConsoleClient::new(&app.base);
    let r = c
        .get(&format!("/console/sign-in/link?code={code}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the GET only shows a button");
    let r = c
        .post_form("/console/sign-in/link", &[("code", &code)])
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(c.get("/console/").await.unwrap().status, 200);
    let mut again = ConsoleClient::new(&app.base);
    let r = again
        .post_form("/console/sign-in/link", &[("code", &code)])
        .await
        .unwrap();
    assert_eq!(r.status, 401, "used once");
    app.finish().await;
}

#[tokio::test]
async fn the_day_overview_shows_each_biller() {
    let app = TestApp::spawn().await;
    app.seed_break("sh-water", "missing-at-biller", "x-1", Some(100), None, "d")
        .await;
    let (mut c, _) = app.console_as("dora", StaffRole::Viewer).await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let r = c.get(&format!("/console/days/{today}")).await.unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("data-biller=\"sh-water\""), "{text}");
    assert!(c.get("/console/days/2026-13-01").await.unwrap().status == 400);
    let home = c.get("/console/").await.unwrap().text();
    assert!(
        home.matches("class=\"overview\"").count() >= 2,
        "today and yesterday"
    );
    app.finish().await;
}
