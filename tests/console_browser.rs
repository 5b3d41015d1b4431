//! The finance console in a real browser: Debian's headless Chromium driven
//! over WebDriver (chromedriver) through a real service, a real database
//! and breaks found by a real reconciliation run of a biller's file.
//!
//! `ops/test.sh` installs `chromium` and `chromium-driver` when missing and
//! sets BILLCLEAR_BROWSER_TESTS=required, so that a missing browser fails
//! the run there; a plain `cargo test` without chromedriver skips this
//! test and says so. Screenshots of each page go to
//! `<target>/console-screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use billclear::domain::ids::PaymentId;
use billclear::domain::payment::{transition, PaymentStatus};
use billclear::domain::staff::StaffRole;
use billclear::reconcile::import::import_file;
use billclear::reconcile::run::{run_biller, RunOptions};
use billclear::store::recon::ReconStore;
use billclear::store::PaymentStore;
use biller_sim::{confirmation_csv, CreditRecord};
use chrono::{Days, FixedOffset, TimeZone, Utc};
use common::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use rust_decimal::Decimal;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMEDRIVER").ok(),
        Some("/usr/bin/chromedriver".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

async fn start_driver() -> Option<Driver> {
    let Some(path) = chromedriver() else {
        if std::env::var("BILLCLEAR_BROWSER_TESTS").as_deref() == Ok("required") {
            panic!("chromedriver is not installed (ops/test.sh installs Debian's chromium and chromium-driver)");
        }
        eprintln!("SKIPPED: chromedriver not found; run ops/test.sh (it installs chromium and chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Dropping the Driver kills and waits for chromedriver.
    let driver = Driver {
        child: Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
        port,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver, lang: &str, downloads: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/chromium");
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", format!("--lang={lang}")],
            "prefs": {
                "intl.accept_languages": lang,
                "download.default_directory": downloads.to_str().unwrap(),
                "download.prompt_for_download": false
            }
        }),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

fn shots_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/console/")).await.unwrap();
    // No session: the console sends us to sign in.
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#whoami").await;
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    wait_for(c, css).await.text().await.unwrap()
}

/// Waits until the element's text is `expected` (after a navigation the
/// old page may still be there for a moment).
async fn wait_text(c: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t == expected {
                    return;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: {last:?}, expected {expected:?}");
}

async fn sign_out(c: &Client) {
    c.find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#token").await;
}

async fn move_to(app: &TestApp, id: PaymentId, path: &[PaymentStatus]) {
    let mut from = PaymentStatus::Received;
    for to in path {
        let t = transition(id, from, *to, "test", Utc::now()).unwrap();
        app.store.apply_transition(&t).await.unwrap();
        from = *to;
    }
}

/// Yesterday's water payments and the biller's confirmation file, read by
/// a real reconciliation run: one amount differs, one is missing at the
/// biller, one was credited twice. Returns the date.
async fn a_reconciled_day(app: &TestApp, dir: &std::path::Path) -> chrono::NaiveDate {
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let date = Utc::now().with_timezone(&shanghai).date_naive() - Days::new(1);
    let noon = shanghai
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    use PaymentStatus::*;
    let matched = app.pay("3100000011", "10.00").await;
    let differs = app.pay("3100000011", "88.50").await;
    let missing = app.pay("3100000011", "13.00").await;
    let twice = app.pay("3100000011", "15.00").await;
    for id in [matched, differs, missing, twice] {
        move_to(app, id, &[Submitted, Confirmed]).await;
    }
    sqlx::query("UPDATE payments SET created_at = $1, connector_id = 'water-direct'")
        .bind(noon)
        .execute(app.store.pool())
        .await
        .unwrap();
    let credit = |our: PaymentId, receipt: &str, amount: &str| CreditRecord {
        our_reference: our.to_string(),
        biller_reference: receipt.into(),
        biller_id: "sh-water".into(),
        account_number: "3100000011".into(),
        amount: Decimal::from_str(amount).unwrap(),
        currency: "CNY".into(),
        bill_reference: None,
        credited_at: noon,
    };
    let credits = vec![
        credit(matched, "W1", "10.00"),
        credit(differs, "W2", "85.80"),
        credit(twice, "W4", "15.00"),
        credit(twice, "W5", "15.00"),
    ];
    let file = dir.join("sh-water-confirmation.csv");
    std::fs::write(
        &file,
        confirmation_csv(&credits, "sh-water", date, shanghai),
    )
    .unwrap();
    let recon_dir = dir.join("recon");
    import_file(
        app.store.as_ref(),
        &recon_dir,
        &common::our_accounts(),
        "sh-water",
        &file,
        None,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    let billers = app.store_billers().await;
    let water = billers
        .iter()
        .find(|b| b.id.as_str() == "sh-water")
        .unwrap();
    let opts = RunOptions {
        dir: recon_dir,
        grace: Duration::ZERO,
        sort_buffer: 64,
        run_by: "test".into(),
        file_routes: Default::default(),
    };
    let store: std::sync::Arc<dyn ReconStore> = app.store.clone();
    let summary = run_biller(store, water, date, &opts, 0, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(summary.break_count(), 3, "{summary:?}");
    date
}

#[tokio::test]
async fn finance_staff_work_a_day_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let date = a_reconciled_day(&app, dir.path()).await;
    let base = app.base.clone();
    let token = |t: billclear::auth::staff_token::StaffToken| t.expose_text().to_string();
    let add = |id: &'static str, role| {
        let store = app.store.clone();
        async move {
            let (_, t) = billclear::cli::staff::add_staff(&*store, id, id, role)
                .await
                .unwrap();
            t
        }
    };
    let olga = token(add("olga", StaffRole::Operator).await);
    let amy = token(add("amy", StaffRole::Approver).await);
    let bob = token(add("bob", StaffRole::Approver).await);
    let vic = token(add("vic", StaffRole::Viewer).await);
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    let c = browser(&driver, "en-US", &downloads).await;
    // Sign in; the home page shows today and yesterday.
    c.goto(&format!("{base}/console/sign-in")).await.unwrap();
    shot(&c, "sign-in").await;
    sign_in(&c, &base, &olga).await;
    assert_eq!(text_of(&c, "#whoami").await, "olga");
    shot(&c, "home").await;

    // The day: sh-water needs a person (open breaks), in red.
    c.goto(&format!("{base}/console/days/{date}"))
        .await
        .unwrap();
    let row = wait_for(&c, "tr[data-biller='sh-water']").await;
    assert_eq!(
        row.attr("class").await.unwrap().as_deref(),
        Some("attention")
    );
    let text = row.text().await.unwrap();
    assert!(text.contains("amount differs"), "{text}");
    shot(&c, "day").await;

    // Filter the queue: amount differences of sh-water.
    c.goto(&format!("{base}/console/breaks")).await.unwrap();
    wait_text(&c, "#result-count", "3").await;
    c.find(Locator::Css(
        "select[name='category'] option[value='amount-mismatch']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.find(Locator::Id("apply-filter"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#result-count", "1").await;
    let why = text_of(&c, "td.why").await;
    assert_eq!(
        why,
        "amount differs: ours 88.50 CNY, the biller's 85.80 CNY"
    );
    shot(&c, "breaks-queue").await;

    // Open the break: both sides, the file and line it came from.
    c.find(Locator::Css("tr[data-break] td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#why").await;
    let page = c.source().await.unwrap();
    assert!(
        page.contains("sh-water-confirmation.csv"),
        "the file it came from"
    );
    assert!(page.contains("line "), "and its line");
    let break_url = c.current_url().await.unwrap();
    shot(&c, "break-detail").await;

    // An operator proposes a write-off; approving is not theirs to do.
    propose_write_off(&c, "rounding at the biller, 2.70 CNY").await;
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "an operator cannot approve"
    );

    // A malformed file is refused, naming its line; nothing is imported.
    let good = std::fs::read_to_string(dir.path().join("sh-water-confirmation.csv")).unwrap();
    let bad = dir.path().join("sh-water-confirmation-broken.csv");
    std::fs::write(&bad, &good[..good.rfind("TRAILER").unwrap()]).unwrap();
    let files_before = app.count("recon_files").await;
    c.goto(&format!("{base}/console/files")).await.unwrap();
    c.find(Locator::Css(
        "#import-form select[name='source'] option[value='sh-water']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.find(Locator::Css("#import-form input[type='file']"))
        .await
        .unwrap()
        .send_keys(bad.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Id("import-file"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let refusal = text_of(&c, "#error-detail").await;
    assert!(
        refusal.contains("line"),
        "the refusal names its line: {refusal}"
    );
    assert_eq!(app.count("recon_files").await, files_before);
    shot(&c, "file-refused").await;

    // Export the open missing-at-biller breaks, fill in a resolution, and
    // upload the sheet back: each row becomes a proposal of olga's.
    c.goto(&format!("{base}/console/breaks?category=missing-at-biller"))
        .await
        .unwrap();
    wait_text(&c, "#result-count", "1").await;
    c.find(Locator::Id("export"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let sheet = wait_for_file(&downloads.join("breaks.xlsx")).await;
    let filled = dir.path().join("breaks-filled.xlsx");
    fill_resolutions(
        &sheet,
        &filled,
        "write-off",
        "not at the biller; written off after a call",
    );
    c.goto(&format!("{base}/console/uploads")).await.unwrap();
    c.find(Locator::Css("#upload-form input[type='file']"))
        .await
        .unwrap()
        .send_keys(filled.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Id("upload-sheet"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#upload-rows").await;
    assert_eq!(text_of(&c, "#upload-maker").await, "olga");
    let upload_url = c.current_url().await.unwrap();
    assert!(
        upload_url.path().starts_with("/console/uploads/"),
        "{upload_url}"
    );
    shot(&c, "upload").await;

    // Switch sh-water to its direct route: first the payments in flight on
    // the old route are named, then the switch is confirmed and audited.
    c.goto(&format!("{base}/console/routes")).await.unwrap();
    c.find(Locator::Css(
        "form[action='/console/routes/sh-water/switch'] select[name='route'] option[value='water-direct']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    shot(&c, "routes").await;
    c.find(Locator::Css(
        "form[action='/console/routes/sh-water/switch'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_for(&c, "#in-flight-count").await;
    assert_eq!(text_of(&c, "#new-route").await, "water-direct");
    shot(&c, "route-switch-confirm").await;
    c.find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "table.audit").await;
    assert_eq!(preferred_route(&app).await.as_deref(), Some("water-direct"));
    let audit = text_of(&c, "table.audit").await;
    assert!(
        audit.contains("olga") && audit.contains("route-switch"),
        "{audit}"
    );
    sign_out(&c).await;

    // A viewer sees no switch, and a switch posted anyway is refused.
    sign_in(&c, &base, &vic).await;
    c.goto(&format!("{base}/console/routes")).await.unwrap();
    wait_for(&c, "#whoami").await;
    assert!(
        c.find(Locator::Css("form.switch")).await.is_err(),
        "a viewer has no switch form"
    );
    let csrf = wait_for(&c, "form[action='/console/sign-out'] input[name='csrf']")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    c.execute(
        "const f = document.createElement('form'); f.method = 'post';
         f.action = '/console/routes/sh-water/switch/confirm';
         for (const [k, v] of [['csrf', arguments[0]], ['route', '']]) {
             const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(csrf)],
    )
    .await
    .unwrap();
    assert_eq!(text_of(&c, "main.error-page h1").await, "Not allowed");
    shot(&c, "viewer-refused").await;
    assert_eq!(
        preferred_route(&app).await.as_deref(),
        Some("water-direct"),
        "the viewer changed nothing"
    );
    c.goto(&format!("{base}/console/")).await.unwrap();
    sign_out(&c).await;

    // An approver proposes on another break and may not approve it: the
    // button is absent (the server refuses too: tests/console.rs).
    sign_in(&c, &base, &amy).await;
    c.goto(&format!(
        "{base}/console/breaks?category=duplicate-at-biller"
    ))
    .await
    .unwrap();
    c.find(Locator::Css("tr[data-break] td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#why").await;
    propose_write_off(&c, "the hub credited twice; recovered by the hub").await;
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "the maker sees no approve button"
    );
    wait_for(&c, "#own-proposal").await;
    shot(&c, "break-own-proposal").await;

    // ...approves olga's sheet (every row of it)...
    c.goto(upload_url.as_str()).await.unwrap();
    wait_for(&c, "#approve-upload").await.click().await.unwrap();
    let outcomes = text_of(&c, "#outcomes").await;
    assert!(
        outcomes.contains("written-off") || outcomes.contains("written off"),
        "{outcomes}"
    );
    shot(&c, "upload-approved").await;

    // ...and olga's proposal.
    c.goto(break_url.as_str()).await.unwrap();
    wait_for(&c, "#approve").await.click().await.unwrap();
    wait_text(&c, "#break-status", "written off").await;
    // The audit trail on the break: who proposed, who approved.
    let trail = text_of(&c, "#trail").await;
    assert!(
        trail.contains("olga") && trail.contains("propose"),
        "{trail}"
    );
    assert!(
        trail.contains("amy") && trail.contains("approve"),
        "{trail}"
    );
    shot(&c, "break-approved").await;
    sign_out(&c).await;

    // bob approves amy's proposal.
    sign_in(&c, &base, &bob).await;
    c.goto(&format!("{base}/console/breaks?status=pending-approval"))
        .await
        .unwrap();
    wait_text(&c, "#result-count", "1").await;
    c.find(Locator::Css("tr[data-break] td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#approve").await.click().await.unwrap();
    wait_text(&c, "#break-status", "written off").await;

    // Chinese, by the switch on the page.
    c.find(Locator::Id("lang-switch"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "html[lang='zh-CN']").await;
    wait_text(&c, "#break-status", "已核销").await;
    c.goto(&format!(
        "{base}/console/breaks?status=all&category=amount-mismatch"
    ))
    .await
    .unwrap();
    assert_eq!(
        text_of(&c, "td.why").await,
        "金额不符：我方 88.50 CNY，缴费单位 85.80 CNY"
    );
    shot(&c, "breaks-queue-zh").await;

    // Sign out, and the console is closed to this browser.
    sign_out(&c).await;
    c.goto(&format!("{base}/console/breaks")).await.unwrap();
    wait_for(&c, "#token").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));

    c.close().await.unwrap();
    app.finish().await;
}

async fn preferred_route(app: &TestApp) -> Option<String> {
    sqlx::query_scalar("SELECT preferred_route FROM billers WHERE id = 'sh-water'")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// Waits for a download to finish.
async fn wait_for_file(path: &std::path::Path) -> PathBuf {
    for _ in 0..100 {
        if path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            return path.to_path_buf();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} was not downloaded", path.display());
}

/// Copies the exported sheet with `resolution` and `note` filled in on
/// every row, as a person does in Excel.
fn fill_resolutions(from: &std::path::Path, to: &std::path::Path, resolution: &str, note: &str) {
    use calamine::{open_workbook, Reader, Xlsx};
    let mut book: Xlsx<_> = open_workbook(from).unwrap();
    let first = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&first).unwrap();
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let header = &rows[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (res, not) = (col("resolution"), col("note"));
    let mut out = rust_xlsxwriter::Workbook::new();
    let sheet = out.add_worksheet();
    for (i, row) in rows.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let v = match (i, j) {
                (0, _) => v.as_str(),
                (_, j) if j == res => resolution,
                (_, j) if j == not => note,
                _ => v.as_str(),
            };
            sheet.write_string(i as u32, j as u16, v).unwrap();
        }
    }
    out.save(to).unwrap();
}

async fn propose_write_off(c: &Client, note: &str) {
    c.find(Locator::Css("#resolution option[value='write-off']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("note"))
        .await
        .unwrap()
        .send_keys(note)
        .await
        .unwrap();
    c.find(Locator::Id("propose"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#proposal").await;
}
