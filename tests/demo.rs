//! The demo (README's main job) runs end to end and reports a clean day.

mod common;

use billclear::config::Config;
use billclear::demo::{run_report, DemoArgs};

#[tokio::test]
async fn the_demo_ends_with_every_payment_final_and_the_books_agreeing() {
    let config = demo_config();
    let args = DemoArgs {
        json: true,
        payments: 40,
        fault_burst: 6,
        outage_payments: 10,
        keep_db: false,
        wait_s: 60,
        serve: false,
        instances: 1,
    };
    let r = run_report(&config, &args).await.expect("demo runs");
    assert!(r.all_good(), "{r:#?}");
    // The console's page of the day and a one-time sign-in were printed.
    assert!(
        r.console_url
            .ends_with(&format!("/console/days/{}", r.recon.business_date)),
        "{}",
        r.console_url
    );
    assert!(r.console_sign_in.contains("/console/sign-in/link?code="));
    assert_eq!(r.payments_submitted, 56);
    assert_eq!(
        r.payments_confirmed + r.payments_rejected + r.payments_unknown,
        56
    );
    assert!(
        r.payments_rejected >= 1,
        "a closed account is paid at least once: {r:#?}"
    );
    assert_eq!(r.answers_dropped_by_biller, 6);
    assert!(r.resolved_by_inquiry >= 6);
    // Payments the hub swallowed while down are asked about there, never
    // sent again; those the hub refused as not applied may be re-sent.
    assert!(r.pay_requests_at_biller >= 56, "{r:#?}");
    assert_eq!(r.hub_outage_payments, 10);
    assert_eq!(
        r.hub_outage_sent_direct, 10,
        "the hub's circuit was open: {r:#?}"
    );
    assert!(r.by_route.get("hub").copied().unwrap_or(0) >= 46, "{r:#?}");
    // Every route over TLS; the water company's with our client
    // certificate, signing with SM2/SM3; the electricity company's with
    // RSA-SHA256. The outage sent payments through them.
    assert_eq!(
        r.tls_routes,
        ["gas-direct", "hub", "power-direct", "water-direct"],
        "{r:#?}"
    );
    assert_eq!(r.mutual_tls_routes, ["water-direct"]);
    assert_eq!(r.signature_schemes["water-direct"], "sm2-sm3");
    assert_eq!(r.signature_schemes["power-direct"], "rsa-sha256");
    assert_eq!(r.signature_schemes["hub"], "hmac-sha256");
    let direct = |id: &str| r.by_route.get(id).copied().unwrap_or(0);
    assert!(
        direct("water-direct") + direct("power-direct") + direct("gas-direct") >= 10,
        "{r:#?}"
    );
    assert_eq!(
        r.by_biller
            .values()
            .map(|m| m.values().sum::<u64>())
            .sum::<u64>(),
        56
    );
    assert_eq!(r.invalid_requests_refused, 9);
    assert_eq!(r.replays_answered, 4);
    assert_eq!(r.callbacks_acknowledged, 56);
    // The storm of bill inquiries: the budget used, never exceeded.
    assert_eq!(r.instances, 1);
    assert!(r.inquiries_refused_over_budget > 0, "{r:#?}");
    assert!(r.max_inquiries_per_s_seen_by_biller <= u64::from(r.budget_per_s));
    assert_eq!(
        r.callback_deliveries, 112,
        "each first delivery failed, each retried once"
    );
    assert_eq!(r.books.matched, r.payments_confirmed);
    // Complaints: one of each type (not_credited on a credited and on a
    // rejected payment) and a paid-twice pair raised at once;
    // the bill paid twice refunded once (by rule), one more refunded by
    // staff (maker and checker); every one answered within its time.
    assert_eq!(r.complaints_raised, 7, "{:#?}", r.complaints);
    assert_eq!(r.refunds, 2, "{:#?}", r.complaints);
    assert!(
        r.complaints_resolved_automatically >= 4,
        "{:#?}",
        r.complaints
    );
    assert_eq!(r.complaints_within_time, r.complaints_raised);
    assert!(r.ledger_balanced && r.every_payment_one_transfer);
    // The day closed: every confirmed payment settled in one of the
    // billers' batches, whose files match their totals and journals.
    assert!(r.settlement_totals_match, "{r:#?}");
    let settled: u64 = r.settlement.iter().map(|b| b.payments).sum();
    assert_eq!(settled, r.payments_confirmed, "{r:#?}");
    for b in r.settlement.iter().filter(|b| b.payments > 0) {
        assert_eq!(
            b.files.len(),
            3,
            "settlement file, pain.001, manifest: {b:?}"
        );
        for f in &b.files {
            assert!(std::path::Path::new(f).is_file(), "{f}");
        }
    }
    assert!(!r.statements.is_empty());
    // The day reconciled: every counterpart's file imported, one run per
    // biller, every payment matched, nothing left to explain.
    // Six counterpart files, and the bank's statement twice (re-sent).
    assert_eq!(r.recon.files.len(), 8, "{:#?}", r.recon);
    // The bank's statement: every entry booked once, the re-sent copy
    // booking nothing, balances proven, the bank's balance our ledger's.
    assert!(r.bank_entries_booked > 0, "{:#?}", r.recon);
    assert_eq!(r.bank_entries_already_known, r.bank_entries_booked);
    assert_eq!(r.recon.bank_entries_booked_again, 0);
    assert!(r.bank_statement_balances_proven);
    assert!(r.bank_balance_matches_ledger, "{:#?}", r.recon.bank);
    let bank = r.recon.bank.as_ref().expect("the bank reconciled");
    let p = &bank.balances[0];
    assert_eq!(
        p.bank_minor(),
        p.ledger_minor,
        "an account opened with 0.00: equal"
    );
    assert_eq!(bank.fundings_booked, bank.fundings_matched["CNY"].count);
    assert!(bank.breaks.is_empty(), "{:?}", bank.breaks);
    let billers = billclear::config::billers_file::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml"),
    )
    .unwrap();
    assert_eq!(r.recon.runs.len(), billers.len(), "{:#?}", r.recon);
    let mut run_ids: Vec<i64> = r.recon.runs.iter().map(|s| s.run_id).collect();
    run_ids.dedup();
    assert!(run_ids.iter().all(|id| *id > 0));
    assert_eq!(run_ids.len(), billers.len(), "a recon run per biller");
    let total = |f: fn(&billclear::reconcile::run::RunSummary) -> u64| -> u64 {
        r.recon.runs.iter().map(f).sum()
    };
    assert_eq!(total(|s| s.ours), 56, "{:#?}", r.recon);
    assert_eq!(total(|s| s.matched.count), r.payments_confirmed);
    assert_eq!(total(|s| s.break_count()), 0, "{:#?}", r.recon);
    assert_eq!(total(|s| s.pending.values().map(|t| t.count).sum()), 0);
    assert!(r.recon.open_breaks.is_empty(), "{:#?}", r.recon.open_breaks);
    assert!(
        r.recon.files.iter().any(|f| f.contains("hub-statement")),
        "{:#?}",
        r.recon.files
    );
    remove_demo_files(&r);
}

