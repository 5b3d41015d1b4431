//! The console's bulk work and files: the queue exported as a workbook,
//! filled in and uploaded as proposals (refused whole when any row is
//! bad), the upload decided by another approver through the workflow, and
//! counterparty files and bank statements imported from the console.

mod common;

use billclear::client::{csrf_of, ConsoleClient};
use billclear::domain::staff::StaffRole;
use calamine::{Data, Reader, Xlsx};
use common::TestApp;

const COLUMNS: [&str; 14] = [
    "id",
    "business_date",
    "biller",
    "category",
    "why",
    "our_amount",
    "their_amount",
    "currency",
    "status",
    "owner",
    "opened_at",
    "resolution",
    "note",
    "connector",
];

fn text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{}", *f as i64),
        Data::Int(i) => i.to_string(),
        other => other.to_string(),
    }
}

/// The first sheet's rows as text.
fn read_xlsx(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    range.rows().map(|r| r.iter().map(text).collect()).collect()
}

/// A workbook of these rows (all text).
fn write_xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string(r as u32, c as u16, v).unwrap();
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

/// A sheet with the export's header and, per row, id, resolution, note
/// and connector.
fn sheet(rows: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let mut all = vec![COLUMNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for (id, res, note, conn) in rows {
        let mut r = vec![String::new(); COLUMNS.len()];
        r[0] = id.to_string();
        r[11] = res.to_string();
        r[12] = note.to_string();
        r[13] = conn.to_string();
        all.push(r);
    }
    write_xlsx(&all)
}

async fn status(app: &TestApp, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, proposal->>'maker' FROM recon_breaks WHERE id = $1")
        .bind(id)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

async fn csrf_on(c: &mut ConsoleClient, path: &str) -> String {
    let page = c.get(path).await.unwrap();
    csrf_of(&page.text()).unwrap()
}

async fn upload(c: &mut ConsoleClient, name: &str, bytes: &[u8]) -> billclear::client::Reply {
    let csrf = csrf_on(c, "/console/uploads").await;
    c.post_multipart(
        "/console/breaks-upload",
        &[("csrf", &csrf)],
        ("sheet", name, bytes),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn export_fill_upload_and_another_approver_approves() {
    let app = TestApp::spawn().await;
    let a = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-1",
            Some(8850),
            Some(8580),
            "d",
        )
        .await;
    let b = app
        .seed_break("sh-water", "missing-at-biller", "p-2", Some(100), None, "d")
        .await;
    let c = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-3",
            Some(10),
            Some(20),
            "d",
        )
        .await;
    let (mut amy, _) = app.console_as("amy", StaffRole::Approver).await;

    // The queue page links the export with its filter.
    let page = amy.get("/console/breaks?status=open").await.unwrap();
    assert!(
        page.text()
            .contains("href=\"/console/breaks-export.xlsx?status=open\""),
        "{}",
        page.text()
    );
    let r = amy
        .get("/console/breaks-export.xlsx?status=open")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    let mut rows = read_xlsx(&r.body);
    assert_eq!(rows[0], COLUMNS.map(String::from).to_vec());
    assert_eq!(rows.len(), 4);
    let ids: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [a, b, c].map(|i| i.to_string()).to_vec());
    assert_eq!(rows[1][3], "amount-mismatch");
    assert_eq!(rows[1][5], "88.50");
    assert!(!rows[1][4].is_empty(), "why in words");
    // The second sheet names the resolutions.
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(r.body.to_vec())).unwrap();
    assert_eq!(wb.sheet_names()[1], "Resolutions");
    let help = wb.worksheet_range_at(1).unwrap().unwrap();
    assert!(help.rows().any(|r| text(&r[0]) == "write-off"));

    // Fill two rows and upload.
    for r in rows.iter_mut().skip(1) {
        r.resize(COLUMNS.len(), String::new());
    }
    rows[1][11] = "write-off".into();
    rows[1][12] = "small difference".into();
    rows[2][11] = "write-off".into();
    rows[2][12] = "never arrived; written off".into();
    let r = upload(&mut amy, "breaks.xlsx", &write_xlsx(&rows)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.location().unwrap();
    assert!(to.starts_with("/console/uploads/"), "{to}");
    assert_eq!(
        status(&app, a).await,
        ("pending-approval".into(), Some("amy".into()))
    );
    assert_eq!(
        status(&app, b).await,
        ("pending-approval".into(), Some("amy".into()))
    );
    assert_eq!(status(&app, c).await.0, "open");
    assert_eq!(app.count("console_uploads").await, 1);
    assert_eq!(app.count("console_upload_rows").await, 2);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staff_audit WHERE action = 'sheet-upload' AND subject_kind = 'upload' AND actor = 'amy'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // The maker sees no approve button, and the server refuses.
    let page = amy.get(&to).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("id=\"own-upload\""));
    assert!(!page.text().contains("id=\"approve-upload\""));
    let csrf_amy = csrf_of(&page.text()).unwrap();
    let r = amy
        .post_form(
            &format!("{to}/decide"),
            &[("csrf", &csrf_amy), ("decision", "approve")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("maker-checker"), "{}", r.text());
    assert_eq!(status(&app, a).await.0, "pending-approval");

    // Another approver approves all.
    let (mut bob, _) = app.console_as("bob", StaffRole::Approver).await;
    let page = bob.get(&to).await.unwrap();
    assert!(page.text().contains("id=\"approve-upload\""));
    assert!(page.text().contains("data-select-all=\"rows\""));
    let csrf_bob = csrf_of(&page.text()).unwrap();
    // Without its CSRF token: refused, nothing changed.
    let r = bob
        .post_form(&format!("{to}/decide"), &[("decision", "approve")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(status(&app, a).await.0, "pending-approval");
    let r = bob
        .post_form(
            &format!("{to}/decide"),
            &[("csrf", &csrf_bob), ("decision", "approve")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("id=\"outcomes\""));
    assert_eq!(status(&app, a).await.0, "written-off");
    assert_eq!(status(&app, b).await.0, "written-off");
    assert_eq!(status(&app, c).await.0, "open");
    // The list of uploads shows it.
    let r = bob.get("/console/uploads").await.unwrap();
    assert!(r.text().contains("breaks.xlsx"));
    app.finish().await;
}

#[tokio::test]
async fn single_rows_are_declined() {
    let app = TestApp::spawn().await;
    let a = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-1",
            Some(8850),
            Some(8580),
            "d",
        )
        .await;
    let b = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-2",
            Some(100),
            Some(90),
            "d",
        )
        .await;
    let (mut amy, _) = app.console_as("amy", StaffRole::Operator).await;
    let (aa, bb) = (a.to_string(), b.to_string());
    let r = upload(
        &mut amy,
        "two.xlsx",
        &sheet(&[
            (&aa, "write-off", "small", ""),
            (&bb, "accept-biller", "they are right", ""),
        ]),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.location().unwrap();
    let (mut bob, _) = app.console_as("bob", StaffRole::Approver).await;
    let csrf = csrf_on(&mut bob, &to).await;
    // A decline needs a reason.
    let r = bob
        .post_form(
            &format!("{to}/decide"),
            &[("csrf", &csrf), ("decision", "decline"), ("rows", &aa)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(status(&app, a).await.0, "pending-approval");
    // A row not of this upload is refused.
    let r = bob
        .post_form(
            &format!("{to}/decide"),
            &[("csrf", &csrf), ("decision", "approve"), ("rows", "999999")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = bob
        .post_form(
            &format!("{to}/decide"),
            &[
                ("csrf", &csrf),
                ("decision", "decline"),
                ("reason", "check again"),
                ("rows", &aa),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let (sa, ma) = status(&app, a).await;
    assert_ne!(sa, "pending-approval");
    assert_eq!(ma, None);
    assert_eq!(
        status(&app, b).await,
        ("pending-approval".into(), Some("amy".into()))
    );
    // A viewer cannot decide.
    let (mut vera, _) = app.console_as("vera", StaffRole::Viewer).await;
    let csrf_v = csrf_on(&mut vera, &to).await;
    let r = vera
        .post_form(
            &format!("{to}/decide"),
            &[("csrf", &csrf_v), ("decision", "approve")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(status(&app, b).await.0, "pending-approval");
    app.finish().await;
}

#[tokio::test]
async fn a_sheet_with_bad_rows_is_refused_whole() {
    let app = TestApp::spawn().await;
    let x = app
        .seed_break("sh-water", "missing-at-biller", "p-1", Some(100), None, "d")
        .await;
    let y = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-2",
            Some(100),
            Some(90),
            "d",
        )
        .await;
    let z = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-3",
            Some(100),
            Some(90),
            "d",
        )
        .await;
    let w = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-4",
            Some(100),
            Some(90),
            "d",
        )
        .await;
    let (mut amy, _) = app.console_as("amy", StaffRole::Operator).await;
    let (xs, ys, zs, ws) = (x.to_string(), y.to_string(), z.to_string(), w.to_string());
    let bytes = sheet(&[
        ("999999", "write-off", "gone", ""), // row 2: no such break
        (&xs, "accept-biller", "they are right", ""), // row 3: does not apply
        (&ys, "write-off", "", ""),          // row 4: no note
        (&zs, "write-off", "fine", ""),      // row 5: good
        (&xs, "", "", ""),                   // row 6: no resolution, ignored
        (&zs, "explain", "again", ""),       // row 7: the same break again
        (&ws, "resend", "send it", "x"),     // row 8: resend does not apply
    ]);
    let r = upload(&mut amy, "bad.xlsx", &bytes).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let t = r.text();
    for (row, says) in [
        (2, "does not exist"),
        (3, "accept-biller does not resolve"),
        (4, "note"),
        (7, "also on row 5"),
        (8, "resend does not resolve"),
    ] {
        let at = t
            .find(&format!("data-row=\"{row}\""))
            .unwrap_or_else(|| panic!("row {row}: {t}"));
        assert!(t[at..].contains(says), "row {row}: {t}");
    }
    assert!(!t.contains("data-row=\"5\""), "{t}");
    assert!(!t.contains("data-row=\"6\""), "{t}");
    // Nothing changed.
    assert_eq!(app.count("console_uploads").await, 0);
    assert_eq!(app.count("console_upload_rows").await, 0);
    assert_eq!(app.count("recon_break_events").await, 0);
    for id in [x, y, z, w] {
        assert_eq!(status(&app, id).await, ("open".into(), None));
    }
    // A file that is not a workbook.
    let r = upload(&mut amy, "notes.xlsx", b"id,resolution\n1,write-off\n").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("not an Excel workbook"), "{}", r.text());
    // A sheet without the columns.
    let r = upload(
        &mut amy,
        "cols.xlsx",
        &write_xlsx(&[
            vec!["break".into(), "what".into()],
            vec![xs.clone(), "x".into()],
        ]),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("no &quot;id&quot; column"),
        "{}",
        r.text()
    );
    assert_eq!(app.count("console_uploads").await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_viewer_cannot_upload_but_can_export() {
    let app = TestApp::spawn().await;
    let x = app
        .seed_break(
            "sh-water",
            "amount-mismatch",
            "p-1",
            Some(100),
            Some(90),
            "d",
        )
        .await;
    let (mut vera, _) = app.console_as("vera", StaffRole::Viewer).await;
    let r = vera.get("/console/breaks-export.xlsx").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(read_xlsx(&r.body).len(), 2);
    let page = vera.get("/console/uploads").await.unwrap();
    assert!(!page.text().contains("id=\"upload-form\""));
    let csrf = csrf_of(&page.text()).unwrap(); // the sign-out form's
    let xs = x.to_string();
    let r = vera
        .post_multipart(
            "/console/breaks-upload",
            &[("csrf", &csrf)],
            ("sheet", "a.xlsx", &sheet(&[(&xs, "write-off", "n", "")])),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // Without CSRF, even an operator is refused.
    let (mut olga, _) = app.console_as("olga", StaffRole::Operator).await;
    let r = olga
        .post_multipart(
            "/console/breaks-upload",
            &[],
            ("sheet", "a.xlsx", &sheet(&[(&xs, "write-off", "n", "")])),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // A bad filter is named.
    let r = vera
        .get("/console/breaks-export.xlsx?category=nope")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(status(&app, x).await.0, "open");
    assert_eq!(app.count("console_uploads").await, 0);
    app.finish().await;
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

async fn import(
    c: &mut ConsoleClient,
    source: &str,
    name: &str,
    bytes: &[u8],
) -> billclear::client::Reply {
    let csrf = csrf_on(c, "/console/files").await;
    c.post_multipart(
        "/console/files",
        &[("csrf", &csrf), ("source", source), ("date", "")],
        ("file", name, bytes),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn files_are_imported_and_refusals_say_where() {
    let app = TestApp::spawn().await;
    let (mut olga, _) = app.console_as("olga", StaffRole::Operator).await;
    // A counterparty file with a bad amount on line 3: refused, nothing kept.
    let water = fixture("tests/fixtures/recon/water.csv");
    let bad = water.replacen("120.00", "12x.00", 1);
    let r = import(&mut olga, "sh-water", "<b>x</b>.csv", bad.as_bytes()).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let t = r.text();
    assert!(t.contains("line 3"), "{t}");
    assert!(t.contains("&lt;b&gt;x&lt;/b&gt;.csv"), "{t}");
    assert!(!t.contains("<b>x</b>"), "{t}");
    assert_eq!(app.count("recon_files").await, 0);
    // A bank statement whose XML is cut short: refused with where.
    let camt = fixture("tests/fixtures/bank/camt053_v02.xml");
    let cut = &camt[..camt.len() / 2];
    let r = import(&mut olga, "bank", "cut.xml", cut.as_bytes()).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("refused, nothing imported"),
        "{}",
        r.text()
    );
    // A statement whose closing balance does not add up: the element named.
    let wrong = camt.clone();
    let at = wrong.find("<Cd>CLBD</Cd>").unwrap();
    let amt = at + wrong[at..].find("<Amt Ccy=\"CNY\">").unwrap() + "<Amt Ccy=\"CNY\">".len();
    let wrong = format!("{}9{}", &wrong[..amt], &wrong[amt..]);
    let r = import(&mut olga, "bank", "wrong.xml", wrong.as_bytes()).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("Stmt"), "{}", r.text());
    assert_eq!(app.count("recon_files").await, 0);
    // Unknown source: refused.
    let r = import(&mut olga, "nobody", "w.csv", water.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A good file with HTML in its name: imported, the name shown escaped.
    let r = import(&mut olga, "sh-water", "<b>x</b>.csv", water.as_bytes()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.location().unwrap();
    assert!(to.starts_with("/console/files/"), "{to}");
    let page = olga.get(&to).await.unwrap();
    assert_eq!(page.status, 200);
    let t = page.text();
    assert!(t.contains("&lt;b&gt;x&lt;/b&gt;.csv"), "{t}");
    assert!(!t.contains("<b>x</b>"), "{t}");
    assert!(t.contains("file-upload"), "the audit entry: {t}");
    assert!(t.contains("water-csv"));
    let list = olga.get("/console/files?date=2026-11-29").await.unwrap();
    let t = list.text();
    assert!(t.contains("id=\"files\""), "{t}");
    assert!(t.contains("&lt;b&gt;x&lt;/b&gt;.csv"), "{t}");
    assert!(t.contains("208.51 CNY"), "{t}");
    assert_eq!(app.count("recon_files").await, 1);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staff_audit WHERE action = 'file-upload' AND subject_kind = 'file' AND actor = 'olga'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // A bad date is named; a viewer cannot import.
    let r = olga.get("/console/files?date=29.11.2026").await.unwrap();
    assert_eq!(r.status, 400);
    let (mut vera, _) = app.console_as("vera", StaffRole::Viewer).await;
    let page = vera.get("/console/files").await.unwrap();
    assert!(!page.text().contains("id=\"import-form\""));
    let csrf = csrf_of(&page.text()).unwrap();
    let r = vera
        .post_multipart(
            "/console/files",
            &[("csrf", &csrf), ("source", "sh-water")],
            (
                "file",
                "w2.csv",
                water.replace("pay-0001", "pay-0009").as_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(app.count("recon_files").await, 1);
    app.finish().await;
}
