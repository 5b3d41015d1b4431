//! `billclear demo`: the main job end to end, on this machine, in one
//! command. It creates a fresh database, applies the migrations, imports the
//! example billers, starts the water company simulator, a callback receiver
//! for two payment apps, the API and the dispatch workers (all on real
//! sockets, in this process), then plays a realistic day in miniature:
//! payments from both apps, idempotent replays, invalid requests, refusals
//! by the biller and a burst of "applied, but the answer was lost" faults.
//! It waits until every payment is final and prints what happened, with the
//! ledger audit and our books compared with the biller's.

pub mod bank;
pub mod books;
mod complaints;
mod security;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use biller_sim::{
    book_for, Account, CreditRecord, Faults, GasSim, GasSimConfig, HubSim, HubSimConfig, PowerSim,
    PowerSimConfig, WaterSim, WaterSimConfig,
};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use serde_json::json;

use crate::auth::secrets::{MasterKey, Secret};
use crate::client::SignedClient;
use crate::config::{Config, ConnectorSettings};
use crate::domain::channel::{Channel, ChannelStatus};
use crate::domain::ids::ChannelId;
use crate::receiver::CallbackReceiver;
use crate::startup::{Parts, Service};
use crate::store::postgres::{self, PgStore};
use crate::store::{BillerStore, LedgerStore, Store};
use biller_connectors::ConnectorKind;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Print one JSON object at the end instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Payments in the main batch (replays, invalid requests and the fault
    /// burst come on top).
    #[arg(long, default_value_t = 200)]
    pub payments: usize,
    /// Payments sent while the hub applies them but drops its answer.
    #[arg(long, default_value_t = 20)]
    pub fault_burst: usize,
    /// Payments sent while the hub is down (they go to the billers direct).
    #[arg(long, default_value_t = 40)]
    pub outage_payments: usize,
    /// Keep the demo database afterwards (its URL is printed).
    #[arg(long)]
    pub keep_db: bool,
    /// Stop waiting for final states after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub wait_s: u64,
    /// Keep the demo running at the end (until Ctrl-C) so that a person can
    /// look at its day in the finance console (the URL and a one-time
    /// sign-in link are printed).
    #[arg(long)]
    pub serve: bool,
    /// billclear processes on the demo's database (each with its API and
    /// workers); the apps' requests are spread over them, and the fleet
    /// shares every biller's inquiry budget.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub instances: u16,
}

/// What the demo prints with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub requests_sent: u64,
    /// Distinct payments accepted (201, not replays).
    pub payments_submitted: u64,
    pub payments_confirmed: u64,
    pub payments_rejected: u64,
    pub payments_unknown: u64,
    /// Not final when the demo stopped waiting (0 on a good run).
    pub payments_in_flight: u64,
    pub replays_answered: u64,
    pub invalid_requests_refused: u64,
    /// Payments whose answer the biller dropped after applying them.
    pub answers_dropped_by_biller: u32,
    /// Payments that went through UNKNOWN (resolved by status inquiry).
    pub resolved_by_inquiry: u64,
    pub pay_requests_at_biller: u64,
    pub ledger_balanced: bool,
    pub every_payment_one_transfer: bool,
    pub books_agree_with_biller: bool,
    pub books: books::BookComparison,
    /// The day's payments' callbacks (before the complaints scene).
    pub callbacks_acknowledged: u64,
    pub callback_deliveries: u64,
    /// Every callback, the complaints' too, signed and verified.
    pub callbacks_all_verified: bool,
    pub posted_to_billers: BTreeMap<String, String>,
    /// Final states per biller: {"CONFIRMED": n, "REJECTED": n, ...}.
    pub by_biller: BTreeMap<String, BTreeMap<String, u64>>,
    /// Payments per route they were (last) sent through.
    pub by_route: BTreeMap<String, u64>,
    /// Payments accepted while the hub was down, and how many of them went
    /// direct.
    pub hub_outage_payments: u64,
    pub hub_outage_sent_direct: u64,
    /// The business date closed for each biller: its batch and files.
    pub settlement: Vec<SettledBiller>,
    /// The payment apps' statements written.
    pub statements: Vec<String>,
    /// Every file's control total equals its batch, and every batch its
    /// ledger journal.
    pub settlement_totals_match: bool,
    /// The day's bank statement: entries booked by its import, entries the
    /// same statement re-sent with a new message id brought again (all of
    /// them known, none booked twice), every statement's balances proven,
    /// and the bank's balance equal to our ledger's once explained.
    pub bank_entries_booked: u64,
    pub bank_entries_already_known: u64,
    pub bank_statement_balances_proven: bool,
    pub bank_balance_matches_ledger: bool,
    /// The day reconciled against the counterparts' files.
    pub recon: DemoRecon,
    /// The routes that reach their counterpart over TLS (the water
    /// company's with mutual TLS).
    pub tls_routes: Vec<String>,
    /// The TLS routes that present billclear's client certificate.
    pub mutual_tls_routes: Vec<String>,
    /// How each route signs: hmac-sha256, rsa-sha256 or sm2-sm3.
    pub signature_schemes: BTreeMap<String, String>,
    /// The finance console's page of the demo's business date, and a
    /// one-time sign-in link for the demo approver (`demo.approver`): they
    /// work while the demo runs (`--serve` keeps it running).
    pub console_url: String,
    pub console_sign_in: String,
    /// billclear processes the demo ran on one database.
    pub instances: u16,
    /// A storm of bill inquiries for sh-water spread over every process:
    /// the most the biller (the hub and the water company together) saw
    /// in one second of the wall clock, the fleet's budget, and how the
    /// storm was answered.
    pub max_inquiries_per_s_seen_by_biller: u64,
    pub budget_per_s: u32,
    pub inquiries_sent: u64,
    pub inquiries_refused_over_budget: u64,
    /// Complaints the apps raised (one of each type, a paid-twice pair
    /// raised at once), those the investigator answered alone, those
    /// answered before they were due, and refunds made.
    pub complaints_raised: u64,
    pub complaints_resolved_automatically: u64,
    pub complaints_within_time: u64,
    pub refunds: u64,
    pub complaints: complaints::DemoComplaints,
    pub elapsed_s: f64,
    pub database: Option<String>,
}

/// A progress line: on stdout, or on stderr when stdout carries JSON.
pub(crate) fn say(json: bool, line: impl AsRef<str>) {
    if json {
        eprintln!("{}", line.as_ref());
    } else {
        println!("{}", line.as_ref());
    }
}

/// A whole stack on this machine, in this process (see [`start`]).
pub(crate) struct Stack {
    pub store: Arc<PgStore>,
    pub sim: WaterSim,
    pub hub: HubSim,
    pub power: PowerSim,
    pub gas: GasSim,
    pub service: Service,
    /// The other processes of a stack of several instances.
    pub others: Vec<Service>,
    pub receiver: CallbackReceiver,
    /// The payment apps ("alipay", "wechatpay") and their signed clients.
    pub clients: Vec<(String, SignedClient)>,
    pub connectors: BTreeMap<String, ConnectorSettings>,
    /// The API's (and the console's) base URL.
    pub base: String,
    pub server_url: String,
    pub db_name: String,
    /// The stack's files: keys, settlement and reconciliation files.
    pub dir: std::path::PathBuf,
}