#[tokio::test]
async fn the_demo_on_three_instances_keeps_the_billers_budget() {
    let config = demo_config();
    let args = DemoArgs {
        json: true,
        payments: 30,
        fault_burst: 3,
        outage_payments: 6,
        keep_db: false,
        wait_s: 90,
        serve: false,
        instances: 3,
    };
    let r = run_report(&config, &args).await.expect("demo runs");
    assert!(r.all_good(), "{r:#?}");
    assert_eq!(r.instances, 3);
    assert_eq!(r.payments_submitted, 39);
    assert_eq!(
        r.payments_confirmed + r.payments_rejected,
        39,
        "every payment final: {r:#?}"
    );
    assert!(r.every_payment_one_transfer && r.ledger_balanced);
    assert!(
        r.max_inquiries_per_s_seen_by_biller > 0
            && r.max_inquiries_per_s_seen_by_biller <= u64::from(r.budget_per_s),
        "the biller saw {} a second, budget {}",
        r.max_inquiries_per_s_seen_by_biller,
        r.budget_per_s
    );
    assert!(r.inquiries_refused_over_budget > 0, "{r:#?}");
    remove_demo_files(&r);
}

/// The demo makes its own database on the test server.
fn demo_config() -> Config {
    let mut config = Config::default();
    config.database.url = billclear::store::postgres::with_database(
        &common::server_url(),
        "billclear_test_demo_unused",
    );
    config
}

/// The demo's files live under .billclear/demo/<its database>/.
fn remove_demo_files(r: &billclear::demo::DemoReport) {
    let first = r
        .settlement
        .iter()
        .flat_map(|b| b.files.iter())
        .next()
        .unwrap();
    let run_dir = std::path::Path::new(first)
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("billclear_demo_"))
        })
        .unwrap()
        .to_path_buf();
    std::fs::remove_dir_all(run_dir).unwrap();
}
