//! `billclear bench recon` on a small day: the generated outcomes are
//! found exactly (the bench fails otherwise), the ledger it seeds is
//! valid and the automatic decisions leave it balanced; the import and the
//! run each ran in a billclear process of their own, whose peak memory is
//! reported.

mod common;

use billclear::bench::recon::{measure, render, Plan, ReconBenchArgs};
use billclear::config::Config;
use billclear::store::postgres::{self, PgStore};
use billclear::store::LedgerStore;

#[tokio::test]
async fn bench_recon_finds_every_generated_outcome() {
    let mut config = Config::default();
    config.database.url = common::server_url();
    // The smallest buffer the run allows: the sort spills.
    config.recon.sort_buffer_records = 1_000;
    let out = tempfile::tempdir().unwrap();
    let args = ReconBenchArgs {
        records: 2_000,
        out: Some(out.path().to_path_buf()),
        pandas: std::env::var_os("BILLCLEAR_TEST_PANDAS_PYTHON").map(Into::into),
        pandas_script: None,
        seed: 6,
        keep: true,
        // The timed steps run in this build's billclear, not in the test.
        exe: Some(env!("CARGO_BIN_EXE_billclear").into()),
    };
    let r = measure(&config, &args).await.expect("bench recon");

    let plan = Plan::new(2_000);
    assert_eq!(r.expected, plan.expected());
    assert_eq!(r.found, r.expected);
    let want = [
        ("matched", 1_993),
        ("auto_confirm", 2),
        ("auto_reject", 1),
        ("missing_at_biller", 1),
        ("missing_at_us", 1),
        ("duplicate_at_biller", 1),
        ("amount_mismatch", 1),
        ("reference_mismatch", 0),
        ("agreed_not_applied", 0),
        ("pending", 0),
    ];
    for (name, n) in want {
        assert_eq!(r.found[name], n, "{name}");
    }
    assert_eq!(r.summary.ours, 2_000);
    assert_eq!(r.summary.theirs, plan.credits());
    assert!(r.summary.spilled_runs >= 1, "{:?}", r.summary);
    assert_eq!(r.summary.recorded.opened, 4);
    if let Some(p) = &r.pandas {
        assert_eq!(p.counts, r.expected);
    }

    // The run's own peak memory, from its own process: positive, at least
    // what that process held when the run began, and printed.
    let peak = r.recon_peak_rss.expect("the run's peak memory");
    let before = r.recon_rss_before.expect("the run's process at its start");
    assert!(peak > 0 && before > 0, "{peak} {before}");
    assert!(
        peak >= before,
        "peak {peak} < resident at the start {before}"
    );
    assert!(r.import_peak_rss.is_some_and(|p| p > 0), "{r:?}");
    assert!(r.recon > std::time::Duration::ZERO && r.import > std::time::Duration::ZERO);
    let text = render(&r, 6);
    println!("{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("peak memory recon "))
        .unwrap_or_else(|| panic!("no peak memory line in:\n{text}"));
    let mib: f64 = line
        .trim_start()
        .strip_prefix("peak memory recon ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MiB figure in {line:?}"));
    assert!(mib > 0.0, "{line}");
    assert!(line.contains("MiB"), "{line}");
    assert!(text.contains("runs spilled"), "{text}");
    for f in ["payments.csv", "confirmation.csv"] {
        assert!(out.path().join(f).exists(), "{f}");
    }

    // The database it kept: decisions applied, the ledger balanced, one
    // pending transfer per payment.
    let url = postgres::with_database(&common::server_url(), &r.database);
    let store = PgStore::connect(&url, 2).await.unwrap();
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM payments GROUP BY status ORDER BY status")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        statuses,
        vec![
            ("CONFIRMED".to_string(), 1_998),
            ("REJECTED".to_string(), 2)
        ]
    );
    let audit = store.audit().await.unwrap();
    assert!(audit.balanced(), "{audit:?}");
    assert!(audit.payments_exactly_once(), "{audit:?}");
    assert_eq!(audit.payments, 2_000);
    store.pool().close().await;
    postgres::drop_database(&common::server_url(), &r.database)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&r.work_dir);
}