impl Stack {
    /// Keeps the stack's database (and says where it is: the URL of
    /// `config`'s server with the stack's database) or drops it.
    pub async fn keep_or_drop(
        &self,
        config: &Config,
        keep: bool,
    ) -> anyhow::Result<Option<String>> {
        if keep {
            Ok(Some(postgres::with_database(
                &config.database.url,
                &self.db_name,
            )))
        } else {
            postgres::drop_database(&self.server_url, &self.db_name).await?;
            Ok(None)
        }
    }

    /// Every simulator's credits: the hub's and each biller's direct ones.
    pub fn credits(&self) -> Vec<CreditRecord> {
        [
            self.sim.credits(),
            self.power.credits(),
            self.gas.credits(),
            self.hub.credits(),
        ]
        .concat()
    }

    /// Stops the service, the simulators and the receiver, and closes the
    /// pool (the database stays).
    pub async fn stop(&self) {
        self.service.abort();
        self.others.iter().for_each(|o| o.abort());
        self.sim.shutdown();
        self.hub.shutdown();
        self.power.shutdown();
        self.gas.shutdown();
        self.receiver.stop();
        self.store.pool().close().await;
    }
}

/// How [`start`] sets a stack up: the demo's day in miniature, or a
/// benchmark's load on the configuration as given.
pub(crate) struct StackOptions {
    /// The fresh database is `<db_prefix>_<date>_<time>_<6 hex>`.
    pub db_prefix: &'static str,
    /// The stack's files go to `<files_root>/<database name>/`.
    pub files_root: std::path::PathBuf,
    /// Connections of the service's pool.
    pub pool: u32,
    /// The apps' endpoint fails this many deliveries of every event first.
    pub fail_first_callbacks: u32,
    /// The receiver keeps brief arrivals only (hundreds of thousands),
    /// and runs on a thread of its own (answering however busy the
    /// service's runtime is).
    pub callback_receiver_for_load: bool,
    /// Every simulator (the hub and each biller direct) answers after this
    /// many milliseconds.
    pub biller_latency_ms: u64,
    /// Requests per second each payment app may send.
    pub channel_rate_limit_rps: u32,
    /// Retries, leases, heartbeats and breakers in fractions of a second
    /// (the demo's day in miniature); otherwise the configuration's own.
    pub miniature: bool,
    /// Setup lines to stderr (the summary is JSON on stdout).
    pub json: bool,
    /// Processes of billclear on the stack's database (each with its API
    /// and workers); the apps' clients are spread over them.
    pub instances: usize,
    /// Every route's `max_in_flight`, for the whole fleet (0: the
    /// connectors' default).
    pub route_max_in_flight: u32,
}

impl StackOptions {
    /// The demo's stack.
    pub fn demo(json: bool) -> StackOptions {
        StackOptions {
            db_prefix: "billclear_demo",
            files_root: std::path::PathBuf::from(".billclear/demo"),
            pool: 12,
            fail_first_callbacks: 1,
            callback_receiver_for_load: false,
            biller_latency_ms: 0,
            channel_rate_limit_rps: 10_000,
            miniature: true,
            json,
            instances: 1,
            route_max_in_flight: 0,
        }
    }
}

