//! `billclear bench intake`: signed HTTP payment intake under load, with
//! most payments going to one hot biller; then an audit of the ledger.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{offer, Answer};
use crate::client::SignedClient;
use crate::config::Config;
use crate::domain::biller::{Biller, BillerStatus};
use crate::domain::channel::{Channel, ChannelStatus};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::money::Money;
use crate::store::postgres::{self, PgStore};
use crate::store::{BillerStore, LedgerStore, Store};
use anyhow::{bail, Context};
use clap::Args;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

#[derive(Args, Debug, Clone)]
pub struct IntakeBenchArgs {
    /// Payments to submit.
    #[arg(long, default_value_t = 50_000)]
    pub payments: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Share of payments that go to the hot biller (0..=1).
    #[arg(long, default_value_t = 0.9)]
    pub hot_share: f64,
    /// Target a running service at this base URL instead of starting one
    /// (needs --key-id and --secret; the ledger audit then uses the
    /// configured database).
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, requires = "target")]
    pub key_id: Option<String>,
    #[arg(long, requires = "target")]
    pub secret: Option<String>,
    /// The hot biller (default: the first active biller of the registry).
    #[arg(long)]
    pub hot_biller: Option<String>,
    /// Keep the fresh benchmark database instead of dropping it.
    #[arg(long)]
    pub keep_db: bool,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const SEED_BILLERS: &str = include_str!("../../ops/billers.example.toml");

struct Setup {
    client: SignedClient,
    service: Option<crate::startup::Service>,
    billers: Vec<Biller>,
    store: Arc<PgStore>,
    fresh_db: Option<(String, String)>,
}

pub async fn run(config: Config, args: IntakeBenchArgs) -> anyhow::Result<()> {
    if args.payments == 0 || args.concurrency == 0 || !(0.0..=1.0).contains(&args.hot_share) {
        bail!("--payments and --concurrency must be positive and --hot-share within 0..=1");
    }
    let setup = match &args.target {
        None => self_contained(&config).await?,
        Some(url) => targeted(&config, url, &args).await?,
    };
    let result = load(&setup, &args).await;
    let verdict = match &result {
        Ok(run) => verify(&setup, run).await,
        Err(_) => Ok(()),
    };
    if let Some(service) = &setup.service {
        service.abort();
    }
    if let Some((server, name)) = &setup.fresh_db {
        setup.store.pool().close().await;
        if args.keep_db {
            println!("kept database {name}");
        } else if let Err(e) = postgres::drop_database(server, name).await {
            eprintln!("warning: could not drop benchmark database {name}: {e:#}");
        }
    }
    result?;
    verdict
}

async fn self_contained(config: &Config) -> anyhow::Result<Setup> {
    let (server, _) = crate::store::postgres::split_url(&config.database.url)?;
    let name = format!("billclear_bench_{}", uuid::Uuid::new_v4().simple());
    let url = postgres::create_database(&server, &name).await?;
    println!("setup: fresh database {name}");
    let store = PgStore::connect(&url, config.database.max_connections).await?;
    store.migrate().await?;
    let billers = crate::config::billers_file::parse(SEED_BILLERS)?;
    store.upsert_billers(&billers).await?;
    let key = crate::auth::secrets::MasterKey::from_base64(
        &crate::auth::secrets::MasterKey::generate_base64(),
    )?;
    let channel = Channel {
        id: ChannelId::parse("bench-app")?,
        name: "Bench payment app".into(),
        callback_url: "http://127.0.0.1:9/callbacks".into(),
        status: ChannelStatus::Active,
        rate_limit_rps: 10_000_000,
    };
    let (key_id, secret) =
        crate::auth::channel_keys::create_channel(&store, &key, &channel).await?;
    let store = Arc::new(store);
    let dyn_store: Arc<dyn Store> = store.clone();
    let mut cfg = config.clone();
    cfg.database.url = url;
    let service =
        crate::startup::Service::start(dyn_store, key, cfg, crate::startup::Parts::api_only())
            .await?;
    let base = service.spawn_api(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    println!(
        "setup: billclear API on {base}, {} billers, channel bench-app",
        billers.len()
    );
    Ok(Setup {
        service: Some(service),
        client: SignedClient::new(&base, &key_id, secret.expose_text()),
        billers,
        store,
        fresh_db: Some((server, name)),
    })
}

async fn targeted(config: &Config, url: &str, args: &IntakeBenchArgs) -> anyhow::Result<Setup> {
    let (Some(key_id), Some(secret)) = (&args.key_id, &args.secret) else {
        bail!("--target needs --key-id and --secret");
    };
    let store = Arc::new(
        PgStore::connect(&config.database.url, 4)
            .await
            .context("the audit needs the service's database (database.url)")?,
    );
    let billers = store.load_billers().await?;
    Ok(Setup {
        service: None,
        client: SignedClient::new(url, key_id, secret),
        billers,
        store,
        fresh_db: None,
    })
}

struct Run {
    accepted: Vec<(PaymentId, String, Money)>,
    hot: String,
    hot_account: String,
}

async fn load(setup: &Setup, args: &IntakeBenchArgs) -> anyhow::Result<Run> {
    let now = chrono::Utc::now();
    let mut active: Vec<&Biller> = setup
        .billers
        .iter()
        .filter(|b| {
            b.status == BillerStatus::Active
                && b.availability(now) == crate::domain::biller::Availability::Available
        })
        .filter(|b| b.account_rule.example.is_some())
        .collect();
    if active.is_empty() {
        bail!("no active biller with an example account number to pay");
    }
    if let Some(hot) = &args.hot_biller {
        let at = active
            .iter()
            .position(|b| b.id.as_str() == hot)
            .with_context(|| {
                format!("--hot-biller {hot}: no such active biller with an example account")
            })?;
        active.swap(0, at);
    }
    let hot = active[0].id.to_string();
    let hot_account =
        crate::domain::ledger::AccountSpec::biller_payable(&active[0].id, active[0].currency).code;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    // Pre-build every request so generation costs nothing during the run.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let bodies: Arc<Vec<(String, serde_json::Value, Money)>> = Arc::new(
        (0..args.payments)
            .map(|i| {
                let b = if active.len() == 1 || rng.gen_bool(args.hot_share) {
                    active[0]
                } else {
                    active[1 + rng.gen_range(0..active.len() - 1)]
                };
                let lo = b.amount_rule.min.minor_units() as i64;
                let hi = (b.amount_rule.max.minor_units() as i64).min(lo + 50_000);
                let minor = rng.gen_range(lo..=hi);
                let amount = Money::new(Decimal::new(minor, b.currency.scale()), b.currency)
                    .expect("in range");
                let reference = format!("bench-{run_id}-{i}");
                let body = super::load::payment_body(
                    b.id.as_str(),
                    b.account_rule.example.as_deref().unwrap_or_default(),
                    &amount,
                    &reference,
                );
                (reference, body, amount)
            })
            .collect(),
    );
    println!(
        "load: {} payments, concurrency {}, {:.0}% to {hot}",
        args.payments,
        args.concurrency,
        args.hot_share * 100.0
    );
    // Warm the connections up (not measured).
    let _ = setup.client.get("/healthz").await;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, bodies, next) = (setup.client.clone(), bodies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat_us = Vec::new();
            let mut ok = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() {
                    break;
                }
                let (key, body, amount) = &bodies[i];
                let t = Instant::now();
                let answer = offer(&client, key, body, Duration::from_secs(30)).await;
                lat_us.push(t.elapsed().as_micros() as u64);
                match answer {
                    Answer::Accepted(id) => ok.push((
                        id,
                        body["biller_id"].as_str().unwrap_or_default().to_string(),
                        *amount,
                    )),
                    other => *errors.entry(other.label()).or_default() += 1,
                }
            }
            (lat_us, ok, errors)
        }));
    }
    let mut lat = Vec::with_capacity(args.payments);
    let mut accepted = Vec::with_capacity(args.payments);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for w in workers {
        let (l, ok, e) = w.await?;
        lat.extend(l);
        accepted.extend(ok);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    lat.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!();
    println!(
        "accepted      {} of {} in {:.2} s",
        accepted.len(),
        args.payments,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput    {:.0} accepted payments/s",
        accepted.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency ms    p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        ms(super::percentile(&lat, 50.0)),
        ms(super::percentile(&lat, 95.0)),
        ms(super::percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or(0))
    );
    for (k, v) in &errors {
        println!("error         {v} x {k}");
    }
    Ok(Run {
        accepted,
        hot,
        hot_account,
    })
}

