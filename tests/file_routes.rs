//! The co-op: no online interface; its payments go as a batch file and are
//! settled by its acknowledgement file.

mod common;

use billclear::dispatch::files::FileRouter;
use billclear::domain::payment::PaymentStatus::*;
use common::{Options, TestApp};

#[tokio::test]
async fn a_batch_file_and_its_acknowledgement_settle_the_coops_payments() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        coop: true,
        ..Options::default()
    })
    .await;
    let good = app.pay_to("chongming-coop", "CM-000123", "36.50").await;
    let closed = app.pay_to("chongming-coop", "CM-129897", "12.00").await;
    // Queued for the next batch file, nothing sent yet.
    for id in [good, closed] {
        assert_eq!(app.wait_for(id, &[Submitted], 10).await, Submitted);
    }
    assert_eq!(app.count("file_batch_lines").await, 2);
    assert_eq!(
        app.count("file_batches").await,
        0,
        "the co-op's cut-off has not come"
    );
    // An operator delivers before the cut-off.
    let router = FileRouter::new(&app.state.dispatch_deps());
    router.flush("coop-file", chrono::Utc::now()).await.unwrap();
    assert_eq!(app.count("file_batches").await, 1);
    assert_eq!(
        app.wait_for(good, &[Confirmed, Rejected], 15).await,
        Confirmed
    );
    assert_eq!(
        app.wait_for(closed, &[Confirmed, Rejected], 15).await,
        Rejected
    );
    let coop = app.coop.as_ref().unwrap();
    assert_eq!(coop.credits().len(), 1);
    // Flushing again delivers nothing new; the file is not written twice.
    router.flush("coop-file", chrono::Utc::now()).await.unwrap();
    assert_eq!(app.count("file_batches").await, 1);
    app.wait_callbacks(2, 10).await;
    app.finish().await;
}

#[test]
fn the_last_cutoff_closes_the_business_date_in_the_billers_zone() {
    use billclear::domain::biller::Cutoff;
    use chrono::TimeZone;
    let cutoff = Cutoff {
        time: chrono::NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        zone: chrono_tz::Asia::Shanghai,
    };
    // 2026-11-29 08:59:59 UTC is 16:59:59 in Shanghai: yesterday's cut-off.
    let before = chrono::Utc
        .with_ymd_and_hms(2026, 11, 29, 8, 59, 59)
        .unwrap();
    let (at, date) = cutoff.last_closed(before);
    assert_eq!(date, chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    assert_eq!(
        at,
        chrono::Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
    );
    let on = chrono::Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap();
    assert_eq!(
        cutoff.last_closed(on).1,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    );
}