/// Brings a stack up: a fresh database (migrated, the example billers),
/// the four simulators (water, electricity, gas, the hub) over TLS with
/// their own keys, a callback receiver for two payment apps, the API and
/// the dispatch and callback workers, all in this process on real sockets.
pub(crate) async fn start(config: &Config, opts: &StackOptions) -> anyhow::Result<Stack> {
    let json = opts.json;
    let (server_url, _) = crate::store::postgres::split_url(&config.database.url)?;
    let db_name = format!(
        "{}_{}_{}",
        opts.db_prefix,
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let url = postgres::create_database(&server_url, &db_name)
        .await
        .with_context(|| {
            format!(
                "creating the demo database on {}",
                crate::config::redact_url(&server_url)
            )
        })?;
    say(
        json,
        format!("• database     {db_name} (fresh), migrations applied"),
    );
    let store = Arc::new(PgStore::connect(&url, opts.pool).await?);
    store.migrate().await?;
    let billers =
        crate::config::billers_file::parse(include_str!("../../ops/billers.example.toml"))?;
    store.upsert_billers(&billers).await?;
    say(
        json,
        format!(
            "• billers      {} imported from ops/billers.example.toml",
            billers.len()
        ),
    );

    // Every counterpart with its own shared secret and its own book; the
    // hub knows the same customers as the billers behind it.
    let today = chrono::Utc::now().date_naive();
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let secrets: Vec<Secret> = (0..4).map(|_| Secret::generate()).collect();
    let master_key = MasterKey::from_base64(&MasterKey::generate_base64())?;
    let demo_dir = opts.files_root.join(&db_name);
    let secured = security::secure(&demo_dir.join("keys"), &master_key).await?;
    let mut water_cfg = WaterSimConfig::new("billclear", secrets[0].expose_text());
    water_cfg.book = book_for(&["sh-water", "pudong-water"], today);
    water_cfg.security = secured.water.sim.clone();
    let sim = WaterSim::start(bind().await?, water_cfg).await?;
    let mut power_cfg = PowerSimConfig::new("billclear", secrets[1].expose_text());
    power_cfg.book = book_for(&["sh-power"], today);
    power_cfg.security = secured.power.sim.clone();
    let power = PowerSim::start(bind().await?, power_cfg).await?;
    let mut gas_cfg = GasSimConfig::new("billclear", secrets[2].expose_text());
    gas_cfg.book = book_for(&["sh-gas", "minhang-gas"], today);
    gas_cfg.tls = secured.gas.sim.tls.clone();
    let gas = GasSim::start(bind().await?, bind().await?, gas_cfg).await?;
    let mut hub_cfg = HubSimConfig::new("billclear", secrets[3].expose_text());
    hub_cfg.book = biller_sim::hub::default_hub_book(today);
    hub_cfg.security = secured.hub.sim.clone();
    let hub = HubSim::start(bind().await?, hub_cfg).await?;
    if opts.biller_latency_ms > 0 {
        let slow = Faults {
            latency_ms: opts.biller_latency_ms,
            ..Faults::default()
        };
        sim.set_faults(slow.clone());
        power.set_faults(slow.clone());
        gas.set_faults(slow.clone());
        hub.set_faults(slow);
    }
    say(
        json,
        format!(
            "• simulators   water company (JSON, mutual TLS, SM2/SM3) {}, electricity (XML, TLS, RSA-SHA256) {}, gas (fixed-length over TLS, HMAC) {}, hub (JSON, TLS with a pinned key, HMAC) {}",
            sim.base_url(),
            power.base_url(),
            gas.address(),
            hub.base_url()
        ),
    );
    say(
        json,
        format!(
            "• keys         a CA of the demo's own; billclear's private keys sealed with the master key in {}",
            demo_dir.join("keys").display()
        ),
    );

    let receiver = if opts.callback_receiver_for_load {
        CallbackReceiver::start_on_own_thread().await?
    } else {
        CallbackReceiver::start().await?
    };
    // The demo's apps' endpoints fail the first delivery of every event:
    // callbacks are retried until acknowledged.
    receiver.fail_first_deliveries(opts.fail_first_callbacks);
    if opts.callback_receiver_for_load {
        receiver.summaries_only();
    }
    let mut clients = Vec::new();
    for (id, name) in [("alipay", "Alipay"), ("wechatpay", "WeChat Pay")] {
        let channel = Channel {
            id: ChannelId::parse(id)?,
            name: name.into(),
            callback_url: receiver.url(id),
            status: ChannelStatus::Active,
            rate_limit_rps: opts.channel_rate_limit_rps,
        };
        let (key_id, secret) =
            crate::auth::channel_keys::create_channel(&*store, &master_key, &channel).await?;
        receiver.add_key(&key_id, secret.expose_text());
        clients.push((id.to_string(), key_id, secret.expose_text().to_string()));
    }

    let mut cfg = config.clone();
    cfg.database.url = url;
    // Settlement files under .billclear/demo/<database>/, through a
    // RabbitMQ topology of the demo's own.
    cfg.settlement.outbox_dir = demo_dir.join("settlement");
    cfg.settlement.schedule = false;
    cfg.amqp = config.amqp.scoped(&db_name);
    // The day's reconciliation files and reports beside them.
    cfg.recon.dir = demo_dir.join("recon");
    // Every biller's first route is the hub, its second the biller direct.
    for (i, (id, kind, base_url, side)) in [
        (
            "water-direct",
            ConnectorKind::WaterJson,
            sim.base_url(),
            &secured.water,
        ),
        (
            "power-direct",
            ConnectorKind::PowerXml,
            power.base_url(),
            &secured.power,
        ),
        (
            "gas-direct",
            ConnectorKind::GasTcp,
            gas.address(),
            &secured.gas,
        ),
        ("hub", ConnectorKind::HubJson, hub.base_url(), &secured.hub),
    ]
    .into_iter()
    .enumerate()
    {
        let secret = match side.signature.scheme {
            biller_connectors::SignatureScheme::HmacSha256 => secrets[i].expose_text().to_string(),
            _ => String::new(),
        };
        cfg.connectors.insert(
            id.into(),
            ConnectorSettings {
                kind,
                base_url,
                key_id: "billclear".into(),
                secret,
                timeout_ms: 1_000,
                allow_plaintext: false,
                tls: side.tls.clone(),
                signature: side.signature.clone(),
                max_in_flight: opts.route_max_in_flight,
                ..Default::default()
            },
        );
    }
    if opts.miniature {
        // A day in miniature: retries in fractions of a second, not minutes.
        cfg.dispatch.poll_ms = 50;
        cfg.dispatch.lease_ms = 5_000;
        cfg.dispatch.send_retry.base_ms = 200;
        cfg.dispatch.send_retry.max_ms = 2_000;
        cfg.dispatch.inquiry_retry.base_ms = 300;
        cfg.dispatch.inquiry_retry.max_ms = 3_000;
        cfg.dispatch.inquiry_retry.max_attempts = 20;
        cfg.dispatch.not_found_grace_ms = 5_000;
        cfg.routing.failures_to_open = 3;
        cfg.routing.open_ms = 2_000;
        cfg.routing.heartbeat_ms = 300;
        cfg.callbacks.retry.base_ms = 200;
        cfg.callbacks.retry.max_ms = 2_000;
    }
    cfg.check()?;
    let connectors = cfg.connectors.clone();
    let dyn_store: Arc<dyn Store> = store.clone();
    let parts = Parts {
        dispatch: true,
        ..Parts::api_only()
    };
    let mut others = Vec::new();
    let mut bases = Vec::new();
    for k in 2..=opts.instances.max(1) {
        let store_k: Arc<dyn Store> =
            Arc::new(PgStore::connect(&cfg.database.url, opts.pool).await?);
        let parts_k = Parts {
            worker: format!("instance-{k}"),
            dispatch: true,
            ..Parts::api_only()
        };
        let other = Service::start(store_k, master_key.clone(), cfg.clone(), parts_k).await?;
        bases.push(other.spawn_api(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?);
        others.push(other);
    }
    let service = Service::start(dyn_store, master_key, cfg, parts).await?;
    let base = service.spawn_api(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    bases.insert(0, base.clone());
    if opts.instances > 1 {
        say(
            json,
            format!(
                "• fleet        {} billclear processes on one database: {}",
                opts.instances,
                bases.join(", ")
            ),
        );
    }
    say(
        json,
        format!("• billclear    API at {base}, dispatch and callback workers running"),
    );
    say(
        json,
        format!(
            "• channels     alipay, wechatpay; their callback endpoint ({}) verifies signatures{}",
            receiver.url("…"),
            match opts.fail_first_callbacks {
                0 => " and acknowledges".to_string(),
                1 => " and fails each event's first delivery".to_string(),
                n => format!(" and fails each event's first {n} deliveries"),
            }
        ),
    );
    if opts.biller_latency_ms > 0 {
        say(
            json,
            format!(
                "• latency      every simulator answers after {} ms",
                opts.biller_latency_ms
            ),
        );
    }
    Ok(Stack {
        store,
        sim,
        hub,
        power,
        gas,
        service,
        receiver,
        // Each app's client of each process (one process: one client each).
        clients: clients
            .into_iter()
            .flat_map(|(id, k, s)| {
                bases
                    .iter()
                    .map(|b| (id.clone(), SignedClient::new(b, &k, &s)))
                    .collect::<Vec<_>>()
            })
            .collect(),
        others,
        connectors,
        base,
        server_url,
        db_name,
        dir: demo_dir,
    })
}

/// One payment request body for a random open account.
fn random_payment(accounts: &[(String, Account)], rng: &mut impl Rng) -> serde_json::Value {
    let reference = format!("ref-{}", uuid::Uuid::new_v4().simple());
    random_payment_as(accounts, rng, &reference)
}

/// One payment request body for a random account of `accounts`, with
/// channel reference `reference`: 10.00 to 500.00 CNY.
pub(crate) fn random_payment_as(
    accounts: &[(String, Account)],
    rng: &mut impl Rng,
    reference: &str,
) -> serde_json::Value {
    let (biller, account) = accounts.choose(rng).expect("accounts");
    let cents: i64 = rng.gen_range(1_000..=50_000);
    let amount = crate::domain::money::Money::new(
        rust_decimal::Decimal::new(cents, 2),
        crate::domain::money::Currency::from_code("CNY").expect("CNY"),
    )
    .expect("10.00 to 500.00 CNY");
    crate::bench::load::payment_body(biller, &account.account_number, &amount, reference)
}

#[derive(Default)]
struct Tally {
    requests: u64,
    accepted: u64,
    replays: u64,
    refused: u64,
    unexpected: Vec<String>,
}

/// Sends `bodies` from random channels, 16 at a time; returns the accepted
/// (channel index, idempotency key, body) for replays.
async fn submit(
    stack: &Stack,
    bodies: Vec<serde_json::Value>,
    tally: &mut Tally,
) -> Vec<(usize, serde_json::Value)> {
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    for (i, body) in bodies.into_iter().enumerate() {
        let c = i % stack.clients.len();
        let client = stack.clients[c].1.clone();
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        set.spawn(async move {
            let key = body["channel_reference"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let r = client.post_payment(&key, &body).await;
            drop(permit);
            (c, body, r)
        });
    }
    let mut accepted = Vec::new();
    while let Some(done) = set.join_next().await {
        let Ok((c, body, r)) = done else { continue };
        tally.requests += 1;
        match r {
            Ok(r) if r.status == 201 => {
                tally.accepted += 1;
                accepted.push((c, body));
            }
            Ok(r) => tally
                .unexpected
                .push(format!("HTTP {} {}", r.status, r.code())),
            Err(e) => tally.unexpected.push(e.to_string()),
        }
    }
    accepted
}

fn invalid_requests() -> Vec<(&'static str, serde_json::Value)> {
    let base = |biller: &str, account: &str, amount: &str, currency: &str| {
        json!({
            "biller_id": biller, "account_number": account, "amount": amount,
            "currency": currency,
            "channel_reference": format!("bad-{}", uuid::Uuid::new_v4().simple()),
        })
    };
    vec![
        (
            "check digit wrong",
            base("sh-water", "3100000012", "50.00", "CNY"),
        ),
        (
            "unknown biller",
            base("nowhere-water", "3100000011", "50.00", "CNY"),
        ),
        (
            "three decimals",
            base("sh-water", "3100000011", "12.345", "CNY"),
        ),
        (
            "negative amount",
            base("sh-water", "3100000011", "-5.00", "CNY"),
        ),
        (
            "amount as a number",
            json!({"biller_id": "sh-water", "account_number": "3100000011", "amount": 50, "currency": "CNY", "channel_reference": "bad-number"}),
        ),
        (
            "wrong currency",
            base("sh-water", "3100000011", "50.00", "USD"),
        ),
        (
            "suspended biller",
            base("jiading-power", "0306406159", "50.00", "CNY"),
        ),
        (
            "above the maximum",
            base("pudong-water", "PD20261129", "30000.01", "CNY"),
        ),
        (
            "missing account",
            json!({"biller_id": "sh-water", "amount": "5.00", "currency": "CNY", "channel_reference": "bad-missing"}),
        ),
    ]
}

/// The billers the demo pays (all reachable through the hub and direct).
pub(crate) const BILLERS: [&str; 5] = [
    "sh-water",
    "pudong-water",
    "sh-power",
    "sh-gas",
    "minhang-gas",
];

async fn by_biller(store: &PgStore) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT biller_id, status, count(*) FROM payment_states GROUP BY biller_id, status ORDER BY 1, 2",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (biller, status, n) in rows {
        out.entry(biller).or_default().insert(status, n as u64);
    }
    Ok(out)
}

async fn by_route(store: &PgStore) -> anyhow::Result<BTreeMap<String, u64>> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT connector_id, count(*) FROM payments GROUP BY 1 ORDER BY 1")
            .fetch_all(store.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(r, n)| (r.unwrap_or_else(|| "not sent".into()), n as u64))
        .collect())
}