async fn verify(setup: &Setup, run: &Run) -> anyhow::Result<()> {
    let started = Instant::now();
    let audit = setup.store.audit().await?;
    let ids: Vec<uuid::Uuid> = run.accepted.iter().map(|(id, _, _)| id.0).collect();
    let found: i64 = sqlx::query_scalar(
        "WITH accepted AS (SELECT DISTINCT unnest($1::uuid[]) AS id),
              pending AS (SELECT payment_id, count(*) AS n FROM ledger_journals
                          WHERE kind = 'pending' AND payment_id IS NOT NULL GROUP BY payment_id)
         SELECT count(*) FROM accepted a
           JOIN payments p ON p.id = a.id
           JOIN pending j ON j.payment_id = p.id AND j.n = 1",
    )
    .bind(&ids)
    .fetch_one(setup.store.pool())
    .await?;
    let hot_sum: Decimal = run
        .accepted
        .iter()
        .filter(|(_, b, _)| *b == run.hot)
        .map(|(_, _, m)| m.amount())
        .sum();
    let hot_code = &run.hot_account;
    let hot_balance = setup
        .store
        .balance(hot_code)
        .await?
        .context("hot biller account")?;
    println!();
    println!(
        "audit         {} journals, {} entries, debits {} = credits {}",
        audit.journals, audit.entries, audit.total_debits, audit.total_credits
    );
    let mut ok = true;
    let mut check = |name: &str, pass: bool, detail: String| {
        println!(
            "check         {:<4} {name}: {detail}",
            if pass { "OK" } else { "FAIL" }
        );
        ok &= pass;
    };
    check(
        "every accepted payment is in the ledger exactly once",
        found as usize == ids.len(),
        format!(
            "{found} of {} accepted payments have exactly one pending transfer",
            ids.len()
        ),
    );
    if setup.fresh_db.is_some() {
        check(
            "no payment beyond those accepted",
            audit.payments as usize == ids.len(),
            format!("{} payments stored", audit.payments),
        );
        check(
            "hot biller payable equals the accepted amounts",
            hot_balance.pending_credits == hot_sum && hot_balance.pending_debits.is_zero(),
            format!(
                "{hot_code} pending credits {} vs accepted {hot_sum}",
                hot_balance.pending_credits
            ),
        );
    }
    check(
        "every journal balances",
        audit.balanced(),
        format!(
            "{} unbalanced, {} with fewer than two entries",
            audit.unbalanced_journals, audit.short_journals
        ),
    );
    check(
        "every payment has exactly one matching pending transfer",
        audit.payments_exactly_once(),
        format!(
            "{} payments without",
            audit.payments_without_exactly_one_transfer
        ),
    );
    println!("audit took    {:.2} s", started.elapsed().as_secs_f64());
    if !ok {
        bail!("ledger verification FAILED");
    }
    Ok(())
}