async fn status_counts(store: &PgStore) -> anyhow::Result<BTreeMap<String, u64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM payment_states GROUP BY status")
            .fetch_all(store.pool())
            .await?;
    Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
}

async fn pending_callbacks(store: &PgStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE topic = 'callback' AND done_at IS NULL",
    )
    .fetch_one(store.pool())
    .await?)
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let report = run_report(&config, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report);
    }
    anyhow::ensure!(
        report.all_good(),
        "the demo found a problem (see the summary above)"
    );
    Ok(())
}

impl DemoReport {
    /// Every payment final, ledger balanced, books equal to the biller's,
    /// every callback signed.
    pub fn all_good(&self) -> bool {
        self.payments_in_flight == 0
            && self.settlement_totals_match
            && !self.settlement.is_empty()
            && self.ledger_balanced
            && self.every_payment_one_transfer
            && self.books_agree_with_biller
            && self.callbacks_all_verified
            && !self.recon.runs.is_empty()
            && self.recon.open_breaks.is_empty()
            && self.recon.bank_statement_balances_proven
            && self.recon.bank_balance_matches_ledger
            && self.recon.bank_entries_booked > 0
            && self.recon.bank_entries_booked_again == 0
            && self.recon.bank_entries_already_known == self.recon.bank_entries_booked
            && self.max_inquiries_per_s_seen_by_biller > 0
            && self.max_inquiries_per_s_seen_by_biller <= u64::from(self.budget_per_s)
            && self.complaints_raised >= 5
            && self.complaints.still_open == 0
            && self.complaints_resolved_automatically > 0
            && self.complaints_within_time == self.complaints_raised
            && self.refunds > 0
    }
}

/// Plays the demo and returns its report (the database is dropped unless
/// `keep_db`).
pub async fn run_report(config: &Config, args: &DemoArgs) -> anyhow::Result<DemoReport> {
    let began = Instant::now();
    let json_out = args.json;
    say(
        json_out,
        "billclear demo: intake → ledger → dispatch → callbacks, end to end",
    );
    let stack = start(
        config,
        &StackOptions {
            instances: usize::from(args.instances),
            ..StackOptions::demo(json_out)
        },
    )
    .await?;
    let result = play(&stack, args, began).await;
    if args.serve {
        if let Ok(r) = &result {
            eprintln!();
            eprintln!("The demo keeps running for you to look (Ctrl-C ends it):");
            eprintln!("  console:  {}", r.console_url);
            eprintln!(
                "  sign in:  {}  (once, as demo.approver)",
                r.console_sign_in
            );
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stack.stop().await;
    let mut report = result?;
    report.database = stack.keep_or_drop(config, args.keep_db).await?;
    Ok(report)
}

async fn play(stack: &Stack, args: &DemoArgs, began: Instant) -> anyhow::Result<DemoReport> {
    let json_out = args.json;
    let mut rng = rand::thread_rng();
    // Customers of every biller (the hub's book is the union).
    let book = biller_sim::hub::default_hub_book(chrono::Utc::now().date_naive());
    let open: Vec<(String, Account)> = book.iter().filter(|(_, a)| a.open).cloned().collect();
    let closed: Vec<(String, Account)> = book.iter().filter(|(_, a)| !a.open).cloned().collect();
    let mut tally = Tally::default();

    // 1. The main batch: mostly good payments, a few to a closed account.
    let mut bodies: Vec<_> = (0..args.payments)
        .map(|i| {
            let pool = if i % 25 == 7 && !closed.is_empty() {
                &closed
            } else {
                &open
            };
            random_payment(pool, &mut rng)
        })
        .collect();
    bodies.shuffle(&mut rng);
    let accepted = submit(stack, bodies, &mut tally).await;
    say(
        json_out,
        format!(
            "• submitted    {} payments from two apps ({} accepted)",
            tally.requests, tally.accepted
        ),
    );

    // 2. Replays: the same request with the same key gets the same answer.
    for (c, body) in accepted.iter().take((accepted.len() / 10).max(1)) {
        let key = body["channel_reference"].as_str().unwrap_or_default();
        let r = stack.clients[*c].1.post_payment(key, body).await?;
        tally.requests += 1;
        let replayed = r
            .headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        if r.status == 201 && replayed {
            tally.replays += 1;
        } else {
            tally.unexpected.push(format!(
                "replay answered HTTP {} without the replay header",
                r.status
            ));
        }
    }
    say(
        json_out,
        format!(
            "• replays      {} answered from the idempotency record, nothing new written",
            tally.replays
        ),
    );

    // 3. Invalid requests: refused with a stable code, nothing written.
    let mut refused_codes = Vec::new();
    for (what, body) in invalid_requests() {
        let key = format!("bad-{}", uuid::Uuid::new_v4().simple());
        let r = stack.clients[0].1.post_payment(&key, &body).await?;
        tally.requests += 1;
        if r.status.is_client_error() {
            tally.refused += 1;
            refused_codes.push(format!("{what}: {}", r.code()));
        } else {
            tally.unexpected.push(format!("{what}: HTTP {}", r.status));
        }
    }
    say(
        json_out,
        format!(
            "• invalid      {} requests refused ({})",
            tally.refused,
            refused_codes.join("; ")
        ),
    );

    // 4. The hub applies the next payments but its answers are lost.
    stack.hub.set_faults(Faults {
        drop_response_next: args.fault_burst as u32,
        ..Faults::default()
    });
    let burst: Vec<_> = (0..args.fault_burst)
        .map(|_| random_payment(&open, &mut rng))
        .collect();
    let before = tally.accepted;
    submit(stack, burst, &mut tally).await;
    say(
        json_out,
        format!(
            "• fault burst  {} payments sent while the hub drops its answers after applying them",
            tally.accepted - before
        ),
    );

    // The burst reaches the hub before the next scene.
    let sent = Instant::now();
    while stack.hub.faults().drop_response_next > 0 && sent.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 5. The hub goes down: its circuit opens and new payments go to the
    //    billers direct; what it holds is asked about when it returns.
    stack.hub.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    let opened = Instant::now();
    while stack.service.state.routes.state("hub")
        == Some(crate::domain::routing::RouteState::Closed)
        && opened.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(
        json_out,
        format!(
            "• hub outage   the hub stopped answering; its circuit opened after {:.1} s",
            opened.elapsed().as_secs_f64()
        ),
    );
    let outage: Vec<_> = (0..args.outage_payments)
        .map(|_| random_payment(&open, &mut rng))
        .collect();
    let before = tally.accepted;
    let outage_accepted = submit(stack, outage, &mut tally).await;
    let outage_refs: Vec<String> = outage_accepted
        .iter()
        .filter_map(|(_, b)| b["channel_reference"].as_str().map(str::to_string))
        .collect();
    say(
        json_out,
        format!(
            "               {} payments accepted during the outage; the hub comes back",
            tally.accepted - before
        ),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.hub.set_faults(Faults::default());

    // 6. Wait until every payment is final and every callback acknowledged.
    let deadline = Instant::now() + Duration::from_secs(args.wait_s);
    let mut last_line = String::new();
    let counts =
        loop {
            let counts = status_counts(&stack.store).await?;
            let n = |s: &str| counts.get(s).copied().unwrap_or(0);
            let in_flight = n("RECEIVED") + n("SUBMITTED") + n("UNKNOWN");
            let callbacks = pending_callbacks(&stack.store).await?;
            let line =
                format!(
            "  … {} confirmed, {} rejected, {} in flight ({} unknown), {} callbacks pending",
            n("CONFIRMED"), n("REJECTED"), in_flight, n("UNKNOWN"), callbacks
        );
            if line != last_line {
                say(json_out, &line);
                last_line = line;
            }
            if (in_flight == 0 && callbacks == 0) || Instant::now() >= deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
    if !tally.unexpected.is_empty() {
        say(
            json_out,
            format!("! unexpected answers: {:?}", tally.unexpected),
        );
    }

    // 7. A storm of bill inquiries spread over every process.
    let storm = inquiry_storm(stack, json_out).await?;

    let n = |s: &str| counts.get(s).copied().unwrap_or(0);
    let credits: Vec<CreditRecord> = stack.credits();
    let by_biller = by_biller(&stack.store).await?;
    let by_route = by_route(&stack.store).await?;
    let sent_direct: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments WHERE channel_reference = ANY($1) AND connector_id <> 'hub'",
    )
    .bind(&outage_refs)
    .fetch_one(stack.store.pool())
    .await?;
    let resolved: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT payment_id) FROM payment_events WHERE to_status = 'UNKNOWN'",
    )
    .fetch_one(stack.store.pool())
    .await?;
    let mut posted = BTreeMap::new();
    for biller in BILLERS {
        if let Some(b) = stack
            .store
            .balance(&format!("biller:{biller}:payable:CNY"))
            .await?
        {
            posted.insert(
                biller.to_string(),
                format!("{} CNY", b.posted_credits - b.posted_debits),
            );
        }
    }
    // Settle the day, then audit again: the settlement journals balance and
    // our books still equal the billers'.
    let (settlement, statements, settlement_totals_match) = settle_day(stack, json_out).await?;
    // Reconcile the day against the counterparts' own files.
    let recon = reconcile_day(stack, json_out).await?;
    // The finance console: the day's page and a sign-in for a demo approver.
    let (_, approver) = crate::cli::staff::add_staff(
        &*stack.store,
        "demo.approver",
        "Demo approver",
        crate::domain::staff::StaffRole::Approver,
    )
    .await?;
    let console_sign_in = crate::cli::staff::sign_in_link(
        &*stack.store,
        &stack.service.state.config,
        "demo.approver",
        &stack.base,
    )
    .await?;
    let console_url = format!("{}/console/days/{}", stack.base, recon.business_date);
    // Our books against the billers' before any refund (a refund gives
    // back a payment the biller credited: the books then differ by it).
    let comparison = books::compare(&stack.store, &BILLERS, &credits).await?;
    // The day's payments' callbacks, before the complaints add their own.
    let callbacks_acknowledged = stack.receiver.acknowledged().len() as u64;
    let callback_deliveries = stack.receiver.received().len() as u64;
    // Complaints, and refunds; the ledger is audited after them.
    let complaints = complaints::play(stack, &open, &closed, &approver, json_out).await?;
    let received = stack.receiver.received();
    let audit = stack.store.audit().await?;
    Ok(DemoReport {
        requests_sent: tally.requests,
        payments_submitted: tally.accepted,
        payments_confirmed: n("CONFIRMED"),
        payments_rejected: n("REJECTED"),
        payments_unknown: n("UNKNOWN"),
        payments_in_flight: n("RECEIVED") + n("SUBMITTED") + n("UNKNOWN"),
        replays_answered: tally.replays,
        invalid_requests_refused: tally.refused,
        answers_dropped_by_biller: args.fault_burst as u32 - stack.hub.faults().drop_response_next,
        resolved_by_inquiry: resolved as u64,
        pay_requests_at_biller: stack.sim.pay_requests()
            + stack.power.pay_requests()
            + stack.gas.pay_requests()
            + stack.hub.pay_requests(),
        ledger_balanced: audit.balanced(),
        every_payment_one_transfer: audit.payments_exactly_once(),
        books_agree_with_biller: comparison.agrees(),
        books: comparison,
        callbacks_acknowledged,
        callback_deliveries,
        callbacks_all_verified: received.iter().all(|r| r.verified.is_ok()),
        posted_to_billers: posted,
        by_biller,
        by_route,
        hub_outage_payments: outage_refs.len() as u64,
        hub_outage_sent_direct: sent_direct as u64,
        settlement,
        statements,
        settlement_totals_match,
        bank_entries_booked: recon.bank_entries_booked,
        bank_entries_already_known: recon.bank_entries_already_known,
        bank_statement_balances_proven: recon.bank_statement_balances_proven,
        bank_balance_matches_ledger: recon.bank_balance_matches_ledger,
        recon,
        tls_routes: stack
            .connectors
            .iter()
            .filter(|(_, c)| c.kind.is_online() && !c.is_plaintext())
            .map(|(id, _)| id.clone())
            .collect(),
        mutual_tls_routes: stack
            .connectors
            .iter()
            .filter(|(_, c)| !c.is_plaintext() && c.tls.client_cert_file.is_some())
            .map(|(id, _)| id.clone())
            .collect(),
        signature_schemes: stack
            .connectors
            .iter()
            .map(|(id, c)| (id.clone(), c.signature.scheme.to_string()))
            .collect(),
        console_url,
        console_sign_in,
        instances: args.instances,
        max_inquiries_per_s_seen_by_biller: storm.max_per_s,
        budget_per_s: storm.budget_per_s,
        inquiries_sent: storm.sent,
        inquiries_refused_over_budget: storm.refused,
        complaints_raised: complaints.raised,
        complaints_resolved_automatically: complaints.resolved_automatically,
        complaints_within_time: complaints.within_time,
        refunds: complaints.refunds,
        complaints,
        elapsed_s: (began.elapsed().as_millis() as f64) / 1000.0,
        database: None,
    })
}

/// What the biller saw of a storm of bill inquiries.
struct Storm {
    sent: u64,
    refused: u64,
    max_per_s: u64,
    budget_per_s: u32,
}

/// Bill inquiries for sh-water, distinct accounts (no cache, no
/// coalescing), 32 at a time for three seconds, spread over every process
/// and both apps; the biller counts what reaches it per second (through the
/// hub and direct, together).
async fn inquiry_storm(stack: &Stack, json: bool) -> anyhow::Result<Storm> {
    const BILLER: &str = "sh-water";
    let states: Vec<&crate::state::AppState> = std::iter::once(&stack.service.state)
        .chain(stack.others.iter().map(|o| &o.state))
        .collect();
    let budget_per_s = stack.service.state.inquiry.budget_per_s(BILLER);
    // Until every process sees the fleet and holds its share (a
    // newcomer waits before it takes one).
    let waited = Instant::now();
    while states
        .iter()
        .any(|s| s.fleet.instances() != states.len() || s.fleet.share(budget_per_s) == 0)
        && waited.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before: BTreeMap<i64, u64> = per_second_at_biller(stack);
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut calls = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        let client = stack.clients[sent as usize % stack.clients.len()].1.clone();
        let payload = format!("43{:07}", 1_000_000 + sent);
        let check = biller_sim::luhn_check_digit(&payload).unwrap_or(0);
        let path = format!("/v1/billers/{BILLER}/bills?account={payload}{check}");
        let permit = gate.clone().acquire_owned().await?;
        calls.spawn(async move {
            let status = client.get(&path).await.map(|r| r.status.as_u16());
            drop(permit);
            status
        });
        sent += 1;
    }
    let mut refused = 0u64;
    while let Some(r) = calls.join_next().await {
        if matches!(r, Ok(Ok(429))) {
            refused += 1;
        }
    }
    let after = per_second_at_biller(stack);
    let max_per_s = after
        .iter()
        .map(|(s, n)| n - before.get(s).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    say(
        json,
        format!(
            "• inquiries    {sent} bill inquiries for {BILLER} over {} process(es) in 3 s: {refused} refused over budget; \
             the biller saw at most {max_per_s} in a second (budget {budget_per_s}/s for the fleet)",
            states.len()
        ),
    );
    Ok(Storm {
        sent,
        refused,
        max_per_s,
        budget_per_s,
    })
}

/// Bill inquiries reaching the biller per second: through the hub and
/// direct, added up.
fn per_second_at_biller(stack: &Stack) -> BTreeMap<i64, u64> {
    let mut seen = BTreeMap::new();
    for (second, n) in stack
        .hub
        .bill_requests_per_second()
        .into_iter()
        .chain(stack.sim.bill_requests_per_second())
    {
        *seen.entry(second).or_default() += n;
    }
    seen
}

fn print_summary(r: &DemoReport) {
    let yes = |b: bool| if b { "yes" } else { "NO" };
    println!();
    println!("Summary");
    println!("  requests sent                 {}", r.requests_sent);
    println!("  payments accepted             {}", r.payments_submitted);
    println!("    confirmed by the biller     {}", r.payments_confirmed);
    println!(
        "    rejected                    {} (refused by the biller, or never received)",
        r.payments_rejected
    );
    println!("    still unknown               {}", r.payments_unknown);
    println!("    not final (timed out)       {}", r.payments_in_flight);
    println!("  replays answered              {}", r.replays_answered);
    println!(
        "  invalid requests refused      {}",
        r.invalid_requests_refused
    );
    println!(
        "  answers dropped by the biller {} (resolved by status inquiry: {})",
        r.answers_dropped_by_biller, r.resolved_by_inquiry
    );
    println!(
        "  pay requests the biller saw   {} (one per payment sent: nothing sent twice)",
        r.pay_requests_at_biller
    );
    println!(
        "  routes over TLS               {} (mutual TLS: {})",
        r.tls_routes.join(", "),
        r.mutual_tls_routes.join(", ")
    );
    println!(
        "  signature schemes             {}",
        r.signature_schemes
            .iter()
            .map(|(id, s)| format!("{id} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  complaints                    {} raised, {} answered by the machine alone, {} within their time, {} refund(s)",
        r.complaints_raised, r.complaints_resolved_automatically, r.complaints_within_time, r.refunds
    );
    println!("  ledger balanced               {}", yes(r.ledger_balanced));
    println!(
        "  one transfer per payment      {}",
        yes(r.every_payment_one_transfer)
    );
    println!(
        "  our books = the biller's      {} ({} matched, {} double credits)",
        yes(r.books_agree_with_biller),
        r.books.matched,
        r.books.double_credits.len()
    );
    println!(
        "  hub outage                    {} payments accepted while the hub was down, {} of them sent direct",
        r.hub_outage_payments, r.hub_outage_sent_direct
    );
    println!(
        "  bill inquiries                {} sent over {} process(es), {} refused; the biller saw at most {}/s (budget {}/s)",
        r.inquiries_sent,
        r.instances,
        r.inquiries_refused_over_budget,
        r.max_inquiries_per_s_seen_by_biller,
        r.budget_per_s
    );
    println!();
    println!(
        "  {:<14} {:>9} {:>9} {:>8}  {:>16}",
        "biller", "confirmed", "rejected", "unknown", "posted (before settlement)"
    );
    for (b, states) in &r.by_biller {
        let n = |s: &str| states.get(s).copied().unwrap_or(0);
        println!(
            "  {b:<14} {:>9} {:>9} {:>8}  {:>16}",
            n("CONFIRMED"),
            n("REJECTED"),
            n("UNKNOWN"),
            r.posted_to_billers
                .get(b)
                .map(String::as_str)
                .unwrap_or("-")
        );
    }
    println!();
    println!("  {:<14} {:>9}", "route", "payments");
    for (route, n) in &r.by_route {
        println!("  {route:<14} {n:>9}");
    }
    println!();
    println!(
        "  callbacks acknowledged        {} ({} deliveries, all signatures verified: {})",
        r.callbacks_acknowledged,
        r.callback_deliveries,
        yes(r.callbacks_all_verified)
    );
    println!();
    println!(
        "  settlement (each biller's business date closed early, through RabbitMQ)    totals = files = ledger: {}",
        yes(r.settlement_totals_match)
    );
    println!(
        "  {:<14} {:<10} {:>8} {:>12} {:>10} {:>12}",
        "biller", "date", "payments", "gross", "commission", "net"
    );
    for b in &r.settlement {
        println!(
            "  {:<14} {:<10} {:>8} {:>12} {:>10} {:>12}",
            b.biller, b.business_date, b.payments, b.gross, b.commission, b.net
        );
        for f in &b.files {
            println!("      {f}");
        }
    }
    for s in &r.statements {
        println!("  statement  {s}");
    }
    println!();
    println!(
        "  reconciliation of {} (the counterparts' files, imported from {})",
        r.recon.business_date, r.recon.inbox
    );
    for f in &r.recon.files {
        println!("      {f}");
    }
    println!();
    print!("{}", crate::reconcile::console::summaries(&r.recon.runs));
    if let Some(b) = &r.recon.bank {
        print!("{}", crate::reconcile::console::bank(b));
    }
    println!(
        "  bank statement: {} entries booked; re-sent with a new message id: {} already known, {} booked again; balances proven: {}; bank balance matches the ledger: {}",
        r.bank_entries_booked,
        r.bank_entries_already_known,
        r.recon.bank_entries_booked_again,
        r.bank_statement_balances_proven,
        r.bank_balance_matches_ledger
    );
    if !r.recon.open_breaks.is_empty() {
        println!();
        println!("  UNEXPLAINED BREAKS ({}):", r.recon.open_breaks.len());
        for b in &r.recon.open_breaks {
            println!("    {b}");
        }
    }
    println!();
    println!("  finance console               {}", r.console_url);
    println!(
        "  one-time sign-in              {} (as demo.approver; works while the demo runs: add --serve to keep it running)",
        r.console_sign_in
    );
    println!("  elapsed                       {:.1} s", r.elapsed_s);
    if let Some(db) = &r.database {
        println!("  database kept                 {db}");
    }
}

/// One biller's closed date in the demo.
#[derive(Debug, Clone, Serialize)]
pub struct SettledBiller {
    pub biller: String,
    pub business_date: chrono::NaiveDate,
    pub payments: u64,
    pub gross: String,
    pub commission: String,
    pub net: String,
    pub files: Vec<String>,
}

/// Closes each biller's current business date (early: the demo runs
/// before the cut-offs), publishes the batches through RabbitMQ, writes
/// their files and the apps' statements, and checks the control totals:
/// each settlement file's total = its batch's gross less returns, and each
/// batch's journal = its totals.
async fn settle_day(
    stack: &Stack,
    json: bool,
) -> anyhow::Result<(Vec<SettledBiller>, Vec<String>, bool)> {
    use crate::settlement::close::{close_date, Closing, When};
    use crate::store::{CloseOutcome, SettlementStore};
    let store = stack.service.state.store.clone();
    let config = &stack.service.state.config;
    let now = chrono::Utc::now();
    let billers = stack.store.load_billers().await?;
    let mut batches = Vec::new();
    for b in billers.iter().filter(|b| b.settlement.is_some()) {
        let date = b.cutoff.business_date_of(now);
        for (_, c) in close_date(
            &*store,
            &billers,
            date,
            Some(b.id.as_str()),
            When::Early,
            &config.settlement.debtor,
            now,
        )
        .await?
        {
            match c {
                Closing::Closed(
                    CloseOutcome::Closed(batch) | CloseOutcome::AlreadyClosed(batch),
                ) => batches.push(batch),
                Closing::Skipped(why) | Closing::Failed(why) => {
                    anyhow::bail!("closing {}: {why}", b.id)
                }
            }
        }
    }
    let ids: Vec<uuid::Uuid> = batches.iter().map(|b| b.id).collect();
    say(json, format!("• settlement   {} business dates closed; publishing to RabbitMQ and writing the files ...", ids.len()));
    crate::settlement::service::publish_and_render(
        store.clone(),
        config,
        &ids,
        Duration::from_secs(120),
    )
    .await?;
    let _ = crate::settlement::service::delete_topology(&config.amqp).await;
    let mut out = Vec::new();
    let mut totals_match = true;
    for b in &batches {
        let files = stack.store.batch_files(b.id).await?;
        let file_total = files
            .iter()
            .find(|f| f.kind == "settlement")
            .map(|f| f.total);
        totals_match &= file_total == Some(b.totals.gross - b.totals.returns);
        if let Some(j) = b.journal_id {
            let debits: rust_decimal::Decimal = sqlx::query_scalar(
                "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE journal_id = $1 AND side = 'debit'",
            )
            .bind(j)
            .fetch_one(stack.store.pool())
            .await?;
            totals_match &= debits == b.totals.gross - b.totals.returns;
        }
        let dir = config.settlement.outbox_dir.join(&b.biller_id);
        out.push(SettledBiller {
            biller: b.biller_id.clone(),
            business_date: b.business_date,
            payments: b.totals.count,
            gross: b.totals.gross.to_string(),
            commission: b.totals.commission.to_string(),
            net: b.totals.net().to_string(),
            files: files
                .iter()
                .map(|f| dir.join(&f.name).display().to_string())
                .collect(),
        });
    }
    let mut statements = Vec::new();
    let dates: std::collections::BTreeSet<_> = batches.iter().map(|b| b.business_date).collect();
    for date in dates {
        for c in store.statement_channels(date).await? {
            let channel = ChannelId::parse(&c)?;
            let s = crate::settlement::statement::write(
                &*store,
                &config.settlement.outbox_dir,
                &channel,
                date,
            )
            .await?;
            statements.push(format!(
                "{c} {date}: {} lines, owes {:?} -> {}",
                s.lines,
                s.owed,
                s.path.display()
            ));
        }
    }
    Ok((out, statements, totals_match))
}

/// The demo's reconciliation of its day.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRecon {
    pub business_date: chrono::NaiveDate,
    /// Where the counterparts' files were dropped.
    pub inbox: String,
    /// One line per file imported.
    pub files: Vec<String>,
    /// One run per biller.
    pub runs: Vec<crate::reconcile::run::RunSummary>,
    /// Breaks left open after the runs (none on a good day), described.
    pub open_breaks: Vec<String>,
    /// The day's bank statement (camt.053.001.08): imported, then imported
    /// again as the bank re-sends it (a new message id).
    pub bank_statement: String,
    /// Entries booked by the first import.
    pub bank_entries_booked: u64,
    /// Entries the re-sent statement brought that were known already (all).
    pub bank_entries_already_known: u64,
    /// Entries the re-sent statement booked (none).
    pub bank_entries_booked_again: u64,
    /// Every statement's opening + credits - debits = closing, both times.
    pub bank_statement_balances_proven: bool,
    /// The bank's closing balance equals `bank:settlement` once every listed
    /// item is counted (no balance break).
    pub bank_balance_matches_ledger: bool,
    /// The bank pass of the run, with balances beside the ledger's.
    pub bank: Option<crate::reconcile::run::BankSummary>,
}

/// Writes each counterpart's files of the day (the hub's statement, each
/// biller's confirmation file) into `<recon.dir>/inbox/<source>/`, imports
/// them as `billclear recon import --inbox` does (imported files move to
/// `done/`), and reconciles the date for every biller.
async fn reconcile_day(stack: &Stack, json: bool) -> anyhow::Result<DemoRecon> {
    use crate::domain::recon::matching::minor_to_string;
    use crate::store::recon::{BreakFilter, ReconStore};
    let config = &stack.service.state.config;
    let billers = stack.store.load_billers().await?;
    let zone = billers
        .iter()
        .find(|b| b.id.as_str() == "sh-water")
        .map(|b| b.cutoff.zone)
        .context("biller sh-water")?;
    let date = chrono::Utc::now().with_timezone(&zone).date_naive();
    let inbox = config.recon.dir.join("inbox");
    let mut files: Vec<(&str, String, String)> = vec![(
        "hub",
        format!("hub-statement-{date}.csv"),
        stack.hub.statement_csv(date),
    )];
    for biller in ["sh-water", "pudong-water"] {
        files.push((
            biller,
            format!("{biller}-confirmation-{date}.csv"),
            stack.sim.confirmation_csv(biller, date),
        ));
    }
    files.push((
        "sh-power",
        format!("sh-power-confirmation-{date}.xml"),
        stack.power.confirmation_xml("sh-power", date),
    ));
    for biller in ["sh-gas", "minhang-gas"] {
        files.push((
            biller,
            format!("{biller}-confirmation-{date}.txt"),
            stack.gas.confirmation_file(biller, date),
        ));
    }
    let mut lines = Vec::new();
    for (source, name, text) in files {
        let dir = inbox.join(source);
        std::fs::create_dir_all(dir.join("done"))?;
        let path = dir.join(&name);
        std::fs::write(&path, text)?;
        let i = crate::reconcile::import::import_file(
            &*stack.store,
            &config.recon.dir,
            &config.our_accounts()?,
            source,
            &path,
            None,
            Some(date),
            "demo",
            chrono::Utc::now(),
        )
        .await
        .with_context(|| format!("importing {}", path.display()))?;
        std::fs::rename(&path, dir.join("done").join(&name))?;
        lines.push(format!(
            "{source:<14} {name:<40} file #{} {:<13} {:>4} records, {:>4} credited {:>12} {}",
            i.id,
            i.kind.as_str(),
            i.records,
            i.credited,
            minor_to_string(i.credited_total_minor, 2),
            i.currency.as_deref().unwrap_or("")
        ));
    }
    // Our bank's statement of the day: every batch paid out, every app's
    // funding in; then the same statement re-sent with a new message id.
    let batch_dates: std::collections::BTreeSet<chrono::NaiveDate> =
        crate::store::SettlementStore::batches(&*stack.store, None, None)
            .await?
            .iter()
            .map(|b| b.business_date)
            .collect();
    let dates: Vec<chrono::NaiveDate> = batch_dates.into_iter().collect();
    let mut spec = bank::StatementSpec {
        message_id: format!("STMT-{}-1", date.format("%Y%m%d")),
        statement_id: format!(
            "{}-{}",
            config.settlement.debtor.account,
            date.format("%Y%m%d")
        ),
        sequence: Some(1),
        account: config.settlement.debtor.account.clone(),
        currency: crate::domain::money::Currency::from_code(&config.recon.settlement_currency)?,
        opening_minor: 0,
        opening_date: date.pred_opt().unwrap_or(date),
        date,
        entries: bank::day_entries(&*stack.store, &dates, date).await?,
    };
    let bank_dir = inbox.join("bank");
    std::fs::create_dir_all(bank_dir.join("done"))?;
    let accounts = config.our_accounts()?;
    let mut bank_imports = Vec::new();
    for (i, message_id) in [
        spec.message_id.clone(),
        format!("STMT-{}-1-RESENT", date.format("%Y%m%d")),
    ]
    .into_iter()
    .enumerate()
    {
        spec.message_id = message_id;
        let name = format!("bank-statement-{date}-{}.xml", i + 1);
        let path = bank_dir.join(&name);
        std::fs::write(&path, bank::camt053(std::slice::from_ref(&spec)))?;
        let imported = crate::reconcile::import::import_file(
            &*stack.store,
            &config.recon.dir,
            &accounts,
            "bank",
            &path,
            None,
            None,
            "demo",
            chrono::Utc::now(),
        )
        .await
        .with_context(|| format!("importing {}", path.display()))?;
        std::fs::rename(&path, bank_dir.join("done").join(&name))?;
        let counts = imported.bank.unwrap_or_default();
        lines.push(format!(
            "{:<14} {name:<40} file #{} {:<13} {:>4} entries, {:>4} booked, {:>4} already known",
            "bank",
            imported.id,
            imported.kind.as_str(),
            counts.entries,
            counts.entries_booked,
            counts.entries_already_known
        ));
        bank_imports.push(counts);
    }
    let store: Arc<dyn Store> = stack.service.state.store.clone();
    let (runs, bank_run, _reports) =
        crate::reconcile::day::run_date(store, config, date, None, "demo", false).await?;
    let open = stack
        .store
        .breaks(&BreakFilter {
            date: Some(date),
            open_only: true,
            ..Default::default()
        })
        .await?;
    let amount = |m: Option<i64>| {
        m.map(|m| minor_to_string(m, 2))
            .unwrap_or_else(|| "-".into())
    };
    let open_breaks: Vec<String> = open
        .iter()
        .map(|b| {
            format!(
                "#{} {} {} {} ours {} theirs {} {}: {}",
                b.id,
                b.scope,
                b.category.as_str(),
                b.our_reference,
                amount(b.our_amount_minor),
                amount(b.their_amount_minor),
                b.currency,
                b.detail
            )
        })
        .collect();
    let decided: u64 = runs
        .iter()
        .map(|r| r.auto_confirmed.count + r.auto_rejected.count)
        .sum();
    say(
        json,
        format!(
            "• reconciled   {date}: {} files imported, {} billers, {} references matched, {} decided, {} breaks open",
            lines.len(),
            runs.len(),
            runs.iter()
                .map(|r| r.matched.count + r.matched_within_tolerance.count)
                .sum::<u64>(),
            decided,
            open_breaks.len()
        ),
    );
    let proven = bank_imports
        .iter()
        .all(|c| c.statements > 0 && c.balances_proven == c.statements);
    let matches = bank_run
        .as_ref()
        .is_some_and(|b| b.balance_matches_ledger && !b.balances.is_empty());
    if let Some(b) = &bank_run {
        for p in &b.balances {
            say(
                json,
                format!(
                    "• bank         {date}: {} entries booked, re-sent statement: {} already known, {} booked again; closing balance {} {c}, bank:settlement {} {c}, unexplained {} {c}",
                    bank_imports.first().map(|c| c.entries_booked).unwrap_or(0),
                    bank_imports.get(1).map(|c| c.entries_already_known).unwrap_or(0),
                    bank_imports.get(1).map(|c| c.entries_booked).unwrap_or(0),
                    minor_to_string(p.bank_minor(), 2),
                    minor_to_string(p.ledger_minor, 2),
                    minor_to_string(p.unexplained_minor(), 2),
                    c = p.currency
                ),
            );
        }
    }
    Ok(DemoRecon {
        business_date: date,
        inbox: inbox.display().to_string(),
        files: lines,
        runs,
        open_breaks,
        bank_statement: bank_dir
            .join("done")
            .join(format!("bank-statement-{date}-1.xml"))
            .display()
            .to_string(),
        bank_entries_booked: bank_imports.first().map(|c| c.entries_booked).unwrap_or(0),
        bank_entries_already_known: bank_imports
            .get(1)
            .map(|c| c.entries_already_known)
            .unwrap_or(0),
        bank_entries_booked_again: bank_imports.get(1).map(|c| c.entries_booked).unwrap_or(0),
        bank_statement_balances_proven: proven,
        bank_balance_matches_ledger: matches,
        bank: bank_run,
    })
}
